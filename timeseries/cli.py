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


def cmd_forecast(args: argparse.Namespace) -> int:
    from ostinato.core.train import load_run

    from .forecast import forecast, plot

    # the scaler and columns come from the checkpoint; a run saved before they were rebuilds its data
    model, cfg, data = load_run(args.checkpoint, data_root=args.data_root, overrides=list(args.overrides),
                                build_data_too=False, rebuild_if_old=True)
    csv = Path(args.csv)
    if not csv.exists():
        raise DataError(f"{csv}: no such file")
    if args.horizon < 0:
        raise ConfigError(f"--horizon {args.horizon}: expected a positive number of steps")
    out = forecast(model, cfg, data, csv, args.horizon, args.alpha, args.n_samples)
    dest = Path(args.out) if args.out else csv.with_name(csv.stem + "_forecast.csv")
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
