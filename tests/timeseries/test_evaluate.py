"""The evaluator: TSLib scale conventions (normalised vs inverse), interval coverage as
counted from the model's own intervals, and the per-series (M4) protocol."""
import pytest
import torch

from ostinato.core import create_model
from ostinato.core.config import from_dict
from ostinato.timeseries import metrics as M
from ostinato.timeseries.data.synthetic import SyntheticForecastConfig, SyntheticSeriesConfig, synthetic_forecast, synthetic_series
from ostinato.timeseries.evaluate import TimeseriesEvalConfig, evaluate


class _Cfg:
    def __init__(self, **ev):
        self.eval = from_dict(TimeseriesEvalConfig, ev)  # evaluate reads the run's typed eval section


def _all(ds, key):
    return torch.stack([ds[i][key] for i in range(len(ds))]).numpy()


@pytest.fixture(scope="module")
def forecast_data():
    return synthetic_forecast(SyntheticForecastConfig(n_rows=600, seq_len=48, pred_len=12))


def test_normalised_and_inverse_scales(forecast_data):
    b = forecast_data
    m = create_model("seasonal_naive", period=24, **b.model_kwargs)
    x, y = _all(b.test, "x"), _all(b.test, "y")
    pred = x[:, 24:36]  # one season ago
    r = evaluate(m, b, "test", _Cfg())
    assert r["mse"] == pytest.approx(M.mse(pred, y), rel=1e-6)
    std, mean = b.meta["scale"][0], b.meta["loc"][0]
    r_inv = evaluate(m, b, "test", _Cfg(inverse=True))
    assert r_inv["mse"] == pytest.approx(M.mse(pred * std + mean, y * std + mean), rel=1e-6)
    assert r_inv["mae"] == pytest.approx(M.mae(pred * std + mean, y * std + mean), rel=1e-6)
    assert r_inv["mse"] != pytest.approx(r["mse"], rel=1e-3)


def test_coverage_counts_the_models_intervals(forecast_data):
    b = forecast_data
    m = create_model("seasonal_naive", period=24, **b.model_kwargs)
    batch = {"x": torch.as_tensor(_all(b.test, "x"))}
    lo, hi = m.predict_interval(batch, alpha=0.2)
    y = _all(b.test, "y")
    inside = ((y >= lo.numpy()) & (y <= hi.numpy())).mean()
    r = evaluate(m, b, "test", _Cfg(alpha=0.2))
    assert r["coverage"] == pytest.approx(inside, abs=1e-9)
    assert r["width"] == pytest.approx(float((hi - lo).mean()), rel=1e-6)
    assert r["mis"] == pytest.approx(M.mis(lo.numpy(), hi.numpy(), y, 0.2), rel=1e-6)
    assert evaluate(m, b, "test", _Cfg(alpha=0.05))["coverage"] > r["coverage"]  # wider at 95 %


def test_series_protocol_original_scale():
    b = synthetic_series(SyntheticSeriesConfig(n_series=5, length=120, seq_len=24, pred_len=8))
    m = create_model("seasonal_naive", period=4, **b.model_kwargs)
    r = evaluate(m, b, "test", _Cfg())
    x, y = _all(b.test, "x")[..., 0], _all(b.test, "y")[..., 0]
    sc, loc = b.meta["scale"][:, 0][:, None], b.meta["loc"][:, 0][:, None]
    P = x[:, [20, 21, 22, 23, 20, 21, 22, 23]] * sc + loc
    T = y * sc + loc
    assert r["smape"] == pytest.approx(M.smape(P, T), rel=1e-5)
    scale = _all(b.test, "mase_scale")[:, 0]
    assert r["mase"] == pytest.approx(M.mase(P, T, scale), rel=1e-5)
    n2 = _all(b.test, "naive2")[..., 0]
    assert r["owa"] == pytest.approx(M.owa(r["smape"], r["mase"], M.smape(n2, T), M.mase(n2, T, scale)), rel=1e-6)


def test_eval_config_validation():
    from ostinato.core.errors import ConfigError
    from ostinato.core.config import from_dict

    with pytest.raises(ConfigError, match="alpha"):
        from_dict(TimeseriesEvalConfig, {"alpha": 1.5})
