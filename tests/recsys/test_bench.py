"""`ostinato bench recsys --quick` on the shared data: both recipes train (2 epochs each) through the bench kit."""
import pytest


@pytest.mark.slow
def test_bench_quick_rows_table_and_json(tmp_path, capsys, shared_data):
    from ostinato.core import benchkit
    from ostinato.recsys import bench

    rows = bench.run(quick=True, out=tmp_path / "bench.json")
    doc = benchkit.read_json(tmp_path / "bench.json")
    assert doc["bench"] == "recsys" and doc["quick"] is True and [r["name"] for r in doc["rows"]] == [r["name"] for r in rows]
    runs = [r for r in benchkit.select(rows, "sasrec_games") if not r.get("reference")]
    assert [r["recipe"] for r in runs] == bench.RECIPES and [r["loss"] for r in runs] == ["bce", "ce"]
    for r in runs:
        assert r["epochs"] == bench.QUICK_EPOCHS and r["params"] > 0 and len(r["val_curve"]) == bench.QUICK_EPOCHS
        assert set(r["test"]) == set(bench.TEST_KEYS) and 0 <= r["test"]["sampled_ndcg@10"] <= 1
        assert 0 < r["s_per_epoch"] and 0 < r["train_s"] <= r["train_time_s"]
    assert len(benchkit.select(rows, "goals")) == 1
    text = capsys.readouterr().out
    assert "sampled HR@10" in text and "paper (Kang & McAuley 2018)" in text
