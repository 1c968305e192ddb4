"""Evaluation for the timeseries domain: ``evaluate(model, data, split, cfg) -> metrics``.

What is computed depends on ``data.meta["task"]`` and, for forecasting,
``data.meta["protocol"]``:

- ``forecast`` / ``tslib`` (ETT, custom CSV): ``mse``, ``mae``, ``rmse`` over every element
  on the normalised scale (TSLib), or on the original scale with ``eval.inverse=true``.
- ``forecast`` / ``series`` (M4, COVID: per-series scaling): ``mse``/``mae`` on the
  model's scale (for monitoring), and on the original scale ``smape``, ``mase`` and,
  when the data provides Naive2 forecasts, ``owa``.
- intervals, for models with ``predict_interval`` (MES-LSTM, ES-RNN, seasonal naive):
  ``coverage``, ``width`` and ``mis`` of the central ``1 - eval.alpha`` interval (plus
  ``msis`` under the series protocol), on the same scale as the point metrics.
- ``classify``: ``accuracy`` and the mean cross-entropy ``loss``.
- ``anomaly``: reconstruction error per time step as the score, TSLib threshold
  (``eval.anomaly_ratio`` percent of train + test scores) and point-adjusted ``f1``,
  ``precision``, ``recall``.

Metric conventions are documented in :mod:`ostinato.timeseries.metrics`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ostinato.core.data import batches
from ostinato.core.device import to_device
from ostinato.core.errors import ConfigError
from ostinato.core.measure import model_device

from . import metrics as M


@dataclass
class TimeseriesEvalConfig:
    inverse: bool = False  # TSLib --inverse: point metrics on the original scale
    alpha: float = 0.05  # intervals are central (1 - alpha)
    n_samples: int = 100  # posterior samples for the Bayesian interval head (MES-LSTM)
    intervals: bool = True  # compute interval metrics when the model provides intervals
    anomaly_ratio: float = 1.0  # percent of points flagged as anomalous (TSLib anomaly_ratio)
    save_dir: str = ""  # `ostinato eval --save-dir DIR`: write forecast plots (PNG) there
    n_plots: int = 4  # how many windows to plot with save_dir

    def validate(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"eval.alpha={self.alpha}: expected 0 < alpha < 1")
        if self.n_samples < 2:
            raise ConfigError(f"eval.n_samples={self.n_samples}: expected at least 2")


def eval_config(cfg) -> TimeseriesEvalConfig:
    """The run's typed eval section (the defaults without a run config)."""
    return cfg.eval if cfg is not None else TimeseriesEvalConfig()


def _loader(data, split: str):
    ds = data.split(split)
    return batches(ds, data.eval_batch_size or data.batch_size, data.collate)


@torch.no_grad()
def collect_forecasts(model, data, split: str, ev: TimeseriesEvalConfig) -> dict[str, np.ndarray]:
    """Run the model over a split: preds/trues (N, H, C), series (N,), intervals if any."""
    model.eval()
    dev = model_device(model)
    want_iv = ev.intervals and hasattr(model, "predict_interval")
    out: dict[str, list] = {"pred": [], "true": [], "series": [], "x": []}
    extra = ("mase_scale", "naive2", "y_base")
    for batch in _loader(data, split):
        batch = to_device(batch, dev)
        pred = model.predict(batch)  # (B, H, C)
        out["pred"].append(pred.float().cpu().numpy())
        out["true"].append(batch["y"].float().cpu().numpy())
        out["x"].append(batch["x"][..., -pred.shape[-1]:].float().cpu().numpy())
        s = batch.get("series", torch.zeros(len(pred), dtype=torch.long))
        out["series"].append(torch.as_tensor(s).cpu().numpy())
        for k in extra:
            if k in batch:
                out.setdefault(k, []).append(batch[k].float().cpu().numpy())
        if want_iv:
            lo, hi = model.predict_interval(batch, alpha=ev.alpha, n_samples=ev.n_samples)
            out.setdefault("lo", []).append(lo.float().cpu().numpy())
            out.setdefault("hi", []).append(hi.float().cpu().numpy())
    if not out["pred"]:
        raise ConfigError(f"the {split} split has no windows to evaluate")
    return {k: np.concatenate(v) for k, v in out.items()}


def inverse(values: np.ndarray, series: np.ndarray, meta: dict) -> np.ndarray:
    """Scaled -> original: ``value * scale[series] + loc[series]`` (broadcast over H)."""
    loc = np.asarray(meta["loc"])[series][:, None, :]  # (N, 1, C)
    scale = np.asarray(meta["scale"])[series][:, None, :]  # (N, 1, C)
    return values * scale + loc


def forecast_metrics(r: dict[str, np.ndarray], meta: dict, ev: TimeseriesEvalConfig) -> dict[str, float]:
    protocol = meta.get("protocol", "tslib")
    pred, true = r["pred"], r["true"]
    res: dict[str, float] = {}
    if protocol == "tslib":
        if ev.inverse:
            pred, true = inverse(pred, r["series"], meta), inverse(true, r["series"], meta)
        res.update(mse=M.mse(pred, true), mae=M.mae(pred, true), rmse=M.rmse(pred, true))
        if "lo" in r:
            lo, hi = r["lo"], r["hi"]
            if ev.inverse:
                lo, hi = inverse(lo, r["series"], meta), inverse(hi, r["series"], meta)
            res.update(coverage=M.coverage(lo, hi, true), width=M.interval_width(lo, hi), mis=M.mis(lo, hi, true, ev.alpha))
        return res
    # series protocol: one row per (series, forecast origin), original scale for M4 metrics
    res.update(mse=M.mse(pred, true), mae=M.mae(pred, true))
    P, T = inverse(pred, r["series"], meta), inverse(true, r["series"], meta)
    n, c = len(P), P.shape[-1]
    flatP = P.transpose(0, 2, 1).reshape(n * c, -1)  # (N*C, H): one row per series and variate
    flatT = T.transpose(0, 2, 1).reshape(n * c, -1)  # (N*C, H)
    res["smape"] = M.smape(flatP, flatT)
    if "mase_scale" in r:
        scale = r["mase_scale"].reshape(n * c)  # (N*C,)
        ok = np.isfinite(scale) & (scale > 0)
        res["mase"] = M.mase(flatP[ok], flatT[ok], scale[ok])
        if "naive2" in r:
            N2 = r["naive2"].transpose(0, 2, 1).reshape(n * c, -1)  # (N*C, H), original scale
            s2, m2 = M.smape(N2, flatT), M.mase(N2[ok], flatT[ok], scale[ok])
            res.update(smape_naive2=s2, mase_naive2=m2, owa=M.owa(res["smape"], res["mase"], s2, m2))
    if "lo" in r:
        lo, hi = inverse(r["lo"], r["series"], meta), inverse(r["hi"], r["series"], meta)
        res.update(coverage=M.coverage(lo, hi, T), width=M.interval_width(lo, hi), mis=M.mis(lo, hi, T, ev.alpha))
        if "mase_scale" in r:
            lo2 = lo.transpose(0, 2, 1).reshape(n * c, -1)  # (N*C, H)
            hi2 = hi.transpose(0, 2, 1).reshape(n * c, -1)  # (N*C, H)
            res["msis"] = M.msis(lo2[ok], hi2[ok], flatT[ok], ev.alpha, scale[ok])
    return res


@torch.no_grad()
def classify_metrics(model, data, split: str) -> dict[str, float]:
    model.eval()
    dev = model_device(model)
    logits, labels = [], []
    for batch in _loader(data, split):
        batch = to_device(batch, dev)
        logits.append(model.predict(batch).float().cpu())
        labels.append(batch["label"].cpu())
    lg, lb = torch.cat(logits), torch.cat(labels)
    return {"accuracy": M.accuracy(lg.numpy(), lb.numpy()), "loss": float(F.cross_entropy(lg, lb))}


@torch.no_grad()
def anomaly_metrics(model, data, split: str, ev: TimeseriesEvalConfig) -> dict[str, float]:
    model.eval()
    dev = model_device(model)

    def scores(name):
        s, lab = [], []
        for batch in _loader(data, name):
            batch = to_device(batch, dev)
            s.append(model.anomaly_score(batch).float().cpu().reshape(-1))  # (B*L,)
            if "labels" in batch:
                lab.append(batch["labels"].cpu().reshape(-1))
        return torch.cat(s).numpy(), (torch.cat(lab).numpy() if lab else None)

    ref, _ = scores("train")
    s, labels = scores(split)
    res = M.anomaly_f1(s, labels, ev.anomaly_ratio, ref_scores=ref)
    res["score_mean"] = float(s.mean())
    return res


def plot_forecasts(r: dict[str, np.ndarray], meta: dict, out_dir: Path, n: int) -> list[Path]:
    """Save up to ``n`` PNGs of history, truth, forecast and interval (original scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    idx = np.linspace(0, len(r["pred"]) - 1, min(n, len(r["pred"]))).astype(int)
    paths = []
    for i in idx:
        s = r["series"][i : i + 1]
        hist = inverse(r["x"][i : i + 1], s, meta)[0][:, -1]  # (L,)
        pred = inverse(r["pred"][i : i + 1], s, meta)[0][:, -1]  # (H,)
        true = inverse(r["true"][i : i + 1], s, meta)[0][:, -1]  # (H,)
        L = len(hist)
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.plot(np.arange(L), hist, color="k", lw=1, label="history")
        ax.plot(np.arange(L, L + len(true)), true, color="tab:green", lw=1, label="truth")
        ax.plot(np.arange(L, L + len(pred)), pred, color="tab:blue", lw=1.2, label="forecast")
        if "lo" in r:
            lo = inverse(r["lo"][i : i + 1], s, meta)[0][:, -1]
            hi = inverse(r["hi"][i : i + 1], s, meta)[0][:, -1]
            ax.fill_between(np.arange(L, L + len(pred)), lo, hi, color="tab:blue", alpha=0.2, label="interval")
        ax.legend(loc="upper left", fontsize=7)
        ax.set_title(f"window {i} (last variate, original scale)", fontsize=9)
        p = out_dir / f"forecast_{i:06d}.png"
        fig.tight_layout()
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths.append(p)
    return paths


def evaluate(model, data, split: str, cfg) -> dict[str, float]:
    """The domain evaluator the trainer and ``ostinato eval`` call (see module doc)."""
    ev = eval_config(cfg)
    task = data.meta.get("task", "forecast")
    if task == "classify":
        return classify_metrics(model, data, split)
    if task == "anomaly":
        return anomaly_metrics(model, data, split, ev)
    r = collect_forecasts(model, data, split, ev)
    res = forecast_metrics(r, data.meta, ev)
    if ev.save_dir:
        plot_forecasts(r, data.meta, Path(ev.save_dir), ev.n_plots)
    return res
