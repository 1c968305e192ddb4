"""2-D selective state space model over (variate v, time t), as in Chimera (Behrouz et al., NeurIPS 2024).

The recurrence (a Roesser-type 2-D system; every product is elementwise per channel d and
state n, with coefficients that depend on the position (v, t) because the model is
selective):

    h1[v, t] = a1[v, t] h1[v, t-1] + a2[v, t] h2[v, t-1] + b1[v, t]      (time direction)
    h2[v, t] = a3[v, t] h1[v-1, t] + a4[v, t] h2[v-1, t] + b2[v, t]      (variate direction)
    y[v, t]  = sum_n C1[v, t] h1[v, t] + C2[v, t] h2[v, t]

Boundaries: h1[v, -1], h2[v, -1] come from the state (the last time column of a previous
call; zeros by default); h1[-1, t] = h2[-1, t] = 0 (no variate before the first one).
``ssm2d_loop`` is this double loop, the specification.

Exact parallel formulation (``ssm2d_scan``). The two directions decouple row by row:
(1) h2 at variate v depends only on variate v-1, never on h1 or h2 of variate v itself.
So once row v-1 is known for all t, h2[v, :] follows for all t at once, without recursion.
Then h1[v, :] is a 1-D linear recurrence along time with a known input,
    h1[v, t] = a1[v, t] h1[v, t-1] + (a2[v, t] h2[v, t-1] + b1[v, t]),
which is one call to ``scan`` (associative / chunked / ... along t) started from the state.
The outer loop runs over the V variates ("scan_time": V steps, each of depth O(log L)).
(2) Symmetrically, h1 at time t depends only on time t-1. Given column t-1, h1[:, t]
follows for all v at once, and h2[:, t] is a linear recurrence along variates,
    h2[v, t] = a4[v, t] h2[v-1, t] + (a3[v, t] h1[v-1, t] + b2[v, t]),   h2[-1, t] = 0,
one ``scan`` along v per time step ("scan_variates": L steps of depth O(log V)).
Both orders compute exactly the recurrence above (no approximation), with the same
arithmetic per element; "auto" loops over the shorter axis and scans the longer one.

Discretisation used by ``SelectiveSSM2D`` (Chimera's code is not public; the spec gives the
recurrence, ZOH with Δ1 along time and Δ2 along variates, selective B, C, Δ and diagonal A;
the coupling parameterisation below is this module's choice, documented):
    A1 = -exp(A1_log), A4 = -exp(A4_log)         (D, N), Mamba's S4D-real init -[1..N]
    a1 = exp(Δ1 A1),  a2 = (1 - a1) κ2,   κ2 = tanh(c2) in (-1, 1)
    a4 = exp(Δ2 A4),  a3 = (1 - a4) κ3,   κ3 = tanh(c3)
    b1 = Δ1 B1 x,     b2 = Δ2 B2 x                (Mamba's B̄ = ΔB)
a2 is the exact ZOH of the coupling h2 -> h1 held constant over the step, with the
continuous coupling A2 = -κ2 A1: (e^{Δ1 A1} - 1) A1^{-1} A2 = (1 - a1) κ2 (likewise a3 with
A3 = -κ3 A4). Hence |a1| + |a2| < 1 and |a3| + |a4| < 1: every step is a contraction, so
the 2-D system is stable for any input (the total weight of all paths of length k is at
most max(row sum)^k).

State (core contract, streaming along time): ``(h1, h2)``, each (B, V, D, N), the last time
column. ``step`` advances one time step for all variates: x_t (B, V, D) -> (B, V, D).
``reverse_variates=True`` runs the variate direction from the last variate to the first
(a bidirectional model sums a forward and a reversed instance).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import register_variant
from ..scan import scan

State2D = tuple[torch.Tensor, torch.Tensor]  # h1, h2: (B, V, *S) each


def _acc(*ts: torch.Tensor) -> torch.dtype:
    dt = ts[0].dtype
    for t in ts[1:]:
        dt = torch.promote_types(dt, t.dtype)
    return torch.promote_types(dt, torch.float32)


def _init(b1: torch.Tensor, h0: State2D | None, acc) -> State2D:
    if h0 is None:
        z = torch.zeros_like(b1[:, :, 0], dtype=acc)  # (B, V, *S)
        return z, z
    return h0[0].to(acc), h0[1].to(acc)


def ssm2d_loop(a1, a2, a3, a4, b1, b2, h0: State2D | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The specification: a double loop. All inputs (B, V, L, *S) -> h1, h2 (B, V, L, *S)."""
    acc = _acc(a1, b1)
    B, V, L = b1.shape[:3]
    h1_prev, h2_prev = _init(b1, h0, acc)  # time column t-1: (B, V, *S)
    h1_out, h2_out = [], []
    for t in range(L):
        h1_col, h2_col = [], []
        below1 = below2 = torch.zeros_like(h1_prev[:, 0])  # h[v-1, t] for v = 0: (B, *S)
        for v in range(V):
            h1 = a1[:, v, t] * h1_prev[:, v] + a2[:, v, t] * h2_prev[:, v] + b1[:, v, t]
            h2 = a3[:, v, t] * below1 + a4[:, v, t] * below2 + b2[:, v, t]
            h1_col.append(h1)
            h2_col.append(h2)
            below1, below2 = h1, h2
        h1_prev, h2_prev = torch.stack(h1_col, 1), torch.stack(h2_col, 1)  # (B, V, *S)
        h1_out.append(h1_prev)
        h2_out.append(h2_prev)
    return torch.stack(h1_out, 2), torch.stack(h2_out, 2)  # (B, V, L, *S)


def ssm2d_scan(
    a1, a2, a3, a4, b1, b2, h0: State2D | None = None, order: str = "auto", scan_method: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact parallel form (module docstring): loop over one axis, ``scan`` along the other.

    ``order``: "scan_time" (loop over variates), "scan_variates" (loop over time) or
    "auto" (loop over the shorter axis). Inputs (B, V, L, *S) -> h1, h2 (B, V, L, *S)."""
    acc = _acc(a1, b1)
    a1, a2, a3, a4, b1, b2 = (t.to(acc) for t in (a1, a2, a3, a4, b1, b2))
    B, V, L = b1.shape[:3]
    h1_0, h2_0 = _init(b1, h0, acc)  # (B, V, *S)
    if order == "auto":
        order = "scan_time" if V <= L else "scan_variates"
    if order == "scan_time":
        h1_rows, h2_rows = [], []
        prev1 = prev2 = torch.zeros_like(b1[:, 0])  # row v-1 for v = 0: (B, L, *S)
        for v in range(V):
            h2 = a3[:, v] * prev1 + a4[:, v] * prev2 + b2[:, v]  # (B, L, *S): all t at once
            h2_before = torch.cat([h2_0[:, v, None], h2[:, :-1]], dim=1)  # h2[v, t-1]: (B, L, *S)
            h1 = scan(a1[:, v], a2[:, v] * h2_before + b1[:, v], h1_0[:, v], method=scan_method)  # (B, L, *S)
            h1_rows.append(h1)
            h2_rows.append(h2)
            prev1, prev2 = h1, h2
        return torch.stack(h1_rows, 1), torch.stack(h2_rows, 1)  # (B, V, L, *S)
    if order == "scan_variates":
        h1_cols, h2_cols = [], []
        prev1, prev2 = h1_0, h2_0  # column t-1: (B, V, *S)
        for t in range(L):
            h1 = a1[:, :, t] * prev1 + a2[:, :, t] * prev2 + b1[:, :, t]  # (B, V, *S): all v at once
            h1_below = F.pad(h1, (0, 0) * (h1.dim() - 2) + (1, 0))[:, :V]  # h1[v-1, t]: (B, V, *S)
            h2 = scan(a4[:, :, t], a3[:, :, t] * h1_below + b2[:, :, t], None, method=scan_method)  # (B, V, *S)
            h1_cols.append(h1)
            h2_cols.append(h2)
            prev1, prev2 = h1, h2
        return torch.stack(h1_cols, 2), torch.stack(h2_cols, 2)  # (B, V, L, *S)
    raise ValueError(f"ssm2d_scan order {order!r}: expected auto, scan_time or scan_variates")


@dataclass
class SSM2DConfig:
    d_model: int = 64
    d_state: int = 16
    n_vars: int = 0  # variates V, used only by init_state (forward reads V from the input)
    dt_rank: int = 0  # rank of the Δ projections; 0 = ceil(d_model / 16) (Mamba)
    dt_min: float = 1e-3  # Δ1 (time) init: log-uniform in [dt_min, dt_max]
    dt_max: float = 1e-1
    dt_var_min: float = 1e-3  # Δ2 (variates) init range
    dt_var_max: float = 1e-1
    dt_floor: float = 1e-4  # Δ init floor (Mamba)
    coupling_init: float = 0.5  # initial κ2 = κ3 (coupling between the two directions)
    reverse_variates: bool = False
    method: Literal["auto", "loop", "scan_time", "scan_variates"] = "auto"
    scan_method: Literal["auto", "sequential", "associative", "chunked", "log"] = "auto"

    def validate(self) -> None:
        if self.d_model < 1 or self.d_state < 1 or self.dt_rank < 0:
            raise ConfigError(f"ssm2d: expected d_model, d_state >= 1 and dt_rank >= 0; got {self}")
        if not (0 < self.dt_min <= self.dt_max and 0 < self.dt_var_min <= self.dt_var_max):
            raise ConfigError("ssm2d: expected 0 < dt_min <= dt_max and 0 < dt_var_min <= dt_var_max")
        if not -1.0 < self.coupling_init < 1.0:
            raise ConfigError(f"ssm2d: coupling_init={self.coupling_init}: expected a value in (-1, 1)")


def _dt_bias(d: int, lo: float, hi: float, floor: float) -> torch.Tensor:
    dt = torch.exp(torch.rand(d) * (math.log(hi) - math.log(lo)) + math.log(lo)).clamp(min=floor)
    return dt + torch.log(-torch.expm1(-dt))  # softplus^{-1}(dt)


class SelectiveSSM2D(nn.Module):
    """Selective 2-D SSM mixer: x (B, V, L, D) -> y (B, V, L, D), state = last time column."""

    def __init__(self, cfg: SSM2DConfig):
        super().__init__()
        self.cfg = cfg
        D, N = cfg.d_model, cfg.d_state
        R = cfg.dt_rank or math.ceil(D / 16)
        self.R, self.N = R, N
        self.x_proj = nn.Linear(D, 2 * R + 4 * N, bias=False)  # -> Δ1, Δ2 (low rank), B1, B2, C1, C2
        self.dt1_proj = nn.Linear(R, D)
        self.dt2_proj = nn.Linear(R, D)
        for proj, lo, hi in ((self.dt1_proj, cfg.dt_min, cfg.dt_max), (self.dt2_proj, cfg.dt_var_min, cfg.dt_var_max)):
            nn.init.uniform_(proj.weight, -(R**-0.5), R**-0.5)
            with torch.no_grad():
                proj.bias.copy_(_dt_bias(D, lo, hi, cfg.dt_floor))
        a_log = torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(D, 1)  # (D, N)
        self.A1_log = nn.Parameter(a_log.clone())
        self.A4_log = nn.Parameter(a_log.clone())
        c = math.atanh(cfg.coupling_init)
        self.c2 = nn.Parameter(torch.full((D, N), c))
        self.c3 = nn.Parameter(torch.full((D, N), c))
        self.D = nn.Parameter(torch.ones(D))
        for p in (self.A1_log, self.A4_log, self.c2, self.c3, self.D):
            p._no_weight_decay = True

    def init_state(self, batch_size: int, device=None, dtype=None, n_vars: int | None = None) -> State2D:
        """Zeros: h1, h2 (B, V, D, N); V = ``n_vars`` or the config's ``n_vars``."""
        V = n_vars or self.cfg.n_vars
        if V < 1:
            raise ConfigError("ssm2d init_state: the number of variates is unknown; pass n_vars= or set n_vars")
        z = torch.zeros(batch_size, V, self.cfg.d_model, self.N, device=device, dtype=dtype or torch.float32)
        return z, z.clone()

    def coefficients(self, x: torch.Tensor):
        """Discretised coefficients a1..a4, b1, b2 (B, V, L, D, N) and C1, C2 (B, V, L, N)."""
        R, N = self.R, self.N
        dt1, dt2, B1, B2, C1, C2 = self.x_proj(x).split([R, R, N, N, N, N], dim=-1)  # (B, V, L, .)
        d1 = F.softplus(self.dt1_proj(dt1)).unsqueeze(-1)  # (B, V, L, D, 1)
        d2 = F.softplus(self.dt2_proj(dt2)).unsqueeze(-1)  # (B, V, L, D, 1)
        a1 = torch.exp(-d1 * torch.exp(self.A1_log))  # (B, V, L, D, N)
        a4 = torch.exp(-d2 * torch.exp(self.A4_log))  # (B, V, L, D, N)
        a2 = (1 - a1) * torch.tanh(self.c2)
        a3 = (1 - a4) * torch.tanh(self.c3)
        u = x.unsqueeze(-1)  # (B, V, L, D, 1)
        b1 = d1 * B1.unsqueeze(-2) * u  # (B, V, L, D, N)
        b2 = d2 * B2.unsqueeze(-2) * u  # (B, V, L, D, N)
        return a1, a2, a3, a4, b1, b2, C1, C2

    def forward(self, x: torch.Tensor, state: State2D | None = None) -> tuple[torch.Tensor, State2D]:
        if self.cfg.reverse_variates:
            x = x.flip(1)  # (B, V, L, D); the state is kept in the same (reversed) variate order
        a1, a2, a3, a4, b1, b2, C1, C2 = self.coefficients(x)
        if self.cfg.method == "loop":
            h1, h2 = ssm2d_loop(a1, a2, a3, a4, b1, b2, state)
        else:
            order = "auto" if self.cfg.method == "auto" else self.cfg.method
            h1, h2 = ssm2d_scan(a1, a2, a3, a4, b1, b2, state, order, self.cfg.scan_method)
        y = (h1 * C1.unsqueeze(-2)).sum(-1) + (h2 * C2.unsqueeze(-2)).sum(-1)  # (B, V, L, D)
        y = (y + self.D * x).to(x.dtype)
        if self.cfg.reverse_variates:
            y = y.flip(1)  # (B, V, L, D)
        return y, (h1[:, :, -1], h2[:, :, -1])

    def step(self, x_t: torch.Tensor, state: State2D) -> tuple[torch.Tensor, State2D]:
        """One time step for all variates: x_t (B, V, D) -> (B, V, D)."""
        y, state = self(x_t[:, :, None], state)  # (B, V, 1, D)
        return y[:, :, 0], state


register_variant("ssm2d", SSM2DConfig, SelectiveSSM2D,
                 "Selective 2-D SSM over (variate, time) (Chimera), exact parallel scan and streaming state.")
