"""Instruction text -> token ids, shared by the demo datasets and the policies' rollouts."""
from __future__ import annotations

import re
import zlib

import numpy as np


def tokenize(text: str, vocab: int = 512, max_len: int = 16) -> np.ndarray:
    """Words -> ids in [1, vocab) by CRC32 hashing (deterministic across processes); 0 pads."""
    words = re.findall(r"[a-z0-9]+", str(text).lower())[:max_len]
    ids = np.zeros(max_len, np.int64)
    for i, w in enumerate(words):
        ids[i] = 1 + zlib.crc32(w.encode()) % (vocab - 1)
    return ids
