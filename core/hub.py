"""Sharing weights in the Hugging Face Hub layout, and shipping them inside the package.

    from ostinato.core.hub import from_pretrained, save_pretrained, push_to_hub

    save_pretrained("runs/dlinear_etth1", "exported/")     # a run, or any source of weights
    model = from_pretrained("exported/")                    # or "owner/repo" on the Hub, or a shipped recipe
    push_to_hub("exported/", "owner/repo")                  # huggingface_hub; needs a token

The layout is the Hub's: ``config.json`` (the weights document of :mod:`ostinato.core.weights`:
config, inference state, metrics, card fields, the sha256 of the weights), ``model.safetensors``
and ``README.md`` (the model card, from ``model_card.md``). ``load_run(folder)`` and every verb
read such a folder as they read a run, and ``hf:<owner>/<repo>`` fetches one from the Hub.

Shipping (maintainers): ``python -m ostinato.core.hub ship RUN --digits mse=3 mae=3 ...``
writes ``<domain>/pretrained/<name>.{safetensors,json}`` from a finished run of a recipe. It
tests the weights as written, through ``load_run("pretrained:<recipe>")``, and stores them in
float16 only when every metric of ``--digits`` is unchanged to those digits; otherwise float32.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from . import checkpoint as ckpt
from .errors import ConfigError, OstinatoError
from .io import atomic_write_text
from .paths import check_out_dir
from .pretrained import HF_PREFIX, PREFIX, is_source, load_state, ship_folder, shipped
from .registry import model_from_state
from .weights import HUB_CARD, HUB_CONFIG, card, write


def _state(source: str | Path) -> dict[str, Any]:
    """A run's best checkpoint (or a .pt), or a source of weights, as a checkpoint-like dict, its
    inference state as the domain shares it (``Domain.shared_inference``: no dataset content)."""
    if is_source(source):
        return _shared(load_state(source))
    if not Path(str(source)).exists() and str(source) in shipped():
        return _shared(load_state(PREFIX + str(source)))
    from .train import find_checkpoint

    state = ckpt.load(find_checkpoint(source))
    if not isinstance(state.get("config"), dict) or "model" not in state:
        raise ConfigError(f"{source}: not an ostinato checkpoint; expected a run directory or a .pt written by `ostinato train`")
    return _shared(state)


def _shared(state: dict[str, Any]) -> dict[str, Any]:
    from .domain import get_domain

    try:
        hook = get_domain(state["config"].get("domain", "")).shared_inference
    except OstinatoError:  # a domain not installed (or broken) here: shared as it is
        return state
    return {**state, "inference": hook(state["inference"])} if hook and state.get("inference") else state


def save_pretrained(source: str | Path, out_dir: str | Path, *, fp16: bool = False,
                    metrics: dict[str, Any] | None = None, card_fields: dict[str, Any] | None = None) -> Path:
    """Write ``source`` (a run folder, a .pt, or a source of weights) to ``out_dir`` in the Hub
    layout. ``metrics`` (``{"split", "values", "digits"}``) and ``card_fields`` (data, protocol,
    licence, ...; see ``model_card.md``) default to those of a source that has them."""
    out = check_out_dir(out_dir, "a folder for the weights", flag="save_pretrained: out_dir")
    state = _state(source)
    old = state.get("doc") or {}
    extra = {"metrics": metrics if metrics is not None else old.get("metrics", {}),
             "card": {**(old.get("card") or {}), **(card_fields or {})}}
    doc = write(state, out, "model", fp16=fp16, doc_name=HUB_CONFIG, extra=extra)
    atomic_write_text(out / HUB_CARD, card(doc))
    return out


def from_pretrained(source: str | Path, device: str = "cpu") -> torch.nn.Module:
    """The model (eval mode, float32) of a Hub-layout folder, a Hub repo id (``owner/repo`` or
    ``hf:owner/repo``), or a shipped recipe (``pretrained:<domain>/<name>`` or ``<domain>/<name>``).
    ``load_run`` gives the config and inference state too."""
    s = str(source)
    if not is_source(s) and not Path(s).exists():
        s = PREFIX + s if s in shipped() else HF_PREFIX + s
    return model_from_state(load_state(s, device)).to(device)


def push_to_hub(folder: str | Path, repo_id: str, *, token: str | None = None, private: bool = False) -> str:
    """Upload a folder written by :func:`save_pretrained` to the Hub repo ``repo_id`` (created if
    needed); returns the commit URL. Needs ``huggingface_hub`` and a write token."""
    folder = Path(folder)
    if not (folder / HUB_CONFIG).is_file():
        raise ConfigError(f"{folder}: no {HUB_CONFIG}; expected a folder written by save_pretrained")
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise ConfigError('push_to_hub needs huggingface_hub: pip install "ostinato[hub]"') from None
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return str(api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="ostinato weights"))


# ----------------------------------------------------------------------------- shipping
def _dataset_card(state: dict[str, Any], data: str = "", data_licence: str = "") -> dict[str, str]:
    """The data and its licence: ``data`` ("short name: description") where given, else the domain's
    DatasetSpec whose files the run's data names."""
    from .domain import get_domain

    if data:
        return {"data_short": data.split(":")[0], "data": data, "data_licence": data_licence or "(not recorded)"}

    data = state["config"].get("data") or {}
    wanted = {str(v) for v in data.values() if isinstance(v, str)}
    for spec in get_domain(state["config"]["domain"]).datasets:
        if any(f.path in wanted or any(w and w in f.path for w in wanted if "/" in w) for f in spec.files):
            return {"data_short": spec.name, "data": f"{spec.name}: {spec.description.rstrip('.')}; source: {spec.source}",
                    "data_licence": spec.licence}
    return {"data_short": str(data.get("name", "")), "data": str(data.get("name", "")), "data_licence": "(see the dataset's source)"}


def eval_test_split(source: str, data_root: str | None = None) -> tuple[dict[str, float], float]:
    """The test metrics of ``source`` as ``ostinato eval SOURCE --split test`` prints them (RNG
    seeded with the run's seed, as there), and the seconds it took."""
    from .device import seed_everything
    from .train import evaluate_split, load_run

    t = time.perf_counter()
    model, cfg, data = load_run(source, data_root=data_root)
    seed_everything(cfg.trainer.seed)
    return evaluate_split(model, data, "test", cfg), time.perf_counter() - t


def _same(a: dict[str, float], b: dict[str, float], digits: dict[str, int]) -> bool:
    return all(f"{a[k]:.{d}f}" == f"{b[k]:.{d}f}" for k, d in digits.items())


def ship(run: str, digits: dict[str, int], *, protocol: str, reproduce: str = "", data_root: str | None = None,
         notes: str = "", data: str = "", data_licence: str = "") -> dict[str, Any]:
    """Ship run ``run`` (module doc); returns the document written. ``data`` / ``data_licence``
    describe data that no DatasetSpec names (episodes an environment generates)."""
    state = _state(run)
    recipe = str(state["config"].get("recipe") or "")
    if "/" not in recipe:
        raise ConfigError(f"{run}: its config names no <domain>/<name> recipe; only runs of shipped recipes are shipped")
    folder, stem = ship_folder(recipe.split("/")[0]), recipe.split("/", 1)[1]
    ref, _ = eval_test_split(run, data_root)  # the run's own weights, float32
    missing = [k for k in digits if k not in ref]
    if missing:
        raise ConfigError(f"--digits {missing[0]}: not a metric of this run; its test metrics: {', '.join(ref)}")
    res = json.loads((Path(run) / "results.json").read_text()) if (Path(run) / "results.json").is_file() else {}
    fields = {**_dataset_card(state, data, data_licence), "protocol": protocol, "licence": "apache-2.0", "notes": notes,
              "reproduce": reproduce or f"ostinato train {recipe}",
              "evaluate": f"ostinato eval {PREFIX}{recipe} --split test",
              "trained": f"{res.get('steps', '?')} steps, {res.get('epochs', '?')} epochs, {res.get('train_time_s', '?')} s "
                         f"of training on a CPU; best step {res.get('best_step', '?')} chosen on validation"}
    for fp16 in (True, False):
        extra = {"metrics": {"split": "test", "values": {}, "digits": digits, "float32_run": ref,
                             "training_test": res.get("test", {})}, "card": fields}
        write(state, folder, stem, fp16=fp16, extra=extra)
        got, secs = eval_test_split(PREFIX + recipe, data_root)
        if _same(got, ref, digits) or not fp16:
            break
    extra["metrics"].update(values=got, eval_s=round(secs, 1))
    return write(state, folder, stem, fp16=fp16, extra=extra)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ostinato.core.hub")
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("ship", help="write <domain>/pretrained/<name>.{safetensors,json} from a finished run")
    q.add_argument("run")
    q.add_argument("--digits", nargs="+", required=True, metavar="METRIC=N", help="the reported digits of each metric")
    q.add_argument("--protocol", required=True, help="the evaluation protocol, one or two sentences for the card")
    q.add_argument("--reproduce", default="", help="the training command (default: ostinato train RECIPE)")
    q.add_argument("--notes", default="")
    q.add_argument("--data", default="", help="the data, 'short name: description', where no dataset file names it")
    q.add_argument("--data-licence", default="")
    q.add_argument("--data-root")
    a = p.parse_args(argv)
    digits = {k: int(v) for k, v in (d.split("=", 1) for d in a.digits)}
    doc = ship(a.run, digits, protocol=a.protocol, reproduce=a.reproduce, data_root=a.data_root, notes=a.notes,
               data=a.data, data_licence=a.data_licence)
    m = doc["metrics"]
    print(f"{doc['recipe']}: {doc['weights']['stored_dtype']}, {doc['weights']['bytes']} bytes; test "
          + ", ".join(f"{k}={m['values'][k]:.6g} (run {m['float32_run'][k]:.6g})" for k in digits))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
