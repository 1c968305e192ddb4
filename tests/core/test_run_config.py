"""One typed config path: recipe + overrides -> dataclasses once; data-derived fields merged in one
place; builders never change the config; ``config.yaml`` rebuilds exactly what was built; range
checks and duplicate YAML keys are one-line ConfigErrors (exit 2)."""
import copy
import dataclasses

import pytest
import torch

from ostinato.core import recipe
from ostinato.core.config import from_dict, load_yaml, save_yaml
from ostinato.core.errors import ConfigError
from ostinato.core.registry import get_model, list_datasets, list_models
from ostinato.core.train import build_model

# fields a model normally gets from its data, for building it without the data
DATA_FIELDS = {"sasrec": {"n_items": 10}}


def _dataset_of(domain: str) -> str:
    for d in list_datasets(domain):
        try:
            from_dict(d.config, {})
        except ConfigError:  # needs a path or a file list
            continue
        return d.name
    raise AssertionError(f"no dataset of {domain} builds from its defaults")


def _shapes(model: torch.nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_every_model_rebuilds_from_its_saved_config(tmp_path):
    """Build every registered model through the run-config path (on the meta device: shapes without
    the cost of initialising 40M parameters), save the config as fit does, resolve the saved file
    and build again: same config, same state_dict shapes, and the builder left the config as it was."""
    bad = []
    for e in list_models():
        if not e.builder.__module__.startswith("ostinato."):  # registered by another test
            continue
        cfg = recipe.resolve({"domain": e.domain, "model": {"name": e.name}, "data": {"name": _dataset_of(e.domain)}})
        recipe.merge_data_fields(cfg, DATA_FIELDS.get(e.name))
        before = copy.deepcopy(cfg.model)
        with torch.device("meta"):
            m1 = build_model(cfg)
        if cfg.model != before:
            bad.append(f"{e.name}: the builder changed its config: {before} -> {cfg.model}")
            continue
        path = tmp_path / f"{e.name}.yaml"
        save_yaml(cfg.to_dict(), path)
        again = recipe.resolve(load_yaml(path))
        with torch.device("meta"):
            m2 = build_model(again)
        if again.to_dict() != cfg.to_dict() or again.model != cfg.model or type(again.model) is not e.config:
            bad.append(f"{e.name}: the saved config resolves to another one")
        elif _shapes(m1) != _shapes(m2):
            bad.append(f"{e.name}: state_dict shapes differ after rebuilding from config.yaml")
    assert not bad, "\n".join(bad)


def test_variants_are_config_values():
    """muvla_memoryless is m=0 in its config (not forced by the builder); test_muvla keeps a user's d_model."""
    cfg = from_dict(get_model("muvla_memoryless").config, {})
    assert cfg.n_mem == 0
    with pytest.raises(ConfigError, match="n_mem=16"):
        from_dict(get_model("muvla_memoryless").config, {"n_mem": 16})
    assert from_dict(get_model("muvla_ema").config, {}).memory_update == "ema"
    m = get_model("test_muvla").builder(from_dict(get_model("test_muvla").config, {"d_model": 48}))
    assert m.queries.shape[-1] == 48 and m.cfg.d_model == 48
    assert from_dict(get_model("test_muvla").config, {}).d_model == 32


def test_data_fields_merge_in_one_place():
    raw = {"model": {"name": "toy_seq"}, "data": {"name": "toy_seq", "d_in": 7}}
    cfg = recipe.resolve(raw)
    build_model(cfg, {"d_in": 7})
    assert cfg.model.d_in == 7 and cfg.to_dict()["model"]["d_in"] == 7  # merged: what is saved
    cfg = recipe.resolve(raw, ["model.d_in=7"])  # set to the same value: fine
    build_model(cfg, {"d_in": 7})
    cfg = recipe.resolve(raw, ["model.d_in=5"])
    with pytest.raises(ConfigError) as e:
        build_model(cfg, {"d_in": 7})
    assert "model.d_in=5 in the recipe" in str(e.value) and "d_in=7" in str(e.value)
    with pytest.raises(ConfigError, match="unknown config key 'model.n_items'"):
        recipe.merge_data_fields(recipe.resolve(raw), {"n_items": 3})


def test_sections_are_typed():
    cfg = recipe.load("core/toy_seq", ["model.d_model=8"])
    for sec in ("model", "data", "optim", "sched", "trainer", "eval"):
        assert dataclasses.is_dataclass(getattr(cfg, sec)), sec
    assert cfg.model_name == "toy_seq" and cfg.model.d_model == 8 and cfg.data.batch_size == 32
    d = cfg.to_dict()
    assert d["model"]["name"] == "toy_seq" and d["eval"] == {} and d["data"]["name"] == "toy_seq"
    assert recipe.resolve(d).to_dict() == d


@pytest.mark.parametrize("override,msg", [
    ("model.d_model=0", "model.d_model=0: expected >= 1"),
    ("model.dropout=1.5", "model.dropout=1.5: expected [0, 1)"),
    ("trainer.max_steps=-1", "trainer.max_steps=-1: expected >= 0"),
    ("data.batch_size=0", "data.batch_size=0: expected >= 1"),
    ("optim.lr=-1", "optim.lr=-1.0: expected >= 0"),
    ("optim.betas=[0.9,1.5]", "optim.betas=0.9, 1.5: expected each value [0, 1)"),
    ("trainer.ema_decay=1", "trainer.ema_decay=1.0: expected [0, 1)"),
])
def test_ranges_checked_when_loading(override, msg):
    with pytest.raises(ConfigError) as e:
        recipe.load("core/toy_seq", [override])
    assert str(e.value) == msg


def test_zero_where_zero_means_something():
    recipe.load("core/toy_seq", ["trainer.max_steps=0", "trainer.patience=0", "optim.lr=0"])
    cfg = recipe.resolve({"model": {"name": "test_muvla", "n_mem": 0}, "data": {"name": "control_demos"}})
    assert cfg.model.n_mem == 0


@pytest.mark.parametrize("override,key", [
    ("model.d_model=0", "model.d_model"), ("trainer.max_steps=-1", "trainer.max_steps"),
    ("data.batch_size=0", "data.batch_size"), ("optim.lr=-1", "optim.lr"),
])
def test_cli_range_errors_exit_2_with_one_line(cli, tmp_path, override, key):
    r = cli("train", "core/toy_seq", "--out", tmp_path / "run", "--quiet", override)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and key in lines[0], r.stderr
    assert "expected" in lines[0]


def test_cli_data_conflict_exit_2(cli, tmp_path):
    r = cli("train", "core/toy_seq", "--out", tmp_path / "run", "--quiet", "model.d_in=5", "data.d_in=3")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "model.d_in=5" in lines[0] and "d_in=3" in lines[0], r.stderr


def test_duplicate_yaml_keys_are_an_error(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text("domain: core\nmodel: {name: toy_seq, d_model: 8, d_model: 16}\ndata: {name: toy_seq}\n")
    with pytest.raises(ConfigError) as e:
        recipe.load(str(p))
    assert str(p) in str(e.value) and "duplicate key 'd_model'" in str(e.value)
    p.write_text("domain: core\nmodel: {name: toy_seq}\ndata: {name: toy_seq}\nmodel: {name: toy_seq}\n")
    with pytest.raises(ConfigError, match="line 4: duplicate key 'model'"):
        load_yaml(p)
    p.write_text("base: &b {d_model: 8}\nmodel: {<<: *b, d_model: 16}\n")  # a merge key may be overridden
    assert load_yaml(p)["model"] == {"d_model": 16}
