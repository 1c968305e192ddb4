"""ConvS5: HiPPO init, parallel scan vs sequential loop vs an independent reference, step
mode with cached discretisation, streaming, learning. Small H, W and channels throughout."""
import importlib

import pytest
import torch
import torch.nn.functional as F

from ostinato.core import create_model
from ostinato.core.layers.convssm import ConvS5Config, ConvS5SSM, _hippo_legs_diag

# every scan the core offers for complex coefficients (the log scan needs real a > 0)
_OFFERED = getattr(importlib.import_module("ostinato.core.scan"), "METHODS", ())
SCANS = ["sequential"] + [m for m in ("associative", "chunked") if m in _OFFERED]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/core/conftest.py


def _cfg(**kw):
    base = dict(d_model=4, ssm_size=8, num_groups=2)
    base.update(kw)
    return ConvS5Config(**base)


def _tol(dtype):
    return dict(atol=2e-5, rtol=2e-4) if dtype == torch.float32 else dict(atol=1e-10, rtol=1e-9)


def test_hippo_legs_eigenpairs():
    lam, V, Vinv = _hippo_legs_diag(8, 2)
    n = torch.arange(8, dtype=torch.float64)
    p = torch.sqrt(1 + 2 * n)
    S = -(torch.tril(p[:, None] * p[None, :]) - torch.diag(n)) + torch.outer(torch.sqrt(n + 0.5), torch.sqrt(n + 0.5))
    Vb = V[:8, :4]
    torch.testing.assert_close(S.to(torch.complex128) @ Vb, Vb * lam[:4])  # S V = V Λ on the kept half
    assert torch.allclose(lam.real, torch.full((8,), -0.5, dtype=torch.float64))
    assert (lam.imag[:4] < 0).all()  # one of each conjugate pair
    torch.testing.assert_close(Vinv @ V, torch.eye(8, dtype=torch.complex128))
    torch.testing.assert_close(lam[4:], lam[:4])  # blocks repeat


def _reference(ssm: ConvS5SSM, u, x0=None):
    """Complex arithmetic written out: x_t = Λ̄ x_{t-1} + B̄ * u_t, y_t = 2 Re(C * x_t), then D path."""
    Bsz, L, U, H, W = u.shape
    lam = torch.complex(ssm.Lambda_re.clamp(max=-1e-4), ssm.Lambda_im)
    lam_bar = torch.exp(lam * torch.exp(ssm.log_step))
    Bt = ((lam_bar - 1) / lam)[:, None, None, None] * torch.view_as_complex(ssm.B)
    C = torch.view_as_complex(ssm.C)
    x = torch.zeros(Bsz, ssm.P, H, W, dtype=lam_bar.dtype) if x0 is None else x0
    ys = []
    for t in range(L):
        uc = u[:, t]
        bu = torch.complex(F.conv2d(uc, Bt.real, padding=1), F.conv2d(uc, Bt.imag, padding=1))
        x = lam_bar[:, None, None] * x + bu
        y = 2 * (F.conv2d(x.real, C.real, padding=1) - F.conv2d(x.imag, C.imag, padding=1))
        ys.append(ssm._d_path(y, uc))
    return torch.stack(ys, 1), x


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("L", [1, 7, 64])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("cd", ["resnet", "standard"])
@pytest.mark.parametrize("scan_method", SCANS)
def test_parallel_matches_sequential_and_reference(dtype, L, with_state, cd, scan_method):
    torch.manual_seed(L)
    par = ConvS5SSM(_cfg(cd_config=cd, mode="parallel", scan_method=scan_method)).to(dtype)
    seq = ConvS5SSM(_cfg(cd_config=cd, mode="sequential")).to(dtype)
    seq.load_state_dict(par.state_dict())
    u = torch.randn(2, L, 4, 3, 4, dtype=dtype, requires_grad=True)
    cdt = torch.complex64 if dtype == torch.float32 else torch.complex128
    x0 = torch.randn(2, 4, 3, 4, dtype=cdt) if with_state else None
    y_p, s_p = par(u, x0)
    y_s, s_s = seq(u, x0)
    y_r, s_r = _reference(par, u, x0)
    for a, b in ((y_p, y_s), (s_p, s_s), (y_p, y_r), (s_p, s_r)):
        torch.testing.assert_close(a, b, **_tol(dtype))
    w = torch.randn_like(y_p)
    names = ["Lambda_re", "Lambda_im", "B", "C", "log_step"]
    g_p = torch.autograd.grad((y_p * w).sum(), [u] + [getattr(par, n) for n in names])
    g_s = torch.autograd.grad((y_s * w).sum(), [u] + [getattr(seq, n) for n in names])
    for a, b in zip(g_p, g_s):
        torch.testing.assert_close(a, b, **_tol(dtype))


@pytest.mark.parametrize("scan_method", SCANS)
def test_long_sequence_tiny_frames(scan_method):
    """L = 257 on 2 x 2 frames (kept small for CPU time)."""
    torch.manual_seed(0)
    par = ConvS5SSM(_cfg(scan_method=scan_method)).double()
    seq = ConvS5SSM(_cfg(mode="sequential")).double()
    seq.load_state_dict(par.state_dict())
    u = torch.randn(1, 257, 4, 2, 2, dtype=torch.float64)
    y_p, s_p = par(u)
    y_s, s_s = seq(u)
    torch.testing.assert_close(y_p, y_s)
    torch.testing.assert_close(s_p, s_s)


def test_stack_step_split_and_cache():
    torch.manual_seed(1)
    m = create_model("convs5", d_model=4, ssm_size=8, num_groups=2, n_layers=2, dropout=0.1).double().eval()
    x = torch.randn(2, 8, 4, 3, 3, dtype=torch.float64)
    with torch.no_grad():
        y, st = m(x)
        state = m.init_state(2, dtype=torch.float64, size=(3, 3))
        ys = []
        for t in range(8):
            y_t, state = m.step(x[:, t], state)
            ys.append(y_t)
        torch.testing.assert_close(torch.stack(ys, 1), y)
        y1, s1 = m(x[:, :3])
        y2, s2 = m(x[:, 3:], s1)
        torch.testing.assert_close(torch.cat([y1, y2], 1), y)
        for a, b in zip(s2, st):
            torch.testing.assert_close(a, b)
        ssm = m.layers[0].mixer
        d1 = ssm._discrete()
        assert ssm._discrete() is d1  # cached while parameters are unchanged
        ssm.log_step.add_(0.1)
        d2 = ssm._discrete()
        assert d2 is not d1 and not torch.allclose(d2[0], d1[0])
    assert m.layers[0].mixer._discrete()[0].requires_grad  # with autograd: fresh, in the graph


def test_clip_eigs_and_config_errors():
    from ostinato.core import ConfigError

    ssm = ConvS5SSM(_cfg())
    with torch.no_grad():
        ssm.Lambda_re.fill_(0.5)  # unstable: clipped to -1e-4
    lam_bar = ssm._compute_discrete()[0]
    assert (lam_bar.abs() < 1).all()
    with pytest.raises(ConfigError):
        create_model("convs5", d_model=4, ssm_size=6, num_groups=2, blocks=2)
    with pytest.raises(ConfigError):
        create_model("convs5", d_model=6, num_groups=4)


def test_learns_running_mean_of_frames():
    torch.manual_seed(0)
    m = create_model("convs5", d_model=4, ssm_size=16, num_groups=2, dt_min=0.05, dt_max=0.5, use_norm=False)
    inp, out = torch.nn.Conv2d(1, 4, 1), torch.nn.Conv2d(4, 1, 1)
    opt = torch.optim.Adam(list(m.parameters()) + list(inp.parameters()) + list(out.parameters()), lr=1e-2)
    steps = torch.arange(1, 9, dtype=torch.float32).view(1, 8, 1, 1, 1)

    def batch():
        x = torch.randn(8, 8, 1, 4, 4)
        return x, x.cumsum(1) / steps

    x, y = batch()
    base = y.pow(2).mean().item()
    for _ in range(100):
        x, y = batch()
        h = inp(x.flatten(0, 1)).view(8, 8, 4, 4, 4)
        pred = out(m(h)[0].flatten(0, 1)).view_as(y)
        loss = (pred - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * base, (loss.item(), base)


@pytest.mark.parametrize("cd_config", ["resnet", "standard"])
def test_d_init_lecun_is_the_jax_init(cd_config):
    from ostinato.core.layers.convssm import ConvS5Config, ConvS5SSM

    cfg = dict(d_model=64, ssm_size=16, num_groups=8, cd_config=cd_config, kernel_D=3)
    torch.manual_seed(0)
    torch_init = ConvS5SSM(ConvS5Config(**cfg))
    torch.manual_seed(0)
    lecun = ConvS5SSM(ConvS5Config(**cfg, d_init="lecun"))
    convs = [n for n, m in lecun.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == (["conv1", "conv2"] if cd_config == "resnet" else ["conv_D"])
    fan_in = 64 * 9
    for n in convs:
        w, b = lecun.get_submodule(n).weight, lecun.get_submodule(n).bias
        assert torch.equal(b, torch.zeros_like(b))  # flax: zero bias
        assert w.std().item() == pytest.approx(fan_in**-0.5, rel=0.05)  # LeCun normal: variance 1 / fan_in
        assert w.abs().max().item() <= 2 * fan_in**-0.5 / 0.8796 + 1e-6  # truncated at 2 sigma
        tb = torch_init.get_submodule(n).bias  # PyTorch's default: uniform bias, weight std 1 / sqrt(3 fan_in)
        assert tb.abs().max().item() > 0 and torch_init.get_submodule(n).weight.std().item() == pytest.approx(
            (3 * fan_in) ** -0.5, rel=0.05)
    for n in ("Lambda_re", "Lambda_im", "B", "C", "log_step"):  # the SSM's own init is untouched
        assert torch.equal(getattr(lecun, n), getattr(torch_init, n))
