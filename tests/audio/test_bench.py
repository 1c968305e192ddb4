"""`ostinato bench audio --quick` end to end on the shared data (slow: minutes)."""
import json

import pytest


@pytest.mark.slow
def test_bench_quick(shared_data, tmp_path, monkeypatch):
    from ostinato.core.cli import main

    monkeypatch.setenv("OSTINATO_DATA", str(shared_data))
    out = tmp_path / "bench.json"
    assert main(["bench", "audio", "--quick", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    q = r["quality"]
    assert q["steps"] == q["budget_steps"] == 30
    for k in ("pesq", "stoi", "si_sdr", "csig", "cbak", "covl"):
        assert k in q["test"] and f"{k}_noisy" in q["test"] and f"{k}_delta" in q["test"]
    assert q["test"]["pesq_count"] == 3
    rows = {row["model"]: row for row in r["speed"]}
    assert rows["frcrn_causal"]["params_M"] == pytest.approx(0.924238, abs=1e-6)
    assert rows["frcrn_causal"]["rtf_stream_100ms"] > 0 and "causal_rtf_stream_100ms<=0.3" in r["goals"]
