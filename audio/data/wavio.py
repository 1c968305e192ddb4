"""Audio file I/O (soundfile), resampling (torchaudio) and paired-file discovery.

Every user-input problem raises a one-line ``DataError`` naming the file: unreadable or
missing files, NaN or infinite samples (the first one's index and time), a channel count other than mono (unless asked to downmix), a sample rate
other than the model's (unless asked to resample), noisy/clean pairs of unequal length.
A wav shorter than its header declares (a truncated copy) is read with one warning line.

Pair sources (``find_pairs``), each giving ``(name, noisy_path, clean_path)`` triples:

- a ``.scp`` list: one ``noisy_path clean_path`` per line (the ClearerVoice-Studio format;
  relative paths are taken relative to the list's folder; ``#`` starts a comment);
- a folder holding ``clean/`` and ``noisy/`` with the same file names (the shared data);
- a VoiceBank+DEMAND folder ``clean_<subset>_wav`` or ``noisy_<subset>_wav`` (the other is
  its sibling), e.g. ``VB/clean_testset_wav``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ostinato.core.errors import DataError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


@dataclass(frozen=True)
class Pair:
    name: str
    noisy: Path
    clean: Path


def resample(x: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """torchaudio's band-limited sinc resampling of a (N,) float signal."""
    import torchaudio.functional as AF

    if orig_sr == new_sr:
        return x
    y = AF.resample(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), orig_sr, new_sr)
    return y.numpy()


def wav_declared_frames(path: str | Path) -> int | None:
    """Frames a RIFF/WAVE file's ``data`` chunk header declares (None: not a plain wav, or
    a streaming header with no size)."""
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            align = None
            while True:
                ch = f.read(8)
                if len(ch) < 8:
                    return None
                cid, size = ch[:4], struct.unpack("<I", ch[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(size)
                    if len(fmt) >= 14:
                        align = struct.unpack("<H", fmt[12:14])[0]
                    if size % 2:
                        f.read(1)
                    continue
                if cid == b"data":
                    if not align or size in (0, 0xFFFFFFFF):
                        return None
                    return size // align
                f.seek(size + (size % 2), 1)
    except OSError:
        return None


def check_length(path: str | Path, frames: int) -> None:
    """One warning line on stderr when a wav holds fewer frames than its header declares."""
    from ostinato.core.data import warn_once

    want = wav_declared_frames(path)
    if want is not None and frames < want:
        warn_once(f"truncated:{path}", f"{path}: truncated wav, its header declares {want} samples "
                                       f"but only {frames} could be read; using the {frames}")


def check_finite(path: str | Path, x: np.ndarray, sample_rate: int, offset: int = 0) -> None:
    """A DataError naming the file and the first sample that is NaN or infinite.
    ``x`` is (N,) or (N, C); ``offset`` is the index of its first frame in the file."""
    ok = np.isfinite(x)
    if ok.all():
        return
    i = int(np.flatnonzero(~ok.reshape(len(x), -1).all(axis=1))[0]) + offset
    v = x.reshape(len(x), -1)[i - offset]
    v = v[~np.isfinite(v)][0]
    raise DataError(f"{path}: sample {i} (t = {i / sample_rate:.3f} s) is {float(v)}; "
                    "expected finite audio samples (no NaN or inf)")


def read_audio(
    path: str | Path,
    sample_rate: int | None = None,
    resample_to_rate: bool = False,
    downmix: bool = False,
) -> tuple[np.ndarray, int]:
    """Read a mono float32 signal (N,). Returns (signal, sample rate after any resampling)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file")
    try:
        x, sr = sf.read(str(p), dtype="float32", always_2d=True)  # (N, C)
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError/TypeError
        raise DataError(f"{p}: unreadable audio file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    check_finite(p, x, sr)
    check_length(p, len(x))
    if x.shape[1] != 1:
        if not downmix:
            raise DataError(f"{p}: {x.shape[1]} channels, expected mono (1 channel)")
        x = x.mean(axis=1, keepdims=True)  # (N, 1)
    x = x[:, 0]  # (N,)
    if sample_rate and sr != sample_rate:
        if not resample_to_rate:
            raise DataError(
                f"{p}: sample rate {sr} Hz, expected {sample_rate} Hz (set data.resample=true to resample)"
            )
        x, sr = resample(x, sr, sample_rate), sample_rate
    return np.ascontiguousarray(x, dtype=np.float32), sr


def read_pair(pair: Pair, sample_rate: int, resample_to_rate: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) signals of equal length, or a DataError naming the files."""
    noisy, _ = read_audio(pair.noisy, sample_rate, resample_to_rate)
    clean, _ = read_audio(pair.clean, sample_rate, resample_to_rate)
    if len(noisy) != len(clean):
        raise DataError(
            f"{pair.noisy}: {len(noisy)} samples but its clean pair {pair.clean} has {len(clean)}; expected equal lengths"
        )
    return noisy, clean


def write_wav16(path: str | Path, x: np.ndarray, sample_rate: int) -> None:
    """Write a 16-bit PCM wav (values clipped to [-1, 1])."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(p), np.clip(x, -1.0, 1.0), sample_rate, subtype="PCM_16")


def _audio_files(folder: Path) -> dict[str, Path]:
    return {f.stem: f for f in sorted(folder.iterdir()) if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file()}


def _pairs_from_dirs(clean_dir: Path, noisy_dir: Path) -> list[Pair]:
    if not noisy_dir.is_dir():
        raise DataError(f"{noisy_dir}: no such folder (expected beside {clean_dir})")
    clean, noisy = _audio_files(clean_dir), _audio_files(noisy_dir)
    for name in clean:
        if name not in noisy:
            raise DataError(f"{clean[name]}: no noisy file {name}.* in {noisy_dir}")
    for name in noisy:
        if name not in clean:
            raise DataError(f"{noisy[name]}: no clean file {name}.* in {clean_dir}")
    return [Pair(n, noisy[n], clean[n]) for n in sorted(clean)]


def _pairs_from_scp(scp: Path) -> list[Pair]:
    try:
        lines = scp.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{scp}: unreadable list ({e})") from None
    out = []
    for i, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        fields = text.split()
        if len(fields) != 2:
            raise DataError(f"{scp}:{i}: expected 'noisy_path clean_path', got {line!r}")
        noisy, clean = (Path(f) if Path(f).is_absolute() else scp.parent / f for f in fields)
        for f in (noisy, clean):
            if not f.exists():
                raise DataError(f"{scp}:{i}: {f}: no such file")
        out.append(Pair(noisy.stem, noisy, clean))
    if not out:
        raise DataError(f"{scp}: no 'noisy_path clean_path' lines")
    return out


def find_pairs(source: Path, names: list[str] | tuple[str, ...] = ()) -> list[Pair]:
    """Pairs of a pair source (see module doc), restricted to ``names`` when given."""
    source = Path(source)
    if source.suffix == ".scp" or source.is_file():
        pairs = _pairs_from_scp(source)
    elif (source / "clean").is_dir() or (source / "noisy").is_dir():
        pairs = _pairs_from_dirs(source / "clean", source / "noisy")
    elif source.is_dir() and source.name.startswith(("clean_", "noisy_")):
        kind, rest = source.name.split("_", 1)
        other = source.parent / (("noisy_" if kind == "clean" else "clean_") + rest)
        clean_dir, noisy_dir = (source, other) if kind == "clean" else (other, source)
        pairs = _pairs_from_dirs(clean_dir, noisy_dir)
    else:
        raise DataError(
            f"{source}: expected a .scp list, a folder with clean/ and noisy/, or a clean_<set>_wav folder"
        )
    if names:
        have = {p.name: p for p in pairs}
        missing = [n for n in names if n not in have]
        if missing:
            raise DataError(f"{source}: no pair named {missing[0]!r} (have {', '.join(sorted(have)[:8])})")
        pairs = [have[n] for n in names]
    if not pairs:
        raise DataError(f"{source}: no audio pairs found")
    return pairs


def list_audio(source: Path) -> list[Path]:
    """An audio file, or every audio file in a folder (sorted)."""
    source = Path(source)
    if source.is_dir():
        files = list(_audio_files(source).values())
        if not files:
            raise DataError(f"{source}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
        return files
    if not source.exists():
        raise DataError(f"{source}: no such file")
    return [source]
