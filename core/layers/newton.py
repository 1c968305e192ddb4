"""ParaRNN: nonlinear RNNs solved in parallel over time by Newton's method
(Danieli et al. 2025, ``apple/ml-pararnn``).

The sequence h_t = f(h_{t-1}, x_t), t = 1..T, is the root of the residual
r_t(h) = h_t - f(h_{t-1}, x_t). Linearising f around the current iterate h^k gives the next
iterate as a *linear* recurrence with the Jacobians J_t = ∂f/∂h_{t-1} (h^k_{t-1}, x_t):

    h^{k+1}_t = J_t h^{k+1}_{t-1} + (f(h^k_{t-1}, x_t) - J_t h^k_{t-1}),     h^{k+1}_0 = h_0.

(Equivalently δ_t - J_t δ_{t-1} = -r_t, the block-bidiagonal system of the spec.) Each
Newton step solves it with ``linear_recurrence``: the doubling reduction of ⌈log2 T⌉ steps,
for s = 1, 2, 4, ...: for t >= s, b_t <- b_t + A_t b_{t-s}, A_t <- A_t A_{t-s}. Newton on
this lower-triangular system is exact after at most T iterations (step k fixes h_1..h_k)
and converges quadratically near the solution. Before each step the residual of the current
iterate, max_t |h_t - f(h_{t-1}, x_t)| (free: f is evaluated for the step anyway), is checked;
the loop stops when it is <= tol·max(1, max|h|) or after ``max_its`` steps (ParaRNN's default is
3; here 6). tol defaults to 1e-5 in fp32 and 1e-10 in fp64. The solve runs without autograd,
in at least fp32.

Far from contraction (e.g. ParaGRU with |a| ~ 3, T = 512) a few Newton steps do not reach the
solution: the iterate can leave the GRU's [-1, 1] box and its residual stay large. Such an
unconverged solve is never used silently: ``on_no_converge="sequential"`` (default) warns and
recomputes the layer with the sequential loop (outputs and gradients are then exactly the
loop's), ``"raise"`` raises :class:`NewtonNotConverged`. Each forward records ``last_iters``
(Newton steps), ``last_residual`` (residual of the returned solve, before any fallback),
``last_delta`` (max |h^{k+1} - h^k| of the last step), ``last_converged`` and ``last_fallback``.

Jacobians are block-diagonal with blocks k x k, shape (B, T, G, k, k) for a flat state of
size S = G·k: diagonal (k = 1: ParaGRU, diagonal recurrent weights), 2 x 2 blocks (ParaLSTM:
each unit couples its h and c, stored interleaved [h_d, c_d]) or dense (G = 1, k = S: a
standard GRU). They are analytic (cells that define ``jacobian``) or by autograd
(``torch.func.jvp`` with one tangent per column of a block: k forward-mode products).

Gradients use the implicit function theorem, not the unrolled loop: at the solution h*,
the output is recomputed with autograd as y_t = f(h*_{t-1}, x_t) (h*_{t-1} detached for
t > 1, h_0 attached), and a hook on y replaces the incoming gradient g by the adjoint λ,
    λ_t = g_t + J_{t+1}^T λ_{t+1},     λ_T = g_T,
solved by the same doubling reduction run backwards in time with transposed blocks. Back-
propagating λ through that one parallel cell evaluation gives exactly Σ_t λ_t ∂f_t/∂(θ, x_t)
and J_1^T λ_1 for h_0, which are the gradients of the sequential loop (tested).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import register_model


# --- the linear solve -----------------------------------------------------------------------
def _apply(A: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Block-diagonal matrix times vector: A (..., G, k, k), v (..., G*k) -> (..., G*k)."""
    G, k = A.shape[-3], A.shape[-1]
    if k == 1:
        return A[..., 0, 0] * v
    return (A @ v.unflatten(-1, (G, k)).unsqueeze(-1)).squeeze(-1).flatten(-2)


def linear_recurrence(A: torch.Tensor, b: torch.Tensor, method: str = "doubling") -> torch.Tensor:
    """Solve x_t = A_t x_{t-1} + b_t with x_0 = 0 (A_1 is unused).

    A: (B, T, G, k, k) block-diagonal coefficients; b: (B, T, G*k) -> x (B, T, G*k).
    ``method``: "sequential" (the loop) or "doubling" (⌈log2 T⌉ parallel steps)."""
    T = b.shape[1]
    if method == "sequential":
        x, out = torch.zeros_like(b[:, 0]), []
        for t in range(T):
            x = _apply(A[:, t], x) + b[:, t]
            out.append(x)
        return torch.stack(out, 1)  # (B, T, S)
    if method != "doubling":
        raise ValueError(f"linear_recurrence method {method!r}: expected doubling or sequential")
    s = 1
    while s < T:
        b = torch.cat([b[:, :s], b[:, s:] + _apply(A[:, s:], b[:, :-s])], dim=1)  # (B, T, S)
        if 2 * s < T:  # the last step needs no new coefficients
            A = torch.cat([A[:, :s], A[:, s:] @ A[:, :-s]], dim=1)  # (B, T, G, k, k)
        s *= 2
    return b


def _transpose_shift(J: torch.Tensor) -> torch.Tensor:
    """Coefficients of the adjoint recurrence in reversed time: C_s = J_{T+1-s}^T, C_0 = 0."""
    Jt = J.transpose(-1, -2).flip(1)  # (B, T, G, k, k): J_T^T, ..., J_1^T
    return torch.cat([torch.zeros_like(Jt[:, :1]), Jt[:, :-1]], dim=1)


# --- cells ------------------------------------------------------------------------------------
class ParaGRUCell(nn.Module):
    """GRU with diagonal recurrent weights (ParaRNN's ParaGRU): diagonal Jacobian.

    z = σ(Wz x + az⊙h + bz), r = σ(Wr x + ar⊙h + br), n = tanh(Wn x + r⊙(an⊙h + bhn)),
    h' = (1 - z)⊙n + z⊙h."""

    block = 1

    def __init__(self, d_model: int, d_hidden: int):
        super().__init__()
        self.d_hidden = self.d_state = d_hidden
        self.inp = nn.Linear(d_model, 3 * d_hidden)
        k = 1 / math.sqrt(d_hidden)
        self.a = nn.Parameter(torch.empty(3, d_hidden).uniform_(-k, k))  # az, ar, an
        self.b_hn = nn.Parameter(torch.empty(d_hidden).uniform_(-k, k))
        nn.init.uniform_(self.inp.weight, -k, k)
        nn.init.uniform_(self.inp.bias, -k, k)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.inp(x)  # (..., 3H)

    def _gates(self, h, xp):
        zx, rx, nx = xp.chunk(3, -1)
        az, ar, an = self.a.to(h.dtype)
        z, r = torch.sigmoid(zx + az * h), torch.sigmoid(rx + ar * h)
        m = an * h + self.b_hn.to(h.dtype)
        n = torch.tanh(nx + r * m)
        return z, r, m, n

    def f(self, h: torch.Tensor, xp: torch.Tensor) -> torch.Tensor:
        z, r, m, n = self._gates(h, xp)
        return (1 - z) * n + z * h

    def jacobian(self, h: torch.Tensor, xp: torch.Tensor) -> torch.Tensor:
        z, r, m, n = self._gates(h, xp)
        az, ar, an = self.a.to(h.dtype)
        dn = (1 - n * n) * (r * (1 - r) * ar * m + r * an)
        J = z + z * (1 - z) * az * (h - n) + (1 - z) * dn
        return J[..., None, None]  # (..., H, 1, 1)

    def output(self, s: torch.Tensor) -> torch.Tensor:
        return s

    def to_state(self, s: torch.Tensor) -> torch.Tensor:
        return s

    def from_state(self, state: torch.Tensor) -> torch.Tensor:
        return state


class ParaLSTMCell(nn.Module):
    """LSTM with diagonal recurrent weights (ParaLSTM): 2 x 2 Jacobian block per unit.

    i, f, o = σ(W x + a⊙h + b), g = tanh(Wg x + ag⊙h + bg); c' = f⊙c + i⊙g; h' = o⊙tanh(c').
    Flat state (..., 2H) interleaved as [h_1, c_1, h_2, c_2, ...]."""

    block = 2

    def __init__(self, d_model: int, d_hidden: int, forget_bias: float = 1.0):
        super().__init__()
        self.d_hidden, self.d_state = d_hidden, 2 * d_hidden
        self.inp = nn.Linear(d_model, 4 * d_hidden)
        k = 1 / math.sqrt(d_hidden)
        self.a = nn.Parameter(torch.empty(4, d_hidden).uniform_(-k, k))  # ai, af, ag, ao
        nn.init.uniform_(self.inp.weight, -k, k)
        with torch.no_grad():
            self.inp.bias.uniform_(-k, k)
            self.inp.bias[d_hidden : 2 * d_hidden] += forget_bias

    def project(self, x):
        return self.inp(x)  # (..., 4H)

    def _gates(self, s, xp):
        s = s.unflatten(-1, (self.d_hidden, 2))  # (..., H, 2)
        h, c = s[..., 0], s[..., 1]
        a = self.a.to(s.dtype)
        ix, fx, gx, ox = xp.chunk(4, -1)
        i, f = torch.sigmoid(ix + a[0] * h), torch.sigmoid(fx + a[1] * h)
        g, o = torch.tanh(gx + a[2] * h), torch.sigmoid(ox + a[3] * h)
        c2 = f * c + i * g
        return h, c, i, f, g, o, c2, torch.tanh(c2)

    def f(self, s, xp):
        h, c, i, f, g, o, c2, tc = self._gates(s, xp)
        return torch.stack([o * tc, c2], -1).flatten(-2)  # (..., 2H)

    def jacobian(self, s, xp):
        h, c, i, f, g, o, c2, tc = self._gates(s, xp)
        a = self.a.to(s.dtype)
        dc_dh = f * (1 - f) * a[1] * c + i * (1 - i) * a[0] * g + i * (1 - g * g) * a[2]
        dc_dc = f
        k = o * (1 - tc * tc)
        dh_dh = o * (1 - o) * a[3] * tc + k * dc_dh
        dh_dc = k * f
        return torch.stack([torch.stack([dh_dh, dh_dc], -1), torch.stack([dc_dh, dc_dc], -1)], -2)  # (..., H, 2, 2)

    def output(self, s):
        return s.unflatten(-1, (self.d_hidden, 2))[..., 0]  # (..., H)

    def to_state(self, s):
        s = s.unflatten(-1, (self.d_hidden, 2))  # (B, H, 2)
        return s[..., 0], s[..., 1]

    def from_state(self, state):
        return torch.stack(state, -1).flatten(-2)  # (B, 2H)


class DenseGRUCell(nn.Module):
    """A standard GRU cell (full recurrent matrices, torch's equations): dense Jacobian,
    by autograd. Cost per Newton step grows like H^3 log T; use for small H."""

    def __init__(self, d_model: int, d_hidden: int):
        super().__init__()
        self.d_hidden = self.d_state = self.block = d_hidden
        self.cell = nn.GRUCell(d_model, d_hidden)

    def project(self, x):
        return x @ self.cell.weight_ih.T + self.cell.bias_ih  # (..., 3H)

    def f(self, h, xp):
        gh = h @ self.cell.weight_hh.to(h.dtype).T + self.cell.bias_hh.to(h.dtype)
        rx, zx, nx = xp.chunk(3, -1)
        rh, zh, nh = gh.chunk(3, -1)
        r, z = torch.sigmoid(rx + rh), torch.sigmoid(zx + zh)
        n = torch.tanh(nx + r * nh)
        return (1 - z) * n + z * h

    output = ParaGRUCell.output
    to_state = ParaGRUCell.to_state
    from_state = ParaGRUCell.from_state


def autograd_jacobian(f, h: torch.Tensor, xp: torch.Tensor, block: int) -> torch.Tensor:
    """Block-diagonal ∂f/∂h (..., G, k, k) by k forward-mode products (one per block column)."""
    S = h.shape[-1]
    G = S // block
    cols = []
    for j in range(block):
        e = torch.zeros(G, block, dtype=h.dtype, device=h.device)
        e[:, j] = 1
        _, col = torch.func.jvp(lambda hh: f(hh, xp), (h,), (e.flatten().expand_as(h),))
        cols.append(col.unflatten(-1, (G, block)))  # (..., G, k): column j of each block
    return torch.stack(cols, -1)  # (..., G, k, k)


# --- the layer --------------------------------------------------------------------------------
class NewtonNotConverged(RuntimeError):
    """The Newton solve did not reach the tolerance in ``max_its`` steps (``on_no_converge="raise"``)."""


@dataclass
class ParaRNNConfig:
    d_model: int = 64  # input width
    d_hidden: int = 64
    max_its: int = 6  # Newton iterations at most (ParaRNN default 3)
    tol: float = 0.0  # converged: max_t |h_t - f(h_{t-1}, x_t)| <= tol·max(1, max|h|); 0 = 1e-5 (fp32) / 1e-10 (fp64)
    on_no_converge: Literal["sequential", "raise"] = "sequential"  # not converged after max_its: the loop, or raise
    jacobian: Literal["analytic", "autograd"] = "analytic"  # dense cells always use autograd
    mode: Literal["newton", "sequential"] = "newton"  # "sequential": the loop (the spec)
    solver: Literal["doubling", "sequential"] = "doubling"  # linear solve inside each Newton step

    def validate(self) -> None:
        if min(self.d_model, self.d_hidden, self.max_its) < 1 or self.tol < 0:
            raise ConfigError(f"pararnn: expected positive d_model, d_hidden, max_its and tol >= 0; got {self}")


class NewtonRNN(nn.Module):
    """A nonlinear RNN cell run by Newton's method over the whole sequence; core contract."""

    def __init__(self, cell: nn.Module, cfg: ParaRNNConfig):
        super().__init__()
        self.cell, self.cfg = cell, cfg
        self.last_iters, self.last_delta, self.last_residual = 0, float("nan"), float("nan")
        self.last_converged, self.last_fallback = True, False

    @property
    def d_out(self) -> int:
        return self.cfg.d_hidden  # output width (a mixer slot projects it back to d_model)

    def init_state(self, batch_size: int, device=None, dtype=None):
        dtype = dtype or next(self.parameters()).dtype
        return self.cell.to_state(torch.zeros(batch_size, self.cell.d_state, device=device, dtype=dtype))

    def _jac(self, h, xp):
        if self.cfg.jacobian == "analytic" and hasattr(self.cell, "jacobian"):
            return self.cell.jacobian(h, xp)
        return autograd_jacobian(self.cell.f, h, xp, self.cell.block)

    @torch.no_grad()
    def solve(self, xp: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Newton iterations; returns h* (B, T, S) and the Jacobians at it (None if not converged). Sets ``last_iters``,
        ``last_delta``, ``last_residual`` and ``last_converged`` (module doc)."""
        acc = torch.promote_types(xp.dtype, torch.float32)
        xp, h0 = xp.to(acc), h0.to(acc)
        tol = self.cfg.tol or (1e-10 if acc == torch.float64 else 1e-5)
        prev = torch.cat([h0[:, None], torch.zeros_like(h0)[:, None].expand(-1, xp.shape[1] - 1, -1)], 1)
        H = self.cell.f(prev, xp)  # (B, T, S): one Jacobi sweep from zeros as the initial guess
        self.last_iters, self.last_delta = 0, float("nan")
        while True:
            prev = torch.cat([h0[:, None], H[:, :-1]], dim=1)  # h^k_{t-1}: (B, T, S)
            fk = self.cell.f(prev, xp)  # (B, T, S)
            self.last_residual = (H - fk).abs().max().item()
            self.last_converged = self.last_residual <= tol * max(1.0, H.abs().max().item())
            if self.last_converged or self.last_iters == self.cfg.max_its:
                break
            J = self._jac(prev, xp)  # (B, T, G, k, k)
            b = fk - _apply(J, prev)
            b[:, 0] = b[:, 0] + _apply(J[:, 0], h0)  # x_0 = 0 in the solver: fold h_0 into b_1
            H_new = linear_recurrence(J, b, self.cfg.solver)
            self.last_delta = (H_new - H).abs().max().item()
            H = H_new
            self.last_iters += 1
        return H, (self._jac(prev, xp) if self.last_converged else None)

    def _sequential(self, xp: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        """The loop h_t = f(h_{t-1}, x_t) with autograd: (B, T, S)."""
        h, out = h0, []
        for t in range(xp.shape[1]):
            h = self.cell.f(h, xp[:, t])
            out.append(h)
        return torch.stack(out, 1)  # (B, T, S)

    def _not_converged(self) -> None:
        msg = (f"ParaRNN Newton solve did not converge: residual {self.last_residual:.3g} after {self.last_iters} "
               f"iterations (max_its={self.cfg.max_its}); raise max_its or use mode=sequential")
        if self.cfg.on_no_converge == "raise":
            raise NewtonNotConverged(msg)
        warnings.warn(msg + "; falling back to the sequential loop", RuntimeWarning, stacklevel=3)

    def forward(self, x: torch.Tensor, state=None):
        B = x.shape[0]
        xp = self.cell.project(x)  # (B, T, P): all input projections at once
        h0 = self.cell.from_state(state) if state is not None else torch.zeros(B, self.cell.d_state, device=x.device, dtype=xp.dtype)
        self.last_fallback = False
        if self.cfg.mode == "newton":
            H, J = self.solve(xp.detach(), h0.detach())
            if not self.last_converged:
                self._not_converged()
                self.last_fallback = True
        if self.cfg.mode == "sequential" or self.last_fallback:
            s = self._sequential(xp, h0)  # (B, T, S)
        else:
            prev = torch.cat([h0[:, None].to(H.dtype), H[:, :-1]], dim=1)  # (B, T, S); h*_{t-1} detached for t > 1
            s = self.cell.f(prev, xp.to(H.dtype))  # one parallel evaluation at the solution, with autograd
            if s.requires_grad:
                C = _transpose_shift(J)
                method = self.cfg.solver
                s.register_hook(lambda g: linear_recurrence(C, g.flip(1), method).flip(1))
            s = s.to(xp.dtype)
        return self.cell.output(s), self.cell.to_state(s[:, -1])

    def step(self, x_t: torch.Tensor, state=None):
        """x_t (B, D) -> (B, H): one exact cell step."""
        h = self.cell.from_state(state) if state is not None else None
        xp = self.cell.project(x_t)
        if h is None:
            h = torch.zeros(x_t.shape[0], self.cell.d_state, device=x_t.device, dtype=xp.dtype)
        s = self.cell.f(h, xp)
        return self.cell.output(s), self.cell.to_state(s)


@register_model("pararnn_gru", config=ParaRNNConfig, causal=True)
def pararnn_gru(cfg: ParaRNNConfig) -> NewtonRNN:
    """ParaGRU (diagonal recurrence) solved in parallel over time by Newton + doubling reduction."""
    return NewtonRNN(ParaGRUCell(cfg.d_model, cfg.d_hidden), cfg)


@register_model("pararnn_lstm", config=ParaRNNConfig, causal=True)
def pararnn_lstm(cfg: ParaRNNConfig) -> NewtonRNN:
    """ParaLSTM (diagonal recurrence, 2x2 Jacobian blocks) solved by Newton + doubling reduction."""
    return NewtonRNN(ParaLSTMCell(cfg.d_model, cfg.d_hidden), cfg)


@register_model("pararnn_gru_dense", config=ParaRNNConfig, causal=True)
def pararnn_gru_dense(cfg: ParaRNNConfig) -> NewtonRNN:
    """Standard GRU (dense recurrence, autograd Jacobians) solved by Newton + doubling reduction."""
    return NewtonRNN(DenseGRUCell(cfg.d_model, cfg.d_hidden), cfg)
