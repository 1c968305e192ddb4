"""Frame-prediction metrics with OpenSTL's conventions (written next to each one).

Arrays are (N, T, C, H, W) in [0, 1] (N samples, T predicted frames).

- ``mse``/``mae``: OpenSTL's ``np.mean(err, axis=(0, 1)).sum()``: the error is **summed over
  C x H x W within a frame**, then averaged over frames and samples. Moving MNIST MSE ~25
  is ~0.006 per pixel. Computed on the raw prediction (before clipping), as OpenSTL does.
- ``rmse``: sqrt of that ``mse``.
- ``ssim``: scikit-image ``structural_similarity`` per frame (channels last,
  ``channel_axis=-1``), 7x7 uniform window (skimage's default, which OpenSTL used),
  ``data_range=1``, averaged over frames and samples; predictions clipped to [0, 1] first.
  Note: OpenSTL and PFGNet called ``cal_ssim(..., multichannel=True)`` without
  ``data_range``; scikit-image < 0.20 then took the float dtype range, 2.0, which gives
  higher SSIM than ``data_range=1``. Pass ``data_range=2.0`` to reproduce that.
- ``psnr``: per frame ``-10 log10(mean squared error per pixel)`` on [0, 1] data, in float,
  averaged over frames and samples; predictions clipped to [0, 1].
  PFGNet's repository redefines PSNR as ``mean((uint8(p*255) - uint8(t*255))**2)`` in uint8
  arithmetic, where subtraction and squaring wrap around modulo 256; its KTH PSNR is therefore
  not comparable with OpenSTL's. :func:`psnr_pfgnet_uint8` reproduces that number only so
  that the difference can be shown; it is never reported as ``psnr``.

Two protocols (``eval.protocol``, see evaluate.py). ``ostinato`` (default): SSIM with
``data_range=1`` (the range of the data), and the test sequences the data config gives (for
Moving MNIST: fixed sequences generated from held-out MNIST test digits). ``openstl``: OpenSTL's
``openstl/core/metrics.py`` as its tables were computed: ``cal_ssim(pred[b, f].swapaxes(0, 2),
true[b, f].swapaxes(0, 2), multichannel=True)`` with no ``data_range``, i.e. 2.0 on float
frames (the swap transposes H and W in both images, which the square window and the mean over
the map do not see), and Moving MNIST's test set = all of ``mnist_test_seq.npy``. MSE, MAE
(raw predictions) and PSNR (clipped predictions) are the same under both. OpenSTL computes on
float32 arrays, this module in float64: the two agree to float32 rounding.

Model cost (the core's, :mod:`ostinato.core.measure`, re-exported): :func:`count_params`, and :func:`count_flops` with
``torch.utils.flop_counter.FlopCounterMode`` (which counts 2 FLOPs per multiply-add).
OpenSTL's "FLOPs" column is fvcore's count, one per multiply-add, i.e. ``macs`` here.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ostinato.core.measure import count_flops, count_params  # noqa: F401  (re-exported: model cost)

SSIM_WIN = 7
OPENSTL_SSIM_RANGE = 2.0  # scikit-image's dtype range of float images, (-1, 1), which OpenSTL's SSIM used


def _as_np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _check(pred: np.ndarray, true: np.ndarray) -> None:
    if pred.shape != true.shape or pred.ndim != 5:
        raise ValueError(f"expected pred and true of equal shape (N, T, C, H, W), got {pred.shape} and {true.shape}")


def mse(pred, true) -> float:
    """Sum of squared error over C*H*W per frame, averaged over samples and frames (OpenSTL)."""
    p, t = _as_np(pred), _as_np(true)
    _check(p, t)
    return float(((p - t) ** 2).sum(axis=(2, 3, 4)).mean())


def mae(pred, true) -> float:
    """Sum of absolute error over C*H*W per frame, averaged over samples and frames (OpenSTL)."""
    p, t = _as_np(pred), _as_np(true)
    _check(p, t)
    return float(np.abs(p - t).sum(axis=(2, 3, 4)).mean())


def psnr_frames(pred, true) -> np.ndarray:
    """Per-frame PSNR in dB, (N, T), for data in [0, 1]; a perfect frame gives +inf."""
    p, t = np.clip(_as_np(pred), 0.0, 1.0), _as_np(true)
    _check(p, t)
    m = ((p - t) ** 2).mean(axis=(2, 3, 4))  # (N, T)
    with np.errstate(divide="ignore"):
        return -10.0 * np.log10(m)


def psnr(pred, true) -> float:
    """Mean over frames of -10 log10(per-pixel MSE) on [0, 1] data (prediction clipped)."""
    return float(psnr_frames(pred, true).mean())


def psnr_pfgnet_uint8(pred, true) -> float:
    """PFGNet's PSNR *as released* (uint8 wrap-around bug), for comparison only."""
    p, t = np.clip(_as_np(pred), 0.0, 1.0), _as_np(true)
    _check(p, t)
    out = []
    for n in range(p.shape[0]):
        for f in range(p.shape[1]):
            d = np.uint8(p[n, f] * 255) - np.uint8(t[n, f] * 255)  # wraps modulo 256 (the bug)
            m = np.mean(d**2)  # uint8 square wraps as well
            out.append(20 * math.log10(255) - 10 * math.log10(m) if m > 0 else math.inf)
    return float(np.mean(out))


def ssim_frames(pred, true, data_range: float = 1.0) -> np.ndarray:
    """Per-frame SSIM, (N, T): scikit-image, 7x7 uniform window, channels last."""
    from skimage.metrics import structural_similarity  # lazy: scikit-image is slow to import

    p, t = np.clip(_as_np(pred), 0.0, 1.0), _as_np(true)
    _check(p, t)
    out = np.empty(p.shape[:2])
    for n in range(p.shape[0]):
        for f in range(p.shape[1]):
            out[n, f] = structural_similarity(
                p[n, f].transpose(1, 2, 0), t[n, f].transpose(1, 2, 0),  # (H, W, C)
                win_size=SSIM_WIN, channel_axis=-1, data_range=data_range,
            )
    return out


def ssim(pred, true, data_range: float = 1.0) -> float:
    return float(ssim_frames(pred, true, data_range).mean())


class FrameMetrics:
    """Streaming accumulator: ``update(pred, true)`` per batch, ``compute()`` at the end.

    Sums per-frame values, so the result equals the functions above on the concatenation.
    """

    def __init__(self, metrics=("mse", "mae", "ssim", "psnr"), ssim_data_range: float = 1.0):
        self.metrics = tuple(metrics)
        self.ssim_data_range = ssim_data_range
        self.sums: dict[str, float] = {m: 0.0 for m in self.metrics}
        self.frames = 0
        self.samples = 0
        self.per_step: dict[str, np.ndarray] = {}

    def update(self, pred, true) -> None:
        p, t = _as_np(pred), _as_np(true)
        _check(p, t)
        vals: dict[str, np.ndarray] = {}
        if "mse" in self.metrics or "rmse" in self.metrics:
            vals["mse"] = ((p - t) ** 2).sum(axis=(2, 3, 4))  # (N, T)
        if "mae" in self.metrics:
            vals["mae"] = np.abs(p - t).sum(axis=(2, 3, 4))
        if "psnr" in self.metrics:
            vals["psnr"] = psnr_frames(p, t)
        if "ssim" in self.metrics:
            vals["ssim"] = ssim_frames(p, t, self.ssim_data_range)
        for k, v in vals.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v.sum())
            self.per_step[k] = self.per_step.get(k, 0.0) + v.sum(axis=0)  # (T,)
        self.frames += p.shape[0] * p.shape[1]
        self.samples += p.shape[0]

    def compute(self) -> dict[str, float]:
        if self.frames == 0:
            raise ValueError("FrameMetrics.compute() before any update()")
        out = {k: self.sums[k] / self.frames for k in self.metrics if k != "rmse"}
        if "rmse" in self.metrics:
            out["rmse"] = math.sqrt(self.sums["mse"] / self.frames)
        return out

    def compute_per_step(self) -> dict[str, list[float]]:
        """Metric at each predicted frame index, averaged over samples (e.g. SSIM over horizon)."""
        return {k: (v / self.samples).tolist() for k, v in self.per_step.items()}

