"""The recsys domain as the core sees it (entry point ostinato.domains:recsys).

Its verbs (``ostinato recommend``, ``ostinato bench recsys``) are in ``cli.py``.
"""
from __future__ import annotations

from pathlib import Path

from ostinato.core.domain import Domain

from . import cli
from .data import movielens, s3rec_txt, sasrec_txt, synthetic  # noqa: F401  (registers datasets)
from .evaluate import RecEvalConfig, evaluate
from .models import sasrec  # noqa: F401  (registers models)

DOMAIN = Domain(
    name="recsys",
    recipes_dir=Path(__file__).parent / "recipes",
    evaluate=evaluate,
    eval_config=RecEvalConfig,
    bench=cli.bench,
    add_cli=cli.add_cli,
    datasets=[*sasrec_txt.SPECS, *s3rec_txt.SPECS, *movielens.SPECS],
    shared_inference=cli.shared_inference,
)
