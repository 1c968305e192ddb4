"""The SASRec format: one interaction per line, ``user item`` (1-indexed integers), in time
order within each user (``kang205/SASRec`` ``data/*.txt``: Video.txt, Beauty.txt, Steam.txt,
ml-1m.txt). Item ids are kept, so n_items = the largest item id (sparse ids such as
99999999999 are remapped to 1..n and mapped back by ``recommend``: ``sequences.dense_items``); users are numbered in
order of first appearance and keep their file ids for ``ostinato recommend --user``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ostinato.core.data import DataBundle, DatasetSpec, FileSpec, locate
from ostinato.core.registry import register_dataset

from .sequences import Interactions, SeqDataConfig, make_bundle, read_int_rows

EXPECTED = "'user item' (two integers, item >= 1)"


def read_sasrec_txt(path: str | Path) -> Interactions:
    path = Path(path)
    rows = read_int_rows(path, 2, " ", EXPECTED, mins=(None, 1))
    return Interactions.from_pairs(rows[:, 0], rows[:, 1], source=str(path))


@dataclass
class SASRecTxtConfig(SeqDataConfig):
    path: str = "recsys/sasrec/Video.txt"  # relative to a data root, or a file path


@register_dataset("sasrec_txt", config=SASRecTxtConfig)
def sasrec_txt(cfg: SASRecTxtConfig, data_root=None) -> DataBundle:
    """SASRec 'user item' file (Video.txt, ml-1m.txt, ...), leave-one-out."""
    path = locate(cfg.path, data_root, hint="the SASRec files are in github.com/kang205/SASRec data/")
    return make_bundle(read_sasrec_txt(path), cfg)


SPECS = [
    DatasetSpec(
        name="sasrec_video",
        domain="recsys",
        files=(FileSpec("recsys/sasrec/Video.txt",
                        sha256="b7376fe24430743f411dc7f567285657b2adb3f74361cc7ba0aee94f3024b651", size=3187124,
                        url="https://raw.githubusercontent.com/kang205/SASRec/e3738967fddab206d6eeb4fda433e7a7034dd8b1/data/Video.txt"),),
        source="github:kang205/SASRec @ e3738967fddab206d6eeb4fda433e7a7034dd8b1 : data/Video.txt",
        licence="Amazon Video Games reviews (McAuley/UCSD), research use; SASRec repo Apache-2.0",
        description="Amazon Games as preprocessed for SASRec: 31,013 users, 23,715 items, 287,107 actions",
        how_to_get="`ostinato data download sasrec_video`, or copy data/Video.txt from github.com/kang205/SASRec to <data root>/recsys/sasrec/Video.txt",
    ),
]
