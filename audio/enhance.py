"""Enhancement of files of any length with bounded memory: the library behind the
``ostinato enhance`` verb (its command line is in ``cli.py``).

    ostinato enhance CHECKPOINT in.wav [more.wav ...] -o OUTDIR [--chunk-seconds S]
                     [--spectrogram out.png] [--keep-rate] [--threads N] [--official]

Each input (any sample rate soundfile reads; mono, or multi-channel averaged to mono) is
read block by block, resampled to the model's rate with torchaudio (``BlockResampler``:
exact, the blocks overlap), enhanced, and written as 16-bit PCM wav ``OUTDIR/<name>.wav``
at the model's rate (``--keep-rate``: resampled back to the input's rate). Memory is
bounded by the chunk length, not the file length:

- a causal model (``frcrn_causal``) runs as a stream (``FRCRNStream``): the output equals
  whole-file processing;
- a non-causal model runs on windows of ``chunk_seconds`` with ``context_seconds`` of audio
  on each side that are processed and then discarded (the released decoder uses 1 s
  windows with 0.25 s given up on each side in the same way).

The real-time factor printed is processing time / input duration (reading, resampling,
enhancing and writing included).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import torch

from ostinato.core.errors import ConfigError, DataError


class BlockResampler:
    """Streaming ``torchaudio.functional.resample`` whose concatenated output equals
    resampling the whole signal at once: each step resamples ``k`` periods of
    ``orig/g`` input samples with ``margin`` periods of real (or, at the edges, zero)
    context on each side and keeps the ``k * new/g`` outputs in the middle."""

    def __init__(self, orig: int, new: int, periods: int = 64):
        g = math.gcd(orig, new)
        self.orig, self.new, self.pi, self.po = orig, new, orig // g, new // g
        self.k = periods
        width = math.ceil(6 * self.pi / (min(self.pi, self.po) * 0.99))  # torchaudio's kernel half-width
        self.margin = math.ceil((width + self.pi) / self.pi) + 1  # periods of context per side
        self.buf = np.zeros(self.margin * self.pi, dtype=np.float32)  # left context: zeros, as torchaudio pads
        self.n_in = 0
        self.n_out = 0

    def _run(self, seg: np.ndarray, periods: int) -> np.ndarray:
        import torchaudio.functional as AF

        y = AF.resample(torch.from_numpy(seg), self.orig, self.new).numpy()
        a = self.margin * self.po
        return y[a : a + periods * self.po]

    def push(self, x: np.ndarray) -> np.ndarray:
        if self.orig == self.new:
            return x
        self.n_in += len(x)
        self.buf = np.concatenate([self.buf, x.astype(np.float32)])
        out = []
        step = self.k * self.pi
        while len(self.buf) >= (2 * self.margin) * self.pi + step:
            seg = self.buf[: (2 * self.margin) * self.pi + step]
            out.append(self._run(seg, self.k))
            self.buf = self.buf[step:]
        y = np.concatenate(out) if out else np.zeros(0, np.float32)
        self.n_out += len(y)
        return y

    def flush(self) -> np.ndarray:
        if self.orig == self.new:
            return np.zeros(0, np.float32)
        total = math.ceil(self.n_in * self.new / self.orig)
        rest = len(self.buf) - self.margin * self.pi  # real samples not yet resampled
        periods = math.ceil(max(rest, 0) / self.pi)
        seg = np.pad(self.buf, (0, (periods + self.margin) * self.pi - rest))
        y = self._run(seg, periods)[: total - self.n_out]
        self.n_out += len(y)
        return y


class ChunkEnhancer:
    """Bounded-memory enhancement of a stream of samples at the model's rate."""

    def __init__(self, model, chunk_seconds: float = 4.0, context_seconds: float = 0.5):
        self.model = model
        sr = model.sample_rate
        self.causal = model.cfg.causal
        if self.causal:
            self.stream = model.stream(1)
            return
        if chunk_seconds <= 0:
            raise ConfigError(f"--chunk-seconds={chunk_seconds}: expected > 0")
        self.chunk = max(1, int(round(chunk_seconds * sr)))
        self.ctx = int(round(context_seconds * sr))
        self.buf = np.zeros(0, np.float32)
        self.done = 0  # samples of output emitted
        self.offset = 0  # stream position of buf[0]

    def _enhance(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            p = next(self.model.parameters())
            return self.model(torch.from_numpy(x).to(p.device, p.dtype)[None])[0].cpu().numpy()

    def push(self, x: np.ndarray, final: bool = False) -> np.ndarray:
        if self.causal:
            with torch.no_grad():
                y = self.stream.push(torch.from_numpy(x)[None])[0]
                if final:
                    y = torch.cat([y, self.stream.flush()[0]])
            return y.cpu().numpy()
        self.buf = np.concatenate([self.buf, x])
        out = []
        while len(self.buf) - (self.done - self.offset) >= self.chunk + self.ctx or (final and self.done < self.offset + len(self.buf)):
            start = self.done - self.offset  # index in buf of the first sample to emit
            end = min(start + self.chunk, len(self.buf))
            seg = self.buf[max(0, start - self.ctx) : min(len(self.buf), end + self.ctx)]
            y = self._enhance(seg)
            a = start - max(0, start - self.ctx)
            out.append(y[a : a + end - start])
            self.done += end - start
            drop = max(0, self.done - self.offset - self.ctx)  # keep ctx samples of left context
            self.buf, self.offset = self.buf[drop:], self.offset + drop
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def read_blocks(path: Path, block: int) -> tuple[int, int, Iterator[np.ndarray]]:
    """(sample rate, frames, iterator of mono float32 blocks); channels are averaged.

    A first pass over the file (block by block, bounded memory) rejects NaN or infinite
    samples before anything is written, and warns once if a wav is shorter than its header says.
    """
    from .data.wavio import check_finite, check_length

    try:
        f = sf.SoundFile(str(path))
        n = 0
        for b in f.blocks(blocksize=block, dtype="float32", always_2d=True):
            check_finite(path, b, f.samplerate, offset=n)
            n += len(b)
        f.seek(0)
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{path}: unreadable audio file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    check_length(path, n)

    def gen():
        with f:
            for b in f.blocks(blocksize=block, dtype="float32", always_2d=True):
                yield b.mean(axis=1)  # (n,)

    return f.samplerate, f.frames, gen()


def enhance_file(model, src: Path, dst: Path, chunk_seconds: float = 4.0, keep_rate: bool = False,
                 spectrogram: Path | None = None, spec_seconds: float = 60.0) -> dict[str, float]:
    """Enhance one file into a 16-bit wav; returns {"seconds", "rtf", "sample_rate"}."""
    t0 = time.perf_counter()
    sr_model = model.sample_rate
    sr_in, frames, blocks = read_blocks(src, 1 << 16)
    if frames == 0:
        raise DataError(f"{src}: empty audio file")
    up = BlockResampler(sr_in, sr_model)
    enh = ChunkEnhancer(model, chunk_seconds)
    sr_out = sr_in if keep_rate else sr_model
    down = BlockResampler(sr_model, sr_out)
    keep = int(spec_seconds * sr_model) if spectrogram else 0
    noisy_keep, enh_keep = [], []
    dst.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(str(dst), "w", samplerate=sr_out, channels=1, subtype="PCM_16") as out:
        def emit(x_model: np.ndarray, y: np.ndarray) -> None:
            if keep:
                noisy_keep.append(x_model[: max(0, keep - sum(map(len, noisy_keep)))])
                enh_keep.append(y[: max(0, keep - sum(map(len, enh_keep)))])
            z = down.push(y)
            out.write(np.clip(z, -1.0, 1.0))

        for block in blocks:
            x = up.push(block)
            emit(x, enh.push(x))
        x = up.flush()
        emit(x, enh.push(x, final=True))
        out.write(np.clip(down.flush(), -1.0, 1.0))
    dt = time.perf_counter() - t0
    if spectrogram:
        save_spectrograms(np.concatenate(noisy_keep), np.concatenate(enh_keep), sr_model, spectrogram, src.name)
    dur = frames / sr_in
    return {"seconds": dur, "rtf": dt / dur, "sample_rate": sr_out}


def save_spectrograms(noisy: np.ndarray, enhanced: np.ndarray, sr: int, path: Path, title: str) -> None:
    """Noisy and enhanced log-magnitude spectrograms side by side (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, x, name in zip(axes, (noisy, enhanced), ("noisy", "enhanced")):
        ax.specgram(x + 1e-9, NFFT=512, Fs=sr, noverlap=384, cmap="magma", vmin=-120)
        ax.set_title(f"{title}: {name}")
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("frequency (Hz)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
