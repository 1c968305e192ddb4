"""LSTM and GRU with the core contract, over ``torch.nn.LSTM`` / ``torch.nn.GRU`` (cuDNN on GPU).

    y, state = rnn(x, state=None, lengths=None)     x (B, L, D_in) -> y (B, L, D_out)
    y_t, state = rnn.step(x_t, state)               x_t (B, D_in)  -> (B, D_out)

D_out = d_hidden (or ``proj_size`` for a projected LSTM). States are batch-first, unlike
torch's (num_layers, B, H), so that per-sample resets and indexing work as everywhere else
in the core:
    GRU:  h (B, n_layers, d_hidden)
    LSTM: (h, c) with h (B, n_layers, proj_size or d_hidden), c (B, n_layers, d_hidden)
``lengths`` (B,) handles right-padded batches: positions past a sample's length output
zeros and the returned state is the state after its last valid step (packed sequences).
``step`` runs the same module on a length-1 input, so it equals ``forward`` exactly.
Parameter names are torch's (``rnn.weight_ih_l0`` ...), so torch state dicts load with
a ``rnn.`` prefix.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..errors import ConfigError
from ..registry import register_variant


@dataclass
class RNNConfig:
    d_model: int = 128  # input width
    d_hidden: int = 128
    n_layers: int = 1
    dropout: float = 0.0  # between stacked layers (torch semantics; training only)
    bias: bool = True
    proj_size: int = 0  # LSTM only: project h to this width (0 = off)

    def validate(self) -> None:
        if min(self.d_model, self.d_hidden, self.n_layers) < 1 or self.proj_size < 0:
            raise ConfigError(f"rnn: expected positive d_model, d_hidden, n_layers and proj_size >= 0; got {self}")
        if self.proj_size >= self.d_hidden:
            raise ConfigError(f"rnn: proj_size={self.proj_size} must be smaller than d_hidden={self.d_hidden}")


class _TorchRNN(nn.Module):
    kind = ""

    def __init__(self, cfg: RNNConfig):
        super().__init__()
        self.cfg = cfg
        kw = dict(num_layers=cfg.n_layers, bias=cfg.bias, batch_first=True, dropout=cfg.dropout)
        if self.kind == "lstm":
            self.rnn = nn.LSTM(cfg.d_model, cfg.d_hidden, proj_size=cfg.proj_size, **kw)
        else:
            if cfg.proj_size:
                raise ConfigError("gru: proj_size is an LSTM option; expected proj_size=0")
            self.rnn = nn.GRU(cfg.d_model, cfg.d_hidden, **kw)

    @property
    def d_out(self) -> int:
        return self.cfg.proj_size or self.cfg.d_hidden

    def _to_torch(self, state):
        if state is None:
            return None
        if isinstance(state, tuple):
            return tuple(s.transpose(0, 1).contiguous() for s in state)  # (n_layers, B, H)
        return state.transpose(0, 1).contiguous()  # (n_layers, B, H)

    def _from_torch(self, state):
        if isinstance(state, tuple):
            return tuple(s.transpose(0, 1) for s in state)  # (B, n_layers, H)
        return state.transpose(0, 1)  # (B, n_layers, H)

    def forward(self, x: torch.Tensor, state=None, lengths: torch.Tensor | None = None):
        B, L, _ = x.shape
        if lengths is None:
            y, st = self.rnn(x, self._to_torch(state))  # (B, L, D_out)
            return y, self._from_torch(st)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        y, st = self.rnn(packed, self._to_torch(state))
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=L)  # (B, L, D_out)
        return y, self._from_torch(st)

    def step(self, x_t: torch.Tensor, state=None):
        y, state = self(x_t[:, None], state)  # (B, 1, D_out)
        return y[:, 0], state


class LSTM(_TorchRNN):
    """torch.nn.LSTM with the core contract; state (h, c), batch-first."""

    kind = "lstm"

    def init_state(self, batch_size: int, device=None, dtype=None):
        dtype = dtype or self.rnn.weight_ih_l0.dtype
        h = torch.zeros(batch_size, self.cfg.n_layers, self.d_out, device=device, dtype=dtype)
        c = torch.zeros(batch_size, self.cfg.n_layers, self.cfg.d_hidden, device=device, dtype=dtype)
        return h, c


class GRU(_TorchRNN):
    """torch.nn.GRU with the core contract; state h, batch-first."""

    kind = "gru"

    def init_state(self, batch_size: int, device=None, dtype=None):
        dtype = dtype or self.rnn.weight_ih_l0.dtype
        return torch.zeros(batch_size, self.cfg.n_layers, self.cfg.d_hidden, device=device, dtype=dtype)


register_variant("lstm", RNNConfig, LSTM,
                 "torch.nn.LSTM (batch-first, cuDNN) with the core contract, batch-first state and step.",
                 causal=True)


register_variant("gru", RNNConfig, GRU,
                 "torch.nn.GRU (batch-first, cuDNN) with the core contract, batch-first state and step.",
                 causal=True)
