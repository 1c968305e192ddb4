"""Every verb: usage mistakes, a bad --out, another domain's run. Each case: the exit code (2 usage/config,
1 runtime), one line on stderr that names the bad input, no traceback, nothing already on disk lost;
checked before any work."""
from pathlib import Path
import pytest

from ._common import _ett, _kept, _speech, _wav, cli_code, one_line, run_cli


@pytest.mark.parametrize("args,code,names", [
    (("nonsense-verb",), 2, ["nonsense-verb"]),
    (("train", "core/toy_seq", "--bogus-flag"), 2, ["--bogus-flag"]),
    (("train", "no/such/recipe.yaml"), 2, ["no/such/recipe.yaml"]),
    (("train", "core/toy_seq", "trainer.max_epochs"), 2, ["trainer.max_epochs", "="]),
    (("train", "core/toy_seq", "trainer.max_epochs=abc"), 2, ["trainer.max_epochs", "abc", "integer"]),
    (("ls", "gizmos"), 2, ["gizmos", "models"]),
    (("bench", "astrology"), 2, ["astrology", "vision"]),
    (("data", "verify", "no_such_dataset"), 2, ["no_such_dataset"]),
])
def test_usage_mistakes_are_one_line(capsys, args, code, names):
    c, _, err = cli_code(capsys, *args)
    assert c == code, err
    one_line(err, *names)


def test_recipe_that_is_not_a_mapping(tmp_path, capsys):
    p = tmp_path / "list.yaml"
    p.write_text("- domain: vision\n- model: x\n")
    c, _, err = cli_code(capsys, "train", p, "--out", tmp_path / "run")
    assert c == 2
    one_line(err, p, "mapping")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("where", ["file", "missing"])
def test_data_root_must_be_a_folder(tmp_path, capsys, a_file, where):
    root = a_file if where == "file" else tmp_path / "nowhere"
    c, _, err = cli_code(capsys, "train", "core/toy_seq", "--data-root", root, "--out", tmp_path / "run")
    assert c == 2
    one_line(err, "--data-root", root, "folder")
    assert not (tmp_path / "run").exists()
    _kept(a_file)


@pytest.mark.parametrize("where", ["file", "under_file", "proc"])
def test_train_out_must_be_a_writable_folder(tmp_path, capsys, a_file, where):
    out = {"file": a_file, "under_file": a_file / "run", "proc": Path("/proc/ostinato_run")}[where]
    c, _, err = cli_code(capsys, "train", "core/toy_seq", "--out", out, "--quiet")
    assert c == 2
    one_line(err, "--out", out, "expected a run folder")
    _kept(a_file)


@pytest.mark.parametrize("where", ["folder", "under_file"])
def test_bench_out_is_checked_before_the_benchmark_runs(tmp_path, capsys, a_file, monkeypatch, where):
    import ostinato.core.bench

    def never(**kw):
        raise AssertionError("the benchmark ran")

    monkeypatch.setattr(ostinato.core.bench, "run", never)
    out = tmp_path if where == "folder" else a_file / "bench.json"
    c, _, err = cli_code(capsys, "bench", "core", "--quick", "--out", out)
    assert c == 2
    one_line(err, "--out", out, "JSON file")
    _kept(a_file)


def test_eval_of_an_empty_folder_or_a_text_file(tmp_path, capsys, a_file):
    (tmp_path / "empty").mkdir()
    c, _, err = cli_code(capsys, "eval", tmp_path / "empty")
    assert c == 2
    one_line(err, tmp_path / "empty", "best.pt")
    c, _, err = cli_code(capsys, "eval", a_file)  # not a checkpoint at all: a usage mistake
    assert c == 2
    one_line(err, a_file, "not a checkpoint", "run directory")
    _kept(a_file)


def test_debug_shows_the_traceback(tmp_path):
    r = run_cli("--debug", "eval", tmp_path, timeout=60)
    assert r.returncode != 0 and "Traceback" in r.stderr and "ConfigError" in r.stderr


# vision
def test_eval_split_nonsense_is_one_line_in_a_real_shell(vision_run):
    r = run_cli("eval", vision_run, "--split", "nonsense", timeout=60)
    assert r.returncode == 2
    line = one_line(r.stderr, "nonsense", "--split", "val")
    assert "usage:" not in r.stderr and "--help" in line


def test_eval_save_dir_that_is_a_file(vision_run, capsys, a_file):
    c, _, err = cli_code(capsys, "eval", vision_run, "--save-dir", a_file)
    assert c == 2
    one_line(err, "--save-dir", a_file, "folder")
    _kept(a_file)


def test_eval_with_an_unknown_override_key(vision_run, capsys):
    c, _, err = cli_code(capsys, "eval", vision_run, "model.no_such_knob=3")
    assert c == 2
    one_line(err, "no_such_knob")


def test_eval_with_data_root_a_file(vision_run, capsys, a_file):
    c, _, err = cli_code(capsys, "eval", vision_run, "--data-root", a_file)
    assert c == 2
    one_line(err, "--data-root", a_file)


# every domain verb checks the run's domain and model first
@pytest.mark.parametrize("verb,run,theirs,wanted", [
    ("recommend", "ts", "timeseries", "recsys"),
    ("recommend", "vision", "vision", "recsys"),
    ("recommend", "control", "control", "recsys"),
    ("forecast", "audio", "audio", "timeseries"),
    ("forecast", "control", "control", "timeseries"),
    ("enhance", "rec", "recsys", "audio"),
    ("enhance", "vision", "vision", "audio"),
])
def test_domain_verbs_check_the_runs_domain(request, tmp_path, capsys, verb, run, theirs, wanted):
    fixture = {"ts": "ts_run", "rec": "rec_run", "audio": "audio_run", "vision": "vision_run", "control": "control_run"}[run]
    r = request.getfixturevalue(fixture)
    r = r[0] if isinstance(r, tuple) else r
    wav = _wav(tmp_path / "in.wav", _speech())
    extra = {"recommend": ["--user", "1"], "forecast": ["--csv", _ett(tmp_path), "--out", tmp_path / "fc.csv"],
             "enhance": [wav, "-o", tmp_path / "out"]}[verb]
    c, _, err = cli_code(capsys, verb, r, *extra)
    assert c == 2, err
    line = one_line(err, verb, r, f"{theirs} run", f"expected a{'n' if wanted[0] in 'aeiou' else ''} {wanted} run")
    assert "model " in line
    assert not (tmp_path / "fc.csv").exists() and not (tmp_path / "out").exists()


def test_domain_verb_on_another_domain_in_a_real_shell(ts_run):
    r = run_cli("recommend", ts_run[0], "--user", "1", timeout=60)
    assert r.returncode == 2
    one_line(r.stderr, ts_run[0], "timeseries run", "test_dlinear", "recsys")


def test_check_run_names_the_model_a_verb_cannot_use():
    from ostinato.core.errors import ConfigError
    from ostinato.core.train import check_run
    from ostinato.timeseries.cli import _FORECASTER

    cfg = {"domain": "timeseries", "model": {"name": "test_chimera", "task": "classify"}, "data": {"name": "ucr"}}
    with pytest.raises(ConfigError) as e:
        check_run(cfg, "runs/ecg", "timeseries", "forecast", _FORECASTER)
    one_line(str(e.value), "forecast", "runs/ecg", "test_chimera", "forecasting run")
    check_run({"domain": "timeseries", "model": {"name": "dlinear"}, "data": {"seq_len": 96}}, "r", "timeseries",
              "forecast", _FORECASTER)  # a forecaster passes


# control
@pytest.mark.parametrize("args,names", [
    (("cue_task", "--episodes", "0"), ["--episodes 0", "positive"]),
    (("NoSuchEnv-v0", "--episodes", "1"), ["NoSuchEnv-v0", "ls envs"]),
    (("cue_task", "--episodes", "1", "--image-size", "-4"), ["--image-size -4"]),
])
def test_control_collect_rejects_bad_arguments_before_writing(tmp_path, capsys, args, names):
    c, _, err = cli_code(capsys, "control", "collect", *args, "--out", tmp_path / "demos")
    assert c == 2
    one_line(err, *names)
    assert not (tmp_path / "demos").exists()


def test_control_collect_out_under_a_file(capsys, a_file):
    c, _, err = cli_code(capsys, "control", "collect", "cue_task", "--episodes", "1", "--out", a_file / "demos")
    assert c == 2
    one_line(err, "--out", a_file, "folder")
    _kept(a_file)


def test_control_eval_with_a_bad_split(control_run, capsys):
    c, _, err = cli_code(capsys, "eval", control_run, "--split", "train")
    assert c == 2
    one_line(err, "--split", "train")


# recsys
@pytest.mark.parametrize("user,k,names", [("424242", "3", ["--user", "424242"]), ("abc", "3", ["--user", "abc", "integer"]),
                                          ("1", "0", ["-k 0", "positive"]), ("1", "-5", ["-k -5"])])
def test_recommend_rejects_unknown_users_and_bad_k(rec_run, capsys, user, k, names):
    c, out, err = cli_code(capsys, "recommend", rec_run[0], "--user", user, "-k", k)
    assert c == 2 and out == ""
    one_line(err, *names)


# timeseries
def test_forecast_csv_missing_or_lacking_columns(ts_run, tmp_path, capsys):
    c, _, err = cli_code(capsys, "forecast", ts_run[0], "--csv", tmp_path / "nope.csv")
    assert c == 1
    one_line(err, tmp_path / "nope.csv", "no such file")

    def edit(df):
        df.drop(columns=["MULL", "OT"], inplace=True)

    p = _ett(tmp_path, edit=edit)
    c, _, err = cli_code(capsys, "forecast", ts_run[0], "--csv", p, "--out", tmp_path / "fc.csv")
    assert c == 1
    one_line(err, p, "MULL", "OT", "missing column")
    assert not (tmp_path / "fc.csv").exists()


@pytest.mark.parametrize("flag,value,names", [("--out", "under_file", ["--out", "CSV file"]),
                                             ("--out", "folder", ["--out", "is a folder"]),
                                             ("--plot", "under_file", ["--plot", "PNG"]),
                                             ("--horizon", "-1", ["--horizon -1"]),
                                             ("--alpha", "1.5", ["--alpha 1.5"])])
def test_forecast_rejects_bad_options_before_loading(ts_run, tmp_path, capsys, a_file, flag, value, names):
    value = {"under_file": a_file / "x", "folder": tmp_path}.get(value, value)
    c, _, err = cli_code(capsys, "forecast", ts_run[0], "--csv", _ett(tmp_path), flag, value)
    assert c == 2
    one_line(err, *names)
    _kept(a_file)
    assert not (tmp_path / "look_forecast.csv").exists()


# audio
def test_enhance_on_a_non_wav_or_missing_file(audio_run, tmp_path, capsys, a_file):
    c, _, err = cli_code(capsys, "enhance", audio_run, a_file, "-o", tmp_path / "out")
    assert c == 1
    one_line(err, a_file)
    _kept(a_file)
    c, _, err = cli_code(capsys, "enhance", audio_run, tmp_path / "gone.wav", "-o", tmp_path / "out")
    assert c == 1
    one_line(err, tmp_path / "gone.wav", "no such file")


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_enhance_output_must_be_a_folder(audio_run, tmp_path, capsys, a_file, where):
    wav = _wav(tmp_path / "in.wav", _speech())
    out = a_file if where == "file" else a_file / "out"
    c, _, err = cli_code(capsys, "enhance", audio_run, wav, "-o", out)
    assert c == 2
    one_line(err, "-o", out, "folder")
    _kept(a_file)


@pytest.mark.parametrize("flag,value", [("--threads", "-1"), ("--chunk-seconds", "0")])
def test_enhance_rejects_bad_numbers(audio_run, tmp_path, capsys, flag, value):
    wav = _wav(tmp_path / "in.wav", _speech())
    c, _, err = cli_code(capsys, "enhance", audio_run, wav, "-o", tmp_path / "out", flag, value)
    assert c == 2
    one_line(err, f"{flag} {value}")
    assert not (tmp_path / "out").exists()


# the helper
def test_out_path_helpers_create_nothing(tmp_path, a_file):
    from ostinato.core.errors import ConfigError
    from ostinato.core.paths import check_out_dir, check_out_file

    assert check_out_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert check_out_file(tmp_path / "c" / "d.json") == tmp_path / "c" / "d.json"
    assert check_out_file(a_file) == a_file  # an existing file may be overwritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]
    for fn, p, words in ((check_out_dir, a_file, "existing file"), (check_out_file, tmp_path, "is a folder"),
                         (check_out_dir, Path("/proc/self/nope"), "cannot write"), (check_out_dir, "", "empty")):
        with pytest.raises(ConfigError) as e:
            fn(p, "the thing")
        one_line(str(e.value), p, words, "the thing")
