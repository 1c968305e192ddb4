"""ConvGRU and the convolutional minGRU: cell equations, scan = loop, streaming, causality."""
import pytest
import torch
import torch.nn.functional as F

from ostinato.core import create_model
from ostinato.core.layers.convgru import ConvGRUCell
from ostinato.core.layers.convmingru import ConvMinGRUCell

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/core/conftest.py


def _ref_gru(cell: ConvGRUCell, x, h):
    """Ballas et al.'s equations with separate W*x and U*h convolutions (the same weights)."""
    C, P = x.shape[1], cell.d_hidden
    Wzr, bzr, Wh, bh = cell.conv_zr.weight, cell.conv_zr.bias, cell.conv_h.weight, cell.conv_h.bias
    pad = Wzr.shape[-1] // 2
    zr = F.conv2d(x, Wzr[:, :C], bzr, padding=pad) + F.conv2d(h, Wzr[:, C:], padding=pad)
    z, r = torch.sigmoid(zr[:, :P]), torch.sigmoid(zr[:, P:])
    cand = torch.tanh(F.conv2d(x, Wh[:, :C], bh, padding=pad) + F.conv2d(r * h, Wh[:, C:], padding=pad))
    return (1 - z) * h + z * cand


def _ref_mingru(cell: ConvMinGRUCell, x, h):
    """h_t = (1 - z) h + z g(a) with [k, a] = conv(x), z = sigmoid(k), written out."""
    out = F.conv2d(x, cell.conv.weight, cell.conv.bias, padding=cell.conv.weight.shape[-1] // 2)
    k, a = out[:, : cell.d_hidden], out[:, cell.d_hidden:]
    z = torch.sigmoid(k)
    g = torch.where(a >= 0, a + 0.5, torch.sigmoid(a))
    return (1 - z) * h + z * g


@pytest.mark.parametrize("kind", ["gru", "mingru"])
def test_cell_equations(kind):
    torch.manual_seed(0)
    cell = (ConvGRUCell(2, 3) if kind == "gru" else ConvMinGRUCell(2, 3, scan_method="sequential")).double()
    ref = _ref_gru if kind == "gru" else _ref_mingru
    x = torch.randn(2, 6, 2, 4, 5, dtype=torch.float64)
    h0 = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    y, h = cell(x, h0)
    r, ys = h0, []
    for t in range(6):
        r = ref(cell, x[:, t], r)
        ys.append(r)
    assert torch.allclose(y, torch.stack(ys, 1), atol=1e-12) and torch.allclose(h, r, atol=1e-12)


@pytest.mark.parametrize("method", ["associative", "chunked", "log", "auto"])
def test_mingru_scan_equals_loop_with_gradients(method):
    torch.manual_seed(1)
    seq = ConvMinGRUCell(2, 3, scan_method="sequential").double()
    par = ConvMinGRUCell(2, 3, scan_method=method).double()
    par.load_state_dict(seq.state_dict())
    x = torch.randn(2, 37, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    outs = []
    for cell in (seq, par):
        y, h = cell(x, h0)
        (gx,) = torch.autograd.grad((y * torch.cos(y)).sum() + h.sum(), x)
        outs.append((y, h, gx, torch.autograd.grad((cell(x, h0)[0] ** 2).sum(), cell.conv.weight)[0]))
    for a, b in zip(*outs):
        assert torch.allclose(a, b, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("name", ["convgru", "convmingru"])
@pytest.mark.parametrize("residual", [False, True])
def test_stack_stream_step_and_causality(name, residual):
    torch.manual_seed(2)
    m = create_model(name, d_input=4, d_hidden=4, n_layers=2, residual=residual).double().eval()
    x = torch.randn(2, 9, 4, 5, 6, dtype=torch.float64)
    y, state = m(x)
    assert y.shape == (2, 9, 4, 5, 6) and len(state) == 2
    y1, s1 = m(x[:, :4])  # chunked streaming
    y2, s2 = m(x[:, 4:], s1)
    assert torch.allclose(torch.cat([y1, y2], 1), y, atol=1e-12)
    st, steps = None, []  # step mode, one frame at a time
    for t in range(9):
        yt, st = m.step(x[:, t], st)
        steps.append(yt)
    assert torch.allclose(torch.stack(steps, 1), y, atol=1e-12)
    for a, b in zip(st, state):
        assert torch.allclose(a, b, atol=1e-12)
    init = m.init_state(2, dtype=torch.float64, size=(5, 6))
    assert [s.shape for s in init] == [s.shape for s in state]
    x2 = x.clone()
    x2[:, 5:] += 1.0  # the future changes, the past outputs do not
    y_b, _ = m(x2)
    assert torch.allclose(y_b[:, :5], y[:, :5], atol=1e-12) and not torch.allclose(y_b[:, 5:], y[:, 5:])


def test_bad_config_is_one_line():
    from ostinato.core.errors import ConfigError

    with pytest.raises(ConfigError, match="odd kernel_size"):
        create_model("convgru", kernel_size=4)
    with pytest.raises(ConfigError, match="residual=true needs d_input == d_hidden"):
        create_model("convmingru", d_input=2, d_hidden=3, residual=True)
