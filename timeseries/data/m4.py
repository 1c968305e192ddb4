"""M4 competition data (Makridakis et al. 2020) from the wide CSVs of the official repository.

Files: ``<root>/<Frequency>-train.csv`` and ``<Frequency>-test.csv``; column ``V1`` is the
series id, ``V2..`` the values, ragged rows padded with NA. Horizons per frequency (M4 rules,
as in Time-Series-Library): Yearly 6, Quarterly 8, Monthly 18, Weekly 13, Daily 14,
Hourly 48; look-back ``seq_len = 2 * horizon`` unless set (TSLib's M4 scripts). Seasonal
periods (MASE and Naive2): Yearly 1, Quarterly 4, Monthly 12, Weekly 1, Daily 1, Hourly 24.

Splits (protocol ``series``: one forecast per series, metrics on the original scale):

- test: input = the last ``seq_len`` values of the full training series; target = the
  M4 test values;
- val: the last ``horizon`` values of each training series are held out (TSLib validates
  M4 on the test set; we do not);
- train: every window whose target ends before the validation part, restricted to the
  last ``history * horizon`` cut points of each series (TSLib's ``history_size``:
  Hourly/Daily/Weekly 10, others 1.5).

Scaling (``scaling``): ``minmax`` maps each series to (1e-5, 1) with min/max of its
training part (MES-LSTM), ``none`` keeps raw values (ES-RNN works on raw positive values).
Series shorter than ``seq_len`` are padded at the front with their first value.
With ``holt_winters=true`` the items also carry the MES-LSTM Holt-Winters baselines
(:mod:`.holt_winters`), fitted on the training part of each (scaled) series.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import torch

from ostinato.core.data import DataBundle, DatasetSpec, FileSpec, locate
from ostinato.core.errors import ConfigError, DataError
from ostinato.core.registry import register_dataset

from .. import metrics as M
from .holt_winters import hw_baselines_many
from .windows import check_values, with_inference

HORIZON = {"Yearly": 6, "Quarterly": 8, "Monthly": 18, "Weekly": 13, "Daily": 14, "Hourly": 48}
PERIOD = {"Yearly": 1, "Quarterly": 4, "Monthly": 12, "Weekly": 1, "Daily": 1, "Hourly": 24}
HISTORY = {"Yearly": 1.5, "Quarterly": 1.5, "Monthly": 1.5, "Weekly": 10, "Daily": 10, "Hourly": 10}
MINMAX_LO = 1e-5

M4_SPECS = [
    DatasetSpec(
        name="M4-Hourly",
        domain="timeseries",
        files=(
            FileSpec("timeseries/m4/Hourly-train.csv", sha256="ea59b7783573c49077a835ab6465c7d66f1474783360f310988a9a737fbca62f", size=2347115,
                     url="https://raw.githubusercontent.com/Mcompetitions/M4-methods/6c1067e5a57161249b17289a565178dc7a3fb3ca/Dataset/Train/Hourly-train.csv"),
            FileSpec("timeseries/m4/Hourly-test.csv", sha256="71a57fccb15e534d973626ada4fb87febf789e9317715b7cc6dd3b5f90db6f42", size=132820,
                     url="https://raw.githubusercontent.com/Mcompetitions/M4-methods/6c1067e5a57161249b17289a565178dc7a3fb3ca/Dataset/Test/Hourly-test.csv"),
        ),
        source="github:Mcompetitions/M4-methods @ 6c1067e : Dataset/{Train,Test}/Hourly-*.csv",
        licence="M4 competition data (Makridakis et al.), public for research",
        description="M4 Hourly: 414 series, train 700-960 values, h = 48 (download)",
    )
]


def read_m4_wide(path) -> tuple[list[str], list[np.ndarray]]:
    """Wide M4 CSV -> ids, list of 1-D float arrays (NA padding removed)."""
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    if df.columns[0] != "V1":
        raise DataError(f"{path}: expected the M4 wide layout with first column 'V1' (series id), got {df.columns[0]!r}")
    vals = df.iloc[:, 1:].apply(pd.to_numeric, errors="coerce")
    bad = vals.isna() & df.iloc[:, 1:].notna()
    if bad.to_numpy().any():
        r, c = np.argwhere(bad.to_numpy())[0]
        raise DataError(f"{path}:{r + 2}: column {df.columns[c + 1]!r} value {df.iloc[r, c + 1]!r} is not a number")
    arr = vals.to_numpy(np.float64)
    check_values(path, arr, columns=list(df.columns[1:]))
    series = [row[~np.isnan(row)] for row in arr]
    return [str(v) for v in df["V1"]], series


class M4Windows(torch.utils.data.Dataset):
    """Windows (series i, cut c): input ``s[c-L:c]``, target ``s[c:c+H]`` (scaled)."""

    def __init__(self, series: list[np.ndarray], index: np.ndarray, seq_len: int, pred_len: int,
                 base: list | None = None, extra: dict | None = None):
        self.series = [torch.as_tensor(s, dtype=torch.float32) for s in series]
        self.index = index  # (n, 2): series, cut
        self.L, self.H = seq_len, pred_len
        self.base = base  # per series: (in-sample base (N,), forecasts (N, H)) or None
        self.extra = extra or {}  # per-series arrays added to each item (mase_scale, naive2)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> dict:
        i, c = (int(v) for v in self.index[k])
        s = self.series[i]
        x = s[max(0, c - self.L) : c]
        if len(x) < self.L:  # front padding with the first value
            x = torch.cat([x[:1].expand(self.L - len(x)), x])
        y = s[c : c + self.H]
        if len(y) < self.H:
            raise DataError(f"M4 series {i}: cut {c} leaves {len(y)} target values, expected {self.H}")
        item = {"x": x[:, None], "y": y[:, None], "series": i, "t0": c - self.L}  # (L, 1), (H, 1)
        if self.base is not None:
            b_in, b_fc = self.base[i]
            xb = torch.as_tensor(b_in[max(0, c - self.L) : c], dtype=torch.float32)
            if len(xb) < self.L:
                xb = torch.cat([xb[:1].expand(self.L - len(xb)), xb])
            item["x_base"] = xb[:, None]  # (L, 1)
            item["y_base"] = torch.as_tensor(b_fc[c - 1], dtype=torch.float32)[:, None]  # (H, 1)
        for key, arr in self.extra.items():
            item[key] = torch.as_tensor(arr[i], dtype=torch.float32)
        return item


@dataclass
class M4Config:
    frequency: Literal["Yearly", "Quarterly", "Monthly", "Weekly", "Daily", "Hourly"] = "Hourly"
    root: str = "timeseries/m4"
    seq_len: int = 0  # 0: 2 * horizon (TSLib)
    pred_len: int = 0  # 0: the M4 horizon of the frequency
    history: float = 0.0  # cut points per series = history * horizon; 0: TSLib's history_size
    scaling: Literal["minmax", "none"] = "minmax"
    holt_winters: bool = False  # add MES-LSTM Holt-Winters baselines (x_base, y_base)
    hw_init: Literal["estimated", "heuristic"] = "estimated"  # statsmodels initialization_method
    max_series: int = 0  # use only the first n series (quick runs); 0: all
    batch_size: int = 64
    eval_batch_size: int = 256


def _scale(series: list[np.ndarray], n_fit: list[int], mode: str) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    locs, scales, out = [], [], []
    for s, n in zip(series, n_fit):
        if mode == "minmax":
            lo, hi = float(np.min(s[:n])), float(np.max(s[:n]))
            sc = (hi - lo) / (1 - MINMAX_LO) if hi > lo else 1.0
            loc = lo - MINMAX_LO * sc
        else:
            loc, sc = 0.0, 1.0
        locs.append(loc)
        scales.append(sc)
        out.append((s - loc) / sc)
    return out, np.array(locs)[:, None], np.array(scales)[:, None]


@register_dataset("m4", config=M4Config)
def m4(cfg: M4Config, data_root=None) -> DataBundle:
    """M4 wide CSVs: per-frequency horizon, held-out last horizon as validation, Naive2/MASE for OWA."""
    f = cfg.frequency
    H = cfg.pred_len or HORIZON[f]
    L = cfg.seq_len or 2 * H
    m = PERIOD[f]
    if L < 1 or H < 1:
        raise ConfigError(f"data.seq_len={cfg.seq_len}, data.pred_len={cfg.pred_len}: expected positive values")
    hint = "get the M4 files with `ostinato data download M4-Hourly` or from github.com/Mcompetitions/M4-methods"
    ptr = locate(f"{cfg.root}/{f}-train.csv", data_root, hint=hint)
    pte = locate(f"{cfg.root}/{f}-test.csv", data_root, hint=hint)
    ids, train = read_m4_wide(ptr)
    ids_te, test = read_m4_wide(pte)
    if ids != ids_te:
        raise DataError(f"{pte}: series ids differ from {ptr}")
    if cfg.max_series:
        ids, train, test = ids[: cfg.max_series], train[: cfg.max_series], test[: cfg.max_series]
    return series_bundle(ids, train, test, L, H, m, cfg.history or HISTORY[f], cfg.scaling, cfg.holt_winters,
                         cfg.hw_init, cfg.batch_size, cfg.eval_batch_size, ptr, pte, {"frequency": f}, strict_horizon=not cfg.pred_len)


def series_bundle(ids, train, test, L, H, m, hist, scaling, holt_winters, hw_init, batch_size, eval_batch_size,
                  ptr, pte, meta_extra, strict_horizon=True) -> DataBundle:
    """Build the M4-protocol bundle (see module doc) from per-series train/test arrays."""
    for sid, s, t in zip(ids, train, test):
        if len(t) < H:
            raise DataError(f"{pte}: series {sid} has {len(t)} test values, fewer than the horizon {H}")
        if strict_horizon and len(t) != H:
            raise DataError(f"{pte}: series {sid} has {len(t)} test values, expected the horizon {H}")
        if len(s) < H + 2:
            raise DataError(f"{ptr}: series {sid} has {len(s)} values, too short to hold out a validation horizon of {H}")
    n_fit = [len(s) - H for s in train]  # training part (the validation horizon is held out)
    full = [np.concatenate([s, t[:H]]) for s, t in zip(train, test)]  # train + test
    scaled, loc, scale = _scale(full, n_fit, scaling)
    base = None
    if holt_winters:
        base = hw_baselines_many(scaled, n_fit, m, H, hw_init)
    n_cuts = max(1, int(round(hist * H)))
    tr_index = [(i, c) for i, n in enumerate(n_fit) for c in range(max(1, n - H - n_cuts + 1), n - H + 1)]
    va_index = [(i, n) for i, n in enumerate(n_fit)]
    te_index = [(i, len(s)) for i, s in enumerate(train)]

    def extra(cut_of):  # MASE scales and Naive2 forecasts from the data before each cut
        ms = np.array([[M.mase_scale(full[i][:c], m)] for i, c in cut_of])  # (n, 1)
        n2 = np.stack([M.naive2(full[i][:c], H, m)[:, None] for i, c in cut_of])  # (n, H, 1)
        return {"mase_scale": ms, "naive2": n2}

    ds = lambda idx, ex=None: M4Windows(scaled, np.array(idx, dtype=np.int64), L, H, base, ex)  # noqa: E731
    return with_inference(DataBundle(
        train=ds(tr_index),
        val=ds(va_index, extra(va_index)),
        test=ds(te_index, extra(te_index)),
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        shuffle=True,
        model_kwargs={"n_vars": 1, "seq_len": L, "pred_len": H, "out_vars": 1},
        meta={"task": "forecast", "protocol": "series", "loc": loc, "scale": scale, "ids": ids,
              "period": m, "columns": ["value"], "scaling": scaling, **meta_extra},
    ))
