"""Every parallel scan method against the sequential loop: states, final state, gradients."""
import pytest
import torch

from ostinato.core.errors import ConfigError
from ostinato.core.scan import scan, scan_log, scan_sequential

LENGTHS = [1, 7, 64, 257]
TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.complex64: dict(rtol=1e-4, atol=1e-4),
       torch.float64: dict(rtol=1e-10, atol=1e-10), torch.complex128: dict(rtol=1e-10, atol=1e-10)}


def _coeffs(method, L, dtype, gen, S=(3,)):
    real = torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32
    if method == "log":  # a real and > 0, b of any sign (or complex)
        a = torch.rand(2, L, *S, generator=gen, dtype=real) * 0.9 + 0.1
    else:
        a = torch.randn(2, L, *S, generator=gen, dtype=dtype) * 0.7
    b = torch.randn(2, L, *S, generator=gen, dtype=dtype)
    h0 = torch.randn(2, *S, generator=gen, dtype=dtype)
    return a, b, h0


def _check(method, a, b, h0, tol, **kw):
    leaves1 = [t.clone().requires_grad_() for t in (a, b, h0) if t is not None]
    leaves2 = [t.clone().requires_grad_() for t in (a, b, h0) if t is not None]
    h1 = scan(*leaves1[:2], leaves1[2] if h0 is not None else None, method=method, **kw)
    h2 = scan_sequential(*leaves2[:2], leaves2[2] if h0 is not None else None)
    torch.testing.assert_close(h1, h2, **tol)
    torch.testing.assert_close(h1[:, -1], h2[:, -1], **tol)  # final state
    w = torch.randn(h2.shape, dtype=h2.dtype, generator=torch.Generator().manual_seed(1))
    (h1 * w).real.sum().backward()
    (h2 * w).real.sum().backward()
    for x1, x2, name in zip(leaves1, leaves2, ("a", "b", "h0")):
        torch.testing.assert_close(x1.grad, x2.grad, **tol, msg=lambda m: f"grad {name}: {m}")


@pytest.mark.parametrize("method", ["associative", "chunked", "log"])
@pytest.mark.parametrize("L", LENGTHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64, torch.complex128])
@pytest.mark.parametrize("with_h0", [False, True])
def test_scan_matches_sequential(method, L, dtype, with_h0):
    gen = torch.Generator().manual_seed(L * 7 + with_h0)
    a, b, h0 = _coeffs(method, L, dtype, gen)
    _check(method, a, b, h0 if with_h0 else None, TOL[dtype], chunk=5)


@pytest.mark.parametrize("chunk", [1, 3, 16, 300])
def test_chunked_any_chunk_length(chunk):
    gen = torch.Generator().manual_seed(chunk)
    a, b, h0 = _coeffs("chunked", 37, torch.float64, gen, S=(2, 3))
    _check("chunked", a, b, h0, TOL[torch.float64], chunk=chunk)


@pytest.mark.parametrize("method", ["associative", "chunked", "log"])
def test_broadcast_a_gradient_is_summed(method):
    gen = torch.Generator().manual_seed(3)
    a = torch.rand(2, 19, 4, 1, generator=gen, dtype=torch.float64) * 0.9 + 0.05  # shared over the last axis
    b = torch.randn(2, 19, 4, 5, generator=gen, dtype=torch.float64)
    _check(method, a, b, None, TOL[torch.float64])


def test_auto_and_half_precision_inputs():
    gen = torch.Generator().manual_seed(4)
    a, b, h0 = _coeffs("associative", 100, torch.float32, gen)
    ref = scan_sequential(a, b, h0)
    torch.testing.assert_close(scan(a, b, h0), ref, **TOL[torch.float32])
    torch.testing.assert_close(scan(a[:, :5], b[:, :5], h0), ref[:, :5], **TOL[torch.float32])
    hb = scan(a.bfloat16(), b.bfloat16(), method="associative")  # accumulates in fp32, returns bf16
    assert hb.dtype == torch.bfloat16
    torch.testing.assert_close(hb.float(), scan_sequential(a.bfloat16(), b.bfloat16()).float(), rtol=2e-2, atol=2e-2)


def test_log_method_zero_b_has_finite_exact_gradients():
    a = torch.full((1, 6, 2), 0.5, dtype=torch.float64)
    b = torch.zeros(1, 6, 2, dtype=torch.float64)
    b[:, 2] = -1.0
    _check("log", a, b, None, TOL[torch.float64])
    bb = b.clone().requires_grad_()
    scan(a, bb, method="log").sum().backward()
    assert torch.isfinite(bb.grad).all()


def test_log_method_rejects_non_positive_a():
    with pytest.raises(ValueError, match="a must be > 0"):
        scan(torch.zeros(1, 3, 2), torch.ones(1, 3, 2), method="log")
    with pytest.raises(ValueError, match="real"):
        scan(torch.ones(1, 3, 2, dtype=torch.complex64), torch.ones(1, 3, 2), method="log")


def test_bad_method_is_a_config_error():
    with pytest.raises(ConfigError, match="scan method 'fast'"):
        scan(torch.ones(1, 2, 1), torch.ones(1, 2, 1), method="fast")


@pytest.mark.parametrize("with_h0", [False, True])
def test_scan_log_on_log_inputs(with_h0):
    gen = torch.Generator().manual_seed(5)
    log_a = -torch.rand(2, 50, 3, generator=gen, dtype=torch.float64) * 2
    log_b = torch.randn(2, 50, 3, generator=gen, dtype=torch.float64)
    log_h0 = torch.randn(2, 3, generator=gen, dtype=torch.float64) if with_h0 else None
    x = [t.clone().requires_grad_() for t in (log_a, log_b)]
    h = scan_log(x[0], x[1], log_h0)
    ref = scan_sequential(log_a.exp(), log_b.exp(), None if log_h0 is None else log_h0.exp())
    torch.testing.assert_close(h, ref, rtol=1e-10, atol=1e-10)
    h.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in x)


def test_parallel_backward_does_not_keep_per_level_intermediates():
    """The autograd graph of a parallel scan holds one node, whatever the length."""
    a = torch.rand(1, 1000, 2, requires_grad=True)
    h = scan(a, torch.ones(1, 1000, 2), method="associative")
    fn = h.grad_fn
    while fn is not None and "LinearScan" not in type(fn).__name__:
        fn = fn.next_functions[0][0]
    assert fn is not None and "LinearScan" in type(fn).__name__
