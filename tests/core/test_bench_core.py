"""`ostinato bench core`: the table's rows, keys and JSON on tiny shapes (the real run takes minutes)."""
import json

import pytest

from ostinato.core import bench


def test_bench_rows_and_json(tmp_path, capsys):
    out = tmp_path / "core.json"
    rows = bench.run(quick=True, out=out, lengths=[8, 20], batch=2, width=4, state=2)
    doc = json.loads(out.read_text())
    assert doc["rows"] == json.loads(json.dumps(rows))
    assert doc["bench"] == "core" and doc["shape"]["lengths"] == [8, 20] and doc["total_s"] > 0
    impls = {(r["group"], r["impl"]) for r in rows}
    for want in [("scan", "sequential (reference)"), ("scan", "associative"), ("scan", "chunked"), ("scan", "log"),
                 ("selective", "ref loop (selective_scan_ref)"), ("selective", "chunked (ours)"),
                 ("s5", "ours (associative scan)"), ("lstm", "torch.nn.LSTM")]:
        assert want in impls, want
    assert any(r["group"] == "s5" and r["impl"].startswith("s5-pytorch") for r in rows)
    for r in rows:
        if r["group"] in ("peak", "e2e"):  # the matmul ceiling (fwd_s, gflops) and end-to-end rows
            continue
        if r["group"] == "s5" and r["impl"].startswith("s5-pytorch") and not r.get("fwd_s"):
            assert "not installed" in r["note"]
            continue
        assert r["fwd_s"] > 0 and r["fwdbwd_s"] > 0
        assert r["fwdbwd_peak_mib"] >= 0
    fast = [r for r in rows if r["impl"] == "chunked (ours)"]
    assert len(fast) == 2 and all(r["speedup_fwdbwd"] > 0 for r in fast)
    text = capsys.readouterr().out
    n_scan = 5 if bench.kernels.available() else 4  # + the fused kernel's row when it is built
    assert "selective" in text and "x f+b" in text and text.count("| scan ") == 2 * n_scan


def test_peak_bytes_counts_allocations_during_the_call():
    import torch

    def f():
        a = torch.ones(1000, 1000)  # 4 MB live
        b = a * 2  # 8 MB live at the peak
        del a, b

    peak = bench._peak_bytes(f)
    assert 7.5e6 < peak < 9e6


@pytest.mark.slow
def test_cli_bench_core_quick_under_three_minutes(tmp_path, cli):
    out = tmp_path / "b.json"
    r = cli("bench", "core", "--quick", "--out", out, env={"OMP_NUM_THREADS": "2"}, timeout=400)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["total_s"] < 180
