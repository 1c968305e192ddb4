"""`ostinato bench recsys`: SASRec on Amazon Games (``recsys/sasrec_games``) trained on the CPU.

Trains the recipe for at most ``MINUTES`` minutes of wall time (``--quick``: a few epochs),
selects the checkpoint on validation (sampled NDCG@10), scores the test split once with
both protocols, and prints them beside the paper and the pmixer PyTorch reproduction.
Time per epoch is training time only (validation time, reported by the evaluator as
``eval_s``, is taken out). Needs ``recsys/sasrec/Video.txt`` under a data root
(``OSTINATO_DATA`` or ``ostinato data where sasrec_video``).
"""
from __future__ import annotations

import csv
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

RECIPE = "recsys/sasrec_games"
MINUTES = 30.0
QUICK_EPOCHS = 3
REFERENCE = {  # sampled-100 test metrics (HR@10, NDCG@10)
    "paper (Kang & McAuley 2018)": (0.7410, 0.5360),
    "pmixer/SASRec.pytorch (Result_Norm.md, original layout)": (0.7318, 0.5308),
}
TARGET_NDCG = 0.536


def _val_curve(run: Path) -> list[dict[str, float]]:
    rows: dict[int, dict[str, float]] = {}
    with open(run / "metrics.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["name"] in ("val/sampled_ndcg@10", "val/eval_s"):
                d = rows.setdefault(int(r["step"]), {"epoch": int(r["epoch"]), "time_s": float(r["time_s"])})
                d[r["name"][4:]] = float(r["value"])
    return [rows[k] for k in sorted(rows)]


def bench(quick: bool = False, out: Path | None = None) -> dict[str, Any]:
    from ostinato.core import recipe
    from ostinato.core.train import fit

    overrides = ["trainer.device=cpu", f"trainer.max_minutes={MINUTES}"]
    if quick:
        overrides += [f"trainer.max_epochs={QUICK_EPOCHS}", "trainer.eval_every=1"]
    cfg = recipe.load(RECIPE, overrides)
    run = Path(tempfile.mkdtemp(prefix="ostinato_bench_recsys_"))
    try:
        res = fit(cfg, run, quiet=True)
        curve = _val_curve(run)
    finally:
        shutil.rmtree(run, ignore_errors=True)
    eval_s = sum(c.get("eval_s", 0.0) for c in curve)
    epochs = max(res["epochs"], 1)
    train_s = res["train_time_s"] - eval_s
    test = res.get("test", {})
    reached = next((c for c in curve if c.get("sampled_ndcg@10", 0.0) >= TARGET_NDCG), None)
    result = {
        "recipe": RECIPE, "quick": quick, "device": "cpu", "threads": cfg.trainer.threads,
        "data_workers": cfg.trainer.num_workers,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "epochs": res["epochs"], "steps": res["steps"], "wall_s": res["train_time_s"],
        "train_s": round(train_s, 1), "s_per_epoch": round(train_s / epochs, 2), "val_eval_s": round(eval_s, 1),
        "best_step": res["best_step"],
        "test": {k: test.get(k) for k in ("sampled_hr@10", "sampled_ndcg@10", "full_hr@10", "full_ndcg@10")},
        "val_reached_target": None if reached is None else {"ndcg": TARGET_NDCG, **reached},
        "val_curve": curve,
        "reference": {k: {"sampled_hr@10": h, "sampled_ndcg@10": n} for k, (h, n) in REFERENCE.items()},
    }
    _print(result)
    return result


def _print(r: dict[str, Any]) -> None:
    t = r["test"]

    def f(x):
        return "-" if x is None else f"{x:.4f}"

    rows = [(f"ostinato ({r['epochs']} epochs, {r['wall_s'] / 60:.1f} min)",
             t["sampled_hr@10"], t["sampled_ndcg@10"], t["full_hr@10"], t["full_ndcg@10"])]
    rows += [(k, h, n, None, None) for k, (h, n) in REFERENCE.items()]
    w = max(len(x[0]) for x in rows)
    print(f"SASRec, Amazon Games (Video.txt), test split; sampled = 1 true + 100 negatives, full = all items")
    print(f"{'':<{w}}  sampled HR@10  sampled NDCG@10  full HR@10  full NDCG@10")
    for name, a, b, c, d in rows:
        print(f"{name:<{w}}  {f(a):>13}  {f(b):>15}  {f(c):>10}  {f(d):>12}")
    print(f"training: {r['train_s']:.0f} s in {r['epochs']} epochs = {r['s_per_epoch']:.2f} s/epoch "
          f"(+ {r['val_eval_s']:.0f} s validation); {r['threads']} torch thread(s) + {r['data_workers']} loader "
          f"worker(s); CPU {r['cpu']} x{r['cpu_count']}, torch {r['torch']}")
    if r["val_reached_target"]:
        v = r["val_reached_target"]
        print(f"validation sampled NDCG@10 first >= {v['ndcg']} at epoch {v['epoch']} ({v['time_s'] / 60:.1f} min)")
