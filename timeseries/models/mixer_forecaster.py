"""Mixer forecaster: a channel-independent forecaster around a core sequence mixer, of the
S-Mamba / TSMamba family (S-Mamba: Wang et al., arXiv 2403.11144; TSMamba: arXiv 2411.02941;
layout as the mixer sheet's "proposed mixer forecaster", PatchTST-style tokens).

Every variate goes through the same model on its own (channel independence, as PatchTST and
TSMamba's backbone; S-Mamba itself mixes variate tokens, which this model does not):

1. per-window normalisation (RevIN without the affine part, as TSLib; ``norm``, ``norm_affine``);
2. tokens along time: ``embed="patch"`` cuts the look-back into patches of ``patch_len`` with hop
   ``stride`` (the end padded by repeating the last value ``stride`` times, as PatchTST) and maps
   each linearly to ``d_model``; ``embed="point"``: one token per time step (Linear(1, d_model));
   an optional learned position embedding (``pos_emb``) and dropout;
3. ``n_layers`` pre-norm residual blocks: ``x + drop(M(LN(x)))`` with M the core mixer in the slot
   (``model.mixer``; default mamba), with ``bidirectional`` a second mixer of its own on the
   time-reversed tokens summed in (S-Mamba's forward + flip∘M∘flip), then, if ``d_ff > 0``,
   ``x + drop(FFN(LN(x)))`` with FFN = Linear(d, d_ff) -> GELU -> dropout -> Linear(d_ff, d);
4. a final LayerNorm (``final_norm``), then the flattened tokens (N x d_model) map linearly to the
   horizon (shared over variates), and the forecast is de-normalised.

The forecaster reads the whole look-back, so the slot does not need causality: any core mixer
builds (``build_mixer(..., causal=False)``), bidirectional ones included. With ``out_vars`` < n_vars
(features MS) only the last ``out_vars`` variates are run: the others cannot change them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ostinato.core.errors import ConfigError
from ostinato.core.mixer import MixerConfig, build_mixer
from ostinato.core.registry import register_variant

from .blocks import WindowNorm


@dataclass
class MixerForecasterConfig:
    seq_len: int = 96
    pred_len: int = 96
    n_vars: int = 7  # filled from the data
    out_vars: int = 0  # forecast the last out_vars variates; 0: all
    mixer: Optional[MixerConfig] = None  # the core mixer in the slot; None: mamba with its defaults
    d_model: int = 128
    n_layers: int = 2
    d_ff: int = 256  # feed-forward width in each block; 0: no feed-forward
    embed: Literal["patch", "point"] = "patch"
    patch_len: int = 16
    stride: int = 8
    pos_emb: bool = False  # learned position embedding on the tokens
    bidirectional: bool = False  # a second mixer on the reversed tokens, summed (S-Mamba)
    dropout: float = 0.1
    head_dropout: float = 0.0
    norm: bool = True  # per-window normalisation (RevIN-style)
    norm_affine: bool = False
    final_norm: bool = True
    loss: Literal["mse", "mae"] = "mse"

    def validate(self) -> None:
        if self.embed == "patch":
            if self.patch_len < 1 or self.stride < 1 or self.stride > self.patch_len:
                raise ConfigError(f"model.patch_len={self.patch_len}, model.stride={self.stride}: expected 1 <= stride <= patch_len")
            if self.patch_len > self.seq_len:
                raise ConfigError(f"model.patch_len={self.patch_len} is longer than seq_len={self.seq_len}")


class MixerBlock(nn.Module):
    """Pre-norm residual block: x + drop(M(LN(x))) [+ drop(flip M' flip LN(x))], then x + drop(FFN(LN(x)))."""

    def __init__(self, cfg: MixerForecasterConfig, spec: MixerConfig):
        super().__init__()
        d = cfg.d_model
        self.norm1 = nn.LayerNorm(d)
        self.mixer = build_mixer(spec, d, causal=False, host="mixer_forecaster")
        self.mixer_rev = build_mixer(spec, d, causal=False, host="mixer_forecaster") if cfg.bidirectional else None
        self.drop = nn.Dropout(cfg.dropout)
        if cfg.d_ff > 0:
            self.norm2 = nn.LayerNorm(d)
            self.ffn = nn.Sequential(nn.Linear(d, cfg.d_ff), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.d_ff, d))
        else:
            self.ffn = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (R, N, D) -> (R, N, D)."""
        h = self.norm1(x)
        y, _ = self.mixer(h)  # (R, N, D)
        if self.mixer_rev is not None:
            y = y + self.mixer_rev(h.flip(1))[0].flip(1)
        x = x + self.drop(y)
        if self.ffn is not None:
            x = x + self.drop(self.ffn(self.norm2(x)))
        return x


class MixerForecaster(nn.Module):
    def __init__(self, cfg: MixerForecasterConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        spec = cfg.mixer if cfg.mixer is not None else MixerConfig.parse({"name": "mamba"}, "model.mixer")
        self.window_norm = WindowNorm(cfg.n_vars, affine=cfg.norm_affine) if cfg.norm else None
        d = cfg.d_model
        if cfg.embed == "patch":
            self.n_tokens = (cfg.seq_len + cfg.stride - cfg.patch_len) // cfg.stride + 1  # end padded by stride
            self.embedding = nn.Linear(cfg.patch_len, d)
        else:
            self.n_tokens = cfg.seq_len
            self.embedding = nn.Linear(1, d)
        self.pos = nn.Parameter(torch.randn(self.n_tokens, d) * 0.02) if cfg.pos_emb else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(MixerBlock(cfg, spec) for _ in range(cfg.n_layers))
        self.norm_f = nn.LayerNorm(d) if cfg.final_norm else nn.Identity()
        self.head_drop = nn.Dropout(cfg.head_dropout)
        self.head = nn.Linear(self.n_tokens * d, cfg.pred_len)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """x: (R, L) one series per row -> (R, N, 1 or patch_len)."""
        if self.cfg.embed == "point":
            return x.unsqueeze(-1)  # (R, L, 1)
        s = self.cfg.stride
        xp = torch.cat([x, x[:, -1:].expand(-1, s)], dim=1)  # (R, L + s)
        return xp.unfold(1, self.cfg.patch_len, s)  # (R, N, P)

    def forward(self, x: torch.Tensor, x_mark: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, L, C) -> (B, H, out_vars); each variate on its own."""
        cfg = self.cfg
        if x.shape[1] != cfg.seq_len or x.shape[2] != cfg.n_vars:
            raise ConfigError(f"mixer_forecaster expects input (B, {cfg.seq_len}, {cfg.n_vars}), got {tuple(x.shape)}")
        stats = None
        if self.window_norm is not None:
            x, stats = self.window_norm.norm(x)  # (B, L, C)
        c = cfg.out_vars or cfg.n_vars
        x = x[..., -c:]  # only the variates forecast: channel independence
        B, L, _ = x.shape
        h = self.embedding(self.tokens(x.transpose(1, 2).reshape(B * c, L)))  # (B*c, N, D)
        if self.pos is not None:
            h = h + self.pos
        h = self.drop(h)
        for blk in self.blocks:
            h = blk(h)
        h = self.norm_f(h)  # (B*c, N, D)
        y = self.head(self.head_drop(h.flatten(1)))  # (B*c, H)
        y = y.reshape(B, c, cfg.pred_len).transpose(1, 2)  # (B, H, c)
        if stats is not None:
            y = self.window_norm.denorm(y, stats)
        return y

    def predict(self, batch: dict) -> torch.Tensor:
        return self(batch["x"])

    def loss(self, batch: dict):
        pred = self.predict(batch)
        mse = F.mse_loss(pred, batch["y"])
        loss = F.l1_loss(pred, batch["y"]) if self.cfg.loss == "mae" else mse
        return loss, {"mse": float(mse.detach())}


register_variant("mixer_forecaster", MixerForecasterConfig, MixerForecaster,
                 "Channel-independent mixer forecaster (S-Mamba/TSMamba family): RevIN, patches, core mixer blocks (model.mixer, default mamba), linear head.")


@dataclass
class TestMixerForecasterConfig(MixerForecasterConfig):
    seq_len: int = 24
    pred_len: int = 12
    d_model: int = 8
    n_layers: int = 1
    d_ff: int = 16
    patch_len: int = 4
    stride: int = 4


register_variant("test_mixer_forecaster", TestMixerForecasterConfig, MixerForecaster,
                 "Tiny mixer forecaster for tests (d_model 8, one block, patches of 4).")
