"""The timeseries domain as the core sees it (entry point ostinato.domains:timeseries).

Importing this module registers the domain's models and datasets. The pytorch-forecasting
adapter (and with it Lightning) is imported only when used.
"""
from __future__ import annotations

from ostinato.core.domain import declare

from . import cli
from .data import covid, custom, ett, m4, synthetic, ucr  # noqa: F401  (registers datasets)
from .evaluate import TimeseriesEvalConfig, evaluate
from .models import chimera, dlinear, es_rnn, mes_lstm, mixer_forecaster, seasonal_naive  # noqa: F401  (registers models)

DOMAIN = declare("timeseries", __file__, evaluate, TimeseriesEvalConfig, cli,
                 datasets=[*ett.ETT_SPECS, *custom.CUSTOM_SPECS, *ucr.UCR_SPECS, *m4.M4_SPECS, *covid.COVID_SPECS])
