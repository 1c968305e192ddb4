"""The two-phase RememberColor3 bench entry: each policy's phase 2 starts from its own phase-1 best.pt."""
from pathlib import Path

import pytest


def test_two_phase_bench_chains_each_policys_phases(monkeypatch, tmp_path):
    from ostinato.control import bench
    from ostinato.core import train
    from ostinato.core.benchkit import field

    calls = []

    def fake_fit(cfg, out, quiet=False):
        calls.append((cfg, Path(out)))
        if not cfg.trainer.init_from:  # phase 1: teacher-forced validation only
            return {"steps": 5, "train_time_s": 1.0, "val": {"key_acc": 0.9}}
        return {"steps": 7, "train_time_s": 2.0, "val": {"key_acc": 0.9},
                "test": {"success_once": 0.8, "success": 0.7, "episode_len": 30.0, "episodes": 100.0}}

    monkeypatch.setattr(train, "fit", fake_fit)
    monkeypatch.setattr(bench, "_ensure_demos", lambda *a, **k: None)
    monkeypatch.setattr(bench, "env_steps_per_s", lambda *a, **k: 1.0)
    rows = {r["policy"]: r for r in bench.run_two_phase(tmp_path)}
    assert len(calls) == 6
    for short, (i, j) in zip(("muvla", "memoryless", "lstm"), ((0, 1), (2, 3), (4, 5))):
        (c1, o1), (c2, o2) = calls[i], calls[j]
        assert c1.trainer.init_from == "" and c2.trainer.init_from == str(o1 / "best.pt")
        assert c1.data.keyframe_steps == 6 and c1.data.keyframe_only and c2.data.window == 12
        r = rows[short]
        assert r["steps"] == 12 and r["train_time_s"] == 3.0 and r["test"]["success_once"] == 0.8
        assert r["phase1_key_acc"] == 0.9 and r["params"] is None  # the fake fit wrote no checkpoint
    assert calls[0][0].model_name == "muvla" and calls[0][0].model.memory_recon == 100
    assert calls[2][0].model_name == "muvla_memoryless" and calls[3][0].model.memory_recon == 0
    assert calls[4][0].model_name == calls[5][0].model_name == "muvla"
    assert calls[4][0].model.mixer.name == calls[5][0].model.mixer.name == "lstm"
    assert all(r["task"] == "RememberColor3-v0 (two-phase)" for r in rows.values())


@pytest.mark.slow
def test_two_phase_bench_runs_end_to_end_at_a_tiny_budget(monkeypatch, tmp_path):
    """The real chain on RememberColor3 (needs ManiSkill and the render set-up): demos recorded, six fits, phase 2
    from phase 1's best.pt, validation and test rollouts. About 3 minutes on the 2-core CPU."""
    import json

    import numpy as np

    from ostinato.control import bench
    from ostinato.control.data import demos as demo_files

    demos = tmp_path / "demos"
    monkeypatch.setattr(demo_files, "default_demo_dir", lambda env: demos / env)
    monkeypatch.setattr(bench, "TWO_PHASE_DEMOS", 16)
    env = "RememberColor3-v0"
    extra = [f"data.demos={demos / env}", f"data.val_demos={demos / f'{env}_val'}",
             "data.episodes=16", "data.streams=4", "trainer.max_steps=4", "trainer.eval_every_steps=2",
             "eval.episodes=3", "eval.val_episodes=3"]
    rows = {r["policy"]: r for r in bench.run_two_phase(tmp_path / "work", extra)}
    train, val = sorted((demos / env).glob("ep_*.npz")), sorted((demos / f"{env}_val").glob("ep_*.npz"))
    assert len(train) == 16 and len(val) == 100
    assert int(np.load(train[0])["seed"]) == 0 and int(np.load(val[0])["seed"]) == bench.TWO_PHASE_VAL_SEED
    assert all(r["env_steps_per_s"] > 0 for r in rows.values())
    for short in ("muvla", "memoryless", "lstm"):
        p1, p2 = tmp_path / "work" / f"two_phase_{short}_p1", tmp_path / "work" / f"two_phase_{short}_p2"
        assert (p1 / "best.pt").is_file() and str(p1 / "best.pt") in (p2 / "config.yaml").read_text()
        res = json.loads((p2 / "results.json").read_text())
        assert res["test"]["episodes"] == 3 and res["val"]["episodes"] == 3
        assert rows[short]["steps"] == 8 and 0.0 <= rows[short]["test"]["success_once"] <= 1.0
        assert rows[short]["test"]["success_once"] == res["test"]["success_once"] and rows[short]["params"] > 0
