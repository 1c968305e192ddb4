"""FRCRN: frequency recurrence for complex-spectrum speech enhancement (Zhao et al., ICASSP 2022).

Checked against the released code (modelscope/ClearerVoice-Studio,
``train/speech_enhancement/models/frcrn``; Zhao et al., ICASSP 2022, sections 2-3):

- STFT front end: periodic sqrt-Hann window, presets ``released`` (40/20 ms, n_fft 640 at
  16 kHz) and ``paper`` (20/10 ms, n_fft 640); see :mod:`ostinato.audio.stft`.
- UNet on the complex spectrum, laid out (B, 2C, F, T) (real channels, then imaginary):
  7 encoders ``ComplexConv2d`` (kernels (5,2) x6 then (2,2), stride (2,1): frequency-only
  downsampling 321 -> 159 -> 78 -> 37 -> 17 -> 7 -> 2 -> 1) + separate re/im BatchNorm +
  LeakyReLU; a complex FSMN along frequency before encoders 1-6 and after decoders 0-5;
  two stacked complex FSMNs along time at the bottleneck (features C x F = 128); complex SE
  (reduction 8) on the skips of encoders 0-5 and on decoder outputs 0-4; 7 decoders
  ``ComplexConvTranspose2d`` whose frequency kernels are derived from the bin counts
  (giving the released (2,5,5,5,6,5,5)), then a 1x1 complex conv to one channel.
- Mask: cIRM, M = tanh(u), applied as a complex product with the noisy spectrum, then the
  inverse STFT. ``n_unets=2`` is the released double UNet: UNet 2 takes UNet 1's raw output
  and the mask is tanh(u2) + tanh(u1).
- Not built: the released modules that are never called (``fsmn_enc[0]``, ``fsmn_dec[6]``,
  ``se_layer_enc6`` whose output is discarded, ``se_layer_dec5``). They have no effect on
  the output and receive no gradient, so the trainable count here is the released
  13,141,844 minus 2 x (141,824 FSMN + 16,960 SE) = 12,824,276 for ``frcrn_double``.
- Time axis: the released convs pad one frame on both sides (encoder T -> T+1, decoder
  T+1 -> T), so each decoder looks one frame ahead and SE pools over the whole utterance:
  non-causal. ``causal=True`` pads the time kernel on the left only (the decoder keeps the
  first T outputs of its transposed conv), the SE pools cumulatively over frames 0..t
  (``se_pool="cumulative"``) or is dropped (``"none"``), and the FSMNs use left context only
  (as released). ``FRCRNStream`` then runs chunk by chunk with carried state and returns
  the offline output.
- Normalisation (``norm``): ``batch`` is the released separate re/im BatchNorm. Its training
  statistics span the whole utterance, so even the causal model sees future frames at train
  time (eval and streaming use the running statistics and are causal). ``frozen`` (running
  statistics in training too) and ``cumulative`` (cumulative layer norm over frames 0..t,
  Conv-TasNet's cLN) are frame-causal in training as well; see ``complex_norm.py``. The
  default stays ``batch`` for every variant (the published model, and the causal recipe's
  measured numbers).
- Time-memory slot (``mixer``, DESIGN.md "Mixer slots"): a core (B, L, D) mixer in place of
  each real FSMN of the bottleneck's complex FSMN, in the same complex arrangement
  (``complex_mixer.py``); causal models accept causal mixers only (one-line ConfigError) and
  stream through the mixer's ``step``. ``model: {name: frcrn_causal, mixer: {name: gru}}``.
  No mixer: the released FSMN, unchanged.
- Loss: -SI-SNR (zero-mean, EPS 1e-6) + cIRM MSE, each of the real and imaginary MSE
  multiplied by n_fft. ``mask_target="released"`` builds the target with a non-sqrt,
  non-periodic Hann window and sets values > 2 to 1 and < -2 to -1 (``loss_complex_mask``);
  ``"clip"`` uses the model's own window and clamps to [-2, 2].
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ostinato.core.config import variant
from ostinato.core.errors import ConfigError
from ostinato.core.layers.fsmn import ComplexFSMN, FSMNConfig
from ostinato.core.mixer import MixerConfig, MixerSlot
from ostinato.core.registry import register_variant

from ..stft import STFT, StreamingISTFT, StreamingSTFT, STFTShape, resolve_stft
from .complex_mixer import ComplexMixer
from .complex_nn import ComplexConv2d, ComplexConvTranspose2d, ComplexSE, FreqFSMN, TimeFSMN, ccat, cmul
from .complex_norm import ComplexCumulativeNorm2d, complex_norm
from .losses import si_snr_torch


@dataclass
class FRCRNConfig:
    preset: Literal["released", "paper"] = "paper"  # STFT sizes; see ostinato.audio.stft.PRESETS
    sample_rate: int = 16000
    win_length: int = 0  # samples; 0: from the preset
    hop_length: int = 0
    n_fft: int = 0
    n_unets: int = 1  # 2: the released double UNet
    channels: int = 128
    enc_freq_kernels: tuple[int, ...] = (5, 5, 5, 5, 5, 5, 2)  # one per encoder; decoders mirror them
    freq_stride: int = 2
    time_kernel: int = 2
    fsmn_hidden: int = 128
    fsmn_lorder: int = 20
    time_fsmn_layers: int = 2  # stacked complex FSMN (or mixer-slot) layers along time at the bottleneck
    # the time-memory slot: a core mixer in place of each real FSMN at the bottleneck (None: the FSMN)
    mixer: Optional[MixerConfig] = None
    se_reduction: int = 8
    se_pool: Literal["global", "cumulative", "none"] = "global"
    causal: bool = False
    norm: Literal["batch", "frozen", "cumulative"] = "batch"  # after each conv; see complex_norm.py
    leaky_slope: float = 0.01
    mask_target: Literal["released", "clip"] = "released"
    mask_weight: float = 1.0  # weight of the cIRM MSE next to -SI-SNR

    def validate(self) -> None:
        if self.causal and self.se_pool == "global":
            raise ConfigError("model.causal=true needs model.se_pool 'cumulative' or 'none' (global SE pools over future frames)")
        if self.n_unets < 1 or self.channels < 1 or not self.enc_freq_kernels:
            raise ConfigError("model: n_unets and channels must be >= 1 and enc_freq_kernels non-empty")
        geometry(self)


def geometry(cfg: FRCRNConfig) -> tuple[STFTShape, list[int], list[int]]:
    """STFT sizes, frequency bins after each encoder (bins[0] = input), decoder kernels."""
    shape = resolve_stft(cfg.preset, cfg.sample_rate, cfg.win_length, cfg.hop_length, cfg.n_fft)
    bins = [shape.n_bins]
    for k in cfg.enc_freq_kernels:
        if bins[-1] < k:
            raise ConfigError(
                f"model.enc_freq_kernels={list(cfg.enc_freq_kernels)}: {bins[-1]} bins left before a kernel of {k} "
                f"(bins so far {bins}); use fewer encoders or a larger n_fft"
            )
        bins.append((bins[-1] - k) // cfg.freq_stride + 1)
    dec = [bins[i] - (bins[i + 1] - 1) * cfg.freq_stride for i in reversed(range(len(cfg.enc_freq_kernels)))]
    return shape, bins, dec


def _fsmn_factory(cfg: FRCRNConfig, dim: int, n_layers: int):
    return lambda: ComplexFSMN(FSMNConfig(d_model=dim, d_hidden=cfg.fsmn_hidden, lorder=cfg.fsmn_lorder, n_layers=n_layers))


def _time_memory_factory(cfg: FRCRNConfig, dim: int):
    """The bottleneck's memory along time: the released complex FSMN, or the slot's mixer in its place."""
    if cfg.mixer is None:
        return _fsmn_factory(cfg, dim, cfg.time_fsmn_layers)
    return lambda: ComplexMixer(cfg.mixer, dim, cfg.time_fsmn_layers, cfg.causal)


def _time_conv(conv: type, cin: int, cout: int, kf: int, cfg: FRCRNConfig) -> nn.Module:
    """A complex (transposed) conv, (kf, time_kernel), striding on frequency; padded in time unless causal."""
    pad_t = 0 if cfg.causal else cfg.time_kernel // 2
    return conv(cin, cout, (kf, cfg.time_kernel), (cfg.freq_stride, 1), (0, pad_t))


def _with_past(x: torch.Tensor, cache: torch.Tensor | None, k: int) -> torch.Tensor:
    """x (B, 2C, F, T) after its k past frames (the cache; zeros at the start): (B, 2C, F, k+T)."""
    if cache is None:
        cache = x.new_zeros(*x.shape[:-1], k)  # (B, 2C, F, k)
    return torch.cat([cache, x], dim=-1)


class _Block(nn.Module):
    """Shared by the encoder and decoder blocks: the norm (``model.norm``) and LeakyReLU after the conv."""

    def __init__(self, conv: nn.Module, cout: int, cfg: FRCRNConfig):
        super().__init__()
        self.kt, self.causal = cfg.time_kernel, cfg.causal
        self.conv = conv
        self.bn = complex_norm(cfg.norm, cout)
        self.act = nn.LeakyReLU(cfg.leaky_slope)

    def norm_act(self, y: torch.Tensor, cache) -> tuple[torch.Tensor, object]:
        """y (B, 2C', F', T) -> (normalised and activated y, the cumulative norm's cache or None)."""
        if isinstance(self.bn, ComplexCumulativeNorm2d):
            y, cache = self.bn(y, cache)
            return self.act(y), cache
        return self.act(self.bn(y)), None


class EncoderBlock(_Block):
    """Complex conv (stride on frequency only) + complex norm + LeakyReLU; causal: left time pad."""

    def __init__(self, cin: int, cout: int, kf: int, cfg: FRCRNConfig):
        super().__init__(_time_conv(ComplexConv2d, cin, cout, kf, cfg), cout, cfg)

    def forward(self, x: torch.Tensor, cache: tuple | None = None):
        """x (B, 2C, F, T) -> (y (B, 2C', F', T'), cache = (past input (B, 2C, F, kt-1), norm cache) or None)."""
        if not self.causal:
            return self.norm_act(self.conv(x), None)[0], None
        k = self.kt - 1
        past, norm_cache = (None, None) if cache is None else cache
        x = _with_past(x, past, k)  # (B, 2C, F, kt-1+T)
        y, norm_cache = self.norm_act(self.conv(x), norm_cache)
        return y, (x[..., x.shape[-1] - k :], norm_cache)


class DecoderBlock(_Block):
    """Complex transposed conv + complex norm + LeakyReLU; causal: frame t from inputs <= t."""

    def __init__(self, cin: int, cout: int, kf: int, cfg: FRCRNConfig):
        super().__init__(_time_conv(ComplexConvTranspose2d, cin, cout, kf, cfg), cout, cfg)

    def forward(self, x: torch.Tensor, cache: tuple | None = None):
        if not self.causal:
            return self.norm_act(self.conv(x), None)[0], None
        k, t = self.kt - 1, x.shape[-1]
        past, norm_cache = (None, None) if cache is None else cache
        xc = _with_past(x, past, k)  # (B, 2C, F, kt-1+T)
        y, norm_cache = self.norm_act(self.conv(xc)[..., k : k + t], norm_cache)  # out[t] = sum_j W_j x[t-j]
        return y, (xc[..., xc.shape[-1] - k :], norm_cache)


class UNet(nn.Module):
    """One FRCRN UNet: (B, 2, F, T) complex spectrum -> (B, 2, F, T) raw mask."""

    def __init__(self, cfg: FRCRNConfig, bins: list[int], dec_kernels: list[int]):
        super().__init__()
        n, c = len(cfg.enc_freq_kernels), cfg.channels
        self.n = n
        self.encoders = nn.ModuleList(EncoderBlock(1 if i == 0 else c, c, k, cfg) for i, k in enumerate(cfg.enc_freq_kernels))
        self.fsmn_enc = nn.ModuleList(FreqFSMN(_fsmn_factory(cfg, c, 1)) for _ in range(n - 1))  # before encoders 1..n-1
        self.se_enc = nn.ModuleList(ComplexSE(c, cfg.se_reduction, cfg.se_pool) for _ in range(n - 1))  # skips of encoders 0..n-2
        self.fsmn = TimeFSMN(_time_memory_factory(cfg, c * bins[-1]))
        self.decoders = nn.ModuleList(
            DecoderBlock(c if i == 0 else 2 * c, c if i < n - 1 else 1, k, cfg) for i, k in enumerate(dec_kernels)
        )
        self.fsmn_dec = nn.ModuleList(FreqFSMN(_fsmn_factory(cfg, c, 1)) for _ in range(n - 1))  # after decoders 0..n-2
        self.se_dec = nn.ModuleList(ComplexSE(c, cfg.se_reduction, cfg.se_pool) for _ in range(max(0, n - 2)))
        self.linear = ComplexConv2d(1, 1, 1)

    def forward(self, x: torch.Tensor, state: dict | None = None):
        """x (B, 2, F, T) -> (u (B, 2, F, T), state); state holds the causal caches."""
        n = self.n
        st = state or {}
        enc_c, dec_c = st.get("enc", [None] * n), st.get("dec", [None] * n)
        se_e, se_d = st.get("se_enc", [None] * (n - 1)), st.get("se_dec", [None] * max(0, n - 2))
        new: dict[str, list] = {"enc": [], "dec": [], "se_enc": [], "se_dec": []}
        skips = []
        for i, enc in enumerate(self.encoders):
            if i > 0:
                x = self.fsmn_enc[i - 1](x)
            x, c = enc(x, enc_c[i])
            new["enc"].append(c)
            if i < n - 1:
                s, c = self.se_enc[i](x, se_e[i])
                skips.append(s)
                new["se_enc"].append(c)
        p, new["fsmn"] = self.fsmn(x, st.get("fsmn"))
        for i, dec in enumerate(self.decoders):
            p, c = dec(p, dec_c[i])
            new["dec"].append(c)
            if i == n - 1:
                break
            p = self.fsmn_dec[i](p)
            if i < n - 2:
                p, c = self.se_dec[i](p, se_d[i])
                new["se_dec"].append(c)
            p = ccat([p, skips[n - 2 - i]])  # (B, 4C, F, T): [re p, re skip, im p, im skip]
        return self.linear(p), new


class FRCRN(nn.Module):
    def __init__(self, cfg: FRCRNConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        shape, bins, dec_kernels = geometry(cfg)
        self.stft = STFT(shape)
        self.unets = nn.ModuleList(UNet(cfg, bins, dec_kernels) for _ in range(cfg.n_unets))
        target = torch.hann_window(shape.win_length, periodic=False, dtype=torch.float64).float()
        self.register_buffer("target_window", target, persistent=False)  # released loss: non-sqrt, non-periodic
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                p._no_weight_decay = True  # the released get_params() exempts biases

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    def masks(self, spec: torch.Tensor, state: list | None = None):
        """spec (B, 2, F, T) -> (mask (B, 2, F, T) = sum_k tanh(u_k), state)."""
        u, mask, new = spec, None, []
        for k, unet in enumerate(self.unets):
            u, s = unet(u, None if state is None else state[k])
            new.append(s)
            mask = torch.tanh(u) if mask is None else mask + torch.tanh(u)
        return mask, new

    def enhance_spec(self, spec: torch.Tensor, state: list | None = None):
        """spec (B, F, T) complex -> (enhanced (B, F, T) complex, mask (B, 2, F, T), state)."""
        ri = torch.stack([spec.real, spec.imag], dim=1)  # (B, 2, F, T)
        mask, state = self.masks(ri, state)
        est = cmul(ri, mask)  # (B, 2, F, T)
        return torch.complex(est[:, 0], est[:, 1]), mask, state

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Enhance (B, N) or (N,) waveforms at ``sample_rate``."""
        squeeze = wav.dim() == 1
        wav = wav[None] if squeeze else wav  # (B, N)
        est, _, _ = self.enhance_spec(self.stft(wav))
        out = self.stft.inverse(est, wav.shape[-1])  # (B, N)
        return out[0] if squeeze else out

    def target_mask(self, noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        """cIRM target (B, 2, F, T) with the released or the clipped handling."""
        if self.cfg.mask_target == "released":
            s = self.stft.shape
            win = self.target_window.to(noisy.dtype)
            y = torch.stft(noisy, s.n_fft, s.hop_length, s.win_length, win, center=True, pad_mode="constant", return_complex=True)
            x = torch.stft(clean, s.n_fft, s.hop_length, s.win_length, win, center=True, pad_mode="constant", return_complex=True)
        else:
            y, x = self.stft(noisy), self.stft(clean)
        power = y.real**2 + y.imag**2 + 1e-8
        m = torch.stack([(x.real * y.real + x.imag * y.imag) / power, (x.imag * y.real - x.real * y.imag) / power], dim=1)
        if self.cfg.mask_target == "released":
            m = torch.where(m > 2, torch.ones_like(m), m)
            return torch.where(m < -2, -torch.ones_like(m), m)
        return m.clamp(-2.0, 2.0)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        noisy, clean = batch["noisy"], batch["clean"]  # (B, N)
        est, mask, _ = self.enhance_spec(self.stft(noisy))
        wav = self.stft.inverse(est, noisy.shape[-1])  # (B, N)
        si = si_snr_torch(wav, clean).mean()
        target = self.target_mask(noisy, clean)
        n_fft = self.stft.shape.n_fft
        mse = (F.mse_loss(mask[:, 0], target[:, 0]) + F.mse_loss(mask[:, 1], target[:, 1])) * n_fft
        loss = -si + self.cfg.mask_weight * mse
        return loss, {"si_snr": float(si.detach()), "mask_mse": float(mse.detach())}

    def stream(self, batch_size: int = 1) -> "FRCRNStream":
        return FRCRNStream(self, batch_size)


class FRCRNStream:
    """Chunk-by-chunk enhancement with a causal FRCRN; concatenated outputs equal
    ``model(wav)`` on the whole signal (up to float rounding). ``push(chunk)`` returns the
    samples finished so far (they lag the input by about one window), ``flush()`` the rest."""

    def __init__(self, model: FRCRN, batch_size: int = 1):
        if not model.cfg.causal:
            raise ConfigError("streaming needs a causal FRCRN (model.causal=true, e.g. frcrn_causal)")
        mixers = [m for m in model.modules() if isinstance(m, MixerSlot) and not hasattr(m.layer, "step")]
        if mixers:
            raise ConfigError(f"streaming needs a mixer with a step mode; model.mixer.name={mixers[0].name!r} has none")
        p = next(model.parameters())
        self.model = model
        self.ana = StreamingSTFT(model.stft, batch_size, p.dtype, p.device)
        self.syn = StreamingISTFT(model.stft, batch_size, p.dtype, p.device)
        self.state = None

    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.shape[-1] == 0:
            return self.syn.push(frames)
        est, _, self.state = self.model.enhance_spec(frames, self.state)
        return self.syn.push(est)

    @torch.no_grad()
    def push(self, chunk: torch.Tensor) -> torch.Tensor:
        """chunk (B, n) -> enhanced samples (B, m)."""
        return self._run(self.ana.push(chunk))

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        head = self._run(self.ana.flush())
        return torch.cat([head, self.syn.flush(self.ana.n_in)], dim=1)


# ----------------------------------------------------------------------------- official weights
def official_key(key: str) -> str | None:
    """Map a released ``FRCRN_SE_16K`` state-dict key to ours (None: not a parameter we keep)."""
    key = re.sub(r"^(module\.)?(model\.)?", "", key)
    m = re.match(r"unet(2?)\.(.+)$", key)
    if m is None:
        return None  # stft/istft kernels: ours are computed, not stored
    u, rest = (1 if m.group(1) else 0), m.group(2)
    rules = [
        (r"encoder(\d+)\.(.+)", lambda i, r: f"encoders.{i}.{r}"),
        (r"decoder(\d+)\.transconv\.(.+)", lambda i, r: f"decoders.{i}.conv.{r}"),
        (r"decoder(\d+)\.bn\.(.+)", lambda i, r: f"decoders.{i}.bn.{r}"),
        (r"fsmn_enc(\d+)\.(.+)", lambda i, r: f"fsmn_enc.{int(i) - 1}.cfsmn.{r}" if int(i) > 0 else None),
        (r"fsmn_dec(\d+)\.(.+)", lambda i, r: f"fsmn_dec.{i}.cfsmn.{r}"),
        (r"se_layer_enc(\d+)\.(.+)", lambda i, r: f"se_enc.{i}.{r}"),
        (r"se_layer_dec(\d+)\.(.+)", lambda i, r: f"se_dec.{i}.{r}"),
        (r"fsmn\.(.+)", lambda r: f"fsmn.cfsmn.{r}"),
        (r"linear\.(.+)", lambda r: f"linear.{r}"),
    ]
    for pat, fn in rules:
        mm = re.fullmatch(pat, rest)
        if mm:
            out = fn(*mm.groups())
            return None if out is None else f"unets.{u}.{out}"
    return None  # duplicate ModuleList views (encoders.N, fsmn_enc.N, ...) of the same tensors


def load_official_state_dict(model: FRCRN, state: dict[str, torch.Tensor]) -> list[str]:
    """Load released ``FRCRN_SE_16K`` weights into ``frcrn_double``; returns the keys dropped
    (never-called modules, frozen STFT kernels). Raises if any of our tensors stays unset."""
    ours = model.state_dict()
    new, dropped = {}, []
    for k, v in state.items():
        mk = official_key(k)
        if mk is not None and mk in ours:
            new[mk] = v
        elif not re.search(r"\.(encoders|decoders|fsmn_enc|fsmn_dec|se_layers_enc|se_layers_dec)\.\d+\.", k):
            dropped.append(k)
    missing = [k for k in ours if k not in new]
    if missing:
        raise ConfigError(f"official checkpoint lacks {len(missing)} tensors of this model, e.g. {missing[0]!r}")
    model.load_state_dict(new)
    return dropped


def load_official(path) -> FRCRN:
    """``frcrn_double`` (eval mode) with released ``FRCRN_SE_16K`` weights from a checkpoint
    file (a state dict, or a dict holding one under ``"model"``), loaded with
    ``weights_only=True``. Checked here against the released code with random weights: the
    waveform matches to 6e-7 (our STFT pads n_fft/2 zeros at each end; the released
    ``ConvSTFT`` does not pad, so its first and last half-window differ)."""
    from ostinato.core.errors import DataError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DataError(f"{path}: cannot read as a PyTorch checkpoint ({str(e).splitlines()[0]})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    model = FRCRN(FRCRNDoubleConfig())
    load_official_state_dict(model, state)
    return model.eval()


# ----------------------------------------------------------------------------- variants
register_variant("frcrn", FRCRNConfig, FRCRN,
                 "FRCRN as in the paper: one complex UNet with frequency-recurrent FSMNs, 20 ms windows.")


FRCRNDoubleConfig = variant(FRCRNConfig, "FRCRNDoubleConfig", preset="released", n_unets=2)


register_variant("frcrn_double", FRCRNDoubleConfig, FRCRN,
                 "FRCRN_SE_16K as released: double UNet (mask tanh(u2) + tanh(u1)), 40 ms windows; 12.82M params.")


# Causal and narrowed to run in real time on one CPU thread: 48 channels (released: 128), the released 40 ms
# / 20 ms framing. ``channels=128 fsmn_hidden=128`` gives the full width (streaming RTF about 0.8 on one
# thread with 100 ms chunks, see ``ostinato bench audio``).
FRCRNCausalConfig = variant(FRCRNConfig, "FRCRNCausalConfig", preset="released", channels=48, fsmn_hidden=48,
                            causal=True, se_pool="cumulative")


register_variant("frcrn_causal", FRCRNCausalConfig, FRCRN,
                 "Causal FRCRN (48 channels, 40/20 ms frames): left-padded time kernels, cumulative SE; streams.")


TestFRCRNConfig = variant(FRCRNConfig, "TestFRCRNConfig", win_length=128, hop_length=64, n_fft=128, channels=8,
                          enc_freq_kernels=(5, 5, 5, 5),  # 65 -> 31 -> 14 -> 5 -> 1 bins
                          fsmn_hidden=8, fsmn_lorder=4, se_reduction=4)


register_variant("test_frcrn", TestFRCRNConfig, FRCRN, "Tiny FRCRN for tests (8 channels, 4 encoders, 128-point STFT).")


TestFRCRNCausalConfig = variant(TestFRCRNConfig, "TestFRCRNCausalConfig", causal=True, se_pool="cumulative")


register_variant("test_frcrn_causal", TestFRCRNCausalConfig, FRCRN, "Tiny causal FRCRN for streaming tests.")
