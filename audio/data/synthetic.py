"""A synthetic noisy-speech generator for tests: speech-like harmonic syllables + noise.

"Speech": syllables of 80-250 ms separated by 30-200 ms pauses; each syllable is a
harmonic series on a gliding f0 (90-250 Hz), harmonics weighted by two formant bumps,
under a Hann envelope. "Noise": white, pink (1/f power) or brown (1/f^2), mixed at an SNR
drawn from ``snr_db``. Everything is drawn from ``index_rng(seed, epoch, index)``; the val
and test splits use their own fixed streams. Useful to test the pipeline, not to train a
model for real speech.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ostinato.core.data import DataBundle, EpochMixin, index_rng
from ostinato.core.registry import register_dataset

_VAL, _TEST = 2_000_003, 3_000_017


def synth_speech(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    out = np.zeros(n)
    pos = int(rng.integers(0, int(0.1 * sr)))
    while pos < n:
        dur = int(rng.uniform(0.08, 0.25) * sr)
        t = np.arange(dur) / sr
        f0 = rng.uniform(90, 250) * (1 + rng.uniform(-0.15, 0.15) * t / max(t[-1], 1e-9))
        phase = 2 * np.pi * np.cumsum(f0) / sr
        formants = rng.uniform([300, 900], [900, 2500])
        seg = np.zeros(dur)
        for k in range(1, int(sr / 2 / f0.max())):
            fk = k * f0.mean()
            w = sum(np.exp(-0.5 * ((fk - f) / 150.0) ** 2) for f in formants) + 0.05 / k
            seg += w * np.sin(k * phase)
        seg *= np.hanning(dur)
        end = min(n, pos + dur)
        out[pos:end] += seg[: end - pos]
        pos = end + int(rng.uniform(0.03, 0.2) * sr)
    return 0.1 * out / (np.abs(out).max() + 1e-9)


def synth_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    white = rng.standard_normal(n)
    kind = rng.integers(0, 3)
    if kind == 0:
        return white
    spec = np.fft.rfft(white)
    f = np.arange(len(spec)) + 1.0
    spec /= f ** (0.5 if kind == 1 else 1.0)
    return np.fft.irfft(spec, n)


def synth_pair(rng: np.random.Generator, n: int, sr: int, snr_db: tuple[float, float]) -> dict[str, torch.Tensor]:
    clean = synth_speech(rng, n, sr)
    noise = synth_noise(rng, n)
    snr = rng.uniform(*snr_db)
    noise *= np.sqrt(np.mean(clean**2) / (np.mean(noise**2) * 10 ** (snr / 10)))
    return {
        "noisy": torch.from_numpy((clean + noise).astype(np.float32)),  # (n,)
        "clean": torch.from_numpy(clean.astype(np.float32)),  # (n,)
    }


class SyntheticPairs(EpochMixin, torch.utils.data.Dataset):
    def __init__(self, n_items: int, length: int, sr: int, snr_db, seed: int, fixed_epoch: int | None = None):
        self.n, self.length, self.sr, self.snr_db, self.seed = n_items, length, sr, snr_db, seed
        self.fixed_epoch, self.epoch = fixed_epoch, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        epoch = self.epoch if self.fixed_epoch is None else self.fixed_epoch
        return synth_pair(index_rng(self.seed, epoch, i), self.length, self.sr, self.snr_db)


@dataclass
class SpeechSyntheticConfig:
    sample_rate: int = 16000
    train_items: int = 64
    eval_items: int = 4
    seconds: float = 1.0
    snr_db: tuple[float, float] = (0.0, 10.0)
    batch_size: int = 4
    seed: int = 0


@register_dataset("speech_synthetic", config=SpeechSyntheticConfig)
def speech_synthetic(cfg: SpeechSyntheticConfig, data_root=None) -> DataBundle:
    """Synthetic speech-like harmonic syllables in white/pink/brown noise (tests only)."""
    n = int(round(cfg.seconds * cfg.sample_rate))
    sr = cfg.sample_rate
    return DataBundle(
        train=SyntheticPairs(cfg.train_items, n, sr, cfg.snr_db, cfg.seed),
        val=SyntheticPairs(cfg.eval_items, n, sr, cfg.snr_db, cfg.seed, _VAL),
        test=SyntheticPairs(cfg.eval_items, n, sr, cfg.snr_db, cfg.seed, _TEST),
        batch_size=cfg.batch_size, eval_batch_size=1,
        model_kwargs={"sample_rate": sr}, meta={"sample_rate": sr}, inference={"sample_rate": sr},
    )
