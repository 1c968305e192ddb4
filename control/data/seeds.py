"""Env seed ranges of the control domain, disjoint by construction.

Training demos use seeds 0 .. 999_999, validation 1_000_000 .. 4242424241 (rollouts 1_000_000 + i,
held-out demos recorded there too), test 4242424242 + i (the muVLA / MIKASA-Robo protocol) up to
numpy's 2**32 - 1. A seed outside its range is an error (:func:`check_seeds`), so a test episode
cannot be a training demo.
"""
from __future__ import annotations

from ostinato.core.errors import ConfigError

VAL_SEED_BASE = 1_000_000
TEST_SEED_BASE = 4242424242
SEED_END = 2**32
RANGES = {"train": (0, VAL_SEED_BASE), "val": (VAL_SEED_BASE, TEST_SEED_BASE), "test": (TEST_SEED_BASE, SEED_END)}


def check_seeds(seeds, split: str, what: str) -> None:
    """Every seed of ``seeds`` in ``split``'s range (``RANGES``), else a one-line ConfigError naming ``what``.
    Held-out demos (``val``) may also lie in the training range, where :func:`check_disjoint` guards them."""
    lo, hi = (0, TEST_SEED_BASE) if split == "val" else RANGES[split]
    bad = [int(x) for x in seeds if not lo <= int(x) < hi]
    if bad:
        name = {"train": "training", "val": "validation/held-out", "test": "test"}[split]
        raise ConfigError(f"{what}: env seed {bad[0]} is outside the {name} range {lo}..{hi - 1} (training demos "
                          f"0..{VAL_SEED_BASE - 1}, validation {VAL_SEED_BASE}+i, test {TEST_SEED_BASE}+i)")


def check_disjoint(train, held_out, what: str) -> None:
    both = sorted(set(int(x) for x in train) & set(int(x) for x in held_out))
    if both:
        raise ConfigError(f"{what}: {len(both)} held-out demo seeds are also training demo seeds (e.g. {both[0]}); "
                          f"record held-out demos elsewhere, e.g. `--seed {VAL_SEED_BASE}`")
