"""A nested choice's name override starts the section afresh (the old choice's keys would not fit)."""
import pytest

from ostinato.core.config import apply_overrides
from ostinato.core.errors import ConfigError


def test_new_name_drops_the_recipes_keys_of_the_old_choice():
    d = {"model": {"name": "m", "mixer": {"name": "mamba", "d_state": 32, "d_conv": 4}}}
    apply_overrides(d, ["model.mixer.name=lru"])
    assert d["model"]["mixer"] == {"name": "lru"}


def test_keys_set_by_the_overrides_are_kept_in_any_order():
    d = {"model": {"mixer": {"name": "mamba", "d_conv": 4}}}
    apply_overrides(d, ["model.mixer.d_state=8", "model.mixer.name=lru"])
    assert d["model"]["mixer"] == {"name": "lru", "d_state": 8}


def test_same_name_and_top_level_names_keep_their_keys():
    d = {"model": {"name": "sasrec", "d_model": 50, "mixer": {"name": "mamba", "d_state": 32}}}
    apply_overrides(d, ["model.mixer.name=mamba", "model.name=sasrec"])
    assert d["model"] == {"name": "sasrec", "d_model": 50, "mixer": {"name": "mamba", "d_state": 32}}


def test_a_bare_name_choice_takes_field_overrides():
    d = {"model": {"mixer": "lru"}}
    apply_overrides(d, ["model.mixer.d_state=8"])
    assert d["model"]["mixer"] == {"name": "lru", "d_state": 8}


def test_a_field_override_into_a_value_is_one_line():
    with pytest.raises(ConfigError, match="'lr' is not a section"):
        apply_overrides({"optim": {"lr": 1.0}}, ["optim.lr.x=1"])
