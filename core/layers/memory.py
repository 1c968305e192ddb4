"""Memory-token recurrence (muVLA, arXiv 2606.12497; `CognitiveAISystems/muVLA`).

m learnable memory tokens are carried across the steps of an episode. At each step t the
transformer sees the step's tokens with the memory inserted among them; the transformer's
outputs at the memory positions become the next step's memory input:

    M_in(first step) = M0 = Parameter(randn(m, d) * 0.02)
    [.., M_out(t), ..] = transformer([.., M_in(t), ..step tokens..])
    tbptt: M_in(t+1) = M_out(t)        (graph kept; cut every K steps, see below)
    ema:   M_in(t+1) = alpha * M_out(t).detach() + (1 - alpha) * M_in(t).detach()

Resets are per sample (``is_first`` (B,) bool): a sample starting an episode gets M0 through
``torch.where``, so M0 stays in the graph and learns. TBPTT: each sample counts the steps
its memory graph spans; when it reaches K (``tbptt_length``) the incoming memory is detached
and the count restarts, and ``is_first`` restarts it too. So K=1 keeps gradients within a
step, K=2 lets a step's loss reach the previous step's memory update, and so on. (The
official trainer counts K dataloader steps globally; counting per sample from the episode
start gives the same windows when all episodes of a batch start together.)

State (core contract): ``{"mem": (B, m, d), "count": (B,) long}``. ``forward`` takes a
sequence of steps (B, T, n, d) with ``is_first`` (B, T); ``step`` takes one step (B, n, d).
When you back-propagate per chunk and continue with the returned state, pass it through
``detach_state`` first (the graph of the previous chunk is freed by ``backward``).
m = 0 is allowed: the wrapper is then memoryless and the transformer sees the step alone.

The transformer is any module mapping (N, S, d) -> (N, S, d) (or returning ``(y, state)``,
whose first element is used); it is called as ``transformer(z)``, with ``key_padding_mask=``
and ``attn_mask=`` keywords only when they are given. Pass a module or a factory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import register_model
from .attention import Transformer, TransformerConfig

MemoryState = dict[str, torch.Tensor]  # {"mem": (B, m, d), "count": (B,) long}


@dataclass
class MemoryTransformerConfig(TransformerConfig):
    causal: bool = False  # memory tokens read the whole step (muVLA "full" mask)
    n_mem: int = 4  # m, the number of memory tokens (muVLA default 4; reported runs 64)
    memory_update: Literal["tbptt", "ema"] = "tbptt"
    tbptt_length: int = 1  # K: steps a memory graph may span before it is detached
    ema_alpha: float = 0.1  # weight on the fresh memory output in the "ema" update
    mem_pos: int = 0  # where the memory goes among the step tokens: 0 = first, -1 = last

    def validate(self) -> None:
        super().validate()
        if self.n_mem < 0 or self.tbptt_length < 1 or not 0.0 <= self.ema_alpha <= 1.0:
            raise ConfigError(
                f"memory: expected n_mem >= 0, tbptt_length >= 1, 0 <= ema_alpha <= 1; got "
                f"{self.n_mem}, {self.tbptt_length}, {self.ema_alpha}"
            )


class MemoryTokens(nn.Module):
    """Carries m memory tokens across steps through a transformer (see module docstring)."""

    def __init__(
        self,
        d_model: int,
        n_mem: int,
        transformer: nn.Module | Callable[[], nn.Module],
        memory_update: str = "tbptt",
        tbptt_length: int = 1,
        ema_alpha: float = 0.1,
        mem_pos: int = 0,
    ):
        super().__init__()
        if memory_update not in ("tbptt", "ema"):
            raise ConfigError(f"memory_update={memory_update!r}: expected 'tbptt' or 'ema'")
        if n_mem < 0 or tbptt_length < 1:
            raise ConfigError(f"n_mem={n_mem}, tbptt_length={tbptt_length}: expected n_mem >= 0 and tbptt_length >= 1")
        self.d_model, self.n_mem = d_model, n_mem
        self.memory_update, self.tbptt_length, self.ema_alpha, self.mem_pos = memory_update, tbptt_length, ema_alpha, mem_pos
        self.transformer = transformer if isinstance(transformer, nn.Module) else transformer()
        self.M0 = nn.Parameter(torch.randn(n_mem, d_model) * 0.02)  # (m, d)

    # --- state -------------------------------------------------------------------------
    def init_state(self, batch_size: int, device=None, dtype=None) -> MemoryState:
        """M0 for every sample (in the graph), step counters at 0."""
        mem = self.M0.to(device=device, dtype=dtype or self.M0.dtype)[None].expand(batch_size, -1, -1)  # (B, m, d)
        return {"mem": mem, "count": torch.zeros(batch_size, dtype=torch.long, device=mem.device)}

    @staticmethod
    def detach_state(state: MemoryState) -> MemoryState:
        """Cut the graph at a chunk boundary (call after ``backward``); counters restart."""
        return {"mem": state["mem"].detach(), "count": torch.zeros_like(state["count"])}

    def _insert_at(self, n: int) -> int:
        return n if self.mem_pos < 0 else min(self.mem_pos, n)

    def attn_mask(self, n_tokens: int, mem_sees: torch.Tensor | None = None) -> torch.Tensor:
        """(S, S) bool mask for the layout [tokens, memory, tokens] (True = may attend):
        everything attends everywhere, except memory rows skip tokens where ``mem_sees``
        (n_tokens,) is False (muVLA "custom" mode: memory does not read action tokens)."""
        m, i = self.n_mem, self._insert_at(n_tokens)
        S = m + n_tokens
        mask = torch.ones(S, S, dtype=torch.bool, device=self.M0.device)
        if mem_sees is not None:
            cols = torch.cat([mem_sees[:i], torch.ones(m, dtype=torch.bool, device=mem_sees.device), mem_sees[i:]])  # (S,)
            mask[i : i + m] = cols.to(mask.device)[None]
        return mask

    # --- one step ------------------------------------------------------------------------
    def _prepare(self, state: MemoryState, is_first: torch.Tensor) -> MemoryState:
        """Per-sample reset to M0 and TBPTT truncation, before the step is processed."""
        mem, count = state["mem"], state["count"]
        B = mem.shape[0]
        first = is_first.to(device=mem.device, dtype=torch.bool)  # (B,)
        if self.memory_update == "tbptt":
            cut = (count >= self.tbptt_length) & ~first  # (B,)
            mem = torch.where(cut[:, None, None], mem.detach(), mem)  # (B, m, d)
            count = torch.where(first | cut, torch.zeros_like(count), count)
        m0 = self.M0.to(mem.dtype)[None].expand(B, -1, -1)  # (B, m, d)
        mem = torch.where(first[:, None, None], m0, mem)  # (B, m, d)
        return {"mem": mem, "count": torch.where(first, torch.zeros_like(count), count)}

    def step(
        self,
        tokens: torch.Tensor,
        state: MemoryState | None = None,
        is_first: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, MemoryState]:
        """One step: tokens (B, n, d) -> (B, n, d). ``is_first`` (B,) bool (default: all True
        when ``state`` is None, else all False); ``key_padding_mask`` (B, n) marks padded
        step tokens; ``attn_mask`` (S, S) over the layout with memory (see ``attn_mask()``)."""
        B, n, d = tokens.shape
        if state is None:
            state = self.init_state(B, tokens.device, tokens.dtype)
            is_first = torch.ones(B, dtype=torch.bool, device=tokens.device)
        elif is_first is None:
            is_first = torch.zeros(B, dtype=torch.bool, device=tokens.device)
        state = self._prepare(state, is_first)
        mem_in, m, i = state["mem"], self.n_mem, self._insert_at(n)
        z = torch.cat([tokens[:, :i], mem_in.to(tokens.dtype), tokens[:, i:]], dim=1)  # (B, m+n, d)
        kw = {}
        if key_padding_mask is not None:
            no_pad = torch.zeros(B, m, dtype=torch.bool, device=tokens.device)
            kw["key_padding_mask"] = torch.cat([key_padding_mask[:, :i], no_pad, key_padding_mask[:, i:]], 1)  # (B, m+n)
        if attn_mask is not None:
            kw["attn_mask"] = attn_mask
        out = self.transformer(z, **kw)
        out = out[0] if isinstance(out, tuple) else out  # (B, m+n, d)
        mem_out = out[:, i : i + m]  # (B, m, d)
        y = torch.cat([out[:, :i], out[:, i + m :]], dim=1)  # (B, n, d)
        if self.memory_update == "ema":
            a = self.ema_alpha
            nxt = a * mem_out.detach() + (1.0 - a) * mem_in.detach()  # (B, m, d)
        else:
            nxt = mem_out
        return y, {"mem": nxt, "count": state["count"] + 1}

    # --- a sequence of steps -------------------------------------------------------------
    def forward(
        self,
        tokens: torch.Tensor,
        state: MemoryState | None = None,
        is_first: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        return_memory: bool = False,
    ) -> tuple[torch.Tensor, MemoryState] | tuple[torch.Tensor, MemoryState, torch.Tensor]:
        """T steps: tokens (B, T, n, d) -> (B, T, n, d); ``is_first`` (B, T) bool; with
        ``state`` None the first step starts from M0. ``key_padding_mask`` (B, T, n).
        ``return_memory`` also returns the memory each step wrote, (B, T, m, d)."""
        B, T = tokens.shape[:2]
        if T == 0:
            raise ValueError("MemoryTokens.forward: expected at least one step, got T = 0")
        if is_first is None:
            is_first = torch.zeros(B, T, dtype=torch.bool, device=tokens.device)
        if state is None:
            state = self.init_state(B, tokens.device, tokens.dtype)
            is_first = is_first.clone()
            is_first[:, 0] = True
        ys, mems = [], []
        for t in range(T):
            kpm = None if key_padding_mask is None else key_padding_mask[:, t]  # (B, n)
            y, state = self.step(tokens[:, t], state, is_first[:, t], kpm, attn_mask)
            ys.append(y)
            mems.append(state["mem"])
        if return_memory:
            return torch.stack(ys, dim=1), state, torch.stack(mems, dim=1)  # (B, T, n, d), state, (B, T, m, d)
        return torch.stack(ys, dim=1), state  # (B, T, n, d)


@register_model("memory_transformer", config=MemoryTransformerConfig)
def memory_transformer(cfg: MemoryTransformerConfig) -> MemoryTokens:
    """muVLA memory-token recurrence around a pre-LN transformer stack (TBPTT or detached EMA)."""
    return MemoryTokens(
        cfg.d_model,
        cfg.n_mem,
        Transformer(cfg),
        memory_update=cfg.memory_update,
        tbptt_length=cfg.tbptt_length,
        ema_alpha=cfg.ema_alpha,
        mem_pos=cfg.mem_pos,
    )
