"""End-to-end runs through the CLI: every test_ recipe trains one short epoch and is
evaluated; the main pipeline (train -> eval --json -> forecast --plot) runs in a subprocess."""
import json

import pandas as pd
import pytest

from ostinato.core.cli import main
from ostinato.timeseries.data.ett import SHIPPED

ETTH1 = SHIPPED / "timeseries" / "ETT" / "ETTh1.csv"


def test_chimera_train_eval_forecast(cli, tmp_path, capsys, relocate):
    out = tmp_path / "run"
    r = cli("train", "timeseries/test_chimera", "--out", out, "--quiet", "trainer.max_steps=5")  # a real subprocess
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    assert set(res["test"]) >= {"mse", "mae"} and res["steps"] == 5
    assert main(["eval", str(out), "--split", "test", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["split"] == "test" and ev["mse"] == pytest.approx(res["test"]["mse"], rel=1e-5)
    fc, png = tmp_path / "fc.csv", tmp_path / "fc.png"
    assert main(["forecast", str(out), "--csv", str(ETTH1), "--horizon", "30", "--out", str(fc), "--plot", str(png)]) == 0
    df = pd.read_csv(fc, parse_dates=["date"])
    assert len(df) == 30 and list(df.columns) == ["date", "HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    assert df["date"].iloc[0] == pd.Timestamp("2018-06-26 20:00:00")  # one hour after the last row
    assert png.stat().st_size > 1000
    bad = tmp_path / "bad.csv"
    bad.write_text("when,OT\n2020-01-01,1\n")
    capsys.readouterr()
    assert main(["forecast", str(out), "--csv", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert "no 'date' column" in err and len(err.splitlines()) == 1
    # the run folder alone, on a fresh machine (no data root; the scaler is in the checkpoint)
    far, fc2 = relocate(out), tmp_path / "fc2.csv"
    assert main(["forecast", str(far), "--csv", str(ETTH1), "--horizon", "30", "--out", str(fc2)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(fc2), pd.read_csv(fc))


def test_forecast_feeds_calendar_features_to_a_time_feature_model(tmp_path, capsys):
    out = tmp_path / "tf"
    assert main(["train", "timeseries/test_chimera", "--out", str(out), "--quiet", "trainer.max_steps=3", "model.time_features=true"]) == 0
    fc = tmp_path / "fc.csv"  # 30 > pred_len: the recursion shifts the calendar window with the forecast
    assert main(["forecast", str(out), "--csv", str(ETTH1), "--horizon", "30", "--out", str(fc)]) == 0
    df = pd.read_csv(fc)
    assert len(df) == 30 and df.drop(columns="date").notna().all().all()


@pytest.mark.parametrize(
    "recipe, keys",
    [
        ("test_dlinear", {"mse", "mae"}),
        ("test_chimera_ecg200", {"accuracy"}),
        ("test_mes_lstm", {"mse", "coverage", "mis"}),
        ("test_es_rnn", {"smape", "mase", "owa", "coverage", "msis"}),
        ("test_chimera_anomaly", {"f1", "precision", "recall"}),
    ],
)
def test_recipe_one_epoch(recipe, keys, tmp_path, capsys):
    out = tmp_path / recipe
    assert main(["train", f"timeseries/{recipe}", "--out", str(out), "--quiet", "trainer.max_steps=4"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert keys <= set(res["test"]), res["test"]
    assert all(v == v for v in res["test"].values())  # no NaN
    capsys.readouterr()
    assert main(["eval", str(out), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert keys <= set(ev)


def test_mes_lstm_forecast_has_intervals(tmp_path, capsys, relocate):
    out = tmp_path / "mes"
    assert main(["train", "timeseries/test_mes_lstm", "--out", str(out), "--quiet", "trainer.max_steps=3"]) == 0
    hist = pd.DataFrame({"date": pd.date_range("2021-01-01", periods=200, freq="h")})
    hist["OT"] = 10 + (hist.index % 24) / 10
    csv = tmp_path / "hist.csv"
    hist.to_csv(csv, index=False)
    fc = tmp_path / "fc.csv"
    assert main(["forecast", str(out), "--csv", str(csv), "--out", str(fc), "--n-samples", "20"]) == 0
    df = pd.read_csv(fc)
    assert list(df.columns) == ["date", "OT", "OT_lo", "OT_hi"] and len(df) == 12
    assert (df["OT_lo"] <= df["OT_hi"]).all()
    fc2 = tmp_path / "fc2.csv"  # the run folder alone (Holt-Winters baselines fitted on the CSV): the same forecast
    assert main(["forecast", str(relocate(out)), "--csv", str(csv), "--out", str(fc2), "--n-samples", "20"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(fc2)[["date", "OT"]], df[["date", "OT"]])


def test_bad_recipe_values_are_config_errors(tmp_path, capsys):
    assert main(["train", "timeseries/test_chimera", "--out", str(tmp_path / "x"), "model.patch_len=100"]) == 2
    assert "patch_len" in capsys.readouterr().err


def test_every_shipped_recipe_resolves():
    """Each timeseries recipe (the real ones too: chimera_etth1, mes_lstm_covid, ...) loads and
    validates: known keys, right types, registered model and dataset names."""
    from ostinato.core.recipe import list_recipes, load

    names = [n for n, _ in list_recipes("timeseries")]
    assert {"timeseries/chimera_etth1", "timeseries/chimera_ecg200", "timeseries/mes_lstm_covid",
            "timeseries/mes_lstm_m4_hourly", "timeseries/dlinear_etth1"} <= set(names)
    for n in names:
        cfg = load(n)
        assert cfg.domain == "timeseries", n
