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
