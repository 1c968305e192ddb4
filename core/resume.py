"""What ``--resume`` may continue, and with which settings.

A resumed run must be the run it continues: its resolved config is compared with the one
saved in ``last.pt`` and any difference is a :class:`ConfigError` listing the keys, except
for the budget and reporting keys in :data:`MAY_CHANGE`, which take effect (a longer or
shorter run; the LR schedule is laid out over the new total number of steps).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt
from .errors import ConfigError
from .runlock import LOCK_NAME

#: keys ``--resume`` accepts with a new value
MAY_CHANGE = frozenset({"trainer.max_steps", "trainer.max_epochs", "trainer.max_minutes", "trainer.log_every_s",
                        # how the machine runs it, not what is trained (the batches are fixed by the seed)
                        "trainer.threads", "trainer.num_workers"})
#: keys that are labels, not settings (the recipe's name as typed), never compared
_LABELS = frozenset({"recipe"})


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; tuples compare as lists."""
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: list(d) if isinstance(d, tuple) else d}


def changed_keys(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Keys whose value differs. A key the saved config lacks is not compared: the run was made
    by an older ostinato, before the key existed (its default is then what the run did)."""
    a, b = flatten(saved), flatten(now)
    return sorted(k for k in a if k not in _LABELS and a[k] != b.get(k, "<unset>"))


def check_same_config(saved: dict[str, Any], now: dict[str, Any], where: Path) -> list[str]:
    """Raise ConfigError on a difference outside MAY_CHANGE; return the MAY_CHANGE keys that differ."""
    diff = changed_keys(saved, now)
    refused = [k for k in diff if k not in MAY_CHANGE]
    if refused:
        a, b = flatten(saved), flatten(now)
        what = ", ".join(f"{k} ({a.get(k, '<unset>')!r} -> {b.get(k, '<unset>')!r})" for k in refused)
        raise ConfigError(f"--resume: the config differs from the run in {where}: {what}; resume with the run's "
                          f"settings (only {', '.join(sorted(MAY_CHANGE))} may change) or train into another --out")
    return diff


def check_resumable(out: Path) -> None:
    """Before anything is created: ``--resume`` needs a folder some run was started in (a
    mistyped ``--out``, most likely, otherwise)."""
    if not (out / ckpt.LAST).exists() and not (out / LOCK_NAME).exists() and not (out / "config.yaml").exists():
        raise ConfigError(f"--resume: {out / ckpt.LAST} does not exist; start without --resume")


def load_for_resume(out: Path, main: bool) -> dict[str, Any] | None:
    """The state in ``out/last.pt``, or ``None`` (start from scratch, with a notice) for a run
    killed before its first checkpoint: there is nothing to lose."""
    last = out / ckpt.LAST
    if last.exists():
        return ckpt.load(last)
    if main:
        print(f"ostinato: --resume: {out} has no checkpoint yet (the run stopped before its first); "
              "starting from scratch", file=sys.stderr)
    return None
