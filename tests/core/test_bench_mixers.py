"""`ostinato bench mixers` on a fake task list: the recsys domain's mixer_task() is replaced by a
tiny one (recsys/test_sasrec, seconds), the other domains by bench modules without one."""
import json
import types

import pytest

from ostinato.core import bench_mixers as bm
from ostinato.core import cli
from ostinato.core.errors import ConfigError

METRICS = {"NDCG@10 sampled": "test.sampled_ndcg@10", "NDCG@10 full": "test.full_ndcg@10"}


def tiny_task(**kw):
    task = {"task": "recsys/tiny", "recipe": "recsys/test_sasrec", "quick_recipe": "recsys/test_sasrec",
            "slot": "model.mixer", "default": "attention", "mixers": ["gru", "lru", "mamba"],
            "overrides": ["trainer.test_at_end=true"], "metrics": METRICS, "stream": lambda model, cfg: 2e-3}
    return {**task, **kw}


@pytest.fixture
def fake(monkeypatch):
    """``fake(task)``: recsys's bench module offers ``task``; every other domain's has no mixer_task."""
    pytest.importorskip("ostinato.recsys")

    def install(task):
        mods = {"recsys": types.SimpleNamespace(mixer_task=lambda: task)}
        monkeypatch.setattr(bm, "bench_module", lambda d: mods.get(d, types.SimpleNamespace()))
    install(tiny_task())
    return install


def test_quick_gives_a_row_per_cell_with_the_columns(fake, tmp_path, capsys):
    out = tmp_path / "m.json"
    rows = bm.run(quick=True, out=out, domains=["recsys", "audio"])
    text = capsys.readouterr().out
    cells = [r for r in rows if r["table"] == "recsys/tiny"]
    assert [r["mixer"] for r in cells] == ["attention", "gru", "lru"]  # the default, then two of QUICK_MIXERS
    assert [r["is_default"] for r in cells] == [True, False, False]
    for r in cells:
        assert set(r["metrics"]) == set(METRICS) and all(0.0 <= v <= 1.0 for v in r["metrics"].values()), r
        assert r["steps"] == bm.QUICK_STEPS and r["params"] > 0 and r["cpu_s"] > 0
        assert r["stream_ms"] == pytest.approx(2.0)
        assert "model.mixer.name=" in " ".join(r["overrides"]) or r["is_default"]
    assert sum(r["best"] for r in cells) == 1
    summary = [r for r in rows if r["table"] == "summary"]
    assert summary[0]["best_other"] in ("gru", "lru") and summary[0]["better"] == "higher"
    assert [r["name"] for r in rows if r["table"] == "skipped"] == ["audio"]
    assert "skipped audio: its bench.py has no mixer_task() yet" in text
    for head in ("mixer", "NDCG@10 sampled", "NDCG@10 full", "vs default %", "params", "steps", "CPU s", "stream ms/step"):
        assert head in text
    marked = [ln.split("|")[1].strip() for ln in text.splitlines() if ln.startswith("| ") and ln.split("|")[1].strip().endswith(" *")]
    assert "attention (default)" in text and len(marked) == 1 and marked[0].startswith(next(r["mixer"] for r in cells if r["best"]))
    doc = json.loads(out.read_text())
    assert doc["bench"] == "mixers" and doc["quick"] and doc["rows"] == json.loads(json.dumps(rows, default=str))


def test_mixers_filter_and_unknown_name(fake, capsys):
    rows = bm.run(quick=True, domains=["recsys"], mixers=["mamba"])
    assert [r["mixer"] for r in rows if r["table"] == "recsys/tiny"] == ["mamba"]  # no default unless named
    assert bm.choose(tiny_task(), ["attention", "lru"], quick=False) == ["default", "lru"]
    assert bm.choose(tiny_task(), None, quick=False) == ["default", "gru", "lru", "mamba"]
    code = cli.main(["bench", "mixers", "--quick", "--domain", "recsys", "--mixers", "gru,nope"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "unknown mixer 'nope'" in err and "valid names: default, attention," in err and "gru" in err


def test_domain_filter(fake, capsys):
    rows = bm.run(quick=True, domains=["timeseries", "vision"])
    assert [r["name"] for r in rows] == ["timeseries", "vision"] and all(r["table"] == "skipped" for r in rows)
    assert bm.parse_names(["recsys,audio", " vision "]) == ["recsys", "audio", "vision"] and bm.parse_names(None) is None
    with pytest.raises(ConfigError, match=r"--domain 'astrology': expected one of audio, control, recsys"):
        bm.run(quick=True, domains=["astrology"])
    assert cli.main(["bench", "core", "--domain", "recsys"]) == 2
    assert "only `ostinato bench mixers` takes it" in capsys.readouterr().err


def test_missing_data_skips_the_task_with_its_reason(fake, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("domain: recsys\nmodel: {name: test_sasrec}\n"
                      "data: {name: sasrec_txt, path: recsys/nowhere/none_h7.txt, maxlen: 8, batch_size: 8}\n")
    fake(tiny_task(quick_recipe=str(recipe)))
    rows = bm.run(quick=True, domains=["recsys"])
    s = [r for r in rows if r["table"] == "summary"][0]
    assert "DataError" in s["skipped"] and "none_h7.txt" in s["skipped"]
    assert not [r for r in rows if r["table"] == "recsys/tiny"]  # no cell trained after the data was found missing
    assert "the rest of this task was skipped: DataError" in capsys.readouterr().out


def test_a_failed_cell_is_its_row_and_the_bench_goes_on(monkeypatch):
    calls = []

    def train(recipe, overrides, **kw):
        calls.append(kw["mixer"])
        if kw["mixer"] == "gru":
            raise RuntimeError("boom\nsecond line")
        return {**kw, "test": {"sampled_ndcg@10": 0.5, "full_ndcg@10": 0.2}, "steps": 1}

    monkeypatch.setattr(bm.kit, "train", train)
    rows, why = bm.run_task({**tiny_task(), "domain": "recsys"}, ["default", "gru", "lru"], True, 1.0)
    assert why is None and calls == ["attention", "gru", "lru"]
    assert rows[1]["error"] == "RuntimeError: boom" and rows[2]["metrics"]["NDCG@10 sampled"] == 0.5


def test_score_marks_the_best_and_the_gap_to_the_default():
    rows = [{"mixer": m, "is_default": m == "d", "task": "t", "metrics": {"MSE": v}}
            for m, v in (("d", 0.40), ("a", 0.41), ("b", 0.39), ("c", float("nan")))]
    s = bm.score(rows, "MSE")
    assert [r.get("best") for r in rows] == [False, False, True, None]
    assert rows[1]["vs_default_pct"] == pytest.approx(-2.5) and rows[2]["vs_default_pct"] == pytest.approx(2.5)
    assert s["better"] == "lower" and s["best_other"] == "b" and s["within_2pct_or_better"] is True
    hi = [{"mixer": m, "is_default": m == "d", "task": "t", "metrics": {"success": v}} for m, v in (("d", 0.9), ("a", 0.8))]
    s = bm.score(hi, "success")
    assert s["best_other_vs_default_pct"] == pytest.approx(-100 / 9) and s["within_2pct_or_better"] is False


@pytest.mark.parametrize("bad, msg", [
    ([], "returned list; expected a dict"),
    ({**tiny_task(), "slot": ""}, r"\['slot'\]: expected a non-empty str"),
    ({**tiny_task(), "mixers": ["gru", "warp"]}, r"'warp' not registered mixers; valid names: .*gru"),
    ({**tiny_task(), "metrics": {"m": 3}}, r"\['metrics'\]: expected"),
    ({**tiny_task(), "stream": 3}, r"\['stream'\]: expected fn"),
    ({**tiny_task(), "overrides": ["x"]}, r"\['overrides'\]: expected a list of 'key=value'"),
    ({**tiny_task(), "mixer_overrides": "model.mixer=null"}, r"\['mixer_overrides'\]: expected a list"),
])
def test_check_task_names_the_bad_key(bad, msg):
    with pytest.raises(ConfigError, match=msg) as e:
        bm.check_task(bad, "recsys")
    assert str(e.value).startswith("recsys: mixer_task()") and "\n" not in str(e.value)
    ok = bm.check_task({k: v for k, v in tiny_task().items() if k != "overrides"}, "recsys")
    assert ok["overrides"] == [] and ok["domain"] == "recsys"


def test_cell_overrides_leave_the_default_as_the_recipe_is():
    task = bm.check_task(tiny_task(mixer_overrides=["model.mixer=null"]), "recsys")
    assert bm.cell_overrides(task, "default", False, 5.0) == ["trainer.test_at_end=true", "trainer.max_minutes=5"]
    assert bm.cell_overrides(task, "lru", True, 0.5) == ["trainer.test_at_end=true", "model.mixer=null", "model.mixer.name=lru",
                                                         "trainer.max_minutes=0.5", f"trainer.max_steps={bm.QUICK_STEPS}"]


def test_stream_probe_notes_why_there_is_no_latency():
    run = bm.kit.Run(dir=None, cfg=None, result={}, model=object())

    def declines(model, cfg):
        raise ConfigError("streaming needs model.mixer set")

    def breaks(model, cfg):
        raise RuntimeError("shape mismatch\nmore")

    assert bm._stream_probe(lambda m, c: 0.004, run) == {"stream_ms": 4.0}
    assert bm._stream_probe(None, run)["stream_note"] == "the host cannot stream"
    assert bm._stream_probe(declines, run) == {"stream_ms": None, "stream_note": "streaming needs model.mixer set"}
    assert bm._stream_probe(breaks, run)["stream_note"] == "stream failed: RuntimeError: shape mismatch"
    assert bm._stream_probe(lambda m, c: float("nan"), run) == {"stream_ms": None, "stream_note": "stream returned nan"}
    assert bm._stream_probe(lambda m, c: 1.0, bm.kit.Run(None, None, {}, None))["stream_note"] == "no checkpoint"
