"""A synthetic video generator for tests and smoke runs: bouncing squares, no files needed.

Each sequence has ``n_objects`` filled squares (side ``object_size``) of random brightness in
each channel, moving at constant speed and bouncing off the borders; frames are float32 in
[0, 1], combined by max. Train item i of epoch e comes from ``index_rng(seed, e, i)``;
validation and test use fixed seeds (disjoint from each other and from training).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ostinato.core.data import DataBundle, EpochMixin, index_rng
from ostinato.core.errors import ConfigError
from ostinato.core.registry import register_dataset

VAL_SEED, TEST_SEED = 3_000_003, 4_000_004


def bouncing_squares(rng: np.random.Generator, n_frames: int, channels: int, height: int, width: int,
                     n_objects: int = 2, size: int = 4, speed: float = 1.5) -> np.ndarray:
    """float32 (n_frames, channels, height, width) in [0, 1]."""
    out = np.zeros((n_frames, channels, height, width), np.float32)
    for _ in range(n_objects):
        y, x = rng.uniform(0, height - size), rng.uniform(0, width - size)
        a = rng.uniform(0, 2 * np.pi)
        vy, vx = speed * np.sin(a), speed * np.cos(a)
        colour = rng.uniform(0.5, 1.0, size=channels).astype(np.float32)[:, None, None]  # (C, 1, 1)
        for t in range(n_frames):
            top, left = int(y), int(x)
            win = out[t, :, top: top + size, left: left + size]
            np.maximum(win, colour, out=win)
            y, x = y + vy, x + vx
            if not 0 <= y <= height - size:
                vy, y = -vy, min(max(y, 0.0), height - size)
            if not 0 <= x <= width - size:
                vx, x = -vx, min(max(x, 0.0), width - size)
    return out


class BouncingSquares(EpochMixin, torch.utils.data.Dataset):
    def __init__(self, cfg: "SyntheticVideoConfig", size: int, seed: int, fixed: bool):
        self.cfg, self.size, self.seed, self.fixed, self.epoch = cfg, size, seed, fixed, 0

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < self.size:
            raise IndexError(i)
        c = self.cfg
        rng = index_rng(self.seed, 0 if self.fixed else self.epoch, i)
        seq = torch.from_numpy(bouncing_squares(rng, c.in_frames + c.out_frames, c.channels, c.height, c.width,
                                                c.n_objects, c.object_size, c.speed))  # (T, C, H, W)
        return {"frames_in": seq[: c.in_frames], "frames_out": seq[c.in_frames:]}


@dataclass
class SyntheticVideoConfig:
    in_frames: int = 4
    out_frames: int = 4
    channels: int = 1
    height: int = 16
    width: int = 16
    n_objects: int = 2
    object_size: int = 4
    speed: float = 1.5
    train_size: int = 64
    val_size: int = 16
    test_size: int = 16
    seed: int = 0
    batch_size: int = 8
    eval_batch_size: int = 8

    def validate(self) -> None:
        if self.object_size > min(self.height, self.width):
            raise ConfigError(f"data.object_size {self.object_size} exceeds the frame {self.height}x{self.width}")


@register_dataset("synthetic_video", config=SyntheticVideoConfig)
def synthetic_video(cfg: SyntheticVideoConfig, data_root=None) -> DataBundle:
    """Bouncing squares (no files): any T, C, H, W; for tests and smoke runs."""
    return DataBundle(
        train=BouncingSquares(cfg, cfg.train_size, cfg.seed, False),
        val=BouncingSquares(cfg, cfg.val_size, VAL_SEED, True),
        test=BouncingSquares(cfg, cfg.test_size, TEST_SEED, True),
        batch_size=cfg.batch_size, eval_batch_size=cfg.eval_batch_size, drop_last=False,
        model_kwargs={"in_frames": cfg.in_frames, "out_frames": cfg.out_frames, "channels": cfg.channels,
                      "height": cfg.height, "width": cfg.width},
        meta={"dataset": "synthetic_video"},
    )
