"""JHU CSSE COVID-19 global time series (wide CSVs), the MES-LSTM setting.

Files ``time_series_covid19_{confirmed,deaths,recovered}_global.csv``: columns
``Province/State, Country/Region, Lat, Long`` then one column of cumulative counts per day.
Date headers are accepted as ``M/D/YY`` (JHU's original) and ``M/D/YYYY`` (re-saved copies).
Provinces are summed per country. Several target files are aligned on their common dates.

MES-LSTM (Mathonsi & van Zyl 2022) used OWID ``total_deaths`` and ``total_cases`` for the
16 SADC countries; the JHU ``deaths`` and ``confirmed`` files stand in for them (OWID's
totals are built from JHU). Its protocol, followed here: chronological 85/5/10 split,
MinMax scaling to (1e-5, 1) per country and target on the training rows, window 14,
Holt-Winters per column (period 7 here: daily data with a weekly reporting cycle).
One model is trained on the windows of all countries (the original trained per country);
each item carries its country index. MASE uses the lag-1 in-sample scale (``mase_lag``).

Input layout (``inputs``):

- ``"targets"`` (default): the model reads the targets' own history, de-levelled by their
  Holt-Winters level and season, and forecasts the next ``pred_len`` days.
- ``"lagged_covariates"``: the official code's layout (``preprocess.reindex`` and
  ``lstm.split`` in ``zulucomputer/MES_LSTM``): the inputs are the *other* columns only
  (``covariates``), each de-levelled by its own Holt-Winters, and the targets lie ``lag`` (30)
  days further on: a window of covariate days ``[t-L+1, t]`` forecasts the targets of days
  ``t+lag+1 .. t+lag+H``. The targets never enter the input.

Differences from the official code, in both layouts: MinMax and Holt-Winters are fitted on the
training rows only (the original fits MinMax on all rows, test included, and again on the
30-day-shifted frame, and fits Holt-Winters on all rows); the target's baseline added back to the
output is its level and season projected from the window's last input day (the original adds the
target's in-sample level and season of day ``t+1``, one day after the last input, computed from
that day's value); the split (85/5/10) is by target day, so both layouts forecast the same test
days. With ``lagged_covariates`` the covariates are JHU files (``recovered`` by default): the
original used every OWID column kept after dropping smoothed, new and per-capita columns and
those with 40 % or more missing values (tests, hospitalisations, stringency, population ...),
which the JHU files do not have. JHU stopped reporting recoveries in August 2021, so from then
on the ``recovered`` series of most countries is zero.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd

from ostinato.core.data import DataBundle, DatasetSpec, FileSpec, locate
from ostinato.core.errors import ConfigError, DataError
from ostinato.core.registry import register_dataset

from .. import metrics as M
from .holt_winters import hw_baselines_many
from .windows import ForecastWindows, check_values, check_window, with_inference

SADC = [
    "Angola", "Botswana", "Comoros", "Congo (Kinshasa)", "Eswatini", "Lesotho", "Madagascar", "Malawi",
    "Mauritius", "Mozambique", "Namibia", "Seychelles", "South Africa", "Tanzania", "Zambia", "Zimbabwe",
]
MINMAX_LO = 1e-5
_SHA = {
    "confirmed": "2ba645bda7869d6b442da2960c607365ebf325949c20c331a23bf27b056dc2b0",
    "deaths": "54c32e239280cacc47d0890aa316d2cff4d9669ce4be8d6bf6948d4f3f18914f",
    "recovered": "c1fcddb84ab5caa701802060502212ee85c5e5a117d7523e4fc7677de28be7af",
}
COVID_SPECS = [
    DatasetSpec(
        name="covid19_jhu",
        domain="timeseries",
        files=tuple(FileSpec(f"timeseries/covid19_jhu/time_series_covid19_{k}_global.csv", sha256=v) for k, v in _SHA.items()),
        source="JHU CSSE COVID-19 Data Repository (csse_covid_19_time_series), final 2022 snapshot",
        licence="CC BY 4.0",
        description="daily cumulative confirmed/deaths/recovered per region, 2020-01-22..2022-08 (not shipped)",
        how_to_get="place the JHU global time-series CSVs under <data-root>/timeseries/covid19_jhu/",
    )
]


def parse_jhu_date(text: str) -> datetime | None:
    for fmt in ("%m/%d/%y", "%m/%d/%Y"):
        try:
            return datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    return None


def read_jhu(path) -> pd.DataFrame:
    """Wide JHU CSV -> DataFrame (dates x countries), provinces summed."""
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    need = ["Province/State", "Country/Region", "Lat", "Long"]
    if list(df.columns[:4]) != need:
        raise DataError(f"{path}: expected the JHU header {','.join(need)},<dates...>; got {list(df.columns[:4])}")
    dates = []
    for col in df.columns[4:]:
        d = parse_jhu_date(col)
        dup = re.fullmatch(r"(.+)\.\d+", col)  # pandas renames a repeated header 'D' to 'D.1'
        if d is None and dup and parse_jhu_date(dup.group(1)) is not None:
            raise DataError(f"{path}:1: date column {dup.group(1)!r} appears twice; expected strictly increasing date columns")
        if d is None:
            raise DataError(f"{path}: column header {col!r} is not a date in M/D/YY or M/D/YYYY form")
        dates.append(d)
    vals = df.iloc[:, 4:].apply(pd.to_numeric, errors="coerce")
    bad = vals.isna() & df.iloc[:, 4:].notna()
    if bad.to_numpy().any():
        r, c = np.argwhere(bad.to_numpy())[0]
        raise DataError(f"{path}:{r + 2}: column {df.columns[c + 4]!r} value {df.iloc[r, c + 4]!r} is not a number")
    check_values(path, vals.to_numpy(np.float64), columns=list(df.columns[4:]))
    d = pd.DatetimeIndex(dates)
    if len(d) > 1 and (d[1:] <= d[:-1]).any():
        i = int(np.flatnonzero(d[1:] <= d[:-1])[0]) + 1
        raise DataError(f"{path}:1: date column {df.columns[4 + i]!r} is not after the previous one "
                        f"{df.columns[3 + i]!r}; expected strictly increasing date columns")
    vals.columns = pd.DatetimeIndex(dates)
    vals.insert(0, "country", df["Country/Region"].to_numpy())
    return vals.groupby("country").sum(min_count=1).T.sort_index()  # (dates, countries)


@dataclass
class CovidConfig:
    root: str = "timeseries/covid19_jhu"
    targets: list[str] = field(default_factory=lambda: ["deaths", "confirmed"])  # MES-LSTM: total_deaths, total_cases
    countries: list[str] = field(default_factory=lambda: list(SADC))
    seq_len: int = 14
    pred_len: int = 1
    split: tuple[float, float, float] = (0.85, 0.05, 0.10)
    holt_winters: bool = True
    hw_period: int = 7  # Holt-Winters season length (weekly reporting cycle)
    hw_init: Literal["estimated", "heuristic"] = "estimated"
    mase_lag: int = 1
    batch_size: int = 32
    eval_batch_size: int = 256
    inputs: Literal["targets", "lagged_covariates"] = "targets"  # the input layout (module doc)
    covariates: list[str] = field(default_factory=lambda: ["recovered"])  # inputs=lagged_covariates: JHU files fed as inputs
    lag: int = 30  # inputs=lagged_covariates: days from the last input day to the day before the first target


def _check(cfg: CovidConfig) -> None:
    check_window(cfg.seq_len, cfg.pred_len)
    if abs(sum(cfg.split) - 1.0) > 1e-6 or min(cfg.split) <= 0:
        raise ConfigError(f"data.split={list(cfg.split)}: expected three positive shares summing to 1")
    if not cfg.targets or not cfg.countries:
        raise ConfigError("data.targets and data.countries must not be empty")
    if cfg.inputs == "lagged_covariates":
        if not cfg.covariates or set(cfg.covariates) & set(cfg.targets):
            raise ConfigError(f"data.covariates={cfg.covariates}: expected JHU files other than the targets {cfg.targets} "
                              "(data.inputs=lagged_covariates feeds no target)")
        if cfg.lag < 0:
            raise ConfigError(f"data.lag={cfg.lag}: expected >= 0 days")


def _read(cfg: CovidConfig, names: list[str], data_root) -> tuple[list, pd.DatetimeIndex]:
    """[(path, dates x countries frame)] per JHU file name, and their common dates."""
    frames = []
    for t in names:
        p = locate(f"{cfg.root}/time_series_covid19_{t}_global.csv", data_root,
                   hint="place the JHU CSSE global time-series CSVs under <data-root>/timeseries/covid19_jhu/")
        frames.append((p, read_jhu(p)))
    dates = frames[0][1].index
    for _, f in frames[1:]:
        dates = dates.intersection(f.index)
    return frames, dates


def _minmax(frames: list, dates, country: str, n_tr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One country's columns: raw (n, C), scaled to (1e-5, 1) on the training rows, loc (C,), scale (C,)."""
    cols = []
    for p, f in frames:
        if country not in f.columns:
            raise DataError(f"{p}: no country {country!r} in 'Country/Region'")
        cols.append(f.loc[dates, country].to_numpy(np.float64))
    raw = pd.DataFrame(np.stack(cols, axis=1)).ffill().fillna(0.0).to_numpy()  # (n, C); missing reports: the last count
    lo, hi = raw[:n_tr].min(0), raw[:n_tr].max(0)
    sc = np.where(hi > lo, (hi - lo) / (1 - MINMAX_LO), 1.0)
    loc = lo - MINMAX_LO * sc
    return raw, (raw - loc) / sc, loc, sc


def _baselines(cfg: CovidConfig, ys: list[np.ndarray], n_tr: int, horizon: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Holt-Winters per country and column (``ys``: (n, C) per country), fitted on the training rows:
    per country the in-sample baseline (n, C) and the projections (n, horizon, C)."""
    C = ys[0].shape[1]
    parts = hw_baselines_many([d[:, c] for d in ys for c in range(C)], [n_tr] * (len(ys) * C), cfg.hw_period, horizon, cfg.hw_init)
    out = []
    for i in range(len(ys)):
        mine = parts[i * C : (i + 1) * C]
        out.append((np.stack([b for b, _ in mine], axis=1), np.stack([f for _, f in mine], axis=2)))
    return out


@register_dataset("covid_jhu", config=CovidConfig)
def covid_jhu(cfg: CovidConfig, data_root=None) -> DataBundle:
    """JHU COVID-19 wide CSVs (M/D/YY or M/D/YYYY headers), per-country windows, 85/5/10 split."""
    _check(cfg)
    lagged = cfg.inputs == "lagged_covariates"
    frames, dates = _read(cfg, list(cfg.targets) + (list(cfg.covariates) if lagged else []), data_root)
    n, T = len(dates), len(cfg.targets)
    n_tr, n_va = int(n * cfg.split[0]), int(n * cfg.split[1])
    L, H, off = cfg.seq_len, cfg.pred_len, cfg.lag if lagged else 0
    if n_tr - off < L + H or n_va < 1 or n - n_tr - n_va < H:
        raise DataError(f"{frames[0][0]}: {n} common dates are too few for seq_len={L}, pred_len={H}"
                        f"{f', lag={off}' if lagged else ''} and split {list(cfg.split)}")
    cols = [_minmax(frames, dates, c, n_tr) for c in cfg.countries]  # (raw, scaled, loc, scale), targets first
    ys = [c[1][:, :T] for c in cols]  # (n, T) scaled targets per country
    xs = [c[1][:, T:] for c in cols] if lagged else ys  # (n, C_in) the input columns
    if cfg.holt_winters:
        y_hw = _baselines(cfg, ys, n_tr, off + H)  # the targets' projections from each day, lag+1 .. lag+H days on
        x_hw = _baselines(cfg, xs, n_tr, 1) if lagged else y_hw  # the inputs' in-sample level + season
    splits = {"train": [], "val": [], "test": []}
    marks = np.zeros((n - off, 0), np.float32)
    bounds = ((0, n_tr - off), (n_tr - off - L, n_tr + n_va - off), (n_tr + n_va - off - L, n - off))  # rows r: target day r + off
    for ci, (raw, *_) in enumerate(cols):
        base = base_fc = None
        if cfg.holt_winters:
            base, base_fc = x_hw[ci][0][: n - off], y_hw[ci][1][: n - off, off:]  # (n-off, C_in), (n-off, H, T)
        mase = np.array([M.mase_scale(raw[:n_tr, c], cfg.mase_lag) for c in range(T)])  # (T,)
        for split, (lo_r, hi_r) in zip(("train", "val", "test"), bounds):
            sl = slice(lo_r, hi_r)
            splits[split].append(ForecastWindows(
                xs[ci][: n - off][sl], ys[ci][off:][sl], marks[sl], L, H,
                base=None if base is None else base[sl], base_fc=None if base_fc is None else base_fc[sl],
                series=ci, row0=lo_r, extra={"mase_scale": mase},
            ))
    import torch

    cat = {k: torch.utils.data.ConcatDataset(v) for k, v in splits.items()}
    meta = {"task": "forecast", "protocol": "series", "loc": np.stack([c[2][:T] for c in cols]),
            "scale": np.stack([c[3][:T] for c in cols]), "ids": list(cfg.countries), "columns": list(cfg.targets),
            "period": cfg.hw_period, "scaling": "minmax", "dates": [str(dates[0].date()), str(dates[-1].date())]}
    if lagged:
        meta.update(inputs=cfg.inputs, covariates=list(cfg.covariates), lag=off)
    return with_inference(DataBundle(
        train=cat["train"], val=cat["val"], test=cat["test"],
        batch_size=cfg.batch_size, eval_batch_size=cfg.eval_batch_size, shuffle=True,
        model_kwargs={"n_vars": xs[0].shape[1], "seq_len": L, "pred_len": H, "out_vars": T},
        meta=meta,
    ))
