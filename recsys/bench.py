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
import time
from pathlib import Path
from typing import Any

from ostinato.core import benchkit as kit

# the paper's settings (BCE, one negative), and the same model trained with full cross-entropy
RECIPES = ["recsys/sasrec_games", "recsys/sasrec_games_ce"]
MINUTES = 30.0
QUICK_EPOCHS = 2
REFERENCE = {  # sampled-100 test metrics (HR@10, NDCG@10)
    "paper (Kang & McAuley 2018)": (0.7410, 0.5360),
    "pmixer/SASRec.pytorch (Result_Norm.md, original layout)": (0.7318, 0.5308),
}
TARGET_NDCG = 0.536
TEST_KEYS = ("sampled_hr@10", "sampled_ndcg@10", "full_hr@10", "full_ndcg@10")


def _val_curve(run: Path) -> list[dict[str, float]]:
    rows: dict[int, dict[str, float]] = {}
    with open(run / "metrics.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["name"] in ("val/sampled_ndcg@10", "val/eval_s"):
                d = rows.setdefault(int(r["step"]), {"epoch": int(r["epoch"]), "time_s": float(r["time_s"])})
                d[r["name"][4:]] = float(r["value"])
    return [rows[k] for k in sorted(rows)]


def _probe(run: kit.Run) -> dict[str, Any]:
    """Training time without validation (the evaluator's ``eval_s`` taken out), from the run's metrics.csv."""
    curve = _val_curve(run.dir)
    eval_s = sum(c.get("eval_s", 0.0) for c in curve)
    train_s = run.result["train_time_s"] - eval_s
    reached = next((c for c in curve if c.get("sampled_ndcg@10", 0.0) >= TARGET_NDCG), None)
    return {"loss": kit.field(run.cfg.model, "loss"), "threads": run.cfg.trainer.threads,
            "data_workers": run.cfg.trainer.num_workers,
            "train_s": round(train_s, 1), "s_per_epoch": round(train_s / max(run.result["epochs"], 1), 2),
            "val_eval_s": round(eval_s, 1),
            "val_reached_target": None if reached is None else {"ndcg": TARGET_NDCG, **reached},
            "val_curve": curve}


def _one(recipe_name: str, quick: bool) -> dict[str, Any]:
    overrides = ["trainer.device=cpu", f"trainer.max_minutes={MINUTES}"]
    if quick:
        overrides += [f"trainer.max_epochs={QUICK_EPOCHS}", "trainer.eval_every=1"]
    r = kit.train(recipe_name, overrides, table="sasrec_games", probe=_probe)
    r["test"] = {k: r["test"].get(k) for k in TEST_KEYS}
    return r


def run(quick: bool = False, out: str | Path | None = None) -> list[dict[str, Any]]:
    """Both recipes, the reference rows and the goal (module doc); ``out``: the JSON document."""
    runs = [_one(r, quick) for r in RECIPES]
    refs = [kit.reference("sasrec_games", k, {"sampled_hr@10": h, "sampled_ndcg@10": n}) for k, (h, n) in REFERENCE.items()]
    met = [r["recipe"] for r in runs if (r["test"]["sampled_ndcg@10"] or 0.0) >= TARGET_NDCG]
    goal = {"table": "goals", "name": f"test sampled NDCG@10 >= {TARGET_NDCG} within {MINUTES:g} min",
            "goal_sampled_ndcg@10": TARGET_NDCG, "met": bool(met), "met_by": met}
    rows = [*runs, *refs, goal]
    _print(runs, refs, goal)
    kit.write_json(out, "recsys", quick, rows, device="cpu", minutes_per_recipe=MINUTES)
    return rows


def _print(runs: list[dict[str, Any]], refs: list[dict[str, Any]], goal: dict[str, Any]) -> None:
    print("SASRec, Amazon Games (Video.txt), test split; sampled = 1 true + 100 negatives, full = all items")
    label = lambda x: (f"{x['recipe']} ({x['loss']}; {x['epochs']} epochs, {x['train_time_s'] / 60:.1f} min)"  # noqa: E731
                       if not x.get("reference") else x["name"])
    kit.print_table([*runs, *refs], [("", label), ("sampled HR@10", "test.sampled_hr@10", ".4f"),
                                     ("sampled NDCG@10", "test.sampled_ndcg@10", ".4f"),
                                     ("full HR@10", "test.full_hr@10", ".4f"), ("full NDCG@10", "test.full_ndcg@10", ".4f")])
    for x in runs:
        print(f"{x['recipe']}: {x['train_s']:.0f} s in {x['epochs']} epochs = {x['s_per_epoch']:.2f} s/epoch "
              f"(+ {x['val_eval_s']:.0f} s validation); {x['threads']} torch thread(s) + {x['data_workers']} loader "
              f"worker(s)")
        if x["val_reached_target"]:
            v = x["val_reached_target"]
            print(f"  validation sampled NDCG@10 first >= {v['ndcg']} at epoch {v['epoch']} ({v['time_s'] / 60:.1f} min)")
    m = kit.machine()
    print(f"CPU {m['processor']} x{m['cpus']}, torch {m['torch']}; goal test sampled NDCG@10 >= {TARGET_NDCG} "
          f"within {MINUTES:.0f} min: {'met by ' + ', '.join(goal['met_by']) if goal['met_by'] else 'not met'}")


def stream_latency(model, cfg, steps: int = 50) -> float:
    """Seconds per streamed step at batch 1: one new item through the mixers' ``step`` and every item
    scored for the next one (``SASRec.stream_step``), over ``steps`` items of a random history.
    A model without a step mode (attention, or positional embeddings) raises its one-line ConfigError."""
    import torch

    from ostinato.core.measure import model_device

    model.eval()
    dev = model_device(model)
    state = model.init_stream(1, device=dev)
    items = torch.randint(1, model.cfg.n_items + 1, (steps + 3, 1), generator=torch.Generator().manual_seed(0)).to(dev)
    for t in range(3):  # warm-up
        _, state = model.stream_step(items[t], state)
    t0 = time.perf_counter()
    for t in range(3, steps + 3):
        _, state = model.stream_step(items[t], state)
    return (time.perf_counter() - t0) / steps


def mixer_task() -> dict[str, Any]:
    """SASRec's mixer slot on Amazon Games (sampled-100 and full-ranking test metrics), for ``ostinato bench mixers``.

    The default cell is the published SASRec (attention). Mixer cells put each causal core mixer, with its
    default settings, where attention was and drop SASRec's positional embedding (``mixer_overrides``), as
    Mamba4Rec, LRURec and GRU4Rec do: SASRec counts positions from the window's end, so a model that carries
    a state item by item could not use them. ``stream`` times ``SASRec.stream_step`` (next-item scores after
    each new item, batch 1); the attention cell has no step mode.
    """
    from ostinato.core.mixer import is_causal, mixer_entries

    return {
        "task": "recsys/games",
        "recipe": "recsys/sasrec_games",
        "quick_recipe": "recsys/test_sasrec",
        "slot": "model.mixer",
        "default": "attention",
        "mixers": sorted(n for n, e in mixer_entries().items() if is_causal(e, e.config()) and n != "ssd"),  # ssd: its default headdim 64 does not divide expand*d_model at these widths
        "overrides": ["trainer.test_at_end=true"],
        "mixer_overrides": ["model.pos_emb=false"],
        "metrics": {"NDCG@10 sampled": "test.sampled_ndcg@10", "NDCG@10 full": "test.full_ndcg@10",
                    "HR@10 sampled": "test.sampled_hr@10"},
        "stream": stream_latency,
    }
