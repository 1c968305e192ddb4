"""Shared pieces of the forecasting loaders: CSV reading with one-line errors, the
Time-Series-Library StandardScaler and time features, and the sliding-window dataset.

Conventions (Time-Series-Library, ``data_provider/data_loader.py``):

- ``features``: ``M`` all variates -> all variates, ``S`` target -> target,
  ``MS`` all variates -> target. The target is the last column.
- A window starting at row ``i`` has input rows ``[i, i + seq_len)`` and target rows
  ``[i + seq_len, i + seq_len + pred_len)``; a split of ``n`` rows has
  ``n - seq_len - pred_len + 1`` windows. TSLib's decoder ``label_len`` prefix is not
  produced: no model here has a decoder that consumes it.
- Time features (``timeenc=1``): each calendar field mapped to [-0.5, 0.5], e.g.
  hour/23 - 0.5, weekday/6 - 0.5, (day-1)/30 - 0.5, (dayofyear-1)/365 - 0.5.

Items are dicts: ``x`` (L, C_in), ``y`` (H, C_out), ``x_mark`` (L, F), ``y_mark`` (H, F),
``series`` (index into the bundle's ``meta["loc"]``/``meta["scale"]``, the affine map back
to the original scale: ``original = value * scale + loc``), ``t0`` (row of the first
input step), and, when Holt-Winters baselines are requested, ``x_base``/``y_base``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd
import torch

from ostinato.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    from ostinato.core.data import DataBundle

FEATURES = ("M", "S", "MS")


class StandardScaler:
    """Per-column mean/std fitted on the training rows only (sklearn's, population std)."""

    def __init__(self):
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, x: np.ndarray) -> "StandardScaler":
        self.mean = x.mean(0)
        std = x.std(0)
        self.std = np.where(std == 0, 1.0, std)  # sklearn leaves constant columns unscaled
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        return x * self.std + self.mean


def read_dated_csv(path: Path, date_col: str = "date") -> pd.DataFrame:
    """Read a CSV whose first column is ``date``; every other column must be numeric.

    Raises a one-line DataError naming the file (and line) on: a missing date column,
    an unparseable date, a non-numeric value, an empty file, a value that is not finite
    or overflows float32, or a date that is not after the previous row's.
    """
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    if date_col not in df.columns:
        raise DataError(f"{path}: no {date_col!r} column; expected a header like '{date_col},<var1>,...,<target>', got {list(df.columns)[:8]}")
    if len(df) == 0:
        raise DataError(f"{path}: no data rows")
    dates = pd.to_datetime(df[date_col], errors="coerce", format="mixed")
    if dates.isna().any():
        i = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise DataError(f"{path}:{i + 2}: date {df[date_col].iloc[i]!r} is not a date")
    for col in df.columns:
        if col == date_col:
            continue
        num = pd.to_numeric(df[col], errors="coerce")
        bad = num.isna() & df[col].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}:{i + 2}: column {col!r} value {df[col].iloc[i]!r} is not a number")
        if num.isna().any():
            i = int(np.flatnonzero(num.isna().to_numpy())[0])
            raise DataError(f"{path}:{i + 2}: column {col!r} is empty; expected a number (fill missing values first)")
        df[col] = num.astype(np.float64)
        check_values(path, df[col].to_numpy(), f"column {col!r}")
    check_dates(path, dates)
    df[date_col] = dates
    return df


F32_MAX = float(np.finfo(np.float32).max)


def check_values(path, values: np.ndarray, what: str = "value", first_line: int = 2, columns=None) -> None:
    """Every value finite and within float32's range (the models run in float32); else a
    one-line DataError ``path:line`` (``first_line``: the CSV line of row 0, header counted).
    ``values`` is (N,) or (N, C) with ``columns`` naming the C columns; NaN is left to the caller."""
    v = np.asarray(values, dtype=np.float64)
    bad = np.isinf(v) | (np.abs(np.nan_to_num(v)) > F32_MAX)
    if not bad.any():
        return
    idx = np.argwhere(bad)[0]
    r = int(idx[0])
    if v.ndim == 2 and columns is not None:
        what = f"column {columns[int(idx[1])]!r}"
    x = float(v[tuple(idx)])
    kind = "is not finite" if np.isinf(x) else "overflows float32"
    raise DataError(f"{path}:{r + first_line}: {what} value {x!r} {kind}; expected a finite number "
                    f"with magnitude <= {F32_MAX:.3g}")


def check_dates(path, dates, first_line: int = 2) -> None:
    """Dates strictly increasing (no repeats); else a one-line DataError ``path:line``."""
    d = pd.DatetimeIndex(dates)
    if len(d) < 2:
        return
    step = d[1:] <= d[:-1]
    if not step.any():
        return
    i = int(np.flatnonzero(step)[0]) + 1
    if d[i] == d[i - 1]:
        raise DataError(f"{path}:{i + first_line}: date {d[i]} repeats the previous line's; "
                        "expected strictly increasing dates, one row per time step")
    raise DataError(f"{path}:{i + first_line}: date {d[i]} is before the previous line's {d[i - 1]}; "
                    "expected strictly increasing dates (sort the file by date)")


def select_columns(df: pd.DataFrame, features: str, target: str, path: Path) -> tuple[np.ndarray, list[str], int]:
    """TSLib column order: date, the other variates, target last. Returns (data, names, n_out)."""
    if features not in FEATURES:
        raise ConfigError(f"data.features={features!r}: expected one of {list(FEATURES)}")
    if target not in df.columns:
        raise DataError(f"{path}: target column {target!r} not found; columns are {list(df.columns)}")
    others = [c for c in df.columns if c not in ("date", target)]
    if features == "S":
        names = [target]
    else:
        names = others + [target]
    n_out = len(names) if features == "M" else 1
    return df[names].to_numpy(np.float64), names, n_out


def time_features(dates: pd.DatetimeIndex | pd.Series, freq: str) -> np.ndarray:
    """TSLib ``timeenc=1`` features, (N, F) float32, each in [-0.5, 0.5]."""
    d = pd.DatetimeIndex(dates)
    minute = d.minute.to_numpy() / 59.0 - 0.5
    hour = d.hour.to_numpy() / 23.0 - 0.5
    dow = d.dayofweek.to_numpy() / 6.0 - 0.5
    dom = (d.day.to_numpy() - 1) / 30.0 - 0.5
    doy = (d.dayofyear.to_numpy() - 1) / 365.0 - 0.5
    moy = (d.month.to_numpy() - 1) / 11.0 - 0.5
    woy = (d.isocalendar().week.to_numpy().astype(np.float64) - 1) / 52.0 - 0.5
    table = {
        "t": [minute, hour, dow, dom, doy],
        "h": [hour, dow, dom, doy],
        "d": [dow, dom, doy],
        "b": [dow, dom, doy],
        "w": [dom, woy],
        "m": [moy],
    }
    if freq not in table:
        raise ConfigError(f"data.freq={freq!r}: expected one of {list(table)}")
    return np.stack(table[freq], axis=1).astype(np.float32)  # (N, F)


class ForecastWindows(torch.utils.data.Dataset):
    """Sliding windows over one split (rows ``[lo, hi)`` of the arrays; TSLib ``__getitem__``)."""

    def __init__(
        self,
        data_x: np.ndarray,  # (N, C_in) scaled
        data_y: np.ndarray,  # (N, C_out) scaled
        marks: np.ndarray,  # (N, F)
        seq_len: int,
        pred_len: int,
        base: np.ndarray | None = None,  # (N, C_out) Holt-Winters in-sample baseline (optional)
        base_fc: np.ndarray | None = None,  # (N, pred_len, C_out) baseline forecast from each origin
        series: int = 0,
        row0: int = 0,
        extra: dict | None = None,  # constant per-dataset values added to every item
    ):
        self.x = torch.as_tensor(data_x, dtype=torch.float32)
        self.y = torch.as_tensor(data_y, dtype=torch.float32)
        self.marks = torch.as_tensor(marks, dtype=torch.float32)
        self.base = None if base is None else torch.as_tensor(base, dtype=torch.float32)
        self.base_fc = None if base_fc is None else torch.as_tensor(base_fc, dtype=torch.float32)
        self.seq_len, self.pred_len = seq_len, pred_len
        self.series, self.row0 = series, row0
        self.extra = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in (extra or {}).items()}

    def __len__(self) -> int:
        return max(0, len(self.x) - self.seq_len - self.pred_len + 1)

    def __getitem__(self, i: int) -> dict:
        if i < 0:
            i += len(self)
        s, e = i, i + self.seq_len
        item = {
            "x": self.x[s:e],  # (L, C_in)
            "y": self.y[e : e + self.pred_len],  # (H, C_out)
            "x_mark": self.marks[s:e],  # (L, F)
            "y_mark": self.marks[e : e + self.pred_len],  # (H, F)
            "series": self.series,
            "t0": self.row0 + s,
        }
        if self.base is not None:
            item["x_base"] = self.base[s:e]  # (L, C_out)
            item["y_base"] = self.base_fc[e - 1]  # (H, C_out): forecast from origin e-1
        item.update(self.extra)
        return item


def check_split_length(path: Path, split: str, n_rows: int, seq_len: int, pred_len: int) -> None:
    if n_rows < seq_len + pred_len:
        raise DataError(
            f"{path}: the {split} split has {n_rows} rows, too short for seq_len={seq_len} + pred_len={pred_len}"
            f" (needs at least {seq_len + pred_len})"
        )


def check_window(seq_len: int, pred_len: int) -> None:
    if seq_len < 1 or pred_len < 1:
        raise ConfigError(f"data.seq_len={seq_len}, data.pred_len={pred_len}: both must be >= 1")


def concat_windows(parts: Sequence[torch.utils.data.Dataset]) -> torch.utils.data.Dataset:
    return parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(list(parts))


# what the verbs read without the data (DataBundle.inference): the task, the columns and the
# scaling `ostinato forecast` applies to a new CSV, the calendar frequency of x_mark, the
# Holt-Winters period, the class names of a classifier, an input layout other than the targets' own
INFERENCE_KEYS = ("task", "protocol", "columns", "n_out", "in_mean", "in_std", "freq", "period", "scaling", "classes", "inputs")


def with_inference(bundle: "DataBundle") -> "DataBundle":
    """Fill ``bundle.inference`` with the :data:`INFERENCE_KEYS` of its ``meta``; returns it."""
    bundle.inference = {k: bundle.meta[k] for k in INFERENCE_KEYS if k in bundle.meta}
    return bundle


def forecast_bundle(
    path: Path,
    df: pd.DataFrame,
    borders: tuple[tuple[int, int], tuple[int, int], tuple[int, int]],
    cfg,
) -> "DataBundle":
    """Scale on the train rows only, cut the three splits at ``borders`` ((lo, hi) row ranges,
    val/test ``lo`` already moved back by ``seq_len``), and return the bundle.

    ``cfg`` needs: features, target, seq_len, pred_len, freq, scale, batch_size,
    eval_batch_size; with ``holt_winters`` true also ``hw_period`` and ``hw_init`` (MES-LSTM
    baselines for the target columns, fitted on the train rows).
    """
    from ostinato.core.data import DataBundle

    check_window(cfg.seq_len, cfg.pred_len)
    data, names, n_out = select_columns(df, cfg.features, cfg.target, path)
    (tr_lo, tr_hi) = borders[0]
    scaler = StandardScaler().fit(data[tr_lo:tr_hi])
    if cfg.scale:
        data = scaler.transform(data)
    else:
        scaler.mean, scaler.std = np.zeros(data.shape[1]), np.ones(data.shape[1])
    marks = time_features(df["date"], cfg.freq)
    base = base_fc = None
    if getattr(cfg, "holt_winters", False):
        from .holt_winters import hw_baselines

        parts = [hw_baselines(data[:, c], tr_hi, cfg.hw_period, cfg.pred_len, cfg.hw_init) for c in range(data.shape[1] - n_out, data.shape[1])]
        base = np.stack([b for b, _ in parts], axis=1)  # (N, C_out)
        base_fc = np.stack([f for _, f in parts], axis=2)  # (N, H, C_out)
    splits = {}
    for split, (lo, hi) in zip(("train", "val", "test"), borders):
        if lo < 0:
            raise DataError(f"{path}: {len(df)} rows is too short for seq_len={cfg.seq_len} (the {split} split would start before row 0)")
        check_split_length(path, split, hi - lo, cfg.seq_len, cfg.pred_len)
        x = data[lo:hi].astype(np.float32)  # (N, C_in)
        y = x[:, -n_out:]  # (N, C_out): target last, as TSLib's f_dim = -1 for MS
        splits[split] = ForecastWindows(
            x, y, marks[lo:hi], cfg.seq_len, cfg.pred_len, row0=lo,
            base=None if base is None else base[lo:hi], base_fc=None if base_fc is None else base_fc[lo:hi],
        )
    loc = scaler.mean[-n_out:][None, :]  # (1, C_out)
    scale = scaler.std[-n_out:][None, :]  # (1, C_out)
    return with_inference(DataBundle(
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        batch_size=cfg.batch_size,
        eval_batch_size=cfg.eval_batch_size,
        shuffle=True,
        drop_last=False,
        model_kwargs={"n_vars": data.shape[1], "seq_len": cfg.seq_len, "pred_len": cfg.pred_len, "out_vars": n_out},
        meta={
            "task": "forecast",
            "path": str(path),
            "columns": names,
            "n_out": n_out,
            "loc": loc.astype(np.float64),
            "scale": scale.astype(np.float64),
            "in_mean": scaler.mean.astype(np.float64),
            "in_std": scaler.std.astype(np.float64),
            "freq": cfg.freq,
            "borders": [list(b) for b in borders],
            "last_date": str(df["date"].iloc[-1]),
            "step": str(pd.Series(df["date"]).diff().iloc[-1]) if len(df) > 1 else "",
        },
    ))
