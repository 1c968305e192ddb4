"""Mixer slots: a domain model's sequence mixer, chosen by name from the core registry.

A model config declares the slot as a field::

    mixer: Optional[MixerConfig] = None   # None: the published model's own mixer

and the recipe or the command line fills it with a registered core (B, L, D) mixer and that
layer's own typed config (``MixerConfig`` is a :class:`ostinato.core.config.Choice`)::

    model: {name: sasrec, mixer: {name: mamba, d_state: 16}}
    ostinato train recsys/sasrec_games model.mixer.name=lru model.mixer.d_state=128

An unknown name lists the valid ones, an unknown key the layer's valid keys. ``d_model`` is
the host's (refused in the section, not saved). The model builds the layer with
:func:`build_mixer`, never by importing a layer class: the slot passes ``d_model``, says
whether it needs causality (a non-causal mixer is then a one-line ConfigError) and projects
the layer's output back to ``d_model`` where it is wider (an RNN's ``d_hidden``).

A core layer declares itself a mixer, and its causality, when it registers:
``@register_model("lru", config=LRUConfig, causal=True)`` (``causal=lambda cfg: ...`` where a
config field decides, e.g. attention's ``causal``, S5's ``bidirectional``).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from .config import MODEL_RANGES, Choice, checked
from .errors import ConfigError
from .registry import Entry, get_model, is_test_variant, list_models


def mixer_entries() -> dict[str, Entry]:
    """The registered (B, L, D) sequence mixers a slot may hold, by name (test variants left out)."""
    return {e.name: e for e in list_models() if e.causal is not None and not is_test_variant(e.name)}


def is_causal(entry: Entry, cfg: Any) -> bool:
    flag = entry.causal
    return bool(flag(cfg)) if callable(flag) else bool(flag)


@dataclasses.dataclass
class MixerConfig(Choice):
    """``model.mixer``: a core sequence mixer by ``name`` plus the fields of its config."""

    host_fields = ("d_model",)
    name_ranges = MODEL_RANGES
    what = "mixer"

    @classmethod
    def options(cls) -> dict[str, type]:
        return {n: e.config for n, e in mixer_entries().items()}


class MixerSlot(nn.Module):
    """The layer in a slot: ``y, state = slot(x, state)`` on (B, L, d_model); ``proj`` maps a wider
    output (d_out) back to d_model (GRU4Rec's dense layer after the GRU)."""

    def __init__(self, layer: nn.Module, d_model: int, name: str):
        super().__init__()
        self.layer, self.name = layer, name
        d_out = int(getattr(layer, "d_out", d_model))
        self.proj = nn.Linear(d_out, d_model) if d_out != d_model else None

    def init_state(self, batch_size: int, device=None, dtype=None):
        return self.layer.init_state(batch_size, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, state=None):
        y, state = self.layer(x, state)  # (B, L, d_out)
        return (self.proj(y) if self.proj is not None else y), state

    def step(self, x_t: torch.Tensor, state=None):
        y, state = self.layer.step(x_t, state)  # (B, d_out)
        return (self.proj(y) if self.proj is not None else y), state


def build_mixer(spec: MixerConfig, d_model: int, causal: bool, where: str = "model.mixer", host: str = "") -> MixerSlot:
    """Build the slot's layer through the registry with the host's ``d_model``; refuse a
    non-causal one where ``causal`` is needed (one-line ConfigError)."""
    entry = get_model(spec.name)
    if entry.causal is None:
        raise ConfigError(f"{where}.name={spec.name!r} is not a sequence mixer; valid names: {', '.join(sorted(mixer_entries()))}")
    cfg = checked(dataclasses.replace(spec.cfg, d_model=d_model), where, MODEL_RANGES)  # a copy: spec is what is saved
    if causal and not is_causal(entry, cfg):
        ok = sorted(n for n, e in mixer_entries().items() if is_causal(e, e.config()))  # with their defaults
        raise ConfigError(f"{where}.name={spec.name!r}: the {host + ' ' if host else ''}slot needs a causal mixer and this one "
                          f"(with these settings) sees the future; causal mixers: {', '.join(ok)}")
    return MixerSlot(entry.builder(cfg), d_model, spec.name)
