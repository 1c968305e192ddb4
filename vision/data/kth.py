"""KTH Actions (Schuldt et al. 2004) as in OpenSTL: 10 -> 20 (or 10 -> 40) frames, 1x128x128.

Layout under a data root (``root: video/kth`` by default), either of OpenSTL's two forms:

    video/kth/<action>/person01_boxing_d1_uncomp/image_0001.png   (kth_action.zip, frames)
    video/kth/<action>/person01_boxing_d1_uncomp.avi              (original archives, decoded by PyAV)

with <action> in boxing, handclapping, handwaving, jogging, running, walking. Frames are
converted to gray, resized to 128x128 with plain bilinear interpolation (cv2.resize's
INTER_LINEAR, as OpenSTL) and scaled to [0, 1].

Splits: persons 1-16 train, 17-25 test (OpenSTL). OpenSTL validates on the test persons; here
validation uses held-out *training* persons (``val_persons``, default [16]), removed from
training. Windows follow OpenSTL's indexing: scanning each video backwards from its last
frame, a window of ``in_frames + out_frames`` consecutive frames is taken, then the scan jumps
by the window length for boxing/handclapping/handwaving/walking and by 3 frames for
jogging/running; frames must be consecutively numbered.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ostinato.core.data import DataBundle, DatasetSpec, FileSpec, locate
from ostinato.core.errors import ConfigError, DataError
from ostinato.core.registry import register_dataset

from .video import IMAGE_EXT, read_images, read_video

SLOW = ("boxing", "handclapping", "handwaving", "walking")  # window stride = window length
FAST = ("jogging", "running")  # window stride = 3
ACTIONS = SLOW + FAST
_PERSON = re.compile(r"person(\d\d)_")
_FRAME_NO = re.compile(r"(\d+)\D*$")

KTH_SPEC = DatasetSpec(
    name="kth",
    domain="vision",
    files=tuple(FileSpec(f"video/kth/{a}") for a in ("boxing", "handclapping", "handwaving", "jogging", "running",
                                                      "walking")),  # folders of .avi files or of frame folders
    source="KTH Actions, https://www.csc.kth.se/cvap/actions/ (frames: OpenSTL release kth_action.zip)",
    licence="free for research use (KTH)",
    description="KTH human actions, 6 actions x 25 persons; avi or frame folders under video/kth/<action>/",
    how_to_get="download the six action zips from https://www.csc.kth.se/cvap/actions/ and unzip each "
               "into <data root>/video/kth/<action>/",
)


@dataclass(frozen=True)
class KTHVideo:
    path: Path  # an .avi file or a folder of frames
    action: str
    person: int
    n_frames: int
    numbers: tuple[int, ...]  # frame numbers (consecutive within a usable window)


def _frame_number(p: Path) -> int:
    m = _FRAME_NO.search(p.stem)
    return int(m.group(1)) if m else -1


def _count_frames(path: Path) -> int:
    import av

    try:
        with av.open(str(path)) as c:
            n = c.streams.video[0].frames
    except (av.error.FFmpegError, OSError, IndexError) as e:
        raise DataError(f"{path}: cannot open video ({e})") from None
    return n if n > 0 else len(read_video(path, gray=True))


def scan_kth(root: Path) -> list[KTHVideo]:
    """All KTH videos (avi files or frame folders) under root/<action>/."""
    vids = []
    for action in ACTIONS:
        adir = root / action
        if not adir.is_dir():
            continue
        for p in sorted(adir.iterdir()):
            m = _PERSON.match(p.name)
            if not m:
                continue
            if p.is_dir():
                files = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_EXT)
                if files:
                    nums = tuple(_frame_number(q) for q in files)
                    vids.append(KTHVideo(p, action, int(m.group(1)), len(files), nums))
            elif p.suffix.lower() == ".avi":
                n = _count_frames(p)
                vids.append(KTHVideo(p, action, int(m.group(1)), n, tuple(range(1, n + 1))))
    if not vids:
        raise DataError(f"{root}: no KTH videos found (expected <action>/personNN_<action>_dK_uncomp[.avi] "
                        f"for actions {', '.join(ACTIONS)})")
    return vids


def kth_window_starts(video: KTHVideo, length: int) -> list[int]:
    """OpenSTL's backwards scan (see module doc), for one video."""
    starts, idx = [], video.n_frames - 1
    while idx >= length - 1:
        s = idx - length + 1
        if video.numbers[idx] - video.numbers[s] == length - 1:
            starts.append(s)
            idx -= (length - 1) if video.action in SLOW else 2
        idx -= 1
    return starts[::-1]


@functools.lru_cache(maxsize=4)
def _decoded(path: Path) -> np.ndarray:
    return read_video(path, gray=True)  # (T, H, W, 1) uint8


class KTH(torch.utils.data.Dataset):
    def __init__(self, videos: list[KTHVideo], in_frames: int, out_frames: int, image_size: int):
        self.videos, self.in_frames, self.out_frames, self.size = videos, in_frames, out_frames, image_size
        t = in_frames + out_frames
        self.index = [(vi, s) for vi, v in enumerate(videos) for s in kth_window_starts(v, t)]

    def __len__(self) -> int:
        return len(self.index)

    def frames(self, v: KTHVideo, start: int, stop: int) -> np.ndarray:
        if v.path.is_dir():
            files = sorted(q for q in v.path.iterdir() if q.suffix.lower() in IMAGE_EXT)
            return read_images(files[start:stop], gray=True)
        return _decoded(v.path)[start:stop]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        vi, s = self.index[i]
        arr = self.frames(self.videos[vi], s, s + self.in_frames + self.out_frames)  # (T, H, W, 1)
        x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float() / 255.0  # (T, 1, H, W)
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)  # cv2 INTER_LINEAR
        return {"frames_in": x[: self.in_frames], "frames_out": x[self.in_frames:]}


@dataclass
class KTHConfig:
    root: str = "video/kth"
    in_frames: int = 10
    out_frames: int = 20
    image_size: int = 128
    train_persons: list[int] = field(default_factory=lambda: list(range(1, 17)))
    val_persons: list[int] = field(default_factory=lambda: [16])  # taken out of train_persons
    test_persons: list[int] = field(default_factory=lambda: list(range(17, 26)))
    batch_size: int = 16
    eval_batch_size: int = 16

    def validate(self) -> None:
        if set(self.val_persons) & set(self.test_persons) or set(self.train_persons) & set(self.test_persons):
            raise ConfigError("data.val_persons/train_persons must not overlap data.test_persons")


@register_dataset("kth", config=KTHConfig)
def kth(cfg: KTHConfig, data_root=None) -> DataBundle:
    """KTH Actions 10->20/40 at 128x128 (persons 1-16 train, 17-25 test; val from held-out train persons)."""
    root = locate(cfg.root, data_root, hint=KTH_SPEC.how_to_get)
    videos = scan_kth(root)
    train_p = set(cfg.train_persons) - set(cfg.val_persons)

    def pick(persons):
        return KTH([v for v in videos if v.person in set(persons)], cfg.in_frames, cfg.out_frames, cfg.image_size)

    train, val, test = pick(train_p), pick(cfg.val_persons), pick(cfg.test_persons)
    for name, ds in (("train", train), ("test", test)):
        if len(ds) == 0:
            raise DataError(f"{root}: no {name} windows of {cfg.in_frames + cfg.out_frames} frames")
    return DataBundle(
        train=train, val=val if len(val) else None, test=test, batch_size=cfg.batch_size,
        eval_batch_size=cfg.eval_batch_size, drop_last=True,
        model_kwargs={"in_frames": cfg.in_frames, "out_frames": cfg.out_frames, "channels": 1,
                      "height": cfg.image_size, "width": cfg.image_size},
        meta={"dataset": "kth"},
    )
