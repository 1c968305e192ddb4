"""The timeseries domain's verbs: ``ostinato forecast`` (the library is ``forecast.py``) and
``ostinato bench timeseries``. Each verb imports what it runs only when it runs."""
from __future__ import annotations

import argparse
from pathlib import Path

from ostinato.core.errors import ConfigError, DataError


def bench(quick: bool = False, out: Path | None = None) -> list[dict]:
    """``ostinato bench timeseries``: the rows of ``bench.run`` (written with ``ostinato.core.benchkit``)."""
    from .bench import run

    return run(quick=quick, out=out)


def _forecasts(config: dict) -> bool:
    model, data = config.get("model") or {}, config.get("data") or {}
    return model.get("task", "forecast") in (None, "forecast") and "seq_len" in {**data, **model}


_FORECASTER = (_forecasts, "a forecasting run (a model with task forecast and a seq_len look-back)")


def cmd_forecast(args: argparse.Namespace) -> int:
    from ostinato.core.paths import check_out_file
    from ostinato.core.train import load_run

    from .forecast import forecast, plot

    csv = Path(args.csv)
    if not csv.is_file():
        raise DataError(f"--csv {csv}: no such file; expected a CSV with a date column and the run's columns")
    if args.horizon < 0:
        raise ConfigError(f"--horizon {args.horizon}: expected a positive number of steps")
    if not 0 < args.alpha < 1:
        raise ConfigError(f"--alpha {args.alpha}: expected a number between 0 and 1")
    if args.n_samples < 1:
        raise ConfigError(f"--n-samples {args.n_samples}: expected a positive number of samples")
    dest = check_out_file(args.out or csv.with_name(csv.stem + "_forecast.csv"), "a CSV file for the forecast")
    if args.plot:
        check_out_file(args.plot, "a PNG file", flag="--plot")
    # the scaler and columns come from the checkpoint; a run saved before they were rebuilds its data
    model, cfg, data = load_run(args.checkpoint, data_root=args.data_root, overrides=list(args.overrides),
                                build_data_too=False, rebuild_if_old=True, expect_domain="timeseries",
                                verb="forecast", expect_model=_FORECASTER)
    out = forecast(model, cfg, data, csv, args.horizon, args.alpha, args.n_samples)
    dest.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(dest, index=False)
    print(f"wrote {len(out)} forecast rows to {dest}")
    if args.plot:
        plot(out, Path(args.plot), n_history=4 * int(cfg.model.seq_len))
        print(f"wrote plot {args.plot}")
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("forecast", help="forecast beyond the last row of a CSV with a trained timeseries run")
    p.add_argument("checkpoint", help="run directory or .pt written by `ostinato train`")
    p.add_argument("--csv", required=True, help="CSV with a date column and the columns the model was trained on")
    p.add_argument("--horizon", type=int, default=0, help="steps to forecast (default: the model's pred_len)")
    p.add_argument("--out", default="", help="output CSV (default: <csv stem>_forecast.csv beside the input)")
    p.add_argument("--plot", default="", help="also write a PNG of history, forecast and interval")
    p.add_argument("--alpha", type=float, default=0.05, help="interval level: central 1 - alpha (default 0.05)")
    p.add_argument("--n-samples", type=int, default=100, help="posterior samples for Bayesian intervals")
    p.add_argument("--data-root", default=None, help="where the run's training data is (only for runs saved without their scaler)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the run config (rarely needed)")
    p.set_defaults(func=cmd_forecast)
