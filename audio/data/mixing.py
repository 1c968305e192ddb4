"""On-the-fly noisy speech: clean speech + a noise segment at an SNR drawn from a range.

Training item ``i`` of epoch ``e`` is drawn from ``index_rng(seed, e, i)``:

1. a clean source, chosen with probability proportional to its duration, and a random crop
   of ``crop_seconds`` (zero-padded at the end when the source is shorter);
2. a noise source (same rule) and a random segment of the crop's length (looped when the
   noise is shorter). Noise comes from noise files and/or from real pairs as
   ``noisy - clean`` (VoiceBank+DEMAND is mixed additively, so this is the DEMAND noise);
   with probability ``synthetic_noise`` it is white, pink or brown noise instead (the
   spec's substitute for the DEMAND corpus, which is not in the shared data);
3. an SNR ``s ~ U(snr_db)``: the noise is scaled so that 10 log10(P_clean / P_noise) = s,
   with P_clean the mean power of the *whole* clean source (a crop of a pause still gets
   noise at the utterance's SNR) and P_noise the power of the segment;
4. a gain ``g ~ U(gain_db)`` applied to both the mixture and the clean target; if the
   mixture would clip (peak > 0.99), both are scaled down together.

The validation split is either real pairs (``val``) or a fixed set of such mixtures made
from ``val_clean`` (speech never used for training) with a separate, epoch-independent
stream. The test split is real pairs. Held-out pairs are checked to share no clean file
with the training sources.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ostinato.core.data import DataBundle, EpochMixin, index_rng
from ostinato.core.errors import ConfigError, DataError
from ostinato.core.registry import register_dataset

from .paired import PairUtterances, check_audio, check_pair, disjoint, locate_source
from .synthetic import synth_noise
from .wavio import find_pairs, list_audio, read_audio, read_pair

_VAL_EPOCH = 1_000_003  # the validation mixtures' private stream: index_rng(seed, _VAL_EPOCH, i)


class Source:
    """A clean or noise signal read on demand: a file, or ``noisy - clean`` of a pair."""

    def __init__(self, path: Path, sample_rate: int, resample: bool, pair=None):
        self.path, self.pair, self.sr, self.resample = path, pair, sample_rate, resample
        if pair is not None:
            self.length = check_pair(pair, sample_rate, resample)
            return
        info = check_audio(path, sample_rate, resample)
        self.length = int(round(info.frames * sample_rate / info.samplerate))
        if self.length == 0:
            raise DataError(f"{path}: empty audio file")

    def load(self) -> np.ndarray:
        if self.pair is not None:
            noisy, clean = read_pair(self.pair, self.sr, self.resample)
            return noisy - clean
        return read_audio(self.path, self.sr, self.resample)[0]


class SourceCache:
    """Decoded (and resampled) sources, least recently used first out beyond ``budget_mb``."""

    def __init__(self, budget_mb: int):
        self.budget = budget_mb * 2**20
        self.items: OrderedDict[int, tuple[np.ndarray, float]] = OrderedDict()

    def get(self, key: int, source: Source) -> tuple[np.ndarray, float]:
        """(signal, mean power) of a source."""
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        x = source.load()
        val = (x, float(np.mean(x.astype(np.float64) ** 2)) if len(x) else 0.0)
        self.items[key] = val
        while sum(v[0].nbytes for v in self.items.values()) > self.budget and len(self.items) > 1:
            self.items.popitem(last=False)
        return val


def _pick(rng: np.random.Generator, sources: list[Source]) -> int:
    w = np.array([s.length for s in sources], dtype=np.float64)
    return int(rng.choice(len(sources), p=w / w.sum()))


def mix(rng, clean_sources, noise_sources, cache_c, cache_n, length, snr_db, gain_db, p_synth=0.0) -> dict[str, torch.Tensor]:
    """One mixture (see module doc); returns {"noisy": (length,), "clean": (length,)}."""
    ci = _pick(rng, clean_sources)
    clean_full, p_clean = cache_c.get(ci, clean_sources[ci])
    start = int(rng.integers(0, max(1, len(clean_full) - length + 1)))
    clean = clean_full[start : start + length]
    clean = np.pad(clean, (0, length - len(clean)))
    if not noise_sources or rng.uniform() < p_synth:
        noise = synth_noise(rng, length)
    else:
        ni = _pick(rng, noise_sources)
        noise_full, _ = cache_n.get(ni, noise_sources[ni])
        nstart = int(rng.integers(0, len(noise_full)))
        reps = int(np.ceil((nstart + length) / len(noise_full)))
        noise = np.tile(noise_full, reps)[nstart : nstart + length]  # looped when short
    snr = rng.uniform(*snr_db)
    p_noise = float(np.mean(noise.astype(np.float64) ** 2))
    scale = np.sqrt(p_clean / (p_noise * 10 ** (snr / 10))) if p_noise > 0 and p_clean > 0 else 0.0
    noisy = clean + scale * noise
    g = 10 ** (rng.uniform(*gain_db) / 20)
    peak = float(np.max(np.abs(noisy))) * g
    if peak > 0.99:
        g *= 0.99 / peak
    return {
        "noisy": torch.from_numpy((g * noisy).astype(np.float32)),  # (length,)
        "clean": torch.from_numpy((g * clean).astype(np.float32)),  # (length,)
    }


class MixDataset(EpochMixin, torch.utils.data.Dataset):
    def __init__(self, clean, noise, sample_rate, crop, snr_db, gain_db, n_items, seed, cache_mb, epoch_fixed=None, p_synth=0.0):
        self.clean, self.noise, self.p_synth = clean, noise, p_synth
        self.crop, self.snr_db, self.gain_db, self.n, self.seed = crop, snr_db, gain_db, n_items, seed
        self.cache_c, self.cache_n = SourceCache(cache_mb), SourceCache(cache_mb)
        self.epoch_fixed = epoch_fixed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        epoch = self.epoch if self.epoch_fixed is None else self.epoch_fixed
        rng = index_rng(self.seed, epoch, i)
        return mix(rng, self.clean, self.noise, self.cache_c, self.cache_n, self.crop, self.snr_db, self.gain_db, self.p_synth)


@dataclass
class SpeechMixConfig:
    clean: list[str] = field(default_factory=list)  # clean speech files or folders
    pairs: list[str] = field(default_factory=list)  # pair sources: clean -> speech pool, noisy - clean -> noise pool
    pair_names: list[str] = field(default_factory=list)  # restrict `pairs` to these names; []: all
    noise: list[str] = field(default_factory=list)  # noise files or folders
    synthetic_noise: float = 0.0  # probability of white/pink/brown noise instead of a noise source
    snr_db: tuple[float, float] = (-5.0, 15.0)
    gain_db: tuple[float, float] = (-12.0, 0.0)
    crop_seconds: float = 1.0
    items_per_epoch: int = 400
    sample_rate: int = 16000
    resample: bool = False  # resample sources at other rates (torchaudio); else a DataError naming the file
    val: str = ""  # pair source of real validation pairs (alternative to val_clean); "": none
    val_names: list[str] = field(default_factory=list)
    val_clean: list[str] = field(default_factory=list)  # speech for fixed validation mixtures; []: none
    val_items: int = 8
    val_seconds: float = 3.0
    test: str = ""  # pair source of real noisy/clean test pairs; "": none
    test_names: list[str] = field(default_factory=list)
    batch_size: int = 4
    seed: int = 777
    cache_mb: int = 512  # decoded-audio cache per pool

    def validate(self) -> None:
        for key in ("snr_db", "gain_db"):
            lo, hi = getattr(self, key)
            if lo > hi:
                raise ConfigError(f"data.{key}={[lo, hi]}: expected [low, high] with low <= high")
        if self.crop_seconds <= 0 or self.val_seconds <= 0:
            raise ConfigError("data.crop_seconds and data.val_seconds must be > 0")
        if not self.clean and not self.pairs:
            raise ConfigError("data.clean and data.pairs are both empty: give clean speech to mix")
        if not self.noise and not self.pairs and self.synthetic_noise <= 0:
            raise ConfigError("data.noise and data.pairs are both empty and data.synthetic_noise is 0: give a noise source")
        if not 0.0 <= self.synthetic_noise <= 1.0:
            raise ConfigError(f"data.synthetic_noise={self.synthetic_noise}: expected a probability in [0, 1]")
        if self.val and self.val_clean:
            raise ConfigError("data.val and data.val_clean are both set: choose real pairs or fixed mixtures")


def _files(entries: list[str], data_root) -> list[Path]:
    out = []
    for e in entries:
        out.extend(list_audio(locate_source(e, data_root)))
    return out


@register_dataset("speech_mix", config=SpeechMixConfig)
def speech_mix(cfg: SpeechMixConfig, data_root=None) -> DataBundle:
    """On-the-fly mixing of clean speech and noise (files or noisy-clean of real pairs) at random SNRs."""
    sr, rs = cfg.sample_rate, cfg.resample
    pairs = [p for src in cfg.pairs for p in find_pairs(locate_source(src, data_root), cfg.pair_names)]
    clean = [Source(f, sr, rs) for f in _files(cfg.clean, data_root)]
    clean += [Source(p.clean, sr, rs) for p in pairs]
    noise = [Source(f, sr, rs) for f in _files(cfg.noise, data_root)]
    noise += [Source(p.noisy, sr, rs, pair=p) for p in pairs]
    train_files = {s.path.resolve() for s in clean}
    crop = int(round(cfg.crop_seconds * sr))
    train = MixDataset(clean, noise, sr, crop, cfg.snr_db, cfg.gain_db, cfg.items_per_epoch, cfg.seed, cfg.cache_mb,
                       p_synth=cfg.synthetic_noise)
    val = None
    if cfg.val:
        vpairs = find_pairs(locate_source(cfg.val, data_root), cfg.val_names)
        disjoint(pairs, vpairs, "validation")
        val = PairUtterances(vpairs, sr, rs)
    if cfg.val_clean:
        vclean = [Source(f, sr, rs) for f in _files(cfg.val_clean, data_root)]
        for s in vclean:
            if s.path.resolve() in train_files:
                raise ConfigError(f"{s.path}: in both data.clean/pairs and data.val_clean; validation speech must be unseen")
        vlen = int(round(cfg.val_seconds * sr))
        fixed = MixDataset(vclean, noise, sr, vlen, cfg.snr_db, (0.0, 0.0), cfg.val_items, cfg.seed, cfg.cache_mb, _VAL_EPOCH,
                           p_synth=cfg.synthetic_noise)
        val = [fixed[i] for i in range(cfg.val_items)]  # materialised once: identical every validation
    test = None
    if cfg.test:
        tpairs = find_pairs(locate_source(cfg.test, data_root), cfg.test_names)
        disjoint(pairs, tpairs, "testing")
        for p in tpairs:
            if p.clean.resolve() in train_files:
                raise ConfigError(f"{p.clean}: in data.clean and in the test pairs; held-out pairs must not be trained on")
        test = PairUtterances(tpairs, sr, rs)
    return DataBundle(
        train=train, val=val, test=test, batch_size=cfg.batch_size, eval_batch_size=1,
        model_kwargs={"sample_rate": sr}, meta={"sample_rate": sr}, inference={"sample_rate": sr},
    )
