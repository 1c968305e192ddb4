"""S4D: FFT convolution and scan modes against the recurrent step (the loop), streaming, learning."""
import pytest
import torch

from ostinato.core.layers import s4d as s4d_mod
from ostinato.core.optim import param_groups
from ostinato.core.registry import create_model

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.float64: dict(rtol=1e-9, atol=1e-9)}


def _layer(dtype, **kw):
    torch.manual_seed(0)
    return s4d_mod.S4D(s4d_mod.TestS4DConfig(**kw)).to(dtype)


def _loop(m, x, state):
    ys = []
    for t in range(x.shape[1]):
        y, state = m.step(x[:, t], state)
        ys.append(y)
    return torch.stack(ys, 1), state


@pytest.mark.parametrize("mode", ["fft", "scan"])
@pytest.mark.parametrize("L", [1, 7, 64, 257])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_state", [False, True])
def test_parallel_matches_step_loop(mode, L, dtype, with_state):
    m = _layer(dtype, mode=mode)
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


def test_kernel_matches_impulse_response_and_is_causal():
    m = _layer(torch.float64)
    L = 16
    K = m.kernel(L)  # (H, L)
    # response of the bare SSM (no D, no output map) to a unit impulse is the kernel
    dtA, A_bar, B_bar, C = m._ssm()
    x = torch.zeros_like(B_bar)
    out = []
    for t in range(L):
        x = A_bar * x + B_bar * (1.0 if t == 0 else 0.0)
        out.append(2 * (C * x).sum(-1).real)
    torch.testing.assert_close(torch.stack(out, -1), K)
    # a change at time t leaves outputs before t untouched (FFT size 2L: no circular wrap)
    u = torch.randn(1, L, 6, dtype=torch.float64)
    v = u.clone()
    v[:, 10:] += 1.0
    torch.testing.assert_close(m(u)[0][:, :10], m(v)[0][:, :10])


def test_init_and_optimizer_hints():
    m = create_model("s4d", d_model=4, d_state=8, ssm_lr=2e-3)
    torch.testing.assert_close(torch.exp(m.log_A_real), torch.full((4, 4), 0.5))
    torch.testing.assert_close(m.A_imag[0], torch.pi * torch.arange(4.0))
    dt = torch.exp(m.log_dt)
    assert dt.min() >= 1e-3 - 1e-9 and dt.max() <= 0.1 + 1e-7
    for name in ("log_dt", "log_A_real", "A_imag"):
        assert getattr(m, name)._optim == {"weight_decay": 0.0, "lr": 2e-3}
    groups = param_groups(m, weight_decay=0.1)
    assert any(g.get("lr") == 2e-3 and g["weight_decay"] == 0.0 and len(g["params"]) == 3 for g in groups)
    frozen = create_model("s4d", d_model=4, d_state=8, ssm_lr=0.0)
    assert "log_dt" in dict(frozen.named_buffers()) and "log_dt" not in dict(frozen.named_parameters())


def test_learns_running_sum():
    torch.manual_seed(0)
    x = torch.randn(32, 24, 1)
    y = torch.cumsum(x, 1) * 0.2
    net = torch.nn.ModuleDict({"i": torch.nn.Linear(1, 16), "m": s4d_mod.S4D(s4d_mod.S4DConfig(d_model=16, d_state=16, ssm_lr=None)), "o": torch.nn.Linear(16, 1)})
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        loss = torch.nn.functional.mse_loss(net["o"](net["m"](net["i"](x))[0]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])
