"""One training per run folder: an OS-level lock on ``<out>/.lock``.

``fcntl.flock`` is held for the whole run and released by the OS when the process ends in
any way (a crash or SIGKILL included), so a stale lock never blocks a later run. The file
says who holds it (pid, host, start time). A second run into a held folder raises
:class:`RunFolderBusy` at once (a usage error: exit code 2). On a platform without
``fcntl`` (Windows) there is no lock.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from types import TracebackType

from .errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


class RunFolderBusy(ConfigError):
    """Another training holds the run folder (exit code 2)."""


class RunLock:
    """``with RunLock(out):`` holds ``out/.lock`` (creating ``out``) or raises RunFolderBusy."""

    def __init__(self, out: Path):
        self.path = Path(out) / LOCK_NAME
        self.fd: int | None = None
        self.created = False  # whether acquire() made the folder (a run that fails at once removes it again)

    def acquire(self) -> "RunLock":
        self.created = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 4096).decode(errors="replace").strip() or "an unknown process"
                os.close(fd)
                raise RunFolderBusy(f"{self.path.parent} is in use by another training ({holder}); "
                                    "wait for it to finish or choose another --out") from None
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {stamp}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if e is not None and self.created and [p.name for p in self.path.parent.iterdir()] == [LOCK_NAME]:
            self.path.unlink()  # a run that failed before writing anything leaves no folder behind
            self.release()
            self.path.parent.rmdir()
            return
        self.release()
