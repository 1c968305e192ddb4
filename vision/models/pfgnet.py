"""PFGNet: peripheral-frequency gated video prediction (CVPR 2026, arXiv 2602.20537).

A SimVP-style model: a 2-D conv encoder applied frame by frame, a translator that folds time
into channels, (B, T*hid_S, H', W'), and a mirrored decoder. The translator is MSInit
followed by N_T PFG blocks. A PFG block is

    x = x + DropPath(gamma_tm * GRN(GELU(PFGA(GN(x)))))                  token mixer
    x = x + DropPath(gamma_cm * GRN(Conv1x1(SiLU(u) * DW3x3(v))))        channel mixer (GLU)
        with u, v = split(Conv1x1(GN(x)), 2), each of width E = 4C

PFGA mixes three large separable kernels, K in {9, 15, 31}:
branch_K(x) = DW(Kx1)(DW(1xK)(x)) - tanh(beta_K) * DW3x3(x) (beta_K per channel, init 0),
weighted per pixel by alpha = softmax(Conv1x1(cues)) where the cues are fixed, channel-averaged
edge statistics: Sobel gradient magnitude sqrt(gx^2 + gy^2 + 1e-6), |Laplacian| and the 3x3
local variance. GRN here is x + gamma * x / (||x||_2 + eps) + beta with the L2 norm over the
spatial dims (PFGNet's definition, not ConvNeXt-V2's). Checked against the reference code
(fhjdqaq/PFGNet @ 7ca6a13); this is an independent implementation.

When more frames are requested than the model takes in, it rolls out autoregressively in
chunks of T (as the reference's ``PFG.forward``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
# timm (trunc_normal_, DropPath, as in the reference) is imported inside the constructors
# that use it: importing timm pulls in torchvision and torch._dynamo (seconds), and this
# module is imported at every `ostinato` start through the domain entry point.

from ostinato.core.config import variant
from ostinato.core.errors import ConfigError
from ostinato.core.registry import register_variant

# --------------------------------------------------------------------------- blocks


class ConvSC(nn.Module):
    """SimVP's conv unit: 3x3 conv (stride 2 to downsample, or conv to 4C + PixelShuffle(2)
    to upsample), GroupNorm(2), SiLU. Conv weights trunc-normal(0.02), biases 0 (SimVP)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, down: bool = False, up: bool = False):
        super().__init__()
        stride = 2 if down else 1
        pad = (kernel - stride + 1) // 2
        if up:
            self.conv = nn.Sequential(nn.Conv2d(c_in, 4 * c_out, kernel, 1, pad), nn.PixelShuffle(2))
        else:
            self.conv = nn.Conv2d(c_in, c_out, kernel, stride, pad)
        self.norm = nn.GroupNorm(2, c_out)
        self.act = nn.SiLU()
        from timm.layers import trunc_normal_  # lazy: see the note at the imports

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


def _samplings(n: int) -> list[bool]:
    """SimVP's pattern: stride 2 at every other layer, starting with the second."""
    return [i % 2 == 1 for i in range(n)]


class Encoder(nn.Module):
    def __init__(self, c_in: int, hid: int, n_layers: int, kernel: int):
        super().__init__()
        s = _samplings(n_layers)
        self.layers = nn.ModuleList(
            [ConvSC(c_in if i == 0 else hid, hid, kernel, down=s[i]) for i in range(n_layers)]
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.layers[0](x)  # (BT, hid, H, W)
        z = skip
        for layer in self.layers[1:]:
            z = layer(z)  # (BT, hid, H', W')
        return z, skip


class Decoder(nn.Module):
    """Mirror of the encoder; the first encoder feature is added before the last layer."""

    def __init__(self, hid: int, c_out: int, n_layers: int, kernel: int):
        super().__init__()
        s = list(reversed(_samplings(n_layers)))
        self.layers = nn.ModuleList([ConvSC(hid, hid, kernel, up=s[i]) for i in range(n_layers)])
        self.readout = nn.Conv2d(hid, c_out, 1)

    def forward(self, z: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            z = layer(z)
        return self.readout(self.layers[-1](z + skip))  # (BT, C, H, W)


class GRN(nn.Module):
    """PFGNet's GRN: x + gamma * x / (||x||_2 + eps) + beta, L2 norm over (H, W) per channel."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, ord=2, dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        return x + self.gamma * (x / (norm + self.eps)) + self.beta


def _dw(dim: int, kernel, padding=0) -> nn.Conv2d:
    """Depthwise conv: one filter per channel, no bias."""
    return nn.Conv2d(dim, dim, kernel, padding=padding, groups=dim, bias=False)


class RepDW(nn.Module):
    """MSInit branch: DW(1xk) -> DW(kx1), plus DW3x3, plus DW1x1 initialised to identity."""

    def __init__(self, dim: int, k: int):
        super().__init__()
        self.dw_h = _dw(dim, (1, k), (0, k // 2))
        self.dw_v = _dw(dim, (k, 1), (k // 2, 0))
        self.dw_s = _dw(dim, 3, 1)
        self.dw_i = _dw(dim, 1)
        nn.init.dirac_(self.dw_i.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dw_v(self.dw_h(x)) + self.dw_s(x) + self.dw_i(x)


class MSInit(nn.Module):
    """Multi-scale stem of the translator: per k in {3,5,7}, RepDW(k) then 1x1 conv to C/3
    channels (a k=3 tail branch takes the remainder); concat -> GroupNorm(1) -> GELU."""

    def __init__(self, c_in: int, c_out: int, kernels: tuple[int, ...] = (3, 5, 7)):
        super().__init__()
        part = c_out // len(kernels)
        widths = [part] * len(kernels)
        ks = list(kernels)
        if c_out - part * len(kernels) > 0:
            widths.append(c_out - part * len(kernels))
            ks.append(kernels[0])
        self.branches = nn.ModuleList(
            [nn.Sequential(RepDW(c_in, k), nn.Conv2d(c_in, w, 1, bias=False)) for k, w in zip(ks, widths)]
        )
        self.norm = nn.GroupNorm(1, c_out)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([b(x) for b in self.branches], dim=1)  # (B, C_out, H, W)
        return self.act(self.norm(y))


SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
SOBEL_Y = ((-1.0, -2.0, -1.0), (0.0, 0.0, 0.0), (1.0, 2.0, 1.0))
LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


def frequency_cues(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Fixed edge statistics, averaged over channels: (B, C, H, W) -> (B, 3, H, W).

    ``kernels`` is (3, 1, 3, 3) = Sobel-x, Sobel-y, Laplacian (cross-correlation, zero padding).
    Returns [sqrt(gx^2 + gy^2 + 1e-6), |lap|, local variance over a 3x3 window]; the variance
    is E[x^2] - E[x]^2 with zero padding counted (avg_pool2d's default), clamped at 0.
    """
    b, c, h, w = x.shape
    xs = x.reshape(b * c, 1, h, w)  # (BC, 1, H, W)
    d = F.conv2d(xs, kernels.to(x.dtype), padding=1).reshape(b, c, 3, h, w)  # (B, C, 3, H, W)
    grad = torch.sqrt(d[:, :, 0] ** 2 + d[:, :, 1] ** 2 + 1e-6)  # (B, C, H, W); 1e-6 keeps sqrt differentiable at 0
    lap = d[:, :, 2].abs()
    mean = F.avg_pool2d(x, 3, 1, 1)
    var = (F.avg_pool2d(x * x, 3, 1, 1) - mean * mean).clamp_min(0.0)  # clamp: round-off can go below 0
    return torch.stack([grad.mean(1), lap.mean(1), var.mean(1)], dim=1)  # (B, 3, H, W)


class PFGBranch(nn.Module):
    """DW(Kx1)(DW(1xK)(x)) - tanh(beta) * DW3x3(x); beta per channel, init 0."""

    def __init__(self, dim: int, k: int):
        super().__init__()
        self.dw_h = _dw(dim, (1, k), (0, k // 2))
        self.dw_v = _dw(dim, (k, 1), (k // 2, 0))
        self.dw_c = _dw(dim, 3, 1)
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dw_v(self.dw_h(x)) - torch.tanh(self.beta) * self.dw_c(x)


class PFGA(nn.Module):
    """Peripheral-frequency guided aggregation: branches fused by a per-pixel softmax gate."""

    def __init__(self, dim: int, kernels: tuple[int, ...] = (9, 15, 31)):
        super().__init__()
        self.branches = nn.ModuleList([PFGBranch(dim, k) for k in kernels])
        filt = torch.tensor([SOBEL_X, SOBEL_Y, LAPLACIAN]).unsqueeze(1)  # (3, 1, 3, 3)
        self.register_buffer("cue_kernels", filt, persistent=False)
        self.gate = nn.Conv2d(3, len(kernels), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.softmax(self.gate(frequency_cues(x, self.cue_kernels)), dim=1)  # (B, |K|, H, W)
        out = 0.0
        for i, branch in enumerate(self.branches):
            out = out + alpha[:, i : i + 1] * branch(x)  # (B, C, H, W)
        return out


class PFGBlock(nn.Module):
    def __init__(self, dim: int, kernels: tuple[int, ...] = (9, 15, 31), mlp_ratio: float = 4.0,
                 layerscale_init: float = 1e-6, drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        groups = min(32, dim)
        self.norm_tm = nn.GroupNorm(groups, dim)
        self.pfga = PFGA(dim, kernels)
        self.act = nn.GELU()
        self.grn_tm = GRN(dim)
        e = max(dim, int(dim * mlp_ratio))
        self.norm_cm = nn.GroupNorm(groups, dim)
        self.pw_in = nn.Conv2d(dim, 2 * e, 1)
        self.dw_v = _dw(e, 3, 1)
        self.pw_out = nn.Conv2d(e, dim, 1)
        self.grn_cm = GRN(dim)
        self.gamma_tm = nn.Parameter(torch.full((dim,), layerscale_init))
        self.gamma_cm = nn.Parameter(torch.full((dim,), layerscale_init))
        self.gamma_tm._no_weight_decay = True
        self.gamma_cm._no_weight_decay = True
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()
        if drop_path > 0:
            from timm.layers import DropPath  # lazy: see the note at the imports

            self.drop_path = DropPath(drop_path)
        else:
            self.drop_path = nn.Identity()
        for m in self.modules():  # Kaiming-normal (fan-out) for every conv of the block
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.drop(self.grn_tm(self.act(self.pfga(self.norm_tm(x)))))
        x = x + self.drop_path(y * self.gamma_tm.view(1, -1, 1, 1))
        u, v = self.pw_in(self.norm_cm(x)).chunk(2, dim=1)  # 2 x (B, E, H, W)
        z = self.drop(self.grn_cm(self.pw_out(F.silu(u) * self.dw_v(v))))
        return x + self.drop_path(z * self.gamma_cm.view(1, -1, 1, 1))


def drop_path_rates(depth: int, drop_path: float) -> list[float]:
    """Linear from 1e-2 to ``drop_path`` over the blocks (all 0 when drop_path is 0)."""
    if drop_path <= 0 or depth == 0:
        return [0.0] * depth
    return torch.linspace(1e-2, drop_path, depth).tolist()


class Translator(nn.Module):
    def __init__(self, dim: int, depth: int, block: Callable[[float], nn.Module], msinit_kernels=(3, 5, 7),
                 drop_path: float = 0.0):
        super().__init__()
        self.msinit = MSInit(dim, dim, msinit_kernels)
        self.blocks = nn.Sequential(*[block(r) for r in drop_path_rates(depth, drop_path)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.msinit(x))


# --------------------------------------------------------------------------- model


@dataclass
class PFGNetConfig:
    in_frames: int = 10  # T: frames the model reads (time is folded into channels)
    out_frames: int = 10  # frames predicted by `loss` (rolls out in chunks of T if larger)
    channels: int = 1
    height: int = 64
    width: int = 64
    hid_S: int = 64
    N_S: int = 4  # encoder/decoder layers (even: stride 2 at every other layer)
    N_T: int = 8  # PFG blocks
    kernel_enc: int = 3
    kernel_dec: int = 3
    pfga_kernels: tuple[int, ...] = (9, 15, 31)
    msinit_kernels: tuple[int, ...] = (3, 5, 7)
    mlp_ratio: float = 4.0
    layerscale_init: float = 1e-6
    drop: float = 0.0
    drop_path: float = 0.0

    def validate(self) -> None:
        if self.N_S < 2 or self.N_S % 2:
            raise ConfigError(f"model.N_S: expected an even number >= 2, got {self.N_S}")
        down = 2 ** (self.N_S // 2)
        if self.height % down or self.width % down:
            raise ConfigError(f"model.height/width: expected multiples of {down} for N_S={self.N_S}, "
                              f"got {self.height}x{self.width}")
        if min(self.in_frames, self.out_frames, self.channels) < 1 or self.hid_S < 2 or self.hid_S % 2:
            raise ConfigError("model: in_frames, out_frames, channels must be >= 1 and hid_S even "
                              "(GroupNorm(2) in the encoder)")
        if (self.in_frames * self.hid_S) % min(32, self.in_frames * self.hid_S):
            raise ConfigError(f"model: in_frames*hid_S={self.in_frames * self.hid_S} must be divisible by 32 "
                              "(GroupNorm(32) in the PFG blocks) or be below 32")


class PFGNet(nn.Module):
    """``model(frames_in, n_out) -> frames_out`` on (B, T, C, H, W) frames in [0, 1]."""

    def __init__(self, cfg: PFGNetConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        dim = cfg.in_frames * cfg.hid_S
        self.enc = Encoder(cfg.channels, cfg.hid_S, cfg.N_S, cfg.kernel_enc)
        self.dec = Decoder(cfg.hid_S, cfg.channels, cfg.N_S, cfg.kernel_dec)

        def block(rate: float) -> PFGBlock:
            return PFGBlock(dim, cfg.pfga_kernels, cfg.mlp_ratio, cfg.layerscale_init, cfg.drop, rate)

        self.translator = Translator(dim, cfg.N_T, block, cfg.msinit_kernels, cfg.drop_path)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One pass: T frames in, the next T frames out."""
        b, t, c, h, w = x.shape
        if t != self.cfg.in_frames:
            raise ConfigError(f"PFGNet was built for in_frames={self.cfg.in_frames}, got {t} input frames")
        z, skip = self.enc(x.reshape(b * t, c, h, w))  # (BT, hid, H', W'), (BT, hid, H, W)
        _, ch, hh, ww = z.shape
        z = self.translator(z.reshape(b, t * ch, hh, ww))  # (B, T*hid, H', W')
        y = self.dec(z.reshape(b * t, ch, hh, ww), skip)  # (BT, C, H, W)
        return y.reshape(b, t, c, h, w)

    def forward(self, frames_in: torch.Tensor, n_out: int | None = None) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, n_out, C, H, W); chunked autoregressive rollout if n_out > T."""
        n_out = self.cfg.out_frames if n_out is None else int(n_out)
        outs, cur, have = [], frames_in, 0
        while have < n_out:
            cur = self.step(cur)  # (B, T, C, H, W)
            outs.append(cur)
            have += cur.shape[1]
        return torch.cat(outs, dim=1)[:, :n_out]  # (B, n_out, C, H, W)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE (mean over all pixels) between predicted and true future frames."""
        target = batch["frames_out"]
        pred = self(batch["frames_in"], target.shape[1])
        loss = F.mse_loss(pred, target)
        return loss, {"mse": float(loss.detach())}


# --------------------------------------------------------------------------- variants


register_variant("pfgnet", PFGNetConfig, PFGNet,
                 "PFGNet (SimVP encoder/decoder + MSInit + PFG blocks); fields as in the released configs.")


# The released configs/mmnist/PFG.py: hid_S 64, N_T 8, N_S 4 on 10x1x64x64 (41.26M params).
PFGNetMMNISTConfig = variant(PFGNetConfig, "PFGNetMMNISTConfig")


register_variant("pfgnet_mmnist", PFGNetMMNISTConfig, PFGNet,
                 "PFGNet, released Moving-MNIST config (hid_S 64, N_T 8, N_S 4; 41.26M params).")


# hid_S 16 (else the released config): 2.78M params, inside the paper's 1.9-7.3M range.
PFGNetMMNISTSmallConfig = variant(PFGNetConfig, "PFGNetMMNISTSmallConfig", hid_S=16)


register_variant("pfgnet_mmnist_s", PFGNetMMNISTSmallConfig, PFGNet,
                 "PFGNet-S for Moving MNIST: hid_S 16, N_T 8, N_S 4 (2.78M params, paper's size range).")


TestPFGNetConfig = variant(PFGNetConfig, "TestPFGNetConfig", in_frames=4, out_frames=4, height=16, width=16, hid_S=8,
                           N_S=2, N_T=2)


register_variant("test_pfgnet", TestPFGNetConfig, PFGNet,
                 "Tiny PFGNet for tests (4 frames of 16x16, hid_S 8, 2 blocks).")
