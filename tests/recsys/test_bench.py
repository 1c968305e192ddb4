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


def test_mixer_task_trains_two_mixers_and_streams():
    """The mixers-bench contract: the quick recipe with two mixers (2 steps) through benchkit.train, the test
    metrics in the row, and ``stream`` on the trained model; the attention cell has no step mode."""
    import math

    from ostinato.core import benchkit as kit
    from ostinato.core.errors import ConfigError
    from ostinato.core.mixer import is_causal, mixer_entries
    from ostinato.core.recipe import load
    from ostinato.core.registry import create_model
    from ostinato.recsys.bench import mixer_task

    task = mixer_task()
    causal = sorted(n for n, e in mixer_entries().items() if is_causal(e, e.config()) and n != "ssd")  # ssd: headdim 64
    assert task["mixers"] == causal and {"gru", "lru", "mamba"} <= set(causal)
    for recipe in (task["recipe"], task["quick_recipe"]):
        assert load(recipe, task["overrides"]).model.mixer is None  # the default cell: SASRec's attention
    for mixer in ("gru", "lru"):
        seen = {}

        def probe(run):
            seen.update(name=run.model.blocks[0].mixer.name, pos=run.model.pos_emb, s=task["stream"](run.model, run.cfg))
            return {}

        row = kit.train(task["quick_recipe"], task["overrides"] + task["mixer_overrides"] +
                        [f"{task['slot']}.name={mixer}", "trainer.max_steps=2"], probe=probe)
        assert seen["name"] == mixer and seen["pos"] is None and row["steps"] == 2
        assert math.isfinite(seen["s"]) and 0 < seen["s"] < 5
        for key in task["metrics"].values():
            v = kit.get(row, key)
            assert isinstance(v, float) and 0.0 <= v <= 1.0, (mixer, key)
    with pytest.raises(ConfigError, match="streaming needs model.mixer"):  # the attention cell
        task["stream"](create_model("test_sasrec"), None)
