"""LSTM / GRU wrappers: cell equations (spec loop), batch-first state, streaming, lengths, learning."""
import pytest
import torch

from ostinato.core import ConfigError, create_model
from ostinato.core.layers import rnn as _rnn  # noqa: F401  (registers "lstm" and "gru")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/core/conftest.py


def _tol(dtype):
    return dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else {}


def _loop(m, x, state):
    """LSTM / GRU equations (PyTorch's gate layout) with the module's weights, layer by layer."""
    r = m.rnn
    lstm = isinstance(r, torch.nn.LSTM)
    out = x
    finals = []
    for layer in range(r.num_layers):
        W, U = getattr(r, f"weight_ih_l{layer}"), getattr(r, f"weight_hh_l{layer}")
        b1, b2 = getattr(r, f"bias_ih_l{layer}"), getattr(r, f"bias_hh_l{layer}")
        if lstm:
            h, c = state[0][:, layer], state[1][:, layer]
        else:
            h = state[:, layer]
        ys = []
        for t in range(out.shape[1]):
            gi, gh = out[:, t] @ W.T + b1, h @ U.T + b2
            if lstm:
                i, f, g, o = (gi + gh).chunk(4, -1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            else:
                ir, iz, in_ = gi.chunk(3, -1)
                hr, hz, hn = gh.chunk(3, -1)
                rr, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
                n = torch.tanh(in_ + rr * hn)
                h = (1 - z) * n + z * h
            ys.append(h)
        out = torch.stack(ys, 1)
        finals.append((h, c) if lstm else h)
    if lstm:
        return out, (torch.stack([f[0] for f in finals], 1), torch.stack([f[1] for f in finals], 1))
    return out, torch.stack(finals, 1)


@pytest.mark.parametrize("name", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("L", [1, 7, 64, 257])
@pytest.mark.parametrize("with_state", [False, True])
def test_matches_equations(name, dtype, L, with_state):
    torch.manual_seed(L)
    m = create_model(name, d_model=3, d_hidden=5, n_layers=2).to(dtype)
    x = torch.randn(2, L, 3, dtype=dtype, requires_grad=True)
    s0 = m.init_state(2, dtype=dtype)
    if with_state:
        s0 = tuple(torch.randn_like(s) for s in s0) if name == "lstm" else torch.randn_like(s0)
    y, st = m(x, s0 if with_state else None)
    y_ref, st_ref = _loop(m, x, s0)
    torch.testing.assert_close(y, y_ref, **_tol(dtype))
    for a, b in zip(st if name == "lstm" else [st], st_ref if name == "lstm" else [st_ref]):
        assert a.shape == (2, 2, 5)
        torch.testing.assert_close(a, b, **_tol(dtype))
    w = torch.randn_like(y)
    params = [x] + list(m.parameters())
    for a, b in zip(torch.autograd.grad((y * w).sum(), params), torch.autograd.grad((y_ref * w).sum(), params)):
        torch.testing.assert_close(a, b, **_tol(dtype))


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_step_split_and_lengths(name):
    torch.manual_seed(0)
    m = create_model(name, d_model=3, d_hidden=4, n_layers=2).double()
    x = torch.randn(3, 10, 3, dtype=torch.float64)
    y, st = m(x)
    state, ys = m.init_state(3, dtype=torch.float64), []
    for t in range(10):
        y_t, state = m.step(x[:, t], state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y)
    y1, s1 = m(x[:, :4])
    y2, s2 = m(x[:, 4:], s1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y)
    flat = lambda s: torch.cat([t.flatten() for t in (s if isinstance(s, tuple) else (s,))])
    torch.testing.assert_close(flat(s2), flat(st))
    lengths = torch.tensor([10, 4, 7])
    y_l, s_l = m(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        y_b, s_b = m(x[b : b + 1, :n])
        torch.testing.assert_close(y_l[b, :n], y_b[0])
        assert y_l[b, n:].abs().max() == 0 if n < 10 else True
        got = tuple(s[b : b + 1] for s in s_l) if name == "lstm" else s_l[b : b + 1]
        torch.testing.assert_close(flat(got), flat(s_b))


def test_proj_lstm_and_errors():
    m = create_model("lstm", d_model=3, d_hidden=6, proj_size=2)
    y, (h, c) = m(torch.randn(2, 5, 3))
    assert y.shape == (2, 5, 2) and h.shape == (2, 1, 2) and c.shape == (2, 1, 6)
    with pytest.raises(ConfigError):
        create_model("gru", d_model=3, d_hidden=6, proj_size=2)
    with pytest.raises(ConfigError):
        create_model("lstm", d_model=3, d_hidden=4, proj_size=4)


def test_gru_learns_running_sum():
    torch.manual_seed(0)
    m = create_model("gru", d_model=1, d_hidden=16)
    head = torch.nn.Linear(16, 1)
    opt = torch.optim.Adam(list(m.parameters()) + list(head.parameters()), lr=1e-2)
    for _ in range(200):
        x = torch.randn(16, 12, 1)
        loss = (head(m(x)[0]) - x.cumsum(1) / 4).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05, loss.item()
