"""Synthetic data for tests and smoke runs (deterministic given ``seed``).

- ``synthetic_forecast``: a dated multivariate series (daily cycle of period ``period``,
  slow trend, cross-variate coupling, Gaussian noise) cut like a custom CSV (70/10/20).
- ``synthetic_series``: many positive univariate series with a trend and multiplicative
  seasonality, split like M4 (one held-out horizon for validation, one for test).
- ``synthetic_classify``: two or more classes of noisy shapes (sine, square, sawtooth...).
- ``synthetic_anomaly``: a multivariate periodic signal; the test part has injected spike
  and level-shift segments with point labels (TSLib anomaly protocol, non-overlapping windows).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import torch

from ostinato.core.data import DataBundle
from ostinato.core.registry import register_dataset

from .custom import custom_borders
from .m4 import series_bundle
from .ucr import classification_bundle
from .windows import forecast_bundle


def make_forecast_frame(n_rows: int, n_vars: int, period: int, seed: int, start: str = "2020-01-01") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n_rows)
    cols = {}
    phase = rng.uniform(0, 2 * np.pi, n_vars)
    amp = rng.uniform(0.5, 2.0, n_vars)
    prev = np.zeros(n_rows)
    for v in range(n_vars):
        x = amp[v] * np.sin(2 * np.pi * t / period + phase[v]) + 0.002 * t * (v + 1)
        x = x + 0.3 * prev + rng.normal(0, 0.1, n_rows)  # coupling to the previous variate
        prev = x
        cols[f"v{v}" if v < n_vars - 1 else "OT"] = x + 10
    df = pd.DataFrame(cols)
    df.insert(0, "date", pd.date_range(start, periods=n_rows, freq="h"))
    return df


@dataclass
class SyntheticForecastConfig:
    n_rows: int = 1200
    n_vars: int = 3
    period: int = 24
    seed: int = 0
    features: Literal["M", "S", "MS"] = "M"
    target: str = "OT"
    seq_len: int = 24
    pred_len: int = 12
    freq: str = "h"
    scale: bool = True
    holt_winters: bool = False
    hw_period: int = 24
    hw_init: Literal["estimated", "heuristic"] = "estimated"
    batch_size: int = 16
    eval_batch_size: int = 128


@register_dataset("synthetic_forecast", config=SyntheticForecastConfig)
def synthetic_forecast(cfg: SyntheticForecastConfig, data_root=None) -> DataBundle:
    """Synthetic dated multivariate series (periodic + trend + coupling), 70/10/20 split."""
    df = make_forecast_frame(cfg.n_rows, cfg.n_vars, cfg.period, cfg.seed)
    return forecast_bundle("synthetic_forecast", df, custom_borders(len(df), cfg.seq_len), cfg)


@dataclass
class SyntheticSeriesConfig:
    n_series: int = 8
    length: int = 240  # training length per series
    period: int = 4
    seed: int = 0
    seq_len: int = 24
    pred_len: int = 12
    history: float = 4.0
    scaling: Literal["minmax", "none"] = "minmax"
    holt_winters: bool = False
    hw_init: Literal["estimated", "heuristic"] = "estimated"
    batch_size: int = 16
    eval_batch_size: int = 128


@register_dataset("synthetic_series", config=SyntheticSeriesConfig)
def synthetic_series(cfg: SyntheticSeriesConfig, data_root=None) -> DataBundle:
    """Synthetic positive seasonal series split like M4 (held-out validation and test horizons)."""
    rng = np.random.default_rng(cfg.seed)
    n = cfg.length + cfg.pred_len
    t = np.arange(n)
    train, test = [], []
    for _ in range(cfg.n_series):
        level = rng.uniform(50, 200) * (1 + rng.uniform(0, 0.002) * t)
        season = 1 + rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * t / cfg.period + rng.uniform(0, 6.28))
        s = level * season * np.exp(rng.normal(0, 0.02, n))
        train.append(s[: cfg.length])
        test.append(s[cfg.length :])
    ids = [f"S{i + 1}" for i in range(cfg.n_series)]
    return series_bundle(ids, train, test, cfg.seq_len, cfg.pred_len, cfg.period, cfg.history, cfg.scaling,
                         cfg.holt_winters, cfg.hw_init, cfg.batch_size, cfg.eval_batch_size,
                         "synthetic_series", "synthetic_series", {"frequency": "synthetic"})


@dataclass
class SyntheticClassifyConfig:
    n_train: int = 64
    n_test: int = 64
    length: int = 48
    n_vars: int = 1
    n_classes: int = 2
    noise: float = 0.3
    seed: int = 0
    normalize: Literal["none", "znorm"] = "none"
    val_fraction: float = 0.25
    split_seed: int = 0
    batch_size: int = 16


def _shapes(n: int, length: int, n_vars: int, n_classes: int, noise: float, rng) -> tuple[np.ndarray, list]:
    t = np.linspace(0, 1, length)
    labels = rng.integers(0, n_classes, n)
    x = np.empty((n, n_vars, length))
    for i, k in enumerate(labels):
        f = rng.uniform(2, 4)
        ph = rng.uniform(0, 1)
        base = [np.sin(2 * np.pi * f * (t + ph)), np.sign(np.sin(2 * np.pi * f * (t + ph))),
                2 * ((f * (t + ph)) % 1) - 1, np.exp(-((t - ph) ** 2) / 0.01)][k % 4]
        for v in range(n_vars):
            x[i, v] = base * (1 + 0.2 * v) + rng.normal(0, noise, length)
    return x, [int(v) for v in labels]


@register_dataset("synthetic_classify", config=SyntheticClassifyConfig)
def synthetic_classify(cfg: SyntheticClassifyConfig, data_root=None) -> DataBundle:
    """Synthetic shape classification (sine / square / sawtooth / bump)."""
    rng = np.random.default_rng(cfg.seed)
    xtr, ltr = _shapes(cfg.n_train, cfg.length, cfg.n_vars, cfg.n_classes, cfg.noise, rng)
    xte, lte = _shapes(cfg.n_test, cfg.length, cfg.n_vars, cfg.n_classes, cfg.noise, rng)
    return classification_bundle(xtr, ltr, xte, lte, list(range(cfg.n_classes)), cfg, "synthetic_classify")


class AnomalyWindows(torch.utils.data.Dataset):
    def __init__(self, data: np.ndarray, labels: np.ndarray, win: int, step: int):
        self.x = torch.as_tensor(data, dtype=torch.float32)  # (N, C)
        self.lab = torch.as_tensor(labels, dtype=torch.float32)  # (N,)
        self.win, self.step = win, step

    def __len__(self) -> int:
        return (len(self.x) - self.win) // self.step + 1

    def __getitem__(self, i: int) -> dict:
        s = i * self.step
        return {"x": self.x[s : s + self.win], "labels": self.lab[s : s + self.win]}  # (L, C), (L,)


@dataclass
class SyntheticAnomalyConfig:
    n_rows: int = 2000
    n_vars: int = 3
    period: int = 24
    seq_len: int = 48
    anomaly_share: float = 0.02
    seed: int = 0
    batch_size: int = 16


@register_dataset("synthetic_anomaly", config=SyntheticAnomalyConfig)
def synthetic_anomaly(cfg: SyntheticAnomalyConfig, data_root=None) -> DataBundle:
    """Synthetic periodic signal with labelled spike/level-shift anomalies in val and test."""
    rng = np.random.default_rng(cfg.seed)
    df = make_forecast_frame(cfg.n_rows, cfg.n_vars, cfg.period, cfg.seed)
    data = df.drop(columns="date").to_numpy(np.float64)
    n_tr = int(0.6 * len(data))
    mu, sd = data[:n_tr].mean(0), data[:n_tr].std(0)
    data = (data - mu) / sd
    labels = np.zeros(len(data))
    n_seg = max(1, int(cfg.anomaly_share * (len(data) - n_tr) / 5))
    for _ in range(n_seg):
        s = int(rng.integers(n_tr, len(data) - 6))
        data[s : s + 5, rng.integers(0, cfg.n_vars)] += rng.choice([-1, 1]) * rng.uniform(3, 5)
        labels[s : s + 5] = 1
    n_va = n_tr + (len(data) - n_tr) // 3
    W = cfg.seq_len
    return DataBundle(
        train=AnomalyWindows(data[:n_tr], labels[:n_tr], W, 1),
        val=AnomalyWindows(data[n_tr:n_va], labels[n_tr:n_va], W, W),
        test=AnomalyWindows(data[n_va:], labels[n_va:], W, W),
        batch_size=cfg.batch_size,
        eval_batch_size=128,
        model_kwargs={"n_vars": cfg.n_vars, "seq_len": W},
        meta={"task": "anomaly"},
        inference={"task": "anomaly"},
    )
