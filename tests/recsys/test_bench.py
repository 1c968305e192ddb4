"""`ostinato bench recsys --quick` on the shared data: both recipes train (2 epochs each) through the bench kit."""
import json

import pytest


@pytest.mark.slow
def test_bench_quick(tmp_path, capsys, shared_data):
    from ostinato.core.benchkit import select
    from ostinato.core.cli import main
    from ostinato.recsys import bench

    out = tmp_path / "bench.json"
    assert main(["bench", "recsys", "--quick", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["bench"] == "recsys" and res["quick"] is True
    runs = [r for r in select(res["rows"], "sasrec_games") if not r.get("reference")]
    assert [r["recipe"] for r in runs] == bench.RECIPES and [r["loss"] for r in runs] == ["bce", "ce"]
    for r in runs:
        assert r["epochs"] == bench.QUICK_EPOCHS and r["params"] > 0 and len(r["val_curve"]) == bench.QUICK_EPOCHS
        assert set(r["test"]) == set(bench.TEST_KEYS) and 0 <= r["test"]["sampled_ndcg@10"] <= 1
        assert 0 < r["s_per_epoch"] and 0 < r["train_s"] <= r["train_time_s"]
    assert len(select(res["rows"], "goals")) == 1
    text = capsys.readouterr().out
    assert "sampled HR@10" in text and "paper (Kang & McAuley 2018)" in text
