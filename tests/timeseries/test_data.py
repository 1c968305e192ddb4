"""Loaders: ETT borders and scaler (hand-computed rows), custom CSV split, malformed CSVs,
UCR/UEA parsers, JHU date headers, M4 layout."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ostinato.core.errors import ConfigError, DataError
from ostinato.timeseries.data.covid import covid_jhu, CovidConfig, parse_jhu_date, read_jhu
from ostinato.timeseries.data.custom import CustomCSVConfig, csv_forecast, custom_borders
from ostinato.timeseries.data.ett import SHIPPED, ETTConfig, ett, ett_borders
from ostinato.timeseries.data.m4 import M4Config, m4
from ostinato.timeseries.data.ucr import UCRConfig, UEAConfig, read_uea_ts, ucr, uea

ETTH1 = SHIPPED / "timeseries" / "ETT" / "ETTh1.csv"


def test_ett_borders_hand_computed():
    # 12/4/4 months of 30 days: 8640, 2880, 2880 hourly rows; val/test start L rows early
    assert ett_borders("hour", 96) == ((0, 8640), (8544, 11520), (11424, 14400))
    assert ett_borders("hour", 336) == ((0, 8640), (8304, 11520), (11184, 14400))
    assert ett_borders("15min", 96) == ((0, 34560), (34464, 46080), (45984, 57600))


@pytest.fixture(scope="module")
def etth1():
    return ett(ETTConfig(seq_len=96, pred_len=96))


def test_ett_windows_and_scaler(etth1):
    b = etth1
    raw = pd.read_csv(ETTH1)
    vals = raw.drop(columns="date").to_numpy(np.float64)
    mean, std = vals[:8640].mean(0), vals[:8640].std(0)  # train rows only, population std
    np.testing.assert_allclose(b.meta["in_mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(b.meta["in_std"], std, rtol=1e-12)
    assert np.abs(vals[:14400].mean(0) - mean).max() > 1e-3  # a full-data scaler would differ
    # window counts: n - L - H + 1, no drop_last
    assert (len(b.train), len(b.val), len(b.test)) == (8640 - 191, 2880 + 96 - 191, 2880 + 96 - 191) == (8449, 2785, 2785)
    first, last = b.test[0], b.test[len(b.test) - 1]
    np.testing.assert_allclose(first["x"].numpy(), ((vals[11424:11520] - mean) / std), atol=1e-5)
    np.testing.assert_allclose(first["y"].numpy(), ((vals[11520:11616] - mean) / std), atol=1e-5)
    np.testing.assert_allclose(last["y"][-1].numpy(), ((vals[14399] - mean) / std), atol=1e-5)  # last test row used
    assert b.val[0]["t0"] == 8544 and b.val[0]["x"].shape == (96, 7)
    assert b.model_kwargs == {"n_vars": 7, "seq_len": 96, "pred_len": 96, "out_vars": 7}


def test_ett_features_s_and_ms():
    s = ett(ETTConfig(features="S", seq_len=48, pred_len=24))
    ms = ett(ETTConfig(features="MS", seq_len=48, pred_len=24))
    assert s.train[0]["x"].shape == (48, 1) and s.train[0]["y"].shape == (24, 1)
    assert ms.train[0]["x"].shape == (48, 7) and ms.train[0]["y"].shape == (24, 1)
    np.testing.assert_allclose(ms.train[0]["y"].numpy(), ms.train[0 + 48]["x"][:24, -1:].numpy())  # OT is last
    assert ms.model_kwargs["out_vars"] == 1 and ms.meta["columns"][-1] == "OT"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_custom_csv_split_and_dates(tmp_path):
    n = 200  # dates written like exchange_rate.csv: 1990/1/1 0:00
    df = pd.DataFrame({"date": pd.date_range("1990-01-01", periods=n, freq="D").strftime("%Y/%-m/%-d 0:00"),
                       "0": np.arange(n, dtype=float), "OT": np.arange(n, dtype=float) * 2})
    p = tmp_path / "fx.csv"
    df.to_csv(p, index=False)
    assert custom_borders(n, 24) == ((0, 140), (116, 160), (136, 200))  # 70/10/20: 140, 20, 40
    b = csv_forecast(CustomCSVConfig(path=str(p), seq_len=24, pred_len=12))
    assert len(b.test) == 40 + 24 - 36 + 1
    assert b.meta["columns"] == ["0", "OT"]


def test_exchange_rate_real(shared_data):
    b = csv_forecast(CustomCSVConfig(path="timeseries/exchange_rate/exchange_rate.csv", seq_len=96, pred_len=96), shared_data)
    n = 7588
    assert (len(b.train), len(b.test)) == (int(0.7 * n) - 191, int(0.2 * n) - 95)
    assert b.model_kwargs["n_vars"] == 8


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("time,a,OT\n2020-01-01,1,2\n", "no 'date' column"),
        ("date,a,OT\n2020-01-01,1,2\n2020-01-02,x,3\n", r":3: column 'a' value 'x' is not a number"),
        ("date,a,OT\n2020-01-01,1,2\nnot-a-date,1,3\n", r":3: date 'not-a-date' is not a date"),
    ],
)
def test_malformed_csv_one_line_errors(tmp_path, text, pattern):
    p = _write(tmp_path / "bad.csv", text)
    with pytest.raises(DataError, match=pattern) as e:
        csv_forecast(CustomCSVConfig(path=str(p), seq_len=1, pred_len=1))
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_csv_too_short_for_window(tmp_path):
    df = pd.DataFrame({"date": pd.date_range("2020", periods=50, freq="h"), "a": range(50), "OT": range(50)})
    p = tmp_path / "short.csv"
    df.to_csv(p, index=False)
    with pytest.raises(DataError, match="too short for seq_len=96") as e:
        csv_forecast(CustomCSVConfig(path=str(p), seq_len=96, pred_len=24))
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="ETT hour protocol needs at least 14400"):
        ett(ETTConfig(path=str(p)))
    with pytest.raises(ConfigError, match="features"):
        csv_forecast(CustomCSVConfig(path=str(p), features="X", seq_len=4, pred_len=2))


def test_missing_file_names_the_roots(tmp_path):
    with pytest.raises(DataError, match="not found"):
        ett(ETTConfig(path="timeseries/ETT/ETTm7.csv"), tmp_path)


def test_ucr_shipped_ecg200():
    b = ucr(UCRConfig(dataset="ECG200", val_fraction=0.2))
    assert (len(b.train), len(b.val), len(b.test)) == (80, 20, 100)
    assert b.model_kwargs == {"n_vars": 1, "seq_len": 96, "n_classes": 2}
    raw = np.loadtxt(SHIPPED / "timeseries/ucr/ECG200/ECG200_TEST.tsv")
    np.testing.assert_allclose(b.test[3]["x"][:, 0].numpy(), raw[3, 1:], atol=1e-6)
    assert int(b.test[3]["label"]) == sorted(set(raw[:, 0])).index(raw[3, 0])
    # stratified: both classes present in validation in the train proportions (31/69)
    val_labels = [int(b.val[i]["label"]) for i in range(len(b.val))]
    assert sorted(set(val_labels)) == [0, 1] and abs(sum(val_labels) - 14) <= 1


UEA_TS = """# a tiny UEA file
@problemName Tiny
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1,2,3:4,5,6:up
1,?,3,4:2,2,2,2:down
0.5,0.5:1,1:up
"""


def test_uea_ts_parser(tmp_path):
    d = tmp_path / "timeseries/uea/Tiny"
    d.mkdir(parents=True)
    (d / "Tiny_TRAIN.ts").write_text(UEA_TS)
    (d / "Tiny_TEST.ts").write_text(UEA_TS)
    x, labels, declared = read_uea_ts(d / "Tiny_TRAIN.ts")
    assert x.shape == (3, 2, 4) and labels == ["up", "down", "up"] and declared == ["up", "down"]
    assert np.isnan(x[1, 0, 1]) and np.isnan(x[0, 0, 3]) and x[1, 1, 3] == 2
    b = uea(UEAConfig(dataset="Tiny", val_fraction=0.0, normalize="none"), tmp_path)
    assert b.val is None and b.model_kwargs == {"n_vars": 2, "seq_len": 4, "n_classes": 2}
    item = b.train[1]
    assert item["x"].shape == (4, 2) and int(item["label"]) == 1  # 'down' is the second declared label
    assert item["mask"].tolist() == [True, True, True, True] and b.train[2]["mask"].tolist() == [True, True, False, False]
    (d / "Tiny_TEST.ts").write_text(UEA_TS.replace("1,2,3:4,5,6:up", "1,2,3:4,x,6:up"))
    with pytest.raises(DataError, match=r"Tiny_TEST.ts:10: value 'x' is not a number"):
        uea(UEAConfig(dataset="Tiny"), tmp_path)


def test_jhu_accepts_both_date_headers(tmp_path):
    assert parse_jhu_date("1/22/20") == parse_jhu_date("1/22/2020")
    assert parse_jhu_date("2020-01-22") is None
    head = "Province/State,Country/Region,Lat,Long"
    short = f"{head},1/22/20,1/23/20,1/24/20\n,A,0,0,1,2,3\nX,B,0,0,1,1,1\nY,B,0,0,2,2,2\n"
    long = f"{head},1/22/2020,1/23/2020,1/24/2020,1/25/2020\n,A,0,0,1,2,3,4\n,B,0,0,3,3,3,3\n"
    a = read_jhu(_write(tmp_path / "deaths.csv", short))
    b = read_jhu(_write(tmp_path / "confirmed.csv", long))
    assert list(a.index) == list(b.index[:3])
    assert a.loc[:, "B"].tolist() == [3, 3, 3]  # provinces summed
    with pytest.raises(DataError, match="not a date in M/D/YY or M/D/YYYY"):
        read_jhu(_write(tmp_path / "bad.csv", f"{head},22.1.20\n,A,0,0,1\n"))


def test_covid_real_sadc(shared_data):
    b = covid_jhu(CovidConfig(countries=["South Africa", "Botswana"], holt_winters=False), shared_data)
    assert b.meta["dates"] == ["2020-01-22", "2022-08-04"]  # confirmed (M/D/YYYY) ends earlier than deaths (M/D/YY)
    n = 926
    n_tr, n_va = int(0.85 * n), int(0.05 * n)
    assert len(b.test) == 2 * (n - n_tr - n_va)  # horizon 1: one window per test day and country
    assert b.test[0]["x"].shape == (14, 2) and b.test[0]["mase_scale"].shape == (2,)


def test_m4_wide_layout(tmp_path):
    d = tmp_path / "timeseries/m4"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows_tr, rows_te = [], []
    for i, n in enumerate([140, 120]):
        s = 100 + 10 * np.sin(np.arange(n + 48) * 2 * np.pi / 24) + rng.normal(0, 1, n + 48)
        rows_tr.append([f"H{i + 1}"] + list(s[:n]) + [None] * (140 - n))
        rows_te.append([f"H{i + 1}"] + list(s[n:]))
    pd.DataFrame(rows_tr, columns=[f"V{j + 1}" for j in range(141)]).to_csv(d / "Hourly-train.csv", index=False)
    pd.DataFrame(rows_te, columns=[f"V{j + 1}" for j in range(49)]).to_csv(d / "Hourly-test.csv", index=False)
    b = m4(M4Config(frequency="Hourly"), tmp_path)
    assert b.model_kwargs == {"n_vars": 1, "seq_len": 96, "pred_len": 48, "out_vars": 1}
    assert len(b.val) == 2 and len(b.test) == 2
    item = b.test[1]  # series H2: input = last 96 training values, target = its 48 test values
    sc, loc = b.meta["scale"][1, 0], b.meta["loc"][1, 0]
    np.testing.assert_allclose(item["x"][:, 0].numpy() * sc + loc, np.array(rows_tr[1][1:121][-96:], float), rtol=1e-5)
    np.testing.assert_allclose(item["y"][:, 0].numpy() * sc + loc, np.array(rows_te[1][1:], float), rtol=1e-5)
    assert b.val[1]["y"].shape == (48, 1) and b.val[1]["naive2"].shape == (48, 1)
    train_cuts = {int(c) for i, c in b.train.index if i == 1}
    assert max(train_cuts) == 120 - 48 - 48  # training targets end before the validation horizon
    pd.DataFrame([["H1", "x"]], columns=["V1", "V2"]).to_csv(d / "Hourly-test.csv", index=False)
    with pytest.raises(DataError, match=r"Hourly-test.csv:2: column 'V2' value 'x' is not a number"):
        m4(M4Config(), tmp_path)
