"""A synthetic sequential dataset for tests: each user walks over the items with mostly
predictable steps (next = previous + 1, sometimes + 2, rarely a random jump), so a
sequential model can learn it and a popularity model cannot.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ostinato.core.data import DataBundle
from ostinato.core.errors import ConfigError
from ostinato.core.registry import register_dataset

from .sequences import Interactions, SeqDataConfig, make_bundle


def synthetic_sequences(n_users: int = 200, n_items: int = 50, min_len: int = 3, max_len: int = 20,
                        seed: int = 0) -> Interactions:
    if n_users < 1 or n_items < 3 or not 1 <= min_len <= max_len:
        raise ConfigError("synthetic data: need n_users >= 1, n_items >= 3 and 1 <= min_len <= max_len")
    rng = np.random.default_rng(seed)
    lens = rng.integers(min_len, max_len + 1, size=n_users)
    seqs = []
    for n in lens:
        steps = rng.choice([1, 2, 0], size=n - 1, p=[0.8, 0.15, 0.05])
        jumps = rng.integers(0, n_items, size=n - 1)
        cur = int(rng.integers(0, n_items))
        s = [cur]
        for st, j in zip(steps, jumps):
            cur = int(j) if st == 0 else (cur + int(st)) % n_items
            s.append(cur)
        seqs.append([i + 1 for i in s])
    data = Interactions.from_lists(seqs, source=f"synthetic(seed={seed})")
    data.n_items = n_items
    return data


@dataclass
class SyntheticSeqConfig(SeqDataConfig):
    maxlen: int = 8
    batch_size: int = 32
    eval_batch_size: int = 64
    n_users: int = 200
    n_items: int = 50
    min_len: int = 3
    max_len: int = 20
    gen_seed: int = 0  # seed of the generated sequences (``seed`` drives negative sampling)


@register_dataset("synthetic_seq", config=SyntheticSeqConfig)
def synthetic_seq(cfg: SyntheticSeqConfig, data_root=None) -> DataBundle:
    """Synthetic item walks for tests (no files)."""
    return make_bundle(synthetic_sequences(cfg.n_users, cfg.n_items, cfg.min_len, cfg.max_len, cfg.gen_seed), cfg)
