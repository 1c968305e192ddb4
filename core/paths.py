"""Checking an output path before any work: ``--out`` / ``-o`` of train, enhance, forecast,
bench and control collect.

A verb calls :func:`check_out_dir` or :func:`check_out_file` first, so that a mistyped
``--out`` (an existing file where a folder is wanted, a path under a regular file, a place
that cannot be written) is a one-line :class:`ConfigError` (exit 2) naming the path and what
was expected, before a model is loaded or a benchmark runs. Nothing is created here.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError


def _blocking_ancestor(p: Path) -> tuple[Path | None, Path | None]:
    """(the first existing ancestor of ``p`` that is not a folder, the nearest existing folder)."""
    q = p
    while True:
        if q.exists():
            return (None, q) if q.is_dir() else (q, None)
        if q.parent == q:
            return None, None
        q = q.parent


def _check_writable(folder: Path, p: Path, flag: str, what: str) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {p}: cannot write in {folder}; expected {what} in a writable place")
    try:  # /proc and friends: os.access says yes, creating a file says no
        probe = folder / f".ostinato-write-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"{flag} {p}: cannot write in {folder} ({e.strerror or e}); "
                          f"expected {what} in a writable place") from None


def check_out_dir(path: str | Path, what: str = "an output folder", flag: str = "--out") -> Path:
    """``path`` is, or can become, a folder this process writes in; else a ConfigError."""
    p = Path(path).expanduser()
    if str(path).strip() == "":
        raise ConfigError(f"{flag} is empty: expected {what}")
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{flag} {p}: is an existing file; expected {what} (a folder)")
    blocker, folder = _blocking_ancestor(p)
    if blocker is not None:
        raise ConfigError(f"{flag} {p}: {blocker} is a file, not a folder; expected {what}")
    if folder is None:
        raise ConfigError(f"{flag} {p}: no existing parent folder; expected {what}")
    _check_writable(folder, p, flag, what)
    return p


def check_out_file(path: str | Path, what: str = "an output file", flag: str = "--out") -> Path:
    """``path`` is a file this process can (over)write: not a folder, not under a file."""
    p = Path(path).expanduser()
    if str(path).strip() == "":
        raise ConfigError(f"{flag} is empty: expected {what}")
    if p.is_dir():
        raise ConfigError(f"{flag} {p}: is a folder; expected {what} (a file path)")
    blocker, folder = _blocking_ancestor(p.parent)
    if blocker is not None:
        raise ConfigError(f"{flag} {p}: {blocker} is a file, not a folder; expected {what}")
    if folder is None:
        raise ConfigError(f"{flag} {p}: no existing parent folder; expected {what}")
    if p.exists() and not os.access(p, os.W_OK):
        raise ConfigError(f"{flag} {p}: is not writable; expected {what}")
    _check_writable(folder, p, flag, what)
    return p
