"""The timeseries domain as the core sees it (entry point ostinato.domains:timeseries).

Importing this module registers the domain's models and datasets. The pytorch-forecasting
adapter (and with it Lightning) is imported only when used.
"""
from __future__ import annotations

from pathlib import Path

from ostinato.core.domain import Domain

from . import cli
from .data import covid, custom, ett, m4, synthetic, ucr  # noqa: F401  (registers datasets)
from .evaluate import TimeseriesEvalConfig, evaluate
from .models import chimera, dlinear, es_rnn, mes_lstm, seasonal_naive  # noqa: F401  (registers models)

DOMAIN = Domain(
    name="timeseries",
    recipes_dir=Path(__file__).parent / "recipes",
    evaluate=evaluate,
    eval_config=TimeseriesEvalConfig,
    bench=cli.bench,
    add_cli=cli.add_cli,
    datasets=[*ett.ETT_SPECS, *custom.CUSTOM_SPECS, *ucr.UCR_SPECS, *m4.M4_SPECS, *covid.COVID_SPECS],
)
