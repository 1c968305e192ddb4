"""ConvS5 video predictor (Smith et al., NeurIPS 2023; NVlabs/ConvSSM ``CONVS5_NOVQ``).

Frames in [0, 1] are mapped to [-1, 1] and encoded frame by frame by a ResNet encoder
(3x3 conv, ResNet blocks, 2x2 average pooling between widths [64, 128, 256]: 64x64 -> 16x16),
projected by a 1x1 conv to ``d_model`` channels, run through a stack of ``ostinato.core``
ConvS5 layers (complex diagonal conv-SSM, HiPPO init; each layer SSM -> + skip -> LayerNorm),
decoded by the mirrored ResNet decoder (nearest 2x upsampling, LayerNorm, 1x1 readout) and
squashed by tanh. ResNet blocks are TECO's: skip (1x1 conv if widths differ) +
0.1 * conv(ELU(GN(conv(ELU(GN(x)))))).

- Training (``loss``) is teacher forced and parallel over time: frames 0..T-2 go in, frames
  1..T-1 are the targets; the ConvS5 stack runs its parallel scan over the whole sequence.
  Loss = 0.5 * MSE + 0.5 * L1, each summed over (C, W) and averaged over batch, time and rows,
  exactly the official code's ``sum(axis=(-2, -1))`` on its (B, T, H, W, C) arrays.
- Generation (``forward(frames_in, n)`` / ``generate``): the context frames but the last are
  run in parallel to get each layer's state, then one step per frame: the last frame (then
  each prediction) is encoded, stepped through the stack with the carried state (the core
  layers cache their discretisation) and decoded. ``generate_by_prefix`` computes the same
  frames by re-running the parallel model on every prefix (the bench compares the two).

Cell slot (``model.cell``, see ``cells.py``): another core spatial recurrence (``convlstm``,
``convgru``, ``convmingru``, or ``convs5`` with its own config) in place of the ConvS5 stack on
the d_model latent, in the same two modes: teacher-forced training runs the cell's ``forward``
over the sequence (a parallel scan for ConvS5 and the conv minGRU, a loop for ConvLSTM and
ConvGRU), generation its ``step``. ConvSSM's ConvLSTM baseline (same encoder/decoder, 8 x 256)
wraps each cell in the same ``SequenceLayer`` (skip, LayerNorm) as ConvS5: here
``cell: {name: convlstm, init: he, bias: false, residual: true}``.

``d_init="lecun"``: the ConvS5 D-path convolutions as the JAX code initialises them (flax
default: LeCun-normal, zero bias); the default keeps PyTorch's (see core ``convssm.py``).

The official optimizer (AdamW on all parameters, weight decay 1e-5, cosine schedule with
5k warm-up steps) is the recipe's job; no optimizer hints are set here. Conv/dense weights
use flax's default init (LeCun normal, truncated), biases zero.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ostinato.core.config import variant
from ostinato.core.errors import ConfigError
from ostinato.core.layers.convlstm import channel_layernorm, lecun_normal_
from ostinato.core.layers.convssm import ConvS5, ConvS5Config
from ostinato.core.registry import register_variant

from .cells import CellConfig, build_cell


def _conv(c_in: int, c_out: int, k: int, bias: bool = True) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=bias)
    lecun_normal_(conv.weight)
    if bias:
        nn.init.zeros_(conv.bias)
    return conv


class ResBlock(nn.Module):
    """TECO's ResNetBlock: skip + 0.1 * conv3x3(ELU(GN(conv3x3(ELU(GN(x))))))."""

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.skip = _conv(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()
        self.norm1 = nn.GroupNorm(groups, c_in, eps=1e-6)
        self.conv1 = _conv(c_in, c_out, 3)
        self.norm2 = nn.GroupNorm(groups, c_out, eps=1e-6)
        self.conv2 = _conv(c_out, c_out, 3)  # flax: conv without bias + AddBias (zeros) = conv with zero bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.elu(self.norm1(x)))
        h = self.conv2(F.elu(self.norm2(h)))
        return self.skip(x) + 0.1 * h


class ResNetEncoder(nn.Module):
    def __init__(self, c_in: int, widths: tuple[int, ...], blocks: int, groups: int):
        super().__init__()
        self.stem = _conv(c_in, widths[0], 3)
        stages = [ResBlock(widths[0], widths[0], groups)]
        for i in range(1, len(widths)):
            stages.append(nn.AvgPool2d(2))
            stages += [ResBlock(widths[i - 1] if b == 0 else widths[i], widths[i], groups) for b in range(blocks)]
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))  # (N, widths[-1], H / 2^(n-1), W / 2^(n-1))


class ResNetDecoder(nn.Module):
    """TECO/ConvSSM decoder: conv3x3 to widths[0] (sic, as the official code), then per reversed
    width ResNet blocks and nearest 2x upsampling, LayerNorm over channels, 1x1 readout."""

    def __init__(self, d_in: int, c_out: int, widths: tuple[int, ...], blocks: int, groups: int):
        super().__init__()
        rev = list(reversed(widths))
        self.stem = _conv(d_in, widths[0], 3)
        layers, c = [], widths[0]
        for i, w in enumerate(rev):
            for _ in range(blocks):
                layers.append(ResBlock(c, w, groups))
                c = w
            if i < len(rev) - 1:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.layers = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.out = _conv(c, c_out, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.layers(self.stem(z))  # (N, widths[0], H, W)
        return self.out(channel_layernorm(self.norm, h))  # (N, C, H, W)


@dataclass
class ConvS5VPConfig:
    in_frames: int = 100
    out_frames: int = 400
    channels: int = 1
    height: int = 64
    width: int = 64
    enc_widths: tuple[int, ...] = (64, 128, 256)
    enc_blocks: int = 1
    d_model: int = 256
    ssm_size: int = 256
    n_layers: int = 8
    kernel_B: int = 3
    kernel_C: int = 3
    kernel_D: int = 3
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    num_groups: int = 32  # GroupNorm groups in the ResNet blocks and the ConvS5 D path
    dropout: float = 0.0
    loss_weight: float = 0.5  # loss = w * MSE + (1 - w) * L1
    scan_method: Literal["auto", "sequential", "associative", "chunked", "log"] = "auto"
    d_init: Literal["torch", "lecun"] = "torch"  # ConvS5 D-path convs; "lecun": the JAX code's (core convssm.py)
    # the cell slot (models/cells.py): another core spatial recurrence in place of the ConvS5 stack,
    # with d_model channels and n_layers layers (the ConvS5 fields above are then unused); None: ConvS5
    cell: Optional[CellConfig] = None

    def validate(self) -> None:
        down = 2 ** (len(self.enc_widths) - 1)
        if self.height % down or self.width % down:
            raise ConfigError(f"model.enc_widths: {len(self.enc_widths)} stages need height/width divisible by {down}")
        if any(w % self.num_groups for w in self.enc_widths) or self.d_model % self.num_groups:
            raise ConfigError(f"model.num_groups={self.num_groups} must divide enc_widths {list(self.enc_widths)} "
                              f"and d_model {self.d_model}")


class ConvS5Predictor(nn.Module):
    """``model(frames_in, n_out) -> frames_out`` on (B, T, C, H, W) in [0, 1]."""

    def __init__(self, cfg: ConvS5VPConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        w = tuple(cfg.enc_widths)
        self.encoder = ResNetEncoder(cfg.channels, w, cfg.enc_blocks, cfg.num_groups)
        self.in_proj = _conv(w[-1], cfg.d_model, 1)  # the official action_conv, without actions
        if cfg.cell is None:
            self.ssm = ConvS5(ConvS5Config(
                d_model=cfg.d_model, ssm_size=cfg.ssm_size, kernel_B=cfg.kernel_B, kernel_C=cfg.kernel_C,
                kernel_D=cfg.kernel_D, dt_min=cfg.dt_min, dt_max=cfg.dt_max, num_groups=cfg.num_groups,
                n_layers=cfg.n_layers, dropout=cfg.dropout, scan_method=cfg.scan_method, d_init=cfg.d_init))
        else:
            self.ssm = build_cell(cfg.cell, cfg.d_model, cfg.d_model, cfg.n_layers)  # (B, L, d_model, h, w)
        self.decoder = ResNetDecoder(cfg.d_model, cfg.channels, w, cfg.enc_blocks, cfg.num_groups)

    # ---- pieces: (B, L, C, H, W) in [-1, 1] <-> latents ----------------------------------
    def encode(self, v: torch.Tensor) -> torch.Tensor:
        z = self.in_proj(self.encoder(v.flatten(0, 1)))  # (B L, d, h, w)
        return z.unflatten(0, v.shape[:2])  # (B, L, d, h, w)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.decoder(z.flatten(0, 1))).unflatten(0, z.shape[:2])  # (B, L, C, H, W)

    def predict_next(self, v: torch.Tensor, state=None):
        """Parallel (scan) mode: frames v_0..v_{L-1} -> predictions of v_1..v_L, final states."""
        y, state = self.ssm(self.encode(v), state)  # (B, L, d, h, w)
        return self.decode(y), state

    # ---- the shared interface -------------------------------------------------------------
    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        v = torch.cat([batch["frames_in"], batch["frames_out"]], 1) * 2 - 1  # (B, T, C, H, W) in [-1, 1]
        pred, _ = self.predict_next(v[:, :-1])
        err = pred - v[:, 1:]
        mse = err.pow(2).sum(dim=(2, 4)).mean()  # official: sum over (W, C), mean over (B, T, H)
        l1 = err.abs().sum(dim=(2, 4)).mean()
        w = self.cfg.loss_weight
        loss = w * mse + (1 - w) * l1
        return loss, {"mse_loss": float(mse.detach()), "l1_loss": float(l1.detach())}

    @torch.no_grad()
    def generate(self, frames_in: torch.Tensor, n_out: int) -> torch.Tensor:
        """Step mode, in [-1, 1] space: (B, k, C, H, W) context -> (B, n_out, C, H, W)."""
        state = None
        if frames_in.shape[1] > 1:
            _, state = self.ssm(self.encode(frames_in[:, :-1]), None)  # states after frames 0..k-2
        cur, outs = frames_in[:, -1], []
        for _ in range(n_out):
            y, state = self.ssm.step(self.encode(cur[:, None])[:, 0], state)  # (B, d, h, w)
            cur = self.decode(y[:, None])[:, 0]  # (B, C, H, W)
            outs.append(cur)
        return torch.stack(outs, 1)

    @torch.no_grad()
    def generate_by_prefix(self, frames_in: torch.Tensor, n_out: int) -> torch.Tensor:
        """The same frames as ``generate``, re-running the parallel model on every prefix."""
        seq = frames_in
        for _ in range(n_out):
            pred, _ = self.predict_next(seq)
            seq = torch.cat([seq, pred[:, -1:]], 1)
        return seq[:, frames_in.shape[1]:]

    def forward(self, frames_in: torch.Tensor, n_out: int | None = None) -> torch.Tensor:
        n_out = self.cfg.out_frames if n_out is None else int(n_out)
        return (self.generate(frames_in * 2 - 1, n_out) + 1) / 2  # back to [0, 1]


# --------------------------------------------------------------------------- variants


register_variant("convs5_vp", ConvS5VPConfig, ConvS5Predictor,
                 "ConvS5 video predictor: ResNet encoder/decoder around core ConvS5 layers (NVlabs ConvSSM).")


# Official Moving-MNIST 300-frame config: widths [64,128,256], 8 layers, d_model = ssm_size = 256.
ConvS5MMNISTLongConfig = variant(ConvS5VPConfig, "ConvS5MMNISTLongConfig")


register_variant("convs5_mmnist_long", ConvS5MMNISTLongConfig, ConvS5Predictor,
                 "ConvS5, official long Moving-MNIST config (300-frame training; 8 layers, d_model/ssm 256).")


# Official 600-frame config: d_model = ssm_size = 128 (lr 5e-4 in its recipe).
ConvS5MMNISTLong600Config = variant(ConvS5VPConfig, "ConvS5MMNISTLong600Config", d_model=128, ssm_size=128)


register_variant("convs5_mmnist_long600", ConvS5MMNISTLong600Config, ConvS5Predictor,
                 "ConvS5, official 600-frame Moving-MNIST config (8 layers, d_model/ssm 128).")


TestConvS5Config = variant(ConvS5VPConfig, "TestConvS5Config", in_frames=4, out_frames=4, height=16, width=16,
                           enc_widths=(8, 16), d_model=16, ssm_size=16, n_layers=2, num_groups=4)


register_variant("test_convs5", TestConvS5Config, ConvS5Predictor,
                 "Tiny ConvS5 predictor for tests (widths [8, 16], 2 layers of d_model 16).")
