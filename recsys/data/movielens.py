"""MovieLens ratings as implicit-feedback sequences.

Formats (chosen by file name):

- ``ratings.dat`` (ML-1M, ML-10M): ``UserID::MovieID::Rating::Timestamp``;
- ``u.data`` (ML-100K): ``user<TAB>item<TAB>rating<TAB>timestamp``;
- ``ml-1m.zip`` / ``ml-100k.zip`` as downloaded from GroupLens (read in place);
- ``*.txt``: an already preprocessed SASRec ``user item`` file such as SASRec's ``ml-1m.txt``
  (no timestamps or filtering left to do).

Every rating counts as an interaction (as SASRec); ``min_rating`` can drop low ones. The
optional count filter keeps users with >= ``min_user`` and items with >= ``min_item``
ratings: ``kcore="once"`` is one pass over raw counts (like SASRec's ``DataProcessing.py``),
``"iterative"`` repeats until every user and item passes (a true k-core). Items are then
numbered 1..n in order of first appearance in the file (as ``DataProcessing.py``), each
user's ratings are sorted by timestamp (ties keep file order), and users keep their ids.

MovieLens may not be redistributed: no file is shipped and nothing downloads it. Download
``ml-1m.zip`` (or ``ml-100k.zip``) from https://grouplens.org/datasets/movielens/ yourself,
accepting GroupLens' terms, and place it under ``<data root>/recsys/movielens/``.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ostinato.core.data import DataBundle, DatasetSpec, FileSpec, locate, read_zip_member
from ostinato.core.errors import DataError
from ostinato.core.registry import register_dataset

from .sasrec_txt import read_sasrec_txt
from .sequences import Interactions, SeqDataConfig, make_bundle, read_int_rows

FORMATS = {
    "ratings.dat": ("::", "'UserID::MovieID::Rating::Timestamp' (integers)"),
    "u.data": ("\t", "'user<TAB>item<TAB>rating<TAB>timestamp' (integers)"),
}


def read_ratings(path: str | Path) -> np.ndarray:
    """(N, 4) int64 rows user, item, rating, timestamp, in file order."""
    path = Path(path)
    if path.suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if Path(n).name in FORMATS]
                if not names:
                    raise DataError(f"{path}: expected a MovieLens zip with ratings.dat or u.data inside")
        except zipfile.BadZipFile:
            raise DataError(f"{path}: not a valid zip file") from None
        sep, what = FORMATS[Path(names[0]).name]  # the member is read whole, up to a size limit
        return read_int_rows(path / names[0], 4, sep, what, text=read_zip_member(path, names[0]))
    if path.name not in FORMATS:
        raise DataError(f"{path}: unknown MovieLens file; expected ratings.dat, u.data, a GroupLens .zip or a SASRec .txt")
    sep, what = FORMATS[path.name]
    return read_int_rows(path, 4, sep, what)


def count_filter(users: np.ndarray, items: np.ndarray, min_user: int, min_item: int, iterative: bool) -> np.ndarray:
    """Boolean mask of the rows kept by the user/item count filter (see the module doc)."""
    keep = np.ones(len(users), dtype=bool)
    while True:
        _, ui, uc = np.unique(users[keep], return_inverse=True, return_counts=True)
        _, ii, ic = np.unique(items[keep], return_inverse=True, return_counts=True)
        ok = (uc[ui.reshape(-1)] >= min_user) & (ic[ii.reshape(-1)] >= min_item)
        if ok.all():
            return keep
        keep[np.flatnonzero(keep)[~ok]] = False
        if not iterative:
            return keep


def movielens_interactions(rows: np.ndarray, min_rating: int = 0, min_user: int = 5, min_item: int = 5,
                           kcore: str = "once", source: str = "") -> Interactions:
    rows = rows[rows[:, 2] >= min_rating]
    if kcore != "none":
        rows = rows[count_filter(rows[:, 0], rows[:, 1], min_user, min_item, kcore == "iterative")]
    if not len(rows):
        raise DataError(f"{source}: no ratings left after filtering (min_rating={min_rating}, min_user={min_user}, min_item={min_item})")
    raw_items, first, inv = np.unique(rows[:, 1], return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    new_id = np.empty(len(raw_items), dtype=np.int64)
    new_id[order] = np.arange(1, len(raw_items) + 1)
    items = new_id[inv.reshape(-1)]
    item_ids = np.concatenate([[0], raw_items[order]])  # internal id -> MovieID
    perm = np.lexsort((np.arange(len(rows)), rows[:, 3], rows[:, 0]))  # by user, time, file order
    return Interactions.from_pairs(rows[perm, 0], items[perm], n_items=len(raw_items), item_ids=item_ids, source=source)


@dataclass
class MovieLensConfig(SeqDataConfig):
    maxlen: int = 200
    path: str = "recsys/movielens/ml-1m.zip"  # ratings.dat, u.data, a GroupLens zip or a SASRec .txt
    alt_paths: list[str] = field(default_factory=lambda: [
        "recsys/movielens/ml-1m/ratings.dat", "recsys/sasrec/ml-1m.txt"])  # tried in order if path is missing
    min_rating: int = 0  # keep ratings >= this; 0 keeps all (SASRec)
    min_user: int = 5
    min_item: int = 5
    kcore: Literal["none", "once", "iterative"] = "once"


def load_movielens(cfg: MovieLensConfig, data_root=None) -> Interactions:
    errors = []
    for rel in [cfg.path, *cfg.alt_paths]:
        try:
            path = locate(rel, data_root)
        except DataError as e:
            errors.append(str(e))
            continue
        if path.suffix == ".txt":
            return read_sasrec_txt(path)
        return movielens_interactions(read_ratings(path), cfg.min_rating, cfg.min_user, cfg.min_item,
                                      cfg.kcore, source=str(path))
    tried = ", ".join([cfg.path, *cfg.alt_paths])
    raise DataError(f"MovieLens not found (tried {tried} under the data roots); "
                    "download ml-1m.zip from https://grouplens.org/datasets/movielens/ and place it under "
                    "<data root>/recsys/movielens/, or pass --data-root DIR")


@register_dataset("movielens", config=MovieLensConfig)
def movielens(cfg: MovieLensConfig, data_root=None) -> DataBundle:
    """MovieLens ratings.dat / u.data / GroupLens zip (or SASRec ml-1m.txt), time-sorted, leave-one-out."""
    return make_bundle(load_movielens(cfg, data_root), cfg)


_LIC = "MovieLens terms of use (GroupLens): research use, no redistribution"
_HOW = ("download {} from https://grouplens.org/datasets/movielens/ (accepting GroupLens' terms) "
        "and place it under <data root>/recsys/movielens/")
SPECS = [
    DatasetSpec(name="movielens_1m", domain="recsys",
                files=(FileSpec("recsys/movielens/ml-1m.zip"),),
                source="https://grouplens.org/datasets/movielens/1m/", licence=_LIC,
                description="MovieLens 1M: 6,040 users, 3,706 movies, 1,000,209 ratings (your own copy; no checksum declared)",
                how_to_get=_HOW.format("ml-1m.zip")),
    DatasetSpec(name="movielens_100k", domain="recsys",
                files=(FileSpec("recsys/movielens/ml-100k.zip"),),
                source="https://grouplens.org/datasets/movielens/100k/", licence=_LIC,
                description="MovieLens 100K: 943 users, 1,682 movies, 100,000 ratings (your own copy; no checksum declared)",
                how_to_get=_HOW.format("ml-100k.zip")),
]
