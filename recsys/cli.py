"""The recsys domain's verbs: ``ostinato recommend`` and ``ostinato bench recsys``. Each verb
imports what it runs only when it runs."""
from __future__ import annotations

import json
from pathlib import Path


def bench(quick: bool = False, out: Path | None = None) -> list[dict]:
    """``ostinato bench recsys``: the rows of ``bench.run`` (written with ``ostinato.core.benchkit``)."""
    from .bench import run

    return run(quick=quick, out=out)


def recommend(checkpoint: str, user: str, k: int = 10, data_root: str | None = None) -> list[tuple[int, float]]:
    """Top-k items for ``user`` (id as in the dataset file) from a trained run, seen items excluded."""
    import numpy as np
    import torch

    from ostinato.core.errors import ConfigError
    from ostinato.core.measure import model_device
    from ostinato.core.train import load_run

    from .data.sequences import Interactions, gather_segments, gather_windows

    if k < 1:
        raise ConfigError(f"-k {k}: expected a positive number of items")
    # the users' histories and the item map come from the checkpoint; a run saved before they
    # were rebuilds its data
    model, cfg, bundle = load_run(checkpoint, data_root=data_root, build_data_too=False, rebuild_if_old=True,
                                  expect_domain="recsys", verb="recommend")
    data = Interactions.from_state(bundle.inference["histories"])
    u = np.array([data.user_index(str(user))])
    s, e = data.offsets[u], data.offsets[u + 1]  # the whole history: train, validation and test items
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
    recs = recommend(args.checkpoint, args.user, args.k, args.data_root)
    if args.json:
        print(json.dumps({"user": args.user, "items": [{"item": i, "score": s} for i, s in recs]}))
    else:
        print(f"top-{len(recs)} items for user {args.user} (seen items excluded)")
        for r, (i, s) in enumerate(recs, 1):
            print(f"{r:>4}  item {i:<10}  score {s:.4f}")
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("recommend", help="top-k items for a user from a trained recsys run (seen items excluded)")
    p.add_argument("checkpoint", help="a run directory or a .pt checkpoint from `ostinato train`")
    p.add_argument("--user", required=True, help="user id as written in the dataset file")
    p.add_argument("-k", type=int, default=10, help="number of items (default 10)")
    p.add_argument("--data-root", default=None, help="data root of the run's dataset (only for runs saved without their users' histories)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_recommend_cmd)
