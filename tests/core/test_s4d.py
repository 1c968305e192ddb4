"""S4D: the kernel is the impulse response and causal; init and optimizer hints (the core contract, parity with the step loop and streaming,
learning: tests/core/test_layer_contract.py)."""
import pytest
import torch

from ostinato.core.layers import s4d as s4d_mod
from ostinato.core.optim import param_groups
from ostinato.core.registry import create_model


def _layer(dtype, **kw):
    torch.manual_seed(0)
    return s4d_mod.S4D(s4d_mod.TestS4DConfig(**kw)).to(dtype)


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
