"""Linear recurrences h_t = a_t * h_{t-1} + b_t.

Shapes: a, b are (B, L, *S) (``a`` broadcastable to ``b``), h0 is (B, *S) or None (zeros);
the result is every state, (B, L, *S); the final state is ``h[:, -1]``. Real or complex.

Methods (``scan(a, b, h0, method=...)``):

- ``"sequential"``: the reference loop, the specification every other method is tested against.
- ``"associative"``: the pairs (a_t, b_t) combined by (a_i, b_i) . (a_j, b_j) = (a_j a_i, a_j b_i + b_j)
  (i before j) with the odd/even recursion of ``jax.lax.associative_scan``: O(L) work,
  O(log L) depth, any L (an odd tail element is carried to the next level).
- ``"chunked"``: the SSD algorithm: chunks of length ``chunk``; inside a chunk the local states
  are the dense product h_loc = M b with the decay matrix M[t, s] = prod_{s<r<=t} a_r (exact
  for any a: zero, negative, complex; no logs, no division); one state is carried from chunk
  to chunk by a short recurrence, and h = h_loc + (prefix product of a) * carried state.
  When ``a`` is shared over trailing state axes of ``b`` (size 1 there, e.g. one decay per
  head for a (P, N) state) M is formed (masked cumulative product) and M b is a batched matmul;
  for an elementwise ``a`` the same sum is accumulated diagonal by diagonal (Q multiply-adds
  per element, no Q x Q tensor). Any L: the tail is padded with (a=1, b=0) and cut off.
- ``"log"``: Heinsen's log-space scan for real a > 0: a*_t = cumsum(log a)_t,
  log h_t = a*_t + logcumsumexp_{k<=t}(log b_k - a*_k). b with negative entries uses complex
  logs (log|b| + i*pi) and takes the real part at the end, as in the reference.
- ``"fused"`` (opt-in): the C++ kernel of :mod:`ostinato.core.kernels` (built on first use,
  about a minute; CPU tensors): one pass over memory forward and one backward (the adjoint
  recurrence), vectorised over the state, parallel over batch x state blocks; real or complex.
  If the kernels cannot be built it falls back to "associative" with a one-line notice.
- ``"auto"``: the sequential loop for short sequences (L <= 16, where the loop is cheapest),
  otherwise "fused" when the kernels are already built (auto never compiles) and the tensors
  are on the CPU, else the associative scan (fastest pure-PyTorch parallel path on CPU, any a).

Gradients. The three parallel methods share one ``torch.autograd.Function``: the forward pass
keeps only a, h and h0 (no per-level intermediates), and the backward pass is the adjoint
recurrence run by the same method in reverse:
  g_t = dL/dh_t + conj(a_{t+1}) g_{t+1}   (g_L = dL/dh_L),
  dL/db_t = g_t,  dL/da_t = g_t * conj(h_{t-1}),  dL/dh0 = conj(a_1) g_1,
with PyTorch's complex convention (gradients are conjugate Wirtinger derivatives). Because the
adjoint is exact, the log method has finite gradients even where b = 0 (log b = -inf), which
autograd through ``logcumsumexp`` would turn into NaN. The backward pass is not itself
differentiable (``once_differentiable``): no double backward.

Precision: every method accumulates in at least fp32 (inputs in half precision are promoted)
and returns ``promote_types(a.dtype, b.dtype)`` like the reference.

Numeric guards (all of them):
- log method: the cumulative sum of log a grows in magnitude with L and loses absolute
  precision; the log kernel therefore always works in float64/complex128 and casts back
  (2x memory and time for that path on fp32 input).
- log method: a must be real and > 0 (checked; ValueError otherwise). b = 0 gives log b = -inf,
  which logcumsumexp handles in the forward pass; gradients come from the exact adjoint.
No clamps or epsilons are used by the other methods.

``scan_log(log_a, log_b, log_h0)`` is the same Heinsen scan on log-space inputs with autograd
through it (minGRU/minLSTM use it; their log values are finite by construction).
"""
from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from .errors import ConfigError

METHODS = ("auto", "sequential", "associative", "chunked", "log", "fused")
AUTO_SEQUENTIAL_MAX_L = 16  # "auto" loops for L up to this (the loop is cheapest for short L on CPU)
DEFAULT_CHUNK = 8
# chunked kernel, shared-axes case: at most this many elements in one dense (B, g, G, Q, Q)
# decay block; more chunks are processed in groups so memory stays bounded (128 MiB in fp32).
_CHUNK_BLOCK_ELEMS = 1 << 25


def _acc_dtype(a: torch.Tensor, b: torch.Tensor) -> torch.dtype:
    return torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)


def scan_sequential(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """Reference loop. Accumulates in at least fp32."""
    a, b = torch.broadcast_tensors(a, b)
    acc = torch.promote_types(b.dtype, torch.float32)
    h = torch.zeros_like(b[:, 0], dtype=acc) if h0 is None else h0.to(acc)
    out = []
    # unbind, not a[:, t]: indexing in a loop makes autograd build a full-size zero tensor
    # per step in the backward pass (O(L^2) time); unbind has one backward node.
    for a_t, b_t in zip(a.to(acc).unbind(1), b.to(acc).unbind(1)):
        h = a_t * h + b_t
        out.append(h)
    return torch.stack(out, dim=1).to(torch.promote_types(b.dtype, a.dtype))


# ----------------------------------------------------------------------------- kernels
# Each kernel maps (a, b) with h0 already folded into b[:, 0] to all states h, without autograd.


def _assoc_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Odd/even associative scan along dim 1 (O(L) work, O(log L) depth)."""
    L = b.shape[1]
    if L == 1:
        return b.clone()
    n = L // 2
    a_e, a_o = a[:, 0 : 2 * n : 2], a[:, 1 : 2 * n : 2]  # (B, n, *S) each
    b_e, b_o = b[:, 0 : 2 * n : 2], b[:, 1 : 2 * n : 2]
    # combine each pair (2k, 2k+1) into one element; the prefix of the pairs is h at odd t
    b_pair = torch.addcmul(b_o, a_o, b_e)  # (B, n, *S)
    a_pair = a_o * a_e if n > 1 else a_o  # a of the first pair is never used
    h_odd = _assoc_kernel(a_pair, b_pair)  # (B, n, *S): h_1, h_3, ...
    h = torch.empty_like(b)  # (B, L, *S)
    h[:, 1 : 2 * n : 2] = h_odd
    h[:, 0] = b[:, 0]
    # even t >= 2: h_t = a_t h_{t-1} + b_t with h_{t-1} from the odd positions
    if L > 2:
        torch.addcmul(b[:, 2::2], a[:, 2::2], h_odd[:, : (L - 1) // 2], out=h[:, 2::2])
    return h


def _chunked_kernel(a: torch.Tensor, b: torch.Tensor, chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Dense decay matrix inside chunks, a carried state across chunks (module docstring)."""
    Bsz, L = b.shape[:2]
    S = b.shape[2:]
    k = 0  # trailing state axes shared by a
    while k < len(S) and a.shape[a.dim() - 1 - k] == 1 and S[len(S) - 1 - k] != 1:
        k += 1
    lead, shared = S[: len(S) - k], S[len(S) - k :]
    G, Ns = math.prod(lead), math.prod(shared)
    a = a.expand(Bsz, L, *lead, *([1] * k)).reshape(Bsz, L, G)  # (B, L, G)
    b = b.reshape(Bsz, L, G, Ns)  # (B, L, G, Ns)
    Q = max(1, min(int(chunk), L))
    nC = -(-L // Q)
    pad = nC * Q - L
    if pad:
        a = torch.cat([a, a.new_ones((Bsz, pad, G))], dim=1)  # (B, nC*Q, G)
        b = torch.cat([b, b.new_zeros((Bsz, pad, G, Ns))], dim=1)  # (B, nC*Q, G, Ns)
    a = a.reshape(Bsz, nC, Q, G).transpose(2, 3)  # (B, nC, G, Q)
    b = b.reshape(Bsz, nC, Q, G, Ns).transpose(2, 3)  # (B, nC, G, Q, Ns)
    if Ns == 1:
        # elementwise decay: sum M[t, s] b_s over s diagonal by diagonal, without forming M;
        # D holds M[t, t-d] = prod_{t-d<r<=t} a_r for the current offset d
        bq = b[..., 0]  # (B, nC, G, Q)
        h_loc = bq.clone()
        D = a[..., 1:]  # (B, nC, G, Q-1): offset 1
        for d in range(1, Q):
            if d > 1:
                D = a[..., d:] * D[..., :-1]  # (B, nC, G, Q-d)
            h_loc[..., d:].addcmul_(D, bq[..., : Q - d])
        h_loc = h_loc.unsqueeze(-1)  # (B, nC, G, Q, 1)
    else:
        strict = torch.ones(Q, Q, dtype=torch.bool, device=b.device).tril(-1)  # t > s
        upper = ~torch.ones(Q, Q, dtype=torch.bool, device=b.device).tril()  # t < s
        one = torch.ones((), dtype=a.dtype, device=a.device)
        group = max(1, _CHUNK_BLOCK_ELEMS // (Bsz * G * Q * max(Q, Ns)))
        h_loc = torch.empty(b.shape, dtype=b.dtype, device=b.device)  # (B, nC, G, Q, Ns), zero entering state
        for c0 in range(0, nC, group):
            ag = a[:, c0 : c0 + group]  # (B, g, G, Q)
            # M[t, s] = prod_{s<r<=t} a_r for t >= s, 0 for t < s (masked cumulative product)
            M = torch.where(strict, ag.unsqueeze(-1), one).cumprod(dim=-2).masked_fill_(upper, 0)  # (B, g, G, Q, Q)
            torch.matmul(M, b[:, c0 : c0 + group], out=h_loc[:, c0 : c0 + group])  # (B, g, G, Q, Ns)
            del M
    a_cum = torch.cumprod(a, dim=-1)  # (B, nC, G, Q): decay from the chunk start to t
    carry = torch.empty_like(h_loc[:, :, :, 0])  # (B, nC, G, Ns): state entering each chunk
    state = torch.zeros_like(h_loc[:, 0, :, 0])  # (B, G, Ns)
    for c in range(nC):  # short recurrence across chunks
        carry[:, c] = state
        state = torch.addcmul(h_loc[:, c, :, -1], a_cum[:, c, :, -1, None], state)
    h = h_loc.addcmul_(a_cum.unsqueeze(-1), carry.unsqueeze(3))  # (B, nC, G, Q, Ns)
    return h.transpose(2, 3).reshape(Bsz, nC * Q, *S)[:, :L]  # (B, L, *S)


def _log_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Heinsen scan for real a > 0; complex logs when b is negative or complex."""
    out_dtype = b.dtype
    log_a = torch.log(a.to(torch.float64))  # float64 work precision (numeric guard, module doc)
    if b.is_complex() or bool((b < 0).any()):
        log_b = torch.log(b.to(torch.complex128))  # log|b| + i*arg(b)
    else:
        log_b = torch.log(b.to(torch.float64))  # b = 0 -> -inf, handled by logcumsumexp
    a_star = torch.cumsum(log_a, dim=1)  # (B, L, *S)
    log_h = a_star + torch.logcumsumexp(log_b - a_star, dim=1)  # (B, L, *S)
    h = torch.exp(log_h)
    if not out_dtype.is_complex and h.is_complex():
        h = h.real
    return h.to(out_dtype)


def _check_log_coeffs(a: torch.Tensor) -> None:
    if a.is_complex():
        raise ValueError("scan(method='log'): a must be real and > 0, got a complex tensor")
    if a.numel() and not bool((a > 0).all()):
        raise ValueError("scan(method='log'): a must be > 0 everywhere (use 'associative' or 'chunked')")


def _run_kernel(method: str, a: torch.Tensor, b: torch.Tensor, chunk: int) -> torch.Tensor:
    if method == "associative":
        return _assoc_kernel(a, b)
    if method == "chunked":
        return _chunked_kernel(a, b, chunk)
    return _log_kernel(a, b)


class _LinearScan(torch.autograd.Function):
    """h = scan(a, b, h0) by a parallel kernel; backward = the adjoint scan by the same kernel."""

    @staticmethod
    def forward(ctx, a, b, h0, method: str, chunk: int):
        b_in = b
        if h0 is not None:
            b_in = b.clone()
            b_in[:, 0] = torch.addcmul(b[:, 0], a[:, 0], h0)  # fold h0 into b_1
        h = _run_kernel(method, a, b_in, chunk)
        ctx.method, ctx.chunk, ctx.has_h0 = method, chunk, h0 is not None
        ctx.save_for_backward(a, h, h0 if h0 is not None else None)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h):
        a, h, h0 = ctx.saved_tensors
        grad_h = grad_h.contiguous()
        # adjoint coefficients conj(a_{t+1}) with a_{L+1} = 0, run in reverse time
        a_next = torch.cat([a[:, 1:], torch.zeros_like(a[:, :1])], dim=1)  # (B, L, *S)
        if a_next.is_complex():
            a_next = a_next.conj()
        if ctx.method == "log":
            # the log kernel needs a > 0: the zero at the end is replaced by 1 (it multiplies g_{L+1} = 0)
            a_next[:, -1] = 1
        g = _run_kernel(ctx.method, a_next.flip(1), grad_h.flip(1), ctx.chunk).flip(1)  # (B, L, *S)
        grad_a = grad_b = grad_h0 = None
        if ctx.needs_input_grad[0]:
            h_prev = torch.cat([h0.unsqueeze(1) if h0 is not None else torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)
            grad_a = g * (h_prev.conj() if h_prev.is_complex() else h_prev)  # (B, L, *S)
            if grad_a.is_complex() and not a.is_complex():
                grad_a = grad_a.real  # real a (log method with complex b)
            grad_a = grad_a.sum_to_size(a.shape)  # a broadcast over state axes
        if ctx.needs_input_grad[1]:
            grad_b = g
        if ctx.has_h0 and ctx.needs_input_grad[2]:
            grad_h0 = g[:, 0] * (a[:, 0].conj() if a.is_complex() else a[:, 0])  # (B, *S)
            if grad_h0.is_complex() and not h0.is_complex():
                grad_h0 = grad_h0.real
        return grad_a, grad_b, grad_h0, None, None


def _parallel(a, b, h0, method: str, chunk: int) -> torch.Tensor:
    out_dtype = torch.promote_types(a.dtype, b.dtype)
    acc = _acc_dtype(a, b)
    if method == "log":
        _check_log_coeffs(a)
        acc = torch.promote_types(b.dtype, torch.float32)  # a stays real for the log kernel
        a = a.to(torch.promote_types(a.dtype, torch.float32))
        if h0 is not None:
            acc = torch.promote_types(acc, h0.dtype)
    full = torch.broadcast_shapes(a.shape, b.shape)
    # a keeps its size-1 state axes (the kernels broadcast; chunked turns them into matmuls);
    # its batch and time axes are expanded (views, no copy); b is materialised at full size.
    a = (a if method == "log" else a.to(acc)).expand(full[0], full[1], *a.shape[2:])
    b = b.to(acc).expand(full).contiguous()
    if h0 is not None:
        h0 = h0.to(acc).expand(full[:1] + full[2:]).contiguous()
    h = _LinearScan.apply(a, b, h0, method, chunk)
    return h if (h.is_complex() and not out_dtype.is_complex) else h.to(out_dtype)


def _fused_ok(b: torch.Tensor, build: bool) -> bool:
    """Whether the fused kernel can run on b (CPU tensors; built, or built now if ``build``)."""
    if b.device.type != "cpu":
        return False
    from . import kernels

    return kernels.load(build=build) is not None


def _fused(a, b, h0) -> torch.Tensor:
    """The fused C++ scan in the work dtype (at least fp32, complex if either input is)."""
    from .kernels.autograd import linear_scan_fused

    out_dtype, acc = torch.promote_types(a.dtype, b.dtype), _acc_dtype(a, b)
    full = torch.broadcast_shapes(a.shape, b.shape)
    a = a.to(acc).expand(full[0], full[1], *a.shape[2:])  # batch/time broadcasts stay views
    h0 = None if h0 is None else h0.to(acc).expand(full[:1] + full[2:])
    h = linear_scan_fused(a, b.to(acc).expand(full), h0)
    return h if (h.is_complex() and not out_dtype.is_complex) else h.to(out_dtype)


def scan(
    a: torch.Tensor,
    b: torch.Tensor,
    h0: torch.Tensor | None = None,
    method: str = "auto",
    chunk: int = DEFAULT_CHUNK,
) -> torch.Tensor:
    """All states of h_t = a_t * h_{t-1} + b_t: a, b (B, L, *S), h0 (B, *S) -> (B, L, *S).

    ``method`` in {"auto", "sequential", "associative", "chunked", "log", "fused"}; ``chunk`` is the
    chunk length of the chunked method.
    """
    if method not in METHODS:
        raise ConfigError(f"scan method {method!r}: expected one of {', '.join(METHODS)}")
    if b.dim() < 2 or a.dim() != b.dim():
        raise ValueError(f"scan: a and b must both be (B, L, *S), got {tuple(a.shape)} and {tuple(b.shape)}")
    if method == "auto":
        method = "sequential" if b.shape[1] <= AUTO_SEQUENTIAL_MAX_L else ("fused" if _fused_ok(b, False) else "associative")
    elif method == "fused" and not _fused_ok(b, True):
        method = "associative"
    if method == "sequential":
        return scan_sequential(a, b, h0)
    if method == "fused":
        return _fused(a, b, h0)
    if chunk < 1:
        raise ConfigError(f"scan chunk={chunk}: expected a positive chunk length")
    return _parallel(a, b, h0, method, chunk)


def scan_log(log_a: torch.Tensor, log_b: torch.Tensor, log_h0: torch.Tensor | None = None) -> torch.Tensor:
    """Heinsen scan on log inputs: h_t = exp(log_a_t) h_{t-1} + exp(log_b_t); returns h (B, L, *S).

    log_a real; log_b real or complex (a complex log carries the sign); log_h0 (B, *S) optional.
    Differentiable by autograd (``logcumsumexp``); inputs must be finite for finite gradients.
    Returns the real part when ``log_b`` is real. Accumulates in at least fp32.
    """
    acc = torch.promote_types(log_a.dtype, torch.float32)
    log_a = log_a.to(acc)
    log_b = log_b.to(torch.promote_types(log_b.dtype, torch.float32))
    if log_h0 is not None:
        log_b = torch.cat([log_h0.unsqueeze(1).to(log_b.dtype), log_b], dim=1)  # (B, 1+L, *S)
        log_a = torch.cat([torch.zeros_like(log_a[:, :1]), log_a], dim=1)  # (B, 1+L, *S)
    a_star = torch.cumsum(log_a, dim=1)  # (B, L', *S)
    log_h = a_star + torch.logcumsumexp(log_b - a_star, dim=1)  # (B, L', *S)
    h = torch.exp(log_h)
    if log_h0 is not None:
        h = h[:, 1:]  # (B, L, *S)
    return h
