"""Chimera (Behrouz, Santacatterina, Zabih; "Chimera: Effectively Modeling Multivariate Time
Series with 2-Dimensional State Space Models", NeurIPS 2024, arXiv 2406.04320).

The paper's code has not been released, so this is a reconstruction from the paper's
description, not the authors' model: its numbers are this reconstruction's, measured here,
and do not reproduce the paper's tables. What the paper fixes, and this module follows:

- the mixer is a 2-D selective SSM over (variate v, time t) with two hidden states,
  h1 along time and h2 along variates, input-dependent B, C and Δ, and structured
  diagonal A (``ostinato.core.layers.ssm2d.SelectiveSSM2D``: ZOH with Δ1 along time and
  Δ2 along variates; see its docstring for the recurrence and the exact parallel scan);
- the series is decomposed into a trend and a seasonal part, each handled by its own
  2-D SSM stack ("head") with a different discretisation: small Δ1 for the trend /
  long-term progression, larger Δ1 for the seasonal part;
- the variate axis has no natural order, so it is processed in both directions;
- task heads for long-horizon forecasting, classification and reconstruction-based
  anomaly detection.

What the reconstruction leaves out:

- **a third head**: secondary summaries of the paper call Chimera "three-headed"; the
  paper's abstract names two input-dependent 2-D SSM heads, and this module has exactly
  two (trend and seasonal, summed). Nothing models a third component.
- **a closed-loop decoder**: the same summaries mention a closed-loop decoder that extends
  the forecast horizon by feeding forecasts back. Here the horizon head is a direct linear
  map from the look-back's tokens to ``pred_len`` steps, trained for that horizon only.
  ``ostinato forecast --horizon`` beyond ``pred_len`` feeds forecasts back as inputs at
  inference time (features M only); that loop is never trained and is not the paper's decoder.
- whatever else the unreleased code does: parameter initialisation, Δ ranges, tokenisation
  (patching is this module's choice), training schedule; the paper's M4, UEA, speech and
  brain-activity experiments are not part of this project's benchmark.

Design decisions where the paper is ambiguous (each is a config field unless noted):

1. **Per-window normalisation** (``norm``): the look-back window is normalised per
   variate by its mean and population std and the forecast is de-normalised with the
   same statistics (RevIN without the affine part, as Time-Series-Library models do).
   ``norm_affine`` adds RevIN's learnable affine map. ``norm_mode`` ``mean``
   subtracts the mean only and ``last`` the last value only (NLinear), keeping the scale.
   Off for classification recipes.
2. **Decomposition** (``kernel_size``): the Autoformer/DLinear moving average with edge
   replication gives the trend; seasonal = input - trend. ``decomposition=False`` feeds the
   raw input to both heads.
3. **Tokens along time** (``patch_len``, ``stride``): the 2-D grid's time axis runs over
   patches of ``patch_len`` steps with hop ``stride`` (end padded by repeating the last
   value, as PatchTST), each embedded linearly to ``d_model`` channels plus a learned
   position embedding. ``patch_len = stride = 1`` gives one token per time step. Patching
   keeps the CPU cost manageable; it is not stated in the paper.
4. **Discretisation of the two heads** (``trend_dt``, ``seasonal_dt``, ``variate_dt``): the
   initial range of Δ1 (log-uniform, then learned and input-dependent) is
   ``trend_dt`` for the trend head and ``seasonal_dt`` (larger) for the seasonal head;
   Δ2 starts in ``variate_dt`` for both. The cross couplings a2, a3 follow the core
   layer's contraction-preserving parameterisation.
5. **Bidirectional variates** (``bidirectional``): each block has a forward and a
   variate-reversed 2-D SSM with their own parameters; their outputs are summed.
6. **Block** (Mamba-style): pre-LayerNorm -> linear to 2E (E = ``expand * d_model``) split
   into (u, z) -> bidirectional 2-D SSM on u -> multiply by SiLU(z) -> linear back to
   ``d_model`` -> dropout -> residual. ``n_layers`` blocks per head, then a final
   LayerNorm (``final_norm``).
7. **Heads**: forecasting flattens each variate's tokens (T' x D) and maps them linearly
   to the horizon (shared over variates); the two heads' forecasts are summed (the
   decomposition is additive). Classification averages tokens over time, concatenates
   variates and both heads, and applies a linear layer. Anomaly detection reconstructs
   the input window like a forecast of length ``seq_len``; the score of a time step is
   the squared reconstruction error averaged over variates.
8. **Outputs for MS**: the model forecasts every variate; the last ``out_vars`` are
   returned (Time-Series-Library's ``f_dim = -1``).
9. **Time-stamp features** (``time_features``, off by default; the paper does not say): the
   look-back's calendar features (``x_mark``, TSLib ``timeenc=1``) join the grid as extra
   variates, as iTransformer treats covariates as variate tokens; they pass through the same
   decomposition, embeddings and 2-D SSM, so they reach the data variates only through the
   variate-direction state, and they are not forecast.
10. **Linear skip** (``linear_skip``, off by default; not in the paper): DLinear's two linear
    maps (look-back -> horizon, shared over variates) of the trend and seasonal parts are added
    to the heads' forecasts, so the SSM heads model what a linear forecaster misses.
11. **Training loss** (``loss``): ``mse`` (TSLib's, the default), ``mae`` (L1) or ``huber``
    (``huber_delta``) for forecasting and anomaly reconstruction; evaluation metrics do not change.
12. **Channel independence** (``channel_independent``, off by default; departs from the paper):
    each variate's tokens go through the 2-D SSM blocks as a sample of their own (one variate per
    grid), so nothing flows across variates and the variate-direction state h2 sees one variate only;
    embeddings, blocks and heads stay shared over variates (PatchTST-style).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ostinato.core.config import variant
from ostinato.core.errors import ConfigError
from ostinato.core.layers.ssm2d import SelectiveSSM2D, SSM2DConfig
from ostinato.core.registry import register_variant

from .blocks import MovingAvgDecomp, WindowNorm


@dataclass
class ChimeraConfig:
    task: Literal["forecast", "classify", "anomaly"] = "forecast"
    seq_len: int = 96
    pred_len: int = 96
    n_vars: int = 7  # filled from the data
    out_vars: int = 0  # forecast the last out_vars variates; 0: all
    n_classes: int = 2  # classification only; filled from the data
    d_model: int = 64
    d_state: int = 16
    expand: int = 1  # inner width E = expand * d_model
    n_layers: int = 1  # blocks per head
    patch_len: int = 16
    stride: int = 8
    decomposition: bool = True
    kernel_size: int = 25
    trend_dt: tuple[float, float] = (1e-3, 1e-2)  # Δ1 init range, trend / long-term head
    seasonal_dt: tuple[float, float] = (1e-2, 1e-1)  # Δ1 init range, seasonal head
    variate_dt: tuple[float, float] = (1e-3, 1e-1)  # Δ2 init range (both heads)
    bidirectional: bool = True
    dropout: float = 0.1
    head_dropout: float = 0.0
    norm: bool = True  # per-window normalisation (RevIN-style)
    norm_affine: bool = False  # RevIN's learnable per-variate affine map after normalising
    norm_mode: Literal["revin", "mean", "last"] = "revin"  # mean and std; the mean only; the last value only
    final_norm: bool = True  # LayerNorm on each head's output tokens before the task head
    linear_skip: bool = False  # add DLinear-style linear maps of the decomposed window (not in the paper)
    loss: Literal["mse", "mae", "huber"] = "mse"  # training loss (forecast / anomaly)
    huber_delta: float = 1.0
    channel_independent: bool = False  # each variate through the SSM blocks on its own (not in the paper)
    time_features: bool = False  # the look-back's calendar features (x_mark) as extra variates of the grid
    method: Literal["auto", "loop", "scan_time", "scan_variates"] = "auto"

    def validate(self) -> None:
        if self.patch_len < 1 or self.stride < 1 or self.stride > self.patch_len:
            raise ConfigError(f"model.patch_len={self.patch_len}, model.stride={self.stride}: expected 1 <= stride <= patch_len")
        if self.patch_len > self.seq_len:
            raise ConfigError(f"model.patch_len={self.patch_len} is longer than seq_len={self.seq_len}")
        if self.huber_delta <= 0:
            raise ConfigError(f"model.huber_delta={self.huber_delta}: expected > 0")
        for name in ("trend_dt", "seasonal_dt", "variate_dt"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ConfigError(f"model.{name}={[lo, hi]}: expected 0 < low <= high")


class ChimeraBlock(nn.Module):
    """Pre-norm gated block around a (bidirectional) 2-D selective SSM. (B, V, T, D) -> same."""

    def __init__(self, d_model: int, expand: int, ssm: callable, bidirectional: bool, dropout: float):
        super().__init__()
        e = expand * d_model
        self.norm = nn.LayerNorm(d_model)
        self.in_proj = nn.Linear(d_model, 2 * e)
        self.fwd = ssm(reverse_variates=False)
        self.bwd = ssm(reverse_variates=True) if bidirectional else None
        self.out_proj = nn.Linear(e, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, z = self.in_proj(self.norm(x)).chunk(2, dim=-1)  # (B, V, T, E) each
        y, _ = self.fwd(u)
        if self.bwd is not None:
            y = y + self.bwd(u)[0]
        return x + self.drop(self.out_proj(y * F.silu(z)))  # (B, V, T, D)


class ChimeraHead(nn.Module):
    """One decomposition branch: patch embedding -> blocks with its own Δ1 range -> norm."""

    def __init__(self, cfg: ChimeraConfig, dt: tuple[float, float]):
        super().__init__()
        self.cfg = cfg
        self.n_tokens = (cfg.seq_len - cfg.patch_len) // cfg.stride + 1 + (1 if cfg.stride < cfg.patch_len else 0)
        self.embed = nn.Linear(cfg.patch_len, cfg.d_model)
        self.pos = nn.Parameter(torch.randn(self.n_tokens, cfg.d_model) * 0.02)
        e = cfg.expand * cfg.d_model

        def ssm(reverse_variates: bool) -> SelectiveSSM2D:
            return SelectiveSSM2D(SSM2DConfig(
                d_model=e, d_state=cfg.d_state, n_vars=cfg.n_vars, dt_min=dt[0], dt_max=dt[1],
                dt_var_min=cfg.variate_dt[0], dt_var_max=cfg.variate_dt[1], reverse_variates=reverse_variates,
                method=cfg.method,
            ))

        self.blocks = nn.ModuleList(ChimeraBlock(cfg.d_model, cfg.expand, ssm, cfg.bidirectional, cfg.dropout) for _ in range(cfg.n_layers))
        self.norm_f = nn.LayerNorm(cfg.d_model) if cfg.final_norm else nn.Identity()
        self.drop = nn.Dropout(cfg.dropout)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, L, V) -> patches (B, V, T', P)."""
        c = self.cfg
        xv = x.transpose(1, 2)  # (B, V, L)
        if c.stride < c.patch_len:
            xv = torch.cat([xv, xv[..., -1:].expand(-1, -1, c.stride)], dim=-1)  # (B, V, L + stride)
        return xv.unfold(-1, c.patch_len, c.stride)[:, :, : self.n_tokens]  # (B, V, T', P)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(self.embed(self.tokens(x)) + self.pos)  # (B, V, T', D)
        B, V, T, D = h.shape
        if self.cfg.channel_independent:
            h = h.reshape(B * V, 1, T, D)  # each variate its own grid
        for blk in self.blocks:
            h = blk(h)
        return self.norm_f(h.reshape(B, V, T, D))  # (B, V, T', D)


class Chimera(nn.Module):
    def __init__(self, cfg: ChimeraConfig):
        super().__init__()
        self.cfg = cfg
        self.window_norm = WindowNorm(cfg.n_vars, affine=cfg.norm_affine, mode=cfg.norm_mode) if cfg.norm else None
        self.decomp = MovingAvgDecomp(cfg.kernel_size) if cfg.decomposition else None
        self.trend = ChimeraHead(cfg, cfg.trend_dt)
        self.seasonal = ChimeraHead(cfg, cfg.seasonal_dt)
        flat = self.trend.n_tokens * cfg.d_model
        self.head_drop = nn.Dropout(cfg.head_dropout)
        if cfg.task == "classify":
            self.cls = nn.Linear(2 * cfg.n_vars * cfg.d_model, cfg.n_classes)
        else:
            out_len = cfg.pred_len if cfg.task == "forecast" else cfg.seq_len
            self.trend_out = nn.Linear(flat, out_len)
            self.seasonal_out = nn.Linear(flat, out_len)
            if cfg.linear_skip:
                self.trend_skip = nn.Linear(cfg.seq_len, out_len)
                self.seasonal_skip = nn.Linear(cfg.seq_len, out_len)

    def _features(self, x: torch.Tensor, x_mark: torch.Tensor | None = None):
        if self.window_norm is not None:
            x, stats = self.window_norm.norm(x)  # (B, L, V)
        else:
            stats = None
        if self.cfg.time_features:
            if x_mark is None or x_mark.shape[:2] != x.shape[:2]:
                got = None if x_mark is None else tuple(x_mark.shape)
                raise ConfigError(f"model.time_features=true needs x_mark of shape ({x.shape[0]}, {x.shape[1]}, F), got {got}")
            x = torch.cat([x, x_mark.to(x.dtype)], dim=-1)  # (B, L, V + F)
        if self.decomp is not None:
            seasonal, trend = self.decomp(x)  # (B, L, V [+ F]) each
        else:
            seasonal = trend = x
        return self.trend(trend), self.seasonal(seasonal), stats, (trend, seasonal)  # (B, V, T', D) x2

    def forward(self, x: torch.Tensor, x_mark: torch.Tensor | None = None) -> torch.Tensor:
        """forecast: (B, L, V) -> (B, H, out_vars); anomaly: reconstruction (B, L, V);
        classify: logits (B, n_classes)."""
        if x.shape[1] != self.cfg.seq_len or x.shape[2] != self.cfg.n_vars:
            raise ConfigError(f"Chimera expects input (B, {self.cfg.seq_len}, {self.cfg.n_vars}), got {tuple(x.shape)}")
        ft, fs, stats, (xt, xs) = self._features(x, x_mark)
        V = self.cfg.n_vars
        if self.cfg.task == "classify":
            pooled = torch.cat([ft[:, :V].mean(2), fs[:, :V].mean(2)], dim=1)  # (B, 2V, D)
            return self.cls(self.head_drop(pooled.flatten(1)))  # (B, K)
        y = self.trend_out(self.head_drop(ft.flatten(2))) + self.seasonal_out(self.head_drop(fs.flatten(2)))  # (B, V, H)
        if self.cfg.linear_skip:  # (B, L, V) -> (B, V, H) per variate, weights shared over variates
            y = y + self.trend_skip(xt.transpose(1, 2)) + self.seasonal_skip(xs.transpose(1, 2))
        y = y[:, :V].transpose(1, 2)  # (B, H, V): calendar variates are inputs only
        if self.cfg.task == "forecast":
            y = y[..., -(self.cfg.out_vars or self.cfg.n_vars):]  # (B, H, out)
        if stats is not None:
            y = self.window_norm.denorm(y, stats)
        return y

    def predict(self, batch: dict) -> torch.Tensor:
        return self(batch["x"], batch.get("x_mark"))

    def anomaly_score(self, batch: dict) -> torch.Tensor:
        """Squared reconstruction error per time step, averaged over variates: (B, L)."""
        return (self(batch["x"], batch.get("x_mark")) - batch["x"]).pow(2).mean(-1)

    def loss(self, batch: dict):
        if self.cfg.task == "classify":
            logits = self(batch["x"], batch.get("x_mark"))
            loss = F.cross_entropy(logits, batch["label"])
            return loss, {"acc": float((logits.argmax(-1) == batch["label"]).float().mean())}
        target = batch["y"] if self.cfg.task == "forecast" else batch["x"]
        pred = self(batch["x"], batch.get("x_mark"))
        mse = F.mse_loss(pred, target)
        if self.cfg.loss == "mae":
            loss = F.l1_loss(pred, target)
        elif self.cfg.loss == "huber":
            loss = F.huber_loss(pred, target, delta=self.cfg.huber_delta)
        else:
            loss = mse
        return loss, {"mse": float(mse.detach())}


register_variant("chimera", ChimeraConfig, Chimera,
                 "Chimera (Behrouz et al. 2024): 2-D selective SSM, trend/seasonal heads, bidirectional variates.")


TestChimeraConfig = variant(ChimeraConfig, "TestChimeraConfig", seq_len=24, pred_len=12, d_model=8, d_state=4,
                            patch_len=4, stride=4, kernel_size=5)


register_variant("test_chimera", TestChimeraConfig, Chimera,
                 "Tiny Chimera for tests (d_model 8, d_state 4, patches of 4).")
