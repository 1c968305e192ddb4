"""Shipped weights, and where any set of weights comes from (the ``pretrained:`` sources).

Each domain package may ship trained weights in its ``pretrained/`` folder: for the recipe
``<domain>/<name>``, ``<name>.safetensors`` and its document ``<name>.json`` (format in
:mod:`ostinato.core.weights`: config, inference state, measured metrics, model-card fields
and the weights file's sha256). The catalogue is read from those JSON files alone (no torch,
no domain imported), so ``ostinato ls pretrained`` is instant.

A *source* of weights is one of

- ``pretrained:<domain>/<name>``: shipped weights (``ostinato eval pretrained:timeseries/dlinear_etth1``);
- a folder in the Hugging Face Hub layout (``config.json``, ``model.safetensors``, ``README.md``),
  as :func:`ostinato.core.hub.save_pretrained` writes it;
- ``hf:<owner>/<repo>[@revision]``: such a folder on the Hub, fetched by ``huggingface_hub``.

:func:`load_state` gives a source's checkpoint-like dict, which ``load_run`` (hence every verb)
and ``create_model(..., pretrained=...)`` load like a run's ``best.pt``.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .errors import ConfigError, DataError
from .weights import FORMAT, HUB_CONFIG, HUB_WEIGHTS, read

PREFIX, HF_PREFIX = "pretrained:", "hf:"
FOLDER = "pretrained"


@dataclass(frozen=True)
class Shipped:
    recipe: str  # <domain>/<name>
    doc_path: Path
    doc: dict[str, Any]


def _package_dirs() -> list[Path]:
    """The folder of every domain package (entry-point group ``ostinato.domains``), unimported."""
    out = []
    for ep in sorted(entry_points(group="ostinato.domains"), key=lambda e: e.name):
        pkg = ep.value.split(":")[0].rsplit(".", 1)[0]
        try:
            spec = importlib.util.find_spec(pkg)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.submodule_search_locations:
            out.append(Path(list(spec.submodule_search_locations)[0]))
    return out


def shipped() -> dict[str, Shipped]:
    """{recipe: Shipped} for every ``<package>/pretrained/*.json`` of this format."""
    out = {}
    for d in _package_dirs():
        for p in sorted((d / FOLDER).glob("*.json")):
            try:
                doc = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and doc.get("format") == FORMAT and doc.get("recipe"):
                out[doc["recipe"]] = Shipped(doc["recipe"], p, doc)
    return out


def ship_folder(domain: str) -> Path:
    """Where the weights of ``domain``'s recipes are shipped (``<package>/pretrained``)."""
    for d in _package_dirs():
        if d.name == domain:
            return d / FOLDER
    raise ConfigError(f"domain {domain!r}: no installed domain package of that name")


def get(recipe: str) -> Shipped:
    """The shipped weights of ``recipe`` (``<domain>/<name>``, with or without ``pretrained:``)."""
    name = recipe[len(PREFIX):] if recipe.startswith(PREFIX) else recipe
    have = shipped()
    if name not in have:
        valid = ", ".join(sorted(have)) or "(none shipped)"
        raise ConfigError(f"no shipped weights for {name!r}; expected one of: {valid} (see `ostinato ls pretrained`)")
    return have[name]


# ----------------------------------------------------------------------------- sources
def is_hub_folder(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / HUB_CONFIG).is_file() and (p / HUB_WEIGHTS).is_file()


def is_source(path: Any) -> bool:
    """``path`` names weights rather than a training run (see the module doc)."""
    s = str(path)
    return s.startswith((PREFIX, HF_PREFIX)) or (not (Path(s) / "best.pt").exists() and not (Path(s) / "last.pt").exists()
                                                 and is_hub_folder(s))


def download(repo: str) -> Path:
    """The local folder of Hub repo ``<owner>/<repo>[@revision]`` (``huggingface_hub`` cache)."""
    repo_id, _, revision = repo.partition("@")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ConfigError(f"hf:{repo}: loading from the Hugging Face Hub needs huggingface_hub; "
                          'pip install "ostinato[hub]"') from None
    try:
        return Path(snapshot_download(repo_id, revision=revision or None, allow_patterns=[HUB_CONFIG, HUB_WEIGHTS, "README.md"]))
    except Exception as e:  # offline, unknown repo, no access: one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"hf:{repo}: cannot fetch it from the Hugging Face Hub ({type(e).__name__}: {first[:160]})") from None


def doc_path(source: str | Path) -> Path:
    """The JSON document of a source (module doc); a bare ``<domain>/<name>`` that is shipped
    counts as ``pretrained:<domain>/<name>`` unless a folder of that name exists here."""
    s = str(source)
    if s.startswith(HF_PREFIX):
        return download(s[len(HF_PREFIX):]) / HUB_CONFIG
    if s.startswith(PREFIX) or (not Path(s).exists() and s in shipped()):
        return get(s).doc_path
    if is_hub_folder(s):
        return Path(s) / HUB_CONFIG
    raise ConfigError(f"{s}: not a source of weights; expected pretrained:<domain>/<name> (see `ostinato ls pretrained`), "
                      f"a folder holding {HUB_CONFIG} and {HUB_WEIGHTS}, or hf:<owner>/<repo>")


def load_state(source: str | Path, device: str = "cpu") -> dict[str, Any]:
    """A source's checkpoint-like dict: ``config``, ``model`` (float32 tensors), ``inference``,
    ``model_kwargs`` and the JSON ``doc``; the weights file's sha256 is checked."""
    return read(doc_path(source), device=device)


def for_model(name: str, pretrained: Any, device: str = "cpu") -> dict[str, Any]:
    """The state behind ``create_model(name, pretrained=...)``: ``True`` picks the one shipped
    set of weights of model ``name`` (or of recipe ``name``); a string is a source."""
    if pretrained is True:
        if "/" in name:  # a recipe: create_model("timeseries/dlinear_etth1", pretrained=True)
            return load_state(name if name.startswith(PREFIX) else PREFIX + name, device)
        have = shipped()
        mine = sorted(r for r, s in have.items() if s.doc.get("model") == name)
        if len(mine) != 1:
            what = f"several: {', '.join(mine)}; pass pretrained='<recipe>'" if mine else \
                f"none; shipped: {', '.join(sorted(have)) or '(none)'}"
            raise ConfigError(f"create_model({name!r}, pretrained=True): shipped weights of model {name!r}: {what}")
        return load_state(PREFIX + mine[0], device)
    if not isinstance(pretrained, (str, Path)):
        raise ConfigError(f"create_model({name!r}, pretrained={pretrained!r}): expected True, a recipe, a folder or hf:<owner>/<repo>")
    state = load_state(pretrained, device)
    got = (state["config"].get("model") or {}).get("name")
    if "/" not in name and got != name:
        raise ConfigError(f"create_model({name!r}, pretrained={str(pretrained)!r}): those weights are of model {got!r}")
    return state


# ----------------------------------------------------------------------------- listing
def _fmt(doc: dict[str, Any]) -> str:
    m = doc.get("metrics") or {}
    vals, digits = m.get("values") or {}, m.get("digits") or {}
    return " ".join(f"{k}={vals[k]:.{int(d)}f}" for k, d in digits.items() if k in vals)


def rows(domain: str | None = None, pattern: str | None = None) -> list[list[str]]:
    """``ostinato ls pretrained``: recipe, model, data, test metric, size, the command that trains it."""
    out = []
    for r, s in sorted(shipped().items()):
        if (domain and s.doc.get("domain") != domain) or (pattern and pattern not in r):
            continue
        c, w = s.doc.get("card") or {}, s.doc["weights"]
        out.append([r, s.doc.get("model", ""), c.get("data_short", c.get("data", "")), _fmt(s.doc),
                    f"{w['bytes'] / 1e3:.0f} kB {w['stored_dtype']}", c.get("reproduce", f"ostinato train {r}")])
    return out


HEADER = ["recipe", "model", "data", "test metric", "weights", "reproduce"]
