"""The audio domain as the core sees it (entry point ostinato.domains:audio)."""
from __future__ import annotations

from ostinato.core.domain import declare

from . import cli
from .data import mixing, paired, synthetic  # noqa: F401  (registers datasets)
from .data.specs import DATASETS
from .evaluate import AudioEvalConfig, evaluate
from .models import frcrn  # noqa: F401  (registers models)

DOMAIN = declare("audio", __file__, evaluate, AudioEvalConfig, cli,
                 datasets=DATASETS)
