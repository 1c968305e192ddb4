"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs all we needed?"), parallel in log space.

minGRU:  z_t = σ(k_t), h̃_t = g(a_t), h_t = (1 - z_t) h_{t-1} + z_t h̃_t           (k, a = W x)
minLSTM: f_t = σ(k^f_t), i_t = σ(k^i_t), f' = f/(f+i), i' = i/(f+i), h_t = f' h_{t-1} + i' h̃_t
with g(x) = x + 1/2 for x >= 0 and σ(x) otherwise (positive, so h stays positive).

Parallel mode ("log"): the recurrence h_t = A_t h_{t-1} + V_t is solved by the Heinsen scan
(``ostinato.core.scan.scan_log``) on log-coefficients and log-values computed stably:
  minGRU:  log A = -softplus(k),  log V = -softplus(-k) + log g(a)
  minLSTM: d = softplus(-k^f) - softplus(-k^i),  log A = -softplus(d),  log V = -softplus(-d) + log g(a)
  log g(a) = log(relu(a) + 1/2) for a >= 0, -softplus(-a) otherwise.
Pitfall avoided: ``where(a >= 0, log(a + 0.5), ...)`` evaluates log of a negative
number in the unused branch and its NaN poisons the gradient; ``relu`` keeps that branch finite.
An entering state h_0 is added exactly as exp(cumsum(log A)) ⊙ h_0 (no log of h_0, so a zero
or negative state is fine). "sequential" mode is the loop (the specification) and ``step``.
"fused" mode: the same recurrence on A = exp(log A), V = exp(log V) by the C++ linear scan of
``ostinato.core.kernels`` (``scan(method="fused")``; no cumsum, so no precision loss with L).
Long sequences in fp32: cumsum(log A) grows in magnitude and loses absolute precision
(Feng et al. 2024, "Were RNNs all we needed?", log-space scan); use fp64 or the sequential mode where that matters.

Projections as in the authors' code (``BorealisAI/minRNNs`` ``models/minRNNs.py``): one biased
Linear to [h̃, gates] and a biased Linear out, always (torch's default init). ``bias=False`` and
``out_proj=False`` (an output map only when expansion != 1) give ``lucidrains/minGRU-pytorch``.
Not offered (the authors' options, off here): a learned initial hidden state
(``use_init_hidden_state``: here h_0 = 0 or the given state), minLSTM's forget-gate bias offset
(``forget_bias_init_scale``) and minLSTM without gate normalisation (``use_coeff_norm=False``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import variant
from ..errors import ConfigError
from ..registry import register_variant
from ..scan import scan, scan_log


def g(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


@dataclass
class MinGRUConfig:
    d_model: int = 256
    expansion: float = 1.0  # hidden width = expansion * d_model (an output projection when != 1)
    method: Literal["log", "sequential", "fused"] = "log"  # fused: the C++ linear scan (ostinato.core.kernels)
    bias: bool = True  # biased projections (authors' code); False: lucidrains/minGRU-pytorch
    out_proj: bool = True  # always an output Linear (authors' code); False: only when expansion != 1 (lucidrains)

    def validate(self) -> None:
        if self.d_model < 1 or int(self.d_model * self.expansion) < 1:
            raise ConfigError(f"mingru/minlstm: positive widths expected, got d_model={self.d_model}, expansion={self.expansion}")


@dataclass
class MinLSTMConfig(MinGRUConfig):
    pass


class _MinRNN(nn.Module):
    """Shared body: gates from one linear map, log-space or sequential solve, optional out-projection."""

    n_gates = 2

    def __init__(self, cfg: MinGRUConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.d_inner = int(cfg.d_model * cfg.expansion)
        self.to_gates = nn.Linear(cfg.d_model, self.n_gates * self.d_inner, bias=cfg.bias)
        proj = cfg.out_proj or self.d_inner != cfg.d_model
        self.to_out = nn.Linear(self.d_inner, cfg.d_model, bias=cfg.bias) if proj else nn.Identity()

    def init_state(self, batch_size: int, device=None, dtype=None) -> torch.Tensor:
        w = self.to_gates.weight
        return torch.zeros(batch_size, self.d_inner, device=device or w.device, dtype=dtype or w.dtype)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
        gates = self.to_gates(x)  # (B, L, G*E)
        if self.cfg.method == "sequential":
            h, hs = state, []
            for gt in gates.unbind(1):
                h = self._step_gates(gt, h)
                hs.append(h)
            hs = torch.stack(hs, dim=1)  # (B, L, E)
        elif self.cfg.method == "fused":  # h_t = a_t h_{t-1} + v_t with a = exp(log_a), v = exp(log_v)
            log_a, log_v = self._log_coeffs(gates)  # (B, L, E) each
            hs = scan(log_a.exp(), log_v.exp(), state, method="fused").to(x.dtype)  # (B, L, E)
        else:
            log_a, log_v = self._log_coeffs(gates)  # (B, L, E) each
            hs = scan_log(log_a, log_v)  # (B, L, E), zero entering state
            if state is not None:
                hs = hs + torch.exp(torch.cumsum(log_a.to(hs.dtype), dim=1)) * state[:, None]
            hs = hs.to(x.dtype)
        return self.to_out(hs), hs[:, -1]

    def step(self, x_t: torch.Tensor, state: torch.Tensor | None = None):
        h = self._step_gates(self.to_gates(x_t), state)  # (B, E)
        return self.to_out(h), h


class MinGRU(_MinRNN):
    """minGRU: (B, L, D) -> (B, L, D); state (B, E)."""

    n_gates = 2

    def _log_coeffs(self, gates):
        a, k = gates.chunk(2, dim=-1)  # hidden pre-activation, gate pre-activation
        return -F.softplus(k), -F.softplus(-k) + log_g(a)

    def _step_gates(self, gates, h):
        a, k = gates.chunk(2, dim=-1)
        z = torch.sigmoid(k)
        h_new = z * g(a)
        return h_new if h is None else h_new + (1 - z) * h


class MinLSTM(_MinRNN):
    """minLSTM: (B, L, D) -> (B, L, D); state (B, E)."""

    n_gates = 3

    def _log_coeffs(self, gates):
        a, kf, ki = gates.chunk(3, dim=-1)
        d = F.softplus(-kf) - F.softplus(-ki)  # log(i / f)
        return -F.softplus(d), -F.softplus(-d) + log_g(a)

    def _step_gates(self, gates, h):
        a, kf, ki = gates.chunk(3, dim=-1)
        f, i = torch.sigmoid(kf), torch.sigmoid(ki)
        h_new = i / (f + i) * g(a)
        return h_new if h is None else h_new + f / (f + i) * h


register_variant("mingru", MinGRUConfig, MinGRU,
                 "minGRU (Feng et al. 2024): gated linear recurrence, parallel by a log-space Heinsen scan.",
                 causal=True)


register_variant("minlstm", MinLSTMConfig, MinLSTM,
                 "minLSTM (Feng et al. 2024): normalised forget/input gates, parallel by a log-space Heinsen scan.",
                 causal=True)


TestMinGRUConfig = variant(MinGRUConfig, "TestMinGRUConfig", d_model=6, expansion=1.5)


register_variant("test_mingru", TestMinGRUConfig, MinGRU, "Tiny minGRU for tests.")


TestMinLSTMConfig = variant(MinLSTMConfig, "TestMinLSTMConfig", d_model=6, expansion=1.5)


register_variant("test_minlstm", TestMinLSTMConfig, MinLSTM, "Tiny minLSTM for tests.")
