"""Mamba-2 SSD (state space duality) mixer, chunked pure-PyTorch algorithm and reference loop.

Per head h, with a scalar decay per step (Dao & Gu, ICML 2024; ``state-spaces/mamba`` ``ssd_minimal_discrete``):
    S_t = exp(a_t) S_{t-1} + x_t B_tᵀ    (S: P x N),    y_t = S_t C_t,    a_t = Δ_t A_h <= 0
``ssd_ref`` is that loop. ``ssd_chunked`` computes the same outputs and final state in four
steps over chunks of Q steps, with Aᶜ the within-chunk cumulative sum of a:
  1. intra-chunk outputs  Y_diag[t] = Σ_{s<=t} (C_t·B_s) exp(segsum(a)[t, s]) x_s
  2. chunk end states     S_c = Σ_s exp(Aᶜ_end - Aᶜ_s) x_s B_sᵀ
  3. inter-chunk recurrence over [h0; S_1..S_C] with decays exp(segsum(chunk sums of a))
  4. state -> output      Y_off[t] = exp(Aᶜ_t) (S_entering C_t)
and Y = Y_diag + Y_off. segsum(x)[i, j] = Σ_{k=j+1..i} x_k (i >= j), -inf above the diagonal,
by a masked cumulative sum (the difference of two cumsums cancels badly; spec pitfall).
Any L: the tail is padded with x = 0, a = 0 (decay 1), which leaves the state unchanged.
Nothing here imports Triton or CUDA code.

The mixer follows ``Mamba2Simple``: in_proj -> (z, xBC, dt); causal depthwise conv1d + SiLU
on xBC; dt = softplus(dt + dt_bias); A = -exp(A_log) per head; y = SSD(x·dt, A·dt, B, C) +
D x; gated RMSNorm(y · silu(z)); out_proj. Init: A ~ U[1, 16] per head (A_log = log A), dt
log-uniform in [dt_min, dt_max] floored at 1e-4 (dt_bias = softplus⁻¹(dt)), D = 1;
``_no_weight_decay`` on A_log, D and dt_bias. Streaming state: {"conv": (B, conv_dim, d_conv-1),
"ssm": (B, H, P, N)}.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import variant
from ..errors import ConfigError
from ..registry import register_variant


def segsum(x: torch.Tensor) -> torch.Tensor:
    """(..., T) -> (..., T, T): Σ_{k=j+1..i} x_k for i >= j, -inf for i < j (masked cumsum)."""
    T = x.shape[-1]
    strict = torch.ones(T, T, dtype=torch.bool, device=x.device).tril(-1)
    rep = x.unsqueeze(-1).expand(*x.shape, T).masked_fill(~strict, 0)  # (..., T(i), T(j)): x_i for i > j
    out = rep.cumsum(dim=-2)  # (..., T, T)
    return out.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=x.device).tril(), float("-inf"))


def ssd_ref(x, a, B, C, h0=None):
    """Loop: x (b, L, H, P), a (b, L, H) log-decays, B, C (b, L, H, N) -> y (b, L, H, P), state (b, H, P, N)."""
    acc = torch.promote_types(x.dtype, torch.float32)
    x, a, B, C = (t.to(acc) for t in (x, a, B, C))
    S = x.new_zeros(x.shape[0], x.shape[2], x.shape[3], B.shape[3]) if h0 is None else h0.to(acc)
    ys = []
    for x_t, a_t, B_t, C_t in zip(x.unbind(1), a.unbind(1), B.unbind(1), C.unbind(1)):
        S = torch.exp(a_t)[..., None, None] * S + x_t[..., :, None] * B_t[..., None, :]  # (b, H, P, N)
        ys.append(torch.einsum("bhpn,bhn->bhp", S, C_t))
    return torch.stack(ys, dim=1), S


def ssd_chunked(x, a, B, C, chunk: int = 64, h0=None):
    """The four-step chunked algorithm (module docstring); same shapes and results as ``ssd_ref``."""
    acc = torch.promote_types(x.dtype, torch.float32)
    x, a, B, C = (t.to(acc) for t in (x, a, B, C))
    b, L, H, P = x.shape
    N = B.shape[-1]
    Q = max(1, min(chunk, L))
    nC = -(-L // Q)
    pad = nC * Q - L
    if pad:
        x, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (x, B, C))  # (b, nC*Q, H, .)
        a = F.pad(a, (0, 0, 0, pad))  # (b, nC*Q, H)
    x = x.reshape(b, nC, Q, H, P)
    B = B.reshape(b, nC, Q, H, N)
    C = C.reshape(b, nC, Q, H, N)
    a = a.reshape(b, nC, Q, H).permute(0, 3, 1, 2)  # (b, H, nC, Q)
    a_cum = a.cumsum(dim=-1)  # (b, H, nC, Q)
    # 1. within-chunk outputs
    decay = torch.exp(segsum(a))  # (b, H, nC, Q(t), Q(s))
    scores = torch.einsum("bctHn,bcsHn->bHcts", C, B) * decay  # (b, H, nC, Q, Q)
    y_diag = torch.einsum("bHcts,bcsHp->bctHp", scores, x)  # (b, nC, Q, H, P)
    # 2. state at each chunk end from that chunk's inputs
    to_end = torch.exp(a_cum[..., -1:] - a_cum)  # (b, H, nC, Q)
    states = torch.einsum("bcsHn,bHcs,bcsHp->bcHpn", B, to_end, x)  # (b, nC, H, P, N)
    # 3. recurrence across chunks, entering state first
    init = x.new_zeros(b, 1, H, P, N) if h0 is None else h0.to(acc).unsqueeze(1)
    states = torch.cat([init, states], dim=1)  # (b, nC+1, H, P, N)
    chunk_decay = torch.exp(segsum(F.pad(a_cum[..., -1], (1, 0))))  # (b, H, nC+1, nC+1)
    states = torch.einsum("bHzc,bcHpn->bzHpn", chunk_decay, states)  # state after chunk z-1
    entering, final = states[:, :-1], states[:, -1]  # (b, nC, H, P, N), (b, H, P, N)
    # 4. contribution of the entering state to each output
    y_off = torch.einsum("bctHn,bcHpn,bHct->bctHp", C, entering, torch.exp(a_cum))  # (b, nC, Q, H, P)
    y = (y_diag + y_off).reshape(b, nC * Q, H, P)[:, :L]  # (b, L, H, P)
    return y, final


@dataclass
class Mamba2Config:
    d_model: int = 256
    d_state: int = 128  # N
    d_conv: int = 4
    expand: int = 2
    headdim: int = 64  # P; heads = expand * d_model / headdim
    ngroups: int = 1  # B/C groups shared by heads
    A_init_range: tuple[float, float] = (1.0, 16.0)
    dt_min: float = 1e-3
    dt_max: float = 0.1
    dt_init_floor: float = 1e-4
    chunk: int = 64
    scan_method: Literal["chunked", "ref"] = "chunked"
    norm_eps: float = 1e-5

    def validate(self) -> None:
        E = self.expand * self.d_model
        if E % self.headdim or (E // self.headdim) % self.ngroups:
            raise ConfigError(f"ssd: expand*d_model={E} must split into heads of headdim={self.headdim}, a multiple of ngroups={self.ngroups}")


class Mamba2(nn.Module):
    """Mamba-2 SSD mixer: (B, L, d_model) -> (B, L, d_model) with a streaming state."""

    def __init__(self, cfg: Mamba2Config):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        E, N, G = cfg.expand * cfg.d_model, cfg.d_state, cfg.ngroups
        self.d_inner, self.nheads = E, E // cfg.headdim
        self.conv_dim = E + 2 * G * N
        self.in_proj = nn.Linear(cfg.d_model, 2 * E + 2 * G * N + self.nheads, bias=False)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, cfg.d_conv, groups=self.conv_dim, bias=True)
        dt = torch.exp(torch.rand(self.nheads) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min))
        dt = dt.clamp(min=cfg.dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        A = torch.empty(self.nheads).uniform_(*cfg.A_init_range)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.nheads))
        for p in (self.dt_bias, self.A_log, self.D):
            p._no_weight_decay = True
        self.norm_weight = nn.Parameter(torch.ones(E))
        self.out_proj = nn.Linear(E, cfg.d_model, bias=False)

    def init_state(self, batch_size: int, device=None, dtype=None) -> dict[str, torch.Tensor]:
        device, dtype = device or self.D.device, dtype or self.D.dtype
        return {
            "conv": torch.zeros(batch_size, self.conv_dim, self.cfg.d_conv - 1, device=device, dtype=dtype),
            "ssm": torch.zeros(batch_size, self.nheads, self.cfg.headdim, self.cfg.d_state, device=device, dtype=dtype),
        }

    def _split(self, zxbcdt):
        E, GN = self.d_inner, self.cfg.ngroups * self.cfg.d_state
        return zxbcdt.split([E, E + 2 * GN, self.nheads], dim=-1)  # z, xBC, dt

    def _heads(self, xbc, dt):
        """xBC after the conv (..., conv_dim), dt (..., H) -> x (..., H, P), a, B, C (..., H, N), dt."""
        E, G, N, H = self.d_inner, self.cfg.ngroups, self.cfg.d_state, self.nheads
        xs, Bm, Cm = xbc.split([E, G * N, G * N], dim=-1)
        x = xs.unflatten(-1, (H, self.cfg.headdim))  # (..., H, P)
        Bm = Bm.unflatten(-1, (G, N)).repeat_interleave(H // G, dim=-2)  # (..., H, N)
        Cm = Cm.unflatten(-1, (G, N)).repeat_interleave(H // G, dim=-2)
        dt = F.softplus(dt + self.dt_bias)  # (..., H)
        return x, dt * -torch.exp(self.A_log), Bm, Cm, dt

    def _out(self, y, x, z):
        y = y + x * self.D[:, None]  # (..., H, P)
        y = y.flatten(-2) * F.silu(z)  # (..., E)
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.cfg.norm_eps) * self.norm_weight
        return self.out_proj(y)

    def forward(self, u: torch.Tensor, state: dict | None = None):
        Bsz, L, _ = u.shape
        K = self.cfg.d_conv
        z, xbc, dt = self._split(self.in_proj(u))  # (B, L, E), (B, L, conv_dim), (B, L, H)
        prev = state["conv"] if state is not None else xbc.new_zeros(Bsz, self.conv_dim, K - 1)
        xc = torch.cat([prev.to(xbc.dtype), xbc.transpose(1, 2)], dim=2)  # (B, conv_dim, K-1+L)
        new_conv = xc[:, :, xc.shape[2] - (K - 1) :]  # (B, conv_dim, K-1)
        xbc = F.silu(F.conv1d(xc, self.conv1d.weight, self.conv1d.bias, groups=self.conv_dim)).transpose(1, 2)  # (B, L, conv_dim)
        x, a, Bm, Cm, dt = self._heads(xbc, dt)
        h0 = None if state is None else state["ssm"]
        fn = ssd_ref if self.cfg.scan_method == "ref" else (lambda *t, h0: ssd_chunked(*t, chunk=self.cfg.chunk, h0=h0))
        y, h = fn(x * dt[..., None], a, Bm, Cm, h0=h0)  # (B, L, H, P), (B, H, P, N)
        return self._out(y.to(x.dtype), x, z), {"conv": new_conv, "ssm": h}

    def step(self, u_t: torch.Tensor, state: dict | None = None):
        """One step: u_t (B, d_model) -> (B, d_model)."""
        if state is None:
            state = self.init_state(u_t.shape[0], u_t.device, u_t.dtype)
        z, xbc, dt = self._split(self.in_proj(u_t))
        window = torch.cat([state["conv"].to(xbc.dtype), xbc[:, :, None]], dim=2)  # (B, conv_dim, K)
        xbc = F.silu((window * self.conv1d.weight[:, 0]).sum(-1) + self.conv1d.bias)  # (B, conv_dim)
        x, a, Bm, Cm, dt = self._heads(xbc, dt)
        S = torch.exp(a)[..., None, None] * state["ssm"] + (x * dt[..., None])[..., :, None] * Bm[..., None, :]  # (B, H, P, N)
        y = torch.einsum("bhpn,bhn->bhp", S, Cm)
        return self._out(y, x, z), {"conv": window[:, :, 1:], "ssm": S}


register_variant("ssd", Mamba2Config, Mamba2,
                 "Mamba-2 SSD mixer (Dao & Gu 2024), chunked pure-PyTorch SSD algorithm with a streaming state.",
                 causal=True)


TestMamba2Config = variant(Mamba2Config, "TestMamba2Config", d_model=8, d_state=4, headdim=4, chunk=5)


register_variant("test_ssd", TestMamba2Config, Mamba2, "Tiny Mamba-2 SSD mixer for tests.")
