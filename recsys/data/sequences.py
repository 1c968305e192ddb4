"""User sequences, the leave-one-out split, and the datasets the trainer and evaluator read.

Conventions (SASRec ``util.py`` / ``sampler.py``):

- items are integers 1..n_items; 0 is padding;
- leave-one-out: per user, the last item is the test target, the second-to-last the
  validation target, the rest is train; users with fewer than 3 interactions stay entirely
  in train and are not evaluated;
- a training example is a user's train sequence s_1..s_n cut to its last maxlen+1 items:
  input s_1..s_{n-1} and targets s_2..s_n, both left-padded with 0 to maxlen; each target
  position gets ``n_negatives`` items drawn uniformly from the items *not* in the user's
  train sequence (``random_neq``; ``negatives="all"``: from all items, as gSASRec's
  ``collate_with_random_negatives``, so a negative may be the positive or a seen item); users
  with fewer than 2 train items give no example (the TF sampler redraws them);
- negatives come from ``index_rng(seed, epoch, index)``, so an example is a pure function of
  (seed, epoch, index): any worker or a resumed run draws exactly the same batch.

Batches are built whole (``__getitems__``, which torch's DataLoader calls with the list of
indices of a batch), with numpy gathers instead of per-item Python loops.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ostinato.core.data import DataBundle, EpochMixin, index_rng
from ostinato.core.errors import ConfigError, DataError


# Item ids are kept as they are (n_items = the largest id) while the id space is dense enough:
# at most 2 * (distinct items) + DENSE_SLACK. Sparser ids (e.g. one item 99999999999) are
# remapped to 1..n in increasing id order, and ``item_ids`` maps back for ``recommend``.
DENSE_SLACK = 1000
MAX_ID = 2**63 - 1


def dense_items(items: np.ndarray, source: str = "") -> tuple[np.ndarray, int, np.ndarray | None]:
    """(internal items, n_items, item_ids or None): the identity on dense 1..N ids (see above)."""
    items = np.asarray(items, dtype=np.int64)
    if not len(items):
        return items, 0, None
    if items.min() < 1:
        raise DataError(f"{source or 'dataset'}: item id {int(items.min())}; expected item ids >= 1 (0 is padding)")
    top = int(items.max())
    uniq = np.unique(items)
    if top <= 2 * len(uniq) + DENSE_SLACK:
        return items, top, None
    return np.searchsorted(uniq, items).astype(np.int64) + 1, len(uniq), np.concatenate([[0], uniq]).astype(np.int64)


@dataclass
class Interactions:
    """Chronological item sequences of all users in CSR form.

    ``items[offsets[u]:offsets[u+1]]`` is user u's sequence (internal user index u).
    ``user_ids[u]`` is the user's id in the source file; ``item_ids[i]`` the source id of
    internal item i when the reader remapped items (MovieLens; sparse ids, see
    :func:`dense_items`), else None (ids kept).
    """

    offsets: np.ndarray  # (U + 1,) int64
    items: np.ndarray  # (N,) int64, values in 1..n_items
    n_items: int
    user_ids: np.ndarray  # (U,)
    item_ids: np.ndarray | None = None  # (n_items + 1,), entry 0 unused
    source: str = ""

    @classmethod
    def from_pairs(cls, users: np.ndarray, items: np.ndarray, n_items: int | None = None,
                   item_ids: np.ndarray | None = None, source: str = "") -> "Interactions":
        """Group (user, item) pairs by user, keeping their given order within a user.

        Users are numbered in order of first appearance.
        """
        users, items = np.asarray(users), np.asarray(items, dtype=np.int64)
        uniq, first, inv = np.unique(users, return_index=True, return_inverse=True)
        order_of_first = np.argsort(first, kind="stable")  # unique index -> rank by first appearance
        rank = np.empty_like(order_of_first)
        rank[order_of_first] = np.arange(len(uniq))
        uidx = rank[inv.reshape(-1)]  # (N,)
        perm = np.argsort(uidx, kind="stable")
        counts = np.bincount(uidx, minlength=len(uniq))
        offsets = np.zeros(len(uniq) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        if n_items is None and item_ids is None:  # raw ids: kept if dense, else remapped
            items, n, item_ids = dense_items(items, source)
        else:
            n = int(n_items or 0)
        return cls(offsets, items[perm], n, uniq[order_of_first], item_ids, source)

    @classmethod
    def from_lists(cls, seqs: list[list[int]], user_ids=None, source: str = "") -> "Interactions":
        lens = np.array([len(s) for s in seqs], dtype=np.int64)
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        items = np.fromiter((i for s in seqs for i in s), dtype=np.int64, count=int(offsets[-1]))
        uids = np.asarray(user_ids) if user_ids is not None else np.arange(1, len(seqs) + 1)
        items, n, item_ids = dense_items(items, source)  # raw ids: kept if dense, else remapped
        return cls(offsets, items, n, uids, item_ids, source)

    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def user_index(self, user_id: str) -> int:
        """Internal index of a user given as written in the source file."""
        ids = self.user_ids
        key: object = user_id
        if ids.dtype.kind in "iu":
            try:
                key = int(user_id)
            except ValueError:
                raise ConfigError(f"--user {user_id!r}: expected an integer user id") from None
        hits = np.flatnonzero(ids == key)
        if not len(hits):
            raise ConfigError(f"--user {user_id!r}: no such user in {self.source or 'the dataset'}")
        return int(hits[0])

    def item_label(self, items: np.ndarray) -> np.ndarray:
        return self.item_ids[items] if self.item_ids is not None else items

    @staticmethod
    def item_index(labels: list[int], n_items: int, item_ids: np.ndarray | None) -> np.ndarray:
        """Internal ids of items given by their source ids (the inverse of :meth:`item_label`); 0 where unknown."""
        if item_ids is None:
            return np.array([r if 1 <= r <= n_items else 0 for r in labels], np.int64)
        lookup = {int(v): i for i, v in enumerate(np.asarray(item_ids)) if i}
        return np.array([lookup.get(r, 0) for r in labels], np.int64)

    def to_state(self) -> dict:
        """Every user's sequence and the id maps, compactly (saved in checkpoints for ``recommend``):
        ``offsets`` (U + 1,) int64, ``items`` (N,) int32, ``user_ids`` (U,) array (ints) or list
        (strings), ``item_ids`` (n_items + 1,) int64 or absent (items keep their ids)."""
        ints = self.user_ids.dtype.kind in "iu"
        state = {"offsets": self.offsets.astype(np.int64), "items": self.items.astype(np.int32),
                 "n_items": int(self.n_items), "source": self.source,
                 "user_ids": self.user_ids.astype(np.int64) if ints else [str(u) for u in self.user_ids]}
        if self.item_ids is not None:
            state["item_ids"] = np.asarray(self.item_ids).astype(np.int64)
        return state

    @classmethod
    def from_state(cls, state: dict) -> "Interactions":
        """Inverse of :meth:`to_state` (arrays given back as numpy by ``load_run``)."""
        item_ids = state.get("item_ids")
        return cls(np.asarray(state["offsets"], np.int64), np.asarray(state["items"], np.int64), int(state["n_items"]),
                   np.asarray(state["user_ids"]), None if item_ids is None else np.asarray(item_ids, np.int64),
                   str(state.get("source", "")))


def gather_windows(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
    """The last ``length`` items of each segment items[starts[b]:ends[b]], left-padded with 0."""
    idx = ends[:, None] - length + np.arange(length)  # (B, length)
    ok = idx >= starts[:, None]
    return np.where(ok, items[np.clip(idx, 0, max(len(items) - 1, 0))], 0)  # (B, length)


def gather_segments(items: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All items of the segments, flattened: (row, item) arrays."""
    lens = ends - starts
    rows = np.repeat(np.arange(len(starts)), lens)
    pos = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(starts, lens)
    return rows, items[pos]


class LeaveOneOut:
    """Leave-one-out view of :class:`Interactions` (see the module doc)."""

    def __init__(self, data: Interactions):
        self.data = data
        lens = data.lengths
        self.evaluable = lens >= 3  # (U,)
        ends = data.offsets[1:]
        self.train_end = np.where(self.evaluable, ends - 2, ends)  # (U,)
        self.val_target = np.where(self.evaluable, data.items[np.maximum(ends - 2, 0)], 0)
        self.test_target = np.where(self.evaluable, data.items[np.maximum(ends - 1, 0)], 0)
        self.cache: dict = {}  # the evaluator keeps its fixed sampled candidates here

    @property
    def n_items(self) -> int:
        return self.data.n_items

    def eval_users(self) -> np.ndarray:
        return np.flatnonzero(self.evaluable)

    def history(self, users: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) of what the model sees before the split's target: train for val,
        train + the validation item for test, the whole sequence for ``"all"``."""
        starts = self.data.offsets[users]
        if split == "val":
            return starts, self.train_end[users]
        if split == "test":
            return starts, self.train_end[users] + 1
        return starts, self.data.offsets[users + 1]

    def target(self, users: np.ndarray, split: str) -> np.ndarray:
        return (self.val_target if split == "val" else self.test_target)[users]

    def stats(self) -> dict[str, int]:
        return {"users": self.data.n_users, "items": self.n_items, "interactions": int(self.data.offsets[-1]),
                "eval_users": int(self.evaluable.sum())}


def sample_excluding(rngs: list[np.random.Generator], need: np.ndarray, excl_rows: np.ndarray,
                     excl_items: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw need[b] items uniformly from 1..n_items minus row b's excluded items, from rngs[b].

    Row b's draws are the first need[b] acceptable values of rngs[b]'s stream, so they do not
    depend on the other rows. Vectorised: one oversized draw per row, one sorted-key
    membership test for the batch; rows left short (huge histories) draw again.
    Returns (rows, items), grouped by row.
    """
    B = len(rngs)
    K = n_items + 1
    keys = np.unique(excl_rows.astype(np.int64) * K + excl_items)  # sorted (row, item) keys
    n_excl = np.bincount(keys // K, minlength=B)  # distinct excluded items per row
    full = np.flatnonzero((n_excl >= n_items) & (need > 0))
    if len(full):
        raise DataError(f"a user has interacted with all {n_items} items: no negative item can be drawn for it")
    p_ok = np.maximum(1.0 - n_excl / n_items, 1e-3)
    out_rows, out_items = [], []
    todo = np.flatnonzero(need > 0)
    got = np.zeros(B, dtype=np.int64)
    while len(todo):
        m = np.ceil((need[todo] - got[todo]) / p_ok[todo] * 1.2).astype(np.int64) + 4
        draws = np.concatenate([(rngs[b].random(int(c)) * n_items).astype(np.int64) + 1 for b, c in zip(todo, m)])
        rows = np.repeat(todo, m)
        ck = rows * K + draws
        pos = np.searchsorted(keys, ck)
        bad = keys[np.minimum(pos, len(keys) - 1)] == ck if len(keys) else np.zeros(len(ck), bool)
        rows, draws = rows[~bad], draws[~bad]
        # keep the first (need - got) accepted draws of each row
        first = np.searchsorted(rows, todo)
        rank = np.arange(len(rows)) - np.repeat(first, np.bincount(rows, minlength=B)[todo])
        keep = rank < (need - got)[rows]
        out_rows.append(rows[keep])
        out_items.append(draws[keep])
        got += np.bincount(rows[keep], minlength=B)
        todo = todo[got[todo] < need[todo]]
    rows = np.concatenate(out_rows) if out_rows else np.zeros(0, np.int64)
    items = np.concatenate(out_items) if out_items else np.zeros(0, np.int64)
    order = np.argsort(rows, kind="stable")
    return rows[order], items[order]


class TrainSequences(EpochMixin):
    """Training examples, one per user with >= 2 train items (see the module doc)."""

    def __init__(self, split: LeaveOneOut, maxlen: int, n_negatives: int = 1, seed: int = 0, negatives: str = "unseen"):
        self.split, self.maxlen, self.k, self.seed, self.negatives = split, maxlen, n_negatives, seed, negatives
        train_len = split.train_end - split.data.offsets[:-1]
        self.users = np.flatnonzero(train_len >= 2)

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        b = self.__getitems__([index])
        return {k: v[0].numpy() for k, v in b.items()}

    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        users = self.users[idx]
        L, k = self.maxlen, self.k
        starts, ends = self.split.data.offsets[users], self.split.train_end[users]
        w = gather_windows(self.split.data.items, starts, ends, L + 1)  # (B, L + 1)
        seq = w[:, :-1]  # (B, L)
        pos = np.where(seq != 0, w[:, 1:], 0)  # (B, L)
        tgt = pos != 0
        need = tgt.sum(1) * k  # (B,)
        if self.negatives == "all":  # nothing excluded
            rows = excl = np.zeros(0, dtype=np.int64)
        else:
            rows, excl = gather_segments(self.split.data.items, starts, ends)
        rngs = [index_rng(self.seed, self.epoch, int(i)) for i in idx]
        _, negs = sample_excluding(rngs, need, rows, excl, self.split.n_items)
        neg = np.zeros((len(idx), L, k), dtype=np.int64)
        neg[np.broadcast_to(tgt[:, :, None], neg.shape)] = negs  # row-major: row, position, j
        return {"seq": torch.from_numpy(seq), "pos": torch.from_numpy(pos), "neg": torch.from_numpy(neg)}


class EvalSequences:
    """Evaluated users of a split: input window, target and user index (map-style)."""

    def __init__(self, split: LeaveOneOut, name: str, maxlen: int):
        self.split, self.name, self.maxlen = split, name, maxlen
        self.users = split.eval_users()

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        b = self.__getitems__([index])
        return {k: v[0].numpy() for k, v in b.items()}

    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        users = self.users[np.asarray(indices, dtype=np.int64)]
        s, e = self.split.history(users, self.name)
        seq = gather_windows(self.split.data.items, s, e, self.maxlen)
        return {"seq": torch.from_numpy(seq), "target": torch.from_numpy(self.split.target(users, self.name)),
                "user": torch.from_numpy(users)}


def collate(batch) -> dict[str, torch.Tensor]:
    """Batches built by ``__getitems__`` pass through; a list of examples is stacked."""
    if isinstance(batch, dict):
        return batch
    return {k: torch.as_tensor(np.stack([b[k] for b in batch])) for k in batch[0]}


@dataclass
class SeqDataConfig:
    """Fields every sequential-recommendation dataset takes."""

    maxlen: int = 50  # window length; also sets model.maxlen
    batch_size: int = 128
    eval_batch_size: int = 256
    n_negatives: int = 1  # negatives per target position (1: SASRec's BCE)
    seed: int = 0  # negative sampling: index_rng(seed, epoch, index)
    negatives: Literal["unseen", "all"] = "unseen"  # unseen: not in the user's train items (SASRec); all: gSASRec

    def validate(self) -> None:
        if self.maxlen < 1 or self.batch_size < 1 or self.eval_batch_size < 1 or self.n_negatives < 1:
            raise ConfigError("data.maxlen, batch_size, eval_batch_size and n_negatives must be >= 1")


def make_bundle(data: Interactions, cfg: SeqDataConfig) -> DataBundle:
    if data.n_users == 0:
        raise DataError(f"{data.source or 'dataset'}: no interactions")
    split = LeaveOneOut(data)
    if not split.evaluable.any():
        raise DataError(f"{data.source or 'dataset'}: no user has the 3 interactions a leave-one-out split needs")
    train = TrainSequences(split, cfg.maxlen, cfg.n_negatives, cfg.seed, cfg.negatives)
    return DataBundle(
        train=train,
        val=EvalSequences(split, "val", cfg.maxlen),
        test=EvalSequences(split, "test", cfg.maxlen),
        batch_size=cfg.batch_size,
        eval_batch_size=cfg.eval_batch_size,
        collate=collate,
        shuffle=True,
        drop_last=False,
        model_kwargs={"n_items": data.n_items, "maxlen": cfg.maxlen},
        meta={"loo": split, "maxlen": cfg.maxlen, "n_items": data.n_items, "stats": split.stats()},
        inference={"histories": data.to_state(), "maxlen": cfg.maxlen},  # what `recommend` reads
    )


def read_int_rows(path: Path, ncols: int, sep: str, what: str, mins: tuple | None = None,
                  text: bytes | None = None) -> np.ndarray:
    """Parse a text file of ``ncols`` integer columns (blank lines skipped) -> (N, ncols) int64.

    ``mins[c]`` (or None) is the smallest valid value of column c. Fast path: pandas' C
    parser. On any problem, a line-by-line pass finds the first bad line and raises a
    one-line DataError naming the file and line number.
    """
    from io import BytesIO

    import pandas as pd

    text = path.read_bytes() if text is None else text
    mins = mins or (None,) * ncols
    if sep not in ("\t", " "):
        text, sep = text.replace(sep.encode(), b"\t"), "\t"
    try:
        df = pd.read_csv(BytesIO(text), sep=r"\s+" if sep == " " else sep, header=None,
                         dtype=np.int64, engine="c", skip_blank_lines=True)
        rows = df.to_numpy()
        if rows.shape[1] == ncols and len(rows) and all(m is None or rows[:, c].min() >= m for c, m in enumerate(mins)):
            return rows
    except (ValueError, OverflowError, pd.errors.ParserError, pd.errors.EmptyDataError):
        pass  # the line-by-line pass below names the first bad line
    for lineno, raw in enumerate(text.decode(errors="replace").splitlines(), 1):
        if not raw.strip():
            continue
        parts = raw.split() if sep == " " else raw.strip().split(sep)
        try:
            vals = [int(p) for p in parts]
            ok = len(vals) == ncols and all(m is None or v >= m for v, m in zip(vals, mins))
        except ValueError:
            ok = False
        if ok and any(abs(v) > MAX_ID for v in vals):
            raise DataError(f"{path}:{lineno}: {raw.strip()!r} has an id over 2^63-1; expected {what}")
        if not ok:
            raise DataError(f"{path}:{lineno}: expected {what}, got {raw.strip()!r}")
    raise DataError(f"{path}: no data lines; expected {what}")
