"""S5: associative-scan forward against the step loop (ZOH, bilinear, bidirectional), init, learning."""
import pytest
import torch

from ostinato.core.errors import ConfigError
from ostinato.core.layers import s5 as s5_mod
from ostinato.core.layers.hippo import make_dplr_hippo, make_hippo
from ostinato.core.registry import create_model

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.float64: dict(rtol=1e-9, atol=1e-9)}


def _layer(dtype, **kw):
    torch.manual_seed(0)
    return s5_mod.S5(s5_mod.TestS5Config(**kw)).to(dtype)


def _loop(m, x, state):
    ys = []
    for t in range(x.shape[1]):
        y, state = m.step(x[:, t], state)
        ys.append(y)
    return torch.stack(ys, 1), state


@pytest.mark.parametrize("disc", ["zoh", "bilinear"])
@pytest.mark.parametrize("L", [1, 7, 64, 257])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_state", [False, True])
def test_parallel_matches_step_loop(disc, L, dtype, with_state):
    m = _layer(dtype, discretization=disc, activation="half_glu1")
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


@pytest.mark.parametrize("method", ["associative", "chunked", "sequential"])
def test_bidirectional_matches_two_loops(method):
    m = _layer(torch.float64, bidirectional=True, scan_method=method)
    x = torch.randn(2, 29, 6, dtype=torch.float64)
    y, s = m(x)
    assert s is None
    lam, B_bar, C = m.discrete()
    P = m.P

    def run(seq):
        h, out = torch.zeros(2, P, dtype=lam.dtype), []
        for t in range(seq.shape[1]):
            h = lam * h + seq[:, t].to(lam.dtype) @ B_bar.T
            out.append(h)
        return torch.stack(out, 1)

    xf, xb = run(x), run(x.flip(1)).flip(1)
    ref = 2 * (xf @ C[:, :P].T).real + 2 * (xb @ C[:, P:].T).real + m.D * x
    torch.testing.assert_close(y, ref)
    with pytest.raises(ConfigError, match="no causal step"):
        m.step(x[:, 0])
    with pytest.raises(ConfigError, match="no entering state"):
        m(x, m.init_state(2, dtype=torch.float64))


def test_split_forward_equals_full():
    m = _layer(torch.float64)
    x = torch.randn(2, 40, 6, dtype=torch.float64)
    y, s = m(x)
    for k in (1, 13, 39):
        y1, s1 = m(x[:, :k])
        y2, s2 = m(x[:, k:], s1)
        torch.testing.assert_close(torch.cat([y1, y2], 1), y)
        torch.testing.assert_close(s2, s)


def test_hippo_dplr_diagonalises_the_normal_part():
    N = 8
    lam, _, B_v, V, B = make_dplr_hippo(N)
    A = make_hippo(N)
    p = torch.sqrt(torch.arange(N, dtype=torch.float64) + 0.5)
    S = (A + p[:, None] * p[None, :]).to(torch.complex128)
    torch.testing.assert_close(V @ torch.diag(lam) @ V.conj().T, S)
    torch.testing.assert_close(V.conj().T @ V, torch.eye(N, dtype=torch.complex128))
    torch.testing.assert_close(lam.real, torch.full((N,), -0.5, dtype=torch.float64))
    im = torch.sort(lam.imag).values
    torch.testing.assert_close(im, -im.flip(0))  # conjugate pairs
    torch.testing.assert_close(V.conj().T @ B.to(torch.complex128), B_v)


def test_init_conj_sym_blocks_and_hints():
    m = create_model("s5", d_model=4, d_state=16, blocks=2, ssm_lr=1e-3)
    assert m.P == 8  # conj_sym halves each block of 8
    lam, _, _, _, _ = make_dplr_hippo(8)
    torch.testing.assert_close(m.Lambda_im.double(), lam.imag[:4].repeat(2))
    lam_bar, _, _ = m.discrete()
    assert (lam_bar.abs() < 1).all()
    for p in (m.Lambda_re, m.Lambda_im, m.B, m.log_step):
        assert p._optim == {"weight_decay": 0.0, "lr": 1e-3}
    with pytest.raises(ConfigError):
        create_model("s5", d_state=10, blocks=3)


def test_learns_running_sum():
    torch.manual_seed(0)
    x = torch.randn(32, 24, 1)
    y = torch.cumsum(x, 1) * 0.2
    net = torch.nn.ModuleDict({"i": torch.nn.Linear(1, 16), "m": s5_mod.S5(s5_mod.S5Config(d_model=16, d_state=16)), "o": torch.nn.Linear(16, 1)})
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        loss = torch.nn.functional.mse_loss(net["o"](net["m"](net["i"](x))[0]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])
