"""Classification archives: UCR 2018 TSV and UEA/sktime ``.ts`` files.

**UCR TSV** (``<Name>/<Name>_TRAIN.tsv``, ``_TEST.tsv``): one series per line, tab
separated, column 0 the class label, the rest the values; ``NaN`` pads variable-length
series. **UEA ``.ts``** (``<Name>/<Name>_TRAIN.ts``): ``@`` header lines
(``@problemName``, ``@univariate``, ``@dimensions``, ``@equalLength``, ``@seriesLength``,
``@classLabel true <labels...>``, ``@timeStamps``, ``@missing``), then after ``@data``
one case per line, dimensions separated by ``:``, values by ``,``, ``?`` for missing,
the class label last. Time-stamped values ``(t,v)`` keep ``v``. Parsed here; sktime is
not needed.

Labels are mapped to 0..K-1 in sorted order of the declared (or observed) labels.
Series are padded at the end to the longest length with zeros; ``mask`` marks real steps.
Validation: the archives have only TRAIN and TEST, and Time-Series-Library validates on
TEST; here a stratified ``val_fraction`` of TRAIN (seeded) is the validation split, and
``val_fraction=0`` trains on all of TRAIN with no validation (the last epoch is kept).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ostinato.core.data import DataBundle, DatasetSpec, FileSpec, locate
from ostinato.core.errors import ConfigError, DataError
from ostinato.core.registry import register_dataset

SHIPPED = Path(__file__).resolve().parent.parent / "samples"

UCR_SPECS = [
    DatasetSpec(
        name="ECG200",
        domain="timeseries",
        files=(
            FileSpec("timeseries/ucr/ECG200/ECG200_TRAIN.tsv", sha256="bffe8ea724a576f08ca6abcefa65d291fb7f0b6ebd6ff6c2caf876437d3d0ac1", size=106708),
            FileSpec("timeseries/ucr/ECG200/ECG200_TEST.tsv", sha256="60ec3ecfc844403c80a5936b123b2a1829c83382d044568461affb66bd31d2c0", size=106704),
        ),
        source="UCR Time Series Archive 2018 (UCRArchive_2018/ECG200)",
        licence="research use with citation (Dau et al. 2018)",
        description="ECG200: 100 train / 100 test heartbeats x 96 steps, 2 classes (shipped)",
        shipped=SHIPPED,
    ),
    DatasetSpec(
        name="ECG5000",
        domain="timeseries",
        files=(FileSpec("timeseries/ucr/ECG5000/ECG5000_TRAIN.tsv", sha256="df86ac15d7e283e731db6be7865f5004b65bc639014cb8b9753c26e24a9092a1", size=786687),),
        source="UCR Time Series Archive 2018 (UCRArchive_2018/ECG5000)",
        licence="research use with citation (Dau et al. 2018)",
        description="ECG5000 train file: 500 x 140, 5 classes (not shipped)",
        how_to_get="download the UCR archive and place UCRArchive_2018/ECG5000 under <data-root>/timeseries/ucr/",
    ),
]


def read_ucr_tsv(path: Path) -> tuple[np.ndarray, list]:
    """-> values (N, L) float64 with NaN padding, raw labels (N,)."""
    rows, labels = [], []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split("\t") if "\t" in line else line.split(",")
            try:
                vals = [float(v) for v in parts]
            except ValueError:
                bad = next(v for v in parts if not _is_float(v))
                raise DataError(f"{path}:{lineno}: value {bad!r} is not a number; expected '<label>\\t<v1>\\t<v2>...'") from None
            if len(vals) < 2:
                raise DataError(f"{path}:{lineno}: expected a label and at least one value, got {line[:40]!r}")
            _check_finite(path, lineno, vals[1:])
            labels.append(vals[0])
            rows.append(vals[1:])
    if not rows:
        raise DataError(f"{path}: no series")
    L = max(len(r) for r in rows)
    out = np.full((len(rows), L), np.nan)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, [int(v) if float(v).is_integer() else v for v in labels]


def _check_finite(path, lineno: int, vals) -> None:
    """No inf and nothing beyond float32's range (NaN is a missing value / padding)."""
    from .windows import F32_MAX

    bad = next((v for v in vals if abs(v) > F32_MAX), None)  # inf included; NaN compares False
    if bad is not None:
        kind = "is not finite" if bad in (float("inf"), float("-inf")) else "overflows float32"
        raise DataError(f"{path}:{lineno}: value {bad!r} {kind}; expected finite numbers with magnitude <= {F32_MAX:.3g}")


def _is_float(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def read_uea_ts(path: Path) -> tuple[np.ndarray, list, list]:
    """-> values (N, C, L) float64 with NaN padding/missing, raw labels (N,), declared labels."""
    declared: list[str] = []
    has_labels, in_data, dims = True, False, None
    cases, labels = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                low = line.lower()
                if low.startswith("@classlabel"):
                    toks = line.split()
                    has_labels = len(toks) > 1 and toks[1].lower() == "true"
                    declared = toks[2:]
                elif low.startswith("@dimensions"):
                    dims = int(line.split()[1])
                elif low.startswith("@data"):
                    in_data = True
                elif not line.startswith("@"):
                    raise DataError(f"{path}:{lineno}: expected a '@' header line or @data, got {line[:40]!r}")
                continue
            parts = line.split(":")
            if has_labels:
                labels.append(parts[-1].strip())
                parts = parts[:-1]
            if dims is not None and len(parts) != dims:
                raise DataError(f"{path}:{lineno}: {len(parts)} dimensions, expected {dims} (separated by ':')")
            case = []
            for dim in parts:
                vals = []
                for tok in _split_values(dim):
                    tok = tok.strip()
                    if tok.startswith("(") and tok.endswith(")"):  # time-stamped (t,v)
                        tok = tok[1:-1].rsplit(",", 1)[-1]
                    if tok in ("?", "", "NaN", "nan"):
                        vals.append(np.nan)
                        continue
                    try:
                        vals.append(float(tok))
                    except ValueError:
                        raise DataError(f"{path}:{lineno}: value {tok!r} is not a number") from None
                _check_finite(path, lineno, vals)
                case.append(vals)
            cases.append(case)
    if not in_data:
        raise DataError(f"{path}: no @data line; expected a UEA/sktime .ts file")
    if not cases:
        raise DataError(f"{path}: no cases after @data")
    C = len(cases[0])
    if any(len(c) != C for c in cases):
        raise DataError(f"{path}: cases have different numbers of dimensions")
    L = max(len(d) for c in cases for d in c)
    out = np.full((len(cases), C, L), np.nan)
    for i, c in enumerate(cases):
        for j, d in enumerate(c):
            out[i, j, : len(d)] = d
    return out, labels, declared


def _split_values(dim: str) -> list[str]:
    """Split on commas that are not inside '(t,v)' pairs."""
    out, depth, cur = [], 0, []
    for ch in dim:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


class ClassificationSet(torch.utils.data.Dataset):
    def __init__(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray):
        self.x = torch.as_tensor(x, dtype=torch.float32)  # (N, L, C)
        self.y = torch.as_tensor(y, dtype=torch.long)  # (N,)
        self.mask = torch.as_tensor(mask)  # (N, L) bool

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "label": self.y[i], "mask": self.mask[i]}


def _stratified_split(labels: np.ndarray, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    tr, va = [], []
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        rng.shuffle(idx)
        n_val = int(round(frac * len(idx)))
        n_val = min(n_val, len(idx) - 1) if len(idx) > 1 else 0
        va.extend(idx[:n_val])
        tr.extend(idx[n_val:])
    return np.sort(np.array(tr, dtype=int)), np.sort(np.array(va, dtype=int))


def classification_bundle(train_x, train_lab, test_x, test_lab, declared, cfg, path) -> DataBundle:
    """x arrays (N, C, L) with NaN padding; labels raw."""
    classes = sorted(set(declared) | set(train_lab) | set(test_lab), key=lambda v: (str(type(v)), v)) if not declared else list(declared)
    for lab in set(train_lab) | set(test_lab):
        if lab not in classes:
            raise DataError(f"{path}: label {lab!r} is not among the declared class labels {classes}")
    index = {c: i for i, c in enumerate(classes)}
    L = max(train_x.shape[-1], test_x.shape[-1])

    def prep(x, lab):
        x = np.pad(x, ((0, 0), (0, 0), (0, L - x.shape[-1])), constant_values=np.nan)
        if cfg.normalize == "znorm":  # per series and dimension
            mu = np.nanmean(x, axis=-1, keepdims=True)
            sd = np.nanstd(x, axis=-1, keepdims=True)
            x = (x - mu) / np.where(sd > 0, sd, 1.0)
        mask = ~np.isnan(x).all(axis=1)  # (N, L)
        x = np.nan_to_num(x, nan=0.0).transpose(0, 2, 1)  # (N, L, C)
        return x, np.array([index[v] for v in lab]), mask

    xtr, ytr, mtr = prep(train_x, train_lab)
    xte, yte, mte = prep(test_x, test_lab)
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction={cfg.val_fraction}: expected 0 <= val_fraction < 1")
    tr_idx, va_idx = _stratified_split(ytr, cfg.val_fraction, cfg.split_seed)
    val = ClassificationSet(xtr[va_idx], ytr[va_idx], mtr[va_idx]) if len(va_idx) else None
    return DataBundle(
        train=ClassificationSet(xtr[tr_idx], ytr[tr_idx], mtr[tr_idx]),
        val=val,
        test=ClassificationSet(xte, yte, mte),
        batch_size=cfg.batch_size,
        eval_batch_size=cfg.batch_size,
        shuffle=True,
        model_kwargs={"n_vars": xtr.shape[-1], "seq_len": L, "n_classes": len(classes)},
        meta={"task": "classify", "classes": [str(c) for c in classes], "path": str(path)},
        inference={"task": "classify", "classes": [str(c) for c in classes]},
    )


def _train_test(cfg, ext: str, data_root, hint: str, shipped: Path | None = None) -> tuple[Path, Path]:
    """``<root>/<dataset>/<dataset>_TRAIN.<ext>`` and ``_TEST.<ext>``, found through the data roots."""
    base = f"{cfg.root}/{cfg.dataset}/{cfg.dataset}"
    ptr = locate(f"{base}_TRAIN.{ext}", data_root, shipped=shipped, hint=hint)
    return ptr, locate(f"{base}_TEST.{ext}", data_root, shipped=shipped, hint=hint)


@dataclass
class UCRConfig:
    dataset: str = "ECG200"  # folder and file prefix: <root>/<dataset>/<dataset>_TRAIN.tsv
    root: str = "timeseries/ucr"
    normalize: Literal["none", "znorm"] = "none"  # UCR sets are mostly z-normalised already
    val_fraction: float = 0.2  # stratified share of TRAIN used for validation
    split_seed: int = 0
    batch_size: int = 16


@register_dataset("ucr", config=UCRConfig)
def ucr(cfg: UCRConfig, data_root=None) -> DataBundle:
    """UCR 2018 TSV classification (TRAIN/TEST), stratified validation from TRAIN."""
    hint = f"ECG200 ships with ostinato; put other UCR sets under <data-root>/{cfg.root}/<Name>/"
    ptr, pte = _train_test(cfg, "tsv", data_root, hint, shipped=SHIPPED)
    xtr, ltr = read_ucr_tsv(ptr)
    xte, lte = read_ucr_tsv(pte)
    return classification_bundle(xtr[:, None], ltr, xte[:, None], lte, [], cfg, ptr)


@dataclass
class UEAConfig:
    dataset: str = "BasicMotions"  # <root>/<dataset>/<dataset>_TRAIN.ts
    root: str = "timeseries/uea"
    normalize: Literal["none", "znorm"] = "znorm"
    val_fraction: float = 0.2
    split_seed: int = 0
    batch_size: int = 16


@register_dataset("uea", config=UEAConfig)
def uea(cfg: UEAConfig, data_root=None) -> DataBundle:
    """UEA multivariate ``.ts`` classification (own parser; no sktime)."""
    ptr, pte = _train_test(cfg, "ts", data_root, f"put UEA sets under <data-root>/{cfg.root}/<Name>/<Name>_TRAIN.ts")
    xtr, ltr, dtr = read_uea_ts(ptr)
    xte, lte, _ = read_uea_ts(pte)
    if xtr.shape[1] != xte.shape[1]:
        raise DataError(f"{pte}: {xte.shape[1]} dimensions, but {ptr} has {xtr.shape[1]}")
    return classification_bundle(xtr, ltr, xte, lte, dtr, cfg, ptr)
