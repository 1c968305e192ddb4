"""muVLA's memory as the step-carried state of a core recurrence (the ``model.mixer`` slot).

:class:`SlotMemory` has the interface of :class:`ostinato.core.layers.memory.MemoryTokens` (``init_state``,
``step``, ``forward`` over a window, ``detach_state``), so :class:`.muvla.MuVLAPolicy` runs
either. Instead of m memory tokens, one *state token* sits at the memory position of the step's tokens:

    s_tok(t) = P(y(t-1))                                   P: Linear(d_out, d) (the slot's own projection
                                                              where the mixer is wider than d_model)
    [.., o(t), ..] = transformer([.., s_tok(t), ..step tokens..])
    y(t), S(t) = mixer.step(o(t), S(t-1))                  any causal core mixer: LSTM, GRU, S5, LRU, minGRU,
                                                              Mamba, causal attention (a KV cache), ...

``y`` is the mixer layer's own output (an LSTM's top-layer h), ``S`` its state. So the memory is carried step by
step, at training (``forward`` loops over the window's steps, calling the mixer on each one-step sequence) as at
execution (``step`` calls the mixer's ``step``). This is the recurrent-state baseline of MIKASA-Robo (PPO-LSTM)
trained by behaviour cloning: with an LSTM it is the former ``lstm_policy``, output for output.

Resets are per sample on ``is_first``: y and every tensor of S go back to the mixer's ``init_state`` (zeros)
through ``torch.where``; a KV cache marks the sample's keys invalid instead (its leading columns that no sample
still reads are dropped, so the cache stays as long as the longest running episode). TBPTT counts K steps per
sample like ``MemoryTokens`` and then detaches the incoming y and S. State: ``{"s": S, "y": (B, d_out), "count":
(B,) long}``; every tensor in S has the batch first (the core mixers' contract).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ostinato.core.layers.attention import kv_cache_select
from ostinato.core.mixer import MixerConfig, build_mixer


def _rows(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, *([1] * (x.dim() - 1)))  # (B, 1, ...)


def _trim_cache(kv: dict) -> dict:
    """Drop the leading KV-cache columns no sample reads any more."""
    live = kv["valid"].any(0)  # (S,)
    j = int(live.float().argmax()) if bool(live.any()) else live.shape[0]
    return {"k": kv["k"][:, :, j:], "v": kv["v"][:, :, j:], "valid": kv["valid"][:, j:]} if j else kv


def reset_state(s: Any, init: Any, first: torch.Tensor) -> Any:
    """Samples where ``first`` (B,) get ``init`` (a KV cache: their keys marked invalid)."""
    if isinstance(s, dict) and "valid" in s:
        return _trim_cache(kv_cache_select(s, ~first))
    if isinstance(s, torch.Tensor):
        return torch.where(_rows(first, s), init.to(s.dtype), s)
    if isinstance(s, (tuple, list)):
        return type(s)(reset_state(a, b, first) for a, b in zip(s, init))
    if isinstance(s, dict):
        return {k: reset_state(v, init[k], first) for k, v in s.items()}
    raise TypeError(f"mixer state: unexpected {type(s).__name__}")


def cut_state(s: Any, cut: torch.Tensor | None = None) -> Any:
    """Detach the samples where ``cut`` (B,) (all of them with None)."""
    if isinstance(s, torch.Tensor):
        if not (s.is_floating_point() or s.is_complex()):  # a KV cache's valid flags
            return s
        return s.detach() if cut is None else torch.where(_rows(cut, s), s.detach(), s)
    if isinstance(s, (tuple, list)):
        return type(s)(cut_state(a, cut) for a in s)
    if isinstance(s, dict):
        return {k: cut_state(v, cut) for k, v in s.items()}
    raise TypeError(f"mixer state: unexpected {type(s).__name__}")


class SlotMemory(nn.Module):
    """A transformer over the step's tokens plus one state token, and a core mixer stepped on its output."""

    def __init__(self, d_model: int, transformer: nn.Module, mixer: MixerConfig, tbptt_length: int, mem_pos: int):
        super().__init__()
        self.d_model, self.n_mem, self.tbptt_length, self.mem_pos = d_model, 1, tbptt_length, mem_pos
        self.transformer = transformer
        self.mixer = build_mixer(mixer, d_model, causal=True, host="muvla")  # (B, L, d) -> (B, L, d_out), state
        self.d_out = int(getattr(self.mixer.layer, "d_out", d_model))
        # P: the slot's projection where the mixer is wider (created with it), else a Linear of our own
        self.state_in = nn.Linear(self.d_out, d_model) if self.mixer.proj is None else None

    def _p(self, y: torch.Tensor) -> torch.Tensor:
        return (self.state_in or self.mixer.proj)(y)

    def init_state(self, batch_size: int, device=None, dtype=None) -> dict:
        p = next(self.parameters())
        device, dtype = device or p.device, dtype or p.dtype
        return {"s": self.mixer.init_state(batch_size, device=device, dtype=dtype),
                "y": torch.zeros(batch_size, self.d_out, device=device, dtype=dtype),
                "count": torch.zeros(batch_size, dtype=torch.long, device=device)}

    @staticmethod
    def detach_state(state: dict) -> dict:
        return {"s": cut_state(state["s"]), "y": state["y"].detach(), "count": torch.zeros_like(state["count"])}

    def _prepare(self, state: dict, is_first: torch.Tensor) -> dict:
        """Per-sample reset on ``is_first`` and TBPTT truncation every K steps (as ``MemoryTokens``)."""
        first = is_first.to(device=state["count"].device, dtype=torch.bool)  # (B,)
        cut = (state["count"] >= self.tbptt_length) & ~first  # (B,)
        s, y = cut_state(state["s"], cut), cut_state(state["y"], cut)
        init = self.init_state(first.shape[0], y.device, y.dtype)
        return {"s": reset_state(s, init["s"], first), "y": reset_state(y, init["y"], first),
                "count": torch.where(first | cut, torch.zeros_like(state["count"]), state["count"])}

    def step(self, tokens, state=None, is_first=None, key_padding_mask=None, attn_mask=None, one_seq: bool = False):
        """One step: tokens (B, n, d) -> (B, n, d), state. ``one_seq``: call the mixer on a one-step sequence
        (its parallel form, used in training) instead of its ``step``."""
        B, n, _ = tokens.shape
        if state is None:
            state, is_first = self.init_state(B, tokens.device), torch.ones(B, dtype=torch.bool, device=tokens.device)
        elif is_first is None:
            is_first = torch.zeros(B, dtype=torch.bool, device=tokens.device)
        state = self._prepare(state, is_first)
        i = min(self.mem_pos, n)
        z = torch.cat([tokens[:, :i], self._p(state["y"])[:, None], tokens[:, i:]], dim=1)  # (B, n + 1, d)
        kw = {"attn_mask": attn_mask} if attn_mask is not None else {}
        if key_padding_mask is not None:
            kw["key_padding_mask"] = torch.cat([key_padding_mask[:, :i], key_padding_mask.new_zeros(B, 1),
                                                key_padding_mask[:, i:]], 1)  # (B, n + 1)
        out = self.transformer(z, **kw)
        out = out[0] if isinstance(out, tuple) else out  # (B, n + 1, d)
        if one_seq:
            y, s = self.mixer.layer(out[:, i : i + 1], state["s"])  # (B, 1, d_out)
            y = y[:, 0]
        else:
            y, s = self.mixer.layer.step(out[:, i], state["s"])  # (B, d_out)
        return torch.cat([out[:, :i], out[:, i + 1 :]], 1), {"s": s, "y": y, "count": state["count"] + 1}

    def forward(self, tokens, state=None, is_first=None, key_padding_mask=None, attn_mask=None,
                return_memory: bool = False):
        """T steps: tokens (B, T, n, d) -> (B, T, n, d), state (and with ``return_memory`` each step's y,
        (B, T, d_out))."""
        B, T = tokens.shape[:2]
        is_first = torch.zeros(B, T, dtype=torch.bool, device=tokens.device) if is_first is None else is_first.clone()
        if state is None:
            state = self.init_state(B, tokens.device)
            is_first[:, 0] = True
        ys, mems = [], []
        for t in range(T):
            kpm = None if key_padding_mask is None else key_padding_mask[:, t]
            y, state = self.step(tokens[:, t], state, is_first[:, t], kpm, attn_mask, one_seq=True)
            ys.append(y)
            mems.append(state["y"])
        if return_memory:
            return torch.stack(ys, 1), state, torch.stack(mems, 1)
        return torch.stack(ys, 1), state
