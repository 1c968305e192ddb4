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
