"""core.config.variant: a config subclass that only changes defaults."""
import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import pytest

from ostinato.core.config import from_dict, ranged, to_dict, variant
from ostinato.core.errors import ConfigError


@dataclass
class _Base:
    d_model: int = ranged(64, lo=1)
    n_layers: int = 4
    act: Literal["relu", "gelu"] = "relu"
    dims: list[int] = field(default_factory=lambda: [1, 2])

    def validate(self) -> None:
        if self.n_layers > 100:
            raise ConfigError("n_layers: expected at most 100")


_Small = variant(_Base, "_Small", d_model=8, dims=[3, 4, 5])


def test_defaults_changed_others_kept():
    cfg = _Small()
    assert (cfg.d_model, cfg.n_layers, cfg.act, cfg.dims) == (8, 4, "relu", [3, 4, 5])
    assert _Base().d_model == 64  # the base is untouched
    assert [f.name for f in dataclasses.fields(_Small)] == [f.name for f in dataclasses.fields(_Base)]
    assert dataclasses.fields(_Small)[0].metadata == dataclasses.fields(_Base)[0].metadata  # the range is kept


def test_is_a_dataclass_subclass_named_in_the_callers_module():
    assert dataclasses.is_dataclass(_Small) and issubclass(_Small, _Base)
    assert _Small.__name__ == _Small.__qualname__ == "_Small"
    assert _Small.__module__ == __name__
    assert repr(_Small()).startswith("_Small(d_model=8, n_layers=4")
    assert _Small() == _Small() and _Small() != _Base()


def test_mutable_default_is_fresh_per_instance():
    a, b = _Small(), _Small()
    a.dims.append(6)
    assert b.dims == [3, 4, 5] and _Small().dims == [3, 4, 5]


def test_from_dict_checks_types_ranges_and_validate():
    cfg = from_dict(_Small, {"n_layers": 2, "act": "gelu"})
    assert (cfg.d_model, cfg.n_layers, cfg.act) == (8, 2, "gelu")
    assert from_dict(_Small, to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="act"):
        from_dict(_Small, {"act": "tanh"})
    with pytest.raises(ConfigError, match="d_model"):
        from_dict(_Small, {"d_model": 0})
    with pytest.raises(ConfigError, match="n_layers"):
        from_dict(_Small, {"n_layers": 101})


def test_a_variant_of_a_variant():
    tiny = variant(_Small, "_Tiny", n_layers=1)()
    assert (tiny.d_model, tiny.n_layers, tiny.dims) == (8, 1, [3, 4, 5])


def test_unknown_field_names_it():
    with pytest.raises(ConfigError, match="'d_modle'"):
        variant(_Base, "_Typo", d_modle=8)
