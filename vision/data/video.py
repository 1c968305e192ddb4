"""Generic video readers: any PyAV-decodable file (mp4, avi, ...) or a folder of frame images.

``read_video(path)`` and ``read_frame_folder(dir)`` return uint8 (T, H, W, C) arrays;
``to_tensor_frames`` resizes them to float32 (T, C, h, w) in [0, 1] (bilinear; antialiased
when shrinking). The registered ``video_clips`` dataset cuts clips into windows of
``in_frames + out_frames``. Splits are disjoint in time within each clip: the first
``1 - val_frac - test_frac`` of a clip's frames give training windows, the next ``val_frac``
validation windows and the last ``test_frac`` test windows; no window crosses a boundary.
(torchvision 0.29 has no ``read_video``; PyAV is the decoder.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ostinato.core.data import DataBundle, locate
from ostinato.core.errors import ConfigError, DataError
from ostinato.core.registry import register_dataset

VIDEO_EXT = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def read_video(path: str | Path, gray: bool = False, max_frames: int = 0) -> np.ndarray:
    """Decode a video with PyAV -> uint8 (T, H, W, C), C = 1 (gray) or 3 (RGB)."""
    import av

    fmt = "gray" if gray else "rgb24"
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream")
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format=fmt))
                if max_frames and len(frames) >= max_frames:
                    break
    except (av.error.FFmpegError, OSError) as e:  # FFmpegError covers invalid data / unsupported codecs
        raise DataError(f"{path}: cannot decode video ({e})") from None
    if not frames:
        raise DataError(f"{path}: no frames decoded")
    arr = np.stack(frames)  # (T, H, W) or (T, H, W, 3)
    return arr[..., None] if arr.ndim == 3 else arr


def frame_files(folder: str | Path) -> list[Path]:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXT)
    if not files:
        raise DataError(f"{folder}: no image frames ({', '.join(IMAGE_EXT)})")
    return files


def read_images(files: list[Path], gray: bool = False) -> np.ndarray:
    from PIL import Image

    out = []
    for f in files:
        try:
            with Image.open(f) as im:
                out.append(np.asarray(im.convert("L" if gray else "RGB")))
        except OSError as e:
            raise DataError(f"{f}: cannot read image ({e})") from None
    arr = np.stack(out)  # (T, H, W[, 3])
    return arr[..., None] if arr.ndim == 3 else arr


def read_frame_folder(folder: str | Path, gray: bool = False) -> np.ndarray:
    """Frames of a folder of images, in sorted file-name order -> uint8 (T, H, W, C)."""
    return read_images(frame_files(folder), gray)


def read_clip(path: str | Path, gray: bool = False) -> np.ndarray:
    p = Path(path)
    if p.is_dir():
        return read_frame_folder(p, gray)
    if p.suffix.lower() in VIDEO_EXT or p.is_file():
        return read_video(p, gray)
    raise DataError(f"{p}: expected a video file or a folder of frames")


def to_tensor_frames(arr: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
    """uint8 (T, H, W, C) -> float32 (T, C, h, w) in [0, 1], bilinearly resized to ``size``."""
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float() / 255.0  # (T, C, H, W)
    if size is not None and tuple(size) != tuple(x.shape[-2:]):
        shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=shrink)
        x = x.clamp(0.0, 1.0)
    return x


class ClipWindows(torch.utils.data.Dataset):
    """Windows of ``in_frames + out_frames`` consecutive frames from a list of clips.

    ``clips``: tensors (T_i, C, H, W); ``starts``: (clip index, first frame) pairs.
    """

    def __init__(self, clips: list[torch.Tensor], starts: list[tuple[int, int]], in_frames: int, out_frames: int):
        self.clips, self.starts, self.in_frames, self.out_frames = clips, starts, in_frames, out_frames

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        c, s = self.starts[i]
        seq = self.clips[c][s: s + self.in_frames + self.out_frames]  # (T, C, H, W)
        return {"frames_in": seq[: self.in_frames].float(), "frames_out": seq[self.in_frames:].float()}


def window_starts(lo: int, hi: int, length: int, stride: int) -> list[int]:
    """Start frames of windows of ``length`` inside [lo, hi)."""
    return list(range(lo, hi - length + 1, max(1, stride)))


@dataclass
class VideoClipsConfig:
    paths: list[str] = field(default_factory=lambda: ["video/real_clips/carphone_pristine.mp4"])
    in_frames: int = 10
    out_frames: int = 10
    height: int = 64
    width: int = 64
    grayscale: bool = True
    stride: int = 1  # frames between consecutive training windows
    eval_stride: int = 0  # frames between val/test windows; 0: in_frames + out_frames (no overlap)
    val_frac: float = 0.15
    test_frac: float = 0.15
    batch_size: int = 8
    eval_batch_size: int = 8

    def validate(self) -> None:
        if not self.paths:
            raise ConfigError("data.paths: expected at least one video file or frame folder")
        if not (0 <= self.val_frac < 1 and 0 <= self.test_frac < 1 and self.val_frac + self.test_frac < 1):
            raise ConfigError("data.val_frac/test_frac: expected fractions in [0, 1) summing to < 1")


def expand_paths(paths: list[str], data_root=None) -> list[Path]:
    """Each entry: a video file, a folder of frames, or a folder of videos / frame folders."""
    out: list[Path] = []
    for rel in paths:
        p = locate(rel, data_root)
        if p.is_dir() and not any(q.suffix.lower() in IMAGE_EXT for q in p.iterdir()):
            kids = sorted(q for q in p.iterdir() if q.is_dir() or q.suffix.lower() in VIDEO_EXT)
            if not kids:
                raise DataError(f"{p}: no videos, frame images or frame folders inside")
            out += kids
        else:
            out.append(p)
    return out


@register_dataset("video_clips", config=VideoClipsConfig)
def video_clips(cfg: VideoClipsConfig, data_root=None) -> DataBundle:
    """Any mp4/avi files or frame folders, cut into windows; splits disjoint in time per clip."""
    t = cfg.in_frames + cfg.out_frames
    clips, tr, va, te = [], [], [], []
    for ci, path in enumerate(expand_paths(cfg.paths, data_root)):
        x = to_tensor_frames(read_clip(path, cfg.grayscale), (cfg.height, cfg.width))  # (T, C, h, w)
        clips.append(x)
        n = x.shape[0]
        a = int(round(n * (1 - cfg.val_frac - cfg.test_frac)))
        b = int(round(n * (1 - cfg.test_frac)))
        es = cfg.eval_stride or t
        tr += [(ci, s) for s in window_starts(0, a, t, cfg.stride)]
        va += [(ci, s) for s in window_starts(a, b, t, es)]
        te += [(ci, s) for s in window_starts(b, n, t, es)]
    for name, split, frac in (("train", tr, 1.0), ("val", va, cfg.val_frac), ("test", te, cfg.test_frac)):
        if not split and frac > 0:
            raise DataError(f"video_clips: no {name} window of {t} frames fits in {cfg.paths} "
                            f"(shorten in_frames/out_frames or enlarge data.{name}_frac)")
    channels = 1 if cfg.grayscale else 3
    return DataBundle(
        train=ClipWindows(clips, tr, cfg.in_frames, cfg.out_frames),
        val=ClipWindows(clips, va, cfg.in_frames, cfg.out_frames) if va else None,
        test=ClipWindows(clips, te, cfg.in_frames, cfg.out_frames) if te else None,
        batch_size=cfg.batch_size, eval_batch_size=cfg.eval_batch_size, drop_last=False,
        model_kwargs={"in_frames": cfg.in_frames, "out_frames": cfg.out_frames, "channels": channels,
                      "height": cfg.height, "width": cfg.width},
        meta={"dataset": "video_clips"},
    )
