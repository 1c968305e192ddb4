"""The STFT front end of FRCRN, on ``torch.stft`` / ``torch.istft``, offline and streaming.

Window: a periodic square-root Hann window of ``win_length`` samples (the released
``ConvSTFT`` builds ``scipy.signal.get_window('hann', win_len, fftbins=True) ** 0.5``).
With 50 % overlap its square sums to one, so analysis followed by synthesis is the identity.

Framing: ``torch.stft(center=True, pad_mode="constant")``: the signal is padded with
``n_fft // 2`` zeros on each side and frame ``t`` covers padded samples
``[t * hop, t * hop + n_fft)`` (a window shorter than ``n_fft`` sits in the middle of the
frame, as torch does it). A signal of ``N`` samples gives ``1 + N // hop`` frames. The
released ``ConvSTFT`` is a strided conv1d over the *unpadded* signal; its frames equal ours
for a signal padded with ``n_fft // 2`` zeros on each side (same window, same DFT sign).
Zero padding (not reflection) is what makes the framing causal, so ``StreamingSTFT`` and
``StreamingISTFT`` reproduce the offline transform chunk by chunk.

Presets (``PRESETS``, in seconds so they scale with the sample rate):

- ``released``: window 40 ms, hop 20 ms, n_fft 40 ms (640 / 320 / 640 at 16 kHz, 321 bins),
  the ``FRCRN_SE_16K`` config;
- ``paper``: window 20 ms, hop 10 ms (320 / 160 at 16 kHz). n_fft stays 640 (the window is
  zero-padded to it) so the 321-bin encoder geometry of the released UNet applies; the paper
  gives the 20 ms window (ClearerVoice-Studio issue #23) but not this detail.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ostinato.core.errors import ConfigError

# seconds: window, hop, n_fft
PRESETS: dict[str, tuple[float, float, float]] = {
    "released": (0.040, 0.020, 0.040),
    "paper": (0.020, 0.010, 0.040),
}


@dataclass(frozen=True)
class STFTShape:
    win_length: int
    hop_length: int
    n_fft: int

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1


def resolve_stft(preset: str, sample_rate: int, win_length: int = 0, hop_length: int = 0, n_fft: int = 0) -> STFTShape:
    """Samples for a preset at ``sample_rate``; explicit non-zero sizes win over the preset."""
    if preset not in PRESETS:
        raise ConfigError(f"model.preset={preset!r}: expected one of {sorted(PRESETS)}")
    w, h, n = PRESETS[preset]
    shape = STFTShape(
        win_length=win_length or round(w * sample_rate),
        hop_length=hop_length or round(h * sample_rate),
        n_fft=n_fft or round(n * sample_rate),
    )
    if not 0 < shape.hop_length <= shape.win_length <= shape.n_fft:
        raise ConfigError(f"STFT sizes {shape}: expected 0 < hop_length <= win_length <= n_fft")
    if shape.n_fft % 2:
        raise ConfigError(f"n_fft={shape.n_fft}: expected an even number")
    return shape


def sqrt_hann(win_length: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Periodic square-root Hann window (win_length,)."""
    return torch.hann_window(win_length, periodic=True, dtype=torch.float64).sqrt().to(dtype)


class STFT(nn.Module):
    """(B, N) waveform <-> (B, F, T) complex spectrum with a periodic sqrt-Hann window."""

    def __init__(self, shape: STFTShape):
        super().__init__()
        self.shape = shape
        self.register_buffer("window", sqrt_hann(shape.win_length), persistent=False)

    @property
    def hop(self) -> int:
        return self.shape.hop_length

    def n_frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.shape.hop_length

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        s = self.shape
        return torch.stft(
            wav, s.n_fft, s.hop_length, s.win_length, window=self.window.to(wav.dtype),
            center=True, pad_mode="constant", return_complex=True,
        )  # (B, F, T)

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        s = self.shape
        window = self.window.to(spec.real.dtype)
        return torch.istft(spec, s.n_fft, s.hop_length, s.win_length, window=window, center=True, length=length)  # (B, N)

    def padded_window(self, dtype: torch.dtype) -> torch.Tensor:
        """The window as torch applies it inside an n_fft frame (centred, zero-padded)."""
        s = self.shape
        left = (s.n_fft - s.win_length) // 2
        return F.pad(self.window.to(dtype), (left, s.n_fft - s.win_length - left))  # (n_fft,)


class StreamingSTFT:
    """Chunk-by-chunk analysis equal to ``STFT.forward`` on the whole signal.

    ``push(chunk)`` returns the frames that the samples seen so far complete;
    ``flush()`` pads the end as ``center=True`` does and returns the last frames.
    """

    def __init__(self, stft: STFT, batch_size: int = 1, dtype: torch.dtype = torch.float32, device=None):
        self.stft = stft
        s = stft.shape
        self.buf = torch.zeros(batch_size, s.n_fft // 2, dtype=dtype, device=device)  # (B, n) left centre padding
        self.n_in = 0

    def _frames(self) -> torch.Tensor:
        s = self.stft.shape
        n = self.buf.shape[1]
        if n < s.n_fft:
            cdtype = torch.complex128 if self.buf.dtype == torch.float64 else torch.complex64
            return torch.zeros(self.buf.shape[0], s.n_bins, 0, dtype=cdtype, device=self.buf.device)  # (B, F, 0)
        t = (n - s.n_fft) // s.hop_length + 1
        used = s.n_fft + (t - 1) * s.hop_length
        spec = torch.stft(
            self.buf[:, :used], s.n_fft, s.hop_length, s.win_length, window=self.stft.window.to(self.buf.dtype),
            center=False, return_complex=True,
        )  # (B, F, t)
        self.buf = self.buf[:, t * s.hop_length :]
        return spec

    def push(self, chunk: torch.Tensor) -> torch.Tensor:
        """chunk (B, n) -> newly completed frames (B, F, t), t >= 0."""
        self.n_in += chunk.shape[1]
        self.buf = torch.cat([self.buf, chunk.to(self.buf.dtype)], dim=1)  # (B, n)
        return self._frames()

    def flush(self) -> torch.Tensor:
        s = self.stft.shape
        self.buf = F.pad(self.buf, (0, s.n_fft // 2))  # (B, n) right centre padding
        spec = self._frames()
        self.buf = self.buf[:, :0]
        return spec


class StreamingISTFT:
    """Chunk-by-chunk synthesis equal to ``STFT.inverse`` (torch.istft, center=True).

    torch.istft overlap-adds ``irfft(frame) * window`` and divides by the overlap-added
    squared window; this class does the same in a running buffer and emits each sample once
    no later frame can touch it. ``flush(total_length)`` emits the rest.
    """

    def __init__(self, stft: STFT, batch_size: int = 1, dtype: torch.dtype = torch.float32, device=None):
        s = stft.shape
        self.shape = s
        self.win = stft.padded_window(dtype).to(device)  # (n_fft,)
        self.ola = torch.zeros(batch_size, s.n_fft, dtype=dtype, device=device)  # (B, n_fft) pending sums
        self.env = torch.zeros(s.n_fft, dtype=dtype, device=device)  # (n_fft,) pending window energy
        self.skip = s.n_fft // 2  # padded samples still to drop at the start
        self.n_out = 0

    def push(self, spec: torch.Tensor) -> torch.Tensor:
        """spec (B, F, t) -> finished samples (B, n)."""
        s = self.shape
        hop = s.hop_length
        out = []
        if spec.shape[2] == 0:
            return self.ola[:, :0]
        frames = torch.fft.irfft(spec, n=s.n_fft, dim=1) * self.win[:, None]  # (B, n_fft, t)
        for t in range(frames.shape[2]):
            self.ola = self.ola + frames[:, :, t]
            self.env = self.env + self.win**2
            done, denom = self.ola[:, :hop], self.env[:hop]
            self.ola = F.pad(self.ola[:, hop:], (0, hop))  # (B, n_fft)
            self.env = F.pad(self.env[hop:], (0, hop))  # (n_fft,)
            out.append(done / denom)
        return self._drop_start(torch.cat(out, dim=1) if out else self.ola[:, :0])

    def _drop_start(self, y: torch.Tensor) -> torch.Tensor:
        k = min(self.skip, y.shape[1])
        self.skip -= k
        y = y[:, k:]
        self.n_out += y.shape[1]
        return y

    def flush(self, total_length: int) -> torch.Tensor:
        """The remaining samples, up to ``total_length`` samples emitted in all."""
        need = total_length - self.n_out
        tail = self.ola[:, self.skip : self.skip + need] / self.env[self.skip : self.skip + need]
        self.n_out += tail.shape[1]
        return tail
