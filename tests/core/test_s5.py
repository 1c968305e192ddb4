"""S5: the bidirectional layer against two loops, HiPPO-DPLR, init and hints (the core contract, parity with the step loop and streaming,
learning: tests/core/test_layer_contract.py)."""
import pytest
import torch

from ostinato.core.errors import ConfigError
from ostinato.core.layers import s5 as s5_mod
from ostinato.core.layers.hippo import make_dplr_hippo, make_hippo
from ostinato.core.registry import create_model


def _layer(dtype, **kw):
    torch.manual_seed(0)
    return s5_mod.S5(s5_mod.TestS5Config(**kw)).to(dtype)


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


@pytest.mark.parametrize("C_init,std", [("trunc_standard_normal", 64 ** -0.5), ("lecun_normal", (64 * 128) ** -0.5)])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_C_std_as_s5_draws_it(C_init, std, bidirectional):
    """S5 (lindermanlab/S5 ssm.py): C, or C1 and C2 separately when bidirectional, each with fan-in
    d_state (per-row lecun-normal) or d_state·H (JAX lecun_normal on (H, d_state, 2)); V is unitary,
    so C̃ = CV keeps the std per real part. Bidirectional must not halve the variance."""
    torch.manual_seed(0)
    m = s5_mod.S5(s5_mod.S5Config(d_model=128, d_state=64, bidirectional=bidirectional, C_init=C_init))
    C = m.C.detach().double()  # (H, n_c P, 2)
    for half in C.split(m.P, dim=1):
        assert abs(half.std().item() / std - 1) < 0.05, (half.std().item(), std)
