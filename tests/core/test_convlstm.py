"""ConvLSTM: the cell equations, streaming, residual stack, init, learning (small H, W)."""
import pytest
import torch
import torch.nn.functional as F

from ostinato.core import create_model
from ostinato.core.layers.convlstm import ConvLSTMCell, SpatialResidual


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/core/conftest.py


def _ref_cell(cell: ConvLSTMCell, x, h, c):
    """Gates from separate x- and h-convolutions (same weights), i, f, o, g order."""
    C = x.shape[1]
    W, b = cell.conv.weight, cell.conv.bias
    pad = W.shape[-1] // 2
    z = F.conv2d(x, W[:, :C], b, padding=pad) + F.conv2d(h, W[:, C:], padding=pad)
    P = cell.d_hidden
    i, f, o, g = (z[:, k * P : (k + 1) * P] for k in range(4))
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("L", [1, 7, 64])
@pytest.mark.parametrize("with_state", [False, True])
def test_matches_reference_cell(dtype, L, with_state):
    torch.manual_seed(L)
    cell = ConvLSTMCell(2, 3, kernel_size=3).to(dtype)
    x = torch.randn(2, L, 2, 4, 5, dtype=dtype, requires_grad=True)
    h0 = (torch.randn(2, 3, 4, 5, dtype=dtype), torch.randn(2, 3, 4, 5, dtype=dtype)) if with_state else None
    y, (h, c) = cell(x, h0)
    rh, rc = h0 if with_state else (torch.zeros(2, 3, 4, 5, dtype=dtype), torch.zeros(2, 3, 4, 5, dtype=dtype))
    ys = []
    for t in range(L):
        rh, rc = _ref_cell(cell, x[:, t], rh, rc)
        ys.append(rh)
    y_ref = torch.stack(ys, 1)
    tol = dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else {}
    torch.testing.assert_close(y, y_ref, **tol)
    torch.testing.assert_close(c, rc, **tol)
    w = torch.randn_like(y)
    g1 = torch.autograd.grad((y * w).sum(), [x, cell.conv.weight])
    g2 = torch.autograd.grad((y_ref * w).sum(), [x, cell.conv.weight])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("residual", [False, True])
def test_stack_streaming(residual):
    torch.manual_seed(0)
    m = create_model("convlstm", d_input=3, d_hidden=3, n_layers=2, residual=residual).double().eval()
    x = torch.randn(2, 9, 3, 4, 4, dtype=torch.float64)
    y, st = m(x)
    state = m.init_state(2, dtype=torch.float64, size=(4, 4))
    ys = []
    for t in range(9):
        y_t, state = m.step(x[:, t], state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y)
    y1, s1 = m(x[:, :4])
    y2, s2 = m(x[:, 4:], s1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y)
    for (a, b), (c, d) in zip(s2, st):
        torch.testing.assert_close(a, c)
        torch.testing.assert_close(b, d)


def test_init_options():
    torch.manual_seed(0)
    cell = ConvLSTMCell(4, 8, init="xavier", forget_bias=1.0)
    b = cell.conv.bias.detach()
    assert torch.equal(b[8:16], torch.ones(8)) and b[:8].abs().max() == 0 and b[16:].abs().max() == 0
    he = ConvLSTMCell(16, 48, kernel_size=5, init="he", bias=False)
    fan_in = (16 + 48) * 25
    assert he.conv.bias is None
    assert abs(he.conv.weight.std().item() / (2 / fan_in) ** 0.5 - 1) < 0.05
    assert he.conv.weight.abs().max() <= 2 * (2 / fan_in) ** 0.5 / 0.8796 + 1e-6


def test_spatial_residual_dropout_shared_over_time():
    torch.manual_seed(0)

    class Ident(torch.nn.Module):
        def forward(self, x, state=None):
            return x, state

    layer = SpatialResidual(Ident(), 4, dropout=0.5, use_norm=False, skip=False).train()
    y, _ = layer(torch.ones(2, 5, 4, 3, 3))
    zero = y == 0
    assert zero.any() and (zero == zero[:, :1]).all()


def test_learns_delayed_copy():
    """y_t = x_{t-1} per pixel: the cell has to hold one frame."""
    torch.manual_seed(0)
    m = create_model("convlstm", d_input=1, d_hidden=8, kernel_size=3)
    head = torch.nn.Conv2d(8, 1, 1)
    opt = torch.optim.Adam(list(m.parameters()) + list(head.parameters()), lr=1e-2)
    for _ in range(120):
        x = torch.rand(8, 6, 1, 6, 6).round()
        y, _ = m(x)
        pred = head(y[:, 1:].flatten(0, 1)).view(8, 5, 1, 6, 6)
        loss = F.binary_cross_entropy_with_logits(pred, x[:, :-1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2, loss.item()
