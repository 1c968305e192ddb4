"""ConvLSTM (Shi et al., 2015) on (B, L, C, H, W), and the residual wrapper of spatial layers.

Cell (one convolution over [x_t, h_{t-1}] for all four gates, gate order i, f, o, g as in
the ConvSSM baseline ``apply_convLSTM``):

    [i, f, o, g] = Conv_k([x_t, h_{t-1}])          (B, 4P, H, W), 'same' padding
    c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g)
    h_t = σ(o) ⊙ tanh(c_t)                           output = h_t

Init: ``"xavier"`` with forget-gate bias 1 is FluidWorld's ConvLSTM; ``"he"`` without bias
is the ConvSSM baseline (He-normal over fan_in = (C + P) k²); ``"torch"`` keeps PyTorch's
default. State: ``(h, c)``, each (B, P, H, W); a stack keeps a list, one per layer.
There is no parallel form (the cell is nonlinear): the loop is the implementation.

``SpatialResidual`` is the ConvSSM ``SequenceLayer``: optional pre-norm, the mixer, dropout
(one mask per sample and channel/pixel, shared over time), the skip connection, then
LayerNorm over channels at every pixel (post-norm, eps 1e-6 as in flax).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import register_variant

LSTMState = tuple[torch.Tensor, torch.Tensor]  # h, c: (B, P, H, W)


@dataclass
class ConvLSTMConfig:
    d_input: int = 1  # C, channels of the input frames
    d_hidden: int = 64  # P, channels of h and c
    kernel_size: int = 3
    n_layers: int = 1
    bias: bool = True
    forget_bias: float = 1.0  # added to the forget-gate bias at init (needs bias)
    init: Literal["xavier", "he", "torch"] = "xavier"
    residual: bool = False  # wrap each layer in SpatialResidual (needs d_input == d_hidden)
    dropout: float = 0.0  # SpatialResidual dropout
    prenorm: bool = False

    def validate(self) -> None:
        if min(self.d_input, self.d_hidden, self.kernel_size, self.n_layers) < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"convlstm: expected positive sizes and an odd kernel_size; got {self}")
        if self.residual and self.d_input != self.d_hidden:
            raise ConfigError(f"convlstm: residual=true needs d_input == d_hidden, got {self.d_input} and {self.d_hidden}")


def channel_layernorm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm over C at every pixel of x (..., C, H, W)."""
    return norm(x.movedim(-3, -1)).movedim(-1, -3)


def _trunc_scaled_(w: torch.Tensor, scale: float, fan_in: int | None) -> torch.Tensor:
    """JAX ``variance_scaling(scale, "fan_in", "truncated_normal")``: truncated normal on [-2σ, 2σ]."""
    fan_in = fan_in or w[0].numel()
    std = (scale / fan_in) ** 0.5 / 0.87962566103423978  # the truncation's variance correction
    with torch.no_grad():
        return nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std)


def he_normal_(w: torch.Tensor, fan_in: int | None = None) -> torch.Tensor:
    """JAX ``he_normal``: truncated normal with variance 2 / fan_in."""
    return _trunc_scaled_(w, 2.0, fan_in)


def lecun_normal_(w: torch.Tensor, fan_in: int | None = None) -> torch.Tensor:
    """JAX/flax ``lecun_normal`` (flax's default kernel init): truncated normal with variance 1 / fan_in."""
    return _trunc_scaled_(w, 1.0, fan_in)


class ConvLSTMCell(nn.Module):
    def __init__(self, d_input: int, d_hidden: int, kernel_size: int = 3, bias: bool = True,
                 forget_bias: float = 1.0, init: str = "xavier"):
        super().__init__()
        self.d_hidden = d_hidden
        self.conv = nn.Conv2d(d_input + d_hidden, 4 * d_hidden, kernel_size, padding=kernel_size // 2, bias=bias)
        if init == "xavier":
            nn.init.xavier_uniform_(self.conv.weight)
        elif init == "he":
            he_normal_(self.conv.weight)
        elif init != "torch":
            raise ConfigError(f"convlstm init={init!r}: expected xavier, he or torch")
        if bias:
            with torch.no_grad():
                if init != "torch":
                    self.conv.bias.zero_()
                self.conv.bias[d_hidden : 2 * d_hidden] += forget_bias

    def init_state(self, batch_size: int, device=None, dtype=None, size: tuple[int, int] | None = None) -> LSTMState:
        if size is None:
            raise ValueError("ConvLSTM init_state: pass size=(H, W)")
        z = torch.zeros(batch_size, self.d_hidden, *size, device=device, dtype=dtype or self.conv.weight.dtype)
        return z, z.clone()

    def step(self, x_t: torch.Tensor, state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        """x_t (B, C, H, W) -> h_t (B, P, H, W)."""
        if state is None:
            state = self.init_state(x_t.shape[0], x_t.device, x_t.dtype, tuple(x_t.shape[-2:]))
        h, c = state
        i, f, o, g = self.conv(torch.cat([x_t, h], dim=1)).chunk(4, dim=1)  # 4 x (B, P, H, W)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)

    def forward(self, x: torch.Tensor, state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        """x (B, L, C, H, W) -> (B, L, P, H, W)."""
        if state is None:
            state = self.init_state(x.shape[0], x.device, x.dtype, tuple(x.shape[-2:]))
        hs = []
        for t in range(x.shape[1]):
            h, state = self.step(x[:, t], state)
            hs.append(h)
        return torch.stack(hs, dim=1), state  # (B, L, P, H, W)


class SpatialResidual(nn.Module):
    """ConvSSM ``SequenceLayer``: [pre-norm] -> mixer -> dropout -> + skip -> [post LayerNorm]."""

    def __init__(self, mixer: nn.Module, dim: int, dropout: float = 0.0, use_norm: bool = True,
                 prenorm: bool = False, skip: bool = True, norm_eps: float = 1e-6):
        super().__init__()
        self.mixer, self.p, self.prenorm, self.skip = mixer, dropout, prenorm, skip
        self.norm = nn.LayerNorm(dim, eps=norm_eps) if use_norm else None

    def init_state(self, batch_size: int, device=None, dtype=None, size=None) -> Any:
        return self.mixer.init_state(batch_size, device, dtype, size=size)

    def _drop(self, y: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return y
        keep = torch.rand(y.shape[0], 1, *y.shape[2:], device=y.device) >= self.p  # (B, 1, C, H, W): shared over time
        return y * keep.to(y.dtype) / (1.0 - self.p)

    def forward(self, x: torch.Tensor, state=None):
        u = channel_layernorm(self.norm, x) if (self.norm is not None and self.prenorm) else x
        y, state = self.mixer(u, state)
        y = self._drop(y) + (x if self.skip else 0.0)
        if self.norm is not None and not self.prenorm:
            y = channel_layernorm(self.norm, y)
        return y, state

    def step(self, x_t: torch.Tensor, state):
        y, state = self(x_t[:, None], state)  # (B, 1, C, H, W)
        return y[:, 0], state


class SpatialStack(nn.Module):
    """Spatial recurrences applied in turn on (B, L, C, H, W); the state is one entry per layer.

    The container of both the ConvLSTM and the ConvS5 stacks (``layers`` keeps the checkpoint keys)."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def init_state(self, batch_size: int, device=None, dtype=None, size: tuple[int, int] | None = None) -> list:
        return [m.init_state(batch_size, device, dtype, size=size) for m in self.layers]

    def forward(self, x: torch.Tensor, state: list | None = None):
        new = []
        for i, m in enumerate(self.layers):
            x, s = m(x, None if state is None else state[i])  # (B, L, C_i, H, W)
            new.append(s)
        return x, new

    def step(self, x_t: torch.Tensor, state: list | None = None):
        """x_t (B, C, H, W) -> (B, P, H, W)."""
        y, state = self(x_t[:, None], state)  # (B, 1, P, H, W)
        return y[:, 0], state


class ConvLSTM(SpatialStack):
    """A stack of ConvLSTM layers (optionally each in ``SpatialResidual``); state = list of (h, c)."""

    def __init__(self, cfg: ConvLSTMConfig):
        layers = []
        for i in range(cfg.n_layers):
            cell = ConvLSTMCell(cfg.d_input if i == 0 else cfg.d_hidden, cfg.d_hidden, cfg.kernel_size,
                                cfg.bias, cfg.forget_bias, cfg.init)
            layers.append(SpatialResidual(cell, cfg.d_hidden, cfg.dropout, prenorm=cfg.prenorm) if cfg.residual else cell)
        super().__init__(layers)


register_variant("convlstm", ConvLSTMConfig, ConvLSTM,
                 "ConvLSTM stack on (B, L, C, H, W): one conv over [x, h] for the 4 gates, forget bias.")
