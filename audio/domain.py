"""The audio domain as the core sees it (entry point ostinato.domains:audio)."""
from __future__ import annotations

from pathlib import Path

from ostinato.core.domain import Domain

from . import cli
from .data import mixing, paired, synthetic  # noqa: F401  (registers datasets)
from .data.specs import DATASETS
from .evaluate import AudioEvalConfig, evaluate
from .models import frcrn  # noqa: F401  (registers models)

DOMAIN = Domain(
    name="audio",
    recipes_dir=Path(__file__).parent / "recipes",
    evaluate=evaluate,
    eval_config=AudioEvalConfig,
    bench=cli.bench,
    add_cli=cli.add_cli,
    datasets=DATASETS,
)
