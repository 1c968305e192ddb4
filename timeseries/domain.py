"""The timeseries domain as the core sees it (entry point ostinato.domains:timeseries).

Importing this module registers the domain's models and datasets. Heavy optional pieces
(the pytorch-forecasting adapter, Lightning) are imported only when used.
"""
from __future__ import annotations

from pathlib import Path

from ostinato.core.domain import Domain

from .data import custom, ett  # noqa: F401  (registers datasets)
from .data.custom import CUSTOM_SPECS
from .data.ett import ETT_SPECS
from .evaluate import TimeseriesEvalConfig, evaluate
from .models import dlinear, seasonal_naive  # noqa: F401  (registers models)

DOMAIN = Domain(
    name="timeseries",
    recipes_dir=Path(__file__).parent / "recipes",
    evaluate=evaluate,
    eval_config=TimeseriesEvalConfig,
    datasets=[*ETT_SPECS, *CUSTOM_SPECS],
)
