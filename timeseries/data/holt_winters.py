"""Holt-Winters (additive trend, additive season) per series, fitted offline with statsmodels,
as MES-LSTM does (Mathonsi & van Zyl 2022, official code: ``ExponentialSmoothing(...,
trend="add", seasonal="add")`` per column).

statsmodels estimates the parameters (alpha, beta, gamma and the initial level, trend and
``m`` seasonal states) on the *training* part of a series. :func:`hw_filter` then runs the
same recursion over the whole series with those fixed parameters (checked equal to
statsmodels' ``level``/``trend``/``season``/``fittedvalues`` on the fitted part)::

    l_t = alpha (y_t - s_{t-m}) + (1 - alpha)(l_{t-1} + b_{t-1})
    b_t = beta (l_t - l_{t-1}) + (1 - beta) b_{t-1}
    s_t = gamma (y_t - l_{t-1} - b_{t-1}) + (1 - gamma) s_{t-m}

so every component at time ``t`` uses observations up to ``t`` only.

The MES-LSTM baseline (what is subtracted from the input and added back to the output):
the input is de-levelled and deseasonalised, ``y_tau - l_tau - s_tau`` (the original), and
the output is re-trended by adding back the level and season projected from the window's
last step ``t``: ``l_t + s_{t+h-m(k+1)}``, k = (h-1) // m. The trend is not removed from
the input, so it is not added back either: the LSTM models it. (The original forecast one
step and added the in-sample components at the target time, which are computed from the
target itself; projecting from ``t`` does not look ahead. :func:`hw_forecasts` gives the
full Holt-Winters forecast ``l_t + h b_t + s_{t+h-m(k+1)}`` for reference.)

Fitting is slow (statsmodels optimises each series), so fitted parameters are cached on
disk under ``~/.cache/ostinato/holt_winters`` keyed by the series' bytes and the settings.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ostinato.core.data import CACHE_DIR


@dataclass
class HWParams:
    alpha: float
    beta: float
    gamma: float
    level0: float
    trend0: float
    seasons0: np.ndarray  # (m,): s_{1-m}, ..., s_0
    period: int


def _cache_path(y: np.ndarray, period: int, init: str) -> Path:
    h = hashlib.sha256(np.ascontiguousarray(y, dtype=np.float64).tobytes())
    h.update(f"{period}:{init}:v1".encode())
    return CACHE_DIR / "holt_winters" / f"{h.hexdigest()[:32]}.npy"


def _load_cached(path: Path) -> HWParams:
    v = np.load(path)
    return HWParams(*map(float, v[:5]), seasons0=v[6:], period=int(v[5]))


def _fit_one(args: tuple[np.ndarray, int, str]) -> HWParams:
    y, period, init = args
    return fit_holt_winters(y, period, init, cache=True)


def _start_methods() -> list[str]:
    import multiprocessing as mp

    return mp.get_all_start_methods()


def fit_many(series: list[np.ndarray], period: int, init: str = "estimated", workers: int = 0) -> list[HWParams]:
    """Fit many series (cache first); misses run in a process pool of ``workers``
    (0: one per CPU, at most 8). Results equal sequential fitting."""
    out: list[HWParams | None] = []
    todo = []
    for i, y in enumerate(series):
        path = _cache_path(np.asarray(y, dtype=np.float64), period, init)
        if path.exists():
            out.append(_load_cached(path))
        else:
            out.append(None)
            todo.append(i)
    workers = workers or min(8, os.cpu_count() or 1)
    jobs = [(np.asarray(series[i], dtype=np.float64), period, init) for i in todo]
    fitted = None
    if len(jobs) > 4 and workers > 1 and "fork" in _start_methods():
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        try:  # fork: the children only run numpy/statsmodels code
            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as pool:
                fitted = list(pool.map(_fit_one, jobs, chunksize=4))
        except (BrokenProcessPool, OSError):
            fitted = None
    if fitted is None:
        fitted = [_fit_one(j) for j in jobs]
    for i, p in zip(todo, fitted):
        out[i] = p
    return out  # type: ignore[return-value]


def fit_holt_winters(y: np.ndarray, period: int, init: str = "estimated", cache: bool = True) -> HWParams:
    """Fit additive-trend, additive-season Holt-Winters with statsmodels (cached on disk).

    A series shorter than two seasons (statsmodels needs them) falls back to period 1
    with no seasonal smoothing: zero seasonal states and gamma = 0.
    """
    y = np.asarray(y, dtype=np.float64)
    path = _cache_path(y, period, init)
    if cache and path.exists():
        return _load_cached(path)
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    m = period if period > 1 and len(y) >= 2 * period + 1 else 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if m > 1:
            fit = ExponentialSmoothing(y, trend="add", seasonal="add", seasonal_periods=m, initialization_method=init).fit()
            seasons, gamma = np.asarray(fit.params["initial_seasons"], dtype=np.float64), float(fit.params["smoothing_seasonal"])
        else:  # too short for a seasonal fit: Holt's linear trend, zero seasonal states
            fit = ExponentialSmoothing(y, trend="add", initialization_method="estimated" if len(y) >= 10 else "heuristic").fit()
            m = max(period, 1)
            seasons, gamma = np.zeros(m), 0.0
    p = fit.params
    params = HWParams(float(p["smoothing_level"]), float(p["smoothing_trend"]), gamma, float(p["initial_level"]),
                      float(p["initial_trend"]), seasons, m)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, np.r_[params.alpha, params.beta, params.gamma, params.level0, params.trend0, m, seasons])
        os.replace(tmp, path)
    return params


def hw_filter(y: np.ndarray, p: HWParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Filtered level, trend and season at every t (each (N,)), fixed parameters ``p``."""
    y = np.asarray(y, dtype=np.float64)
    n, m = len(y), p.period
    level, trend, season = np.empty(n), np.empty(n), np.empty(n + m)
    season[:m] = p.seasons0
    l, b = p.level0, p.trend0
    for t in range(n):
        s_prev = season[t]  # s_{t-m}
        ln = p.alpha * (y[t] - s_prev) + (1 - p.alpha) * (l + b)
        bn = p.beta * (ln - l) + (1 - p.beta) * b
        season[t + m] = p.gamma * (y[t] - l - b) + (1 - p.gamma) * s_prev
        l, b = ln, bn
        level[t], trend[t] = l, b
    return level, trend, season[m:]


def hw_forecasts(level: np.ndarray, trend: np.ndarray, season: np.ndarray, p: HWParams, horizon: int) -> np.ndarray:
    """Forecast from every origin t: ``l_t + h b_t + s_{t+h-m(k+1)}``, k = (h-1) // m. (N, H)
    Pass ``trend=0`` for the MES-LSTM baseline (level and season only)."""
    n, m = len(level), p.period
    full = np.concatenate([p.seasons0, season])  # (m + N,): s_{1-m} .. s_{N-1}
    h = np.arange(1, horizon + 1)  # (H,)
    t = np.arange(n)[:, None]  # (N, 1)
    idx = t + 1 + (h - 1) % m  # (N, H): index into full of s_{t+h-m(k+1)}
    seas = full[idx]
    return level[:, None] + h[None, :] * np.asarray(trend, dtype=np.float64).reshape(-1, 1) + seas  # (N, H)


def hw_baselines(y: np.ndarray, n_fit: int, period: int, horizon: int, init: str = "estimated") -> tuple[np.ndarray, np.ndarray]:
    """Fit on ``y[:n_fit]``, filter all of ``y``: the in-sample baseline ``l_t + s_t`` (N,) and
    the projected baseline ``l_t + s_{t+h-m(k+1)}`` from each origin (N, H) (module doc)."""
    p = fit_holt_winters(y[:n_fit], period, init)
    level, _, season = hw_filter(y, p)
    return level + season, hw_forecasts(level, np.zeros(1), season, p, horizon)


def hw_baselines_many(ys: list[np.ndarray], n_fits: list[int], period: int, horizon: int, init: str = "estimated"):
    """:func:`hw_baselines` for many series, fitting them in parallel (see :func:`fit_many`)."""
    params = fit_many([np.asarray(y, dtype=np.float64)[:n] for y, n in zip(ys, n_fits)], period, init)
    out = []
    for y, p in zip(ys, params):
        level, _, season = hw_filter(y, p)
        out.append((level + season, hw_forecasts(level, np.zeros(1), season, p, horizon)))
    return out


def deseasonalise(x: np.ndarray, base: np.ndarray) -> np.ndarray:
    """MES-LSTM input: the series minus its Holt-Winters level and season."""
    return x - base


def reseasonalise(z: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Inverse of :func:`deseasonalise` (adds the level/season or forecast back)."""
    return z + base
