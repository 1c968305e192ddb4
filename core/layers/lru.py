"""LRU: linear recurrent unit (Orvieto et al. 2023).

    x_k = Λ ⊙ x_{k-1} + γ ⊙ (B u_k),    y_k = Re(C x_k) + D ⊙ u_k
with the stable exponential parametrisation λ = exp(-exp(ν) + i·exp(θ)) (|λ| < 1 for any ν)
and the normalisation γ = sqrt(1 - |λ|²), stored as γ_log = log γ (trained).

Ring init: |λ|² ~ U[r_min², r_max²] (ν = log(-½ log |λ|²)), phase ~ U[0, max_phase]
(θ = log phase); B, C complex with real and imaginary parts ~ N(0, 1/(2H)) for B and
N(0, 1/N) for C as in the paper's reference code; D ~ N(0, 1). Complex64 state (complex128
for a float64 module).

Parallel mode: ``ostinato.core.scan`` over L (associative by default); ``step`` is the loop.
Numeric guards at init only: the sampled |λ|² is clamped to [1e-8, 1 - 1e-7] (|λ|² = 0 or 1
would give ν = ±inf, γ = 0 and non-finite gradients) and the sampled phase is floored at 1e-8
(θ = log 0 = -inf otherwise); both are measure-zero events of the init distribution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..config import variant
from ..errors import ConfigError
from ..registry import register_variant
from ..scan import scan


@dataclass
class LRUConfig:
    d_model: int = 256  # H
    d_state: int = 256  # N complex states
    r_min: float = 0.0
    r_max: float = 1.0
    max_phase: float = 6.283185307179586  # 2π; the paper uses π/10 for some LRA tasks
    scan_method: str = "associative"

    def validate(self) -> None:
        if not 0.0 <= self.r_min < self.r_max <= 1.0:
            raise ConfigError(f"lru: expected 0 <= r_min < r_max <= 1, got {self.r_min}, {self.r_max}")
        if self.d_model < 1 or self.d_state < 1 or self.max_phase <= 0:
            raise ConfigError("lru: d_model, d_state and max_phase must be positive")


class LRU(nn.Module):
    """LRU layer: (B, L, H) -> (B, L, H); state (B, N) complex."""

    def __init__(self, cfg: LRUConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        H, N = cfg.d_model, cfg.d_state
        u1, u2 = torch.rand(N), torch.rand(N)
        mag2 = (u1 * (cfg.r_max**2 - cfg.r_min**2) + cfg.r_min**2).clamp(1e-8, 1 - 1e-7)  # |λ|², guarded
        self.nu_log = nn.Parameter(torch.log(-0.5 * torch.log(mag2)))
        self.theta_log = nn.Parameter(torch.log((cfg.max_phase * u2).clamp(min=1e-8)))
        lam_abs = torch.exp(-torch.exp(self.nu_log.detach()))
        self.gamma_log = nn.Parameter(torch.log(torch.sqrt(1 - lam_abs**2)))
        self.B_re = nn.Parameter(torch.randn(N, H) / math.sqrt(2 * H))
        self.B_im = nn.Parameter(torch.randn(N, H) / math.sqrt(2 * H))
        self.C_re = nn.Parameter(torch.randn(H, N) / math.sqrt(N))
        self.C_im = nn.Parameter(torch.randn(H, N) / math.sqrt(N))
        self.D = nn.Parameter(torch.randn(H))

    def lam(self) -> torch.Tensor:
        """Λ (N,) complex: exp(-exp(ν) + i exp(θ))."""
        return torch.exp(torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log)))

    def _input(self, u: torch.Tensor) -> torch.Tensor:
        """γ ⊙ (B u): (..., H) -> (..., N) complex."""
        g = torch.exp(self.gamma_log)  # (N,)
        return torch.complex(u @ (self.B_re * g[:, None]).T, u @ (self.B_im * g[:, None]).T)

    def _readout(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return x.real @ self.C_re.T - x.imag @ self.C_im.T + self.D * u  # (..., H)

    def init_state(self, batch_size: int, device=None, dtype=None) -> torch.Tensor:
        cdt = torch.complex128 if dtype == torch.float64 else torch.complex64
        return torch.zeros(batch_size, self.cfg.d_state, device=device or self.D.device, dtype=cdt)

    def forward(self, u: torch.Tensor, state: torch.Tensor | None = None):
        Bsz, L, _ = u.shape
        lam = self.lam()  # (N,)
        xs = scan(lam.expand(Bsz, L, lam.shape[0]), self._input(u), state, method=self.cfg.scan_method)  # (B, L, N)
        return self._readout(xs, u), xs[:, -1]

    def step(self, u_t: torch.Tensor, state: torch.Tensor | None = None):
        if state is None:
            state = self.init_state(u_t.shape[0], u_t.device, u_t.dtype)
        x = self.lam() * state + self._input(u_t)  # (B, N)
        return self._readout(x, u_t), x


register_variant("lru", LRUConfig, LRU,
                 "Linear recurrent unit (Orvieto et al. 2023): exp-parametrised diagonal complex recurrence, ring init.",
                 causal=True)


TestLRUConfig = variant(LRUConfig, "TestLRUConfig", d_model=6, d_state=8, r_min=0.4, r_max=0.99)


register_variant("test_lru", TestLRUConfig, LRU, "Tiny LRU for tests.")
