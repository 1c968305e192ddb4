"""The ``ostinato`` command.

    ostinato ls [models|recipes|datasets|pretrained|<listing>] [--domain D] [--pattern P] [--all]
    ostinato train RECIPE [--out DIR] [--data-root DIR] [--resume] [--quiet] [--strict-data] [key=value ...]
    ostinato eval CHECKPOINT_OR_DIR|pretrained:RECIPE [--split val|test] [--data-root DIR] [--json] [--save-dir DIR] [key=value ...]
    ostinato bench DOMAIN [--quick] [--json] [--out FILE]
    ostinato bench mixers [--quick] [--domain D] [--mixers A,B] [--budget-min M] [--json] [--out FILE]
    ostinato data where|verify|download [DATASET] [--data-root DIR]

plus the verbs each domain adds (``ostinato recommend``, ``ostinato forecast``, ...).
Exit codes: 0 success, 2 usage or config error, 1 runtime failure. A user mistake prints
one line on stderr; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .errors import ConfigError, OstinatoError


def _print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


# ----------------------------------------------------------------------------- ls
def _ls_models_static(args) -> bool:
    """``ls models`` from the index files, without importing torch; False if a domain has no index."""
    from .index import static_models

    found = static_models(args.domain, args.pattern, tests=getattr(args, "all", False))
    if found is None:
        return False
    rows, domains, broken = found
    for name, reason in broken.items():
        print(f"ostinato: warning: the {name} domain failed to import: {reason}", file=sys.stderr)
    if args.domain and args.domain not in domains:
        raise ConfigError(f"--domain {args.domain!r}: expected one of core, {', '.join(sorted(d for d in domains if d != 'core'))}")
    print(f"models ({len(rows)}):")
    _print_table([list(r) for r in rows], ["name", "domain", "description"])
    return True


def cmd_ls(args) -> int:
    if args.what == "models" and _ls_models_static(args):
        return 0
    if args.what == "pretrained":  # from the shipped JSON documents alone (ostinato.core.pretrained)
        from .pretrained import HEADER, rows

        found = rows(args.domain, args.pattern)
        print(f"pretrained ({len(found)}): load with create_model(NAME, pretrained=True) or `ostinato eval pretrained:RECIPE`")
        _print_table(found, HEADER)
        return 0
    from .domain import load_domains
    from .recipe import list_recipes
    from .domain import broken_domains
    from .registry import is_test_variant, list_datasets, list_models

    what = args.what
    doms = load_domains()
    for name, reason in broken_domains().items():
        print(f"ostinato: warning: the {name} domain failed to import: {reason}", file=sys.stderr)
    listings = {k for d in doms.values() for k in d.listings}
    valid = ["models", "recipes", "datasets", "pretrained", *sorted(listings)]
    if what is not None and what not in valid:
        raise ConfigError(f"ls {what!r}: expected one of {', '.join(valid)}")
    if args.domain and args.domain not in doms and args.domain != "core":
        raise ConfigError(f"--domain {args.domain!r}: expected one of core, {', '.join(sorted(doms))}")
    if what in (None, "models"):
        rows = [[e.name, e.domain, e.description] for e in list_models(args.domain, args.pattern)
                if args.all or not is_test_variant(e.name)]
        print(f"models ({len(rows)}):")
        _print_table(rows, ["name", "domain", "description"])
    if what in (None, "recipes"):
        rows = [[name, str(p)] for name, p in list_recipes(args.domain) if not args.pattern or args.pattern in name]
        print(f"\nrecipes ({len(rows)}):" if what is None else f"recipes ({len(rows)}):")
        _print_table(rows, ["recipe", "file"])
    if what in (None, "datasets"):
        rows = []
        for d in sorted(doms.values(), key=lambda d: d.name):
            if args.domain and d.name != args.domain:
                continue
            for spec in d.datasets:
                if args.pattern and args.pattern not in spec.name:
                    continue
                rows.append([spec.name, d.name, spec.licence, spec.description])
        print(f"\ndatasets ({len(rows)}):" if what is None else f"datasets ({len(rows)}):")
        _print_table(rows, ["name", "domain", "licence", "description"])
        regs = [[e.name, e.domain, e.description] for e in list_datasets(args.domain, args.pattern)]
        print(f"\ndataset loaders ({len(regs)}):")
        _print_table(regs, ["name", "domain", "description"])
    if what in listings:
        rows = []
        for d in sorted(doms.values(), key=lambda d: d.name):
            if what in d.listings and (not args.domain or d.name == args.domain):
                rows += [[name, d.name, status] for name, status in d.listings[what]()]
        print(f"{what} ({len(rows)}):")
        _print_table(rows, ["name", "domain", "status"])
    return 0


# ----------------------------------------------------------------------------- train / eval
def _default_out(recipe: str) -> Path:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(recipe).stem if recipe.endswith((".yaml", ".yml")) else recipe)
    return Path("runs") / stem


def cmd_train(args) -> int:
    from . import recipe as rec
    from .train import fit

    from .paths import check_out_dir

    if args.out is not None:
        check_out_dir(args.out, "a run folder")
    cfg = rec.load(args.recipe, args.overrides)
    out = check_out_dir(args.out if args.out is not None else _default_out(args.recipe), "a run folder")
    results = fit(cfg, out, data_root=args.data_root, resume=args.resume, quiet=args.quiet)
    if int(__import__("os").environ.get("RANK", "0")) == 0:
        print(f"run written to {out}")
        for split in ("val", "test"):
            if split in results:
                print(f"{split}: " + ", ".join(f"{k}={v:.4g}" for k, v in results[split].items()))
    return 0


def cmd_eval(args) -> int:
    from .train import evaluate_split, load_run

    overrides = list(args.overrides)
    if args.save_dir is not None:
        from .paths import check_out_dir

        check_out_dir(args.save_dir, "a folder for the evaluation's artefacts", flag="--save-dir")
        overrides.append(f"eval.save_dir={args.save_dir}")
    model, cfg, data = load_run(args.checkpoint, data_root=args.data_root, overrides=overrides)
    from .device import seed_everything

    seed_everything(cfg.trainer.seed)  # sampled metrics (posterior intervals) repeat from run to run
    from .progress import tracking  # stderr: a bar on a TTY, else a line every trainer.log_every_s

    with tracking(f"eval {args.split}", every_s=cfg.trainer.log_every_s):
        metrics = evaluate_split(model, data, args.split, cfg)
    if args.json:
        print(json.dumps({"split": args.split, **metrics}))
    else:
        _print_table([[k, f"{v:.6g}"] for k, v in metrics.items()], ["metric", args.split])
    return 0


# ----------------------------------------------------------------------------- bench / data
def cmd_bench(args) -> int:
    from .paths import check_out_file

    out = check_out_file(args.out, "a JSON file for the results") if args.out is not None else None
    mixer_opts = {"--domain": args.only, "--mixers": args.mixers, "--budget-min": args.budget_min}
    given = [k for k, v in mixer_opts.items() if v is not None]
    if given and args.domain != "mixers":
        raise ConfigError(f"{given[0]}: only `ostinato bench mixers` takes it")
    if args.domain == "mixers":  # every domain's mixer_task(): mixers x tasks (core.bench_mixers)
        from functools import partial

        from .bench_mixers import BUDGET_MIN, parse_names, run

        run = partial(run, domains=parse_names(args.only), mixers=parse_names(args.mixers),
                      budget_min=BUDGET_MIN if args.budget_min is None else args.budget_min)
    elif args.domain == "core":
        from .bench import run
    else:
        from .domain import get_domain

        dom = get_domain(args.domain)
        if dom.bench is None:
            raise ConfigError(f"the {args.domain} domain has no benchmark")
        run = dom.bench
    from .progress import announcing  # every training run (a row) prints one line on stderr as it ends

    with announcing(f"bench {args.domain}"):
        rows = run(quick=args.quick, out=out)  # prints its tables; writes its JSON document to out (core.benchkit)
    if out is not None:
        print(f"wrote {out}")
    if args.json:
        print(json.dumps(rows, default=str))
    return 1 if args.domain == "mixers" and any(r.get("error") for r in rows) else 0  # a failed cell (the bench goes on)


def _specs(name: str | None):
    from .domain import load_domains

    specs = [s for d in load_domains().values() for s in d.datasets]
    if name is None:
        return specs
    chosen = [s for s in specs if s.name == name]
    if not chosen:
        raise ConfigError(f"unknown dataset {name!r}; expected one of: {', '.join(sorted(s.name for s in specs))}")
    return chosen


def cmd_data(args) -> int:
    from . import data as D

    if args.action == "download" and not args.dataset and not getattr(args, "all", False):
        raise ConfigError("data download: name a dataset (see `ostinato data where`) or pass --all to fetch every public one")
    specs = _specs(args.dataset)
    if args.action == "where":
        print("search order: " + " -> ".join(f"{label} {p}" for label, p in D.data_roots(args.data_root)) + " -> shipped samples")
        rows = []
        for s in specs:
            for f in s.files:
                try:
                    where = str(D.locate(f.path, args.data_root, s.shipped))
                except OstinatoError:
                    where = "(missing)"
                rows.append([s.name, f.path, where])
        _print_table(rows, ["dataset", "file", "found at"])
        return 0
    if args.action == "verify":
        bad = 0
        rows = []
        for s in specs:
            for path, status, where in D.verify(s, args.data_root):
                rows.append([s.name, path, status, where])
                bad += status == "bad-checksum"
        _print_table(rows, ["dataset", "file", "status", "where"])
        return 1 if bad else 0
    for s in specs:  # download
        if not any(f.url for f in s.files):
            if args.dataset:
                raise OstinatoError(f"dataset {s.name!r} has no public download; {s.how_to_get or 'see its licence'}")
            continue
        for p in D.download(s, args.data_root, progress=print):
            print(f"ok {p}")
    return 0


# ----------------------------------------------------------------------------- main
class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit 2), not the whole usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _check_data_root(args) -> None:
    root = getattr(args, "data_root", None)
    if root is None or getattr(args, "action", None) == "download":  # download creates it
        return
    p = Path(root).expanduser()
    if not p.is_dir():
        raise ConfigError(f"--data-root {root}: {'is a file' if p.exists() else 'no such folder'}; "
                          "expected a folder that holds datasets (see `ostinato data where`)")


def build_parser(lazy: bool = False) -> argparse.ArgumentParser:
    """The whole command line. ``lazy``: domain verbs are added by name from the domains'
    index.json files (see ``ostinato.core.index``), importing no domain; for ``--help`` and
    the core verbs, so that they answer without importing torch."""
    p = _Parser(prog="ostinato", description="ostinato: recurrent / state-space models across domains")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    q = sub.add_parser("ls", help="list models, recipes, datasets (and domain listings such as envs)")
    q.add_argument("what", nargs="?", help="models | recipes | datasets | pretrained | envs ...")
    q.add_argument("--domain")
    q.add_argument("--pattern")
    q.add_argument("--all", action="store_true", help="also list the tiny test_* model variants the tests use")
    q.set_defaults(func=cmd_ls)

    q = sub.add_parser("train", help="train a recipe")
    q.add_argument("recipe", help="<domain>/<name> or a path to a YAML recipe")
    q.add_argument("--out", help="run directory (default runs/<recipe>)")
    q.add_argument("--data-root", help="look for datasets here first")
    q.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.add_argument("--strict-data", action="store_true", help="a dataset file that fails its declared checksum "
                   "is an error, not a warning (= OSTINATO_STRICT_DATA=1)")
    q.add_argument("overrides", nargs="*", metavar="key=value")
    q.set_defaults(func=cmd_train)

    q = sub.add_parser("eval", help="evaluate a trained run")
    q.add_argument("checkpoint", help="a run directory, a .pt checkpoint, pretrained:<domain>/<name> (shipped "
                   "weights, see `ostinato ls pretrained`), a save_pretrained folder or hf:<owner>/<repo>")
    q.add_argument("--split", choices=["val", "test"], default="test")
    q.add_argument("--data-root")
    q.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    q.add_argument("--save-dir", metavar="DIR", help="write the evaluation's artefacts here: GIF/PNG grids (vision), "
                   "rollout GIFs (control), forecast plots (timeseries), enhanced wavs (audio)")
    q.add_argument("--save-gifs", dest="save_dir", metavar="DIR", help=argparse.SUPPRESS)  # deprecated alias of --save-dir
    q.add_argument("--strict-data", action="store_true", help="a checksum mismatch is an error (= OSTINATO_STRICT_DATA=1)")
    q.add_argument("overrides", nargs="*", metavar="key=value")
    q.set_defaults(func=cmd_eval)

    q = sub.add_parser("bench", help="run a domain's benchmark table, or mixers x every domain's task")
    q.add_argument("domain", help="core | vision | timeseries | audio | control | recsys | mixers")
    q.add_argument("--quick", action="store_true")
    q.add_argument("--domain", dest="only", action="append", metavar="D", help="bench mixers: only these domains (repeat or a,b)")
    q.add_argument("--mixers", action="append", metavar="A,B", help="bench mixers: only these mixers ('default': the published one)")
    q.add_argument("--budget-min", type=float, metavar="M", help="bench mixers: training minutes per cell (default 5)")
    q.add_argument("--json", action="store_true")
    q.add_argument("--out", help="write the JSON result here")
    q.set_defaults(func=cmd_bench)

    q = sub.add_parser("data", help="where datasets are found; verify checksums; download public ones")
    q.add_argument("action", choices=["where", "verify", "download"])
    q.add_argument("dataset", nargs="?")
    q.add_argument("--all", action="store_true", help="download: every dataset with a public download")
    q.add_argument("--data-root")
    q.set_defaults(func=cmd_data)

    verbs = _static_verbs() if lazy else None
    if verbs is not None:  # --help and the core verbs: each domain verb by name and help only
        for verb, help, domain in verbs:
            sub.add_parser(verb, help=help, add_help=False).set_defaults(func=_domain_verb_stub)
        return p
    from .domain import load_domains

    for dom in sorted(load_domains().values(), key=lambda d: d.name):
        if dom.add_cli is not None:
            dom.add_cli(sub)
    return p


CORE_VERBS = ("ls", "train", "eval", "bench", "data")


def _static_verbs():
    from .index import static_verbs

    return static_verbs()


def _domain_verb_stub(args) -> int:  # never reached: main builds the full parser for a domain verb
    raise OstinatoError(f"{args.command}: the lazy parser was used for a domain verb")


def _command(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line
    argv = [a for a in argv if a != "--debug"]
    try:
        cmd = _command(argv)
        parser = build_parser(lazy=cmd is None or cmd in CORE_VERBS)
        args, extra = parser.parse_known_args(argv)
        if extra:  # `key=value` overrides may come after options
            if hasattr(args, "overrides") and all("=" in x and not x.startswith("-") for x in extra):
                args.overrides = list(args.overrides) + extra
            else:
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
        _check_data_root(args)
        if getattr(args, "strict_data", False):  # read by ostinato.core.data when a file is located
            import os

            os.environ["OSTINATO_STRICT_DATA"] = "1"
        return int(args.func(args) or 0)
    except OstinatoError as e:
        if debug:
            raise
        print(f"ostinato: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("ostinato: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ostinato ls | head`: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def domain_train_main(domain: str, argv: list[str] | None = None) -> int:
    """``python -m ostinato.<domain>.train NAME [...]`` == ``ostinato train <domain>/NAME [...]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--out", "--data-root"):
            i += 2
            continue
        if not a.startswith("-") and "=" not in a:
            if "/" not in a and not a.endswith((".yaml", ".yml")):
                argv[i] = f"{domain}/{a}"
            break
        i += 1
    return main(["train", *argv])


if __name__ == "__main__":
    sys.exit(main())
