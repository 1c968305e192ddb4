"""Careless and hostile input: every bad file gives a one-line error (or warning) that names it
and says what was expected; never a traceback, a silent wrong result, or a lost file.

Readers are called directly; CLI verbs run in-process through ``ostinato.core.cli.main`` (one
tiny trained run per domain, module-scoped); a few cases run the real CLI in a subprocess.
The fault test kills a process in the middle of a checkpoint write.
"""
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from ostinato.core import checkpoint as ckpt
from ostinato.core import data as D
from ostinato.core.errors import DataError


ROOT = Path(__file__).resolve().parents[1]
ETTH1 = ROOT / "timeseries" / "samples" / "timeseries" / "ETT" / "ETTh1.csv"


def run_cli(*args, timeout=120):
    """The real `ostinato ARGS` in a subprocess (as a user runs it)."""
    return subprocess.run([sys.executable, "-m", "ostinato.core.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


def one_line(text: str, *names) -> str:
    """The stderr of a failed command: 1 line (at most 3), no traceback, naming ``names``."""
    lines = [x for x in text.strip().splitlines() if x.strip()]
    assert 1 <= len(lines) <= 3, text
    assert "Traceback" not in text, text
    for n in names:
        assert str(n) in text, (n, text)
    return lines[-1]


def cli_main(capsys, *args):
    """In-process `ostinato ARGS` -> (exit code, stdout, stderr)."""
    from ostinato.core.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


# ----------------------------------------------------------------------------- audio
def _wav(path, x, sr=16000, subtype="FLOAT"):
    sf.write(str(path), np.asarray(x, np.float32), sr, subtype=subtype)
    return path


def _speech(n=8000, seed=0):
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype(np.float32)


@pytest.mark.parametrize("bad,at", [(np.nan, 100), (np.inf, 8000), (-np.inf, 7999)])
def test_audio_reader_rejects_non_finite_samples(tmp_path, bad, at):
    from ostinato.audio.data.wavio import read_audio

    x = _speech(16000)
    x[at] = bad
    p = _wav(tmp_path / "bad.wav", x)
    with pytest.raises(DataError) as e:
        read_audio(p, 16000)
    msg = one_line(str(e.value), p, f"sample {at}", f"t = {at / 16000:.3f} s")
    assert "finite" in msg


def test_audio_reader_warns_on_a_truncated_wav(tmp_path, capsys):
    from ostinato.audio.data.wavio import read_audio

    full = _wav(tmp_path / "full.wav", _speech(16000), subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[: 44 + 2 * 6000])  # header + 6000 of 16000 samples
    capsys.readouterr()
    x, _ = read_audio(cut, 16000)
    x2, _ = read_audio(cut, 16000)  # warned once per file
    assert len(x) == len(x2) == 6000
    err = capsys.readouterr().err
    line = one_line(err, cut, "16000", "6000")
    assert "truncated" in line and "warning" in line
    capsys.readouterr()
    read_audio(full, 16000)
    assert capsys.readouterr().err == ""  # a whole file: no warning


def test_enhance_stream_reader_checks_the_whole_file_first(tmp_path):
    from ostinato.audio.enhance import read_blocks

    x = _speech(20000)
    x[19000] = np.nan  # in the last block
    p = _wav(tmp_path / "late_nan.wav", x)
    with pytest.raises(DataError) as e:
        read_blocks(p, 4096)  # raised before any block is handed out
    one_line(str(e.value), p, "sample 19000")


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory):
    from ostinato.core.cli import main

    out = tmp_path_factory.mktemp("hostile_audio") / "run"
    assert main(["train", "audio/test_frcrn", "--out", str(out), "--quiet", "trainer.test_at_end=false"]) == 0
    return out


def test_enhance_cli_rejects_nan_wav_and_keeps_old_output(audio_run, tmp_path, capsys):
    x = _speech(16000)
    x[4000] = np.nan
    p = _wav(tmp_path / "noisy.wav", x)
    outdir = tmp_path / "out"
    outdir.mkdir()
    old = outdir / "noisy.wav"
    old.write_bytes(b"an earlier result")
    code, _, err = cli_main(capsys, "enhance", audio_run, p, "-o", outdir)
    assert code == 1
    one_line(err, p, "sample 4000")
    assert old.read_bytes() == b"an earlier result"


def test_enhance_cli_subprocess_inf_wav(audio_run, tmp_path):
    x = _speech(8000)
    x[10] = np.inf
    p = _wav(tmp_path / "inf.wav", x)
    r = run_cli("enhance", audio_run, p, "-o", tmp_path / "out", timeout=120)
    assert r.returncode == 1, r.stderr
    one_line(r.stderr, p, "sample 10", "inf")
    assert not (tmp_path / "out" / "inf.wav").exists()


# ----------------------------------------------------------------------------- timeseries
def _ett(tmp_path, name="look.csv", n=60, edit=None):
    df = pd.read_csv(ETTH1).iloc[-n:].reset_index(drop=True)
    if edit:
        edit(df)
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


@pytest.mark.parametrize("value,kind", [("inf", "not finite"), ("-inf", "not finite"),
                                        ("1e308", "overflows float32"), ("1e39", "overflows float32")])
def test_csv_reader_rejects_non_finite_and_float32_overflow(tmp_path, value, kind):
    from ostinato.timeseries.data.windows import read_dated_csv

    def edit(df):
        df["OT"] = df["OT"].astype(object)
        df.loc[7, "OT"] = value

    p = _ett(tmp_path, edit=edit)
    with pytest.raises(DataError) as e:
        read_dated_csv(p)
    one_line(str(e.value), f"{p}:9:", "'OT'", kind)  # row 7 = line 9 (header is line 1)


@pytest.mark.parametrize("how,words", [("dup", "repeats"), ("back", "before")])
def test_csv_reader_rejects_non_increasing_dates(tmp_path, how, words):
    from ostinato.timeseries.data.windows import read_dated_csv

    def edit(df):
        df.loc[20, "date"] = df.loc[19, "date"] if how == "dup" else df.loc[10, "date"]

    p = _ett(tmp_path, edit=edit)
    with pytest.raises(DataError) as e:
        read_dated_csv(p)
    one_line(str(e.value), f"{p}:22:", words, "increasing")


def test_m4_reader_rejects_inf(tmp_path):
    from ostinato.timeseries.data.m4 import read_m4_wide

    p = tmp_path / "Hourly-train.csv"
    p.write_text("V1,V2,V3,V4\nH1,1,2,3\nH2,4,inf,6\n")
    with pytest.raises(DataError) as e:
        read_m4_wide(p)
    one_line(str(e.value), f"{p}:3:", "'V3'", "not finite")


def test_ucr_reader_rejects_inf(tmp_path):
    from ostinato.timeseries.data.ucr import read_ucr_tsv

    p = tmp_path / "X_TRAIN.tsv"
    p.write_text("1\t0.5\t0.25\n2\t1e300\t3\n")
    with pytest.raises(DataError) as e:
        read_ucr_tsv(p)
    one_line(str(e.value), f"{p}:2:", "1e+300", "overflows float32")


def test_jhu_reader_rejects_repeated_dates(tmp_path):
    from ostinato.timeseries.data.covid import read_jhu

    p = tmp_path / "jhu.csv"
    p.write_text("Province/State,Country/Region,Lat,Long,1/22/20,1/23/20,1/23/20\n,A,0,0,1,2,3\n")
    with pytest.raises(DataError) as e:
        read_jhu(p)
    one_line(str(e.value), f"{p}:1:", "1/23/20", "increasing")


@pytest.fixture(scope="module")
def ts_run(tmp_path_factory):
    """test_dlinear trained on a copy of ETTh1 that fails its declared checksum: the stderr of
    the run (the warning) and the run folder."""
    import contextlib
    import io

    from ostinato.core.cli import main

    tmp = tmp_path_factory.mktemp("hostile_ts")
    root = tmp / "root"
    f = root / "timeseries" / "ETT" / "ETTh1.csv"
    f.parent.mkdir(parents=True)
    lines = ETTH1.read_text().splitlines()
    lines[-1] += "1"  # one more digit in the last value: still a valid CSV, not the declared file
    f.write_text("\n".join(lines) + "\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["train", "timeseries/test_dlinear", "--out", str(tmp / "run"), "--quiet",
                     "--data-root", str(root)])
    assert code == 0, err.getvalue()
    return tmp / "run", f, err.getvalue()


def test_training_on_a_file_failing_its_checksum_warns_once(ts_run):
    _, f, err = ts_run
    hits = [x for x in err.splitlines() if "checksum" in x]
    assert len(hits) == 1, err
    assert str(f) in hits[0] and "expected" in hits[0] and "OSTINATO_STRICT_DATA" in hits[0]


def test_strict_data_makes_a_failing_checksum_an_error(ts_run, tmp_path, capsys, monkeypatch):
    _, f, _ = ts_run
    monkeypatch.setenv("OSTINATO_STRICT_DATA", "1")
    code, _, err = cli_main(capsys, "train", "timeseries/test_dlinear", "--out", tmp_path / "run", "--quiet",
                            "--data-root", f.parents[2])
    assert code == 1
    one_line(err, f, "checksum")
    assert not (tmp_path / "run" / "best.pt").exists()


def test_strict_data_flag_makes_a_failing_checksum_an_error(ts_run, tmp_path, capsys, monkeypatch):
    _, f, _ = ts_run
    monkeypatch.setenv("OSTINATO_STRICT_DATA", "0")  # off; the flag turns it on (restored after the test)
    code, _, err = cli_main(capsys, "train", "timeseries/test_dlinear", "--out", tmp_path / "run", "--quiet",
                            "--strict-data", "--data-root", f.parents[2])
    assert code == 1
    one_line(err, f, "checksum")
    assert not (tmp_path / "run" / "best.pt").exists()


def test_forecast_rejects_inf_in_the_look_back_and_keeps_old_output(ts_run, tmp_path, capsys):
    run = ts_run[0]

    def edit(df):
        df.loc[50, "HUFL"] = np.inf

    p = _ett(tmp_path, edit=edit)
    dest = tmp_path / "look_forecast.csv"
    dest.write_text("an earlier forecast\n")
    code, _, err = cli_main(capsys, "forecast", run, "--csv", p)
    assert code == 1
    one_line(err, f"{p}:52:", "HUFL")
    assert dest.read_text() == "an earlier forecast\n"


def test_forecast_rejects_duplicated_dates(ts_run, tmp_path, capsys):
    def edit(df):
        df.loc[40, "date"] = df.loc[39, "date"]

    p = _ett(tmp_path, edit=edit)
    code, _, err = cli_main(capsys, "forecast", ts_run[0], "--csv", p, "--out", tmp_path / "fc.csv")
    assert code == 1
    one_line(err, f"{p}:42:", "repeats")
    assert not (tmp_path / "fc.csv").exists()


def test_forecast_on_a_good_file_still_works(ts_run, tmp_path, capsys):
    p = _ett(tmp_path)
    code, _, err = cli_main(capsys, "forecast", ts_run[0], "--csv", p, "--out", tmp_path / "fc.csv")
    assert code == 0, err
    out = pd.read_csv(tmp_path / "fc.csv")
    assert len(out) == 12 and np.isfinite(out.drop(columns="date").to_numpy()).all()
    assert (pd.to_datetime(out["date"]).diff().dropna() > pd.Timedelta(0)).all()


# ----------------------------------------------------------------------------- recsys
def _pairs_file(path, pairs):
    path.write_text("".join(f"{u} {i}\n" for u, i in pairs))
    return path


SPARSE = [(1, 1), (1, 2), (1, 99999999999), (1, 3), (2, 2), (2, 99999999999), (2, 1), (2, 3),
          (3, 3), (3, 1), (3, 2), (3, 99999999999)]


def test_sasrec_huge_item_id_is_remapped(tmp_path):
    from ostinato.recsys.data.sasrec_txt import read_sasrec_txt

    d = read_sasrec_txt(_pairs_file(tmp_path / "s.txt", SPARSE))
    assert d.n_items == 4 and d.items.max() == 4  # not 99999999999 rows
    assert d.item_label(d.items[:4]).tolist() == [1, 2, 99999999999, 3]


def test_dense_ids_are_kept_bit_identical(tmp_path):
    from ostinato.recsys.data.sasrec_txt import read_sasrec_txt

    rng = np.random.default_rng(0)
    pairs = [(u, int(i)) for u in range(1, 30) for i in rng.permutation(np.arange(1, 41))[:6]]
    pairs += [(99, i) for i in range(1, 41)]  # every id 1..40 used
    d = read_sasrec_txt(_pairs_file(tmp_path / "d.txt", pairs))
    assert d.item_ids is None and d.n_items == 40
    assert d.items.tolist() == [i for _, i in pairs]


def test_s3rec_huge_item_id_is_remapped(tmp_path):
    from ostinato.recsys.data.s3rec_txt import read_s3rec_txt

    p = tmp_path / "b.txt"
    p.write_text("1 5 99999999999 7\n2 7 5 99999999999\n")
    d = read_s3rec_txt(p)
    assert d.n_items == 3 and d.item_label(d.items).tolist() == [5, 99999999999, 7, 7, 5, 99999999999]


@pytest.mark.parametrize("reader,text", [("sasrec", "1 1\n1 2\n1 99999999999999999999\n"),
                                         ("s3rec", "1 1 2\n2 3 99999999999999999999\n")])
def test_ids_beyond_int64_are_a_one_line_error(tmp_path, reader, text):
    from ostinato.recsys.data.s3rec_txt import read_s3rec_txt
    from ostinato.recsys.data.sasrec_txt import read_sasrec_txt

    p = tmp_path / "x.txt"
    p.write_text(text)
    with pytest.raises(DataError) as e:
        (read_sasrec_txt if reader == "sasrec" else read_s3rec_txt)(p)
    one_line(str(e.value), f"{p}:", "2^63")


def test_movielens_zip_member_is_bounded(tmp_path, monkeypatch):
    from ostinato.recsys.data.movielens import read_ratings

    z = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as f:
        f.writestr("ml-1m/ratings.dat", "1::1::5::1\n" * 20000)  # 220 kB, compresses to ~1 kB
    assert len(read_ratings(z)) == 20000
    monkeypatch.setattr(D, "MAX_ZIP_MEMBER", 100_000)
    with pytest.raises(DataError) as e:
        read_ratings(z)
    one_line(str(e.value), z, "ratings.dat", "100000", "OSTINATO_MAX_ZIP_MEMBER")


def test_zip_member_that_lies_about_its_size_is_bounded(tmp_path):
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as f:
        f.writestr("u.data", b"\0" * 1_000_000)
    raw = bytearray(z.read_bytes())  # shrink the declared uncompressed size in both headers
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = raw.index(sig)
        raw[i + off : i + off + 4] = (1000).to_bytes(4, "little")
    z.write_bytes(bytes(raw))
    with pytest.raises(DataError) as e:
        D.read_zip_member(z, "u.data", limit=10_000)
    one_line(str(e.value), z, "u.data")


@pytest.fixture(scope="module")
def rec_run(tmp_path_factory):
    from ostinato.core.cli import main

    tmp = tmp_path_factory.mktemp("hostile_rec")
    rng = np.random.default_rng(0)
    raw = np.array([7, 3, 123456789012, *(10**10 + 977 * np.arange(27))])  # 30 items, ids up to 1.2e11
    pairs = [(u, int(raw[j])) for u in range(1, 41) for j in rng.permutation(30)[:6]]
    f = _pairs_file(tmp / "sparse.txt", pairs)
    out = tmp / "run"
    recipe = tmp / "sparse.yaml"
    recipe.write_text(f"""domain: recsys
model: {{name: test_sasrec}}
data: {{name: sasrec_txt, path: {f}, maxlen: 8, batch_size: 32}}
optim: {{name: adam, lr: 1.0e-2}}
trainer: {{max_epochs: 1, monitor: sampled_ndcg@10, mode: max, test_at_end: false}}
eval: {{protocol: sampled, n_negatives: 2}}
""")
    assert main(["train", str(recipe), "--out", str(out), "--quiet"]) == 0
    return out, set(raw.tolist())


def test_recommend_answers_in_raw_ids_after_remapping(rec_run, capsys):
    run, raw = rec_run
    code, out, err = cli_main(capsys, "recommend", run, "--user", "1", "-k", "3", "--json")
    assert code == 0, err
    items = [x["item"] for x in json.loads(out)["items"]]
    assert items and set(items) <= raw
    ckpt_state = torch.load(run / "best.pt", weights_only=True)
    assert ckpt_state["model_kwargs"]["n_items"] == 30  # not 123456789012


# ----------------------------------------------------------------------------- core: data, checkpoints
def test_data_download_needs_a_name_or_all():
    r = run_cli("data", "download", timeout=60)
    assert r.returncode == 2
    one_line(r.stderr, "download", "--all")


def test_declared_file_without_checksum_is_named_once(tmp_path, capsys):
    f = tmp_path / "recsys" / "movielens" / "ml-1m.zip"  # declared with no checksum
    f.parent.mkdir(parents=True)
    f.write_bytes(b"PK")
    import ostinato.recsys.data.movielens  # noqa: F401  (declares it)

    capsys.readouterr()
    assert D.locate("recsys/movielens/ml-1m.zip", tmp_path) == f
    assert D.locate("recsys/movielens/ml-1m.zip", tmp_path) == f
    one_line(capsys.readouterr().err, f, "no checksum")


def test_download_does_not_silently_trust_a_file_already_on_disk(tmp_path, capsys):
    spec = D.DatasetSpec(name="hostile_fixture", domain="core", source="-", licence="-",
                         files=(D.FileSpec("hostile/already.bin", url="http://127.0.0.1:9/never"),))
    f = tmp_path / "hostile" / "already.bin"
    f.parent.mkdir()
    f.write_bytes(b"whatever was there")
    capsys.readouterr()
    assert D.download(spec, tmp_path) == [f]  # kept, not fetched
    one_line(capsys.readouterr().err, f, "no checksum")
    assert f.read_bytes() == b"whatever was there"


def test_checkpoint_load_never_suggests_unsafe_loading(tmp_path, capsys):
    import datetime

    foreign = tmp_path / "foreign.pt"
    torch.save({"when": datetime.datetime(2020, 1, 1)}, foreign)
    pick = tmp_path / "pickle.pt"
    pick.write_bytes(pickle.dumps({"a": 1}))
    torn = tmp_path / "torn.pt"
    torch.save({"w": torch.zeros(1000)}, torn)
    torn.write_bytes(torn.read_bytes()[:300])
    for p, words in ((foreign, "datetime.datetime"), (pick, "pickled"), (torn, "truncated or corrupted")):
        with pytest.raises(DataError) as e:
            ckpt.load(p)
        msg = one_line(str(e.value), p, words, "expected an ostinato checkpoint")
        assert "weights_only=False" not in msg and "weights_only` set to `False" not in msg
        assert "trust" not in msg and "\x1b" not in msg
    code, _, err = cli_main(capsys, "eval", foreign)
    assert code == 1
    msg = one_line(err, foreign)
    assert "False" not in msg


_WRITER = r"""
import sys, torch
from ostinato.core import checkpoint as ckpt
path = sys.argv[1]
ckpt.save({"gen": 0, "w": torch.zeros(10)}, path)
print("old", flush=True)
g = 0
while True:
    g += 1
    print("writing", g, flush=True)
    ckpt.save({"gen": g, "w": torch.full((6_000_000,), float(g))}, path)
"""


@pytest.mark.parametrize("delay", [0.0, 0.05])
def test_killed_checkpoint_write_leaves_old_or_new_never_broken(tmp_path, delay):
    path = tmp_path / "last.pt"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert proc.stdout.readline().strip() == "old"
        assert proc.stdout.readline().startswith("writing 1")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
    state = ckpt.load(path)  # the old file or a whole new one
    g = state["gen"]
    if g == 0:
        assert state["w"].shape == (10,)
    else:
        assert state["w"].shape == (6_000_000,) and bool((state["w"] == g).all())
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["last.pt"]


# ----------------------------------------------------------------------------- every verb: usage, --out, the run's domain
# Each case: the exit code (2 usage/config, 1 runtime), one line on stderr that names the bad
# input, no traceback, nothing already on disk lost; checked before any work.
def cli_code(capsys, *args):
    """cli_main, but an argparse usage error (SystemExit) is an exit code too."""
    try:
        return cli_main(capsys, *args)
    except SystemExit as e:
        out = capsys.readouterr()
        return e.code, out.out, out.err


@pytest.fixture(scope="module")
def vision_run(tmp_path_factory):
    from ostinato.core.cli import main

    out = tmp_path_factory.mktemp("hostile_vision") / "run"
    assert main(["train", "vision/test_convlstm", "--out", str(out), "--quiet", "trainer.test_at_end=false"]) == 0
    return out


@pytest.fixture(scope="module")
def control_run(tmp_path_factory):
    from ostinato.core.cli import main

    out = tmp_path_factory.mktemp("hostile_control") / "run"
    assert main(["train", "control/test_muvla_cue_task", "--out", str(out), "--quiet", "trainer.test_at_end=false"]) == 0
    return out


@pytest.fixture
def a_file(tmp_path):
    f = tmp_path / "precious.txt"
    f.write_text("keep me\n")
    return f


def _kept(f):
    assert f.read_text() == "keep me\n"


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
