"""The two-phase RememberColor3 bench entry: each policy's phase 2 starts from its own phase-1 best.pt."""
from pathlib import Path


def test_two_phase_bench_chains_each_policys_phases(monkeypatch, tmp_path):
    from ostinato.control import bench
    from ostinato.core import train

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
    row = bench.run_two_phase(tmp_path)
    assert len(calls) == 6
    for short, (i, j) in zip(("muvla", "memoryless", "lstm"), ((0, 1), (2, 3), (4, 5))):
        (c1, o1), (c2, o2) = calls[i], calls[j]
        assert c1.trainer.init_from == "" and c2.trainer.init_from == str(o1 / "best.pt")
        assert c1.data["keyframe_steps"] == 6 and c1.data["keyframe_only"] and c2.data["window"] == 12
        assert row[short]["steps"] == 12 and row[short]["train_time_s"] == 3.0 and row[short]["success_once"] == 0.8
    assert calls[0][0].model["name"] == "muvla" and calls[0][0].model["memory_recon"] == 100
    assert calls[2][0].model["name"] == "muvla_memoryless" and calls[3][0].model["memory_recon"] == 0
    assert calls[4][0].model["name"] == calls[5][0].model["name"] == "lstm_policy"
    assert row["task"] == "RememberColor3-v0 (two-phase)"
