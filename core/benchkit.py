"""The one bench kit every ``<domain>/bench.py`` (and ``ostinato bench core``) is written with.

A benchmark is a list of **rows**, plain dicts. Three kinds, one shape:

- :func:`train` trains a recipe (with overrides, including the budget: ``trainer.max_steps``,
  ``trainer.max_minutes``, ...) through :func:`ostinato.core.train.fit`, the one training loop,
  into a temporary run folder (or ``workdir``, which is kept), and returns its row: ``val`` and
  ``test`` metrics (validation picks the checkpoint; test is scored once), ``steps``,
  ``epochs``, ``best_step``, ``train_time_s`` (the trainer's loop, validation included),
  ``wall_s`` and ``cpu_s`` (wall-clock and process CPU time of the whole ``fit`` call), and
  ``params`` of the trained model. ``probe(run)`` measures more on the trained model while
  the run folder still exists (MACs via :func:`ostinato.core.measure.count_macs`, throughput,
  the validation curve in ``metrics.csv`` ...) and its dict is merged into the row.
- :func:`row` is a measured row without training (a seasonal-naive forecaster, a speed
  measurement): the same keys where they apply.
- :func:`reference` is a row of published numbers (``"reference": True``), printed beside ours.

Every row has ``table`` (which printed table it belongs to) and ``name``; :func:`print_table`
prints the rows of one table with chosen columns (dotted keys reach inside ``test``/``val``),
and :func:`write_json` writes ``{"bench", "quick", "machine", ..., "rows"}`` to ``--out``.
Finished rows are announced on stderr through :func:`ostinato.core.progress.announce` (``fit``
announces trained runs itself), so ``ostinato bench`` prints a line per row as it finishes.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from .measure import count_params
from .progress import announce


@dataclass
class Run:
    """A finished training run, handed to a :func:`train` probe while its folder exists."""

    dir: Path
    cfg: Any  # the resolved RunConfig
    result: dict[str, Any]  # what fit returned (results.json)
    model: torch.nn.Module | None  # the best checkpoint, in eval mode on ``device`` (None: no checkpoint)


def field(section: Any, key: str, default: Any = None) -> Any:
    """``section[key]`` of a config section that is a dict or a dataclass."""
    if isinstance(section, dict):
        return section.get(key, default)
    return getattr(section, key, default)


def _trained_model(run_dir: Path, device: str) -> torch.nn.Module | None:
    if not any((run_dir / f).exists() for f in ("best.pt", "last.pt")):
        return None
    from . import train as _train

    model, _, _ = _train.load_run(run_dir, build_data_too=False, device=device)
    return model


def train(recipe: str, overrides: Sequence[str] = (), *, name: str | None = None, table: str = "",
          workdir: str | Path | None = None, probe: Callable[[Run], dict[str, Any]] | None = None,
          device: str = "cpu", **extra: Any) -> dict[str, Any]:
    """Train ``recipe`` with ``overrides`` (budget included) and return its row (module doc).

    ``workdir``: the run folder (kept; it must not hold a run yet); default: a temporary folder,
    removed afterwards. ``device``: where the trained model is loaded for ``params`` and
    ``probe`` (training itself follows ``trainer.device``). ``extra`` fields go into the row.
    """
    from . import recipe as _recipe
    from . import train as _train

    cfg = _recipe.load(recipe, list(overrides))
    tmp = None if workdir is not None else tempfile.mkdtemp(prefix="ostinato_bench_")
    run_dir = Path(workdir) if workdir is not None else Path(tmp) / "run"
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        res = _train.fit(cfg, run_dir, quiet=True)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        model = _trained_model(run_dir, device)
        out = {"table": table, "name": name or recipe, "recipe": recipe, "overrides": list(overrides),
               "val": dict(res.get("val", {})), "test": dict(res.get("test", {})),
               "steps": res.get("steps"), "epochs": res.get("epochs"), "best_step": res.get("best_step"),
               "train_time_s": res.get("train_time_s"), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
               "params": None if model is None else count_params(model), **extra}
        if probe is not None:
            out.update(probe(Run(run_dir, cfg, res, model)))
        return out
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def row(table: str, name: str, *, test: dict[str, Any] | None = None, announce_it: bool = True,
        **fields: Any) -> dict[str, Any]:
    """A measured row without training (``steps`` 0, no train time); announced on stderr."""
    r = {"table": table, "name": name, "test": dict(test or {}), "steps": 0, "train_time_s": 0.0, **fields}
    if announce_it:
        shown = {**r["test"], **{k: v for k, v in fields.items() if isinstance(v, (int, float))}}
        announce(f"{name} done" + (f": {_short(shown)}" if shown else ""))
    return r


def reference(table: str, name: str, test: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Published numbers (not measured here), shown beside the measured rows."""
    return {"table": table, "name": name, "test": dict(test), "reference": True, **fields}


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``fn()`` -> (its value, wall seconds, process CPU seconds)."""
    w0, c0 = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - w0, time.process_time() - c0


# ----------------------------------------------------------------------------- printing
def get(r: dict[str, Any], key: str, default: Any = None) -> Any:
    """``r[key]``; a dotted key reaches inside nested dicts (``test.mse``), and the part after a
    dot may itself hold dots (a metric named ``x.y`` inside ``test``)."""
    if isinstance(r, dict) and key in r:
        return r[key]
    head, dot, rest = key.partition(".")
    if dot and isinstance(r, dict) and isinstance(r.get(head), dict):
        return get(r[head], rest, default)
    return default


Column = tuple  # (header, key or callable(row) -> value, format spec or callable(value) -> str)


def _cell(r: dict[str, Any], col: Column) -> str:
    header, key, *rest = col
    fmt = rest[0] if rest else ""
    v = key(r) if callable(key) else get(r, key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if callable(fmt):
        return fmt(v)
    return format(v, fmt) if fmt else str(v)


def table(rows: Iterable[dict[str, Any]], columns: Sequence[Column]) -> str:
    """Markdown-style table of ``rows`` (one column per ``(header, key, fmt)``; missing -> ``-``)."""
    body = [[_cell(r, c) for c in columns] for r in rows]
    head = [c[0] for c in columns]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    line = lambda cells: "| " + " | ".join(x.ljust(w) for x, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)])


def print_table(rows: Iterable[dict[str, Any]], columns: Sequence[Column], title: str | None = None,
                table_name: str | None = None) -> None:
    """Print :func:`table` (only the rows of ``table_name`` when given), under ``title``."""
    rows = [r for r in rows if table_name is None or r.get("table") == table_name]
    if title:
        print(f"\n{title}")
    print(table(rows, columns))


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads()}


def _plain(x: Any) -> Any:
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return dataclasses.asdict(x)
    if isinstance(x, (Path, torch.device, torch.dtype)):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def write_json(out: str | Path | None, bench: str, quick: bool, rows: list[dict[str, Any]], **meta: Any) -> dict[str, Any]:
    """The bench's JSON document ``{"bench", "quick", "machine", **meta, "rows"}``; written
    atomically to ``out`` when given. Returns the document."""
    doc = {"bench": bench, "quick": quick, "machine": machine(), **meta, "rows": rows}
    if out is not None:
        from .io import atomic_write_text

        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(out), json.dumps(doc, indent=2, default=_plain))
    return doc


def read_json(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def select(rows: Iterable[dict[str, Any]], table: str | None = None, name: str | None = None, **eq: Any) -> list[dict]:
    """The rows of ``table`` (and ``name``, and fields equal to ``eq``)."""
    return [r for r in rows if (table is None or r.get("table") == table) and (name is None or r.get("name") == name)
            and all(r.get(k) == v for k, v in eq.items())]


def _short(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in list(metrics.items())[:6])
