"""muVLA: a policy with m memory tokens carried across timesteps (arXiv 2606.12497).

**What is the same as the paper, and what is not.** The memory mechanism is muVLA's: m
learnable memory tokens, inserted among the step's tokens, updated by the backbone's own
self-attention (the outputs at the memory positions are the next step's memory), reset per
sample to the learned M0 on ``is_first``, trained with truncated backprop through time over
K steps (or the detached-EMA update), no auxiliary loss; L1 regression of an 8-step action
chunk; receding-horizon or open-loop execution. The original backbone is a 7B OpenVLA-OFT
(two ViT views, a Llama-2 LLM, LoRA rank 32) trained on 8 GPUs. Ours is a small policy
that trains on a CPU: a timm CNN (``mobilenetv3_small_050`` by default, random init
offline) for image tokens and a 2-layer, 128-wide transformer from ``ostinato.core``
(:class:`ostinato.core.layers.memory.MemoryTokens` around
:class:`ostinato.core.layers.attention.Transformer`). Its numbers are not comparable to the
paper's.

Per-step token layout (as in muVLA: images, proprio, memory, instruction, action queries):

    [img_1..img_k, proprio, M_in(t) (m tokens), instr_1..instr_L, q_1..q_C]

Attention is bidirectional within a step, except that with ``attention_mask_mode="custom"`` (the default, as in
muVLA's official code) no context row (images, proprio, memory, instruction) reads the empty action queries, so the
memory written at a step does not depend on them; the queries read everything. ``"memory_only"`` stops only the
memory rows (this package's mask before 2026-12-07: the context rows then carry query information into the
memory through the next layer), ``"full"`` masks nothing. ``n_mem=0`` is the memoryless
baseline (same network, nothing carried).

**Memory slot** (``model.mixer``, after the mixer slots of ``ostinato.core.mixer``): with a causal core mixer in
the slot, one state token takes the memory tokens' place and the memory is that mixer's state, carried step by
step (:class:`.slot_memory.SlotMemory`): ``mixer: {name: lstm, d_hidden: 256}`` is the LSTM-state baseline (PPO-LSTM
in MIKASA-Robo's baselines, here trained by BC), and GRU, S5, LRU, minGRU, Mamba, causal attention (a KV cache)
... fit the same way. The slot left empty is muVLA's memory tokens, unchanged. ``memory_norm=False`` (an option, not muVLA's) carries the backbone's
raw residual stream as memory instead of its final-LayerNorm output, and ``memory_recon > 0`` (also not muVLA's) adds an
auxiliary loss that rebuilds the episode's first frame from the written memory (see ``MuVLAConfig``). Training (``loss``) is stateful like muVLA's
episodic loader: each batch is the next window of every stream of episodes
(:class:`ostinato.control.data.episodic.EpisodicWindows`), and the memory reached at the end
of one window is carried, detached, into the next; ``is_first`` resets a sample to M0.
The carried memory is not part of a checkpoint: a run resumed in the middle of an epoch
starts its first window from M0 (as if every stream began an episode there), so resume is
exact only at epoch boundaries. The loader hands out pre-batched windows (batch_size 1), so
multi-process data parallel is not supported for these policies.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
from torch import nn

from ostinato.core.config import variant
from ostinato.core.errors import ConfigError
from ostinato.core.layers.attention import Transformer, TransformerConfig
from ostinato.core.layers.memory import MemoryTokens
from ostinato.core.mixer import MixerConfig
from ostinato.core.registry import register_variant

from .encoders import fitting_carry, policy_loss, recon_decoder, step_encoder, step_tokens, window_tokens
from .policy_config import StepPolicyConfig
from .slot_memory import SlotMemory


@dataclass
class MuVLAConfig(StepPolicyConfig):
    # memory (muVLA flags: --num_mem_tokens, --memory_update, --tbptt_length, --ema_alpha, --attention_mask_mode)
    n_mem: int = 16  # m; 0 = memoryless baseline
    memory_update: Literal["tbptt", "ema"] = "tbptt"
    ema_alpha: float = 0.1
    # "custom" (muVLA's default): no context row (images, proprio, memory, instruction) reads the action queries;
    # "memory_only": only the memory rows do not (this package's mask before 2026-12-07); "full": no mask
    attention_mask_mode: Literal["custom", "memory_only", "full"] = "custom"
    # True: the backbone ends in a LayerNorm and the memory carried to t+1 is that normalised output (like an
    # LLM's last hidden state). False: no final LayerNorm on the backbone, the memory carries the raw residual
    # stream and only the action head reads through a LayerNorm. Probes on RememberColor3 (docs/control.md):
    # with True the colour match stayed near chance for 2000 steps; with False it began to learn by step 2000.
    memory_norm: bool = True
    # The memory slot: None = m memory tokens (muVLA); a causal core mixer (model.mixer.name=lstm|gru|s5|lru|
    # mingru|mamba|...) = one state token and that mixer's step-carried state instead (see slot_memory.py;
    # n_mem, memory_update and ema_alpha are then unused). The former lstm_policy is mixer {name: lstm}.
    mixer: Optional[MixerConfig] = None

    def validate(self) -> None:
        if self.mixer is not None and self.memory_update != "tbptt":
            raise ConfigError(f"muvla: memory_update={self.memory_update!r} updates memory tokens; with model.mixer "
                              f"the carried state is trained by TBPTT (expected memory_update=tbptt)")
        has_mem = bool(self.n_mem) or self.mixer is not None
        if self.memory_recon < 0 or (self.memory_recon and (not has_mem or not self.image_channels)):
            raise ConfigError(f"muvla: memory_recon={self.memory_recon}: expected 0 (off), or a weight > 0 with "
                              f"a memory (n_mem={self.n_mem} or model.mixer) and images "
                              f"(image_channels={self.image_channels})")
        if self.chunk < 1 or self.action_dim < 1 or self.image_channels % 3:
            raise ConfigError(f"muvla: expected chunk >= 1, action_dim >= 1, image_channels a multiple of 3; "
                              f"got {self.chunk}, {self.action_dim}, {self.image_channels}")


class MuVLAPolicy(nn.Module):
    """Step encoder + memory-token transformer + action-chunk head."""

    def __init__(self, cfg: MuVLAConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.obs = step_encoder(cfg)
        self.queries = nn.Parameter(torch.randn(cfg.chunk, d) * 0.02)  # (C, d) action queries
        tcfg = TransformerConfig(d_model=d, n_heads=cfg.n_heads, mlp_ratio=cfg.mlp_ratio, dropout=cfg.dropout,
                                 n_layers=cfg.n_layers, causal=False, final_norm=cfg.memory_norm)
        self.n_img = self.obs.n_tokens - 1 - cfg.max_tokens
        if cfg.mixer is None:
            self.memory = MemoryTokens(d, cfg.n_mem, Transformer(tcfg), memory_update=cfg.memory_update,
                                       tbptt_length=cfg.tbptt_length, ema_alpha=cfg.ema_alpha, mem_pos=self.n_img + 1)
        else:  # one state token and a core mixer's carried state (slot_memory.py)
            self.memory = SlotMemory(d, Transformer(tcfg), cfg.mixer, cfg.tbptt_length, mem_pos=self.n_img + 1)
        self.head_norm = nn.Identity() if cfg.memory_norm else nn.LayerNorm(d)  # see MuVLAConfig.memory_norm
        self.head = nn.Linear(d, cfg.action_dim)
        n = self.obs.n_tokens + cfg.chunk
        self.register_buffer("mask", self._build_mask(), persistent=False)  # (S, S) or None
        self._carry: dict | None = None  # training memory carried between windows (detached)
        if cfg.memory_recon:  # the first frame's pixels from the written memory (see MuVLAConfig.memory_recon)
            self.recon = recon_decoder(cfg.n_mem * d if cfg.mixer is None else self.memory.d_out, cfg)
            self._first: torch.Tensor | None = None  # training: each stream's episode-first frame (B, c*g*g)

    # ------------------------------------------------------------------ tokens
    def _tokens(self, rgb, proprio, instr):
        """Flat steps (N, ...) -> tokens (N, n, d), padding (N, n)."""
        return step_tokens(self.obs, self.queries, rgb, proprio, instr)

    def _build_mask(self) -> torch.Tensor | None:
        """(S, S) bool over [img, proprio, memory (m rows), instr, queries (C)], True = may attend: with "custom"
        the rows before the queries skip the query columns, with "memory_only" the memory rows do."""
        cfg, C = self.cfg, self.cfg.chunk
        m = self.memory.n_mem  # memory tokens, 1 state token (slot) or 0
        mode = cfg.attention_mask_mode
        if mode == "full" and m and cfg.mixer is None:  # an all-True mask, as before (the same numbers)
            return torch.ones(self.obs.n_tokens + C + m, self.obs.n_tokens + C + m, dtype=torch.bool)
        if mode == "full" or (mode == "memory_only" and not m):
            return None
        S, i = self.obs.n_tokens + C + m, self.n_img + 1
        mask = torch.ones(S, S, dtype=torch.bool)
        rows = slice(i, i + m) if mode == "memory_only" else slice(0, S - C)
        mask[rows, S - C :] = False  # context (or memory) rows do not read the (empty) action queries
        return mask

    def _mask(self):
        return self.mask

    def init_state(self, batch_size: int, device=None):
        return self.memory.init_state(batch_size, device)

    # ------------------------------------------------------------------ training
    def forward(self, batch: dict, state=None, return_memory: bool = False):
        """Windows (B, W, ...) -> action chunks (B, W, C, A), final memory state (and with ``return_memory`` the
        memory each step wrote, (B, W, m, d))."""
        tok, pad = window_tokens(self._tokens, batch, self.cfg.image_channels)  # (B, W, n, d), (B, W, n)
        out = self.memory(tok, state, batch["is_first"], key_padding_mask=pad, attn_mask=self._mask(),
                          return_memory=return_memory)
        y, state = out[0], out[1]
        pred = self.head(self.head_norm(y[:, :, -self.cfg.chunk :]))  # (B, W, C, A)
        return (pred, state, out[2]) if return_memory else (pred, state)

    def loss(self, batch: dict):
        carry = fitting_carry(self._carry, "count", batch)
        pred, state, *mems = self(batch, carry, return_memory=bool(self.cfg.memory_recon))
        self._carry = self.memory.detach_state(state)
        return policy_loss(self, pred, batch, mems[0].flatten(2) if mems else None)

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, obs: dict, state, is_first: torch.Tensor):
        """One step for B envs: obs tensors (B, ...) -> chunk (B, C, A), new state."""
        tok, pad = self._tokens(obs.get("rgb") if self.cfg.image_channels else None, obs["proprio"], obs["instr"])
        y, state = self.memory.step(tok, state, is_first, key_padding_mask=pad, attn_mask=self._mask())
        return self.head(self.head_norm(y[:, -self.cfg.chunk :])), state  # (B, C, A)


# ----------------------------------------------------------------------------- variants
register_variant("muvla", MuVLAConfig, MuVLAPolicy,
                 "muVLA policy on a CPU-sized backbone (not the 7B OpenVLA): m=16 memory tokens, TBPTT K=8, or "
                 "model.mixer: a core recurrence's carried state (LSTM, GRU, S5, LRU, minGRU, Mamba, ...).")


@dataclass
class MuVLAMemorylessConfig(MuVLAConfig):
    n_mem: int = 0

    def validate(self) -> None:
        if self.n_mem:
            raise ConfigError(f"muvla_memoryless: n_mem={self.n_mem}: the memoryless baseline has n_mem=0 "
                              f"(use model muvla for memory tokens)")
        super().validate()


register_variant("muvla_memoryless", MuVLAMemorylessConfig, MuVLAPolicy,
                 "The same policy with m=0 memory tokens: the memoryless baseline.")


@dataclass
class MuVLAEMAConfig(MuVLAConfig):
    memory_update: Literal["tbptt", "ema"] = "ema"

    def validate(self) -> None:
        if self.memory_update != "ema":
            raise ConfigError(f"muvla_ema: memory_update={self.memory_update!r}: this variant uses 'ema' "
                              f"(use model muvla for tbptt)")
        super().validate()


register_variant("muvla_ema", MuVLAEMAConfig, MuVLAPolicy,
                 "muVLA with the detached-EMA memory update (alpha = ema_alpha) instead of TBPTT.")


TestMuVLAConfig = variant(MuVLAConfig, "TestMuVLAConfig", encoder="test_efficientnet", d_model=32, n_layers=1,
                          n_heads=2, image_grid=2)


register_variant("test_muvla", TestMuVLAConfig, MuVLAPolicy,
                 "Tiny muVLA for tests (timm test_efficientnet encoder, d=32, 1 layer, 4 image tokens).")
