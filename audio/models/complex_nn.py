"""Complex-valued layers of FRCRN, written as real-valued operations.

A complex tensor is a real tensor with re/im on a *leading* axis: ``(2, B, C, F, T)``
(``x[0]`` real, ``x[1]`` imaginary). Stacking re and im along the batch then costs no copy,
so each complex convolution is two real convolutions on a batch of 2B:

    W * x = (W_r * x_r - W_i * x_i) + i (W_r * x_i + W_i * x_r)

with ``W_r``/``W_i`` two real ``nn.Conv2d`` (each with its own bias, as in the released
``ComplexConv2d``, so the effective bias is ``b_r - b_i`` on the real part and ``b_r + b_i``
on the imaginary part). ``ComplexBatchNorm2d`` normalises re and im with two separate
``nn.BatchNorm2d`` (the released code's choice, not a whitening complex BN).

The complex FSMN itself is the core's (``ostinato.core.layers.fsmn.ComplexFSMN``);
``FreqFSMN`` and ``TimeFSMN`` only move axes so that it runs along frequency or along time.
"""
from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn


def cmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Complex product of two (2, ...) tensors: (a_r b_r - a_i b_i, a_r b_i + a_i b_r)."""
    return torch.stack([a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]])  # (2, ...)


def _apply_pair(f_re: nn.Module, f_im: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(f_re + i f_im) applied to complex x, with f_re/f_im real maps acting on a batch."""
    two, b = x.shape[0], x.shape[1]
    flat = x.reshape(two * b, *x.shape[2:])  # (2B, ...)
    a = f_re(flat)
    c = f_im(flat)
    a = a.reshape(2, b, *a.shape[1:])  # (2, B, ...) = [f_re(x_r), f_re(x_i)]
    c = c.reshape(2, b, *c.shape[1:])  # (2, B, ...) = [f_im(x_r), f_im(x_i)]
    return torch.stack([a[0] - c[1], a[1] + c[0]])  # (2, B, ...)


class ComplexConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True):
        super().__init__()
        self.conv_re = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
        self.conv_im = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (2, B, C, F, T) -> (2, B, C', F', T')."""
        return _apply_pair(self.conv_re, self.conv_im, x)


class ComplexConvTranspose2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True):
        super().__init__()
        self.tconv_re = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
        self.tconv_im = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (2, B, C, F, T) -> (2, B, C', F', T')."""
        return _apply_pair(self.tconv_re, self.tconv_im, x)


class ComplexBatchNorm2d(nn.Module):
    """Separate BatchNorm2d on the real and on the imaginary part."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.bn_re = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum)
        self.bn_im = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.bn_re(x[0]), self.bn_im(x[1])])  # (2, B, C, F, T)


class ComplexSE(nn.Module):
    """Complex squeeze-and-excitation on skip connections (released ``SELayer``, reduction 8).

    Pool re and im to (B, C); g = fc_r + i fc_i applied to the pooled complex vector (each fc:
    Linear-ReLU-Linear-Sigmoid); the output scales the real part by Re g and the imaginary
    part by Im g (an element-wise product, as the released code does, not a complex product).

    pool: ``global`` averages over frequency and all time (non-causal, released);
    ``cumulative`` averages over frequency and frames 0..t (causal; streaming carries the
    running sum and count); ``none`` is the identity (no SE).
    """

    def __init__(self, channels: int, reduction: int = 8, pool: Literal["global", "cumulative", "none"] = "global"):
        super().__init__()
        self.pool = pool
        if pool == "none":
            return
        hidden = max(1, channels // reduction)

        def fc() -> nn.Sequential:
            return nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())

        self.fc_r, self.fc_i = fc(), fc()

    def forward(self, x: torch.Tensor, cache: tuple[torch.Tensor, int] | None = None):
        """x (2, B, C, F, T) -> (y, cache); cache = (running sum (2, B, C), frames seen)."""
        if self.pool == "none":
            return x, None
        if self.pool == "global":
            z = x.mean(dim=(3, 4))  # (2, B, C)
            g = _apply_pair(self.fc_r, self.fc_i, z)  # (2, B, C)
            return x * g[..., None, None], None
        per_frame = x.mean(dim=3)  # (2, B, C, T)
        total, seen = cache if cache is not None else (torch.zeros_like(per_frame[..., 0]), 0)
        csum = total[..., None] + per_frame.cumsum(dim=-1)  # (2, B, C, T)
        count = seen + torch.arange(1, x.shape[-1] + 1, dtype=x.dtype, device=x.device)  # (T,)
        z = (csum / count).permute(0, 1, 3, 2)  # (2, B, T, C)
        g = _apply_pair(self.fc_r, self.fc_i, z).permute(0, 1, 3, 2)  # (2, B, C, T)
        return x * g[:, :, :, None, :], (csum[..., -1], seen + x.shape[-1])


class FreqFSMN(nn.Module):
    """Complex FSMN along the frequency axis (frequency recurrence): every frame is a
    sequence over F with the C channels as features. No time memory, so no state.

    ``cfsmn()`` builds the core's complex FSMN (``ostinato.core.layers.fsmn.ComplexFSMN``,
    one layer: released ``ComplexUniDeepFsmn_L1``) on (N, L, D, 2) with re/im last.
    """

    def __init__(self, cfsmn: Callable[[], nn.Module]):
        super().__init__()
        self.cfsmn = cfsmn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        two, b, c, f, t = x.shape
        seq = x.permute(1, 4, 3, 2, 0).reshape(b * t, f, c, two)  # (B*T, F, C, 2)
        y, _ = self.cfsmn(seq)
        return y.reshape(b, t, f, c, two).permute(4, 0, 3, 2, 1)  # (2, B, C, F, T)


class TimeFSMN(nn.Module):
    """Complex FSMN along time at the bottleneck (released ``ComplexUniDeepFsmn``: two
    stacked complex layers), features C * F; the state is the core layer's (left context
    only: the last lorder - 1 projected frames of each real FSMN)."""

    def __init__(self, cfsmn: Callable[[], nn.Module]):
        super().__init__()
        self.cfsmn = cfsmn()

    def forward(self, x: torch.Tensor, state=None):
        two, b, c, f, t = x.shape
        seq = x.reshape(two, b, c * f, t).permute(1, 3, 2, 0)  # (B, T, C*F, 2)
        y, state = self.cfsmn(seq, state)
        return y.permute(3, 0, 2, 1).reshape(two, b, c, f, t), state  # (2, B, C, F, T)
