"""Metric values on toy inputs, computed by hand."""
import math

import numpy as np
import pytest

from ostinato.timeseries import metrics as M


def test_point_metrics():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    true = np.array([[1.0, 1.0], [1.0, 1.0]])
    assert M.mse(pred, true) == pytest.approx((0 + 1 + 4 + 9) / 4)
    assert M.mae(pred, true) == pytest.approx((0 + 1 + 2 + 3) / 4)
    assert M.rmse(pred, true) == pytest.approx(math.sqrt(3.5))
    assert M.mape(pred, true) == pytest.approx(1.5)


def test_smape_mase_owa():
    true = np.array([[100.0, 100.0], [10.0, 0.0]])
    pred = np.array([[110.0, 90.0], [10.0, 0.0]])
    # series 1: 200/2 * (10/210 + 10/190); series 2: 0 (0/0 counts as 0)
    s1 = 100 * (10 / 210 + 10 / 190)
    assert M.smape(pred, true) == pytest.approx(s1 / 2)
    insample = np.array([1.0, 3.0, 2.0, 6.0, np.nan])  # NaN padding dropped; lag-1 diffs 2, 1, 4
    assert M.mase_scale(insample, 1) == pytest.approx(7 / 3)
    assert M.mase_scale([1.0, 2.0, 4.0, 8.0], 2) == pytest.approx((3 + 6) / 2)
    assert M.mase(pred, true, np.array([5.0, 2.0])) == pytest.approx((10 / 5 + 0) / 2)
    assert M.owa(12.0, 1.5, 16.0, 2.0) == pytest.approx(0.5 * (0.75 + 0.75))


def test_naive2_and_seasonality_test():
    t = np.arange(240)
    seasonal = 100 * (1 + 0.3 * np.sin(2 * np.pi * t / 24))
    assert M.seasonality_test(seasonal, 24)
    flat = np.linspace(1, 2, 240)
    rng = np.random.default_rng(0)
    rate = np.mean([M.seasonality_test(rng.normal(size=240), 24) for _ in range(300)])
    assert 0.02 < rate < 0.2  # a 90 % test flags about 10 % of white-noise series
    np.testing.assert_allclose(M.naive2(flat, 5, 24), np.full(5, 2.0))  # no seasonality: naive
    f = M.naive2(seasonal, 48, 24)
    np.testing.assert_allclose(f, seasonal[-24:].tolist() * 2, rtol=1e-3)  # pure seasonal series repeats
    idx = M.seasonal_indices(seasonal, 24)
    assert idx.mean() == pytest.approx(1.0)


def test_interval_metrics():
    lo = np.array([0.0, 0.0, 0.0, 0.0])
    hi = np.array([1.0, 1.0, 2.0, 2.0])
    y = np.array([0.5, 1.5, -1.0, 2.0])
    assert M.coverage(lo, hi, y) == pytest.approx(0.5)  # 0.5 in, 1.5 out, -1 out, 2.0 on the bound counts
    assert M.interval_width(lo, hi) == pytest.approx(1.5)
    alpha = 0.1  # penalty 2/alpha = 20
    expect = np.array([1.0, 1.0 + 20 * 0.5, 2.0 + 20 * 1.0, 2.0])
    np.testing.assert_allclose(M.interval_score(lo, hi, y, alpha), expect)
    assert M.mis(lo, hi, y, alpha) == pytest.approx(expect.mean())
    assert M.msis(lo.reshape(2, 2), hi.reshape(2, 2), y.reshape(2, 2), alpha, [2.0, 4.0]) == pytest.approx(
        ((expect[0] + expect[1]) / 2 / 2 + (expect[2] + expect[3]) / 2 / 4) / 2)


def test_gaussian_interval_coverage():
    rng = np.random.default_rng(0)
    y = rng.normal(size=200_000)
    z = 1.959963984540054
    assert M.coverage(np.full_like(y, -z), np.full_like(y, z), y) == pytest.approx(0.95, abs=0.003)


def test_pinball_and_accuracy():
    assert M.pinball([0.0, 0.0], [1.0, -1.0], 0.9) == pytest.approx((0.9 * 1 + 0.1 * 1) / 2)
    assert M.pinball([2.0], [2.0], 0.5) == 0.0
    logits = np.array([[2.0, 1.0], [0.1, 0.3], [5.0, -1.0]])
    assert M.accuracy(logits, [0, 1, 1]) == pytest.approx(2 / 3)


def test_point_adjust_and_anomaly_f1():
    gt = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0])
    pred = np.array([0, 0, 1, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(M.point_adjust(pred, gt), [0, 1, 1, 1, 0, 1, 0, 0, 0])
    scores = np.array([0, 0, 5, 0, 0, 5, 0, 0, 0], float)
    r = M.anomaly_f1(scores, gt, ratio=25.0)
    tp, fp, fn = 3, 1, 2
    assert r["precision"] == pytest.approx(tp / (tp + fp)) and r["recall"] == pytest.approx(tp / (tp + fn))


def test_diebold_mariano_sign():
    rng = np.random.default_rng(1)
    e_good, e_bad = rng.normal(0, 1, 500), rng.normal(0, 2, 500)
    stat, p = M.diebold_mariano(e_good, e_bad)
    assert stat < 0 and p < 1e-6
