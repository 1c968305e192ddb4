"""ETT (Electricity Transformer Temperature), exactly the Time-Series-Library protocol.

Borders by row index (``Dataset_ETT_hour`` / ``Dataset_ETT_minute``), months of 30 days,
``L`` = ``seq_len``; rows after the test border are never used:

=========  ======================  ==========================
split      ETTh (hourly)           ETTm (15 min, x4)
=========  ======================  ==========================
train      [0, 8640)               [0, 34560)
val        [8640 - L, 11520)       [34560 - L, 46080)
test       [11520 - L, 14400)      [46080 - L, 57600)
=========  ======================  ==========================

A StandardScaler is fitted on the train rows only and applied to every split; metrics are
reported on this normalised scale unless ``eval.inverse`` is set. The test split keeps every
window (no ``drop_last``): ETTh1 at L = H = 96 has 2785 test windows.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ostinato.core.data import DatasetSpec, FileSpec, locate
from ostinato.core.errors import DataError
from ostinato.core.registry import register_dataset

from .windows import forecast_bundle, read_dated_csv

SHIPPED = Path(__file__).resolve().parent.parent / "samples"
_ETT_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/1d16c8f4f943005d613b5bc962e9eeb06058cf07/ETT-small/{}.csv"

ETT_SPECS = [
    DatasetSpec(
        name="ETTh1",
        domain="timeseries",
        files=(FileSpec("timeseries/ETT/ETTh1.csv", sha256="f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066", url=_ETT_URL.format("ETTh1"), size=2589657),),
        source="github:zhouhaoyi/ETDataset @ 1d16c8f : ETT-small/ETTh1.csv",
        licence="CC BY-ND 4.0",
        description="ETT hourly, transformer 1: date + 6 loads + OT, 17420 rows (shipped)",
        shipped=SHIPPED,
    ),
    DatasetSpec(
        name="ETTh2",
        domain="timeseries",
        files=(FileSpec("timeseries/ETT/ETTh2.csv", sha256="a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b", url=_ETT_URL.format("ETTh2"), size=2417960),),
        source="github:zhouhaoyi/ETDataset @ 1d16c8f : ETT-small/ETTh2.csv",
        licence="CC BY-ND 4.0",
        description="ETT hourly, transformer 2 (download)",
    ),
] + [
    # No automatic download: the checksum of these files has not been computed here from the
    # real bytes, so none is pinned. The git blob id at the pinned commit identifies them
    # (`git hash-object FILE` prints it).
    DatasetSpec(
        name=n,
        domain="timeseries",
        files=(FileSpec(f"timeseries/ETT/{n}.csv"),),
        source=f"github:zhouhaoyi/ETDataset @ 1d16c8f : ETT-small/{n}.csv (git blob {blob})",
        licence="CC BY-ND 4.0",
        description=f"ETT 15-minute, transformer {n[-1]} (place it yourself; see how_to_get)",
        how_to_get=f"copy ETT-small/{n}.csv from github.com/zhouhaoyi/ETDataset (commit 1d16c8f, git blob {blob[:12]}) "
                   f"to <data root>/timeseries/ETT/{n}.csv",
    )
    for n, blob in (("ETTm1", "62c9f979e2dc5b05d9cc5b38891e60e6baf77417"), ("ETTm2", "f9d46027c987d442d2d8f81308d1d8c4d1d35db8"))
]

MONTH_ROWS = {"hour": 30 * 24, "15min": 30 * 24 * 4}


def ett_borders(granularity: str, seq_len: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """TSLib border1s/border2s as (lo, hi) pairs."""
    m = MONTH_ROWS[granularity]
    train = (0, 12 * m)
    val = (12 * m - seq_len, 16 * m)
    test = (16 * m - seq_len, 20 * m)
    return train, val, test


@dataclass
class ETTConfig:
    path: str = "timeseries/ETT/ETTh1.csv"  # relative to a data root, or a file path
    granularity: Literal["hour", "15min"] = "hour"  # ETTh* or ETTm* borders
    features: Literal["M", "S", "MS"] = "M"
    target: str = "OT"
    seq_len: int = 96  # look-back L
    pred_len: int = 96  # horizon H
    freq: str = "h"  # time features: h for ETTh, t for ETTm
    scale: bool = True
    holt_winters: bool = False  # add MES-LSTM Holt-Winters baselines (x_base, y_base) for the targets
    hw_period: int = 24
    hw_init: Literal["estimated", "heuristic"] = "estimated"
    batch_size: int = 32
    eval_batch_size: int = 256  # metrics are exact element means, independent of this


@register_dataset("ett", config=ETTConfig)
def ett(cfg: ETTConfig, data_root=None):
    """ETTh1/h2/m1/m2 with TSLib borders (12/4/4 months), train-only scaler, M/S/MS."""
    path = locate(cfg.path, data_root, shipped=SHIPPED, hint="ETTh1 ships with ostinato; ETTh2: `ostinato data download ETTh2`; ETTm1/ETTm2: copy them from github.com/zhouhaoyi/ETDataset (ETT-small/) to <data root>/timeseries/ETT/")
    df = read_dated_csv(path)
    borders = ett_borders(cfg.granularity, cfg.seq_len)
    need = borders[2][1]
    if len(df) < need:
        raise DataError(f"{path}: {len(df)} rows, but the ETT {cfg.granularity} protocol needs at least {need} (12/4/4 months)")
    if borders[1][0] < 0:
        raise DataError(f"{path}: seq_len={cfg.seq_len} is longer than the ETT training split")
    return forecast_bundle(path, df, borders, cfg)
