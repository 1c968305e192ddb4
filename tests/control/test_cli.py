"""End-to-end: `ostinato train/eval` with the tiny recipe, `control collect`, `ls envs`, the LSTM baseline."""
import json
import subprocess
import sys

import torch

from ostinato.core.registry import create_model


def _cli(*args, cwd):
    """Run the CLI in ``cwd`` (a tmp folder: nothing may land in the repository root)."""
    r = subprocess.run([sys.executable, "-m", "ostinato.core.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600)
    return r.returncode, r.stdout, r.stderr


def test_train_eval_tiny_recipe_one_epoch(tmp_path, capsys, relocate):
    out = tmp_path / "run"
    rc, so, se = _cli("train", "control/test_muvla_cue_task", "--out", str(out), "--quiet", "trainer.threads=1", cwd=tmp_path)
    assert rc == 0, se
    res = json.loads((out / "results.json").read_text())
    assert res["epochs"] == 1 and 0.0 <= res["test"]["success_once"] <= 1.0 and res["test"]["episodes"] == 4
    gifs = tmp_path / "gifs"
    rc, so, se = _cli("eval", str(out), "--json", "--save-dir", str(gifs), "eval.episodes=3", cwd=tmp_path)
    assert rc == 0, se
    m = json.loads(so.strip().splitlines()[-1])
    assert set(m) >= {"success_once", "success", "episode_len", "wall_time_s"} and m["episodes"] == 3
    assert len(list(gifs.glob("cue_task_seed4242424242_*.gif"))) == 1
    from ostinato.core.cli import main  # the run folder alone: rollouts need only the env settings it holds

    capsys.readouterr()
    assert main(["eval", str(relocate(out)), "--json", "eval.episodes=3"]) == 0
    far = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {k: far[k] for k in ("success_once", "success", "episode_len", "episodes")} == \
        {k: m[k] for k in ("success_once", "success", "episode_len", "episodes")}


def test_collect_and_ls_envs(tmp_path):
    rc, so, se = _cli("control", "collect", "cue_task", "--episodes", "2", "--image-size", "16", "--out", str(tmp_path / "d"), cwd=tmp_path)
    assert rc == 0, se
    assert sorted(p.name for p in (tmp_path / "d").glob("*.npz")) == ["ep_000000.npz", "ep_000001.npz"]
    rc, so, se = _cli("ls", "envs", cwd=tmp_path)
    assert rc == 0 and "cue_task" in so and "RememberColor3-v0" in so


def test_collect_unknown_env_is_config_error(tmp_path):
    import pytest

    from ostinato.control.data.demos import collect
    from ostinato.control.envs import EnvConfig
    from ostinato.core.errors import ConfigError

    with pytest.raises(ConfigError, match="no oracle for env 'NoSuchEnv-v0'"):
        collect(EnvConfig(env="NoSuchEnv-v0"), 2, tmp_path)


def test_lstm_baseline_resets_per_sample_and_truncates():
    torch.manual_seed(0)
    m = create_model("test_muvla", mixer={"name": "lstm", "d_hidden": 32}, attention_mask_mode="full", image_channels=3, proprio_dim=4, action_dim=2, chunk=4, vocab=64,
                     max_tokens=4, tbptt_length=2).eval()  # eval: BatchNorm uses running stats
    B, W = 2, 4
    b = {"rgb": torch.randint(0, 256, (B, W, 16, 16, 3), dtype=torch.uint8), "proprio": torch.randn(B, W, 4),
         "instr": torch.randint(1, 64, (B, W, 4)), "is_first": torch.zeros(B, W, dtype=torch.bool)}
    b["is_first"][:, 0] = True
    b["proprio"].requires_grad_(True)
    pred, _ = m(b)
    assert pred.shape == (B, W, 4, 2)
    pred[:, -1].sum().backward()
    g = b["proprio"].grad.abs().sum(-1)  # (B, W)
    assert (g[:, 2:] > 0).all() and (g[:, :2] == 0).all()  # K=2: windows [0, 1], [2, 3]
    with torch.no_grad():
        b["is_first"][0, 2] = True
        full, _ = m(b)
        tail = {k: v[:, 2:] for k, v in b.items()}
        fresh, _ = m(tail)  # state None: both samples start from zero at step 2
    assert torch.allclose(full[0, 2:], fresh[0], atol=1e-5) and not torch.allclose(full[1, 2:], fresh[1], atol=1e-4)
