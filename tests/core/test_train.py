"""The training loop: learning, resume after SIGKILL, atomic checkpoints, NaN stop, DDP."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from ostinato.core import checkpoint as ckpt
from ostinato.core import recipe
from ostinato.core.errors import ConfigError, TrainingError
from ostinato.core.train import fit

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _cfg(*overrides):
    return recipe.load("core/toy_seq", ["trainer.log_every_steps=1", *overrides])


def test_fit_decreases_loss_and_writes_run(tmp_path):
    res = fit(_cfg("trainer.max_epochs=3"), tmp_path, quiet=True)
    for name in ("config.yaml", "last.pt", "best.pt", "metrics.csv", "results.json"):
        assert (tmp_path / name).exists(), name
    rows = [r.split(",") for r in (tmp_path / "metrics.csv").read_text().splitlines()[1:]]
    losses = [float(r[4]) for r in rows if r[3] == "train/loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert res["test"]["mse"] < 0.5 and res["val"]["mse"] == pytest.approx(rel=1e-5, expected=
        min(float(r[4]) for r in rows if r[3] == "val/mse"))
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == 3 * 16
    state = ckpt.load(tmp_path / "last.pt")
    assert {"model", "optim", "sched", "rng", "pos", "config", "version"} <= set(state)


def test_refuses_to_overwrite_a_run_and_resume_needs_one(tmp_path):
    fit(_cfg("trainer.max_steps=2"), tmp_path, quiet=True)
    with pytest.raises(ConfigError, match="already holds a run"):
        fit(_cfg("trainer.max_steps=2"), tmp_path, quiet=True)
    with pytest.raises(ConfigError, match="does not exist"):
        fit(_cfg(), tmp_path / "fresh", resume=True, quiet=True)


def test_early_stopping_and_best_selection_use_val_only(tmp_path):
    # lr 0 => val never improves after the first evaluation => patience 2 stops after 3 evals
    res = fit(_cfg("optim.lr=0.0", "sched.name=constant", "trainer.max_epochs=20", "trainer.patience=2"), tmp_path, quiet=True)
    assert res["epochs"] == 3 and res["best_step"] == 16


def test_optimizer_honours_no_weight_decay_hint():
    from ostinato.core.optim import build_optimizer
    from ostinato.core.recipe import OptimConfig

    m = torch.nn.Linear(3, 3)
    m.bias._no_weight_decay = True
    m.weight._optim = {"lr": 0.5, "weight_decay": 0.0}
    opt = build_optimizer(torch.nn.Sequential(m, torch.nn.Linear(3, 1)), OptimConfig(weight_decay=0.1))
    groups = {(g["lr"], g["weight_decay"], len(g["params"])) for g in opt.param_groups}
    assert groups == {(1e-3, 0.1, 2), (1e-3, 0.0, 1), (0.5, 0.0, 1)}


def test_optim_fused_switch_picks_the_step_and_both_follow_adam():
    """``optim.fused`` picks torch's fused or foreach Adam step: the same algorithm (close after
    steps), rounded differently (allowed to differ in the last bits)."""
    from ostinato.core.optim import build_optimizer
    from ostinato.core.recipe import OptimConfig

    out = {}
    for fused in (True, False):
        torch.manual_seed(0)
        m = torch.nn.Linear(8, 4)
        opt = build_optimizer(m, OptimConfig(name="adam", lr=1e-2, fused=fused))
        assert all(bool(g["fused"]) == fused for g in opt.param_groups)
        for _ in range(20):
            opt.zero_grad()
            m(torch.ones(5, 8)).pow(2).sum().backward()
            opt.step()
        out[fused] = m.weight.detach().clone()
    torch.testing.assert_close(out[True], out[False], rtol=1e-5, atol=1e-6)


def _train_cmd(out, *extra):
    return [sys.executable, "-m", "ostinato.core.cli", "train", "core/toy_seq", "--out", str(out), "--quiet",
            "trainer.max_epochs=6", "data.n_train=256", "data.batch_size=16", "data.noise=0.3",
            "model.dropout=0.2", "trainer.ckpt_every_steps=3", "trainer.log_every_steps=1", *extra]


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_train_cmd(full), check=True, env=ENV, timeout=300)
    p = subprocess.Popen(_train_cmd(killed), env=ENV)
    t0 = time.time()
    while time.time() - t0 < 240:  # kill once a mid-epoch checkpoint exists
        if (killed / "last.pt").exists():
            pos = ckpt.load(killed / "last.pt")["pos"]
            if pos["batch"] > 0 and pos["step"] >= 20:
                break
        if p.poll() is not None:
            pytest.fail("the run finished before it could be killed; make it longer")
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (killed / "results.json").exists()
    subprocess.run(_train_cmd(killed, "--resume"), check=True, env=ENV, timeout=300)
    a, b = ckpt.load(full / "last.pt"), ckpt.load(killed / "last.pt")
    assert a["pos"]["step"] == b["pos"]["step"] == 96
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k in ("optim",):
        sa, sb = a[k]["state"], b[k]["state"]
        assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)
    ra = json.loads((full / "results.json").read_text())
    rb = json.loads((killed / "results.json").read_text())
    assert ra["test"] == rb["test"] and ra["val"] == rb["val"]


def test_checkpoint_write_killed_midway_leaves_previous_file(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.save({"w": torch.arange(5.0)}, path)
    script = textwrap.dedent(f"""
        import os, signal, torch
        from ostinato.core import checkpoint as ckpt
        real_save = torch.save
        def torn_save(obj, f):
            f.write(b"PK\\x03\\x04 half a zip file")   # a torn write ...
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)      # ... then the process dies
        torch.save = torn_save
        ckpt.save({{"w": torch.zeros(1000)}}, {str(path)!r})
    """)
    r = subprocess.run([sys.executable, "-c", script], env=ENV)
    assert r.returncode == -signal.SIGKILL
    assert torch.equal(ckpt.load(path)["w"], torch.arange(5.0))
    leftovers = [q.name for q in tmp_path.iterdir() if q.name != "last.pt"]
    assert all(q.endswith(".tmp") for q in leftovers)  # only an orphaned temp file, never a torn last.pt


def _nan_run(out, lr):
    cmd = [sys.executable, "-m", "ostinato.core.cli", "train", "core/toy_seq", "--out", str(out), "--quiet",
           "optim.name=sgd", f"optim.lr={lr}", "sched.name=constant", "trainer.grad_clip=0", "trainer.ckpt_every_steps=1",
           "trainer.max_steps=60"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "non-finite loss" in lines[0], lines
    return lines[0]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    # lr 10 diverges after a few steps: the loss at step N comes from the weights of step N-1, so the
    # checkpoint of step N-1 (written after the diverging update) is not kept; step N-2's is
    line = _nan_run(tmp_path, 10)
    n = int(re.search(r"at step (\d+)", line).group(1))
    kept = int(re.search(r"last good checkpoint is \S+last.pt \(step (\d+)\)", line).group(1))
    assert n >= 3 and kept == n - 2, line
    state = ckpt.load(tmp_path / "last.pt")
    assert state["pos"]["step"] == kept
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert ckpt.load(tmp_path / "last.diverged.pt")["pos"]["step"] == n - 1  # set aside, not deleted


def test_nan_at_the_second_step_keeps_no_checkpoint(tmp_path):
    # lr 1e12: the first update already diverges, so no checkpoint holds weights with a finite loss
    line = _nan_run(tmp_path, 1e12)
    assert "at step 2" in line and "no checkpoint from before the divergence" in line, line
    assert not (tmp_path / "last.pt").exists() and (tmp_path / "last.diverged.pt").exists()


def test_ddp_two_processes_match_single_process(tmp_path):
    common = ["core/toy_seq", "--quiet", "trainer.max_steps=12", "data.batch_size=16", "trainer.seed=1",
              "trainer.eval_every=100", "trainer.device=cpu"]
    subprocess.run([sys.executable, "-m", "ostinato.core.cli", "train", *common, "--out", str(tmp_path / "one")],
                   check=True, env=ENV, timeout=300)
    torchrun = Path(sys.executable).with_name("torchrun")
    r = subprocess.run([str(torchrun), "--nproc_per_node=2", "--master_port=29533", "-m", "ostinato.core.cli", "train",
                        *common, "--out", str(tmp_path / "two")], env=ENV, timeout=300, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = ckpt.load(tmp_path / "one" / "last.pt"), ckpt.load(tmp_path / "two" / "last.pt")
    assert a["pos"]["step"] == b["pos"]["step"] == 12
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-6)


def test_weight_ema_follows_its_formula_and_is_what_is_validated(tmp_path):
    # the model's own trajectory does not depend on the EMA, so runs of 1, 2 and 3 steps give theta_1..3
    base = ("sched.name=constant", "trainer.max_epochs=1")
    thetas = [ckpt.load(fit(_cfg(*base, f"trainer.max_steps={k}"), tmp_path / f"s{k}", quiet=True) and
                        tmp_path / f"s{k}" / "last.pt")["model"] for k in (1, 2, 3)]
    d = 0.7
    res = fit(_cfg(*base, "trainer.max_steps=3", f"trainer.ema_decay={d}"), tmp_path / "ema", quiet=True)
    last, best = ckpt.load(tmp_path / "ema" / "last.pt"), ckpt.load(tmp_path / "ema" / "best.pt")
    for k, v in thetas[2].items():
        assert torch.equal(last["model"][k], v), k  # the trained weights are untouched by the average
        if v.is_floating_point():
            want = d * (d * thetas[0][k] + (1 - d) * thetas[1][k]) + (1 - d) * v
            assert torch.allclose(last["ema"][f"module.{k}"], want, atol=1e-6), k
            assert torch.allclose(best["model"][k], want, atol=1e-6), k  # best.pt holds the averaged weights
    plain = json.loads((tmp_path / "s3" / "results.json").read_text())
    assert res["val"]["mse"] != plain["val"]["mse"]
    with pytest.raises(ConfigError, match="ema_decay"):
        fit(_cfg("trainer.ema_decay=1.5"), tmp_path / "bad", quiet=True)


def test_resume_with_weight_ema_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    from ostinato.core import tasks

    over = ("trainer.max_epochs=2", "trainer.ckpt_every_steps=5", "trainer.ema_decay=0.9")
    fit(_cfg(*over), tmp_path / "full", quiet=True)
    real, calls = tasks.ToySeq.loss, {"n": 0}

    def dying_loss(self, batch):
        calls["n"] += 1
        if calls["n"] == 23:
            raise KeyboardInterrupt  # killed after the checkpoint at step 20
        return real(self, batch)

    monkeypatch.setattr(tasks.ToySeq, "loss", dying_loss)
    with pytest.raises(KeyboardInterrupt):
        fit(_cfg(*over), tmp_path / "cut", quiet=True)
    monkeypatch.setattr(tasks.ToySeq, "loss", real)
    assert ckpt.load(tmp_path / "cut" / "last.pt")["pos"]["step"] == 20
    fit(_cfg(*over), tmp_path / "cut", resume=True, quiet=True)
    a, b = ckpt.load(tmp_path / "full" / "last.pt"), ckpt.load(tmp_path / "cut" / "last.pt")
    for k in a["ema"]:
        assert torch.equal(a["ema"][k], b["ema"][k]), k
    ra = json.loads((tmp_path / "full" / "results.json").read_text())
    rb = json.loads((tmp_path / "cut" / "results.json").read_text())
    assert ra["val"] == rb["val"] and ra["test"] == rb["test"]


def test_init_from_starts_from_a_checkpoints_weights_and_rejects_a_misfit(tmp_path):
    fit(_cfg("trainer.max_steps=3"), tmp_path / "a", quiet=True)
    a = ckpt.load(tmp_path / "a" / "last.pt")["model"]
    # lr 0: the one step leaves the weights where they started
    fit(_cfg("trainer.max_steps=1", "optim.lr=0", f"trainer.init_from={tmp_path / 'a' / 'last.pt'}"),
        tmp_path / "b", quiet=True)
    fit(_cfg("trainer.max_steps=1", "optim.lr=0"), tmp_path / "c", quiet=True)
    b, c = ckpt.load(tmp_path / "b" / "last.pt"), ckpt.load(tmp_path / "c" / "last.pt")
    assert b["pos"]["step"] == 1  # a fresh step count
    for k, v in a.items():
        assert torch.equal(b["model"][k], v), k
    assert any(not torch.equal(c["model"][k], v) for k, v in a.items())  # without it: the fresh init
    with pytest.raises(ConfigError, match="init_from.*do not fit"):
        fit(_cfg("model.d_model=8", f"trainer.init_from={tmp_path / 'a' / 'last.pt'}"), tmp_path / "d", quiet=True)


def _cut_at(monkeypatch, call):
    """Make ToySeq.loss raise KeyboardInterrupt (a kill) at its ``call``-th call; returns undo()."""
    from ostinato.core import tasks

    real, calls = tasks.ToySeq.loss, {"n": 0}

    def dying_loss(self, batch):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(tasks.ToySeq, "loss", dying_loss)
    return lambda: monkeypatch.setattr(tasks.ToySeq, "loss", real)


def test_resume_refuses_a_changed_config_but_takes_a_new_budget(tmp_path):
    fit(_cfg("trainer.max_steps=5"), tmp_path, quiet=True)
    with pytest.raises(ConfigError, match=r"config differs.*optim\.lr \(0\.01 -> 0\.5\)") as e:
        fit(_cfg("trainer.max_steps=5", "optim.lr=0.5", "model.dropout=0.3"), tmp_path, resume=True, quiet=True)
    assert "model.dropout" in str(e.value) and e.value.exit_code == 2
    assert ckpt.load(tmp_path / "last.pt")["config"]["optim"]["lr"] == 0.01  # nothing was recorded
    # the budget may change on resume (core.resume.MAY_CHANGE), and then takes effect: a finished run goes on
    res = fit(_cfg("trainer.max_steps=9", "trainer.log_every_s=5"), tmp_path, resume=True, quiet=True)
    state = ckpt.load(tmp_path / "last.pt")
    assert res["steps"] == state["pos"]["step"] == 9
    assert state["config"]["trainer"]["max_steps"] == 9 and state["config"]["trainer"]["log_every_s"] == 5
    rows = [r.split(",") for r in (tmp_path / "metrics.csv").read_text().splitlines()[1:]]
    assert [int(r[0]) for r in rows if r[3] == "train/loss"] == list(range(1, 10))
    from ostinato.core.resume import MAY_CHANGE

    doc = (Path(__file__).parents[2] / "docs" / "core.md").read_text()
    assert all(f"`{k}`" in doc for k in MAY_CHANGE)


def test_resume_without_a_checkpoint_starts_from_scratch(tmp_path, monkeypatch, capsys):
    undo = _cut_at(monkeypatch, 3)  # killed at step 3, before any checkpoint
    with pytest.raises(KeyboardInterrupt):
        fit(_cfg("trainer.max_steps=6"), tmp_path, quiet=True)
    undo()
    assert not (tmp_path / "last.pt").exists()
    capsys.readouterr()
    res = fit(_cfg("trainer.max_steps=6"), tmp_path, resume=True, quiet=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no checkpoint yet" in err[0] and "starting from scratch" in err[0]
    fit(_cfg("trainer.max_steps=6"), tmp_path / "plain", quiet=True)
    assert res["steps"] == 6 and res == json.loads((tmp_path / "plain" / "results.json").read_text()) | {
        "train_time_s": res["train_time_s"]}
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows.count("step,epoch,time_s,name,value") == 1 and len(rows) == len(
        (tmp_path / "plain" / "metrics.csv").read_text().splitlines())


def test_train_time_counts_the_whole_run_after_a_resume(tmp_path, monkeypatch):
    over = ("trainer.max_epochs=2", "trainer.ckpt_every_steps=5")
    undo = _cut_at(monkeypatch, 13)  # killed after the checkpoint at step 10
    with pytest.raises(KeyboardInterrupt):
        fit(_cfg(*over), tmp_path, quiet=True)
    undo()
    state = ckpt.load(tmp_path / "last.pt")
    assert state["pos"]["step"] == 10
    state["pos"]["elapsed"] = 1000.0  # as if the first part had trained for 1000 s
    ckpt.save(state, tmp_path / "last.pt")
    res = fit(_cfg(*over), tmp_path, resume=True, quiet=True)
    assert 1000.0 < res["train_time_s"] < 1000.0 + 300
    assert json.loads((tmp_path / "results.json").read_text())["train_time_s"] == res["train_time_s"]
    rows = [r.split(",") for r in (tmp_path / "metrics.csv").read_text().splitlines()[1:]]
    assert all(float(r[2]) > 1000 for r in rows if int(r[0]) > 10)


def test_resume_config_comparison_rules():
    from ostinato.core.resume import changed_keys, check_same_config

    saved = {"optim": {"lr": 0.01, "betas": [0.9, 0.99]}, "trainer": {"max_steps": 5}, "recipe": "core/toy_seq"}
    now = {"optim": {"lr": 0.01, "betas": (0.9, 0.99)}, "trainer": {"max_steps": 9, "ema_decay": 0.0},
           "recipe": "/abs/path/toy_seq.yaml"}
    # tuples equal lists; the recipe's name is a label; a key newer than the checkpoint is not compared
    assert changed_keys(saved, now) == ["trainer.max_steps"]
    assert check_same_config(saved, now, Path("last.pt")) == ["trainer.max_steps"]
    with pytest.raises(ConfigError, match=r"optim\.betas \(\[0\.9, 0\.99\] -> \[0\.9, 0\.999\]\)"):
        check_same_config(saved, {**now, "optim": {"lr": 0.01, "betas": (0.9, 0.999)}}, Path("last.pt"))
