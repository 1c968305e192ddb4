"""LRU: ring init and normalisation (the core contract, parity with the step loop, streaming and
learning: tests/core/test_layer_contract.py)."""
import pytest
import torch

from ostinato.core.errors import ConfigError
from ostinato.core.registry import create_model


def test_ring_init_and_normalisation():
    torch.manual_seed(0)
    m = create_model("lru", d_model=8, d_state=2000, r_min=0.5, r_max=0.9, max_phase=0.3)
    lam = m.lam().detach()
    r = lam.abs()
    assert r.min() >= 0.5 - 1e-5 and r.max() <= 0.9 + 1e-5
    # |λ|² is uniform on [r_min², r_max²]: its mean is the midpoint
    assert abs((r**2).mean().item() - (0.25 + 0.81) / 2) < 0.02
    phase = lam.angle()
    assert phase.min() >= 0 and phase.max() <= 0.3 + 1e-6
    torch.testing.assert_close(torch.exp(m.gamma_log).detach(), torch.sqrt(1 - r**2), rtol=1e-4, atol=1e-5)
    assert abs(m.B_re.std().item() - (1 / 16) ** 0.5) < 0.02  # N(0, 1/(2H)) with H = 8
    with pytest.raises(ConfigError):
        create_model("lru", r_min=0.9, r_max=0.5)
