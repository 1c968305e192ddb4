"""The S3Rec format: one user per line, ``user_id item_1 item_2 ...`` in time order
(``RUCAIBox/CIKM2020-S3Rec`` ``data/*.txt``: Beauty, Sports_and_Outdoors, Toys_and_Games;
also used by ICLRec). Item ids are kept (n_items = the largest id) when dense; sparse ids
(e.g. 99999999999) are remapped to 1..n and mapped back by ``recommend`` (``sequences.dense_items``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ostinato.core.data import DataBundle, DatasetSpec, FileSpec, locate
from ostinato.core.errors import DataError
from ostinato.core.registry import register_dataset

from .sequences import Interactions, SeqDataConfig, make_bundle

EXPECTED = "'user_id item_1 item_2 ...' (integers, items >= 1)"


def read_s3rec_txt(path: str | Path) -> Interactions:
    path = Path(path)
    users, seqs = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                vals = [int(p) for p in parts]
            except ValueError:
                raise DataError(f"{path}:{lineno}: expected {EXPECTED}, got {line.strip()!r}") from None
            if len(vals) < 2 or min(vals[1:]) < 1:
                raise DataError(f"{path}:{lineno}: expected {EXPECTED}, got {line.strip()!r}")
            if max(abs(v) for v in vals) > 2**63 - 1:
                raise DataError(f"{path}:{lineno}: an id over 2^63-1; expected {EXPECTED}")
            users.append(vals[0])
            seqs.append(vals[1:])
    if not seqs:
        raise DataError(f"{path}: no data lines; expected {EXPECTED}")
    if len(set(users)) != len(users):
        dup = next(u for i, u in enumerate(users) if u in users[:i])
        raise DataError(f"{path}: user {dup} appears on more than one line; expected one line per user")
    return Interactions.from_lists(seqs, user_ids=np.asarray(users, dtype=np.int64), source=str(path))


@dataclass
class S3RecTxtConfig(SeqDataConfig):
    path: str = "recsys/s3rec_seq/Beauty.txt"


@register_dataset("s3rec_txt", config=S3RecTxtConfig)
def s3rec_txt(cfg: S3RecTxtConfig, data_root=None) -> DataBundle:
    """S3Rec one-user-per-line file (Beauty, Sports, Toys), leave-one-out."""
    path = locate(cfg.path, data_root, hint="the S3Rec files are in github.com/RUCAIBox/CIKM2020-S3Rec data/")
    return make_bundle(read_s3rec_txt(path), cfg)


_SRC = "github:RUCAIBox/CIKM2020-S3Rec @ 2a81540ae18615d88ef88227b0c066e5b74781e5 : data/"
_RAW = "https://raw.githubusercontent.com/RUCAIBox/CIKM2020-S3Rec/2a81540ae18615d88ef88227b0c066e5b74781e5/data/"
_LIC = "Amazon review data (McAuley/UCSD), research use; S3Rec repo has no licence file"
SPECS = [
    DatasetSpec(name=f"s3rec_{key}", domain="recsys",
                files=(FileSpec(f"recsys/s3rec_seq/{fname}", sha256=sha, size=size,
                                 url=_RAW + fname),),
                source=_SRC + fname, licence=_LIC, description=desc,
                how_to_get=f"`ostinato data download s3rec_{key}`, or copy data/{fname} from github.com/RUCAIBox/CIKM2020-S3Rec to <data root>/recsys/s3rec_seq/")
    for key, fname, sha, size, desc in [
        ("beauty", "Beauty.txt", "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8", 1090094,
         "Amazon Beauty, S3Rec preprocessing: 22,363 users, 12,101 items, 198,502 actions"),
        ("sports", "Sports_and_Outdoors.txt", "2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2",
         1707483, "Amazon Sports and Outdoors, S3Rec preprocessing: 35,598 users, 18,357 items"),
        ("toys", "Toys_and_Games.txt", "176c680c688d497598c4a89a03b402c0fe78d795e5db335c2e78dd5f2d778a3f", 922166,
         "Amazon Toys and Games, S3Rec preprocessing: 19,412 users, 11,924 items"),
    ]
]
