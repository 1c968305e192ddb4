"""Paired noisy/clean speech: VoiceBank+DEMAND folders, clean/ + noisy/ folders, .scp lists.

``speech_pairs`` trains on random crops of real pairs and evaluates on whole utterances.
Pair sources are described in :mod:`ostinato.audio.data.wavio`; relative paths are looked
up under the data roots (``--data-root``, ``$OSTINATO_DATA``, ``~/.cache/ostinato``, then
the three VoiceBank+DEMAND pairs shipped in ``ostinato/audio/samples``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ostinato.core.data import DataBundle, EpochMixin, index_rng, locate
from ostinato.core.errors import ConfigError, DataError
from ostinato.core.registry import register_dataset

from .wavio import Pair, find_pairs, read_pair

SHIPPED = Path(__file__).resolve().parent.parent / "samples"


def locate_source(relpath: str, data_root) -> Path:
    return locate(relpath, data_root, shipped=SHIPPED, hint="pass --data-root DIR or set OSTINATO_DATA (see `ostinato data where`)")


def check_audio(path: Path, sample_rate: int, resample: bool):
    """The header of a mono audio file at ``sample_rate`` (any rate when ``resample``); DataError otherwise."""
    try:
        info = sf.info(str(path))
    except Exception as e:
        raise DataError(f"{path}: unreadable audio file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if info.channels != 1:
        raise DataError(f"{path}: {info.channels} channels, expected mono (1 channel)")
    if info.samplerate != sample_rate and not resample:
        raise DataError(f"{path}: sample rate {info.samplerate} Hz, expected {sample_rate} Hz (set data.resample=true to resample)")
    return info


def check_pair(pair: Pair, sample_rate: int, resample: bool) -> int:
    """Validate a pair from the file headers; returns its length in samples at ``sample_rate``."""
    infos = [check_audio(p, sample_rate, resample) for p in (pair.noisy, pair.clean)]
    if infos[0].samplerate != infos[1].samplerate:
        raise DataError(f"{pair.noisy}: {infos[0].samplerate} Hz but its clean pair {pair.clean} is {infos[1].samplerate} Hz")
    if infos[0].frames != infos[1].frames:
        raise DataError(
            f"{pair.noisy}: {infos[0].frames} samples but its clean pair {pair.clean} has {infos[1].frames}; expected equal lengths"
        )
    return int(round(infos[0].frames * sample_rate / infos[0].samplerate))


def crop_or_pad(x: np.ndarray, length: int, start: int) -> np.ndarray:
    """x[start:start+length], zero-padded at the end when x is shorter."""
    seg = x[start : start + length]
    return np.pad(seg, (0, length - len(seg))) if len(seg) < length else seg


class PairCrops(EpochMixin, torch.utils.data.Dataset):
    """Random fixed-length crops of real pairs; the crop of item i depends on (seed, epoch, i)."""

    def __init__(self, pairs: list[Pair], sample_rate: int, crop: int, resample: bool, seed: int):
        self.pairs, self.sr, self.crop, self.resample, self.seed = pairs, sample_rate, crop, resample, seed
        self.lengths = [check_pair(p, sample_rate, resample) for p in pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        noisy, clean = read_pair(self.pairs[i], self.sr, self.resample)
        rng = index_rng(self.seed, self.epoch, i)
        start = int(rng.integers(0, max(1, len(clean) - self.crop + 1)))
        return {
            "noisy": torch.from_numpy(crop_or_pad(noisy, self.crop, start)),  # (crop,)
            "clean": torch.from_numpy(crop_or_pad(clean, self.crop, start)),  # (crop,)
        }


class PairUtterances(torch.utils.data.Dataset):
    """Whole utterances for evaluation: {"noisy": (N,), "clean": (N,), "name": str}."""

    def __init__(self, pairs: list[Pair], sample_rate: int, resample: bool):
        self.pairs, self.sr, self.resample = pairs, sample_rate, resample
        for p in pairs:
            check_pair(p, sample_rate, resample)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        noisy, clean = read_pair(self.pairs[i], self.sr, self.resample)
        return {"noisy": torch.from_numpy(noisy), "clean": torch.from_numpy(clean), "name": self.pairs[i].name}


def disjoint(train: list[Pair], held_out: list[Pair], what: str) -> None:
    """Raise if a held-out pair is also a training pair (same clean file)."""
    seen = {p.clean.resolve() for p in train}
    for p in held_out:
        if p.clean.resolve() in seen:
            raise ConfigError(f"{p.clean}: used for training and for {what}; held-out pairs must not be trained on")


@dataclass
class SpeechPairsConfig:
    train: str = "speech/voicebank_demand_test"  # pair source (folder or .scp), under a data root
    train_names: list[str] = field(default_factory=list)  # restrict to these utterance names; []: all
    val: str = ""  # pair source for validation; "": no validation split
    val_names: list[str] = field(default_factory=list)
    test: str = ""  # pair source for the test split; "": none
    test_names: list[str] = field(default_factory=list)
    sample_rate: int = 16000
    resample: bool = False  # resample files at another rate (else: a DataError naming the file)
    crop_seconds: float = 1.0  # length of the random training crops (FRCRN recipe: 1 s)
    batch_size: int = 4
    seed: int = 777  # crop positions: index_rng(seed, epoch, index)

    def validate(self) -> None:
        if self.crop_seconds <= 0:
            raise ConfigError(f"data.crop_seconds={self.crop_seconds}: expected > 0")
        if self.sample_rate <= 0:
            raise ConfigError(f"data.sample_rate={self.sample_rate}: expected > 0")


@register_dataset("speech_pairs", config=SpeechPairsConfig)
def speech_pairs(cfg: SpeechPairsConfig, data_root=None) -> DataBundle:
    """Real noisy/clean pairs (VoiceBank+DEMAND folders, clean/+noisy/, .scp): train on random crops."""
    train = find_pairs(locate_source(cfg.train, data_root), cfg.train_names)
    splits = {}
    for name, src, names in (("val", cfg.val, cfg.val_names), ("test", cfg.test, cfg.test_names)):
        if src:
            pairs = find_pairs(locate_source(src, data_root), names)
            if name == "test":
                disjoint(train, pairs, "testing")
            splits[name] = PairUtterances(pairs, cfg.sample_rate, cfg.resample)
    crop = int(round(cfg.crop_seconds * cfg.sample_rate))
    return DataBundle(
        train=PairCrops(train, cfg.sample_rate, crop, cfg.resample, cfg.seed),
        val=splits.get("val"),
        test=splits.get("test"),
        batch_size=cfg.batch_size,
        eval_batch_size=1,
        model_kwargs={"sample_rate": cfg.sample_rate},
        meta={"sample_rate": cfg.sample_rate},
        inference={"sample_rate": cfg.sample_rate},
    )
