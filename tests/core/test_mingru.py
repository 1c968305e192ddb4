"""minGRU / minLSTM: log-space Heinsen path against the sequential method, the log_g NaN pitfall (the core contract, parity with the step loop and streaming,
learning: tests/core/test_layer_contract.py)."""
import pytest
import torch

from ostinato.core.layers import mingru as mg

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.float64: dict(rtol=1e-9, atol=1e-9)}
CLASSES = {"mingru": (mg.MinGRU, mg.TestMinGRUConfig), "minlstm": (mg.MinLSTM, mg.TestMinLSTMConfig)}


def _layer(name, dtype, **kw):
    torch.manual_seed(0)
    cls, cfg = CLASSES[name]
    return cls(cfg(**kw)).to(dtype)


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
@pytest.mark.parametrize("L", [1, 7, 64, 257])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_state", [False, True])
def test_log_space_matches_sequential(name, L, dtype, with_state):
    m = _layer(name, dtype)
    gen = torch.Generator().manual_seed(L)
    x = torch.randn(2, L, 6, generator=gen, dtype=dtype, requires_grad=True)
    s0 = torch.rand(2, m.d_inner, generator=gen, dtype=dtype) if with_state else None
    y1, s1 = m(x, s0)
    m.cfg.method = "sequential"
    y2, s2 = m(x, s0)
    torch.testing.assert_close(y1, y2, **TOL[dtype])
    torch.testing.assert_close(s1, s2, **TOL[dtype])
    params = [x] + list(m.parameters())
    w = torch.randn(y1.shape, generator=gen, dtype=dtype)
    g1 = torch.autograd.grad((y1 * w).sum() + s1.sum(), params)
    g2 = torch.autograd.grad((y2 * w).sum() + s2.sum(), params)
    for a, b in zip(g1, g2):
        scale = b.abs().max().clamp(min=1.0)
        torch.testing.assert_close(a / scale, b / scale, **TOL[dtype])


def test_log_g_has_finite_gradients_for_negative_inputs():
    a = torch.tensor([-5.0, -0.7, -0.5, 0.0, 0.3, 4.0], requires_grad=True)
    v = mg.log_g(a)
    torch.testing.assert_close(v.exp(), mg.g(a))
    v.sum().backward()
    assert torch.isfinite(a.grad).all()
    # the naive where(log(a + 0.5)) form is the pitfall this guards against
    b = a.detach().clone().requires_grad_()
    torch.where(b >= 0, torch.log(b + 0.5), -torch.nn.functional.softplus(-b)).sum().backward()
    assert not torch.isfinite(b.grad).all()
