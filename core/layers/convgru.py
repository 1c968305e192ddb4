"""ConvGRU (Ballas et al., ICLR 2016, arXiv 1511.06432) on (B, L, C, H, W).

Cell (∗ = k x k convolution, 'same' padding; one conv over [x_t, h_{t-1}] for both gates,
the same linear map as the paper's separate W∗x + U∗h):

    [z, r] = σ(Conv_zr([x_t, h_{t-1}]))             (B, 2P, H, W)
    h̃_t   = tanh(Conv_h([x_t, r ⊙ h_{t-1}]))        (B, P, H, W)
    h_t    = (1 - z) ⊙ h_{t-1} + z ⊙ h̃_t            output = h_t

The reset gate acts on h inside a convolution, so the cell is nonlinear in h and has no
parallel form: the loop over time is the implementation (``forward`` = ``step`` repeated).
Init: PyTorch's default for both convolutions (the paper gives none). State: h (B, P, H, W);
a stack keeps a list, one per layer, and ``residual`` wraps each layer in ``SpatialResidual``
(skip, dropout, LayerNorm over channels) as the ConvS5 layers are.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import register_variant
from .convlstm import SpatialResidual, SpatialStack


@dataclass
class ConvGRUConfig:
    d_input: int = 1  # C, channels of the input frames
    d_hidden: int = 64  # P, channels of h
    kernel_size: int = 3
    n_layers: int = 1
    bias: bool = True
    residual: bool = False  # wrap each layer in SpatialResidual (needs d_input == d_hidden)
    dropout: float = 0.0  # SpatialResidual dropout
    prenorm: bool = False
    what: ClassVar[str] = "convgru"  # the layer's name in messages (ConvMinGRUConfig shares these fields)

    def validate(self) -> None:
        if min(self.d_input, self.d_hidden, self.kernel_size, self.n_layers) < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"{self.what}: expected positive sizes and an odd kernel_size; got {self}")
        if self.residual and self.d_input != self.d_hidden:
            raise ConfigError(f"{self.what}: residual=true needs d_input == d_hidden, got {self.d_input} and {self.d_hidden}")


class ConvGRUCell(nn.Module):
    def __init__(self, d_input: int, d_hidden: int, kernel_size: int = 3, bias: bool = True):
        super().__init__()
        self.d_hidden = d_hidden
        pad = kernel_size // 2
        self.conv_zr = nn.Conv2d(d_input + d_hidden, 2 * d_hidden, kernel_size, padding=pad, bias=bias)
        self.conv_h = nn.Conv2d(d_input + d_hidden, d_hidden, kernel_size, padding=pad, bias=bias)

    def init_state(self, batch_size: int, device=None, dtype=None, size: tuple[int, int] | None = None) -> torch.Tensor:
        if size is None:
            raise ValueError("ConvGRU init_state: pass size=(H, W)")
        return torch.zeros(batch_size, self.d_hidden, *size, device=device, dtype=dtype or self.conv_h.weight.dtype)

    def step(self, x_t: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x_t (B, C, H, W) -> h_t (B, P, H, W)."""
        h = self.init_state(x_t.shape[0], x_t.device, x_t.dtype, tuple(x_t.shape[-2:])) if state is None else state
        z, r = torch.sigmoid(self.conv_zr(torch.cat([x_t, h], dim=1))).chunk(2, dim=1)  # 2 x (B, P, H, W)
        cand = torch.tanh(self.conv_h(torch.cat([x_t, r * h], dim=1)))  # (B, P, H, W)
        h = (1 - z) * h + z * cand
        return h, h

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, C, H, W) -> (B, L, P, H, W), final h."""
        hs = []
        for t in range(x.shape[1]):
            h, state = self.step(x[:, t], state)
            hs.append(h)
        return torch.stack(hs, dim=1), state


class ConvGRU(SpatialStack):
    """A stack of ConvGRU layers (optionally each in ``SpatialResidual``); state = list of h."""

    def __init__(self, cfg: ConvGRUConfig):
        layers = []
        for i in range(cfg.n_layers):
            cell = ConvGRUCell(cfg.d_input if i == 0 else cfg.d_hidden, cfg.d_hidden, cfg.kernel_size, cfg.bias)
            layers.append(SpatialResidual(cell, cfg.d_hidden, cfg.dropout, prenorm=cfg.prenorm) if cfg.residual else cell)
        super().__init__(layers)


register_variant("convgru", ConvGRUConfig, ConvGRU,
                 "ConvGRU stack on (B, L, C, H, W) (Ballas et al. 2016): conv update/reset gates, sequential.")
