"""Run configuration: the typed sections of a recipe and how a recipe is found and resolved.

A recipe is a YAML file with these top-level sections::

    domain: recsys
    model:   {name: sasrec, d_model: 50, ...}    # fields of the model's config dataclass
    data:    {name: sasrec_txt, path: recsys/sasrec/Video.txt, batch_size: 128, ...}
    optim:   {name: adam, lr: 1.0e-3, betas: [0.9, 0.98]}
    sched:   {name: cosine, warmup_steps: 100}
    trainer: {max_epochs: 200, eval_every: 20, monitor: ndcg@10, mode: max}
    eval:    {protocol: sampled}                   # the domain's eval config dataclass

``model``, ``data`` and ``eval`` are checked against the registered config dataclasses;
``optim``, ``sched`` and ``trainer`` against the dataclasses below. ``RECIPE`` on the
command line is ``<domain>/<name>`` (a shipped YAML) or a path to a YAML file.

:func:`resolve` turns recipe + overrides into a :class:`RunConfig` once: every section is an
instance of its dataclass (keys, types and ranges checked), and that object is what the rest
of the run reads; it is never turned back into a dict except to be saved (``to_dict``).
Fields the data decides (``DataBundle.model_kwargs``: n_vars, seq_len, n_items, ...) are
merged in one place, :func:`merge_data_fields`: a value the recipe or the user set that
differs from the data's is a :class:`ConfigError`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .config import DATA_RANGES, EVAL_RANGES, MODEL_RANGES, apply_overrides, from_dict, load_yaml, ranged, replace, to_dict
from .errors import ConfigError


@dataclass
class OptimConfig:
    name: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = ranged(1e-3, 0)  # 0: frozen weights (a dry run)
    weight_decay: float = ranged(0.0, 0)
    betas: tuple[float, float] = ranged((0.9, 0.999), 0, 1, hi_open=True)
    eps: float = ranged(1e-8, 0)
    momentum: float = ranged(0.9, 0, 1)  # sgd only
    # adam/adamw: torch's fused single-kernel step (cheaper per step on CPU and GPU); false: its
    # foreach step. The same algorithm, rounded differently, so a chaotic run can end elsewhere
    fused: bool = True


@dataclass
class SchedConfig:
    """LR schedule, stepped every optimizer step (``epoch_decay`` steps at epoch ends).

    constant: lr (after optional linear warmup); cosine: warmup then cosine to ``min_lr``
    over the run's total steps; onecycle: torch's OneCycleLR with ``pct_start``;
    epoch_decay: lr * gamma ** epoch (TSLib's ``type1`` halves the lr every epoch).
    """

    name: Literal["constant", "cosine", "onecycle", "epoch_decay"] = "constant"
    warmup_steps: int = ranged(0, 0)
    min_lr: float = ranged(0.0, 0)
    pct_start: float = ranged(0.3, 0, 1)
    gamma: float = ranged(0.5, 0, lo_open=True)


@dataclass
class TrainerConfig:
    max_epochs: int = ranged(10, 0)
    max_steps: int = ranged(0, 0)  # 0: no step limit
    max_minutes: float = ranged(0.0, 0)  # wall-clock training budget; 0: none
    steps_per_epoch: int = ranged(0, 0)  # 0: one pass over the training set
    eval_every: int = ranged(1, 0)  # epochs between validations
    eval_every_steps: int = ranged(0, 0)  # if > 0, validate every this many steps instead
    patience: int = ranged(0, 0)  # validations without improvement before stopping; 0: off
    monitor: str = "loss"  # key of the validation metrics used for selection
    mode: Literal["min", "max"] = "min"
    grad_clip: float = ranged(0.0, 0)  # max grad norm; 0: off
    ema_decay: float = ranged(0.0, 0, 1, hi_open=True)  # exponential moving average of the weights, validated and saved instead; 0: off
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA, off on CPU
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = ranged(0, 0)
    ckpt_every_steps: int = ranged(0, 0)  # also write last.pt every this many steps; 0: at validations only
    log_every_steps: int = ranged(50, 0)  # metrics.csv / TensorBoard rows of the running train metrics
    # without a TTY (nohup, a scheduler, `2>&1 | tee log`): one progress line on stderr every this
    # many seconds (step, epoch, loss, lr, steps/s, eta); 0: no periodic lines (validation lines stay);
    # with a TTY the tqdm bar is shown instead; --quiet silences both
    log_every_s: float = ranged(30.0, 0)
    num_workers: int = ranged(0, 0)
    threads: int = ranged(0, 0)  # torch.set_num_threads; 0: leave as is
    test_at_end: bool = True  # evaluate best.pt on test once, at the end
    init_from: str = ""  # a checkpoint (best.pt / last.pt) whose model weights start this run (fine-tuning); "" = none

    def validate(self) -> None:  # called by config.from_dict
        if not self.log_every_s >= 0:  # also refuses nan
            raise ConfigError(f"trainer.log_every_s={self.log_every_s}: expected seconds >= 0 (0: no progress lines)")


@dataclass
class NoEvalConfig:
    """The ``eval`` section of a domain that takes no eval options."""


@dataclass
class RunConfig:
    """A resolved run: every section an instance of its config dataclass.

    ``model`` is the registered model's config (``model_name`` names the model), ``data`` the
    dataset's (``data_name``), ``eval`` the domain's ``eval_config`` (``NoEvalConfig`` where
    it has none). ``to_dict()`` gives the recipe layout (``model: {name: ..., ...}``) that
    ``config.yaml`` and the checkpoints hold and :func:`resolve` reads back.
    """

    domain: str
    model: Any
    data: Any
    model_name: str
    data_name: str
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: Any = field(default_factory=NoEvalConfig)
    recipe: str = ""
    # model fields the recipe or the overrides set (not saved): a data-derived value may not contradict them
    model_set: frozenset = field(default=frozenset(), repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "model": {"name": self.model_name, **to_dict_fields(self.model)},
            "data": {"name": self.data_name, **to_dict_fields(self.data)},
            "optim": to_dict_fields(self.optim),
            "sched": to_dict_fields(self.sched),
            "trainer": to_dict_fields(self.trainer),
            "eval": to_dict_fields(self.eval),
            "recipe": self.recipe,
        }


def to_dict_fields(obj: Any) -> dict[str, Any]:
    import dataclasses

    return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


_SECTIONS = ("domain", "model", "data", "optim", "sched", "trainer", "eval", "recipe")


def find_recipe(ref: str) -> Path:
    """``<domain>/<name>`` -> the shipped YAML; otherwise ``ref`` is a path to a YAML file."""
    p = Path(ref)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise ConfigError(f"recipe file {ref!r} does not exist")
        return p
    from .domain import get_domain, load_domains

    if "/" not in ref:
        raise ConfigError(f"recipe {ref!r}: expected <domain>/<name> (see `ostinato ls recipes`) or a .yaml path")
    dom, name = ref.split("/", 1)
    if dom not in load_domains():
        raise ConfigError(f"recipe {ref!r}: unknown domain {dom!r}; expected one of {', '.join(sorted(load_domains()))}")
    path = get_domain(dom).recipes_dir / f"{name}.yaml"
    if not path.exists():
        have = sorted(q.stem for q in get_domain(dom).recipes_dir.glob("*.yaml"))
        raise ConfigError(f"recipe {ref!r} not found; {dom} recipes: {', '.join(have) or '(none)'}")
    return path


def list_recipes(domain: str | None = None) -> list[tuple[str, Path]]:
    from .domain import load_domains

    out = []
    for name, dom in sorted(load_domains().items()):
        if domain and name != domain:
            continue
        for q in sorted(dom.recipes_dir.glob("*.yaml")):
            out.append((f"{name}/{q.stem}", q))
    return out


def resolve(raw: dict[str, Any], overrides: list[str] | None = None, recipe: str = "") -> RunConfig:
    """Apply overrides and build every section's dataclass (keys, types and ranges checked)."""
    from .domain import get_domain
    from .registry import get_dataset, get_model

    d = apply_overrides(copy.deepcopy(raw), list(overrides or []))
    unknown = [k for k in d if k not in _SECTIONS]
    if unknown:
        raise ConfigError(f"unknown config key {unknown[0]!r}; valid keys: {', '.join(_SECTIONS)}")
    for sec in ("model", "data"):
        if not isinstance(d.get(sec), dict) or "name" not in d[sec]:
            raise ConfigError(f"config key {sec + '.name'!r} is required (the registered {sec} to use)")
    mentry = get_model(str(d["model"]["name"]))
    dentry = get_dataset(str(d["data"]["name"]))
    domain = d.get("domain") or mentry.domain
    dom = get_domain(domain)
    model = {k: v for k, v in d["model"].items() if k != "name"}
    data = {k: v for k, v in d["data"].items() if k != "name"}
    ev = d.get("eval") or {}
    if dom.eval_config is not None:
        ev = from_dict(dom.eval_config, ev, where="eval", name_ranges=EVAL_RANGES)
    elif ev:
        raise ConfigError(f"config key 'eval.{next(iter(ev))}': the {domain} domain takes no eval options")
    else:
        ev = NoEvalConfig()
    return RunConfig(
        domain=domain,
        model=from_dict(mentry.config, model, where="model", name_ranges=MODEL_RANGES),
        data=from_dict(dentry.config, data, where="data", name_ranges=DATA_RANGES),
        model_name=mentry.name,
        data_name=dentry.name,
        optim=from_dict(OptimConfig, d.get("optim"), where="optim"),
        sched=from_dict(SchedConfig, d.get("sched"), where="sched"),
        trainer=from_dict(TrainerConfig, d.get("trainer"), where="trainer"),
        eval=ev,
        recipe=str(d.get("recipe") or recipe),
        model_set=frozenset(model),
    )


def merge_data_fields(cfg: RunConfig, model_kwargs: dict[str, Any] | None) -> RunConfig:
    """Merge the fields the data decides (``DataBundle.model_kwargs``) into ``cfg.model``: the one place.

    A field the recipe or the user set (``cfg.model_set``) to another value than the data's is a
    :class:`ConfigError` naming both; an equal one is fine. Returns ``cfg`` with the merged model
    config (a new dataclass instance; ``cfg`` is what is saved as ``config.yaml``).
    """
    kw = dict(model_kwargs or {})
    if not kw:
        return cfg
    merged = replace(cfg.model, kw, where="model", name_ranges=MODEL_RANGES)  # unknown keys, types, ranges
    for k in kw:
        have, want = getattr(cfg.model, k), getattr(merged, k)
        if k in cfg.model_set and have != want:
            raise ConfigError(f"model.{k}={have!r} in the recipe, but the data ({cfg.data_name}) has {k}={want!r}; "
                              f"drop model.{k} (the data sets it) or set it to {want!r}")
    cfg.model = merged
    cfg.model_set = cfg.model_set | frozenset(kw)
    return cfg


def load(ref: str, overrides: list[str] | None = None) -> RunConfig:
    path = find_recipe(ref)
    return resolve(load_yaml(path), overrides, recipe=ref)


def as_dict(cfg: RunConfig) -> dict[str, Any]:
    return cfg.to_dict()
