"""Moving MNIST: MNIST IDX reader, the bouncing-digit generator, the official test file.

Protocol (Srivastava et al. 2015; OpenSTL): 2 MNIST digits (28x28) bounce inside a 64x64
frame; 10 input frames, 10 target frames. Per digit: start position (x, y) ~ U[0,1)^2,
angle theta ~ U[0, 2pi), velocity (sin theta, cos theta) for (y, x); each frame the position
moves by velocity * step_length (0.1; 0.15 for ConvS5's long sequences); a coordinate that
leaves [0, 1] is clamped and its velocity component negated; the digit's top-left pixel is
int(position * (64 - 28)), so digits always lie inside the frame; digits are combined by
pixel-wise max. Frames are float32 in [0, 1], shaped (T, 1, 64, 64).

**Digits used here.** Only the 10k MNIST *test* digits are shipped (MNIST licence, CC BY-SA
3.0; see ``vision/samples/README.md``). With ``split_digits: true`` (the default) they are
split by a fixed permutation (``numpy.random.default_rng(0).permutation(10000)``) into
8000 train / 1000 validation / 1000 test digits, and

- train sequences are generated on the fly from the train digits, ``train_size`` per epoch,
  sequence i of epoch e drawn from ``index_rng(seed, e, i)`` (resume is bit-identical);
- validation sequences: ``val_size`` fixed sequences from the validation digits,
  ``index_rng(1000001, 0, i)``;
- test sequences: ``test_size`` fixed sequences from the test digits,
  ``index_rng(2000002, 0, i)``, the same whatever the training seed.

So no test digit is ever seen in training or validation. These sequences are *not* the
canonical ``mnist_test_seq.npy`` (which no generator can reproduce): numbers on them are
comparable with each other, not with published tables. A user who has the official file
sets ``test: official`` (file ``video/moving_mnist/mnist_test_seq.npy`` under a data root,
time-major (20, 10000, 64, 64) uint8, transposed to (N, T, 1, H, W) / 255); with the MNIST
*train* images as ``digits`` and ``split_digits: false`` this is exactly OpenSTL's protocol
(train on the fly from all digits; validation here still comes from generated sequences,
never from the test file).
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ostinato.core.data import DataBundle, EpochMixin, DatasetSpec, FileSpec, data_roots, index_rng, locate
from ostinato.core.errors import ConfigError, DataError
from ostinato.core.registry import register_dataset

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
DIGIT_SPLIT_SEED = 0
VAL_SEED = 1_000_001
TEST_SEED = 2_000_002
DIGIT = 28

MNIST_SPEC = DatasetSpec(
    name="mnist_test_digits",
    domain="vision",
    files=(
        FileSpec("video/mnist/t10k-images-idx3-ubyte.gz",
                 "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                 "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz", 1648877),
        FileSpec("video/mnist/t10k-labels-idx1-ubyte.gz",
                 "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                 "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz", 4542),
    ),
    source="MNIST (LeCun, Cortes, Burges), http://yann.lecun.com/exdb/mnist/",
    licence="CC BY-SA 3.0",
    description="10k MNIST test digits (IDX), shipped; Moving MNIST sequences are generated from them",
    shipped=SAMPLES,
)

MMNIST_TEST_SPEC = DatasetSpec(
    name="moving_mnist_test",
    domain="vision",
    # No automatic download: no sha256 of the 800 MB file has been computed here, and every
    # download must be checked against one. The user fetches it (819,200,128 bytes).
    files=(FileSpec("video/moving_mnist/mnist_test_seq.npy", None, None, 819200128),),
    source="Srivastava et al. 2015, http://www.cs.toronto.edu/~nitish/unsupervised_video/",
    licence="research use (derived from MNIST, CC BY-SA 3.0)",
    description="official Moving MNIST test set, (20, 10000, 64, 64) uint8, time-major",
    how_to_get="download mnist_test_seq.npy from http://www.cs.toronto.edu/~nitish/unsupervised_video/ "
               "into <data root>/video/moving_mnist/",
)


# --------------------------------------------------------------------------- IDX


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) as used by MNIST: uint8 payload, big-endian dims."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read IDX file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: expected an IDX file of unsigned bytes (magic 0x0000 08 nd), got {raw[:4].hex()}")
    nd = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(nd))
    off = 4 + 4 * nd
    if len(raw) - off != int(np.prod(dims)):
        raise DataError(f"{path}: IDX header says {dims} ({int(np.prod(dims))} bytes), file has {len(raw) - off}")
    return np.frombuffer(raw, np.uint8, offset=off).reshape(dims)


def load_digits(relpath: str, data_root=None) -> np.ndarray:
    arr = read_idx(locate(relpath, data_root, SAMPLES))
    if arr.ndim != 3 or arr.shape[1:] != (DIGIT, DIGIT):
        raise DataError(f"{relpath}: expected MNIST images (N, 28, 28), got shape {arr.shape}")
    return arr


def split_digits(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed disjoint digit indices: 80% train, 10% validation, 10% test."""
    perm = np.random.default_rng(DIGIT_SPLIT_SEED).permutation(n)
    a, b = int(0.8 * n), int(0.9 * n)
    return perm[:a], perm[a:b], perm[b:]


# --------------------------------------------------------------------------- generator


def bouncing_trajectory(rng: np.random.Generator, n_frames: int, step_length: float, canvas: int):
    """Top-left pixel (rows, cols) of one bouncing digit over ``n_frames`` (see module doc)."""
    x, y = rng.random(), rng.random()
    theta = rng.random() * 2 * np.pi
    vy, vx = np.sin(theta), np.cos(theta)
    ys, xs = np.empty(n_frames), np.empty(n_frames)
    for i in range(n_frames):
        y += vy * step_length
        x += vx * step_length
        if x <= 0:
            x, vx = 0.0, -vx
        if x >= 1.0:
            x, vx = 1.0, -vx
        if y <= 0:
            y, vy = 0.0, -vy
        if y >= 1.0:
            y, vy = 1.0, -vy
        ys[i], xs[i] = y, x
    return (canvas * ys).astype(np.int64), (canvas * xs).astype(np.int64)


def moving_mnist_sequence(rng: np.random.Generator, digits: np.ndarray, n_frames: int, num_digits: int = 2,
                          step_length: float = 0.1, image_size: int = 64) -> np.ndarray:
    """One sequence, float32 (n_frames, image_size, image_size) in [0, 1]."""
    canvas = image_size - DIGIT
    if canvas < 0:
        raise ConfigError(f"data.image_size: expected >= {DIGIT}, got {image_size}")
    out = np.zeros((n_frames, image_size, image_size), np.float32)
    for _ in range(num_digits):
        top, left = bouncing_trajectory(rng, n_frames, step_length, canvas)
        img = digits[rng.integers(len(digits))].astype(np.float32) / 255.0
        for t in range(n_frames):
            win = out[t, top[t]: top[t] + DIGIT, left[t]: left[t] + DIGIT]
            np.maximum(win, img, out=win)
    return out


class MovingMNIST(EpochMixin, torch.utils.data.Dataset):
    """Sequences generated on demand; item i is a function of (seed, epoch, i) only.

    ``fixed=True`` ignores the epoch (validation / test sets). Items are dicts
    ``{"frames_in": (in_frames, 1, H, W), "frames_out": (out_frames, 1, H, W)}``.
    """

    def __init__(self, digits: np.ndarray, size: int, in_frames: int, out_frames: int, seed: int,
                 fixed: bool, num_digits: int = 2, step_length: float = 0.1, image_size: int = 64):
        self.digits, self.size, self.seed, self.fixed = digits, int(size), int(seed), fixed
        self.in_frames, self.out_frames = in_frames, out_frames
        self.num_digits, self.step_length, self.image_size = num_digits, step_length, image_size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < self.size:
            raise IndexError(i)
        rng = index_rng(self.seed, 0 if self.fixed else self.epoch, i)
        seq = moving_mnist_sequence(rng, self.digits, self.in_frames + self.out_frames, self.num_digits,
                                    self.step_length, self.image_size)
        seq = torch.from_numpy(seq).unsqueeze(1)  # (T, 1, H, W)
        return {"frames_in": seq[: self.in_frames], "frames_out": seq[self.in_frames:]}


class FixedMovingMNIST(torch.utils.data.Dataset):
    """The official test file: time-major (T, N, H, W) uint8 -> items of (T, 1, H, W) / 255."""

    def __init__(self, path: Path, in_frames: int, out_frames: int, size: int = 0):
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot read .npy ({e})") from None
        if arr.ndim != 4 or arr.dtype != np.uint8:
            raise DataError(f"{path}: expected uint8 (T, N, H, W) like (20, 10000, 64, 64), got {arr.dtype} {arr.shape}")
        if in_frames + out_frames > arr.shape[0]:
            raise ConfigError(f"data: in_frames+out_frames={in_frames + out_frames} exceeds the {arr.shape[0]} frames in {path}")
        self.arr, self.in_frames, self.out_frames = arr, in_frames, out_frames
        self.size = min(size, arr.shape[1]) if size > 0 else arr.shape[1]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < self.size:
            raise IndexError(i)
        t = self.in_frames + self.out_frames
        seq = torch.from_numpy(np.asarray(self.arr[:t, i], dtype=np.float32) / 255.0).unsqueeze(1)  # (T, 1, H, W)
        return {"frames_in": seq[: self.in_frames], "frames_out": seq[self.in_frames:]}


def openstl_test_set(meta: dict) -> "FixedMovingMNIST":
    """OpenSTL's Moving MNIST test set (all 10,000 sequences of ``mnist_test_seq.npy``, first
    ``in_frames`` frames in, the next ``out_frames`` the targets, / 255) for a bundle's ``meta``;
    a missing file is a one-line DataError saying where to put it."""
    rel, root = meta["official_test"], meta.get("data_root")
    roots = [str(r / rel) for _, r in data_roots(root)]
    try:
        path = locate(rel, root)
    except DataError:
        raise DataError(f"eval.protocol=openstl scores on the official Moving MNIST test file, not found; put "
                        f"mnist_test_seq.npy (from http://www.cs.toronto.edu/~nitish/unsupervised_video/) at one of: "
                        f"{', '.join(roots)}") from None
    return FixedMovingMNIST(path, meta["in_frames"], meta["out_frames"], 0)


# --------------------------------------------------------------------------- registered datasets


@dataclass
class MovingMNISTConfig:
    digits: str = "video/mnist/t10k-images-idx3-ubyte.gz"  # IDX3 images the digits come from
    split_digits: bool = True  # disjoint 80/10/10 digit subsets for train/val/test (see module doc)
    test: Literal["generated", "official"] = "generated"
    official_test: str = "video/moving_mnist/mnist_test_seq.npy"
    in_frames: int = 10
    out_frames: int = 10
    num_digits: int = 2
    image_size: int = 64
    step_length: float = 0.1
    train_size: int = 10000  # sequences per epoch, generated on the fly
    val_size: int = 1000
    test_size: int = 10000  # generated: number of fixed sequences; official: first N (0 = all)
    seed: int = 0
    batch_size: int = 16
    eval_batch_size: int = 16

    def validate(self) -> None:
        if self.in_frames < 1 or self.out_frames < 1:
            raise ConfigError("data.in_frames and data.out_frames must be >= 1")
        if min(self.train_size, self.val_size) < 1 or self.test_size < 0:
            raise ConfigError("data.train_size and data.val_size must be >= 1, data.test_size >= 0")


def build_moving_mnist(cfg: MovingMNISTConfig, data_root, train_frames: int | None = None) -> DataBundle:
    digits = load_digits(cfg.digits, data_root)
    if cfg.split_digits:
        tr, va, te = split_digits(len(digits))
    else:
        tr = va = te = np.arange(len(digits))
    common = dict(num_digits=cfg.num_digits, step_length=cfg.step_length, image_size=cfg.image_size)
    t_in = cfg.in_frames
    t_out = cfg.out_frames
    if train_frames is not None:  # long sequences: train on `train_frames` frames (teacher forcing)
        t_in = min(cfg.in_frames, train_frames - 1)
        t_out = train_frames - t_in
    train = MovingMNIST(digits[tr], cfg.train_size, t_in, t_out, cfg.seed, False, **common)
    val = MovingMNIST(digits[va], cfg.val_size, cfg.in_frames, cfg.out_frames, VAL_SEED, True, **common)
    if cfg.test == "official":
        path = locate(cfg.official_test, data_root, None, hint=MMNIST_TEST_SPEC.how_to_get)
        test = FixedMovingMNIST(path, cfg.in_frames, cfg.out_frames, cfg.test_size)
    else:
        test = MovingMNIST(digits[te], cfg.test_size or 10000, cfg.in_frames, cfg.out_frames, TEST_SEED, True,
                           **common)
    return DataBundle(
        train=train, val=val, test=test, batch_size=cfg.batch_size, eval_batch_size=cfg.eval_batch_size,
        shuffle=True, drop_last=True,
        model_kwargs={"in_frames": cfg.in_frames, "out_frames": cfg.out_frames, "channels": 1,
                      "height": cfg.image_size, "width": cfg.image_size},
        meta={"dataset": "mmnist", "test": cfg.test, "step_length": cfg.step_length,
              # what eval.protocol=openstl needs to score on the official file (10->10 data only)
              **({"official_test": cfg.official_test, "data_root": None if data_root is None else str(data_root),
                  "in_frames": cfg.in_frames, "out_frames": cfg.out_frames} if train_frames is None else {})},
    )


@register_dataset("mmnist", config=MovingMNISTConfig)
def mmnist(cfg: MovingMNISTConfig, data_root=None) -> DataBundle:
    """Moving MNIST 10->10: on-the-fly train, fixed val/test (disjoint digits) or the official test file."""
    return build_moving_mnist(cfg, data_root)


@dataclass
class MovingMNISTLongConfig(MovingMNISTConfig):
    """ConvS5's long-horizon Moving MNIST: train on 300-frame sequences, condition on 100 and
    predict 400 at evaluation, step length 0.15."""

    in_frames: int = 100
    out_frames: int = 400
    train_frames: int = 300
    step_length: float = 0.15
    val_size: int = 64
    test_size: int = 256
    batch_size: int = 8
    eval_batch_size: int = 8

    def validate(self) -> None:
        super().validate()
        if self.train_frames < 2:
            raise ConfigError(f"data.train_frames: expected >= 2, got {self.train_frames}")
        if self.test == "official":
            raise ConfigError("data.test: the long-horizon set has no official file; use 'generated'")


@register_dataset("mmnist_long", config=MovingMNISTLongConfig)
def mmnist_long(cfg: MovingMNISTLongConfig, data_root=None) -> DataBundle:
    """Long-horizon Moving MNIST (ConvS5): train on 300 frames, evaluate 100 -> 400, step 0.15."""
    return build_moving_mnist(cfg, data_root, train_frames=cfg.train_frames)
