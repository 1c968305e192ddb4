"""Pre-LN self-attention blocks on ``torch.nn.functional.scaled_dot_product_attention``.

Contract (core): ``y, state = block(x, state=None)`` with x (B, L, D); the state is a
key/value cache, so ``step(x_t, state)`` continues a causal sequence one token at a time and
``forward`` in pieces equals ``forward`` on the whole.

Masks:
- ``key_padding_mask`` (B, L) bool, True marks a padded position that no query may attend
  to (the ``nn.MultiheadAttention`` convention). The cache remembers which cached keys were
  padding, so later steps keep ignoring them.
- ``attn_mask`` (L, S) or (B, L, S) bool, True = may attend, where S = cached + new keys; it
  is AND-ed with the causal and padding masks (e.g. "memory tokens may not see actions").

Numeric guard: a query row whose keys are all masked (e.g. a left-padded first token) would
give NaN in softmax; such a row (and only such a row) is allowed to attend to its own key.
Its output is finite and meaningless, as a padded position's output always is.

No positional encoding is applied here: the caller adds it (learned, sinusoidal, ...).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import register_variant

KVCache = dict[str, torch.Tensor]  # {"k": (B, H, S, Dh), "v": (B, H, S, Dh), "valid": (B, S) bool}


@dataclass
class AttentionConfig:
    d_model: int = 256
    n_heads: int = 4
    mlp_ratio: float = 4.0  # MLP hidden width = mlp_ratio * d_model
    dropout: float = 0.0  # on the attention output, in the MLP and on each residual branch
    attn_dropout: float = 0.0  # on the attention probabilities (training only)
    bias: bool = True  # bias in the q/k/v/out and MLP linears
    causal: bool = True  # False: bidirectional attention (no cache semantics needed)
    norm_eps: float = 1e-5

    def validate(self) -> None:
        if self.d_model <= 0 or self.n_heads <= 0 or self.d_model % self.n_heads:
            raise ConfigError(f"d_model={self.d_model}: expected a positive multiple of n_heads={self.n_heads}")


@dataclass
class TransformerConfig(AttentionConfig):
    n_layers: int = 2
    final_norm: bool = True  # LayerNorm after the last block (pre-LN stacks need it)


class SelfAttention(nn.Module):
    """Multi-head self-attention with a key/value cache."""

    def __init__(self, d_model: int, n_heads: int, attn_dropout: float = 0.0, bias: bool = True, causal: bool = True):
        super().__init__()
        if d_model % n_heads:
            raise ConfigError(f"d_model={d_model}: expected a multiple of n_heads={n_heads}")
        self.n_heads, self.d_head, self.causal = n_heads, d_model // n_heads, causal
        self.attn_dropout = attn_dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)

    def init_state(self, batch_size: int, device=None, dtype=None) -> KVCache:
        dtype = dtype or self.qkv.weight.dtype
        z = torch.zeros(batch_size, self.n_heads, 0, self.d_head, device=device, dtype=dtype)
        return {"k": z, "v": z.clone(), "valid": torch.zeros(batch_size, 0, dtype=torch.bool, device=device)}

    def _mask(self, B: int, L: int, S0: int, valid: torch.Tensor, attn_mask: torch.Tensor | None, device) -> torch.Tensor | None:
        """Boolean (B, 1, L, S0+L) mask (True = attend) or None when nothing is masked."""
        S = S0 + L
        mask = None
        if self.causal and (L > 1 or S0 > 0):
            q_pos = torch.arange(S0, S, device=device)[:, None]  # (L, 1)
            mask = (torch.arange(S, device=device)[None, :] <= q_pos)[None]  # (1, L, S)
        if not bool(valid.all()):
            pad = valid[:, None, :]  # (B, 1, S)
            mask = pad if mask is None else mask & pad  # (B, L, S)
        if attn_mask is not None:
            am = attn_mask if attn_mask.dim() == 3 else attn_mask[None]  # (B|1, L, S)
            if am.shape[-2:] != (L, S):
                raise ValueError(f"attn_mask: expected shape (..., {L}, {S}), got {tuple(attn_mask.shape)}")
            mask = am if mask is None else mask & am
        if mask is None:
            return None
        self_key = torch.arange(S0, S, device=device)[:, None] == torch.arange(S, device=device)[None, :]  # (L, S)
        mask = mask.expand(B, L, S)  # (B, L, S)
        mask = mask | (self_key & ~mask.any(-1, keepdim=True))  # guard: fully masked rows see themselves
        return mask[:, None]  # (B, 1, L, S)

    def forward(
        self,
        x: torch.Tensor,
        state: KVCache | None = None,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)  # 3 x (B, H, L, Dh)
        valid = torch.ones(B, L, dtype=torch.bool, device=x.device) if key_padding_mask is None else ~key_padding_mask.bool()
        S0 = 0
        if state is not None:
            S0 = state["k"].shape[2]
            k = torch.cat([state["k"].to(k.dtype), k], dim=2)  # (B, H, S0+L, Dh)
            v = torch.cat([state["v"].to(v.dtype), v], dim=2)  # (B, H, S0+L, Dh)
            valid = torch.cat([state["valid"], valid], dim=1)  # (B, S0+L)
        mask = self._mask(B, L, S0, valid, attn_mask, x.device)
        p = self.attn_dropout if self.training else 0.0
        if mask is None and self.causal and L > 1:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)  # (B, H, L, Dh)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, H, L, Dh)
        y = y.transpose(1, 2).reshape(B, L, D)  # (B, L, D)
        return self.out(y), {"k": k, "v": v, "valid": valid}


class AttentionBlock(nn.Module):
    """Pre-LN transformer block: x + Drop(Attn(LN(x))), then x + Drop(MLP(LN(x)))."""

    def __init__(self, cfg: AttentionConfig):
        super().__init__()
        d, hid = cfg.d_model, int(round(cfg.mlp_ratio * cfg.d_model))
        self.norm1 = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.attn = SelfAttention(d, cfg.n_heads, cfg.attn_dropout, cfg.bias, cfg.causal)
        self.norm2 = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.mlp = nn.Sequential(
            nn.Linear(d, hid, bias=cfg.bias), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(hid, d, bias=cfg.bias)
        )
        self.drop = nn.Dropout(cfg.dropout)
        for m in (self.norm1, self.norm2):
            for p in m.parameters():
                p._no_weight_decay = True

    def init_state(self, batch_size: int, device=None, dtype=None) -> KVCache:
        return self.attn.init_state(batch_size, device, dtype)

    def forward(self, x, state: KVCache | None = None, key_padding_mask=None, attn_mask=None):
        a, state = self.attn(self.norm1(x), state, key_padding_mask, attn_mask)
        x = x + self.drop(a)
        x = x + self.drop(self.mlp(self.norm2(x)))
        return x, state

    def step(self, x_t: torch.Tensor, state: KVCache, key_padding_mask=None):
        """One token: x_t (B, D) -> (B, D); ``key_padding_mask`` (B,) bool marks padding."""
        kpm = None if key_padding_mask is None else key_padding_mask[:, None]  # (B, 1)
        y, state = self(x_t[:, None], state, kpm)  # (B, 1, D)
        return y[:, 0], state


class Transformer(nn.Module):
    """A stack of pre-LN ``AttentionBlock``s (+ final LayerNorm); state = one KV cache per block."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.blocks = nn.ModuleList(AttentionBlock(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps) if cfg.final_norm else nn.Identity()
        for p in self.norm.parameters():
            p._no_weight_decay = True

    def init_state(self, batch_size: int, device=None, dtype=None) -> list[KVCache]:
        return [b.init_state(batch_size, device, dtype) for b in self.blocks]

    def forward(self, x, state: list[KVCache] | None = None, key_padding_mask=None, attn_mask=None):
        new: list[KVCache] = []
        for i, blk in enumerate(self.blocks):
            x, s = blk(x, None if state is None else state[i], key_padding_mask, attn_mask)
            new.append(s)
        return self.norm(x), new

    def step(self, x_t: torch.Tensor, state: list[KVCache], key_padding_mask=None):
        kpm = None if key_padding_mask is None else key_padding_mask[:, None]  # (B, 1)
        y, state = self(x_t[:, None], state, kpm)  # (B, 1, D)
        return y[:, 0], state


def kv_cache_select(state: Any, keep: torch.Tensor) -> Any:
    """Per-sample reset of a (list of) KV cache(s): samples where ``keep`` (B,) is False get
    their cached keys marked invalid, so they start afresh (the cache length is unchanged)."""
    if isinstance(state, list):
        return [kv_cache_select(s, keep) for s in state]
    return {"k": state["k"], "v": state["v"], "valid": state["valid"] & keep[:, None]}


def _causal(cfg: AttentionConfig) -> bool:
    return cfg.causal  # bidirectional with causal=False


register_variant("causal_attention", AttentionConfig, AttentionBlock,
                 "Pre-LN causal self-attention block (SDPA, MLP, dropout, key-padding mask, KV-cache step).",
                 causal=_causal)


register_variant("causal_transformer", TransformerConfig, Transformer,
                 "Stack of pre-LN causal self-attention blocks with a final LayerNorm and a KV cache.",
                 causal=_causal)
