"""TaxiBJ crowd flows (Zhang et al., ST-ResNet 2017): 4 -> 4 frames of 2 x 32 x 32 (in/out flow).

Two formats under a data root:

- ``video/taxibj/dataset.npz`` (OpenSTL): arrays ``X_train, Y_train, X_test, Y_test`` shaped
  (N, 4, 2, 32, 32) in [-1, 1]; mapped to [0, 1] by (x + 1) / 2 exactly as OpenSTL.
  OpenSTL validates on the test set; here validation is the last ``val_frac`` of the
  training windows (assumed in time order), with the ``in+out-1`` windows before it dropped
  from training so that no frame is shared between train and validation windows.
- a folder with the original ``BJ13_M32x32_T30_InOut.h5`` ... ``BJ16_M32x32_T30_InOut.h5``
  (datasets ``data`` (N, 2, 32, 32) and ``date`` b'YYYYMMDDSS', SS = half-hour slot 01-48).
  ST-ResNet's protocol: negative values set to 0, the last 28 days are the test period,
  min-max scaling to [-1, 1] fitted on the data before it, then (x + 1) / 2 as above; windows
  are taken only over consecutive time slots. The same ``val_frac`` rule makes validation.
  (OpenSTL ships a pre-windowed copy whose construction is not in its repository, so numbers
  on the .h5 route may differ slightly from its table.)
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ostinato.core.data import DataBundle, DatasetSpec, FileSpec, locate
from ostinato.core.errors import ConfigError, DataError
from ostinato.core.registry import register_dataset

TAXIBJ_SPEC = DatasetSpec(
    name="taxibj",
    domain="vision",
    files=(FileSpec("video/taxibj/dataset.npz"),),
    source="ST-ResNet (Zhang et al. 2017); OpenSTL's dataset.npz (tools/prepare_data/download_taxibj.sh)",
    licence="research use (Microsoft Research TaxiBJ)",
    description="TaxiBJ 4->4, 2x32x32; OpenSTL npz or the original BJ13-16 .h5 files",
    how_to_get="run OpenSTL's tools/prepare_data/download_taxibj.sh and copy data/taxibj/dataset.npz to "
               "<data root>/video/taxibj/, or put BJ13..16_M32x32_T30_InOut.h5 in a folder and set data.path to it",
)


class Pairs(torch.utils.data.Dataset):
    """(N, T_in, C, H, W) and (N, T_out, C, H, W) float arrays in [0, 1] -> item dicts."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"frames_in": torch.from_numpy(np.asarray(self.x[i], np.float32)),
                "frames_out": torch.from_numpy(np.asarray(self.y[i], np.float32))}


def split_val(x: np.ndarray, y: np.ndarray, val_frac: float, gap: int):
    n_val = int(round(len(x) * val_frac))
    if n_val == 0:
        return (x, y), None
    cut = len(x) - n_val
    return (x[: max(0, cut - gap)], y[: max(0, cut - gap)]), (x[cut:], y[cut:])


def load_npz(path: Path, in_frames: int, out_frames: int):
    try:
        z = np.load(path)
        arrs = {k: z[k] for k in ("X_train", "Y_train", "X_test", "Y_test")}
    except KeyError as e:
        raise DataError(f"{path}: expected arrays X_train, Y_train, X_test, Y_test; missing {e}") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read .npz ({e})") from None
    for k, a in arrs.items():
        t = in_frames if k.startswith("X") else out_frames
        if a.ndim != 5 or a.shape[1] != t:
            raise DataError(f"{path}: {k} expected shape (N, {t}, C, H, W), got {a.shape}")
    return {k: ((a.astype(np.float32) + 1.0) / 2.0) for k, a in arrs.items()}


def _slot_index(date: bytes) -> int:
    s = date.decode() if isinstance(date, bytes) else str(date)
    day = dt.date(int(s[:4]), int(s[4:6]), int(s[6:8])).toordinal()
    return day * 48 + int(s[8:10]) - 1


def load_h5_folder(folder: Path, in_frames: int, out_frames: int, test_days: int = 28):
    import h5py

    files = sorted(folder.glob("BJ*_M32x32_T30_InOut.h5"))
    if not files:
        raise DataError(f"{folder}: no BJ*_M32x32_T30_InOut.h5 files")
    data, slots = [], []
    for f in files:
        try:
            with h5py.File(f, "r") as h:
                data.append(np.asarray(h["data"], np.float32))
                slots.append(np.array([_slot_index(d) for d in h["date"][:]]))
        except (OSError, KeyError) as e:
            raise DataError(f"{f}: expected HDF5 datasets 'data' and 'date' ({e})") from None
    x = np.concatenate(data)  # (N, 2, 32, 32)
    s = np.concatenate(slots)
    order = np.argsort(s, kind="stable")
    x, s = np.maximum(x[order], 0.0), s[order]
    test_start = s[-1] - test_days * 48 + 1
    lo, hi = x[s < test_start].min(), x[s < test_start].max()
    # ST-ResNet's scaling to [-1, 1], then (x + 1) / 2, is min-max scaling to [0, 1]; the
    # guard only matters for constant data.
    x = (x - lo) / max(float(hi - lo), 1e-12)
    t = in_frames + out_frames
    ok = [i for i in range(len(s) - t + 1) if s[i + t - 1] - s[i] == t - 1]
    win = np.stack([x[i: i + t] for i in ok])  # (W, T, 2, 32, 32)
    is_test = np.array([s[i] >= test_start for i in ok])
    is_train = np.array([s[i + t - 1] < test_start for i in ok])  # windows straddling the boundary are dropped
    tr, te = win[is_train], win[is_test]
    return {"X_train": tr[:, :in_frames], "Y_train": tr[:, in_frames:], "X_test": te[:, :in_frames],
            "Y_test": te[:, in_frames:]}


@dataclass
class TaxiBJConfig:
    path: str = "video/taxibj/dataset.npz"  # the OpenSTL .npz, or a folder of BJ*_M32x32_T30_InOut.h5
    in_frames: int = 4
    out_frames: int = 4
    val_frac: float = 0.1
    batch_size: int = 16
    eval_batch_size: int = 16

    def validate(self) -> None:
        if not 0 <= self.val_frac < 1:
            raise ConfigError(f"data.val_frac: expected a fraction in [0, 1), got {self.val_frac}")


@register_dataset("taxibj", config=TaxiBJConfig)
def taxibj(cfg: TaxiBJConfig, data_root=None) -> DataBundle:
    """TaxiBJ 4->4 (OpenSTL .npz or original .h5), [-1,1] -> [0,1]; val from the end of train."""
    path = locate(cfg.path, data_root, hint=TAXIBJ_SPEC.how_to_get)
    arrs = load_h5_folder(path, cfg.in_frames, cfg.out_frames) if path.is_dir() else \
        load_npz(path, cfg.in_frames, cfg.out_frames)
    (xt, yt), val = split_val(arrs["X_train"], arrs["Y_train"], cfg.val_frac, cfg.in_frames + cfg.out_frames - 1)
    c, h, w = arrs["X_train"].shape[2:]
    return DataBundle(
        train=Pairs(xt, yt), val=Pairs(*val) if val else None, test=Pairs(arrs["X_test"], arrs["Y_test"]),
        batch_size=cfg.batch_size, eval_batch_size=cfg.eval_batch_size, drop_last=True,
        model_kwargs={"in_frames": cfg.in_frames, "out_frames": cfg.out_frames, "channels": int(c),
                      "height": int(h), "width": int(w)},
        meta={"dataset": "taxibj"},
    )
