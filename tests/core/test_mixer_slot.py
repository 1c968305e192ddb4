"""The core side of mixer slots: the registry's causality flags agree with the layer-contract
cases, ``MixerConfig`` is a name-keyed sub-config with one-line errors, and ``build_mixer``
passes d_model, refuses a non-causal layer and projects a wider output back."""
import pytest
import torch

from ostinato.core.config import from_dict
from ostinato.core.errors import ConfigError
from ostinato.core.mixer import MixerConfig, build_mixer, is_causal, mixer_entries
from ostinato.core.registry import get_model

from .test_layer_contract import CASES, NOT_HERE


def test_every_contract_mixer_declares_its_causality():
    names = {c.name for c in CASES}
    assert set(mixer_entries()) == names  # the slot holds exactly the (B, L, D) mixers of the contract test
    for c in CASES:
        e = get_model(c.name)
        assert is_causal(e, from_dict(e.config, dict(c.kw))) == c.causal, c.name
    assert all(get_model(n).causal is None for n in NOT_HERE)
    assert not is_causal(get_model("s5"), from_dict(get_model("s5").config, {"bidirectional": True}))
    assert not is_causal(get_model("causal_attention"), from_dict(get_model("causal_attention").config, {"causal": False}))


def test_mixer_config_parses_by_name():
    m = MixerConfig.parse({"name": "lru", "d_state": 8}, "model.mixer")
    assert m.cfg == from_dict(get_model("lru").config, {"d_state": 8}) and m.to_dict()["d_state"] == 8
    assert "d_model" not in m.to_dict() and MixerConfig.parse(m.to_dict(), "x") == m
    assert MixerConfig.parse("gru", "model.mixer").name == "gru"
    for bad, msg in (({"name": "x"}, "valid names: "), ({"d_state": 3}, "'model.mixer.name' is required"),
                     ({"name": "lru", "foo": 1}, "valid keys for lru: name, d_state"),
                     ({"name": "lru", "d_model": 4}, "set by the host"), ({"name": "lru", "d_state": 0}, "model.mixer.d_state=0"),
                     (3, "expected a mapping")):
        with pytest.raises(ConfigError, match=msg) as e:
            MixerConfig.parse(bad, "model.mixer")
        assert "\n" not in str(e.value)


def test_build_mixer_passes_d_model_and_refuses_the_future():
    spec = MixerConfig.parse({"name": "gru", "d_hidden": 10}, "model.mixer")
    slot = build_mixer(spec, 6, causal=True)
    assert spec.cfg.d_model != 6  # the spec (what is saved) is left as it was
    y, st = slot(torch.randn(2, 5, 6))
    y_t, _ = slot.step(torch.randn(2, 6), slot.init_state(2))
    assert y.shape == (2, 5, 6) and y_t.shape == (2, 6) and slot.proj is not None
    bi = MixerConfig.parse({"name": "s5", "d_state": 4, "bidirectional": True}, "model.mixer")
    with pytest.raises(ConfigError, match="needs a causal mixer"):
        build_mixer(bi, 6, causal=True)
    assert build_mixer(bi, 6, causal=False)(torch.randn(1, 4, 6))[0].shape == (1, 4, 6)
