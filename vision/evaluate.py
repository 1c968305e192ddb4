"""Evaluation of video-prediction models: OpenSTL metrics, optional GIF/PNG visualisations.

``evaluate(model, data, split, cfg)`` runs ``model(frames_in, n_out)`` over a split and returns
``{"mse", "mae", "ssim", "psnr"}`` (conventions in :mod:`ostinato.vision.metrics`). With
``eval.save_dir=DIR`` (``ostinato eval RUN --save-dir DIR``) it also writes, for the first
``n_gifs`` sequences, ``DIR/<split>_<i>.gif`` (left: input then ground truth; right: input
then prediction) and ``DIR/<split>_<i>.png`` (rows: input, truth, prediction).

``eval.protocol=openstl`` (``ostinato eval RUN eval.protocol=openstl``, or on ``ostinato train``)
scores with OpenSTL's conventions, those of its published tables: SSIM with data_range 2, and
on Moving MNIST 10->10 the test split replaced by OpenSTL's, all 10,000 sequences of
``mnist_test_seq.npy`` (a missing file is a one-line error saying where to put it). MSE/MAE
(per-frame pixel sums) and PSNR are OpenSTL's under both protocols. On other data the switch
sets the metric conventions only. Validation is never the test set (OpenSTL validates on it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ostinato.core.data import batches
from ostinato.core.errors import ConfigError
from ostinato.core.measure import model_device

from .metrics import OPENSTL_SSIM_RANGE, FrameMetrics

METRICS = ("mse", "mae", "rmse", "ssim", "psnr")


@dataclass
class VisionEvalConfig:
    metrics: list[str] = field(default_factory=lambda: ["mse", "mae", "ssim", "psnr"])
    ssim_data_range: float = 1.0  # 2.0 reproduces OpenSTL's scikit-image<0.20 default (see metrics.py)
    # "openstl": OpenSTL's published-table convention (metrics.py): SSIM data_range 2 and, on
    # Moving MNIST 10->10, the test split = all of mnist_test_seq.npy; "ostinato": as configured
    protocol: Literal["ostinato", "openstl"] = "ostinato"
    n_out: int = 0  # frames to predict; 0: as many as the split's targets
    max_samples: int = 0  # evaluate only the first N sequences; 0: all
    horizon_marks: list[int] = field(default_factory=list)  # also report metric@t at these frames (1-based)
    save_dir: str = ""  # folder for GIF/PNG visualisations; empty: none
    n_gifs: int = 4
    gif_fps: float = 5.0
    max_grid_frames: int = 20  # columns of the PNG grid (frames are subsampled beyond this)

    def validate(self) -> None:
        bad = [m for m in self.metrics if m not in METRICS]
        if bad or not self.metrics:
            raise ConfigError(f"eval.metrics: expected a non-empty subset of {list(METRICS)}, got {self.metrics}")
        if self.n_out < 0 or self.max_samples < 0 or self.n_gifs < 0:
            raise ConfigError("eval.n_out, eval.max_samples and eval.n_gifs must be >= 0")
        if self.protocol == "openstl" and self.ssim_data_range not in (1.0, OPENSTL_SSIM_RANGE):
            raise ConfigError(f"eval.ssim_data_range={self.ssim_data_range}: eval.protocol=openstl uses OpenSTL's "
                              f"{OPENSTL_SSIM_RANGE}; drop one of the two")

    def data_range(self) -> float:
        return OPENSTL_SSIM_RANGE if self.protocol == "openstl" else self.ssim_data_range


def eval_split(data, split: str, ecfg: VisionEvalConfig):
    """The dataset scored for ``split``: under ``protocol=openstl`` the test split of Moving MNIST
    10->10 is OpenSTL's (mnist_test_seq.npy, all 10,000 sequences); otherwise the data's own."""
    if ecfg.protocol == "openstl" and split == "test" and "official_test" in data.meta:
        from .data.mnist import openstl_test_set

        return openstl_test_set(data.meta)
    return data.split(split)


@torch.no_grad()
def predict(model, frames_in: torch.Tensor, n_out: int) -> torch.Tensor:
    return model(frames_in.to(model_device(model)), n_out).float().cpu()


def evaluate(model, data, split: str, cfg) -> dict[str, float]:
    """The vision domain evaluator; ``cfg.eval`` is the run's :class:`VisionEvalConfig`."""
    ecfg: VisionEvalConfig = cfg.eval
    ds = eval_split(data, split, ecfg)
    n = min(len(ds), ecfg.max_samples) if ecfg.max_samples else len(ds)
    if n == 0:
        raise ConfigError(f"the {split} split is empty")
    if n < len(ds):
        ds = torch.utils.data.Subset(ds, range(n))
    model.eval()
    acc = FrameMetrics(ecfg.metrics, ecfg.data_range())
    shown: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for batch in batches(ds, data.eval_batch_size or data.batch_size, data.collate):
        x, y = batch["frames_in"], batch["frames_out"]
        n_out = ecfg.n_out or y.shape[1]
        if n_out > y.shape[1]:
            raise ConfigError(f"eval.n_out={n_out} exceeds the {y.shape[1]} target frames of the {split} split")
        y = y[:, :n_out]
        pred = predict(model, x, n_out)
        acc.update(pred, y)
        if ecfg.save_dir and len(shown) < ecfg.n_gifs:
            for i in range(min(len(x), ecfg.n_gifs - len(shown))):
                shown.append((x[i], y[i], pred[i]))
    out = acc.compute()
    if ecfg.horizon_marks:
        steps = acc.compute_per_step()
        for t in ecfg.horizon_marks:
            if 1 <= t <= len(next(iter(steps.values()))):
                for k, v in steps.items():
                    out[f"{k}@{t}"] = v[t - 1]
    if ecfg.save_dir:
        save_visuals(shown, Path(ecfg.save_dir), split, ecfg.gif_fps, ecfg.max_grid_frames)
    return out


# --------------------------------------------------------------------------- visualisation


def to_display(frames: torch.Tensor, min_size: int = 64) -> np.ndarray:
    """(T, C, H, W) in [0, 1] -> uint8 (T, H', W', 3). C=1 and C=3 are shown as is; other channel
    counts as gray channels stacked vertically. Small frames are enlarged (nearest)."""
    f = frames.detach().float().clamp(0, 1).cpu()
    t, c, h, w = f.shape
    if c == 3:
        img = f.permute(0, 2, 3, 1)  # (T, H, W, 3)
    else:
        img = f.reshape(t, c * h, w).unsqueeze(-1).expand(-1, -1, -1, 3)  # (T, C*H, W, 3)
    scale = max(1, -(-min_size // max(h, w)))
    if scale > 1:
        img = img.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    return (img.numpy() * 255 + 0.5).astype(np.uint8)


def _pad_time(a: np.ndarray, n: int) -> np.ndarray:
    if len(a) >= n:
        return a[:n]
    return np.concatenate([a, np.zeros((n - len(a),) + a.shape[1:], a.dtype)])


def save_visuals(samples, folder: Path, split: str, fps: float = 5.0, max_cols: int = 20) -> list[Path]:
    """Write one GIF and one PNG grid per (input, truth, prediction) triple."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (x, y, p) in enumerate(samples):
        xi, yi, pi = to_display(x), to_display(y), to_display(p)
        sep = np.full((xi.shape[1], 4, 3), 128, np.uint8)  # grey divider
        truth = np.concatenate([xi, yi])  # (T_in + T_out, H, W, 3)
        pred = np.concatenate([xi, pi])
        step = max(1, len(truth) // 200)  # keep long rollouts to <= ~200 GIF frames
        gif = [Image.fromarray(np.concatenate([a, sep, b], axis=1)) for a, b in zip(truth[::step], pred[::step])]
        g = folder / f"{split}_{i:03d}.gif"
        gif[0].save(g, save_all=True, append_images=gif[1:], duration=int(1000 / fps), loop=0)
        cols = max(len(xi), len(yi))
        idx = np.unique(np.linspace(0, cols - 1, min(cols, max_cols)).round().astype(int))
        rows = [np.concatenate(list(_pad_time(a, cols)[idx]), axis=1) for a in (xi, yi, pi)]
        hsep = np.full((4, rows[0].shape[1], 3), 128, np.uint8)
        grid = np.concatenate([rows[0], hsep, rows[1], hsep, rows[2]], axis=0)
        png = folder / f"{split}_{i:03d}.png"
        Image.fromarray(grid).save(png)
        written += [g, png]
    return written
