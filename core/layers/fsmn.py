"""FSMN memory blocks as used by FRCRN (Zhang et al. 2015; modelscope ``UniDeepFsmn``).

One real block (``FSMN``), for x (B, L, D):

    p_t = W2 · ReLU(W1 x_t + b1)                         (W2 without bias)
    m_t = p_t + sum_{k=0}^{lorder-1} a_k ⊙ p_{t-k}      (causal depthwise conv, left pad lorder-1)
    y_t = x_t + m_t                                       (residual; needs d_in == d_out)

The conv tap order follows the official ``Conv2d(D, D, [lorder, 1], groups=D)`` applied to
the left-padded sequence: ``a_k = conv1.weight[:, 0, lorder-1-k, 0]``. Parameter names
(``linear``, ``project``, ``conv1``) and shapes match the official module, so its state
dict loads as is. The official forward ends with ``.squeeze()``, which also drops a batch
or time axis of size 1; here shapes are always kept.

Streaming state: the last ``lorder - 1`` projected values p, (B, lorder-1, D).

Complex block (FRCRN ``ComplexUniDeepFsmn``): two real FSMNs F_re, F_im (each with its own
residual) act on the real and imaginary parts, x (B, L, D, 2) with [..., 0] = real:

    out_re = F_re(x_re) - F_im(x_im),    out_im = F_re(x_im) + F_im(x_re)

``n_layers`` complex layers are chained (FRCRN: 1 along frequency, ``_L1``; 2 along time);
attributes are named ``fsmn_re_L1``, ``fsmn_im_L1``, ``fsmn_re_L2``, ... as in the
official code. The complex state is one (2B, lorder-1, D) tensor per real FSMN: F_re and
F_im each see both parts, stacked along the batch axis [re; im].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import register_variant


@dataclass
class FSMNConfig:
    d_model: int = 128  # input = output width (the residual needs them equal)
    d_hidden: int = 128  # width of the Linear + ReLU layer
    lorder: int = 20  # memory taps, including the current step
    n_layers: int = 1  # stacked blocks (FRCRN: 1 along frequency, 2 along time)

    def validate(self) -> None:
        if min(self.d_model, self.d_hidden, self.lorder, self.n_layers) < 1:
            raise ConfigError(f"fsmn: expected positive d_model, d_hidden, lorder, n_layers; got {self}")


class FSMN(nn.Module):
    """One real FSMN block (``UniDeepFsmn``); contract on (B, L, D)."""

    def __init__(self, input_dim: int, output_dim: int, lorder: int = 20, hidden_size: int = 128):
        super().__init__()
        if input_dim != output_dim:
            raise ConfigError(f"FSMN: the residual needs input_dim == output_dim, got {input_dim} and {output_dim}")
        self.dim, self.lorder = output_dim, lorder
        self.linear = nn.Linear(input_dim, hidden_size)
        self.project = nn.Linear(hidden_size, output_dim, bias=False)
        self.conv1 = nn.Conv2d(output_dim, output_dim, [lorder, 1], [1, 1], groups=output_dim, bias=False)

    def init_state(self, batch_size: int, device=None, dtype=None) -> torch.Tensor:
        dtype = dtype or self.project.weight.dtype
        return torch.zeros(batch_size, self.lorder - 1, self.dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        B, L, _ = x.shape
        p = self.project(F.relu(self.linear(x)))  # (B, L, D)
        if state is None:
            state = self.init_state(B, x.device, p.dtype)
        padded = torch.cat([state.to(p.dtype), p], dim=1)  # (B, lorder-1+L, D)
        # depthwise conv over a (B, D, 1, lorder-1+L) view whose strides are channels-last:
        # oneDNN's channels-last depthwise kernel, measured 3-10x faster on CPU than conv1d
        # (which makes the input contiguous first); the same sums up to float rounding.
        w = self.conv1.weight.transpose(2, 3)  # (D, 1, 1, lorder)
        mem = F.conv2d(padded.transpose(1, 2).unsqueeze(2), w, groups=self.dim)  # (B, D, 1, L)
        mem = mem.squeeze(2).transpose(1, 2)  # (B, L, D)
        y = x + p + mem
        return y, padded[:, padded.shape[1] - (self.lorder - 1) :]  # (B, lorder-1, D)

    def step(self, x_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, state = self(x_t[:, None], state)  # (B, 1, D)
        return y[:, 0], state


class DeepFSMN(nn.Module):
    """``n_layers`` real FSMN blocks in a chain; state = list of per-block states."""

    def __init__(self, cfg: FSMNConfig):
        super().__init__()
        self.layers = nn.ModuleList(FSMN(cfg.d_model, cfg.d_model, cfg.lorder, cfg.d_hidden) for _ in range(cfg.n_layers))

    def init_state(self, batch_size: int, device=None, dtype=None) -> list[torch.Tensor]:
        return [m.init_state(batch_size, device, dtype) for m in self.layers]

    def forward(self, x, state=None):
        new = []
        for i, m in enumerate(self.layers):
            x, s = m(x, None if state is None else state[i])
            new.append(s)
        return x, new

    def step(self, x_t, state):
        y, state = self(x_t[:, None], state)  # (B, 1, D)
        return y[:, 0], state


class ComplexFSMN(nn.Module):
    """FRCRN's complex FSMN on x (B, L, D, 2) (real, imag); ``n_layers`` chained layers."""

    def __init__(self, cfg: FSMNConfig):
        super().__init__()
        self.n_layers = cfg.n_layers
        for i in range(1, cfg.n_layers + 1):
            setattr(self, f"fsmn_re_L{i}", FSMN(cfg.d_model, cfg.d_model, cfg.lorder, cfg.d_hidden))
            setattr(self, f"fsmn_im_L{i}", FSMN(cfg.d_model, cfg.d_model, cfg.lorder, cfg.d_hidden))

    def _pair(self, i: int) -> tuple[FSMN, FSMN]:
        return getattr(self, f"fsmn_re_L{i + 1}"), getattr(self, f"fsmn_im_L{i + 1}")

    def init_state(self, batch_size: int, device=None, dtype=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [tuple(f.init_state(2 * batch_size, device, dtype) for f in self._pair(i)) for i in range(self.n_layers)]

    def forward(self, x: torch.Tensor, state=None):
        if x.shape[-1] != 2:
            raise ValueError(f"ComplexFSMN: expected (B, L, D, 2) with real/imag last, got {tuple(x.shape)}")
        B = x.shape[0]
        z = torch.cat([x[..., 0], x[..., 1]], dim=0)  # (2B, L, D): [re; im]
        new = []
        for i in range(self.n_layers):
            f_re, f_im = self._pair(i)
            s_re, s_im = (None, None) if state is None else state[i]
            r, s_re = f_re(z, s_re)  # (2B, L, D): [F_re(x_re); F_re(x_im)]
            m, s_im = f_im(z, s_im)  # (2B, L, D): [F_im(x_re); F_im(x_im)]
            z = torch.cat([r[:B] - m[B:], r[B:] + m[:B]], dim=0)  # (2B, L, D)
            new.append((s_re, s_im))
        return torch.stack([z[:B], z[B:]], dim=-1), new  # (B, L, D, 2)

    def step(self, x_t: torch.Tensor, state):
        """x_t (B, D, 2) -> (B, D, 2)."""
        y, state = self(x_t[:, None], state)  # (B, 1, D, 2)
        return y[:, 0], state


register_variant("fsmn", FSMNConfig, DeepFSMN,
                 "FSMN memory blocks (Linear+ReLU, projection, causal depthwise lorder-tap memory, residual).",
                 causal=True)


register_variant("complex_fsmn", FSMNConfig, ComplexFSMN,
                 "FRCRN complex FSMN (ComplexUniDeepFsmn): real/imag FSMNs combined as a complex product.")
