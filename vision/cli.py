"""The vision domain's verbs: ``ostinato bench vision`` (it adds no verb of its own). The
bench is imported only when it runs."""
from __future__ import annotations

from pathlib import Path


def bench(quick: bool = False, out: Path | None = None) -> dict:
    from .bench import run

    return run(quick=quick, out=out)
