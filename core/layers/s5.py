"""S5: simplified state space layer, MIMO with a diagonal complex state (Smith et al. 2023).

Following ``lindermanlab/S5`` (``ssm.py``, ``ssm_init.py``):
    x_k = Λ̄ ⊙ x_{k-1} + B̄ u_k,    y_k = Re(C̃ x_k) + D ⊙ u_k     (2·Re(...) with conj_sym)
Discretisation with a per-state step Δ = step_rescale · exp(log_step):
    ZOH:      Λ̄ = exp(ΛΔ),                  B̄ = Λ⁻¹ (Λ̄ - 1) B̃
    bilinear: Λ̄ = (1 - ΔΛ/2)⁻¹ (1 + ΔΛ/2),  B̄ = (1 - ΔΛ/2)⁻¹ Δ B̃
Parallel mode: all B̄u_k at once, then ``ostinato.core.scan`` (associative by default) over L.
Bidirectional: a second scan in reverse time with its own half of C̃ (the outputs add);
it needs the whole sequence, so it has no causal ``step`` and takes no entering state
(both raise ConfigError) and returns no state.

Init: Λ from the HiPPO-LegS DPLR form (``hippo.make_dplr_hippo``) of each of ``blocks``
blocks of size d_state/blocks, one of each conjugate pair kept with ``conj_sym`` (P = d_state/2
complex states); B̃ = V⁻¹B and C̃ = CV are kept in the eigenbasis (V block-diagonal), with
B ~ lecun-normal (truncated, fan-in d_state) and C by ``C_init`` ("trunc_standard_normal":
truncated lecun-normal rows, fan-in d_state; "lecun_normal": fan-in d_state·H, as JAX computes
it for S5's (H, d_state, 2) array; "complex_normal": N(0, 1/2) per part, directly in the
eigenbasis); bidirectional layers draw the forward and backward C separately, each as above
(S5's C1, C2); D ~ N(0, 1); log Δ ~ U[log dt_min, log dt_max] per state.
Numeric guard (``clip_eigs``, as ConvS5): Re Λ is clipped to <= -1e-4 so |Λ̄| < 1.
Optimizer hints as in S5: Λ, B̃ and log Δ have no weight decay and use ``ssm_lr`` if set.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..config import variant
from ..errors import ConfigError
from ..registry import register_variant
from ..scan import scan
from .hippo import make_dplr_hippo

_TRUNC_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]


def _lecun_normal(shape, fan_in: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """JAX ``lecun_normal``: truncated normal (±2 std) with variance 1/fan_in."""
    t = torch.empty(shape, dtype=torch.float64)
    nn.init.trunc_normal_(t, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=gen)
    return t * (math.sqrt(1.0 / fan_in) / _TRUNC_STD)


@dataclass
class S5Config:
    d_model: int = 256  # H
    d_state: int = 64  # state size before conjugate halving (S5's ssm_size)
    blocks: int = 1  # HiPPO blocks on the diagonal (S5's J)
    conj_sym: bool = True
    clip_eigs: bool = True
    bidirectional: bool = False
    discretization: Literal["zoh", "bilinear"] = "zoh"
    C_init: Literal["trunc_standard_normal", "lecun_normal", "complex_normal"] = "trunc_standard_normal"
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    step_rescale: float = 1.0
    ssm_lr: Optional[float] = None  # learning rate of Λ, B̃, log Δ (None: the global one)
    activation: Literal["none", "gelu", "half_glu1", "half_glu2"] = "none"  # after the SSM, as S5's SequenceLayer
    scan_method: str = "associative"

    def validate(self) -> None:
        if self.d_model < 1 or self.blocks < 1 or self.d_state % self.blocks:
            raise ConfigError(f"s5: d_state={self.d_state} must be a multiple of blocks={self.blocks}")
        if self.conj_sym and (self.d_state // self.blocks) % 2:
            raise ConfigError(f"s5: conj_sym needs an even block size, got d_state/blocks={self.d_state // self.blocks}")


class S5(nn.Module):
    """S5 SSM: (B, L, H) -> (B, L, H); state (B, P) complex."""

    def __init__(self, cfg: S5Config):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        H, J = cfg.d_model, cfg.blocks
        bs = cfg.d_state // J
        lam, _, _, Vb, _ = make_dplr_hippo(bs)
        keep = bs // 2 if cfg.conj_sym else bs
        lam, Vb = lam[:keep], Vb[:, :keep]  # (keep,), (bs, keep)
        lam = lam.repeat(J)  # (P,)
        V = torch.block_diag(*([Vb] * J))  # (d_state, P)
        Vinv = torch.block_diag(*([Vb.conj().T] * J))  # (P, d_state)
        self.P = P = lam.shape[0]
        self.Lambda_re = nn.Parameter(lam.real.float())
        self.Lambda_im = nn.Parameter(lam.imag.float())
        B = _lecun_normal((cfg.d_state, H), fan_in=cfg.d_state).to(torch.complex128)  # (d_state, H)
        self.B = nn.Parameter(torch.view_as_real(Vinv @ B).float())  # (P, H, 2)
        n_c = 2 if cfg.bidirectional else 1
        if cfg.C_init == "complex_normal":
            C = torch.randn(H, n_c * P, 2, dtype=torch.float64) * math.sqrt(0.5)  # (H, n_c P, 2)
        else:  # bidirectional: C1 and C2 drawn separately, each as the unidirectional C (S5's C1, C2)
            C = torch.view_as_real(torch.cat([self._draw_C(H, cfg) @ V for _ in range(n_c)], dim=1))  # (H, n_c P, 2)
        self.C = nn.Parameter(C.float().contiguous())  # (H, n_c P, 2)
        self.D = nn.Parameter(torch.randn(H))
        log_step = torch.rand(P) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min)
        self.log_step = nn.Parameter(log_step)
        for p in (self.Lambda_re, self.Lambda_im, self.B, self.log_step):
            p._optim = {"weight_decay": 0.0, **({"lr": cfg.ssm_lr} if cfg.ssm_lr is not None else {})}
        if cfg.activation in ("half_glu1", "half_glu2"):
            self.out2 = nn.Linear(H, H)
        if cfg.activation == "half_glu2":
            self.out1 = nn.Linear(H, H)

    @staticmethod
    def _draw_C(H: int, cfg: S5Config) -> torch.Tensor:
        """C (H, d_state) complex before the eigenbasis, as S5 draws it: trunc_standard_normal is
        lecun-normal per row (fan-in d_state); lecun_normal is JAX's on the (H, d_state, 2) array,
        whose fan-in is d_state·H (in axis -2 times the leading axis)."""
        if cfg.C_init == "trunc_standard_normal":
            rows = torch.stack([_lecun_normal((1, cfg.d_state, 2), fan_in=cfg.d_state)[0] for _ in range(H)])
        else:
            rows = _lecun_normal((H, cfg.d_state, 2), fan_in=cfg.d_state * H)
        return torch.view_as_complex(rows.contiguous())  # (H, d_state)

    def discrete(self):
        """Λ̄ (P,), B̄ (P, H), C̃ (H, n_c P), all complex."""
        re = self.Lambda_re.clamp(max=-1e-4) if self.cfg.clip_eigs else self.Lambda_re
        lam = torch.complex(re, self.Lambda_im)  # (P,)
        step = self.cfg.step_rescale * torch.exp(self.log_step)  # (P,)
        Bt = torch.view_as_complex(self.B.contiguous())  # (P, H)
        if self.cfg.discretization == "zoh":
            lam_bar = torch.exp(lam * step)
            B_bar = ((lam_bar - 1) / lam)[:, None] * Bt
        else:
            bl = 1 / (1 - step / 2 * lam)
            lam_bar = bl * (1 + step / 2 * lam)
            B_bar = (bl * step)[:, None] * Bt
        return lam_bar, B_bar, torch.view_as_complex(self.C.contiguous())

    def init_state(self, batch_size: int, device=None, dtype=None) -> torch.Tensor:
        cdt = torch.complex128 if dtype == torch.float64 else torch.complex64
        return torch.zeros(batch_size, self.P, device=device or self.D.device, dtype=cdt)

    def _readout(self, x: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
        """Re(C x) (2·Re with conj_sym) as two real matmuls: x (..., P) -> (..., H)."""
        y = x.real @ C.real.T - x.imag @ C.imag.T
        return 2 * y if self.cfg.conj_sym else y

    def _act(self, y: torch.Tensor) -> torch.Tensor:
        a = self.cfg.activation
        if a == "gelu":
            return F.gelu(y)
        if a == "half_glu1":
            y = F.gelu(y)
            return y * torch.sigmoid(self.out2(y))
        if a == "half_glu2":
            y = F.gelu(y)
            return self.out1(y) * torch.sigmoid(self.out2(y))
        return y

    def forward(self, u: torch.Tensor, state: torch.Tensor | None = None):
        Bsz, L, H = u.shape
        lam_bar, B_bar, C = self.discrete()
        if self.cfg.bidirectional and state is not None:
            raise ConfigError("s5: a bidirectional layer takes no entering state (it reads the whole sequence)")
        Bu = torch.complex(u @ B_bar.real.T, u @ B_bar.imag.T)  # (B, L, P)
        a = lam_bar.expand(Bsz, L, self.P)  # (B, L, P)
        xs = scan(a, Bu, state, method=self.cfg.scan_method)  # (B, L, P)
        y = self._readout(xs, C[:, : self.P])
        if self.cfg.bidirectional:
            xr = scan(a, Bu.flip(1), method=self.cfg.scan_method).flip(1)  # (B, L, P), reverse time
            y = y + self._readout(xr, C[:, self.P :])
        y = self._act(y + self.D * u)
        return y, (None if self.cfg.bidirectional else xs[:, -1])

    def step(self, u_t: torch.Tensor, state: torch.Tensor | None = None):
        """One causal step: u_t (B, H) -> (B, H). Unidirectional layers only."""
        if self.cfg.bidirectional:
            raise ConfigError("s5: a bidirectional layer has no causal step (its reverse scan needs the future)")
        if state is None:
            state = self.init_state(u_t.shape[0], u_t.device, u_t.dtype)
        lam_bar, B_bar, C = self.discrete()
        x = lam_bar * state + torch.complex(u_t @ B_bar.real.T, u_t @ B_bar.imag.T)  # (B, P)
        return self._act(self._readout(x, C) + self.D * u_t), x


register_variant("s5", S5Config, S5,
                 "S5 MIMO diagonal SSM (Smith et al. 2023), HiPPO-LegS DPLR init, ZOH/bilinear, associative scan.",
                 causal=lambda cfg: not cfg.bidirectional)


TestS5Config = variant(S5Config, "TestS5Config", d_model=6, d_state=8, blocks=2)


register_variant("test_s5", TestS5Config, S5, "Tiny S5 for tests.")
