"""``ostinato bench timeseries [--quick] [--json] [--out FILE]``: the domain's benchmark table.

1. **ETTh1, look-back 96, horizon 96** (TSLib protocol, features M, normalised-scale MSE/MAE
   on the test split, model chosen on validation): Chimera and DLinear trained with their
   shipped recipes, plus the untrained seasonal-naive forecaster (m = 24); CPU training
   wall time (the trainer's loop, validation included) and parameter counts; set against
   the Time-Series-Library table (look-back 96): TimeMixer 0.375/0.400, iTransformer
   0.386/0.405, DLinear 0.386/0.400 (OLinear Table 15 transcription, see the spec).
2. **M4 Hourly** (414 series, h = 48, original-scale sMAPE, MASE, OWA vs Naive2, 95 %
   interval coverage and MSIS): MES-LSTM (the original Bayesian output layer, and the
   pinball-loss quantile head) and the ES-RNN-style variant against seasonal naive. Needs the M4 files under a data root (``ostinato data download M4-Hourly``).
3. **ECG200** (shipped): Chimera classification accuracy on the test split.

:func:`mixer_task` is this domain's row of ``ostinato bench mixers``: the mixer forecaster
(``timeseries/mixer_etth1``) on ETTh1-96 with every registered core mixer in its slot.

``--quick`` trains a few steps per model (a smoke test of the whole table, not numbers to
quote). Timings depend on the machine and its load; the table records the thread count.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ostinato.core import benchkit as kit
from ostinato.core.errors import OstinatoError

TSLIB_ETTH1_96 = [  # (model, MSE, MAE), look-back 96, horizon 96, normalised scale
    ("TimeMixer (TSLib table)", 0.375, 0.400),
    ("iTransformer (TSLib table)", 0.386, 0.405),
    ("DLinear (TSLib table)", 0.386, 0.400),
]
M4_KEYS = ["smape", "mase", "owa", "coverage", "msis"]


def _naive(table: str, recipe: str, overrides: list[str], period: int) -> dict[str, Any]:
    """The untrained seasonal-naive forecaster on ``recipe``'s data (test split), as a row."""
    from ostinato.core import create_model
    from ostinato.core.recipe import load
    from ostinato.core.train import build_data

    from .evaluate import evaluate

    cfg = load(recipe, overrides)
    data = build_data(cfg)
    model = create_model("seasonal_naive", period=period, **data.model_kwargs)
    return kit.row(table, "Seasonal naive", test=evaluate(model, data, "test", cfg), recipe=f"seasonal_naive (m={period})",
                   params=0)


def _print(title: str, rows: list[dict[str, Any]], keys: list[str]) -> None:
    cols = [("model", "name"), *[(k.upper() if k in ("mse", "mae") else k, f"test.{k}", ".4g") for k in keys],
            ("train s", "train_time_s", ".0f"), ("params", "params", ",")]
    kit.print_table(rows, cols, title)


def run(quick: bool = False, out: str | Path | None = None) -> list[dict[str, Any]]:
    """The three tables (module doc); ``out``: the JSON document (:func:`ostinato.core.benchkit.write_json`)."""
    few = ["trainer.max_steps=5", "trainer.max_epochs=1"] if quick else []
    rows: list[dict[str, Any]] = []

    # 1. ETTh1 horizon 96
    ett = [kit.train(recipe, few, name=name, table="etth1_96")
           for name, recipe in (("Chimera", "timeseries/chimera_etth1"), ("DLinear", "timeseries/dlinear_etth1"))]
    ett.append(_naive("etth1_96", "timeseries/dlinear_etth1", [], 24))
    ett += [kit.reference("etth1_96", n, {"mse": a, "mae": b}) for n, a, b in TSLIB_ETTH1_96]
    _print("ETTh1, look-back 96, horizon 96 (test, normalised scale)", ett, ["mse", "mae"])
    rows += ett

    # 2. M4 Hourly
    m4: list[dict[str, Any]] = []
    m4_few = few + (["data.max_series=20", "data.hw_init=heuristic"] if quick else [])
    try:
        m4.append(_naive("m4_hourly", "timeseries/mes_lstm_m4_hourly", m4_few + ["data.holt_winters=false"], 24))
        m4.append(kit.train("timeseries/mes_lstm_m4_hourly", m4_few, name="MES-LSTM", table="m4_hourly"))
        m4.append(kit.train("timeseries/mes_lstm_m4_hourly", m4_few + ["model.head=quantile"],
                            name="MES-LSTM (quantile head)", table="m4_hourly"))
        es_few = few + (["data.max_series=20"] if quick else [])
        m4.append(kit.train("timeseries/es_rnn_m4_hourly", es_few, name="ES-RNN variant", table="m4_hourly"))
        _print("M4 Hourly (test, original scale; 95 % intervals)", m4, M4_KEYS)
    except OstinatoError as e:  # the M4 files are not shipped
        m4 = [{"table": "m4_hourly", "name": "skipped", "skipped": str(e)}]
        print(f"\nM4 Hourly: skipped ({e})")
    rows += m4

    # 3. ECG200
    ecg = [kit.train("timeseries/chimera_ecg200", few, name="Chimera", table="ecg200")]
    _print("ECG200 (test)", ecg, ["accuracy"])
    rows += ecg
    kit.write_json(out, "timeseries", quick, rows)
    return rows


def mixer_task() -> dict[str, Any]:
    """The mixer forecaster on ETTh1, look-back 96, horizon 96 (test MSE, MAE on the normalised
    scale), for ``ostinato bench mixers``.

    The forecaster's slot is built with ``causal=False`` (it reads the whole look-back), so every
    registered mixer fits, bidirectional ones included. The default (``mamba``) cell is the recipe
    as written (S-Mamba's d_state 2, d_conv 2, expand 1); another name in the slot drops the
    recipe's Mamba keys (a name override starts the choice afresh), so every other mixer runs with
    its own default settings. The forecaster has no step mode (the head reads
    every patch token at once, and the recipe's blocks are bidirectional), so ``stream`` is None.
    """
    from ostinato.core.mixer import mixer_entries

    return {
        "task": "timeseries/etth1_96",
        "recipe": "timeseries/mixer_etth1",
        "quick_recipe": "timeseries/test_mixer_forecaster",
        "slot": "model.mixer",
        "default": "mamba",
        "mixers": sorted(n for n in mixer_entries() if n not in ("mamba", "ssd")),  # ssd: its default headdim 64 does not divide expand*d_model at these widths
        "overrides": ["trainer.test_at_end=true"],
        "metrics": {"MSE": "test.mse", "MAE": "test.mae"},
        "stream": None,
    }
