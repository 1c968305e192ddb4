"""``ostinato bench timeseries [--quick] [--json] [--out FILE]``: the domain's benchmark table.

1. **ETTh1, look-back 96, horizon 96** (TSLib protocol, features M, normalised-scale MSE/MAE
   on the test split, model chosen on validation): Chimera and DLinear trained with their
   shipped recipes, plus the untrained seasonal-naive forecaster (m = 24); CPU training
   wall time (the trainer's loop, validation included) and parameter counts; set against
   the Time-Series-Library table (look-back 96): TimeMixer 0.375/0.400, iTransformer
   0.386/0.405, DLinear 0.386/0.400 (OLinear Table 15 transcription, see the spec).
2. **M4 Hourly** (414 series, h = 48, original-scale sMAPE, MASE, OWA vs Naive2, 95 %
   interval coverage and MSIS): MES-LSTM (the original Bayesian output layer, and the
   pinball-loss quantile head) and the ES-RNN-style variant against seasonal naive. Needs the M4 files under a data root (``ostinato data download M4-Hourly``).
3. **ECG200** (shipped): Chimera classification accuracy on the test split.

``--quick`` trains a few steps per model (a smoke test of the whole table, not numbers to
quote). Timings depend on the machine and its load; the table records the thread count.
"""
from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ostinato.core.errors import OstinatoError

TSLIB_ETTH1_96 = [  # (model, MSE, MAE), look-back 96, horizon 96, normalised scale
    ("TimeMixer (TSLib table)", 0.375, 0.400),
    ("iTransformer (TSLib table)", 0.386, 0.405),
    ("DLinear (TSLib table)", 0.386, 0.400),
]


def _train(recipe: str, overrides: list[str], out: Path) -> dict[str, Any]:
    from ostinato.core.recipe import load
    from ostinato.core.train import build_data, build_model, fit

    cfg = load(recipe, overrides)
    t0 = time.time()
    res = fit(cfg, out, quiet=True)
    wall = time.time() - t0
    model = build_model(cfg, build_data(cfg).model_kwargs)
    return {"recipe": recipe, "test": res.get("test", {}), "val": res.get("val", {}), "steps": res["steps"],
            "train_time_s": res["train_time_s"], "wall_s": round(wall, 1),
            "params": sum(p.numel() for p in model.parameters())}


def _naive(recipe: str, overrides: list[str], period: int) -> dict[str, Any]:
    from ostinato.core import create_model
    from ostinato.core.recipe import load
    from ostinato.core.train import build_data
    from .evaluate import evaluate

    cfg = load(recipe, overrides)
    data = build_data(cfg)
    model = create_model("seasonal_naive", period=period, **data.model_kwargs)
    return {"recipe": f"seasonal_naive (m={period})", "test": evaluate(model, data, "test", cfg), "params": 0,
            "train_time_s": 0.0, "steps": 0}


def _row(name: str, r: dict[str, Any], keys: list[str]) -> list[str]:
    t = r.get("test", {})
    return [name] + [f"{t[k]:.4g}" if k in t else "-" for k in keys] + [
        f"{r.get('train_time_s', 0):.0f}", f"{r.get('params', 0):,}"]


def _print(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)))


def bench(quick: bool = False, out: Path | None = None) -> dict[str, Any]:
    root = Path(out).parent / "bench_runs" if out else Path(tempfile.mkdtemp(prefix="ostinato_bench_ts_"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    few = ["trainer.max_steps=5", "trainer.max_epochs=1"] if quick else []
    result: dict[str, Any] = {
        "quick": quick, "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "runs": str(root),
    }

    # 1. ETTh1 horizon 96
    ett: dict[str, Any] = {}
    for name, recipe in (("Chimera", "timeseries/chimera_etth1"), ("DLinear", "timeseries/dlinear_etth1")):
        ett[name] = _train(recipe, few, root / f"{stamp}_{name.lower()}_etth1")
    ett["Seasonal naive"] = _naive("timeseries/dlinear_etth1", [], 24)
    rows = [_row(k, v, ["mse", "mae"]) for k, v in ett.items()]
    rows += [[n, f"{a:.3f}", f"{b:.3f}", "-", "-"] for n, a, b in TSLIB_ETTH1_96]
    _print("ETTh1, look-back 96, horizon 96 (test, normalised scale)", ["model", "MSE", "MAE", "train s", "params"], rows)
    result["etth1_96"] = ett
    result["etth1_96_reference"] = [{"model": n, "mse": a, "mae": b} for n, a, b in TSLIB_ETTH1_96]

    # 2. M4 Hourly
    m4: dict[str, Any] = {}
    m4_few = few + (["data.max_series=20", "data.hw_init=heuristic"] if quick else [])
    try:
        m4["Seasonal naive"] = _naive("timeseries/mes_lstm_m4_hourly", m4_few + ["data.holt_winters=false"], 24)
        m4["MES-LSTM"] = _train("timeseries/mes_lstm_m4_hourly", m4_few, root / f"{stamp}_mes_lstm_m4")
        m4["MES-LSTM (quantile head)"] = _train("timeseries/mes_lstm_m4_hourly", m4_few + ["model.head=quantile"],
                                                root / f"{stamp}_mes_lstm_q_m4")
        es_few = few + (["data.max_series=20"] if quick else [])
        m4["ES-RNN variant"] = _train("timeseries/es_rnn_m4_hourly", es_few, root / f"{stamp}_es_rnn_m4")
        keys = ["smape", "mase", "owa", "coverage", "msis"]
        _print("M4 Hourly (test, original scale; 95 % intervals)", ["model", *keys, "train s", "params"],
               [_row(k, v, keys) for k, v in m4.items()])
    except OstinatoError as e:  # the M4 files are not shipped
        m4["skipped"] = str(e)
        print(f"\nM4 Hourly: skipped ({e})")
    result["m4_hourly"] = m4

    # 3. ECG200
    ecg = {"Chimera": _train("timeseries/chimera_ecg200", few, root / f"{stamp}_chimera_ecg200")}
    _print("ECG200 (test)", ["model", "accuracy", "train s", "params"], [_row(k, v, ["accuracy"]) for k, v in ecg.items()])
    result["ecg200"] = ecg
    return result
