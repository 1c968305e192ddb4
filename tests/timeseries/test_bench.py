"""`ostinato bench timeseries --quick`: every row of the table runs (a few steps each)."""
import json

import pytest

from ostinato.core.cli import main


@pytest.mark.slow
def test_bench_quick(tmp_path, capsys, shared_data):
    out = tmp_path / "bench.json"
    assert main(["bench", "timeseries", "--quick", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["quick"] is True
    assert {"Chimera", "DLinear", "Seasonal naive"} <= set(res["etth1_96"])
    assert res["etth1_96"]["Chimera"]["steps"] == 5 and "mse" in res["etth1_96"]["Chimera"]["test"]
    assert {"MES-LSTM", "MES-LSTM (quantile head)", "ES-RNN variant", "Seasonal naive"} <= set(res["m4_hourly"])
    assert "coverage" in res["m4_hourly"]["MES-LSTM"]["test"] and "owa" in res["m4_hourly"]["Seasonal naive"]["test"]
    assert "accuracy" in res["ecg200"]["Chimera"]["test"]
    assert "TimeMixer (TSLib table)" in capsys.readouterr().out
