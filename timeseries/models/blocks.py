"""Blocks shared by the forecasting models: per-window normalisation and series decomposition."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class WindowNorm(nn.Module):
    """Per-window normalisation, as Time-Series-Library models apply it (RevIN, Kim et al. 2022).

    ``norm(x)``: subtract each window's per-variate mean over time and divide by its
    population std (``sqrt(var + eps)``, eps = 1e-5 guards constant windows);
    ``denorm(y, channels)`` undoes it on the output, using the statistics of the last
    ``channels`` input variates (the targets, which TSLib keeps last). With
    ``affine=True`` a learnable per-variate scale and shift is applied after normalising
    (RevIN's affine option); TSLib's models use the non-affine form.

    ``mode``: ``revin`` (mean and std, above), ``mean`` (subtract the mean only, keep the
    scale) or ``last`` (subtract the window's last value only, as NLinear).
    """

    MODES = ("revin", "mean", "last")

    def __init__(self, n_vars: int, affine: bool = False, eps: float = 1e-5, mode: str = "revin"):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"norm mode {mode!r}: expected one of {list(self.MODES)}")
        self.eps = eps
        self.affine = affine
        self.mode = mode
        if affine:
            self.weight = nn.Parameter(torch.ones(n_vars))
            self.bias = nn.Parameter(torch.zeros(n_vars))
            self.weight._no_weight_decay = True
            self.bias._no_weight_decay = True

    def norm(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        if self.mode == "last":
            mean = x[:, -1:].detach()  # (B, 1, C)
        else:
            mean = x.mean(1, keepdim=True).detach()  # (B, 1, C)
        if self.mode == "revin":
            std = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + self.eps).detach()  # (B, 1, C)
        else:
            std = torch.ones_like(mean)
        z = (x - mean) / std
        if self.affine:
            z = z * self.weight + self.bias
        return z, (mean, std)

    def denorm(self, y: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        mean, std = stats
        c = y.shape[-1]
        if self.affine:
            y = (y - self.bias[-c:]) / (self.weight[-c:] + self.eps * self.eps)
        return y * std[..., -c:] + mean[..., -c:]


class MovingAvgDecomp(nn.Module):
    """Series decomposition (Autoformer/DLinear): trend = moving average with the first and
    last values repeated ``(kernel-1)//2`` times at each end; seasonal = x - trend."""

    def __init__(self, kernel_size: int = 25):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size}: expected an odd positive integer")
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = (self.kernel_size - 1) // 2
        front = x[:, :1].expand(-1, p, -1)  # (B, p, C)
        end = x[:, -1:].expand(-1, p, -1)  # (B, p, C)
        xp = torch.cat([front, x, end], dim=1)  # (B, L + 2p, C)
        trend = F.avg_pool1d(xp.transpose(1, 2), self.kernel_size, stride=1).transpose(1, 2)  # (B, L, C)
        return x - trend, trend
