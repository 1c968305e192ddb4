"""2-D selective SSM: exact parallel forms vs the 2-D recurrence, streaming, stability, learning."""
import importlib

import pytest
import torch

from ostinato.core import create_model
from ostinato.core.layers.ssm2d import ssm2d_loop, ssm2d_scan

# every general-coefficient scan the core offers (the log scan needs a > 0 and b > 0)
_OFFERED = getattr(importlib.import_module("ostinato.core.scan"), "METHODS", ())
SCANS = ["sequential"] + [m for m in ("associative", "chunked") if m in _OFFERED]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/core/conftest.py


def _tol(dtype):
    return dict(atol=2e-5, rtol=2e-4) if dtype == torch.float32 else dict(atol=1e-10, rtol=1e-9)


def _spec(a1, a2, a3, a4, b1, b2, h0=None):
    """Independent transcription of the equations, element by element over (v, t)."""
    B, V, L = b1.shape[:3]
    h1 = {}
    h2 = {}
    zero = torch.zeros_like(b1[:, 0, 0])
    for t in range(L):
        for v in range(V):
            if t > 0:
                p1, p2 = h1[v, t - 1], h2[v, t - 1]
            else:
                p1, p2 = (zero, zero) if h0 is None else (h0[0][:, v], h0[1][:, v])
            q1, q2 = h1.get((v - 1, t), zero), h2.get((v - 1, t), zero)
            h1[v, t] = a1[:, v, t] * p1 + a2[:, v, t] * p2 + b1[:, v, t]
            h2[v, t] = a3[:, v, t] * q1 + a4[:, v, t] * q2 + b2[:, v, t]
    st = lambda h: torch.stack([torch.stack([h[v, t] for t in range(L)], 1) for v in range(V)], 1)
    return st(h1), st(h2)


def _coeffs(B, V, L, S, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda: torch.rand(B, V, L, *S, generator=g, dtype=dtype)
    a1, a4 = r(), r()
    a2, a3 = (1 - a1) * (2 * r() - 1), (1 - a4) * (2 * r() - 1)
    b1, b2 = torch.randn(B, V, L, *S, generator=g, dtype=dtype), torch.randn(B, V, L, *S, generator=g, dtype=dtype)
    return [t.requires_grad_() for t in (a1, a2, a3, a4, b1, b2)]


def test_loop_is_the_equations():
    c = _coeffs(2, 3, 4, (2,), torch.float64, 0)
    h0 = (torch.randn(2, 3, 2, dtype=torch.float64), torch.randn(2, 3, 2, dtype=torch.float64))
    for init in (None, h0):
        for got, ref in zip(ssm2d_loop(*c, init), _spec(*c, init)):
            torch.testing.assert_close(got, ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("V,L", [(1, 1), (3, 7), (5, 64), (2, 257), (9, 4)])
@pytest.mark.parametrize("order", ["scan_time", "scan_variates"])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("scan_method", SCANS)
def test_parallel_orders_match_loop(dtype, V, L, order, with_state, scan_method):
    c = _coeffs(2, V, L, (3, 2), dtype, V * 1000 + L)
    h0 = None
    if with_state:
        g = torch.Generator().manual_seed(7)
        h0 = tuple(torch.randn(2, V, 3, 2, generator=g, dtype=dtype).requires_grad_() for _ in range(2))
    ref = ssm2d_loop(*c, h0)
    got = ssm2d_scan(*c, h0, order=order, scan_method=scan_method)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, **_tol(dtype))
    w1, w2 = torch.randn_like(ref[0]), torch.randn_like(ref[1])
    inputs = list(c) + (list(h0) if h0 else [])
    g_ref = torch.autograd.grad((ref[0] * w1).sum() + (ref[1] * w2).sum(), inputs)
    g_got = torch.autograd.grad((got[0] * w1).sum() + (got[1] * w2).sum(), inputs)
    for a, b in zip(g_got, g_ref):
        torch.testing.assert_close(a, b, **_tol(dtype))


def _layer(method="auto", **kw):
    torch.manual_seed(0)
    return create_model("ssm2d", d_model=8, d_state=4, method=method, **kw).double()


@pytest.mark.parametrize("method", ["scan_time", "scan_variates", "auto"])
@pytest.mark.parametrize("reverse", [False, True])
def test_layer_methods_agree_with_loop(method, reverse):
    x = torch.randn(2, 4, 9, 8, dtype=torch.float64, requires_grad=True)
    ref_layer, layer = _layer("loop", reverse_variates=reverse), _layer(method, reverse_variates=reverse)
    y_ref, s_ref = ref_layer(x)
    y, s = layer(x)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(s[0], s_ref[0])
    torch.testing.assert_close(s[1], s_ref[1])
    w = torch.randn_like(y)
    g = torch.autograd.grad((y * w).sum(), [x] + list(layer.parameters()))
    g_ref = torch.autograd.grad((y_ref * w).sum(), [x] + list(ref_layer.parameters()))
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b)


def test_streaming_along_time():
    layer = _layer(n_vars=3)
    x = torch.randn(2, 3, 11, 8, dtype=torch.float64)
    y, s = layer(x)
    y1, s1 = layer(x[:, :, :4])
    y2, s2 = layer(x[:, :, 4:], s1)
    torch.testing.assert_close(torch.cat([y1, y2], 2), y)
    torch.testing.assert_close(s2[0], s[0])
    state = layer.init_state(2, dtype=torch.float64)
    ys = []
    for t in range(11):
        y_t, state = layer.step(x[:, :, t], state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 2), y)


def test_causal_in_time_and_in_variate_order():
    layer = _layer()
    x = torch.randn(1, 4, 6, 8, dtype=torch.float64, requires_grad=True)
    y, _ = layer(x)
    (g,) = torch.autograd.grad(y[0, 1, 2].sum(), x)
    assert g[0, :, 3:].abs().max() == 0  # no future time
    assert g[0, 2:].abs().max() == 0  # no later variate
    assert g[0, 0, :3].abs().sum() > 0 and g[0, 1, :3].abs().sum() > 0
    rev = _layer(reverse_variates=True)
    y, _ = rev(x)
    (g,) = torch.autograd.grad(y[0, 1, 2].sum(), x)
    assert g[0, 0].abs().max() == 0 and g[0, 3, :3].abs().sum() > 0


def test_contraction_bounds_the_state():
    """|a1|+|a2| < 1 and |a3|+|a4| < 1 for any input, so |h| <= (V + L) max|b| (each path
    length k carries total weight <= 1), even with near-1 decays and strong coupling."""
    torch.manual_seed(1)
    layer = create_model("ssm2d", d_model=8, d_state=4, coupling_init=0.99)
    with torch.no_grad():
        layer.dt1_proj.bias.fill_(-10.0)  # tiny Δ: a1, a4 -> 1, the hardest case
        layer.dt2_proj.bias.fill_(-10.0)
    x = torch.randn(1, 16, 300, 8)
    with torch.no_grad():
        a1, a2, a3, a4, b1, b2, _, _ = layer.coefficients(x)
        assert (a1.abs() + a2.abs()).max() < 1 and (a3.abs() + a4.abs()).max() < 1
        h1, h2 = ssm2d_scan(a1, a2, a3, a4, b1, b2, scan_method="sequential")
        bound = (16 + 300) * max(b1.abs().max(), b2.abs().max())
        assert torch.isfinite(h1).all() and max(h1.abs().max(), h2.abs().max()) <= bound


def test_learns_cross_variate_running_sum():
    """Target: variate 1 at time t = the sum over s <= t of variate 0 (needs both directions)."""
    torch.manual_seed(0)
    layer = create_model("ssm2d", d_model=8, d_state=8, dt_min=0.05, dt_max=0.5)
    inp, out = torch.nn.Linear(1, 8), torch.nn.Linear(8, 1)
    opt = torch.optim.Adam(list(layer.parameters()) + list(inp.parameters()) + list(out.parameters()), lr=2e-2)

    def batch():
        x = torch.randn(16, 2, 12, 1)
        return x, x[:, 0].cumsum(1) / 4

    x, y = batch()
    base = y.pow(2).mean().item()
    for _ in range(150):
        x, y = batch()
        pred = out(layer(inp(x))[0])[:, 1]
        loss = (pred - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * base, (loss.item(), base)
