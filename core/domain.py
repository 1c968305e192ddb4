"""How a domain plugs into the core.

Each domain package exposes a module ``ostinato.<domain>.domain`` that defines ``DOMAIN``, a
:class:`Domain`, and imports its model and dataset modules so that they register. The
module is named in ``pyproject.toml`` under the entry-point group ``ostinato.domains``; the
core finds domains only through that group, so ``ostinato.core`` never imports a domain by
name.
"""
from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

from . import registry
from .errors import ConfigError, OstinatoError


@dataclass
class Domain:
    name: str
    recipes_dir: Path
    # evaluate(model, data: DataBundle, split: "val"|"test", cfg: RunConfig) -> {metric: value}
    evaluate: Callable[..., dict[str, float]]
    # typed dataclass for the recipe's `eval:` section (protocol, k values, ...)
    eval_config: type | None = None
    # bench(quick: bool, out: Path | None) -> list of row dicts; prints its tables and writes its
    # JSON document to out (both through ostinato.core.benchkit); <domain>/bench.py's run
    bench: Callable[..., list[dict[str, Any]]] | None = None
    # add_cli(subparsers) adds domain verbs such as `ostinato enhance`
    add_cli: Callable[[argparse._SubParsersAction], None] | None = None
    # DatasetSpec objects: where files are found, checksums, sources, licences
    datasets: list[Any] = field(default_factory=list)
    # extra rows for `ostinato ls envs` etc.: {"envs": callable -> list[(name, status)]}
    listings: dict[str, Callable[[], list[tuple[str, str]]]] = field(default_factory=dict)
    # False: `evaluate` reads only DataBundle.inference (its splits are env rollouts), so
    # `ostinato eval` of a run whose checkpoint holds it builds no data
    eval_needs_data: bool = True
    # shared_inference(inference) -> the inference state written into shared weights (shipped,
    # save_pretrained): dataset content that may not be redistributed left out (recsys: histories)
    shared_inference: Callable[[dict[str, Any]], dict[str, Any]] | None = None



def declare(name: str, package_file: str, evaluate: Callable[..., dict[str, float]], eval_config: type | None,
            cli: Any = None, **fields: Any) -> Domain:
    """The Domain of a package in the usual shape: its recipes in ``<package>/recipes``, and the
    ``bench`` and ``add_cli`` of its ``cli`` module where that module has them."""
    return Domain(name=name, recipes_dir=Path(package_file).parent / "recipes", evaluate=evaluate,
                  eval_config=eval_config, bench=getattr(cli, "bench", None), add_cli=getattr(cli, "add_cli", None),
                  **fields)

_DOMAINS: dict[str, Domain] = {}
_BROKEN: dict[str, str] = {}  # domain -> one-line reason it could not be imported
_LOADED = False
GROUP = "ostinato.domains"
_EPS: list | None = None


def domain_entry_points() -> list:
    """The entry points of the ``ostinato.domains`` group, sorted by name (nothing imported)."""
    global _EPS
    if _EPS is None:
        _EPS = sorted(entry_points(group=GROUP), key=lambda e: e.name)
    return _EPS


def extra_hint(name: str) -> str:
    """How to install the packages a domain of this distribution needs (its extra has its name)."""
    return f'; install its extra: pip install -e ".[{name}]" in a checkout, or pip install "ostinato[{name}]"'


def _reason(ep, e: Exception) -> str:
    reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    missing = getattr(e, "name", None) if isinstance(e, ImportError) else None
    if missing and not missing.startswith("ostinato") and ep.value.startswith("ostinato."):
        reason += extra_hint(ep.name)  # a third-party package is missing, not a bug in ostinato
    return reason


def load_domains() -> dict[str, Domain]:
    """Import every domain named in the ``ostinato.domains`` entry-point group (once).

    A domain that fails to import does not take the others down: it is recorded in
    :func:`broken_domains` and asking for it raises an error that gives the reason.
    """
    global _LOADED
    if _LOADED:
        return _DOMAINS
    _LOADED = True
    from . import layers, tasks  # noqa: F401  (core layers and the core's own synthetic task register)

    _DOMAINS["core"] = Domain(name="core", recipes_dir=Path(__file__).parent / "recipes", evaluate=tasks.evaluate)
    for ep in domain_entry_points():
        try:
            module = importlib.import_module(ep.value)
        except Exception as e:  # report, keep the other domains usable
            _BROKEN[ep.name] = _reason(ep, e)
            continue
        dom = getattr(module, "DOMAIN", None)
        if not isinstance(dom, Domain):
            _BROKEN[ep.name] = f"{ep.value} defines no DOMAIN = Domain(...)"
            continue
        _DOMAINS[dom.name] = dom
    return _DOMAINS


def broken_domains() -> dict[str, str]:
    load_domains()
    return dict(_BROKEN)


def get_domain(name: str) -> Domain:
    doms = load_domains()
    if name in _BROKEN:
        raise OstinatoError(f"the {name} domain failed to import: {_BROKEN[name]}")
    if name not in doms:
        raise ConfigError(f"unknown domain {name!r}; expected one of: {', '.join(sorted(doms)) or '(none installed)'}")
    return doms[name]


registry.set_loader(broken_domains)  # a registry lookup loads the domains first (see registry.set_loader)
