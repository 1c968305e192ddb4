"""`ostinato bench recsys`: SASRec on Amazon Games trained on the CPU, two ways.

``recsys/sasrec_games`` is the paper's setting (BCE with one sampled negative per position);
``recsys/sasrec_games_ce`` is the same model and data trained with full cross-entropy over
all items. Each recipe is trained for at most ``MINUTES`` minutes of wall time (``--quick``: a
few epochs), the checkpoint is selected on validation (sampled NDCG@10), and the test split is
scored once with both protocols and printed beside the paper and the pmixer PyTorch
reproduction. Time per epoch is training time only (validation time, reported by the
evaluator as ``eval_s``, is taken out). Needs ``recsys/sasrec/Video.txt`` under a data root
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

# the paper's settings (BCE, one negative), and the same model trained with full cross-entropy
RECIPES = ["recsys/sasrec_games", "recsys/sasrec_games_ce"]
MINUTES = 30.0
QUICK_EPOCHS = 2
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


def _one(recipe_name: str, quick: bool) -> dict[str, Any]:
    from ostinato.core import recipe
    from ostinato.core.train import fit

    overrides = ["trainer.device=cpu", f"trainer.max_minutes={MINUTES}"]
    if quick:
        overrides += [f"trainer.max_epochs={QUICK_EPOCHS}", "trainer.eval_every=1"]
    cfg = recipe.load(recipe_name, overrides)
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
    return {
        "recipe": recipe_name, "loss": cfg.model["loss"], "threads": cfg.trainer.threads,
        "data_workers": cfg.trainer.num_workers,
        "epochs": res["epochs"], "steps": res["steps"], "wall_s": res["train_time_s"],
        "train_s": round(train_s, 1), "s_per_epoch": round(train_s / epochs, 2), "val_eval_s": round(eval_s, 1),
        "best_step": res["best_step"],
        "test": {k: test.get(k) for k in ("sampled_hr@10", "sampled_ndcg@10", "full_hr@10", "full_ndcg@10")},
        "val_reached_target": None if reached is None else {"ndcg": TARGET_NDCG, **reached},
        "val_curve": curve,
    }


def bench(quick: bool = False, out: Path | None = None) -> dict[str, Any]:
    runs = [_one(r, quick) for r in RECIPES]
    result = {
        "quick": quick, "device": "cpu", "minutes_per_recipe": MINUTES,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "runs": runs,
        "goal_sampled_ndcg@10": TARGET_NDCG,
        "goal_met_by": [r["recipe"] for r in runs if (r["test"]["sampled_ndcg@10"] or 0.0) >= TARGET_NDCG],
        "reference": {k: {"sampled_hr@10": h, "sampled_ndcg@10": n} for k, (h, n) in REFERENCE.items()},
    }
    _print(result)
    return result


def _print(r: dict[str, Any]) -> None:
    def f(x):
        return "-" if x is None else f"{x:.4f}"

    rows = [(f"{x['recipe']} ({x['loss']}; {x['epochs']} epochs, {x['wall_s'] / 60:.1f} min)",
             x["test"]["sampled_hr@10"], x["test"]["sampled_ndcg@10"], x["test"]["full_hr@10"], x["test"]["full_ndcg@10"])
            for x in r["runs"]]
    rows += [(k, h, n, None, None) for k, (h, n) in REFERENCE.items()]
    w = max(len(x[0]) for x in rows)
    print("SASRec, Amazon Games (Video.txt), test split; sampled = 1 true + 100 negatives, full = all items")
    print(f"{'':<{w}}  sampled HR@10  sampled NDCG@10  full HR@10  full NDCG@10")
    for name, a, b, c, d in rows:
        print(f"{name:<{w}}  {f(a):>13}  {f(b):>15}  {f(c):>10}  {f(d):>12}")
    for x in r["runs"]:
        print(f"{x['recipe']}: {x['train_s']:.0f} s in {x['epochs']} epochs = {x['s_per_epoch']:.2f} s/epoch "
              f"(+ {x['val_eval_s']:.0f} s validation); {x['threads']} torch thread(s) + {x['data_workers']} loader "
              f"worker(s)")
        if x["val_reached_target"]:
            v = x["val_reached_target"]
            print(f"  validation sampled NDCG@10 first >= {v['ndcg']} at epoch {v['epoch']} ({v['time_s'] / 60:.1f} min)")
    print(f"CPU {r['cpu']} x{r['cpu_count']}, torch {r['torch']}; goal test sampled NDCG@10 >= {TARGET_NDCG} "
          f"within {MINUTES:.0f} min: {'met by ' + ', '.join(r['goal_met_by']) if r['goal_met_by'] else 'not met'}")
