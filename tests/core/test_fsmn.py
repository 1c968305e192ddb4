"""FSMN (real, deep, complex): spec loop parity, official conv form, streaming, learning."""
import pytest
import torch
import torch.nn.functional as F

from ostinato.core import create_model
from ostinato.core.layers.fsmn import FSMN


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/core/conftest.py


def _tol(dtype):
    return dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=1e-11, rtol=1e-10)


def _loop(m: FSMN, x, state=None):
    """Spec: p_t = W2 relu(W1 x_t + b1); m_t = p_t + sum_k a_k p_{t-k}; y_t = x_t + m_t."""
    B, L, D = x.shape
    a = m.conv1.weight[:, 0, :, 0].flip(-1)  # (D, lorder): a_k = w[lorder-1-k]
    hist = list((state if state is not None else torch.zeros(B, m.lorder - 1, D, dtype=x.dtype)).unbind(1))
    ys = []
    for t in range(L):
        p = m.project(torch.relu(m.linear(x[:, t])))
        hist.append(p)
        mem = sum(a[:, k] * hist[-1 - k] for k in range(m.lorder))
        ys.append(x[:, t] + p + mem)
    return torch.stack(ys, 1), torch.stack(hist[len(hist) - (m.lorder - 1) :], 1) if m.lorder > 1 else None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("L", [1, 7, 64, 257])
@pytest.mark.parametrize("with_state", [False, True])
def test_fsmn_matches_loop(dtype, L, with_state):
    torch.manual_seed(L)
    m = FSMN(6, 6, lorder=5, hidden_size=10).to(dtype)
    x = torch.randn(2, L, 6, dtype=dtype, requires_grad=True)
    s0 = torch.randn(2, 4, 6, dtype=dtype) if with_state else None
    y, s = m(x, s0)
    y_ref, s_ref = _loop(m, x, s0)
    torch.testing.assert_close(y, y_ref, **_tol(dtype))
    torch.testing.assert_close(s, s_ref, **_tol(dtype))
    w = torch.randn_like(y)
    g = torch.autograd.grad((y * w).sum(), [x, m.conv1.weight, m.linear.weight])
    g_ref = torch.autograd.grad((y_ref * w).sum(), [x, m.conv1.weight, m.linear.weight])
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, **_tol(dtype))


def test_official_conv2d_form_and_lorder_1():
    """The module equals the official pad + Conv2d([lorder, 1]) formulation."""
    torch.manual_seed(0)
    m = FSMN(4, 4, lorder=20, hidden_size=8)
    x = torch.randn(3, 30, 4)
    p = m.project(F.relu(m.linear(x)))
    xp = p.unsqueeze(1).permute(0, 3, 2, 1)  # (B, D, L, 1)
    ref = x + (xp + m.conv1(F.pad(xp, [0, 0, m.lorder - 1, 0]))).permute(0, 3, 2, 1)[:, 0]
    torch.testing.assert_close(m(x)[0], ref)
    m1 = FSMN(4, 4, lorder=1, hidden_size=8)
    y, s = m1(x)
    assert s.shape == (3, 0, 4)
    torch.testing.assert_close(m1(x[:, 10:], s)[0], y[:, 10:])


@pytest.mark.parametrize("name,shape", [("fsmn", (2, 13, 6)), ("complex_fsmn", (2, 13, 6, 2))])
def test_streaming_step_and_split(name, shape):
    torch.manual_seed(1)
    m = create_model(name, d_model=6, d_hidden=9, lorder=4, n_layers=2).double()
    x = torch.randn(*shape, dtype=torch.float64)
    y, st = m(x)
    state = m.init_state(2, dtype=torch.float64)
    ys = []
    for t in range(shape[1]):
        y_t, state = m.step(x[:, t], state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y)
    y1, s1 = m(x[:, :5])
    y2, s2 = m(x[:, 5:], s1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y)
    flat = lambda s: torch.cat([t.flatten() for t in (s if isinstance(s[0], torch.Tensor) else sum(map(list, s), []))])
    torch.testing.assert_close(flat(s2), flat(st))


def test_complex_fsmn_is_complex_product_of_real_fsmns():
    torch.manual_seed(2)
    m = create_model("complex_fsmn", d_model=5, d_hidden=7, lorder=3, n_layers=2).double()
    x = torch.randn(2, 11, 5, 2, dtype=torch.float64)
    re, im = x[..., 0], x[..., 1]
    for i in (1, 2):
        f_re, f_im = getattr(m, f"fsmn_re_L{i}"), getattr(m, f"fsmn_im_L{i}")
        re, im = f_re(re)[0] - f_im(im)[0], f_re(im)[0] + f_im(re)[0]
    y, _ = m(x)
    torch.testing.assert_close(y, torch.stack([re, im], -1))
    names = {k.split(".")[0] for k in m.state_dict()}
    assert names == {"fsmn_re_L1", "fsmn_im_L1", "fsmn_re_L2", "fsmn_im_L2"}
    sd = m.state_dict()
    assert sd["fsmn_re_L1.conv1.weight"].shape == (5, 1, 3, 1) and "fsmn_re_L1.project.bias" not in sd


def test_fsmn_learns_delayed_copy():
    """y_t = x_t + x_{t-3}: the memory taps must find the delay."""
    torch.manual_seed(0)
    m = create_model("fsmn", d_model=4, d_hidden=16, lorder=6)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(300):
        x = torch.randn(16, 24, 4)
        target = x + F.pad(x, (0, 0, 3, 0))[:, :24]
        loss = (m(x)[0] - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1, loss.item()
