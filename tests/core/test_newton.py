"""ParaRNN Newton solve: doubling reduction vs loop, Newton vs the sequential loop (outputs,
final state, gradients through the implicit-function adjoint), Jacobians, streaming, learning."""
import pytest
import torch

from ostinato.core import create_model
from ostinato.core.layers.newton import (
    ParaGRUCell,
    ParaLSTMCell,
    autograd_jacobian,
    linear_recurrence,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/core/conftest.py


def _tol(dtype):
    return dict(atol=5e-5, rtol=5e-4) if dtype == torch.float32 else dict(atol=1e-9, rtol=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T", [1, 7, 64, 257])
@pytest.mark.parametrize("G,k", [(5, 1), (3, 2), (1, 4)])
def test_doubling_matches_loop(dtype, T, G, k):
    g = torch.Generator().manual_seed(T * 10 + k)
    A = torch.randn(2, T, G, k, k, generator=g, dtype=dtype) * (0.9 / k)
    b = torch.randn(2, T, G * k, generator=g, dtype=dtype)
    torch.testing.assert_close(linear_recurrence(A, b, "doubling"), linear_recurrence(A, b, "sequential"), **_tol(dtype))


@pytest.mark.parametrize("cell_cls", [ParaGRUCell, ParaLSTMCell])
def test_analytic_jacobian_equals_autograd(cell_cls):
    torch.manual_seed(0)
    cell = cell_cls(3, 5).double()
    h = torch.randn(2, 7, cell.d_state, dtype=torch.float64)
    xp = cell.project(torch.randn(2, 7, 3, dtype=torch.float64)).detach()
    with torch.no_grad():
        torch.testing.assert_close(cell.jacobian(h, xp), autograd_jacobian(cell.f, h, xp, cell.block))
    full = torch.autograd.functional.jacobian(lambda hh: cell.f(hh, xp[0, 0]), h[0, 0])  # dense (S, S)
    blocks = cell.jacobian(h[0, 0], xp[0, 0])
    torch.testing.assert_close(torch.block_diag(*blocks), full)  # really block-diagonal


def _run(name, dtype, T, with_state, H=4, **kw):
    torch.manual_seed(T)
    newton = create_model(name, d_model=3, d_hidden=H, **kw).to(dtype)
    seq = create_model(name, d_model=3, d_hidden=H, mode="sequential").to(dtype)
    seq.load_state_dict(newton.state_dict())
    x = torch.randn(2, T, 3, dtype=dtype, requires_grad=True)
    state = None
    if with_state:
        s = newton.init_state(2, dtype=dtype)
        state = tuple(torch.randn_like(t).requires_grad_() for t in s) if isinstance(s, tuple) else torch.randn_like(s).requires_grad_()
    return newton, seq, x, state


@pytest.mark.parametrize("name", ["pararnn_gru", "pararnn_lstm", "pararnn_gru_dense"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T", [1, 7, 64, 257])
@pytest.mark.parametrize("with_state", [False, True])
def test_newton_matches_sequential(name, dtype, T, with_state):
    newton, seq, x, state = _run(name, dtype, T, with_state, max_its=30)
    y, s = newton(x, state)
    y_ref, s_ref = seq(x, state)
    tol = _tol(dtype)
    torch.testing.assert_close(y, y_ref, **tol)
    flat = lambda st: torch.cat([t.flatten() for t in (st if isinstance(st, tuple) else (st,))])
    torch.testing.assert_close(flat(s), flat(s_ref), **tol)
    assert newton.last_converged and not newton.last_fallback  # the Newton path, not the fallback loop
    assert newton.last_residual <= (1e-5 if dtype == torch.float32 else 1e-10) * max(1.0, y.abs().max().item())
    w = torch.randn_like(y)
    ws = torch.randn_like(flat(s))
    inputs = [x] + (list(state) if isinstance(state, tuple) else [state] if state is not None else [])
    g = torch.autograd.grad((y * w).sum() + (flat(s) * ws).sum(), inputs + list(newton.parameters()))
    g_ref = torch.autograd.grad((y_ref * w).sum() + (flat(s_ref) * ws).sum(), inputs + list(seq.parameters()))
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, **tol)


def test_converges_in_few_iterations():
    newton, _, x, _ = _run("pararnn_gru", torch.float64, 257, False, H=8, max_its=50)
    with torch.no_grad():
        newton(x)
    assert newton.last_iters <= 8, newton.last_iters  # quadratic convergence, not T iterations


@pytest.mark.parametrize("name", ["pararnn_gru", "pararnn_lstm"])
def test_autograd_jacobian_mode_and_streaming(name):
    newton, seq, x, _ = _run(name, torch.float64, 20, False, jacobian="autograd", max_its=30)
    y, s = newton(x)
    torch.testing.assert_close(y, seq(x)[0])
    y1, s1 = newton(x[:, :8])
    y2, s2 = newton(x[:, 8:], s1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y)
    state, ys = newton.init_state(2, dtype=torch.float64), []
    for t in range(20):
        y_t, state = newton.step(x[:, t], state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y)


def test_pararnn_gru_learns_running_sum():
    torch.manual_seed(0)
    m = create_model("pararnn_gru", d_model=1, d_hidden=16)
    head = torch.nn.Linear(16, 1)
    opt = torch.optim.Adam(list(m.parameters()) + list(head.parameters()), lr=1e-2)
    for _ in range(150):
        x = torch.randn(16, 12, 1)
        loss = (head(m(x)[0]) - x.cumsum(1) / 4).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1, loss.item()


def _hard_gru(**kw):
    """ParaGRU far from contraction (issue 31): |a| up to 3, T = 512; 6 Newton steps do not converge."""
    torch.manual_seed(0)
    m = create_model("pararnn_gru", d_model=8, d_hidden=16, **kw)
    with torch.no_grad():
        m.cell.a.uniform_(-3, 3)
    return m, torch.randn(2, 512, 8, requires_grad=True)


def test_solve_records_convergence():
    newton, _, x, _ = _run("pararnn_gru", torch.float32, 257, False, H=8)
    newton(x)
    assert newton.last_converged and not newton.last_fallback
    assert 1 <= newton.last_iters <= 6 and newton.last_residual <= 1e-5


def test_non_contractive_falls_back_to_the_loop():
    newton, x = _hard_gru()
    seq, _ = _hard_gru(mode="sequential")
    with pytest.warns(RuntimeWarning, match="did not converge"):
        y, s = newton(x)
    assert not newton.last_converged and newton.last_fallback
    assert newton.last_iters == 6 and newton.last_residual > 1.0  # the unconverged iterate is far off
    y_ref, s_ref = seq(x)
    assert y.abs().max() <= 1.0  # a GRU state stays in [-1, 1]; the unconverged iterate does not
    assert torch.equal(y, y_ref) and torch.equal(s, s_ref)
    w = torch.randn_like(y)
    g = torch.autograd.grad((y * w).sum(), [x, *newton.parameters()])
    g_ref = torch.autograd.grad((y_ref * w).sum(), [x, *seq.parameters()])
    for a, b in zip(g, g_ref):
        assert torch.equal(a, b)


def test_non_contractive_raises_when_asked():
    from ostinato.core.layers.newton import NewtonNotConverged

    newton, x = _hard_gru(on_no_converge="raise")
    with pytest.raises(NewtonNotConverged, match="residual .* after 6 iterations"):
        newton(x)
    assert newton.last_residual > 1.0
