"""Forecasting beyond a CSV with a trained run: the library behind the ``ostinato forecast`` verb
(its command line is in ``cli.py``)::

    ostinato forecast CHECKPOINT --csv FILE [--horizon H] [--out preds.csv] [--plot out.png]

Predicts the future beyond the last row of a dated CSV with a trained forecasting run:

1. the CSV must have a ``date`` column and the columns the model was trained on (the run's
   ``inference["columns"]``, target last); other columns are ignored;
2. the last ``seq_len`` rows are scaled as in training: TSLib data (ETT, custom CSV) with
   the StandardScaler fitted on the run's training split (saved in the checkpoint, so the
   run folder alone is enough: no training data is read); per-series data (M4, COVID) with
   MinMax (1e-5, 1) fitted on the CSV's own history (as each series was in training);
   MES-LSTM's Holt-Winters baselines are fitted on the CSV's history;
3. the model forecasts ``pred_len`` steps; ``--horizon`` shorter truncates, longer runs the
   model recursively on its own forecasts (only when it forecasts every input variate and
   uses no Holt-Winters baselines);
4. writes a CSV (``date`` continuing the CSV's step, one column per target, plus
   ``<col>_lo``/``<col>_hi`` for the central ``1 - alpha`` interval when the model has one)
   and optionally a PNG of history, forecast and interval.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ostinato.core.errors import ConfigError, DataError

from .data.windows import read_dated_csv, time_features


def _future_dates(dates: pd.Series, n: int) -> pd.DatetimeIndex:
    d = pd.DatetimeIndex(dates)
    freq = pd.infer_freq(d[-min(len(d), 50):]) if len(d) >= 3 else None
    if freq is not None:
        return pd.date_range(d[-1], periods=n + 1, freq=freq)[1:]
    step = d[-1] - d[-2] if len(d) >= 2 else pd.Timedelta(days=1)
    return pd.DatetimeIndex([d[-1] + step * (i + 1) for i in range(n)])


def prepare_input(model, cfg, data, df: pd.DataFrame, csv: Path) -> tuple[dict, dict]:
    """-> (batch with x (1, L, C) [+ x_base, y_base], scaling dict with loc/scale (C_out,))."""
    meta = data.inference  # columns, scaler, freq, period (saved in the checkpoint)
    if meta.get("inputs", "targets") != "targets":
        raise ConfigError(f"this run reads data.inputs={meta['inputs']} (covariates, no targets); "
                          "`ostinato forecast` feeds a CSV of the targets' own history: retrain with data.inputs=targets")
    cols = list(meta.get("columns", []))
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"{csv}: missing column(s) {missing}; the model was trained on {cols} (target last)")
    L, n_out = int(cfg.model.seq_len), int(getattr(cfg.model, "out_vars", 0) or len(cols))
    if len(df) < L:
        raise DataError(f"{csv}: {len(df)} rows, too short for the model's look-back seq_len={L}")
    raw = df[cols].to_numpy(np.float64)  # (N, C)
    if meta.get("protocol", "tslib") == "tslib":
        mean, std = np.asarray(meta["in_mean"]), np.asarray(meta["in_std"])
        z = (raw - mean) / std
        loc, scale = mean[-n_out:], std[-n_out:]
    elif meta.get("scaling", "minmax") == "minmax":
        lo, hi = raw.min(0), raw.max(0)
        scale = np.where(hi > lo, (hi - lo) / (1 - 1e-5), 1.0)
        loc = lo - 1e-5 * scale
        z = (raw - loc) / scale
        loc, scale = loc[-n_out:], scale[-n_out:]
    else:
        z, loc, scale = raw, np.zeros(n_out), np.ones(n_out)
    batch = {"x": torch.as_tensor(z[-L:], dtype=torch.float32)[None], "t0": torch.tensor([len(z) - L])}  # (1, L, C)
    if meta.get("freq"):  # calendar features of the look-back (TSLib timeenc=1), for models that read x_mark
        batch["x_mark"] = torch.as_tensor(time_features(df["date"].iloc[-L:], meta["freq"]))[None]  # (1, L, F)
    if getattr(cfg.data, "holt_winters", False):
        from .data.holt_winters import hw_baselines

        period = int(getattr(cfg.data, "hw_period", 0) or meta.get("period") or 1)
        H = int(cfg.model.pred_len)
        parts = [hw_baselines(z[:, c], len(z), period, H, getattr(cfg.data, "hw_init", "estimated")) for c in range(z.shape[1] - n_out, z.shape[1])]
        batch["x_base"] = torch.as_tensor(np.stack([b[-L:] for b, _ in parts], 1), dtype=torch.float32)[None]  # (1, L, C_out)
        batch["y_base"] = torch.as_tensor(np.stack([f[-1] for _, f in parts], 1), dtype=torch.float32)[None]  # (1, H, C_out)
    return batch, {"loc": loc, "scale": scale, "cols": cols[-n_out:]}


@torch.no_grad()
def forecast(model, cfg, data, csv: Path, horizon: int = 0, alpha: float = 0.05, n_samples: int = 100) -> pd.DataFrame:
    if data.inference.get("task", "forecast") != "forecast":
        raise ConfigError(f"this run is a {data.inference.get('task')} model; `ostinato forecast` needs a forecasting run")
    df = read_dated_csv(csv)
    batch, sc = prepare_input(model, cfg, data, df, csv)
    H = int(cfg.model.pred_len)
    horizon = horizon or H
    model.eval()
    pred = model.predict(batch)  # (1, H, C_out)
    lo = hi = None
    if hasattr(model, "predict_interval"):
        lo, hi = model.predict_interval(batch, alpha=alpha, n_samples=n_samples)
    if horizon > H:
        if pred.shape[-1] != batch["x"].shape[-1] or "x_base" in batch:
            raise ConfigError(f"--horizon {horizon} > the model's pred_len {H}, and this model cannot run recursively "
                              "(it does not forecast every input column, or uses Holt-Winters baselines); retrain with data.pred_len")
        preds, x, L, marks = [pred], batch["x"], batch["x"].shape[1], None
        if "x_mark" in batch:  # calendar features of the look-back and of every future step
            future = time_features(_future_dates(df["date"], horizon + H), data.inference["freq"])
            marks = torch.cat([batch["x_mark"][0], torch.as_tensor(future)])  # (L + horizon + H, F)
        while (done := sum(p.shape[1] for p in preds)) < horizon:
            x = torch.cat([x, preds[-1]], dim=1)[:, -L:]  # (1, L, C)
            step = {**batch, "x": x} if marks is None else {**batch, "x": x, "x_mark": marks[done : done + L][None]}
            preds.append(model.predict(step))
        pred = torch.cat(preds, dim=1)
        lo = hi = None  # intervals are not propagated through the recursion
    pred = pred[0, :horizon].numpy() * sc["scale"] + sc["loc"]  # (horizon, C_out)
    out = pd.DataFrame({"date": _future_dates(df["date"], horizon)})
    for j, c in enumerate(sc["cols"]):
        out[c] = pred[:, j]
        if lo is not None:
            out[f"{c}_lo"] = lo[0, :horizon, j].numpy() * sc["scale"][j] + sc["loc"][j]
            out[f"{c}_hi"] = hi[0, :horizon, j].numpy() * sc["scale"][j] + sc["loc"][j]
    out.attrs["history"] = df
    return out


def plot(out: pd.DataFrame, path: Path, n_history: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = out.attrs["history"].iloc[-n_history:]
    target = [c for c in out.columns if c != "date" and not c.endswith(("_lo", "_hi"))][-1]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot(hist["date"], hist[target], color="k", lw=1, label="history")
    ax.plot(out["date"], out[target], color="tab:blue", lw=1.3, label="forecast")
    if f"{target}_lo" in out:
        ax.fill_between(out["date"], out[f"{target}_lo"], out[f"{target}_hi"], color="tab:blue", alpha=0.2, label="interval")
    ax.set_title(f"{target}: forecast of {len(out)} steps", fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
