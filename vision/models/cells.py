"""Cell slot of the recurrent video predictors: the spatial recurrence chosen by name.

A spatial cell is a core stack on (B, L, C, H, W) with the core's contract, ``y, state =
stack(x, state)`` and ``y_t, state = stack.step(x_t, state)`` (``SpatialStack``): not a (B, L, D)
sequence mixer, so it has its own small registry here (``CELLS``) and its own
:class:`ostinato.core.config.Choice`, read like ``model.mixer`` is::

    model: {name: convs5_vp, cell: {name: convgru, kernel_size: 5}}
    ostinato train vision/cells_mmnist model.cell.name=convmingru

An unknown name lists the valid ones, an unknown key the cell's valid keys. Widths and depth
are the host's (``d_input``, ``d_hidden`` / ``d_model``, ``n_layers``: refused in the section).
The cells: ``convlstm`` (Shi et al. 2015), ``convs5`` (Smith et al. 2023, parallel scan),
``convgru`` (Ballas et al. 2016), ``convmingru`` (minGRU with conv inputs, parallel scan) and
``convmix`` (a conv, then any causal core sequence mixer over time at every pixel, e.g.
``{name: convmix, mixer: {name: lru}}``: a convolutional LRU; ``convmix.py``); all have a step
mode. ``cell`` left empty: the host's own published stack, unchanged.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
from torch import nn

from ostinato.core.config import MODEL_RANGES, Choice, checked
from ostinato.core.registry import get_model
import ostinato.core.layers  # noqa: F401  (registers the core spatial stacks)

from .convmix import ConvMix, ConvMixConfig

CORE_CELLS = ("convgru", "convlstm", "convmingru", "convs5")  # registered core spatial stacks


def cells() -> dict[str, tuple[type, Callable[[Any], nn.Module]]]:
    """{name: (config class, builder)}: the core stacks and ``convmix`` (any causal core mixer)."""
    out = {n: (get_model(n).config, get_model(n).builder) for n in CORE_CELLS}
    out["convmix"] = (ConvMixConfig, ConvMix)
    return out


@dataclasses.dataclass
class CellConfig(Choice):
    """``model.cell``: a core spatial recurrence by ``name`` plus the fields of its config."""

    host_fields = ("d_input", "d_hidden", "d_model", "n_layers")
    name_ranges = MODEL_RANGES
    what = "spatial cell"

    @classmethod
    def options(cls) -> dict[str, type]:
        return {n: _host_checked(c) for n, (c, _) in cells().items()}


_HOST_CHECKED: dict[type, type] = {}


def _host_checked(base: type) -> type:
    """``base`` whose ``validate`` waits for the host: read from a section, the config still holds
    the default widths (d_input=1, ...), so checks that involve them (residual needs d_input ==
    d_hidden, num_groups divides d_model) run in :func:`build_cell` once the host has set them."""
    if base not in _HOST_CHECKED:
        _HOST_CHECKED[base] = type(base.__name__, (base,), {"validate": lambda self: None, "__module__": base.__module__})
    return _HOST_CHECKED[base]


class CellSlot(nn.Module):
    """The stack in a slot on (B, L, C_in, H, W) -> (B, L, width, H, W); ``in_proj`` (1x1 conv)
    maps C_in to the width where the cell needs its input at that width (ConvS5's d_model, or a
    residual stack's skip)."""

    def __init__(self, stack: nn.Module, in_proj: nn.Module | None, name: str):
        super().__init__()
        self.stack, self.in_proj, self.name = stack, in_proj, name

    def forward(self, x: torch.Tensor, state=None):
        if self.in_proj is not None:
            x = self.in_proj(x.flatten(0, 1)).unflatten(0, x.shape[:2])  # (B, L, width, H, W)
        return self.stack(x, state)

    def step(self, x_t: torch.Tensor, state=None):
        """x_t (B, C_in, H, W) -> (B, width, H, W)."""
        if self.in_proj is not None:
            x_t = self.in_proj(x_t)
        return self.stack.step(x_t, state)


def build_cell(spec: CellConfig, d_input: int, width: int, n_layers: int, where: str = "model.cell") -> CellSlot:
    """Build the slot's stack through the registry with the host's widths and depth."""
    fields = {f.name for f in dataclasses.fields(spec.cfg)}
    # a 1x1 conv to the width first where the cell's input must have it: ConvS5 (in = out =
    # d_model) and residual stacks (the skip adds the input)
    needs_proj = d_input != width and ("d_input" not in fields or getattr(spec.cfg, "residual", False))
    host = {"d_input": width if needs_proj else d_input, "d_hidden": width, "d_model": width, "n_layers": n_layers}
    cfg = checked(dataclasses.replace(spec.cfg, **{k: v for k, v in host.items() if k in fields}), where, MODEL_RANGES)
    check = getattr(cells()[spec.name][0], "validate", None)  # the cell's own checks, with the host's widths
    if check is not None:
        check(cfg)
    in_proj = nn.Conv2d(d_input, width, 1) if needs_proj else None
    return CellSlot(cells()[spec.name][1](cfg), in_proj, spec.name)
