"""`ostinato bench timeseries --quick`: every row of the table runs (a few steps each)."""
import json

import pytest

from ostinato.core.cli import main


@pytest.mark.slow
def test_bench_quick(tmp_path, capsys, shared_data):
    from ostinato.core.benchkit import select

    out = tmp_path / "bench.json"
    assert main(["bench", "timeseries", "--quick", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["quick"] is True and res["bench"] == "timeseries"
    rows = res["rows"]
    ett = {r["name"]: r for r in select(rows, "etth1_96")}
    assert {"Chimera", "DLinear", "Seasonal naive", "TimeMixer (TSLib table)"} <= set(ett)
    assert ett["Chimera"]["steps"] == 5 and "mse" in ett["Chimera"]["test"] and ett["Chimera"]["params"] > 0
    assert ett["Seasonal naive"]["params"] == 0 and ett["TimeMixer (TSLib table)"]["reference"] is True
    m4 = {r["name"]: r for r in select(rows, "m4_hourly")}
    assert {"MES-LSTM", "MES-LSTM (quantile head)", "ES-RNN variant", "Seasonal naive"} <= set(m4)
    assert "coverage" in m4["MES-LSTM"]["test"] and "owa" in m4["Seasonal naive"]["test"]
    assert "accuracy" in select(rows, "ecg200", "Chimera")[0]["test"]
    assert "TimeMixer (TSLib table)" in capsys.readouterr().out


def test_mixer_task_trains_two_mixers():
    """The mixers-bench contract: the quick recipe trains with two mixers in the slot, the metrics
    land in the row; the default cell is the recipe's own Mamba; the forecaster does not stream."""
    from ostinato.core import benchkit as kit
    from ostinato.core.mixer import mixer_entries
    from ostinato.core.recipe import load
    from ostinato.timeseries.bench import mixer_task

    task = mixer_task()
    assert task["default"] == "mamba" and "mamba" not in task["mixers"]
    assert set(task["mixers"]) == set(mixer_entries()) - {"mamba", "ssd"}  # the slot takes non-causal mixers too
    assert task["stream"] is None
    for recipe in (task["recipe"], task["quick_recipe"]):
        assert load(recipe, task["overrides"]).model.mixer.name == "mamba"  # default cell: the recipe as written
    assert load(task["recipe"], [f"{task['slot']}.name=lru"]).model.mixer.cfg.d_state == 256  # LRU's own default
    for mixer in ("lru", "gru"):
        seen = {}
        row = kit.train(task["quick_recipe"], task["overrides"] + [f"{task['slot']}.name={mixer}", "trainer.max_steps=2"],
                        probe=lambda run: seen.update(name=run.model.blocks[0].mixer.name) or {})
        assert seen["name"] == mixer and row["steps"] == 2
        for key in task["metrics"].values():
            v = kit.get(row, key)
            assert isinstance(v, float) and v == v, (mixer, key)
