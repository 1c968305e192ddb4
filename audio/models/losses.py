"""Training losses of the audio models (a model owns its loss; evaluation metrics are in
``metrics.py``).

- ``si_snr_torch``: the training loss's SI-SNR (released FRCRN ``cal_SISNR``): zero-mean
  signals, EPS 1e-6 (guards the energy and the ratio against silence), differentiable, per
  batch element.
"""
from __future__ import annotations

import torch


def si_snr_torch(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(B, N), (B, N) -> (B,) SI-SNR in dB (zero-mean, released FRCRN loss convention)."""
    ref = ref - ref.mean(dim=-1, keepdim=True)
    est = est - est.mean(dim=-1, keepdim=True)
    energy = (ref**2).sum(dim=-1, keepdim=True) + eps
    target = (ref * est).sum(dim=-1, keepdim=True) * ref / energy  # (B, N)
    noise = est - target
    ratio = (target**2).sum(dim=-1) / ((noise**2).sum(dim=-1) + eps)
    return 10 * torch.log10(ratio + eps)
