from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from ostinato.core.config import apply_overrides, from_dict, parse_override
from ostinato.core.errors import ConfigError
from ostinato.core.registry import create_model, get_model, list_models, register_model


@dataclass
class _Cfg:
    width: int = 4
    lr: float = 1e-3
    act: Literal["relu", "gelu"] = "relu"
    dims: tuple[int, int] = (1, 2)
    tag: Optional[str] = None
    flags: list[bool] = field(default_factory=list)


def test_register_duplicate_raises_and_records_entry():
    @register_model("_test_reg_a", config=_Cfg, domain="unit")
    def build(cfg):
        """First line is the description.

        More text."""
        return cfg

    e = get_model("_test_reg_a")
    assert e.domain == "unit"
    assert e.config is _Cfg and e.description == "First line is the description."
    with pytest.raises(ValueError, match="already registered"):
        register_model("_test_reg_a", config=_Cfg)(build)
    assert create_model("_test_reg_a", width=8).width == 8
    assert [x.name for x in list_models(pattern="_test_reg_*")] == ["_test_reg_a"]
    assert list_models(domain="no-such-domain") == []


def test_domain_is_taken_from_the_module():
    from ostinato.core.registry import _domain_of

    assert _domain_of("ostinato.vision.models.pfgnet") == "vision"
    assert _domain_of("ostinato.core.layers.s5") == "core"


def test_register_needs_dataclass():
    with pytest.raises(TypeError):
        register_model("_test_reg_b", config=dict)


def test_unknown_model_is_config_error():
    with pytest.raises(ConfigError, match="unknown model 'no_such_model'"):
        create_model("no_such_model")


def test_from_dict_checks_keys_and_types():
    c = from_dict(_Cfg, {"width": 3, "lr": "1e-4", "act": "gelu", "dims": [5, 6], "flags": [True]})
    assert (c.width, c.lr, c.act, c.dims, c.flags) == (3, 1e-4, "gelu", (5, 6), [True])
    with pytest.raises(ConfigError, match=r"unknown config key 'm.widht'; valid keys: width, lr"):
        from_dict(_Cfg, {"widht": 3}, where="m")
    with pytest.raises(ConfigError, match="'width': expected an integer"):
        from_dict(_Cfg, {"width": "wide"})
    with pytest.raises(ConfigError, match=r"expected one of \['relu', 'gelu'\]"):
        from_dict(_Cfg, {"act": "tanh"})
    # YAML 1.1 reads `trainer.amp=off` as False: a Literal that has "off" takes it back
    from ostinato.core.recipe import TrainerConfig

    assert from_dict(TrainerConfig, {"amp": parse_override("trainer.amp=off")[1]}).amp == "off"
    with pytest.raises(ConfigError, match=r"expected one of \['relu', 'gelu'\], got False"):
        from_dict(_Cfg, {"act": False})
    with pytest.raises(ConfigError, match="expected 2 values"):
        from_dict(_Cfg, {"dims": [1]})
    with pytest.raises(ConfigError, match="expected true/false"):
        from_dict(_Cfg, {"flags": ["yes"]})
    with pytest.raises(ConfigError, match="expected an integer"):
        from_dict(_Cfg, {"width": True})


def test_overrides():
    assert parse_override("optim.lr=5e-4") == (["optim", "lr"], "5e-4")  # YAML 1.1; float fields accept it
    assert parse_override("trainer.max_steps=20") == (["trainer", "max_steps"], 20)
    d = apply_overrides({"optim": {"lr": 1}}, ["optim.lr=0.5", "trainer.seed=3", "model.dims=[1, 2]"])
    assert d == {"optim": {"lr": 0.5}, "trainer": {"seed": 3}, "model": {"dims": [1, 2]}}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("optim.lr")
    with pytest.raises(ConfigError, match="is not a section"):
        apply_overrides({"optim": 3}, ["optim.lr=1"])


def test_recipe_resolution_errors():
    from ostinato.core import recipe

    cfg = recipe.load("core/toy_seq", ["optim.lr=0.1", "model.d_model=8"])
    assert cfg.optim.lr == 0.1 and cfg.model.d_model == 8 and cfg.model.mixer == ""
    with pytest.raises(ConfigError, match="unknown config key 'model.d_modle'"):
        recipe.load("core/toy_seq", ["model.d_modle=8"])
    with pytest.raises(ConfigError, match="unknown config key 'trainer.max_step'"):
        recipe.load("core/toy_seq", ["trainer.max_step=8"])
    with pytest.raises(ConfigError, match="recipe 'core/nope' not found"):
        recipe.load("core/nope")
    with pytest.raises(ConfigError, match="unknown domain"):
        recipe.load("nodomain/x")
