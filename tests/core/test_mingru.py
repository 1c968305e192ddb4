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
    # fp32: the log-space scan's cumsum loses precision with L (module doc): at L=257 a gate-bias gradient is
    # up to 1.1e-3 (relative to the largest entry) off, where the fp32 loop is 2e-7 off an fp64 loop
    gtol = TOL[dtype] if dtype == torch.float64 else dict(rtol=1e-4 * max(1, L / 16), atol=1e-4 * max(1, L / 16))
    for a, b in zip(g1, g2):
        scale = b.abs().max().clamp(min=1.0)
        torch.testing.assert_close(a / scale, b / scale, **gtol)


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


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_projections_as_the_authors_code(name):
    """BorealisAI/minRNNs: biased Linear to [h~, gates] and a biased Linear out even at expansion 1;
    bias=False, out_proj=False: lucidrains/minGRU-pytorch (no biases, no output map at expansion 1)."""
    m = _layer(name, torch.float64, expansion=1.0)
    assert m.to_gates.bias is not None and isinstance(m.to_out, torch.nn.Linear) and m.to_out.bias is not None
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    gates = x @ m.to_gates.weight.T + m.to_gates.bias  # (B, L, G*E): the equations by hand, with biases
    h, hs = torch.zeros(2, m.d_inner, dtype=torch.float64), []
    for t in range(5):
        if name == "mingru":
            a, k = gates[:, t].chunk(2, -1)
            z = torch.sigmoid(k)
            h = (1 - z) * h + z * mg.g(a)
        else:
            a, kf, ki = gates[:, t].chunk(3, -1)
            f, i = torch.sigmoid(kf), torch.sigmoid(ki)
            h = f / (f + i) * h + i / (f + i) * mg.g(a)
        hs.append(h)
    ref = torch.stack(hs, 1) @ m.to_out.weight.T + m.to_out.bias
    torch.testing.assert_close(m(x)[0], ref, **TOL[torch.float64])
    lite = _layer(name, torch.float64, expansion=1.0, bias=False, out_proj=False)
    assert lite.to_gates.bias is None and isinstance(lite.to_out, torch.nn.Identity)
    assert _layer(name, torch.float64, bias=False, out_proj=False).to_out.bias is None  # expansion 1.5: a map, no bias
