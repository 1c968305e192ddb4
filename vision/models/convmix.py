"""``convmix``: a spatial recurrence from any causal core sequence mixer, a conv in front of it.

Per layer, on x (B, L, C, H, W):

    u_t = Conv_k(x_t)                                   (B, P, H, W), 'same' padding
    y   = Mixer over time at every pixel of u           (B H W, L, P) -> (B, L, P, H, W)

The mixer is a registered core (B, L, D) mixer in a slot (``ostinato.core.mixer``, built with
d_model = P and causality required), shared by all pixels: the state kernel is pointwise in
space, as ConvS5's is, and space enters through the convolution (and depth). With ``lru`` this
is a convolutional LRU, with ``mingru`` a convolutional minGRU (the core ``convmingru`` stack
is the same model with g applied inside the conv, minGRU's own layout), with ``s5`` a ConvS5
without the C/D convolutions. Training runs the mixer's parallel form over L; step mode (the
core ``SpatialStack.step``) runs it on one frame with the carried state, which the core
contract makes equal to the mixer's ``step``. ``residual`` wraps each layer in the core ``SpatialResidual``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ostinato.core.errors import ConfigError
from ostinato.core.layers.convlstm import SpatialResidual, SpatialStack
from ostinato.core.mixer import MixerConfig, build_mixer, mixer_entries


@dataclass
class ConvMixConfig:
    d_input: int = 1  # C, channels of the input frames
    d_hidden: int = 64  # P, the conv's output channels = the mixer's d_model
    kernel_size: int = 3
    n_layers: int = 1
    residual: bool = False  # wrap each layer in SpatialResidual (needs d_input == d_hidden)
    dropout: float = 0.0  # SpatialResidual dropout
    prenorm: bool = False
    mixer: Optional[MixerConfig] = None  # the core mixer, e.g. {name: lru}; required

    def validate(self) -> None:
        if self.mixer is None:
            raise ConfigError("model.cell.mixer: convmix needs a core mixer, e.g. model.cell.mixer.name=lru; "
                              f"valid names: {', '.join(sorted(mixer_entries()))}")
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"model.cell.kernel_size={self.kernel_size}: expected an odd size ('same' padding)")
        if self.residual and self.d_input != self.d_hidden:
            raise ConfigError(f"convmix: residual=true needs d_input == d_hidden, got {self.d_input} and {self.d_hidden}")


class ConvMixLayer(nn.Module):
    def __init__(self, d_input: int, d_hidden: int, kernel_size: int, mixer: MixerConfig):
        super().__init__()
        self.conv = nn.Conv2d(d_input, d_hidden, kernel_size, padding=kernel_size // 2)
        self.mixer = build_mixer(mixer, d_hidden, causal=True, where="model.cell.mixer", host="video cell")

    def init_state(self, batch_size: int, device=None, dtype=None, size: tuple[int, int] | None = None):
        if size is None:
            raise ValueError("convmix init_state: pass size=(H, W)")
        return self.mixer.init_state(batch_size * size[0] * size[1], device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, state=None):
        """x (B, L, C, H, W) -> (B, L, P, H, W), the mixer's state for the B H W pixel sequences."""
        B, L, _, H, W = x.shape
        u = self.conv(x.flatten(0, 1)).unflatten(0, (B, L))  # (B, L, P, H, W)
        seq = u.permute(0, 3, 4, 1, 2).reshape(B * H * W, L, -1)  # (B H W, L, P)
        y, state = self.mixer(seq, state)
        return y.reshape(B, H, W, L, -1).permute(0, 3, 4, 1, 2), state  # (B, L, P, H, W)


class ConvMix(SpatialStack):
    """``n_layers`` ConvMix layers (optionally each in ``SpatialResidual``); state = list, one per layer."""

    def __init__(self, cfg: ConvMixConfig):
        cfg.validate()
        layers = []
        for i in range(cfg.n_layers):
            layer = ConvMixLayer(cfg.d_input if i == 0 else cfg.d_hidden, cfg.d_hidden, cfg.kernel_size, cfg.mixer)
            layers.append(SpatialResidual(layer, cfg.d_hidden, cfg.dropout, prenorm=cfg.prenorm) if cfg.residual else layer)
        super().__init__(layers)
