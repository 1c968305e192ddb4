"""``ostinato bench mixers``: the core's sequence mixers in every domain's mixer slot, one table.

Each domain that hosts a mixer slot (``core.mixer``) declares one task in its ``bench.py``::

    def mixer_task() -> dict:  # cheap to import
        return {"task": "recsys/games", "recipe": "recsys/sasrec_games", "quick_recipe": "recsys/test_sasrec",
                "slot": "model.mixer", "default": "attention", "mixers": ["gru", "lru", ...],
                "overrides": [...], "metrics": {"NDCG@10 sampled": "test.sampled_ndcg@10", ...},
                "stream": fn,  # fn(model, cfg) -> seconds per streamed step at batch 1, or None
                "mixer_overrides": [...]}  # optional: only where the slot is filled, e.g. "model.mixer=null"

A **cell** is one (task, mixer): the task's ``recipe`` trained from scratch by
:func:`ostinato.core.benchkit.train` with the task's ``overrides``, ``mixer_overrides`` and
``<slot>.name=<mixer>`` (neither for the published model's own mixer, the recipe as it is: that
row is labelled with ``default``) and
``trainer.max_minutes=<budget>``: the same wall-clock budget (``--budget-min``, 5 by default)
for every cell on this machine, with the recipe's own thread settings. Validation picks the
checkpoint; the test split is scored once. Columns: the task's metrics, ``vs default`` (the
first metric's relative difference to the default row, in %, positive = better), params,
training steps, CPU s (process CPU time of the whole training call) and stream ms/step (the
task's ``stream`` on the trained model). The best cell of each task (first metric; lower is
better for a label that names an error or loss: MSE, MAE, ...) is marked ``*``.

``--quick``: each task's ``quick_recipe``, ``trainer.max_steps=QUICK_STEPS``, the default and
two mixers (seconds). The core imports no domain by name: a domain's bench module is found
from its entry point (as ``ostinato bench <domain>`` finds the domain), and a domain that does
not import, has no ``mixer_task`` or whose data is missing is skipped with a printed reason.
"""
from __future__ import annotations

import importlib
import math
import re
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

from . import benchkit as kit
from .errors import ConfigError, DataError

BUDGET_MIN = 5.0
QUICK_STEPS = 5
QUICK_MIXERS = ("gru", "lru", "mingru", "mamba")  # --quick: the first two a task supports
KEYS = {"task": str, "recipe": str, "quick_recipe": str, "slot": str, "default": str, "mixers": list, "metrics": dict}
LOWER_IS_BETTER = re.compile(r"mse|mae|rmse|loss|err|wer|cer", re.I)


# ----------------------------------------------------------------------------- tasks
def _packages() -> dict[str, str]:
    """{domain: package} from the ``ostinato.domains`` entry points (``ostinato.recsys.domain`` -> ``ostinato.recsys``)."""
    from .domain import domain_entry_points

    return {ep.name: ep.value.rsplit(".", 1)[0] for ep in domain_entry_points()}


def bench_module(domain: str):
    """The domain's ``<package>.bench`` module, imported by name."""
    return importlib.import_module(f"{_packages()[domain]}.bench")


def check_task(task: Any, domain: str) -> dict[str, Any]:
    """``mixer_task()``'s dict checked against the contract (module doc); a one-line ConfigError
    names the domain and the bad key. Returns a copy with ``domain`` and ``overrides`` filled."""
    from .mixer import mixer_entries

    where = f"{domain}: mixer_task()"
    if not isinstance(task, dict):
        raise ConfigError(f"{where} returned {type(task).__name__}; expected a dict")
    for key, typ in KEYS.items():
        if not isinstance(task.get(key), typ) or not task[key]:
            raise ConfigError(f"{where}[{key!r}]: expected a non-empty {typ.__name__}, got {task.get(key)!r}")
    unknown = [m for m in task["mixers"] if m not in mixer_entries()]
    if unknown:
        raise ConfigError(f"{where}['mixers']: {', '.join(map(repr, unknown))} not registered mixers; "
                          f"valid names: {', '.join(sorted(mixer_entries()))}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in task["metrics"].items()):
        raise ConfigError(f"{where}['metrics']: expected {{column label: dotted key in the row}}")
    stream = task.get("stream")
    if stream is not None and not callable(stream):
        raise ConfigError(f"{where}['stream']: expected fn(model, cfg) -> seconds per step, or None")
    lists = {k: task.get(k, []) for k in ("overrides", "mixer_overrides")}
    for k, v in lists.items():
        if not isinstance(v, (list, tuple)) or not all(isinstance(o, str) and "=" in o for o in v):
            raise ConfigError(f"{where}[{k!r}]: expected a list of 'key=value' strings, got {v!r}")
    return {**task, "domain": domain, **{k: list(v) for k, v in lists.items()}, "stream": stream}


def discover(domains: Sequence[str] | None = None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(tasks, {domain: why skipped}) for ``domains`` (default: every installed domain)."""
    from .domain import broken_domains, load_domains

    load_domains()
    broken, names = broken_domains(), sorted(_packages())
    bad = [d for d in domains or () if d not in names]
    if bad:
        raise ConfigError(f"--domain {bad[0]!r}: expected one of {', '.join(names)}")
    tasks, skipped = [], {}
    for name in domains or names:
        if name in broken:
            skipped[name] = f"the domain does not import ({broken[name]})"
            continue
        try:
            fn = getattr(bench_module(name), "mixer_task", None)
        except ImportError as e:
            skipped[name] = f"its bench module does not import ({type(e).__name__}: {e})"
            continue
        if fn is None:
            skipped[name] = "its bench.py has no mixer_task() yet"
            continue
        try:
            tasks.append(check_task(fn(), name))
        except ConfigError as e:
            skipped[name] = str(e)
    return tasks, skipped


def valid_names(tasks: Sequence[dict[str, Any]]) -> list[str]:
    """What ``--mixers`` accepts: ``default``, the tasks' default labels and every registered mixer."""
    from .mixer import mixer_entries

    return ["default", *sorted({t["default"] for t in tasks} | set(mixer_entries()))]


def parse_names(values: Sequence[str] | None) -> list[str] | None:
    """``--domain a,b --domain c`` / ``--mixers a,b`` -> ['a', 'b', 'c'] (None when not given)."""
    if not values:
        return None
    return [v.strip() for x in values for v in x.split(",") if v.strip()]


def choose(task: dict[str, Any], mixers: Sequence[str] | None, quick: bool) -> list[str]:
    """The cells of a task: ``"default"`` and mixer names, in the task's order."""
    if mixers is not None:
        own = [m for m in task["mixers"] if m in mixers]
        return (["default"] if {"default", task["default"]} & set(mixers) else []) + own
    if quick:
        picked = [m for m in QUICK_MIXERS if m in task["mixers"]][:2] or task["mixers"][:2]
        return ["default", *picked]
    return ["default", *task["mixers"]]


# ----------------------------------------------------------------------------- cells
def _stream_probe(stream: Callable | None, run: kit.Run) -> dict[str, Any]:
    if stream is None:
        return {"stream_ms": None, "stream_note": "the host cannot stream"}
    if run.model is None:
        return {"stream_ms": None, "stream_note": "no checkpoint"}
    try:
        s = float(stream(run.model, run.cfg))
    except ConfigError as e:  # the host declines this model (e.g. attention has no step mode)
        return {"stream_ms": None, "stream_note": _line(e)}
    except Exception as e:  # the row keeps its metrics; the note says why there is no latency
        return {"stream_ms": None, "stream_note": f"stream failed: {type(e).__name__}: {_line(e)}"}
    return {"stream_ms": 1e3 * s if math.isfinite(s) and s > 0 else None,
            **({} if math.isfinite(s) and s > 0 else {"stream_note": f"stream returned {s!r}"})}


def cell_overrides(task: dict[str, Any], mixer: str, quick: bool, budget_min: float) -> list[str]:
    ov = list(task["overrides"])
    if mixer != "default":
        ov += [*task.get("mixer_overrides", []), f"{task['slot']}.name={mixer}"]
    ov.append(f"trainer.max_minutes={budget_min:g}")
    if quick:
        ov.append(f"trainer.max_steps={QUICK_STEPS}")
    return ov


def train_cell(task: dict[str, Any], mixer: str, quick: bool, budget_min: float) -> dict[str, Any]:
    """Train one cell from scratch; its row (benchkit's keys, plus task, mixer, metrics, stream_ms)."""
    label = task["default"] if mixer == "default" else mixer
    recipe = task["quick_recipe"] if quick else task["recipe"]
    r = kit.train(recipe, cell_overrides(task, mixer, quick, budget_min), name=f"{task['task']} {label}",
                  table=task["task"], probe=partial(_stream_probe, task["stream"]), domain=task["domain"],
                  task=task["task"], mixer=label, is_default=mixer == "default")
    r["metrics"] = {lab: kit.get(r, key) for lab, key in task["metrics"].items()}
    return r


def _line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else ""


def run_task(task: dict[str, Any], names: Sequence[str], quick: bool, budget_min: float,
             done: Callable[[dict[str, Any]], None] = lambda r: None) -> tuple[list[dict[str, Any]], str | None]:
    """The task's cells in order: (rows, why the rest was skipped or None). Missing data or
    packages skip the rest of the task; another failure is that cell's ``error`` and the
    bench goes on."""
    rows = []
    for m in names:
        try:
            r = train_cell(task, m, quick, budget_min)
        except (DataError, ImportError) as e:
            return rows, f"{type(e).__name__}: {_line(e)}"
        except Exception as e:  # one broken cell must not end an hour-long bench
            label = task["default"] if m == "default" else m
            r = {"table": task["task"], "name": f"{task['task']} {label}", "domain": task["domain"], "task": task["task"],
                 "mixer": label, "is_default": m == "default", "metrics": {}, "error": f"{type(e).__name__}: {_line(e)}"}
        rows.append(r)
        done(r)
    return rows, None


# ----------------------------------------------------------------------------- scoring / printing
def lower_is_better(label: str) -> bool:
    return bool(LOWER_IS_BETTER.search(label))


def score(rows: list[dict[str, Any]], headline: str) -> dict[str, Any]:
    """Mark the best row (``best``) and each row's ``vs_default_pct``; the task's summary row."""
    sign = -1.0 if lower_is_better(headline) else 1.0
    ok = [r for r in rows if isinstance(r["metrics"].get(headline), (int, float)) and math.isfinite(r["metrics"][headline])]
    dflt = next((r["metrics"][headline] for r in ok if r["is_default"]), None)
    for r in ok:
        v = r["metrics"][headline]
        r["best"] = False
        r["vs_default_pct"] = None if not dflt else 100.0 * sign * (v - dflt) / abs(dflt) + 0.0  # no -0.0
    if ok:
        max(ok, key=lambda r: sign * r["metrics"][headline])["best"] = True
    others = [r for r in ok if not r["is_default"]]
    top = max(others, key=lambda r: sign * r["metrics"][headline]) if others else None
    gap = None if top is None else top.get("vs_default_pct")
    return {"table": "summary", "name": rows[0]["task"] if rows else "", "headline": headline,
            "better": "lower" if sign < 0 else "higher", "default": dflt,
            "best_other": None if top is None else top["mixer"],
            "best_other_value": None if top is None else top["metrics"][headline], "best_other_vs_default_pct": gap,
            "within_2pct_or_better": None if gap is None else gap >= -2.0}


def columns(task: dict[str, Any], with_error: bool) -> list[kit.Column]:
    mark = lambda r: r["mixer"] + (" (default)" if r["is_default"] else "") + (" *" if r.get("best") else "")  # noqa: E731
    cols = [("mixer", mark)]
    cols += [(lab, partial(lambda lab, r: r["metrics"].get(lab), lab), ".4f") for lab in task["metrics"]]
    cols += [("vs default %", "vs_default_pct", "+.1f"), ("params", "params", ","), ("steps", "steps"),
             ("CPU s", "cpu_s", ".1f"), ("stream ms/step", "stream_ms", ".3g")]
    return cols + ([("error", "error")] if with_error else [])


def print_task(task: dict[str, Any], rows: list[dict[str, Any]], summary: dict[str, Any], quick: bool,
               budget_min: float, skipped: str | None) -> None:
    recipe = task["quick_recipe"] if quick else task["recipe"]
    budget = f"{QUICK_STEPS} steps (quick)" if quick else f"{budget_min:g} min per cell"
    kit.print_table(rows, columns(task, any(r.get("error") for r in rows)),
                    title=f"{task['task']}: {recipe}, test split; {budget}; * = best {summary['headline']} "
                          f"({summary['better']} is better)")
    notes = {r["stream_note"] for r in rows if r.get("stream_note")}
    if notes == {"the host cannot stream"}:
        print(f"  no stream latency: the {task['task']} host cannot stream (its task's stream is None)")
    else:
        for r in rows:
            if r.get("stream_note"):
                print(f"  {r['mixer']}: no stream latency: {r['stream_note']}")
    if summary["best_other"] is not None and summary["best_other_vs_default_pct"] is not None:
        print(f"  best non-default: {summary['best_other']} ({summary['headline']} {summary['best_other_value']:.4f}, "
              f"{summary['best_other_vs_default_pct']:+.1f}% vs the default {task['default']})")
    if skipped:
        print(f"  the rest of this task was skipped: {skipped}")


# ----------------------------------------------------------------------------- run
def run(quick: bool = False, out: str | Path | None = None, domains: Sequence[str] | None = None,
        mixers: Sequence[str] | None = None, budget_min: float = BUDGET_MIN) -> list[dict[str, Any]]:
    """Every (task, mixer) cell (module doc); prints a table per task; ``out``: the JSON
    document, rewritten after every cell so that a long run leaves what it has."""
    if not budget_min > 0:
        raise ConfigError(f"--budget-min {budget_min!r}: expected minutes > 0")
    tasks, skipped = discover(domains)
    if mixers is not None:
        bad = [m for m in mixers if m not in valid_names(tasks)]
        if bad:
            raise ConfigError(f"--mixers: unknown mixer {bad[0]!r}; valid names: {', '.join(valid_names(tasks))}")
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    rows: list[dict[str, Any]] = [{"table": "skipped", "name": d, "reason": w} for d, w in skipped.items()]
    save = lambda: kit.write_json(out, "mixers", quick, rows, budget_min=budget_min,  # noqa: E731
                                  quick_steps=QUICK_STEPS if quick else None, device="cpu")
    for task in tasks:
        names = choose(task, mixers, quick)
        if not names:
            print(f"\n{task['task']}: none of --mixers fits this task (its mixers: {', '.join(task['mixers'])})")
            continue
        cells, why = run_task(task, names, quick, budget_min, done=lambda r: (rows.append(r), save()))
        summary = score(cells, next(iter(task["metrics"])))
        rows.append({**summary, "name": task["task"], **({"skipped": why} if why else {})})
        print_task(task, cells, summary, quick, budget_min, why)
        save()
    m = kit.machine()
    print(f"\nCPU {m['processor']} x{m['cpus']}, torch {m['torch']}; "
          + (f"quick: {QUICK_STEPS} steps per cell" if quick else f"budget {budget_min:g} min (wall clock) per cell"))
    save()
    return rows
