"""LRU: associative-scan forward against the step loop, streaming, init, learning."""
import pytest
import torch

from ostinato.core.errors import ConfigError
from ostinato.core.layers import lru as lru_mod
from ostinato.core.registry import create_model

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.float64: dict(rtol=1e-9, atol=1e-9)}


def _layer(dtype, **kw):
    torch.manual_seed(0)
    return lru_mod.LRU(lru_mod.TestLRUConfig(**kw)).to(dtype)


def _loop(m, x, state):
    ys = []
    for t in range(x.shape[1]):
        y, state = m.step(x[:, t], state)
        ys.append(y)
    return torch.stack(ys, 1), state


@pytest.mark.parametrize("method", ["associative", "chunked"])
@pytest.mark.parametrize("L", [1, 7, 64, 257])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_state", [False, True])
def test_parallel_matches_step_loop(method, L, dtype, with_state):
    m = _layer(dtype, scan_method=method)
    gen = torch.Generator().manual_seed(L)
    x = torch.randn(2, L, 6, generator=gen, dtype=dtype, requires_grad=True)
    s0 = m.init_state(2, dtype=dtype)
    if with_state:
        s0 = torch.randn(s0.shape, generator=gen, dtype=s0.dtype)
    y1, s1 = m(x, s0 if with_state else None)
    y2, s2 = _loop(m, x, s0)
    torch.testing.assert_close(y1, y2, **TOL[dtype])
    torch.testing.assert_close(s1, s2, **TOL[dtype])
    w = torch.randn(y1.shape, generator=gen, dtype=dtype)
    params = [x] + list(m.parameters())
    g1 = torch.autograd.grad((y1 * w).sum() + s1.abs().sum(), params)
    g2 = torch.autograd.grad((y2 * w).sum() + s2.abs().sum(), params)
    for a, b in zip(g1, g2):
        scale = b.abs().max().clamp(min=1.0)
        torch.testing.assert_close(a / scale, b / scale, **TOL[dtype])


def test_split_forward_equals_full():
    m = _layer(torch.float64)
    x = torch.randn(2, 40, 6, dtype=torch.float64)
    y, s = m(x)
    for k in (1, 13, 39):
        y1, s1 = m(x[:, :k])
        y2, s2 = m(x[:, k:], s1)
        torch.testing.assert_close(torch.cat([y1, y2], 1), y)
        torch.testing.assert_close(s2, s)


def test_ring_init_and_normalisation():
    torch.manual_seed(0)
    m = create_model("lru", d_model=8, d_state=2000, r_min=0.5, r_max=0.9, max_phase=0.3)
    lam = m.lam().detach()
    r = lam.abs()
    assert r.min() >= 0.5 - 1e-5 and r.max() <= 0.9 + 1e-5
    # |λ|² is uniform on [r_min², r_max²]: its mean is the midpoint
    assert abs((r**2).mean().item() - (0.25 + 0.81) / 2) < 0.02
    phase = lam.angle()
    assert phase.min() >= 0 and phase.max() <= 0.3 + 1e-6
    torch.testing.assert_close(torch.exp(m.gamma_log).detach(), torch.sqrt(1 - r**2), rtol=1e-4, atol=1e-5)
    assert abs(m.B_re.std().item() - (1 / 16) ** 0.5) < 0.02  # N(0, 1/(2H)) with H = 8
    with pytest.raises(ConfigError):
        create_model("lru", r_min=0.9, r_max=0.5)


def test_learns_running_sum():
    torch.manual_seed(0)
    x = torch.randn(32, 24, 1)
    y = torch.cumsum(x, 1) * 0.2
    net = torch.nn.ModuleDict({"i": torch.nn.Linear(1, 16), "m": lru_mod.LRU(lru_mod.LRUConfig(d_model=16, d_state=16, r_min=0.5)), "o": torch.nn.Linear(16, 1)})
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        loss = torch.nn.functional.mse_loss(net["o"](net["m"](net["i"](x))[0]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])
