"""The recsys domain's verbs: ``ostinato recommend`` and ``ostinato bench recsys``. Each verb
imports what it runs only when it runs."""
from __future__ import annotations

import json
from pathlib import Path


def bench(quick: bool = False, out: Path | None = None) -> list[dict]:
    """``ostinato bench recsys``: the rows of ``bench.run`` (written with ``ostinato.core.benchkit``)."""
    from .bench import run

    return run(quick=quick, out=out)


SHARED_HISTORY_KEYS = ("n_items", "item_ids", "source")  # the item map; no user's history


def shared_inference(inference: dict) -> dict:
    """The inference state of shared weights (``Domain.shared_inference``): the users' histories
    are dataset content (Amazon reviews, MovieLens: not ours to redistribute), so only the item map
    is kept; ``recommend`` then reads a history from ``--history`` or from the data."""
    h = inference.get("histories")
    if not isinstance(h, dict):
        return inference
    return {**inference, "histories": {k: v for k, v in h.items() if k in SHARED_HISTORY_KEYS}}


def _user_history(checkpoint, cfg, saved: dict, user: str | None, history: str | None, data_root):
    """(Interactions, its index of the user): from ``--history`` (one user), else the saved or rebuilt histories."""
    from ostinato.core.errors import ConfigError, DataError
    from ostinato.core.train import build_data

    from .data.sequences import Interactions

    if history is not None:
        return _history_items(history, saved), 0
    if user is None:
        raise ConfigError("recommend: give --user ID (a user of the run's dataset) or --history ITEM,ITEM,...")
    if "offsets" not in saved:  # shared weights: no user histories inside
        try:
            saved = build_data(cfg, data_root).inference["histories"]
        except DataError as e:
            raise DataError(f"{checkpoint}: holds no users' histories (dataset content); give --history ITEM,ITEM,... "
                            f"or the dataset: {e}") from None
    data = Interactions.from_state(saved)
    return data, data.user_index(str(user))


def _history_items(history: str, saved: dict):
    """``--history`` "12,7,301" (item ids as in the dataset file, oldest first) as a one-user Interactions."""
    import numpy as np

    from ostinato.core.errors import ConfigError

    from .data.sequences import Interactions

    n, ids = int(saved["n_items"]), saved.get("item_ids")
    try:
        raw = [int(t) for t in history.replace(" ", "").split(",") if t]
    except ValueError:
        raise ConfigError(f"--history {history!r}: expected item ids separated by commas, e.g. 12,7,301") from None
    if not raw:
        raise ConfigError("--history: expected at least one item id, e.g. 12,7,301")
    items = Interactions.item_index(raw, n, ids)
    bad = [r for r, i in zip(raw, items) if i == 0]
    if bad:
        raise ConfigError(f"--history: item {bad[0]} is not an item of the run's dataset ({n} items)")
    return Interactions(np.array([0, len(items)], np.int64), items, n, np.array([0]),
                        None if ids is None else np.asarray(ids, np.int64), str(saved.get("source", "")))


def recommend(checkpoint: str, user: str | None, k: int = 10, data_root: str | None = None,
              history: str | None = None) -> list[tuple[int, float]]:
    """Top-k items for ``user`` (id as in the dataset file), or after the items of ``history``,
    from a trained run or shared weights; the history's items are excluded."""
    import torch

    from ostinato.core.errors import ConfigError
    from ostinato.core.measure import model_device
    from ostinato.core.train import load_run

    from .data.sequences import gather_segments, gather_windows

    if k < 1:
        raise ConfigError(f"-k {k}: expected a positive number of items")
    # the users' histories and the item map come from the checkpoint; a run saved before they
    # were rebuilds its data
    model, cfg, bundle = load_run(checkpoint, data_root=data_root, build_data_too=False, rebuild_if_old=True,
                                  expect_domain="recsys", verb="recommend")
    data, u = _user_history(checkpoint, cfg, bundle.inference["histories"], user, history, data_root)
    s, e = data.offsets[[u]], data.offsets[[u + 1]]  # the whole history: train, validation and test items
    dev = model_device(model)
    model.eval()
    with torch.no_grad():
        seq = torch.from_numpy(gather_windows(data.items, s, e, int(bundle.inference["maxlen"]))).to(dev)  # (1, maxlen)
        scores = model.score_all(seq)[0].float()  # (n_items + 1,)
        _, seen = gather_segments(data.items, s, e)
        scores[torch.from_numpy(seen).to(dev)] = float("-inf")
        k = min(k, int(torch.isfinite(scores).sum()))
        top = torch.topk(scores, k)
    items = data.item_label(top.indices.cpu().numpy())
    return [(int(i), float(v)) for i, v in zip(items, top.values.cpu().tolist())]


def _recommend_cmd(args) -> int:
    recs = recommend(args.checkpoint, args.user, args.k, args.data_root, args.history)
    who = f"user {args.user}" if args.history is None else "the given history"
    if args.json:
        print(json.dumps({"user": args.user, "history": args.history, "items": [{"item": i, "score": s} for i, s in recs]}))
    else:
        print(f"top-{len(recs)} items for {who} (seen items excluded)")
        for r, (i, s) in enumerate(recs, 1):
            print(f"{r:>4}  item {i:<10}  score {s:.4f}")
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("recommend", help="top-k items for a user from a trained recsys run (seen items excluded)")
    p.add_argument("checkpoint", help="a run directory, a .pt checkpoint from `ostinato train`, or pretrained:<recipe>")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="user id as written in the dataset file")
    who.add_argument("--history", help="item ids as in the dataset file, oldest first, e.g. 12,7,301 (needs no data)")
    p.add_argument("-k", type=int, default=10, help="number of items (default 10)")
    p.add_argument("--data-root", default=None, help="data root of the run's dataset (for shared weights or old runs, which hold no users' histories)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_recommend_cmd)
