"""Holt-Winters (MES-LSTM's offline ES): parity with statsmodels, causality, de-/re-seasonalising."""
import warnings

import numpy as np
import pytest
import torch

from ostinato.timeseries.data.holt_winters import (
    deseasonalise, fit_holt_winters, hw_baselines, hw_filter, hw_forecasts, reseasonalise,
)


@pytest.fixture(scope="module")
def series():
    rng = np.random.default_rng(0)
    t = np.arange(180)
    return 10 + 0.05 * t + 2 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.3, len(t))


def test_filter_matches_statsmodels(series):
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    y = series[:150]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ExponentialSmoothing(y, trend="add", seasonal="add", seasonal_periods=12, initialization_method="estimated").fit()
    p = fit_holt_winters(y, 12, cache=False)
    level, trend, season = hw_filter(y, p)
    np.testing.assert_allclose(level, ref.level, atol=1e-10)
    np.testing.assert_allclose(trend, ref.trend, atol=1e-10)
    np.testing.assert_allclose(season, ref.season, atol=1e-10)
    fc = hw_forecasts(level, trend, season, p, 24)
    np.testing.assert_allclose(fc[-1], ref.forecast(24), atol=1e-10)
    np.testing.assert_allclose(fc[:-1, 0], ref.fittedvalues[1:], atol=1e-10)  # one-step forecasts


def test_components_are_causal(series):
    base, fc = hw_baselines(series, 150, 12, 6)
    changed = series.copy()
    changed[160:] += 100.0  # a change after t = 159 must not move anything at t <= 159
    base2, fc2 = hw_baselines(changed, 150, 12, 6)
    np.testing.assert_array_equal(base[:160], base2[:160])
    np.testing.assert_array_equal(fc[:160], fc2[:160])
    assert not np.array_equal(base[160:], base2[160:])  # ... but later components do change


def test_deseasonalise_round_trip(series):
    base, fc = hw_baselines(series, 150, 12, 6)
    z = deseasonalise(series, base)
    np.testing.assert_allclose(reseasonalise(z, base), series, atol=1e-12)
    assert np.std(z) < 0.5 * np.std(series - series.mean())  # the level and season are removed
    # the forecast baseline re-trends a zero LSTM output into the Holt-Winters forecast
    np.testing.assert_allclose(reseasonalise(np.zeros(6), fc[149]), fc[149])


def test_baseline_is_projected_level_and_season(series):
    base, proj = hw_baselines(series, 150, 12, 6)
    p = fit_holt_winters(series[:150], 12)
    level, trend, season = hw_filter(series, p)
    np.testing.assert_allclose(base, level + season)
    full = hw_forecasts(level, trend, season, p, 6)  # the trend is left to the LSTM
    np.testing.assert_allclose(proj, full - np.arange(1, 7)[None] * trend[:, None], atol=1e-12)


def test_cache_round_trip(tmp_path, monkeypatch, series):
    import ostinato.timeseries.data.holt_winters as hw

    monkeypatch.setattr(hw, "CACHE_DIR", tmp_path)
    p1 = fit_holt_winters(series[:100], 12)
    assert list(tmp_path.glob("holt_winters/*.npy"))
    p2 = fit_holt_winters(series[:100], 12)
    assert (p1.alpha, p1.beta, p1.gamma, p1.period) == (p2.alpha, p2.beta, p2.gamma, p2.period)
    np.testing.assert_array_equal(p1.seasons0, p2.seasons0)


def test_mes_lstm_uses_the_baselines():
    from ostinato.core import create_model

    m = create_model("test_mes_lstm", n_vars=1, seq_len=8, pred_len=3, out_vars=1)
    x = torch.randn(2, 8, 1)
    xb, yb = torch.randn(2, 8, 1), torch.randn(2, 3, 1)
    p = m.predict({"x": x, "x_base": xb, "y_base": yb})
    # the LSTM sees x - x_base and its output is shifted by y_base
    p2 = m.predict({"x": x + 5.0, "x_base": xb + 5.0, "y_base": yb + 1.0})
    torch.testing.assert_close(p2, p + 1.0)


def test_mes_lstm_feed_scaled_adds_the_targets_as_inputs():
    from ostinato.core import create_model

    m = create_model("test_mes_lstm", n_vars=2, seq_len=8, pred_len=3, out_vars=1, feed_scaled=True)
    assert m.lstm.w_x.in_features == 3  # 2 residual channels (covariate, de-levelled target) + the scaled target
    torch.manual_seed(0)
    x, xb, yb = torch.randn(2, 8, 2), torch.randn(2, 8, 1), torch.randn(2, 3, 1)
    p = m.predict({"x": x, "x_base": xb, "y_base": yb})
    shifted = x.clone()
    shifted[..., -1] += 5.0
    p2 = m.predict({"x": shifted, "x_base": xb + 5.0, "y_base": yb})
    assert p.shape == p2.shape == (2, 3, 1)
    assert not torch.allclose(p, p2)  # same residuals, different scaled targets: the output moves


@pytest.mark.slow
def test_parallel_fits_equal_sequential(tmp_path, monkeypatch):
    import ostinato.timeseries.data.holt_winters as hw

    monkeypatch.setattr(hw, "CACHE_DIR", tmp_path)
    rng = np.random.default_rng(1)
    ys = [10 + np.sin(np.arange(120) * 2 * np.pi / 12) + rng.normal(0, 0.2, 120) for _ in range(6)]
    par = hw.fit_many(ys, 12, workers=2)
    seq = [fit_holt_winters(y, 12, cache=False) for y in ys]
    for a, b in zip(par, seq):
        assert (a.alpha, a.beta, a.gamma, a.level0, a.trend0) == (b.alpha, b.beta, b.gamma, b.level0, b.trend0)
        np.testing.assert_array_equal(a.seasons0, b.seasons0)
