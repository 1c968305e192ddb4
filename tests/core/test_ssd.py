"""Mamba-2 SSD: chunked four-step algorithm against the recurrence loop, the mixer's chunked path
against its reference (the core contract, parity with the step loop and streaming,
learning: tests/core/test_layer_contract.py)."""
import pytest
import torch

from ostinato.core.layers import ssd as ssd_mod
from ostinato.core.layers.ssd import segsum, ssd_chunked, ssd_ref

TOL = {torch.float32: dict(rtol=6e-4, atol=2e-3), torch.float64: dict(rtol=1e-9, atol=1e-9)}


def _inputs(L, dtype, gen, b=2, H=3, P=4, N=5):
    r = lambda *s: torch.randn(*s, generator=gen, dtype=dtype)  # noqa: E731
    return r(b, L, H, P), -torch.rand(b, L, H, generator=gen, dtype=dtype), r(b, L, H, N), r(b, L, H, N), r(b, H, P, N)


@pytest.mark.parametrize("L", [1, 7, 64, 257])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("chunk", [4, 16])
def test_chunked_matches_loop(L, dtype, with_h0, chunk):
    gen = torch.Generator().manual_seed(L + chunk)
    x, a, B, C, h0 = _inputs(L, dtype, gen)
    h0 = h0 if with_h0 else None
    ins1 = [t.clone().requires_grad_() for t in (x, a, B, C)] + ([h0.clone().requires_grad_()] if with_h0 else [])
    ins2 = [t.clone().requires_grad_() for t in (x, a, B, C)] + ([h0.clone().requires_grad_()] if with_h0 else [])
    y1, s1 = ssd_chunked(*ins1[:4], chunk=chunk, h0=ins1[4] if with_h0 else None)
    y2, s2 = ssd_ref(*ins2[:4], h0=ins2[4] if with_h0 else None)
    torch.testing.assert_close(y1, y2, **TOL[dtype])
    torch.testing.assert_close(s1, s2, **TOL[dtype])
    w, ws = torch.randn(y1.shape, generator=gen, dtype=dtype), torch.randn(s1.shape, generator=gen, dtype=dtype)
    g1 = torch.autograd.grad((y1 * w).sum() + (s1 * ws).sum(), ins1)
    g2 = torch.autograd.grad((y2 * w).sum() + (s2 * ws).sum(), ins2)
    for p, q in zip(g1, g2):
        scale = q.abs().max().clamp(min=1.0)
        torch.testing.assert_close(p / scale, q / scale, **TOL[dtype])


def test_segsum_is_the_masked_cumsum():
    x = torch.randn(6, dtype=torch.float64)
    S = segsum(x)
    for i in range(6):
        for j in range(6):
            want = x[j + 1 : i + 1].sum() if i >= j else torch.tensor(float("-inf"), dtype=torch.float64)
            torch.testing.assert_close(S[i, j], want)


def _mixer():
    torch.manual_seed(0)
    return ssd_mod.Mamba2(ssd_mod.TestMamba2Config()).double()


def test_mixer_chunked_equals_ref():
    """The mixer's chunked path against its reference path (the step loop and streaming are in
    tests/core/test_layer_contract.py)."""
    m = _mixer()
    x = torch.randn(2, 23, 8, dtype=torch.float64)
    y, _ = m(x)
    m.cfg.scan_method = "ref"
    torch.testing.assert_close(m(x)[0], y)


def test_init_hints():
    m = ssd_mod.Mamba2(ssd_mod.Mamba2Config(d_model=64, headdim=16))
    assert m.nheads == 8
    A = torch.exp(m.A_log)
    assert A.min() >= 1 and A.max() <= 16
    assert m.A_log._no_weight_decay and m.D._no_weight_decay and m.dt_bias._no_weight_decay
