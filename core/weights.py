"""Weights as a safetensors file beside a JSON document: the format of shipped weights and of
the Hugging Face Hub layout (``config.json`` + ``model.safetensors`` + ``README.md``).

The **document** (JSON) holds everything but the weights: the run's resolved config, the
fields the data decided (``model_kwargs``), the inference state the verbs need (scalers,
column names, item maps; arrays written out exactly as ``{"__array__": [...], "dtype", "shape"}``),
the measured metrics, the model card's fields, and the manifest entry of the weights file:
its name, sha256, size, and the dtype it is stored in. ``read`` checks the sha256 before it
parses the weights, so a corrupted or swapped file is a one-line :class:`DataError`.

Weights may be stored in float16 (``write(..., fp16=True)``): float32 tensors are cast (any
tensor whose cast is not finite stays float32), and ``read`` gives float32 back, so a model
loads them as it loads a checkpoint. Whether fp16 keeps a metric is the shipper's check
(:mod:`ostinato.core.hub`), not assumed here.
"""
from __future__ import annotations

import json
import os
import string
from pathlib import Path
from typing import Any

from .data import sha256_of as sha256  # the one file hasher (data verify uses it too)
from .errors import ConfigError, DataError
from .io import atomic_write, atomic_write_text

FORMAT = "ostinato-weights/1"
HUB_CONFIG, HUB_WEIGHTS, HUB_CARD = "config.json", "model.safetensors", "README.md"
CARD_TEMPLATE = Path(__file__).with_name("model_card.md")


# ----------------------------------------------------------------------------- inference state
def encode(obj: Any) -> Any:
    """A checkpoint's plain inference state (tensors, numbers, strings, lists, dicts) as JSON;
    a tensor becomes ``{"__array__": nested list, "dtype": ..., "shape": [...]}`` (exact: JSON
    floats round-trip float64)."""
    import torch

    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        return {"__array__": t.reshape(-1).tolist(), "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape)}
    if isinstance(obj, dict):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode(x) for x in obj]
    return obj


def decode(obj: Any) -> Any:
    """Inverse of :func:`encode`: arrays come back as tensors (as ``torch.load`` gives them)."""
    import torch

    if isinstance(obj, dict) and "__array__" in obj:
        dtype = getattr(torch, str(obj["dtype"]))
        return torch.tensor(obj["__array__"], dtype=dtype).reshape(obj["shape"])
    if isinstance(obj, dict):
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(x) for x in obj]
    return obj


# ----------------------------------------------------------------------------- write / read
def _stored(state_dict: dict[str, Any], fp16: bool) -> tuple[dict[str, Any], str]:
    """Contiguous copies (safetensors refuses shared storage), float32 -> float16 with ``fp16``."""
    import torch

    out, any16 = {}, False
    for k, v in state_dict.items():
        t = v.detach().cpu().contiguous().clone()
        if fp16 and t.dtype == torch.float32:
            h = t.half()
            if bool(torch.isfinite(h).all()) or not bool(torch.isfinite(t).all()):
                t, any16 = h, True
        out[k] = t
    return out, "float16" if any16 else "float32"


def write(state: dict[str, Any], folder: Path, stem: str, *, fp16: bool = False, doc_name: str | None = None,
          extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``state`` (a checkpoint dict: ``config``, ``model``, optional ``inference`` and
    ``model_kwargs``) as ``folder/<stem>.safetensors`` and its document ``folder/<doc_name>``
    (default ``<stem>.json``); ``extra`` (metrics, card fields, ...) goes into the document.
    Returns the document."""
    from safetensors.torch import save

    folder = Path(folder)
    tensors, stored = _stored(state["model"], fp16)
    wfile = folder / f"{stem}.safetensors"
    blob = save(tensors, metadata={"format": "pt"})  # one key: the header is byte-stable (a map has no order)
    atomic_write(wfile, lambda f: f.write(blob))
    os.chmod(wfile, 0o644)  # package data: readable by all (the temp file was 0600)
    cfg = state["config"]
    doc = {
        "format": FORMAT,
        "recipe": cfg.get("recipe", ""),
        "domain": cfg.get("domain", ""),
        "model": (cfg.get("model") or {}).get("name", ""),
        **(extra or {}),
        "config": cfg,
        "model_kwargs": dict(state.get("model_kwargs") or {}),
        "inference": encode(state.get("inference") or {}),
        "weights": {"file": wfile.name, "sha256": sha256(wfile), "bytes": wfile.stat().st_size,
                    "stored_dtype": stored, "dtype": "float32",
                    "params": int(sum(t.numel() for t in tensors.values() if t.is_floating_point()))},
    }
    dfile = folder / (doc_name or f"{stem}.json")
    atomic_write_text(dfile, json.dumps(doc, indent=1) + "\n")
    os.chmod(dfile, 0o644)
    return doc


def read_doc(path: Path) -> dict[str, Any]:
    """The JSON document at ``path``, checked for this format (one-line errors)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file; expected an ostinato weights document (JSON)")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not valid JSON ({str(e).splitlines()[0]}); expected an ostinato weights document")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise DataError(f"{path}: format {got!r}; expected an ostinato weights document ({FORMAT!r})")
    return doc


def read(path: Path, device: str = "cpu") -> dict[str, Any]:
    """The checkpoint-like dict (``config``, ``model``, ``inference``, ``model_kwargs``, ``doc``)
    of the document at ``path``; the weights file's sha256 is checked first."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    import torch

    path = Path(path)
    doc = read_doc(path)
    w = doc["weights"]
    wfile = path.parent / w["file"]
    if not wfile.is_file():
        raise DataError(f"{wfile}: missing; {path.name} names it as its weights file")
    got = sha256(wfile)
    if got != w["sha256"]:
        raise DataError(f"{wfile}: sha256 {got[:12]}... does not match the manifest's {w['sha256'][:12]}... "
                        f"({path.name}); the file is corrupted or was replaced: restore or re-download it")
    try:
        tensors = load_file(str(wfile), device=device)
    except (SafetensorError, OSError) as e:
        raise DataError(f"{wfile}: cannot be read ({e}); expected a safetensors file")
    if w.get("dtype") == "float32":
        tensors = {k: v.float() if v.dtype == torch.float16 else v for k, v in tensors.items()}
    return {"config": doc["config"], "model": tensors, "model_kwargs": dict(doc.get("model_kwargs") or {}),
            "inference": decode(doc.get("inference") or {}), "doc": doc}


# ----------------------------------------------------------------------------- model card
def _metrics_table(doc: dict[str, Any]) -> str:
    m = doc.get("metrics") or {}
    vals, digits = m.get("values") or {}, m.get("digits") or {}
    if not vals:
        return "(no metrics recorded)"
    keys = [k for k in digits] or list(vals)
    rows = [f"| {k} | {vals[k]:.{int(digits.get(k, 4))}f} |" for k in keys if k in vals]
    return "\n".join([f"| metric ({m.get('split', 'test')}) | value |", "|---|---|", *rows])


def card(doc: dict[str, Any]) -> str:
    """The model card (``README.md`` of the Hub layout) from ``model_card.md`` and the document."""
    c = doc.get("card") or {}
    fields = {
        "name": doc.get("recipe") or doc.get("model", "model"), "model": doc.get("model", ""),
        "domain": doc.get("domain", ""), "recipe": doc.get("recipe", ""),
        "data": c.get("data", "(not recorded)"), "data_licence": c.get("data_licence", "(not recorded)"),
        "protocol": c.get("protocol", "(not recorded)"), "licence": c.get("licence", "apache-2.0"),
        "reproduce": c.get("reproduce", f"ostinato train {doc.get('recipe', '')}"),
        "evaluate": c.get("evaluate", ""), "trained": c.get("trained", "(not recorded)"), "notes": c.get("notes", ""),
        "metrics": _metrics_table(doc), "params": f"{doc['weights']['params']:,}",
        "stored_dtype": doc["weights"]["stored_dtype"], "sha256": doc["weights"]["sha256"],
    }
    return string.Template(CARD_TEMPLATE.read_text()).safe_substitute(fields)
