"""Forecasting, interval and classification metrics, each with its benchmark's convention.

All functions take numpy arrays (or anything ``np.asarray`` accepts) and return floats.
Shapes: forecasts ``(N, H, C)`` or ``(N, H)`` (windows/series, horizon, variates).

Conventions in one place:

- **MSE / MAE / RMSE / MAPE / MSPE (Time-Series-Library).** One mean over every element of
  every test window, horizon step and output variate. TSLib reports them on the
  *normalised* scale (after the train-fitted StandardScaler); the original scale is what
  ``--inverse`` gives (``ostinato eval ... eval.inverse=true``). TSLib averages per-batch
  losses for validation; we always use the exact element mean.
- **sMAPE (M4).** Per series ``200/H * sum_h |y - yhat| / (|y| + |yhat|)``, then the mean over
  series; a term with ``|y| + |yhat| == 0`` counts as 0.
- **MASE (M4).** Per series ``mean_h |y - yhat|`` divided by the in-sample mean absolute
  seasonal difference ``mean_t |x_t - x_{t-m}|`` (m = 24 for M4 Hourly, 12 monthly, 4
  quarterly, 1 otherwise; MES-LSTM uses the lag-1 scale, m = 1); mean over series.
- **OWA (M4).** ``0.5 * (sMAPE / sMAPE_Naive2 + MASE / MASE_Naive2)``, with each term the
  mean over all series (the M4 organisers' definition). Naive2 is the seasonal naive
  forecast of the seasonally adjusted series (classical multiplicative decomposition,
  applied only when the 90 % autocorrelation test at lag m finds seasonality).
- **Intervals.** ``coverage`` = share of targets with ``lo <= y <= hi``; ``width`` = mean
  ``hi - lo``; ``MIS`` (mean interval score, Gneiting & Raftery 2007, as in MES-LSTM and
  M4) = mean of ``(hi - lo) + 2/alpha (lo - y) 1[y < lo] + 2/alpha (y - hi) 1[y > hi]``
  for a central (1 - alpha) interval; ``MSIS`` divides each series' MIS by its MASE scale.
- **Pinball.** ``max(q (y - yhat), (q - 1)(y - yhat))`` averaged; pytorch-forecasting's
  QuantileLoss is twice this.
- **Accuracy.** Share of argmax predictions equal to the label.
- **Anomaly F1.** TSLib protocol: threshold at the ``100 - ratio`` percentile of the scores
  of the (train + test) windows, then "point adjustment": if any point of a true anomaly
  segment is detected, the whole segment counts as detected.
"""
from __future__ import annotations

import math

import numpy as np


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


# --- TSLib point metrics (normalised scale unless inverted by the caller) -----------------

def mse(pred, true) -> float:
    return float(np.mean((_np(pred) - _np(true)) ** 2))


def mae(pred, true) -> float:
    return float(np.mean(np.abs(_np(pred) - _np(true))))


def rmse(pred, true) -> float:
    return math.sqrt(mse(pred, true))


def mape(pred, true) -> float:
    """TSLib's ``mean(|(pred - true) / true|)``; infinite where ``true == 0`` (as in TSLib)."""
    p, t = _np(pred), _np(true)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(np.abs((p - t) / t)))


def mspe(pred, true) -> float:
    p, t = _np(pred), _np(true)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(np.square((p - t) / t)))


# --- M4 ---------------------------------------------------------------------------------

def smape_per_series(pred, true) -> np.ndarray:
    """(N, H) -> (N,), in percent (0..200)."""
    p, t = _np(pred), _np(true)
    den = np.abs(t) + np.abs(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(den == 0, 0.0, np.abs(t - p) / den)
    return 200.0 * terms.reshape(len(t), -1).mean(1)


def smape(pred, true) -> float:
    return float(np.mean(smape_per_series(pred, true)))


def mase_scale(insample, m: int = 1) -> float:
    """Mean absolute m-lag difference of one in-sample series (NaNs dropped first)."""
    x = _np(insample)
    x = x[~np.isnan(x)]
    if len(x) <= m:
        return float("nan")
    return float(np.mean(np.abs(x[m:] - x[:-m])))


def mase_per_series(pred, true, scale) -> np.ndarray:
    p, t = _np(pred), _np(true)
    err = np.abs(t - p).reshape(len(t), -1).mean(1)
    return err / _np(scale).reshape(-1)


def mase(pred, true, scale) -> float:
    """``scale``: (N,) per-series in-sample scales from :func:`mase_scale`."""
    return float(np.mean(mase_per_series(pred, true, scale)))


def seasonality_test(x, m: int) -> bool:
    """M4's 90 % test: |acf(m)| > 1.645 * sqrt((1 + 2 sum_{k<m} acf(k)^2) / n)."""
    x = _np(x)
    n = len(x)
    if m <= 1 or n < 3 * m:
        return False
    xc = x - x.mean()
    den = float(np.sum(xc * xc))
    if den == 0:
        return False
    acf = np.array([np.sum(xc[k:] * xc[: n - k]) / den for k in range(m + 1)])
    limit = 1.645 * math.sqrt((1 + 2 * np.sum(acf[1:m] ** 2)) / n)
    return bool(abs(acf[m]) > limit)


def seasonal_indices(x, m: int) -> np.ndarray:
    """Classical multiplicative decomposition: (m,) indices for phases 0..m-1 of ``x``."""
    x = _np(x)
    if m % 2 == 0:  # centred 2 x m moving average
        w = np.r_[0.5, np.ones(m - 1), 0.5] / m
    else:
        w = np.ones(m) / m
    trend = np.convolve(x, w, mode="valid")  # (n - 2*(m//2),)
    off = m // 2
    ratio = x[off : off + len(trend)] / trend
    idx = np.full(m, np.nan)
    for ph in range(m):
        vals = ratio[(ph - off) % m :: m]
        idx[ph] = np.mean(vals) if len(vals) else 1.0
    return idx * m / np.sum(idx)


def naive2(insample, h: int, m: int) -> np.ndarray:
    """M4 Naive2: last value of the seasonally adjusted series, re-seasonalised. (h,)"""
    x = _np(insample)
    x = x[~np.isnan(x)]
    if seasonality_test(x, m):
        si = seasonal_indices(x, m)
        n = len(x)
        phase_in = si[np.arange(n) % m]
        last = x[-1] / phase_in[-1]
        return last * si[(n + np.arange(h)) % m]
    return np.full(h, x[-1])


def owa(smape_model: float, mase_model: float, smape_naive2: float, mase_naive2: float) -> float:
    return 0.5 * (smape_model / smape_naive2 + mase_model / mase_naive2)


# --- intervals ----------------------------------------------------------------------------

def coverage(lo, hi, true) -> float:
    t = _np(true)
    return float(np.mean((t >= _np(lo)) & (t <= _np(hi))))


def interval_width(lo, hi) -> float:
    return float(np.mean(_np(hi) - _np(lo)))


def interval_score(lo, hi, true, alpha: float) -> np.ndarray:
    """Elementwise interval score of a central (1 - alpha) interval."""
    lo, hi, t = _np(lo), _np(hi), _np(true)
    return (hi - lo) + (2.0 / alpha) * np.maximum(lo - t, 0.0) + (2.0 / alpha) * np.maximum(t - hi, 0.0)


def mis(lo, hi, true, alpha: float) -> float:
    return float(np.mean(interval_score(lo, hi, true, alpha)))


def msis(lo, hi, true, alpha: float, scale) -> float:
    s = interval_score(lo, hi, true, alpha)
    per = s.reshape(len(s), -1).mean(1) / _np(scale).reshape(-1)
    return float(np.mean(per))


def pinball(pred, true, q: float) -> float:
    d = _np(true) - _np(pred)
    return float(np.mean(np.maximum(q * d, (q - 1.0) * d)))


def diebold_mariano(e1, e2, h: int = 1, power: int = 2) -> tuple[float, float]:
    """DM test with the Harvey-Leybourne-Newbold correction; returns (statistic, p-value).

    ``e1``, ``e2``: forecast errors of two methods on the same targets. Negative statistic:
    method 1 is more accurate. Two-sided p-value from Student t with n - 1 d.o.f.
    """
    from scipy import stats

    d = np.abs(_np(e1).ravel()) ** power - np.abs(_np(e2).ravel()) ** power
    n = len(d)
    dm = d.mean()
    gamma = [np.sum((d[k:] - dm) * (d[: n - k] - dm)) / n for k in range(h)]
    var = (gamma[0] + 2 * sum(gamma[1:])) / n
    if var <= 0:
        return float("nan"), float("nan")
    stat = dm / math.sqrt(var)
    stat *= math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    return float(stat), float(2 * stats.t.sf(abs(stat), df=n - 1))


# --- classification and anomaly detection ---------------------------------------------------

def accuracy(logits_or_pred, labels) -> float:
    p = _np(logits_or_pred)
    if p.ndim > 1:
        p = p.argmax(-1)
    return float(np.mean(p == _np(labels)))


def point_adjust(pred, gt) -> np.ndarray:
    """TSLib's adjustment: a detected point inside a true segment marks the whole segment."""
    pred = np.asarray(pred, dtype=bool).copy()
    gt = np.asarray(gt, dtype=bool)
    i, n = 0, len(gt)
    while i < n:
        if gt[i]:
            j = i
            while j < n and gt[j]:
                j += 1
            if pred[i:j].any():
                pred[i:j] = True
            i = j
        else:
            i += 1
    return pred


def anomaly_f1(test_scores, labels, ratio: float, ref_scores=None) -> dict[str, float]:
    """Threshold at the (100 - ratio) percentile of ``concat(ref_scores, test_scores)``."""
    s = _np(test_scores)
    ref = s if ref_scores is None else np.concatenate([_np(ref_scores), s])
    thr = np.percentile(ref, 100 - ratio)
    gt = np.asarray(labels).astype(bool)
    pred = point_adjust(s > thr, gt)
    tp = float(np.sum(pred & gt))
    prec = tp / max(float(pred.sum()), 1.0)
    rec = tp / max(float(gt.sum()), 1.0)
    f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    return {"precision": prec, "recall": rec, "f1": f1, "threshold": float(thr), "accuracy": float(np.mean(pred == gt))}
