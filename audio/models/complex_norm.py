"""FRCRN's normalisation after each (transposed) complex conv, chosen by ``model.norm``.

- ``batch`` (released): ``ComplexBatchNorm2d``, separate BatchNorm2d on the real and on the
  imaginary part. In training the statistics are those of the whole batch (all utterances,
  all frequencies, **all frames**), so a frame's output depends on future frames at train
  time; in eval the running statistics make it frame-local (causal).
- ``frozen``: the same modules and state-dict keys, but training also normalises with the
  running statistics (as eval does) and only afterwards updates them from the batch (no
  gradient through the statistics). Frame-local in training and eval; train and test
  normalise alike. The first steps run with the initial statistics (mean 0, variance 1).
- ``cumulative``: cumulative layer normalisation (cLN, Luo & Mesgarani, Conv-TasNet, IEEE/ACM
  TASLP 2019, eq. 13-15), per utterance: the real part of frame t is normalised with the mean
  and variance of the real parts of all channels and frequencies in frames 0..t, the
  imaginary part likewise; then a per-channel gain and bias. Train and eval alike; streaming
  carries the running sums. Numeric guard: the variance E[x^2] - E[x]^2 of the running sums
  is clamped at 0 before adding eps.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .complex_nn import ComplexBatchNorm2d

NORMS = ("batch", "frozen", "cumulative")


class ComplexFrozenBatchNorm2d(ComplexBatchNorm2d):
    """``ComplexBatchNorm2d`` whose training forward normalises with the running statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        r, i = self.bn_re, self.bn_im
        mean = torch.cat([r.running_mean, i.running_mean])  # (2C,): a copy, taken before the update
        var = torch.cat([r.running_var, i.running_var])
        y = F.batch_norm(x, mean, var, torch.cat([r.weight, i.weight]), torch.cat([r.bias, i.bias]), False, 0.0, r.eps)
        with torch.no_grad():
            self._update(x.detach())
        return y  # (B, 2C, F, T)

    def _update(self, x: torch.Tensor) -> None:
        """Running statistics from the batch, as ``nn.BatchNorm2d`` does (unbiased variance)."""
        c = x.shape[1] // 2
        mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=x.numel() > x.shape[1])  # (2C,)
        for bn, part in ((self.bn_re, slice(0, c)), (self.bn_im, slice(c, None))):
            m = bn.momentum
            bn.running_mean.mul_(1 - m).add_(mean[part].to(bn.running_mean.dtype), alpha=m)
            bn.running_var.mul_(1 - m).add_(var[part].to(bn.running_var.dtype), alpha=m)
            bn.num_batches_tracked.add_(1)


class ComplexCumulativeNorm2d(nn.Module):
    """Cumulative layer norm on the real and the imaginary part; per-channel gain and bias."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(2 * num_features))  # [re; im] channels
        self.bias = nn.Parameter(torch.zeros(2 * num_features))

    def forward(self, x: torch.Tensor, cache: tuple | None = None):
        """x (B, 2C, F, T) -> (y (B, 2C, F, T), cache = (sum (B, 2), sum of squares (B, 2), frames seen))."""
        b, c2, f, t = x.shape
        xp = x.reshape(b, 2, (c2 // 2) * f, t)  # (B, 2, C*F, T): real part, imaginary part
        s, q = xp.sum(dim=2).cumsum(dim=-1), xp.square().sum(dim=2).cumsum(dim=-1)  # (B, 2, T)
        seen = 0
        if cache is not None:
            s0, q0, seen = cache
            s, q = s + s0[..., None], q + q0[..., None]
        n = (seen + torch.arange(1, t + 1, dtype=x.dtype, device=x.device)) * ((c2 // 2) * f)  # (T,) values so far
        mean = s / n
        var = (q / n - mean.square()).clamp_min(0.0)  # (B, 2, T)
        y = (xp - mean[:, :, None]) * torch.rsqrt(var + self.eps)[:, :, None]  # (B, 2, C*F, T)
        y = y.reshape(b, c2, f, t) * self.weight[:, None, None] + self.bias[:, None, None]
        return y, (s[..., -1], q[..., -1], seen + t)


def complex_norm(kind: str, channels: int) -> nn.Module:
    """The normalisation named by ``model.norm`` for ``channels`` complex channels."""
    if kind == "frozen":
        return ComplexFrozenBatchNorm2d(channels)
    if kind == "cumulative":
        return ComplexCumulativeNorm2d(channels)
    return ComplexBatchNorm2d(channels)
