"""`ostinato bench audio --quick` end to end on the shared data (slow: minutes)."""
import json

import pytest


@pytest.mark.slow
def test_bench_quick(shared_data, tmp_path, monkeypatch):
    from ostinato.core.cli import main

    monkeypatch.setenv("OSTINATO_DATA", str(shared_data))
    out = tmp_path / "bench.json"
    assert main(["bench", "audio", "--quick", "--out", str(out)]) == 0
    from ostinato.core.benchkit import select

    rows = json.loads(out.read_text())["rows"]
    (q,) = select(rows, "quality")
    assert q["steps"] == q["budget_steps"] == 30 and q["params"] > 0
    for k in ("pesq", "stoi", "si_sdr", "csig", "cbak", "covl"):
        assert k in q["test"] and f"{k}_noisy" in q["test"] and f"{k}_delta" in q["test"]
    assert q["test"]["pesq_count"] == 3
    speed = {row["model"]: row for row in select(rows, "speed")}
    assert speed["frcrn_causal"]["params_M"] == pytest.approx(0.924238, abs=1e-6)
    assert speed["frcrn_causal"]["rtf_stream_100ms"] > 0
    assert "causal_rtf_stream_100ms<=0.3" in {r["name"] for r in select(rows, "goals")}


def test_mixer_task_trains_two_mixers_and_streams():
    """The `ostinato bench mixers` contract on the quick recipe (the shipped pairs, seconds)."""
    from ostinato.audio.bench import mixer_task
    from ostinato.core import benchkit
    from ostinato.core.mixer import mixer_entries
    from ostinato.core.recipe import load

    task = mixer_task()
    assert {"gru", "mamba", "lru", "fsmn"} <= set(task["mixers"]) <= set(mixer_entries())
    assert load(task["recipe"], task["overrides"]).model.channels == 16  # the recipe resolves (no data read)
    for mixer in ("gru", "mamba"):
        over = task["overrides"] + [f"{task['slot']}.name={mixer}", "trainer.max_steps=2"]
        row = benchkit.train(task["quick_recipe"], over, probe=lambda run: {"stream_s": task["stream"](run.model, run.cfg),
                                                                            "mixer": run.cfg.model.mixer.name})
        assert row["steps"] == 2 and row["mixer"] == mixer and 0 < row["stream_s"] < 1.0
        for key in task["metrics"].values():
            assert isinstance(benchkit.get(row, key), float), key
