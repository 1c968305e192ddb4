"""Selective SSM (Mamba) block with a fast pure-PyTorch CPU scan and the reference loop.

Selective scan (Gu & Dao 2023, ``state-spaces/mamba`` ``selective_scan_ref``), per channel d and
state n, with input-dependent Δ, B, C:
    h_t = exp(Δ_t A) ⊙ h_{t-1} + (Δ_t u_t) B_t,    y_t = C_t · h_t + D ⊙ u_t,    out = y ⊙ silu(z)
Layout here is the core's (B, L, ·): u, Δ, z (B, L, D); A (D, N); B, C (B, L, N); state (B, D, N).
(mamba's reference takes (B, D, L); only the axis order differs.)

Four implementations, tested against each other:

- ``selective_scan_ref``: the specification, a loop over t in fp32 with autograd, as in
  mamba's reference. The loop walks ``unbind``-ed slices: indexing ``deltaA[:, :, i]`` in a
  loop (as the original does) makes autograd allocate a full-size zero tensor per step in the
  backward pass, O(L^2) time, e.g. 560 s instead of 5 s at L=1024 on this CPU.
- ``selective_scan(method="chunked")``: a custom autograd function over chunks of ``chunk``
  time steps. Per chunk, everything that touches the (B, chunk, D, N) volume is one vectorised
  op into preallocated buffers (discretisation exp(Δ A), the input outer product (Δ u) ⊗ B,
  the output contraction with C and, backwards, the four gradient contractions); the
  first-order recurrence inside the chunk is a run of fused in-place multiply-adds; the state
  is carried from chunk to chunk. Memory: the (B, L, D, N) volume is never materialised; the
  forward pass keeps only the inputs and the state entering each chunk (L/chunk x B*D*N), and
  the backward pass recomputes one chunk at a time and runs the adjoint recurrence
  g_t = C_t dy_t + exp(Δ_{t+1} A) g_{t+1} from the last chunk to the first.
- ``selective_scan(method="compiled")`` (opt-in, never the default): the same chunks (8 steps by
  default), each chunk's forward and backward an unrolled graph compiled by ``torch.compile``
  (inductor, C++ backend: needs a C++ compiler at run time). Softplus, the D skip and the z gate
  are fused into the chunk kernels, and results are written in place. The first call compiles
  (about 20-60 s per kernel on a loaded 2-core machine; cached on disk by inductor), a call with
  other strides (another L) recompiles once with symbolic strides. Memory: as "chunked" (the
  state entering each chunk, L/chunk x B*D*N), plus the pre-gate output (B, L, D).

- ``selective_scan(method="fused")`` (opt-in): the C++ kernel of :mod:`ostinato.core.kernels`
  (built on first use, about a minute; vectorised over 16 channels, parallel over batch x
  channel blocks): the state stays in registers/cache for the whole sequence; the forward pass
  keeps only the state every 64 steps (L/64 x B*D*N) and the backward pass recomputes each
  64-step chunk from it (as mamba's CUDA kernel). Softplus, the delta bias, the D skip and the
  z gate are fused. If the kernels cannot be built the call falls back to "chunked" with a
  one-line notice. ``method="auto"``: "fused" when the kernels are already built (it never
  compiles), else "chunked".

All fast paths are exact re-orderings of the reference loop (no division by a decay, no
exp(-Δ A)), so large Δ|A| (decays that underflow to 0) stays exact. A closed form inside a chunk
(h_t = exp(S_t) (h_0 + Σ_k exp(-S_k) Δ_k u_k B_k), S = cumulative Δ A) was measured and not
used: it needs a guard against exp(-S) overflow (|S| grows to ~50 within 16 steps at the
benchmark's Δ and A = -16) and ran 3-7x slower than the in-place loop on this CPU (cumsum,
division and an extra exp over the whole (B, chunk, D, N) volume).

Numeric notes: accumulation in fp32 (or fp64 for fp64 input). In fp32 the fast path evaluates
exp(Δ A) as exp2(Δ · (A log2 e)), about 3x cheaper than exp on this PyTorch CPU build; the
relative difference is about |Δ A| x 2^-24, far inside the spec tolerances (fp32 rtol 6e-4,
atol 2e-3). fp64 uses exp. The Mamba init floors Δ at ``dt_init_floor`` (1e-4) before
inverting the softplus for the bias; no other clamps.

Block (``mamba_simple.Mamba``): in_proj -> (x, z); causal depthwise conv1d (d_conv) + SiLU on
x; x_proj -> (Δ low rank, B, C); dt_proj to D channels, softplus; selective scan; gate by
silu(z); out_proj. Streaming state: {"conv": the last d_conv - 1 conv inputs (B, E, d_conv-1),
"ssm": (B, E, N)}.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from ..config import variant
from ..errors import ConfigError
from ..registry import register_variant

_LOG2E = 1.4426950408889634


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, h0=None):
    """Reference loop (fp32). Shapes in the module docstring. Returns (out (B, L, D), last state (B, D, N))."""
    dtype_in = u.dtype
    acc = torch.promote_types(u.dtype, torch.float32)
    u, delta, A, B, C = (t.to(acc) for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.to(acc)
    if delta_softplus:
        delta = F.softplus(delta)
    x = u.new_zeros(u.shape[0], A.shape[0], A.shape[1]) if h0 is None else h0.to(acc)  # (B, D, N)
    deltaA = torch.exp(torch.einsum("bld,dn->bldn", delta, A))  # (B, L, D, N)
    deltaB_u = torch.einsum("bld,bln,bld->bldn", delta, B, u)  # (B, L, D, N)
    ys = []
    for dA_t, dBu_t, C_t in zip(deltaA.unbind(1), deltaB_u.unbind(1), C.unbind(1)):
        x = dA_t * x + dBu_t  # (B, D, N)
        ys.append(torch.einsum("bdn,bn->bd", x, C_t))  # (B, D)
    y = torch.stack(ys, dim=1)  # (B, L, D)
    out = y if D is None else y + u * D.to(acc)
    if z is not None:
        out = out * F.silu(z.to(acc))
    return out.to(dtype_in), x


def _exp_(x: torch.Tensor) -> torch.Tensor:
    """In-place exp; x holds Δ·A·log2(e) in fp32 (exp2 path) or Δ·A in fp64."""
    return x.exp2_() if x.dtype == torch.float32 else x.exp_()


class _SelectiveScanChunked(torch.autograd.Function):
    """(u, Δ, A, B, C, h0) -> (y = C·h per step (B, L, D), last state (B, D, N)); see module doc."""

    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm, h0, chunk: int):
        Bsz, L, D = u.shape
        N = A.shape[1]
        T = max(1, min(chunk, L))
        nC = -(-L // T)
        A_s = A * _LOG2E if A.dtype == torch.float32 else A  # scaled for _exp_
        du = delta * u  # (B, L, D)
        h = u.new_zeros(Bsz, D, N) if h0 is None else h0
        y = u.new_empty(Bsz, L, D)
        starts = u.new_empty(nC, Bsz, D, N)  # state entering each chunk
        WA = u.new_empty(Bsz, T, D, N)  # exp(Δ A) of one chunk
        WH = u.new_empty(Bsz, T, D, N)  # states of one chunk
        Wy = u.new_empty(Bsz, T, 1, D)
        for c in range(nC):
            c0 = c * T
            t = min(T, L - c0)
            sl = slice(c0, c0 + t)
            starts[c] = h
            h = starts[c]
            dA = _exp_(torch.mul(delta[:, sl, :, None], A_s, out=WA[:, :t]))  # (B, t, D, N)
            H = torch.mul(du[:, sl, :, None], Bm[:, sl, None, :], out=WH[:, :t])  # (B, t, D, N)
            for a_i, h_i in zip(dA.unbind(1), H.unbind(1)):
                h = h_i.addcmul_(a_i, h)  # h_t = dA_t h_{t-1} + dBu_t, in place
            torch.matmul(Cm[:, sl, None, :], H.transpose(2, 3), out=Wy[:, :t])  # (B, t, 1, D)
            y[:, sl] = Wy[:, :t, 0]
        ctx.save_for_backward(u, delta, du, A, Bm, Cm, starts)
        ctx.chunk = T
        ctx.has_h0 = h0 is not None
        return y, h.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh):
        u, delta, du, A, Bm, Cm, starts = ctx.saved_tensors
        T = ctx.chunk
        Bsz, L, D = u.shape
        N = A.shape[1]
        A_s = A * _LOG2E if A.dtype == torch.float32 else A
        dy = dy.contiguous()
        g_du = u.new_empty(Bsz, L, D)  # dL/d(Δ u)
        g_d = u.new_empty(Bsz, L, D)  # dL/dΔ through exp(Δ A)
        gB = u.new_empty(Bsz, L, N)
        gC = u.new_empty(Bsz, L, N)
        gA = torch.zeros_like(A)
        carry = u.new_zeros(Bsz, D, N) if dh is None else dh.clone()  # dL/dh at the chunk end from later steps
        WA, WH, WG = (u.new_empty(Bsz, T, D, N) for _ in range(3))
        wD = u.new_empty(Bsz, T, 1, D)
        wN = u.new_empty(Bsz, T, 1, N)
        wD1 = u.new_empty(Bsz, T, D, 1)
        ones_n = u.new_ones(N, 1)
        for c in reversed(range(starts.shape[0])):
            c0 = c * T
            t = min(T, L - c0)
            sl = slice(c0, c0 + t)
            h = starts[c]
            dA = _exp_(torch.mul(delta[:, sl, :, None], A_s, out=WA[:, :t]))  # (B, t, D, N)
            H = torch.mul(du[:, sl, :, None], Bm[:, sl, None, :], out=WH[:, :t])  # (B, t, D, N)
            hh = h
            for a_i, h_i in zip(dA.unbind(1), H.unbind(1)):
                hh = h_i.addcmul_(a_i, hh)
            G = torch.mul(dy[:, sl, :, None], Cm[:, sl, None, :], out=WG[:, :t])  # dL/dh_t direct, (B, t, D, N)
            gs, As = G.unbind(1), dA.unbind(1)
            g = gs[-1].add_(carry)
            for i in range(t - 2, -1, -1):
                g = gs[i].addcmul_(As[i + 1], g)  # g_t = direct_t + dA_{t+1} g_{t+1}
            torch.matmul(dy[:, sl, None, :], H, out=wN[:, :t])  # (B, t, 1, N): Σ_d dy h
            gC[:, sl] = wN[:, :t, 0]
            torch.matmul(Bm[:, sl, None, :], G.transpose(2, 3), out=wD[:, :t])  # (B, t, 1, D): Σ_n B g
            g_du[:, sl] = wD[:, :t, 0]
            torch.matmul(du[:, sl, None, :], G, out=wN[:, :t])  # (B, t, 1, N): Σ_d Δu g
            gB[:, sl] = wN[:, :t, 0]
            G.mul_(dA)  # dA_t g_t
            carry = G[:, 0].clone()  # dL/dh entering this chunk
            G[:, 1:].mul_(H[:, :-1])
            G[:, 0].mul_(h)  # Z_t = g_t dA_t h_{t-1} = dL/d(Δ_t A)
            gA += torch.mul(G, delta[:, sl, :, None], out=WH[:, :t]).sum((0, 1))  # (D, N)
            torch.matmul(G.mul_(A), ones_n, out=wD1[:, :t])  # (B, t, D, 1): Σ_n A Z (matmul beats sum(-1) here)
            g_d[:, sl] = wD1[:, :t, :, 0]
        g_d.addcmul_(g_du, u)
        g_u = g_du.mul_(delta)
        return g_u, g_d, gA, gB, gC, (carry if ctx.has_h0 else None), None


# ----------------------------------------------------------------------------- compiled path
# Opt-in (method="compiled"): the same chunked algorithm, with each chunk's forward and
# backward written as one unrolled graph and compiled by torch.compile (inductor's C++
# backend, needs a C++ compiler at run time). Discretisation, softplus, the D skip and the
# z gate are fused into the chunk kernels; outputs are written in place into the result.


def _exp_k(x: torch.Tensor) -> torch.Tensor:
    return torch.exp2(x) if x.dtype == torch.float32 else torch.exp(x)


def _chunk_delta(delta, bias, mask, softplus: bool):
    """delta, bias -> (pre-activation (B, T, D), Δ (B, T, D)); Δ = 0 on padded steps (mask 0)."""
    pre = delta + bias  # (B, T, D)
    dl = F.softplus(pre) if softplus else pre
    return pre, dl * mask[None, :, None]


def _fwd_chunk(delta, bias, u, z, Dv, A_s, Bm, Cm, h, mask, out, yD, h_out, softplus: bool, has_z: bool):
    """One chunk forward; writes out (B, T, D), yD = C·h + D u (B, T, D) and the last state h_out (B, D, N)."""
    _, dl = _chunk_delta(delta, bias, mask, softplus)
    du = dl * u  # (B, T, D)
    ys = []
    for i in range(dl.shape[1]):
        h = _exp_k(dl[:, i, :, None] * A_s) * h + du[:, i, :, None] * Bm[:, i, None, :]  # (B, D, N)
        ys.append((h * Cm[:, i, None, :]).sum(-1))  # (B, D)
    y = torch.stack(ys, 1) + u * Dv  # (B, T, D)
    out.copy_(y * F.silu(z) if has_z else y)
    yD.copy_(y)
    h_out.copy_(h)


def _bwd_chunk(delta, bias, u, z, yD, Dv, A_s, A, Bm, Cm, h, mask, dout, carry, gA, g_u, g_d, g_z, gB, gC, gDb,
               softplus: bool, has_z: bool):
    """One chunk backward. Recomputes the chunk's states from h (the state entering it), runs the
    adjoint recurrence from carry (dL/dh at the chunk end, updated in place to dL/dh entering the
    chunk), writes g_u, g_d (w.r.t. delta before softplus), g_z, gB, gC for the chunk and
    accumulates gA (B, D, N; summed over B at the end) and gDb ([dL/dD, dL/dbias], (2, D))."""
    T = delta.shape[1]
    pre, dl = _chunk_delta(delta, bias, mask, softplus)
    du = dl * u  # (B, T, D)
    As, Hp = [], []
    for i in range(T):
        a = _exp_k(dl[:, i, :, None] * A_s)  # (B, D, N)
        Hp.append(h)
        h = a * h + du[:, i, :, None] * Bm[:, i, None, :]  # (B, D, N)
        As.append(a)
    Hs = torch.stack(Hp[1:] + [h], 1)  # (B, T, D, N)
    if has_z:
        sg = torch.sigmoid(z)
        dy = dout * z * sg  # dL/dyD
        g_z.copy_(dout * yD * sg * (1 + z * (1 - sg)))
    else:
        dy = dout
    g = carry
    gs, gdu, gdl = [None] * T, [None] * T, [None] * T
    gA_new = gA
    for i in range(T - 1, -1, -1):
        g = dy[:, i, :, None] * Cm[:, i, None, :] + (g if i == T - 1 else As[i + 1] * g)  # (B, D, N)
        gs[i] = g
        gdu[i] = (g * Bm[:, i, None, :]).sum(-1)  # (B, D): dL/d(Δu)
        Zi = g * As[i] * Hp[i]  # dL/d(Δ A) per element
        gdl[i] = (Zi * A).sum(-1)  # (B, D)
        gA_new = gA_new + Zi * dl[:, i, :, None]
    gC.copy_(torch.matmul(dy[:, :, None, :], Hs)[:, :, 0])  # (B, T, N): Σ_d dy h
    gB.copy_(torch.matmul(du[:, :, None, :], torch.stack(gs, 1))[:, :, 0])  # (B, T, N): Σ_d Δu g
    g_du = torch.stack(gdu, 1)  # (B, T, D)
    g_u.copy_(dy * Dv + g_du * dl)
    g_dl = (torch.stack(gdl, 1) + g_du * u) * mask[None, :, None]  # (B, T, D)
    if softplus:
        g_dl = torch.where(pre > 20, g_dl, g_dl * torch.sigmoid(pre))  # F.softplus threshold 20
    g_d.copy_(g_dl)
    gDb[0].add_((dy * u).sum((0, 1)))
    gDb[1].add_(g_dl.sum((0, 1)))
    gA.copy_(gA_new)
    carry.copy_(As[0] * g)


_COMPILED: dict[str, object] = {}


def _compiled(name: str):
    """torch.compile'd chunk kernel, built on first use. dynamic=None: the first call compiles for
    its exact strides, a second stride (another L) recompiles once with symbolic strides."""
    if name not in _COMPILED:
        _COMPILED[name] = torch.compile({"fwd": _fwd_chunk, "bwd": _bwd_chunk}[name], fullgraph=True)
    return _COMPILED[name]


def _pad_time(x: torch.Tensor | None, Lp: int) -> torch.Tensor | None:
    """x (B, L, K) -> (B, Lp, K), zero padded past L (x itself when Lp == L)."""
    return x if x is None or x.shape[1] == Lp else F.pad(x, (0, 0, 0, Lp - x.shape[1]))


def _run_kernel(name: str, *args):
    try:
        return _compiled(name)(*args)
    except torch._dynamo.exc.BackendCompilerFailed as e:
        raise RuntimeError(
            f"selective scan method 'compiled': torch.compile failed ({type(e).__name__}); "
            "it needs a working C++ compiler; use method='chunked'"
        ) from e


class _SelectiveScanCompiled(torch.autograd.Function):
    """(u, Δ raw, A, B, C, D, z, Δ bias, h0) -> (out (B, L, D), last state (B, D, N)).

    The sequence is zero-padded to whole chunks (a copy only when L is not a multiple of the
    chunk); padded steps get Δ = 0 through the mask (state unchanged, gradients zero). Every
    kernel call then sees views with the same strides: one compile, plus one recompile with
    symbolic strides for other lengths."""

    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm, Dv, z, bias, h0, chunk: int, softplus: bool):
        # detached: the kernels' guards then see the same requires_grad with and without autograd
        u, delta, A, Bm, Cm, Dv, z, bias, h0 = (
            None if x is None else x.detach() for x in (u, delta, A, Bm, Cm, Dv, z, bias, h0)
        )
        Bsz, L, D = u.shape
        N, T = A.shape[1], chunk
        nC = -(-L // T)
        Lp = nC * T
        has_z = z is not None
        A_s = A * _LOG2E if A.dtype == torch.float32 else A
        Dv_ = Dv if Dv is not None else u.new_zeros(D)
        bias_ = bias if bias is not None else u.new_zeros(D)
        delta, u, z, Bm, Cm = (_pad_time(x, Lp) for x in (delta, u, z, Bm, Cm))  # (B, Lp, ·)
        mask = u.new_ones(nC, T)  # 0 on padded steps
        mask[-1, T - (Lp - L) :] = 0
        out, yD = u.new_empty(Bsz, Lp, D), u.new_empty(Bsz, Lp, D)
        states = u.new_empty(nC + 1, Bsz, D, N)  # state entering each chunk, then the last state
        states[0] = 0 if h0 is None else h0
        for c in range(nC):
            sl = slice(c * T, c * T + T)
            zc = z[:, sl] if has_z else None
            _run_kernel("fwd", delta[:, sl], bias_, u[:, sl], zc, Dv_, A_s, Bm[:, sl], Cm[:, sl], states[c], mask[c],
                        out[:, sl], yD[:, sl], states[c + 1], softplus, has_z)
        ctx.save_for_backward(u, delta, A, Bm, Cm, z, yD, Dv_, bias_, states, mask)
        ctx.chunk, ctx.softplus, ctx.L = T, softplus, L
        ctx.has = (Dv is not None, has_z, bias is not None, h0 is not None)
        return out[:, :L], states[nC].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dh):
        u, delta, A, Bm, Cm, z, yD, Dv_, bias_, states, mask = ctx.saved_tensors
        has_D, has_z, has_bias, has_h0 = ctx.has
        T, L = ctx.chunk, ctx.L
        Bsz, Lp, D = u.shape
        N = A.shape[1]
        A_s = A * _LOG2E if A.dtype == torch.float32 else A
        dout = _pad_time(dout.contiguous(), Lp)  # (B, Lp, D)
        g_u, g_d = torch.empty_like(u), torch.empty_like(u)
        g_z = torch.empty_like(u) if has_z else None
        gB, gC = torch.empty_like(Bm), torch.empty_like(Cm)
        gA = u.new_zeros(Bsz, D, N)  # summed over B at the end
        gDb = u.new_zeros(2, D)  # [dL/dD, dL/dbias]
        carry = u.new_zeros(Bsz, D, N) if dh is None else dh.clone(memory_format=torch.contiguous_format)
        for c in reversed(range(states.shape[0] - 1)):
            sl = slice(c * T, c * T + T)
            zc, yc, gzc = (z[:, sl], yD[:, sl], g_z[:, sl]) if has_z else (None, yD[:, sl], None)
            _run_kernel("bwd", delta[:, sl], bias_, u[:, sl], zc, yc, Dv_, A_s, A, Bm[:, sl], Cm[:, sl], states[c],
                        mask[c], dout[:, sl], carry, gA, g_u[:, sl], g_d[:, sl], gzc, gB[:, sl], gC[:, sl], gDb,
                        ctx.softplus, has_z)
        cut = lambda x: None if x is None else x[:, :L]  # noqa: E731
        return (cut(g_u), cut(g_d), gA.sum(0), cut(gB), cut(gC), gDb[0] if has_D else None, cut(g_z),
                gDb[1] if has_bias else None, carry if has_h0 else None, None, None)


METHODS = ("chunked", "compiled", "fused", "auto", "ref")
DEFAULT_CHUNK = {"chunked": 16, "compiled": 8, "fused": 64}  # fused: steps between backward checkpoints


def _resolve(method: str, device: torch.device) -> str:
    """"fused" -> "fused" if the kernels load (building them), else "chunked" (notice printed);
    "auto" -> "fused" if they are already built, else "chunked"; others unchanged. The kernels
    are CPU kernels: other devices get "chunked"."""
    if method not in ("fused", "auto"):
        return method
    if device.type != "cpu":
        return "chunked"
    from .. import kernels

    return "fused" if kernels.load(build=method == "fused") is not None else "chunked"


def selective_scan(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, h0=None,
    method: str = "chunked", chunk: int = 0,
):
    """Selective scan; ``method`` "chunked" (default fast path), "compiled" (opt-in, torch.compile),
    "fused" (opt-in C++ kernel, falls back to "chunked"), "auto" ("fused" if already built, else
    "chunked") or "ref" (the loop); ``chunk`` time steps per chunk (0 = the method's default,
    DEFAULT_CHUNK). Returns (out, last state)."""
    if method == "ref":
        return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, h0)
    if method not in METHODS:
        raise ConfigError(f"selective scan method {method!r}: expected one of {', '.join(METHODS)}")
    if chunk < 0:
        raise ConfigError(f"selective scan chunk={chunk}: expected a positive chunk length (0 = default)")
    method = _resolve(method, u.device)
    chunk = chunk or DEFAULT_CHUNK[method]
    dtype_in = u.dtype
    acc = torch.promote_types(u.dtype, torch.float32)
    if method == "fused":
        from ..kernels.autograd import selective_scan_fused

        cv = lambda t: None if t is None else t.to(acc)  # noqa: E731
        out, last = selective_scan_fused(cv(u), cv(delta), cv(A), cv(B), cv(C), cv(D), cv(z), cv(delta_bias),
                                         delta_softplus, cv(h0), chunk=int(chunk))
        return out.to(dtype_in), last
    if method == "compiled":
        cv = lambda t: None if t is None else t.to(acc).contiguous()  # noqa: E731
        ins = (cv(t) for t in (u, delta, A, B, C, D, z, delta_bias, h0))
        out, last = _SelectiveScanCompiled.apply(*ins, int(chunk), bool(delta_softplus))
        return out.to(dtype_in), last
    u, delta, A, B, C = (t.to(acc) for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.to(acc)
    if delta_softplus:
        delta = F.softplus(delta)
    h0 = None if h0 is None else h0.to(acc).contiguous()
    y, last = _SelectiveScanChunked.apply(
        u.contiguous(), delta.contiguous(), A.contiguous(), B.contiguous(), C.contiguous(), h0, int(chunk)
    )
    out = y if D is None else y + u * D.to(acc)
    if z is not None:
        out = out * F.silu(z.to(acc))
    return out.to(dtype_in), last


# ----------------------------------------------------------------------------- block


@dataclass
class MambaConfig:
    d_model: int = 256
    d_state: int = 16  # N
    d_conv: int = 4
    expand: int = 2  # inner width E = expand * d_model
    dt_rank: int = 0  # 0 = ceil(d_model / 16), as mamba's "auto"
    dt_min: float = 1e-3
    dt_max: float = 0.1
    dt_init: Literal["random", "constant"] = "random"
    dt_scale: float = 1.0
    dt_init_floor: float = 1e-4
    conv_bias: bool = True
    bias: bool = False  # in_proj / out_proj bias
    scan_method: Literal["chunked", "compiled", "fused", "auto", "ref"] = "chunked"  # opt-in: compiled, fused (C++)
    chunk: int = 0  # time steps per chunk of the chunked/compiled/fused scan; 0 = the method's default (16 / 8 / 64)

    def validate(self) -> None:
        if min(self.d_model, self.d_state, self.d_conv, self.expand) < 1 or self.chunk < 0:
            raise ConfigError("mamba: d_model, d_state, d_conv and expand must be positive, chunk >= 0")
        if not 0 < self.dt_min <= self.dt_max:
            raise ConfigError(f"mamba: expected 0 < dt_min <= dt_max, got {self.dt_min}, {self.dt_max}")


class Mamba(nn.Module):
    """Mamba (selective SSM) mixer: (B, L, d_model) -> (B, L, d_model) with a streaming state."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        E, N = cfg.expand * cfg.d_model, cfg.d_state
        self.d_inner = E
        self.dt_rank = cfg.dt_rank or math.ceil(cfg.d_model / 16)
        self.in_proj = nn.Linear(cfg.d_model, 2 * E, bias=cfg.bias)
        self.conv1d = nn.Conv1d(E, E, cfg.d_conv, groups=E, bias=cfg.conv_bias)
        self.x_proj = nn.Linear(E, self.dt_rank + 2 * N, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, E, bias=True)
        std = self.dt_rank**-0.5 * cfg.dt_scale
        with torch.no_grad():
            if cfg.dt_init == "constant":
                self.dt_proj.weight.fill_(std)
            else:
                self.dt_proj.weight.uniform_(-std, std)
            dt = torch.exp(torch.rand(E) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min))
            dt = dt.clamp(min=cfg.dt_init_floor)
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(E, 1))  # (E, N)
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(E))
        self.D._no_weight_decay = True
        self.out_proj = nn.Linear(E, cfg.d_model, bias=cfg.bias)

    def init_state(self, batch_size: int, device=None, dtype=None) -> dict[str, torch.Tensor]:
        dtype = dtype or self.A_log.dtype
        device = device or self.A_log.device
        E, N, K = self.d_inner, self.cfg.d_state, self.cfg.d_conv
        return {
            "conv": torch.zeros(batch_size, E, K - 1, device=device, dtype=dtype),
            "ssm": torch.zeros(batch_size, E, N, device=device, dtype=dtype),
        }

    def _ssm_inputs(self, x: torch.Tensor):
        """x (..., E) after the conv -> Δ (..., E), B (..., N), C (..., N)."""
        dbc = self.x_proj(x)  # (..., R + 2N)
        dt, Bm, Cm = dbc.split([self.dt_rank, self.cfg.d_state, self.cfg.d_state], dim=-1)
        return F.softplus(self.dt_proj(dt)), Bm, Cm

    def forward(self, x: torch.Tensor, state: dict | None = None):
        Bsz, L, _ = x.shape
        K = self.cfg.d_conv
        xz = self.in_proj(x)  # (B, L, 2E)
        xi, z = xz.chunk(2, dim=-1)  # (B, L, E) each
        conv_prev = state["conv"] if state is not None else xi.new_zeros(Bsz, self.d_inner, K - 1)
        xc = torch.cat([conv_prev.to(xi.dtype), xi.transpose(1, 2)], dim=2)  # (B, E, K-1+L)
        new_conv = xc[:, :, xc.shape[2] - (K - 1) :]  # (B, E, K-1)
        xi = F.silu(F.conv1d(xc, self.conv1d.weight, self.conv1d.bias, groups=self.d_inner)).transpose(1, 2)  # (B, L, E)
        delta, Bm, Cm = self._ssm_inputs(xi)  # (B, L, E), (B, L, N), (B, L, N)
        A = -torch.exp(self.A_log.float())  # (E, N)
        y, h = selective_scan(
            xi, delta, A, Bm, Cm, self.D, z, h0=None if state is None else state["ssm"],
            method=self.cfg.scan_method, chunk=self.cfg.chunk,
        )
        return self.out_proj(y), {"conv": new_conv, "ssm": h}

    def step(self, x_t: torch.Tensor, state: dict | None = None):
        """One step: x_t (B, d_model) -> (B, d_model)."""
        if state is None:
            state = self.init_state(x_t.shape[0], x_t.device, x_t.dtype)
        xi, z = self.in_proj(x_t).chunk(2, dim=-1)  # (B, E) each
        window = torch.cat([state["conv"].to(xi.dtype), xi[:, :, None]], dim=2)  # (B, E, K)
        xc = (window * self.conv1d.weight[:, 0]).sum(-1)  # (B, E)
        if self.conv1d.bias is not None:
            xc = xc + self.conv1d.bias
        xc = F.silu(xc)
        delta, Bm, Cm = self._ssm_inputs(xc)  # (B, E), (B, N), (B, N)
        A = -torch.exp(self.A_log.float())  # (E, N)
        h = torch.exp(delta[:, :, None] * A) * state["ssm"] + (delta * xc)[:, :, None] * Bm[:, None, :]  # (B, E, N)
        y = torch.einsum("ben,bn->be", h, Cm) + self.D * xc  # (B, E)
        y = y * F.silu(z)
        return self.out_proj(y), {"conv": window[:, :, 1:], "ssm": h}


register_variant("mamba", MambaConfig, Mamba,
                 "Mamba selective SSM mixer (Gu & Dao 2023), mamba_simple defaults, pure-PyTorch chunked scan.",
                 causal=True)


TestMambaConfig = variant(MambaConfig, "TestMambaConfig", d_model=8, d_state=4, chunk=5)


register_variant("test_mamba", TestMambaConfig, Mamba, "Tiny Mamba mixer for tests.")
