"""Data roots, dataset specs, verified downloads, and the bundle a dataset builder returns.

Where a file is looked for, in order:

1. an explicit root (``--data-root DIR`` or a config path),
2. ``$OSTINATO_DATA``,
3. ``~/.cache/ostinato`` (where ``ostinato data download`` puts files),
4. the small samples shipped inside the package (when the dataset ships any).

Every root has the same layout: a file is addressed by a relative path such as
``timeseries/ETT/ETTh1.csv``. A missing file gives a one-line :class:`DataError` that says
where ostinato looked and how to get the data.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from .errors import DataError
from .io import fsync_dir

CACHE_DIR = Path(os.environ.get("OSTINATO_CACHE", Path.home() / ".cache" / "ostinato"))

# Files that a DatasetSpec declares, by relative path (filled as the domains' specs are built).
_DECLARED: dict[str, "FileSpec"] = {}
_WARNED: set[str] = set()
_CHECKED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256

# The largest zip member read into memory (bytes); $OSTINATO_MAX_ZIP_MEMBER overrides.
MAX_ZIP_MEMBER = int(os.environ.get("OSTINATO_MAX_ZIP_MEMBER", 2 << 30))


def strict_data() -> bool:
    """``$OSTINATO_STRICT_DATA=1``: a dataset file that fails its declared checksum is an error
    (else one warning line on stderr, once per file)."""
    return os.environ.get("OSTINATO_STRICT_DATA", "").strip().lower() in ("1", "true", "yes", "on")


def warn_once(key: str, message: str) -> None:
    """Print ``ostinato: warning: message`` on stderr, once per ``key`` in this process."""
    import sys

    if key in _WARNED:
        return
    _WARNED.add(key)
    print(f"ostinato: warning: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class FileSpec:
    path: str  # relative to a data root, e.g. "timeseries/ETT/ETTh1.csv"
    sha256: str | None = None
    url: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """Declares a dataset: its files, checksums, source and licence."""

    name: str
    domain: str
    files: tuple[FileSpec, ...]
    source: str
    licence: str
    description: str = ""
    shipped: Path | None = None  # a package folder laid out like a data root
    how_to_get: str = ""  # shown when the files are missing and cannot be downloaded

    def __post_init__(self):
        for f in self.files:
            _DECLARED.setdefault(f.path, f)


def data_roots(explicit: str | Path | None = None, shipped: Path | None = None) -> list[tuple[str, Path]]:
    """The roots searched, in order, each with a label for messages."""
    roots: list[tuple[str, Path]] = []
    if explicit:
        roots.append(("--data-root", Path(explicit).expanduser()))
    env = os.environ.get("OSTINATO_DATA")
    if env:
        roots.append(("$OSTINATO_DATA", Path(env).expanduser()))
    roots.append(("cache", CACHE_DIR))
    if shipped is not None:
        roots.append(("shipped", Path(shipped)))
    return roots


def locate(
    relpath: str,
    data_root: str | Path | None = None,
    shipped: Path | None = None,
    hint: str = "",
) -> Path:
    """Find ``relpath`` under the data roots (see module doc); raise a one-line DataError.

    An absolute path, or a path that exists relative to the working directory, is used as is.
    """
    p = Path(relpath).expanduser()
    if p.is_absolute():
        if p.exists():
            return p
        raise DataError(f"{p}: no such file")
    tried = []
    for label, root in data_roots(data_root, shipped):
        cand = root / relpath
        if cand.exists():
            if label != "shipped":  # the package's own samples are part of the install
                check_declared(relpath, cand)
            return cand
        tried.append(f"{label} {root}")
    if p.exists():  # a path relative to the working directory
        return p
    how = f"; {hint}" if hint else "; pass --data-root DIR or set OSTINATO_DATA"
    raise DataError(f"dataset file {relpath!r} not found (looked in: {'; '.join(tried)}){how}")


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _digest(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _CHECKED:
        _CHECKED[key] = sha256_of(path)
    return _CHECKED[key]


def check_declared(relpath: str, path: Path) -> None:
    """Compare a dataset file found on disk with what its DatasetSpec declares.

    A size or sha256 mismatch: one warning line on stderr (once per file), or a DataError
    with ``$OSTINATO_STRICT_DATA=1``. A declared file with no checksum: one warning naming it
    (it is used, not silently trusted). Files no spec declares (your own) are not checked.
    """
    f = _DECLARED.get(relpath)
    if f is None or not path.is_file():
        return
    size = path.stat().st_size
    if f.size is not None and size != f.size:
        why = f"{size} bytes, expected {f.size}"
    elif not f.sha256:
        warn_once(str(path), f"{path}: no checksum is declared for {relpath}; using it unverified")
        return
    else:
        digest = _digest(path)
        if digest == f.sha256:
            return
        why = f"sha256 {digest[:12]}…, expected {f.sha256[:12]}…"
    if strict_data():
        raise DataError(f"{path}: fails its declared checksum ({why}); replace it (`ostinato data download`) "
                        "or unset OSTINATO_STRICT_DATA to use it anyway")
    warn_once(str(path), f"{path}: fails its declared checksum ({why}); results may not match "
                         "(OSTINATO_STRICT_DATA=1 makes this an error)")


def read_zip_member(zpath: Path, name: str, limit: int | None = None) -> bytes:
    """The bytes of member ``name`` of the open-able zip ``zpath``, at most ``limit`` bytes
    (default :data:`MAX_ZIP_MEMBER`): a larger member (declared or actual) is a DataError."""
    import zipfile

    limit = MAX_ZIP_MEMBER if limit is None else int(limit)
    try:
        with zipfile.ZipFile(zpath) as z:
            info = z.getinfo(name)
            if info.file_size > limit:
                raise DataError(f"{zpath}: member {name} is {info.file_size} bytes uncompressed, over the "
                                f"{limit}-byte limit (set OSTINATO_MAX_ZIP_MEMBER to raise it)")
            with z.open(info) as fh:
                data = fh.read(limit + 1)
    except zipfile.BadZipFile as e:
        raise DataError(f"{zpath}: not a valid zip file ({e})") from None
    except KeyError:
        raise DataError(f"{zpath}: no member {name}") from None
    if len(data) > limit:
        raise DataError(f"{zpath}: member {name} expands past the {limit}-byte limit "
                        "(set OSTINATO_MAX_ZIP_MEMBER to raise it)")
    return data


def verify(spec: DatasetSpec, data_root: str | Path | None = None) -> list[tuple[str, str, str]]:
    """Check each file of ``spec``: returns (relpath, status, where) with status ok/missing/bad-checksum."""
    rows = []
    for f in spec.files:
        try:
            p = locate(f.path, data_root, spec.shipped)
        except DataError:
            rows.append((f.path, "missing", "-"))
            continue
        if f.sha256 and sha256_of(p) != f.sha256:
            rows.append((f.path, "bad-checksum", str(p)))
        else:
            rows.append((f.path, "ok" if f.sha256 else "ok (no checksum declared)", str(p)))
    return rows


def download(
    spec: DatasetSpec,
    dest_root: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    timeout: float = 60.0,
) -> list[Path]:
    """Fetch every file of ``spec`` that has a URL into ``dest_root`` (default: the cache).

    Each file is streamed to ``<file>.part`` (bytes done/total on stderr, ``core.progress``);
    a ``.part`` left by an interrupted download is resumed with an HTTP Range request (from
    scratch if the server does not answer 206). Its size and sha256 are checked, and only
    then is it renamed into place, so a truncated or corrupted transfer never leaves a file
    that looks valid.
    """
    dest = Path(dest_root).expanduser() if dest_root else CACHE_DIR
    out = []
    fetchable = [f for f in spec.files if f.url]
    if not fetchable:
        raise DataError(
            f"dataset {spec.name!r} has no public download; {spec.how_to_get or 'place its files under a data root'}"
        )
    for f in fetchable:
        target = dest / f.path
        if target.exists() and (not f.sha256 or sha256_of(target) == f.sha256):
            if not f.sha256:
                warn_once(str(target), f"{target}: already on disk and no checksum is declared; kept unverified")
            out.append(target)
            continue
        part = target.with_name(target.name + ".part")
        if progress:
            progress(f"downloading {f.url} -> {target}" + (" (resuming)" if part.exists() else ""))
        _fetch(f, part, timeout)
        _check_and_place(f, part, target)
        out.append(target)
    return out


def _fetch(f: FileSpec, part: Path, timeout: float) -> None:
    """Append ``f.url`` to ``part`` from its current size on (Range), or rewrite it (no 206)."""
    import http.client
    import urllib.error

    from .progress import Progress

    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if f.size is not None and have > f.size:  # not a prefix of this file
        part.unlink()
        have = 0
    req = urllib.request.Request(f.url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            if r.status != 206:  # the server sent the whole file
                have = 0
            length = r.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else f.size
            with open(part, "ab" if have else "wb") as fh, \
                    Progress(total, f"download {Path(f.path).name}", unit="B", initial=have) as bar:
                while block := r.read(1 << 18):
                    fh.write(block)
                    bar.update(len(block))
                fh.flush()
                os.fsync(fh.fileno())
    except urllib.error.HTTPError as e:
        if not (e.code == 416 and have):  # 416 on a resume: the .part may already be whole; checked next
            raise DataError(f"download of {f.url} failed: HTTP {e.code} {e.reason}") from None
    except (OSError, http.client.HTTPException) as e:
        kept = " (the partial file is kept; run the command again to resume)" if part.exists() else ""
        raise DataError(f"download of {f.url} failed: {getattr(e, 'reason', None) or e!r}{kept}") from None


def _check_and_place(f: FileSpec, part: Path, target: Path) -> None:
    """Size and sha256 of ``part``, then an atomic rename to ``target``; a bad file is removed."""
    n = part.stat().st_size
    if f.size is not None and n < f.size:
        raise DataError(f"download of {f.url} is truncated: {n} of {f.size} bytes (run the command again to resume)")
    if f.size is not None and n != f.size:
        part.unlink()
        raise DataError(f"download of {f.url} is wrong: {n} bytes, expected {f.size}")
    digest = sha256_of(part)
    if f.sha256 and digest != f.sha256:
        part.unlink()
        raise DataError(f"download of {f.url} failed its checksum: sha256 {digest[:12]}…, expected {f.sha256[:12]}…")
    os.replace(part, target)
    fsync_dir(target.parent)  # make the rename durable


def copy_shipped(spec: DatasetSpec, dest_root: str | Path) -> None:  # used by tests and `data` verbs
    if spec.shipped is None:
        return
    for f in spec.files:
        src = Path(spec.shipped) / f.path
        if src.exists():
            (Path(dest_root) / f.path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, Path(dest_root) / f.path)


def index_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """A generator that depends only on (seed, epoch, index).

    Datasets that sample (negatives, crops, noise, on-the-fly sequences) draw from this
    instead of a global RNG, so a sample is the same whatever worker or process loads it,
    and a resumed run sees exactly the samples an uninterrupted run would have.
    """
    return np.random.Generator(np.random.PCG64([int(seed) & 0xFFFFFFFF, int(epoch), int(index)]))


class EpochMixin:
    """``set_epoch(epoch)`` for a dataset whose samples change with the epoch (fresh crops,
    mixes, noise, negatives): ``fit`` calls it before each epoch, and ``__getitem__`` draws with
    ``index_rng(seed, self.epoch, i)``, so a sample depends only on (seed, epoch, index).

        class Crops(EpochMixin, torch.utils.data.Dataset): ...
    """

    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)


@dataclass
class DataBundle:
    """What a registered dataset builder returns to the trainer and the evaluator.

    ``train``/``val``/``test`` are map-style datasets (``val`` is never the test split).
    ``model_kwargs`` are config fields the model needs from the data (vocabulary size,
    number of variates, ...) and are merged into the model config. ``meta`` carries
    whatever the domain's ``evaluate`` needs (scalers, seen items, ...).
    ``inference`` holds what the domain's verbs (forecast, recommend, enhance, rollouts) need
    without the data: scalers, column names, calendar frequency, item maps, user histories,
    env settings. Values are numbers, strings, lists, dicts and numpy arrays; ``fit`` saves it
    (with ``model_kwargs``) in every checkpoint and ``load_run`` gives it back, arrays as numpy,
    so a run folder copied to another machine is enough.
    A dataset may define ``set_epoch(epoch)`` (``EpochMixin``); ``fit`` calls it before each epoch.
    """

    train: Any = None
    val: Any = None
    test: Any = None
    batch_size: int = 32
    eval_batch_size: int | None = None
    collate: Callable | None = None
    shuffle: bool = True
    drop_last: bool = False
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    inference: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str):
        if name not in ("train", "val", "test"):
            raise DataError(f"unknown split {name!r}; expected train, val or test")
        ds = getattr(self, name)
        if ds is None:
            raise DataError(f"this dataset has no {name!r} split")
        return ds


def to_plain(obj: Any) -> Any:
    """``obj`` as what a ``weights_only=True`` checkpoint load accepts: numpy arrays become
    tensors, numpy scalars Python numbers, tuples lists, dataclasses dicts (recursively)."""
    import dataclasses

    import torch

    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "biuf":
            return torch.from_numpy(np.ascontiguousarray(obj))
        return [to_plain(x) for x in obj.tolist()]  # strings, objects
    if isinstance(obj, np.generic):
        return obj.item()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_plain(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(x) for x in obj]
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"DataBundle.inference holds a {type(obj).__name__}; expected numbers, strings, lists, dicts or arrays")


def from_plain(obj: Any) -> Any:
    """Inverse of :func:`to_plain` for what a checkpoint gives back: tensors become numpy arrays."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.cpu().numpy()
    if isinstance(obj, dict):
        return {k: from_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_plain(x) for x in obj]
    return obj


def batches(dataset, batch_size: int, collate: Callable | None = None) -> Iterable[Any]:
    """Iterate a map-style dataset in order, in batches (for evaluation; reports progress inside
    a ``core.progress.tracking`` scope, e.g. under ``ostinato eval``)."""
    from torch.utils.data import DataLoader

    from .progress import track

    return track(DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate))
