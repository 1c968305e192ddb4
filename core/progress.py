"""Progress that works with and without a terminal: one helper for every long command.

``Progress(total, desc)`` draws a tqdm bar when stderr is a TTY; otherwise (nohup, a batch
scheduler, ``2>&1 | tee log``) it prints one grep-able line every ``every_s`` seconds::

    [chimera_etth1] step 120/3000 epoch 2 loss 0.4123 lr 5.0e-03 3.1 steps/s eta 15m30s

Everything goes to **stderr** (like tqdm), so stdout stays clean for ``--json`` and tables.
``every_s=0`` turns the periodic lines off; ``quiet=True`` turns everything off (bar,
lines and :meth:`Progress.write`). The default period is ``$OSTINATO_LOG_EVERY_S`` or 30 s.

Two scopes let commands switch progress on for code they do not own, without new arguments:

- ``with tracking("eval test"): ...`` makes :func:`track` (used by ``core.data.batches`` and
  the domains' evaluation loops) report progress; outside a scope ``track`` is a no-op.
- ``with announcing("bench timeseries"): ...`` makes :func:`announce` (called by ``fit`` at
  the end of every run) print one line per finished run: a bench row as it finishes.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from typing import Any, Callable, Iterable, Iterator

DEFAULT_EVERY_S = 30.0


def default_every_s() -> float:
    try:
        return max(0.0, float(os.environ.get("OSTINATO_LOG_EVERY_S", DEFAULT_EVERY_S)))
    except ValueError:
        return DEFAULT_EVERY_S


def is_tty(stream: Any = None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or stream-like object without isatty
        return False


def fmt_duration(s: float) -> str:
    """Seconds -> ``45s``, ``15m30s``, ``2h05m``."""
    if not math.isfinite(s):
        return "?"
    s = max(0, int(round(s)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _plural(unit: str) -> str:
    return unit if unit.endswith("s") else unit + ("es" if unit.endswith(("ch", "sh", "x")) else "s")


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if v == 0 or 1e-3 <= abs(v) < 1e5 else f"{v:.2e}"
    return str(v)


class Progress:
    """Counts ``n`` of ``total`` units (``total=None``: unknown, no ETA).

    ``update(k, {"epoch": 2, "loss": 0.41}, mean=("loss",))``: fields are printed in order,
    as given (last value wins), except those named in ``mean``: their mean over the updates
    since the last line (a running loss).
    ``deadline``: a ``time.monotonic()`` at which the work stops anyway (a wall-clock budget);
    the ETA is the nearer of it and the remaining units at the current rate.
    """

    def __init__(self, total: int | None, desc: str, unit: str = "step", every_s: float | None = None,
                 quiet: bool = False, initial: int = 0, deadline: float | None = None, stream: Any = None):
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.every_s = default_every_s() if every_s is None else max(0.0, float(every_s))
        self.quiet, self.deadline = quiet, deadline
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = self.t_line = time.monotonic()
        self.n_line = initial  # count at the last printed line: the rate is over the window since
        self.show: dict[str, Any] = {}  # field -> last value (insertion order = print order)
        self.sums: dict[str, float] = {}  # mean field -> sum since the last line
        self.counts: dict[str, int] = {}
        self.bar = None
        if not quiet and is_tty(self.stream):
            from tqdm import tqdm

            scale = unit == "B"
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, unit_scale=scale,
                            unit_divisor=1024 if scale else 1000, dynamic_ncols=True, file=self.stream)

    # -- counting
    def update(self, k: int = 1, fields: dict[str, Any] | None = None, mean: tuple[str, ...] = ()) -> None:
        self.n += k
        for key, v in (fields or {}).items():
            self.show[key] = v
            if key in mean:
                self.sums[key] = self.sums.get(key, 0.0) + float(v)
                self.counts[key] = self.counts.get(key, 0) + 1
        if self.bar is not None:
            self.bar.update(k)
            if fields:
                self.bar.set_postfix({a: _fmt_value(b) for a, b in self.show.items()}, refresh=False)
        elif not self.quiet and self.every_s > 0 and time.monotonic() - self.t_line >= self.every_s:
            self.write(self.line())

    def line(self) -> str:
        """``[desc] step 120/3000 <show fields> <means> 3.1 steps/s eta 15m30s``; resets the window."""
        now = time.monotonic()
        rate = (self.n - self.n_line) / max(now - self.t_line, 1e-9)
        size = fmt_bytes if self.unit == "B" else str
        count = f"{size(self.n)}" + (f"/{size(self.total)}" if self.total else "")
        parts = [f"[{self.desc}]", count if self.unit == "B" else f"{self.unit} {count}"]
        parts += [f"{k} {_fmt_value(self.sums[k] / self.counts[k] if k in self.sums else v)}" for k, v in self.show.items()]
        parts.append(f"{fmt_bytes(rate)}/s" if self.unit == "B" else f"{rate:.3g} {_plural(self.unit)}/s")
        eta = self.eta(rate, now)
        if eta is not None:
            parts.append(f"eta {fmt_duration(eta)}")
        self.t_line, self.n_line, self.sums, self.counts = now, self.n, {}, {}
        return " ".join(parts)

    def eta(self, rate: float, now: float) -> float | None:
        left = []
        if self.total and rate > 0:
            left.append(max(0, self.total - self.n) / rate)
        if self.deadline is not None:
            left.append(max(0.0, self.deadline - now))
        return min(left) if left else None

    # -- messages
    def write(self, msg: str) -> None:
        """Print one line without breaking the bar (``tqdm.write`` when the bar is active)."""
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(msg, file=self.stream)
        else:
            print(msg, file=self.stream, flush=True)

    def close(self, summary: bool = False) -> None:
        """Close the bar; ``summary``: without a TTY, print ``[desc] done N units in T``."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif summary and not self.quiet:
            dt = time.monotonic() - self.t0
            size = fmt_bytes if self.unit == "B" else str
            unit = "" if self.unit == "B" else f" {_plural(self.unit)}"
            self.write(f"[{self.desc}] done {size(self.n)}{unit} in {fmt_duration(dt)}")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close(summary=exc[0] is None)


# ----------------------------------------------------------------------------- scopes
_TRACKING: list[tuple[str, float | None, bool]] = []  # (desc, every_s, quiet) of the open tracking scopes
_ANNOUNCING: list[str] = []  # prefixes of the open announcing scopes


@contextlib.contextmanager
def tracking(desc: str, every_s: float | None = None, quiet: bool = False) -> Iterator[None]:
    """Within this block, :func:`track` reports progress as ``[desc] ...``."""
    _TRACKING.append((desc, every_s, quiet))
    try:
        yield
    finally:
        _TRACKING.pop()


class _Tracked:
    def __init__(self, it: Iterable, total: int | None, unit: str, count: Callable[[Any], int] | None):
        self.it, self.total, self.unit, self.count = it, total, unit, count

    def __len__(self) -> int:
        return len(self.it)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:  # .dataset, .batch_size ... of a DataLoader
        return getattr(self.it, name)

    def __iter__(self) -> Iterator[Any]:
        desc, every_s, quiet = _TRACKING[-1]
        total = self.total
        if total is None:
            try:
                total = len(self.it)  # type: ignore[arg-type]
            except TypeError:
                total = None
        with Progress(total, desc, unit=self.unit, every_s=every_s, quiet=quiet) as p:
            for item in self.it:
                yield item
                p.update(self.count(item) if self.count else 1)


def track(it: Iterable, total: int | None = None, unit: str = "batch", count: Callable[[Any], int] | None = None):
    """``it`` unchanged outside a :func:`tracking` scope; inside, an iterable that reports progress.

    ``count(item)``: how many units an item is (default 1), e.g. the episodes in a group.
    """
    return _Tracked(it, total, unit, count) if _TRACKING else it


@contextlib.contextmanager
def announcing(prefix: str) -> Iterator[None]:
    """Within this block, :func:`announce` prints ``[prefix] <message>`` on stderr."""
    _ANNOUNCING.append(prefix)
    try:
        yield
    finally:
        _ANNOUNCING.pop()


def announce(msg: str) -> None:
    if _ANNOUNCING:
        print(f"[{_ANNOUNCING[-1]}] {msg}", file=sys.stderr, flush=True)
