"""The control domain's verbs:

    ostinato control setup-render [PREFIX]   a private Mesa 25 lavapipe for ManiSkill on a CPU machine
    ostinato control collect ENV --episodes N [--out DIR]   oracle demos
    ostinato bench control

(``ostinato ls envs``, which envs work here, is a listing the domain declares.) Each verb
imports what it runs only when it runs.
"""
from __future__ import annotations

from pathlib import Path


def bench(quick: bool = False, out: Path | None = None) -> list[dict]:
    """``ostinato bench control``: the rows of ``bench.run`` (written with ``ostinato.core.benchkit``)."""
    from .bench import run

    return run(quick=quick, out=out)


def _cmd_setup_render(args) -> int:
    from .envs.render import setup_render

    setup_render(args.prefix or None, force=args.force)
    return 0


def _cmd_collect(args) -> int:
    from ostinato.core.errors import ConfigError
    from ostinato.core.paths import check_out_dir

    from .data.demos import collect, default_demo_dir
    from .envs import ENV_NAMES, EnvConfig

    if args.env != "cue_task" and args.env not in ENV_NAMES:
        raise ConfigError(f"unknown env {args.env!r}; expected one of `ostinato ls envs` (e.g. cue_task, PushCube-v1, RememberColor3-v0)")
    for flag, v in (("--episodes", args.episodes), ("--image-size", args.image_size)):
        if v < 1:
            raise ConfigError(f"{flag} {v}: expected a positive number")
    if args.max_steps < 0:
        raise ConfigError(f"--max-steps {args.max_steps}: expected a positive number of steps (0: the task's)")
    if args.out:
        check_out_dir(args.out, "a folder for the demos")
    cfg = EnvConfig(env=args.env, obs_mode=args.obs_mode, image_size=args.image_size, robot=args.robot,
                    lowpoly=not args.no_lowpoly, max_episode_steps=args.max_steps)
    out = Path(args.out) if args.out else default_demo_dir(args.env)
    collect(cfg, args.episodes, out, seed=args.seed, keep_failures=args.keep_failures)
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("control", help="control domain tools: setup-render, collect")
    verbs = p.add_subparsers(dest="control_verb", required=True)
    q = verbs.add_parser("setup-render", help="install a private Mesa 25 lavapipe so ManiSkill renders on a CPU (root, apt)")
    q.add_argument("prefix", nargs="?", default="", help="install folder (default ~/.cache/ostinato/mesa-lvp25)")
    q.add_argument("--force", action="store_true", help="reinstall even if PREFIX already holds it")
    q.set_defaults(func=_cmd_setup_render)
    q = verbs.add_parser("collect", help="record oracle demonstrations, one .npz per episode")
    q.add_argument("env", help="env name (see `ostinato ls envs`), e.g. cue_task, RememberColor3-v0, PushCube-v1")
    q.add_argument("--episodes", type=int, default=100)
    q.add_argument("--out", default="", help="output folder (default ~/.cache/ostinato/control/demos/ENV)")
    q.add_argument("--obs-mode", default="rgb", choices=["rgb", "state"])
    q.add_argument("--image-size", type=int, default=64)
    q.add_argument("--robot", default="", help="robot uid (default: panda on CPU for MIKASA tasks)")
    q.add_argument("--no-lowpoly", action="store_true", help="render the full-detail Panda meshes")
    q.add_argument("--max-steps", type=int, default=0, help="episode time limit (0: the task's)")
    q.add_argument("--seed", type=int, default=0, help="first episode seed")
    q.add_argument("--keep-failures", action="store_true", help="also keep episodes the oracle failed")
    q.set_defaults(func=_cmd_collect)
