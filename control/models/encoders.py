"""Per-step observation tokens shared by the control policies.

A step's tokens, in order: image tokens (a timm CNN over each camera, its feature map at ``encoder_stage``
average-pooled to ``image_grid`` x ``image_grid`` cells, one token per cell and camera), one
proprioception token, ``max_tokens`` instruction tokens (words hashed into ``vocab`` buckets;
0 is padding and is masked out of attention), then ``chunk`` action-query tokens.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from ..data.tokens import tokenize


def make_image_encoder(name: str, pretrained: bool, stage: int = -1, args: dict | None = None) -> nn.Module:
    """``timm.create_model(name, features_only=True, out_indices=(stage,), **args)``: pretrained
    weights when reachable. ``stage`` picks the feature level (e.g. 2 = stride 8 for
    mobilenetv3 and resnets), so small images keep a spatial map and the later stages are not
    computed. ``args`` are the model's own keywords, e.g. ``{"channels": [16, 32, 64, 128],
    "stem_width": 8}`` for a narrow ``resnet10t`` (then ``pretrained`` cannot apply).

    Offline (no hub access) ``pretrained=True`` falls back to random init with a warning.
    """
    import timm

    kw = dict(features_only=True, out_indices=(stage,), **(args or {}))
    if "channels" in kw:
        kw["channels"] = tuple(kw["channels"])
    if pretrained:
        try:
            return timm.create_model(name, pretrained=True, **kw)
        except Exception as e:  # network / hub errors differ by backend: report and fall back
            warnings.warn(f"pretrained weights for {name!r} unreachable ({type(e).__name__}); using random init")
    return timm.create_model(name, pretrained=False, **kw)


class StepEncoder(nn.Module):
    """Observation of one step -> (N, n_obs_tokens, d) tokens and their padding mask."""

    def __init__(self, d_model: int, image_channels: int, proprio_dim: int, encoder: str, pretrained: bool,
                 image_grid: int, vocab: int, max_tokens: int, encoder_stage: int = -1, encoder_args: dict | None = None):
        super().__init__()
        self.n_cams = image_channels // 3
        self.grid, self.vocab, self.max_tokens = image_grid, vocab, max_tokens
        if self.n_cams:
            self.cnn = make_image_encoder(encoder, pretrained, encoder_stage, encoder_args)
            ch = self.cnn.feature_info.channels()[-1]
            cfg = getattr(self.cnn, "pretrained_cfg", None) or {}
            mean, std = cfg.get("mean", (0.485, 0.456, 0.406)), cfg.get("std", (0.229, 0.224, 0.225))
            self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255.0, persistent=False)
            self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255.0, persistent=False)
            self.img_proj = nn.Linear(ch, d_model)
            self.img_pos = nn.Parameter(torch.randn(self.n_cams * image_grid**2, d_model) * 0.02)
        self.prop = nn.Sequential(nn.Linear(proprio_dim, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.word = nn.Embedding(vocab, d_model, padding_idx=0)
        self.word_pos = nn.Parameter(torch.randn(max_tokens, d_model) * 0.02)
        self.n_tokens = self.n_cams * image_grid**2 + 1 + max_tokens

    def forward(self, rgb: torch.Tensor | None, proprio: torch.Tensor, instr: torch.Tensor):
        """rgb (N, S, S, 3*n_cams) uint8, proprio (N, P), instr (N, max_tokens) long ->
        tokens (N, n_tokens, d), pad (N, n_tokens) bool (True = padding)."""
        N = proprio.shape[0]
        parts = []
        if self.n_cams:
            S = rgb.shape[1]
            x = rgb.reshape(N, S, S, self.n_cams, 3).permute(0, 3, 4, 1, 2).reshape(N * self.n_cams, 3, S, S)  # (N*c, 3, S, S)
            x = (x.float() - self.mean) / self.std
            f = self.cnn(x)[-1]  # (N*c, ch, h, w)
            f = nn.functional.adaptive_avg_pool2d(f, self.grid)  # (N*c, ch, g, g)
            f = f.flatten(2).transpose(1, 2).reshape(N, self.n_cams * self.grid**2, -1)  # (N, c*g*g, ch)
            parts.append(self.img_proj(f) + self.img_pos)  # (N, c*g*g, d)
        parts.append(self.prop(proprio.float())[:, None])  # (N, 1, d)
        parts.append(self.word(instr) + self.word_pos)  # (N, Lw, d)
        tokens = torch.cat(parts, dim=1)  # (N, n_tokens, d)
        pad = torch.zeros(N, self.n_tokens, dtype=torch.bool, device=tokens.device)
        pad[:, -self.max_tokens :] = instr == 0
        return tokens, pad


def l1_chunk_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted mean |pred - target| over valid chunk entries: pred/target (..., C, A), mask (..., C),
    weight (..., C) per chunk entry or (..., C, A) per action entry; no weight = plain mean."""
    m = mask.to(pred.dtype)[..., None]  # (..., C, 1)
    if weight is not None:
        w = weight.to(pred.dtype)
        m = m * (w if w.dim() == pred.dim() else w[..., None])  # (..., C, A) or (..., C, 1)
    n = m.sum() * (pred.shape[-1] if m.shape[-1] == 1 else 1)
    return ((pred - target).abs() * m).sum() / n.clamp_min(1.0)


def first_frame_recon_loss(rec: torch.Tensor, batch: dict, first: torch.Tensor | None, mean: torch.Tensor,
                           std: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """MSE between ``rec`` (B, W, c*g*g), a decoder's reading of the memory each step wrote, and that step's
    episode-first frame (average-pooled to ``grid`` x ``grid``, normalised by the encoder's ``mean``/``std``).

    ``first`` (B, c*g*g) is each stream's first frame carried from the previous window (None at the start or
    when the batch size changed: steps before the window's first ``is_first`` then have no target). Returns
    the loss and the first frames to carry (detached). Used by the policies' ``memory_recon`` option.
    """
    B, W = batch["is_first"].shape
    x = batch["rgb"].flatten(0, 1).permute(0, 3, 1, 2).float()  # (B*W, c, S, S)
    c = x.shape[1]
    x = nn.functional.adaptive_avg_pool2d(x, grid).view(B, W, c // 3, 3, grid, grid)
    x = ((x - mean.view(3, 1, 1)) / std.view(3, 1, 1)).flatten(2)  # (B, W, c*g*g)
    first = first if first is not None and first.shape[0] == B else None
    have = torch.zeros(B, dtype=torch.bool, device=x.device) if first is None else torch.ones_like(batch["is_first"][:, 0])
    first = torch.zeros_like(x[:, 0]) if first is None else first.to(x.device)
    targets, known = [], []
    for w in range(W):  # the latest episode start at or before each step (carried across windows)
        f = batch["is_first"][:, w]
        first = torch.where(f[:, None], x[:, w], first)
        have = have | f
        targets.append(first)
        known.append(have)
    tgt, ok = torch.stack(targets, 1), torch.stack(known, 1) & batch["chunk_mask"][:, :, 0]  # (B, W, c*g*g), (B, W)
    err = ((rec - tgt) ** 2).mean(-1)  # (B, W)
    return (err * ok).sum() / ok.sum().clamp_min(1), first.detach()


def step_encoder(cfg) -> StepEncoder:
    """The observation encoder of a step policy's config (:class:`.policy_config.StepPolicyConfig`)."""
    return StepEncoder(cfg.d_model, cfg.image_channels, cfg.proprio_dim, cfg.encoder, cfg.pretrained,
                       cfg.image_grid, cfg.vocab, cfg.max_tokens, cfg.encoder_stage, cfg.encoder_args)


def step_tokens(obs: StepEncoder, queries: torch.Tensor, rgb, proprio, instr):
    """Flat steps (N, ...) -> tokens (N, n_obs + C, d) ending in the C action ``queries`` (C, d), padding (N, n)."""
    tok, pad = obs(rgb, proprio, instr)  # (N, n_obs, d)
    N, C = tok.shape[0], queries.shape[0]
    tok = torch.cat([tok, queries[None].expand(N, -1, -1)], dim=1)  # (N, n, d)
    pad = torch.cat([pad, torch.zeros(N, C, dtype=torch.bool, device=pad.device)], 1)  # (N, n)
    return tok, pad


def window_tokens(tokens, batch: dict, image_channels: int):
    """Windows (B, W, ...) -> tokens (B, W, n, d), padding (B, W, n): ``tokens(rgb, proprio, instr)`` on flat steps."""
    B, W = batch["is_first"].shape
    rgb = batch.get("rgb")
    flat_rgb = None if rgb is None or not image_channels else rgb.flatten(0, 1)  # (B*W, S, S, c)
    tok, pad = tokens(flat_rgb, batch["proprio"].flatten(0, 1), batch["instr"].flatten(0, 1))
    return tok.view(B, W, *tok.shape[1:]), pad.view(B, W, -1)  # (B, W, n, d), (B, W, n)


def fitting_carry(carry: dict | None, key: str, batch: dict) -> dict | None:
    """The state carried from the previous training window, or None where its ``key`` tensor does not fit the
    batch (another batch size or device)."""
    if carry is None or carry[key].shape[0] != batch["is_first"].shape[0]:
        return None
    return None if carry[key].device != batch["proprio"].device else carry


def recon_decoder(d_in: int, cfg) -> nn.Module:
    """The ``memory_recon`` decoder: what a step wrote (d_in) -> the first frame's pooled pixels (c*g*g)."""
    d, g = cfg.d_model, cfg.recon_grid
    return nn.Sequential(nn.Linear(d_in, 4 * d), nn.GELU(), nn.Linear(4 * d, cfg.image_channels * g * g))


def policy_loss(policy: nn.Module, pred: torch.Tensor, batch: dict, written: torch.Tensor | None):
    """L1 on the action chunks, plus ``cfg.memory_recon`` times the first-frame reconstruction from what each
    step ``written`` (B, W, d_in) (it carries ``policy._first`` across windows). Returns loss, logs."""
    cfg = policy.cfg
    loss = l1_chunk_loss(pred, batch["action"], batch["chunk_mask"], batch.get("weight"))
    logs = {"l1": float(loss.detach())}
    if cfg.memory_recon:
        rec, policy._first = first_frame_recon_loss(policy.recon(written), batch, policy._first, policy.obs.mean,
                                                    policy.obs.std, cfg.recon_grid)
        logs["recon"] = float(rec.detach())
        loss = loss + cfg.memory_recon * rec
    return loss, logs


def obs_to_batch(obs: dict, vocab: int, max_tokens: int, device) -> dict:
    """A (vector-)env observation (numpy, leading batch dim) -> model tensors."""
    instr = obs["instruction"]
    texts = [instr] if isinstance(instr, str) else list(instr)
    out = {
        "proprio": torch.as_tensor(np.asarray(obs["proprio"], np.float32), device=device),
        "instr": torch.as_tensor(np.stack([tokenize(t, vocab, max_tokens) for t in texts]), device=device),
    }
    if "rgb" in obs:
        out["rgb"] = torch.as_tensor(np.asarray(obs["rgb"], np.uint8), device=device)
    return out
