"""The vision domain's verbs: ``ostinato bench vision`` (it adds no verb of its own). The
bench is imported only when it runs."""
from __future__ import annotations

from pathlib import Path


def bench(quick: bool = False, out: Path | None = None) -> list[dict]:
    """``ostinato bench vision``: the rows of ``bench.run`` (written with ``ostinato.core.benchkit``)."""
    from .bench import run

    return run(quick=quick, out=out)
