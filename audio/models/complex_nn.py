"""Complex-valued layers of FRCRN, written as real-valued operations.

A complex tensor with C complex channels is a real tensor ``(B, 2C, F, T)`` whose first C
channels are the real parts and last C the imaginary parts. A complex convolution
W = W_r + i W_i (two real ``nn.Conv2d``, each with its own bias, as the released
``ComplexConv2d``) is then ONE real convolution with the block weight

    [y_r]   [W_r  -W_i] [x_r]            bias: [b_r - b_i]
    [y_i] = [W_i   W_r] [x_i]                  [b_r + b_i]

i.e. y_r = W_r * x_r - W_i * x_i and y_i = W_r * x_i + W_i * x_r, computed in a single call
(same multiply-adds as four real convolutions, a quarter of the calls). The parameters stay
two real modules named as in the released code (``conv_re``/``conv_im``,
``tconv_re``/``tconv_im``, ``bn_re``/``bn_im``), so released weights load unchanged.
``ComplexBatchNorm2d`` normalises re and im with separate statistics (the released
choice, not a whitening complex BN).

The complex FSMN itself is the core's (``ostinato.core.layers.fsmn.ComplexFSMN``, re/im on a
last axis of size 2); ``FreqFSMN`` and ``TimeFSMN`` only move axes so that it runs along
frequency or along time.
"""
from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn


def cmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Complex product of two (B, 2C, ...) tensors: (a_r b_r - a_i b_i, a_r b_i + a_i b_r)."""
    ar, ai = a.chunk(2, dim=1)
    br, bi = b.chunk(2, dim=1)
    return torch.cat([ar * br - ai * bi, ar * bi + ai * br], dim=1)  # (B, 2C, ...)


def ccat(xs: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate complex tensors along channels: [re of all; im of all]."""
    parts = [x.chunk(2, dim=1) for x in xs]
    return torch.cat([p[0] for p in parts] + [p[1] for p in parts], dim=1)  # (B, 2(C1+C2+...), ...)


class _InferenceCache:
    """Derived tensors (block weights, concatenated BN statistics) rebuilt only when a source
    tensor changed: used when no gradient is needed (inference, streaming); training always
    rebuilds them so that autograd sees the parameters."""

    def __init__(self):
        self.key, self.value = None, None

    def get(self, sources: list[torch.Tensor], build: Callable[[], tuple]) -> tuple:
        if torch.is_grad_enabled():
            return build()
        key = tuple((t._version, t.data_ptr(), t.dtype, t.device) for t in sources)
        if key != self.key:
            self.key, self.value = key, build()
        return self.value


def _pair(f_re: Callable, f_im: Callable, z: torch.Tensor) -> torch.Tensor:
    """(f_re + i f_im) applied to (B, 2C) as a complex vector (f real maps on (N, C))."""
    zr, zi = z.chunk(2, dim=1)
    both = torch.cat([zr, zi], dim=0)  # (2B, C)
    a, c = f_re(both), f_im(both)  # [f_re(z_r); f_re(z_i)], [f_im(z_r); f_im(z_i)]
    b = zr.shape[0]
    return torch.cat([a[:b] - c[b:], a[b:] + c[:b]], dim=1)  # (B, 2C')


def _complex_bias(re: nn.Module, im: nn.Module) -> torch.Tensor | None:
    """The bias of (re + i im) on [real; imag] output channels, (2C',); None when the convs have none."""
    if re.bias is None:
        return None
    return torch.cat([re.bias - im.bias, re.bias + im.bias])  # (2C',)


class ComplexConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True):
        super().__init__()
        self.conv_re = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
        self.conv_im = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
        self._cache = _InferenceCache()

    def _block(self) -> tuple:
        wr, wi = self.conv_re.weight, self.conv_im.weight  # (C', C, kf, kt)
        w = torch.cat([torch.cat([wr, -wi], dim=1), torch.cat([wi, wr], dim=1)], dim=0)  # (2C', 2C, kf, kt)
        return w, _complex_bias(self.conv_re, self.conv_im)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 2C, F, T) -> (B, 2C', F', T')."""
        w, b = self._cache.get([p for p in self.parameters()], self._block)
        c = self.conv_re
        return F.conv2d(x, w, b, c.stride, c.padding)


class ComplexConvTranspose2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True):
        super().__init__()
        self.tconv_re = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
        self.tconv_im = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
        self._cache = _InferenceCache()

    def _block(self) -> tuple:
        wr, wi = self.tconv_re.weight, self.tconv_im.weight  # (C, C', kf, kt): input channels first
        w = torch.cat([torch.cat([wr, wi], dim=1), torch.cat([-wi, wr], dim=1)], dim=0)  # (2C, 2C', kf, kt)
        return w, _complex_bias(self.tconv_re, self.tconv_im)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 2C, F, T) -> (B, 2C', F', T')."""
        w, b = self._cache.get([p for p in self.parameters()], self._block)
        c = self.tconv_re
        return F.conv_transpose2d(x, w, b, c.stride, c.padding)


class ComplexBatchNorm2d(nn.Module):
    """Separate BatchNorm2d on the real and on the imaginary part."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.bn_re = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum)
        self.bn_im = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum)
        self._cache = _InferenceCache()

    def _stats(self) -> tuple:
        r, i = self.bn_re, self.bn_im
        return tuple(torch.cat([getattr(r, k), getattr(i, k)]) for k in ("running_mean", "running_var", "weight", "bias"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:  # running statistics are updated in each module's own buffers
            xr, xi = x.chunk(2, dim=1)
            return torch.cat([self.bn_re(xr), self.bn_im(xi)], dim=1)  # (B, 2C, F, T)
        r, i = self.bn_re, self.bn_im
        mean, var, w, b = self._cache.get(
            [r.running_mean, i.running_mean, r.running_var, i.running_var, r.weight, i.weight, r.bias, i.bias], self._stats
        )
        return F.batch_norm(x, mean, var, w, b, False, 0.0, r.eps)  # (B, 2C, F, T): per-channel, one call equals two


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
        """x (B, 2C, F, T) -> (y, cache); cache = (running sum (B, 2C), frames seen)."""
        if self.pool == "none":
            return x, None
        if self.pool == "global":
            g = _pair(self.fc_r, self.fc_i, x.mean(dim=(2, 3)))  # (B, 2C)
            return x * g[:, :, None, None], None
        per_frame = x.mean(dim=2)  # (B, 2C, T)
        total, seen = cache if cache is not None else (torch.zeros_like(per_frame[..., 0]), 0)
        csum = total[..., None] + per_frame.cumsum(dim=-1)  # (B, 2C, T)
        count = seen + torch.arange(1, x.shape[-1] + 1, dtype=x.dtype, device=x.device)  # (T,)
        b, c2, t = csum.shape
        z = (csum / count).transpose(1, 2).reshape(b * t, c2)  # (B*T, 2C)
        g = _pair(self.fc_r, self.fc_i, z).reshape(b, t, c2).transpose(1, 2)  # (B, 2C, T)
        return x * g[:, :, None, :], (csum[..., -1], seen + t)


class FreqFSMN(nn.Module):
    """Complex FSMN along the frequency axis (frequency recurrence): every frame is a
    sequence over F with the C channels as features. No time memory, so no state.

    ``cfsmn()`` builds the core's complex FSMN (one layer: released ``ComplexUniDeepFsmn_L1``).
    """

    def __init__(self, cfsmn: Callable[[], nn.Module]):
        super().__init__()
        self.cfsmn = cfsmn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c2, f, t = x.shape
        seq = x.reshape(b, 2, c2 // 2, f, t).permute(0, 4, 3, 2, 1).reshape(b * t, f, c2 // 2, 2)  # (B*T, F, C, 2)
        y, _ = self.cfsmn(seq)
        return y.reshape(b, t, f, c2 // 2, 2).permute(0, 4, 3, 2, 1).reshape(b, c2, f, t)  # (B, 2C, F, T)


class TimeFSMN(nn.Module):
    """Complex FSMN along time at the bottleneck (released ``ComplexUniDeepFsmn``: two
    stacked complex layers), features C * F; the state is the core layer's (left context
    only: the last lorder - 1 projected frames of each real FSMN). ``cfsmn()`` may also build
    the mixer slot's ``ComplexMixer`` (same contract on (B, T, C*F, 2))."""

    def __init__(self, cfsmn: Callable[[], nn.Module]):
        super().__init__()
        self.cfsmn = cfsmn()

    def forward(self, x: torch.Tensor, state=None):
        b, c2, f, t = x.shape
        seq = x.reshape(b, 2, (c2 // 2) * f, t).permute(0, 3, 2, 1)  # (B, T, C*F, 2)
        y, state = self.cfsmn(seq, state)
        return y.permute(0, 3, 2, 1).reshape(b, c2, f, t), state  # (B, 2C, F, T)
