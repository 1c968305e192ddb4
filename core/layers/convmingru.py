"""Convolutional minGRU on (B, L, C, H, W): minGRU's recurrence (Feng et al. 2024, "Were RNNs
all we needed?") with its input projection made a k x k convolution, as ConvS5 does for S5.

    [k_t, a_t] = Conv([x_t])                       (B, 2P, H, W), gates from x_t only
    z_t = σ(k_t),  h̃_t = g(a_t)                   g(x) = x + 1/2 (x >= 0), σ(x) (x < 0)
    h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t         output = h_t

No convolution touches h: the state kernel is pointwise (diagonal), so for every (channel,
pixel) the recurrence is the linear scan h_t = A_t h_{t-1} + b_t with A = 1 - z, b = z ⊙ h̃,
solved in parallel over time by ``ostinato.core.scan.scan`` (``scan_method``; "sequential"
is the reference loop). Spatial context enters through the input convolution, and through
depth in a stack (each layer's conv sees its neighbours' states of the layer below).
``g`` keeps h̃ positive as the core minGRU does. Init: PyTorch's default for the conv.
State: h (B, P, H, W); ``residual`` wraps each layer in ``SpatialResidual``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from ..registry import register_variant
from ..scan import scan
from .convgru import ConvGRUConfig
from .convlstm import SpatialResidual, SpatialStack
from .mingru import g


@dataclass
class ConvMinGRUConfig(ConvGRUConfig):
    """ConvGRU's fields (widths, kernel, layers, residual) plus the scan that runs the recurrence."""

    scan_method: Literal["auto", "sequential", "associative", "chunked", "log"] = "auto"
    what: ClassVar[str] = "convmingru"


class ConvMinGRUCell(nn.Module):
    def __init__(self, d_input: int, d_hidden: int, kernel_size: int = 3, bias: bool = True, scan_method: str = "auto"):
        super().__init__()
        self.d_hidden, self.scan_method = d_hidden, scan_method
        self.conv = nn.Conv2d(d_input, 2 * d_hidden, kernel_size, padding=kernel_size // 2, bias=bias)

    def init_state(self, batch_size: int, device=None, dtype=None, size: tuple[int, int] | None = None) -> torch.Tensor:
        if size is None:
            raise ValueError("ConvMinGRU init_state: pass size=(H, W)")
        return torch.zeros(batch_size, self.d_hidden, *size, device=device, dtype=dtype or self.conv.weight.dtype)

    def coeffs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, C, H, W) -> A = 1 - z, b = z ⊙ g(a), each (N, P, H, W)."""
        k, a = self.conv(x).chunk(2, dim=1)
        z = torch.sigmoid(k)
        return 1 - z, z * g(a)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, C, H, W) -> (B, L, P, H, W), final h: one conv over all frames, then the scan."""
        A, b = self.coeffs(x.flatten(0, 1))  # (B L, P, H, W)
        A, b = A.unflatten(0, x.shape[:2]), b.unflatten(0, x.shape[:2])  # (B, L, P, H, W)
        hs = scan(A, b, state, method=self.scan_method)  # (B, L, P, H, W)
        return hs, hs[:, -1]

    def step(self, x_t: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x_t (B, C, H, W) -> h_t (B, P, H, W)."""
        A, b = self.coeffs(x_t)
        h = b if state is None else A * state + b
        return h, h


class ConvMinGRU(SpatialStack):
    """A stack of convolutional minGRU layers (optionally each in ``SpatialResidual``); state = list of h."""

    def __init__(self, cfg: ConvMinGRUConfig):
        layers = []
        for i in range(cfg.n_layers):
            cell = ConvMinGRUCell(cfg.d_input if i == 0 else cfg.d_hidden, cfg.d_hidden, cfg.kernel_size, cfg.bias,
                                  cfg.scan_method)
            layers.append(SpatialResidual(cell, cfg.d_hidden, cfg.dropout, prenorm=cfg.prenorm) if cfg.residual else cell)
        super().__init__(layers)


register_variant("convmingru", ConvMinGRUConfig, ConvMinGRU,
                 "Convolutional minGRU stack on (B, L, C, H, W): gates from a conv of x only, parallel scan.")
