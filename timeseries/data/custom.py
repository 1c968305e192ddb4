"""Custom CSV forecasting data (TSLib ``Dataset_Custom``): any CSV with a ``date`` column.

Column order is ``date``, the other variates, then the target (moved last). Splits by
row count: ``num_train = int(0.7 n)``, ``num_test = int(0.2 n)``, ``num_val`` the rest;
val and test windows start ``seq_len`` rows before their border so that their first
target is the first row of the split. Works for ``exchange_rate.csv`` (dates like
``1990/1/1 0:00``), weather, electricity, traffic and similar files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ostinato.core.data import DatasetSpec, FileSpec, locate
from ostinato.core.registry import register_dataset

from .windows import forecast_bundle, read_dated_csv

CUSTOM_SPECS = [
    DatasetSpec(
        name="exchange_rate",
        domain="timeseries",
        files=(FileSpec("timeseries/exchange_rate/exchange_rate.csv", sha256="d55e7aa2641009814a18ba3279431b13f6d413b0eab195b9ff21988d8cf94e97", size=630212),),
        source="LSTNet (laiguokun/multivariate-time-series-data), Autoformer CSV layout",
        licence="no explicit licence (LSTNet data)",
        description="8 daily exchange rates 1990-2010, 7588 rows (not shipped)",
        how_to_get="place exchange_rate.csv (Autoformer layout) under <data-root>/timeseries/exchange_rate/",
    )
]


def custom_borders(n: int, seq_len: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    num_train = int(n * 0.7)
    num_test = int(n * 0.2)
    num_val = n - num_train - num_test
    return (0, num_train), (num_train - seq_len, num_train + num_val), (n - num_test - seq_len, n)


@dataclass
class CustomCSVConfig:
    path: str = "timeseries/exchange_rate/exchange_rate.csv"
    features: Literal["M", "S", "MS"] = "M"
    target: str = "OT"
    seq_len: int = 96
    pred_len: int = 96
    freq: str = "h"  # TSLib uses h for most custom sets (exchange_rate included)
    scale: bool = True
    holt_winters: bool = False  # add MES-LSTM Holt-Winters baselines (x_base, y_base) for the targets
    hw_period: int = 24
    hw_init: Literal["estimated", "heuristic"] = "estimated"
    batch_size: int = 32
    eval_batch_size: int = 256


@register_dataset("csv_forecast", config=CustomCSVConfig)
def csv_forecast(cfg: CustomCSVConfig, data_root=None):
    """Any CSV with a date column; target last; 70/10/20 split (TSLib Dataset_Custom)."""
    path = locate(cfg.path, data_root)
    df = read_dated_csv(path)
    return forecast_bundle(path, df, custom_borders(len(df), cfg.seq_len), cfg)
