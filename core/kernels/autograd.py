"""``torch.autograd.Function`` wrappers of the fused kernels (see the package docstring).

Callers (``ostinato.core.scan.scan`` and ``ostinato.core.layers.selective.selective_scan``)
check :func:`ostinato.core.kernels.load` first and pass inputs already in the work dtype
(float32/float64, or complex64/complex128 for the linear scan). Neither backward pass is
itself differentiable (``once_differentiable``): no double backward.
"""
from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from . import load

DEFAULT_CHUNK = 64  # selective scan: steps between the checkpoints kept for the backward pass


def _ops():
    ops = load(build=False)
    if ops is None:
        raise RuntimeError("ostinato fused kernels are not loaded (call ostinato.core.kernels.load() first)")
    return ops


class _SelectiveFused(torch.autograd.Function):
    """(u, Δ raw, A, B, C, D, z, Δ bias, h0) -> (out (B, L, D), last state (B, D, N))."""

    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm, Dv, z, bias, h0, softplus: bool, chunk: int):
        out, last, ckpt = _ops().selective_fwd(u, delta, A, Bm, Cm, Dv, z, bias, h0, softplus, chunk)
        ctx.save_for_backward(u, delta, A, Bm, Cm, Dv, z, bias, ckpt)
        ctx.softplus, ctx.chunk, ctx.has_h0 = softplus, chunk, h0 is not None
        return out, last

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dlast):
        u, delta, A, Bm, Cm, Dv, z, bias, ckpt = ctx.saved_tensors
        g_u, g_d, g_A, g_B, g_C, g_D, g_bias, g_z, g_h0 = _ops().selective_bwd(
            u, delta, A, Bm, Cm, Dv, z, bias, ckpt, dout.contiguous(), dlast.contiguous(), ctx.softplus, ctx.chunk
        )
        keep = lambda g, x: g if x is not None else None  # noqa: E731
        return (g_u, g_d, g_A, g_B, g_C, keep(g_D, Dv), keep(g_z, z), keep(g_bias, bias),
                g_h0 if ctx.has_h0 else None, None, None)


def selective_scan_fused(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, h0=None,
                         chunk: int = DEFAULT_CHUNK):
    """Fused selective scan; inputs in one float dtype (shapes as ``selective_scan_ref``).
    Returns (out (B, L, D), last state (B, D, N))."""
    cv = lambda t: None if t is None else t.contiguous()  # noqa: E731
    return _SelectiveFused.apply(*(cv(t) for t in (u, delta, A, B, C, D, z, delta_bias, h0)),
                                 bool(delta_softplus), int(chunk))


class _LinearFused(torch.autograd.Function):
    """(a (Ba, La, S), b (B, L, S), h0 (B, S) or None) -> h (B, L, S)."""

    @staticmethod
    def forward(ctx, a, b, h0):
        h = _ops().linear_fwd(a, b, h0)
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h):
        a, h, h0 = ctx.saved_tensors
        g_a, g_b, g_h0 = _ops().linear_bwd(a, h, h0, grad_h.resolve_conj().contiguous())
        if a.shape[0] == 1:
            g_a = g_a.sum(0, keepdim=True)  # a shared over the batch
        return g_a, g_b, (g_h0 if h0 is not None else None)


def linear_scan_fused(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """All states of h_t = a_t h_{t-1} + b_t. b (B, L, *S); a broadcastable to b (its batch and
    time axes may be size 1 or expanded views: they are not materialised); h0 (B, *S) or None.
    All in one dtype (float32/64 or complex64/128). Returns h (B, L, *S)."""
    Bsz, L, S = b.shape[0], b.shape[1], b.shape[2:]
    n = math.prod(S)
    Ba = 1 if a.shape[0] == 1 or a.stride(0) == 0 else Bsz
    La = 1 if a.shape[1] == 1 or a.stride(1) == 0 else L
    fix = (lambda t: t.resolve_conj().resolve_neg()) if b.is_complex() else (lambda t: t)
    a3 = fix(a[:Ba, :La].expand(Ba, La, *S)).reshape(Ba, La, n).contiguous()  # (Ba, La, S)
    b3 = fix(b).reshape(Bsz, L, n).contiguous()  # (B, L, S)
    h0 = None if h0 is None else fix(h0).reshape(Bsz, n).contiguous()  # (B, S)
    return _LinearFused.apply(a3, b3, h0).reshape(Bsz, L, *S)
