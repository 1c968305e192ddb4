"""Careless and hostile input files: every bad file gives a one-line error (or warning) that names it
and says what was expected; never a traceback, a silent wrong result, or a lost file. Readers are called
directly; the verbs that read the files run in-process on the tiny runs of conftest.py."""
import json
import zipfile
import numpy as np
import pandas as pd
import pytest
import torch
from ostinato.core import data as D
from ostinato.core.errors import DataError

from ._common import _ett, _pairs_file, _speech, _wav, cli_main, one_line, run_cli


# ----------------------------------------------------------------------------- audio
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


@pytest.mark.parametrize("reader,name,text,names", [
    ("m4.read_m4_wide", "Hourly-train.csv", "V1,V2,V3,V4\nH1,1,2,3\nH2,4,inf,6\n", [":3:", "'V3'", "not finite"]),
    ("ucr.read_ucr_tsv", "X_TRAIN.tsv", "1\t0.5\t0.25\n2\t1e300\t3\n", [":2:", "1e+300", "overflows float32"]),
    ("covid.read_jhu", "jhu.csv", "Province/State,Country/Region,Lat,Long,1/22/20,1/23/20,1/23/20\n,A,0,0,1,2,3\n",
     [":1:", "1/23/20", "increasing"]),
])
def test_benchmark_readers_reject_bad_values(tmp_path, reader, name, text, names):
    import importlib

    module, fn = reader.split(".")
    read = getattr(importlib.import_module(f"ostinato.timeseries.data.{module}"), fn)
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(DataError) as e:
        read(p)
    one_line(str(e.value), f"{p}{names[0]}", *names[1:])


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

def test_recommend_answers_in_raw_ids_after_remapping(rec_run, capsys):
    run, raw = rec_run
    code, out, err = cli_main(capsys, "recommend", run, "--user", "1", "-k", "3", "--json")
    assert code == 0, err
    items = [x["item"] for x in json.loads(out)["items"]]
    assert items and set(items) <= raw
    ckpt_state = torch.load(run / "best.pt", weights_only=True)
    assert ckpt_state["model_kwargs"]["n_items"] == 30  # not 123456789012
