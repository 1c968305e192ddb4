"""S4D: diagonal structured state space layer (Gu et al. 2022; ``state-spaces/s4`` ``models/s4/s4d.py``).

Per channel h and complex state n (N/2 of them; the conjugate half is implied by 2·Re):
    A_n = -exp(log_A_real_n) + i·A_imag_n,   Δ = exp(log_dt_h)
    x_k = exp(ΔA) x_{k-1} + (exp(ΔA) - 1)/A · u_k,    y_k = 2·Re(C x_k) + D u_k     (ZOH)
Convolution kernel of the same system: K_l = 2·Re Σ_n C_n (exp(ΔA_n) - 1)/A_n · exp(ΔA_n l).

Modes (``mode``): "fft" convolves with K through an FFT of size 2L (>= 2L keeps the linear
convolution causal; a size below 2L would wrap circularly); "scan" runs the recurrence with
``ostinato.core.scan`` (complex, associative). ``step`` is the recurrence one step at a time.
All three agree (tests). Then GELU, dropout and the output projection Linear(H, 2H) + GLU,
as in s4d.py.

Streaming: forward(x, state) adds the response to the entering state,
y_k += 2·Re Σ_n C_n exp(ΔA_n (k+1)) x_n, and returns the state after the last step,
x_L = exp(ΔA L) x + Σ_j exp(ΔA (L-1-j)) B̄ u_j (one Vandermonde contraction, the same
O(H·N·L) memory as the kernel; the spec's pitfall).

Init (s4d.py): log_A_real = log 0.5, A_imag = π n, C ~ complex normal (unit variance),
log Δ ~ U[log dt_min, log dt_max] per channel, D ~ N(0, 1). The SSM parameters (log_dt,
log_A_real, A_imag) carry ``_optim = {"lr": ssm_lr, "weight_decay": 0.0}``; ``ssm_lr=0``
freezes them as buffers, as ``S4DKernel.register`` does.
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


@dataclass
class S4DConfig:
    d_model: int = 256  # H
    d_state: int = 64  # N (N/2 complex states per channel)
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    ssm_lr: Optional[float] = 1e-3  # learning rate of log_dt, log_A_real, A_imag (None: the global one; 0: frozen)
    dropout: float = 0.0
    mode: Literal["fft", "scan"] = "fft"
    scan_method: str = "associative"  # used by mode="scan"

    def validate(self) -> None:
        if self.d_model < 1 or self.d_state < 2 or self.d_state % 2:
            raise ConfigError(f"s4d: d_model >= 1 and an even d_state >= 2 expected, got {self.d_model}, {self.d_state}")


class S4D(nn.Module):
    """S4D layer: (B, L, H) -> (B, L, H), state (B, H, N/2) complex."""

    def __init__(self, cfg: S4DConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        H, N2 = cfg.d_model, cfg.d_state // 2
        log_dt = torch.rand(H) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min)
        self.C = nn.Parameter(torch.view_as_real(torch.randn(H, N2, dtype=torch.cfloat)))  # (H, N/2, 2)
        self._register("log_dt", log_dt)
        self._register("log_A_real", torch.log(0.5 * torch.ones(H, N2)))
        self._register("A_imag", math.pi * torch.arange(N2, dtype=torch.float32).repeat(H, 1))
        self.D = nn.Parameter(torch.randn(H))
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.output_linear = nn.Linear(H, 2 * H)
        self.glu = nn.GLU(dim=-1)

    def _register(self, name: str, tensor: torch.Tensor) -> None:
        lr = self.cfg.ssm_lr
        if lr == 0.0:
            self.register_buffer(name, tensor)
            return
        self.register_parameter(name, nn.Parameter(tensor))
        hint = {"weight_decay": 0.0}
        if lr is not None:
            hint["lr"] = lr
        getattr(self, name)._optim = hint

    def _ssm(self):
        """Discrete system: dtA (H, N/2), A_bar (H, N/2), B_bar (H, N/2), C (H, N/2), all complex."""
        dt = torch.exp(self.log_dt)  # (H,)
        A = -torch.exp(self.log_A_real) + 1j * self.A_imag  # (H, N/2)
        dtA = A * dt[:, None]  # (H, N/2)
        A_bar = torch.exp(dtA)
        B_bar = (A_bar - 1.0) / A
        return dtA, A_bar, B_bar, torch.view_as_complex(self.C.contiguous())

    def kernel(self, L: int) -> torch.Tensor:
        """Convolution kernel K (H, L)."""
        dtA, _, B_bar, C = self._ssm()
        V = torch.exp(dtA[..., None] * torch.arange(L, device=dtA.device))  # (H, N/2, L)
        return 2 * torch.einsum("hn,hnl->hl", C * B_bar, V).real

    def init_state(self, batch_size: int, device=None, dtype=None) -> torch.Tensor:
        dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        return torch.zeros(batch_size, self.cfg.d_model, self.cfg.d_state // 2, device=device or self.D.device, dtype=dtype)

    def _post(self, y: torch.Tensor) -> torch.Tensor:
        y = self.dropout(self.activation(y))
        return self.glu(self.output_linear(y))  # (..., H)

    def forward(self, u: torch.Tensor, state: torch.Tensor | None = None):
        Bsz, L, H = u.shape
        dtA, A_bar, B_bar, C = self._ssm()
        if self.cfg.mode == "scan":
            a = A_bar.expand(Bsz, L, H, A_bar.shape[-1])  # (B, L, H, N/2)
            b = B_bar * u[..., None]  # (B, L, H, N/2)
            xs = scan(a, b, state, method=self.cfg.scan_method)  # (B, L, H, N/2)
            y = 2 * torch.einsum("hn,blhn->blh", C, xs).real + u * self.D
            return self._post(y), xs[:, -1]
        V = torch.exp(dtA[..., None] * torch.arange(L + 1, device=u.device))  # (H, N/2, L+1): exp(ΔA l)
        K = 2 * torch.einsum("hn,hnl->hl", C * B_bar, V[..., :L]).real  # (H, L)
        ut = u.transpose(1, 2)  # (B, H, L)
        n = 2 * L
        y = torch.fft.irfft(torch.fft.rfft(ut, n=n) * torch.fft.rfft(K, n=n), n=n)[..., :L]  # (B, H, L)
        y = y.transpose(1, 2) + u * self.D  # (B, L, H)
        # state after the last step: Σ_j exp(ΔA (L-1-j)) B_bar u_j (+ exp(ΔA L) x_in)
        Vr = V[..., :L].flip(-1)  # (H, N/2, L): exp(ΔA (L-1-j))
        x_end = B_bar * torch.einsum("bhl,hnl->bhn", ut.to(V.dtype), Vr)  # (B, H, N/2)
        if state is not None:
            resp = 2 * torch.einsum("hn,hnl,bhn->blh", C, V[..., 1:], state.to(V.dtype)).real  # (B, L, H)
            y = y + resp
            x_end = x_end + V[..., L] * state
        return self._post(y), x_end

    def step(self, u_t: torch.Tensor, state: torch.Tensor | None = None):
        """One step: u_t (B, H) -> (B, H)."""
        if state is None:
            state = self.init_state(u_t.shape[0], u_t.device, u_t.dtype)
        _, A_bar, B_bar, C = self._ssm()
        x = A_bar * state + B_bar * u_t[..., None]  # (B, H, N/2)
        y = 2 * (C * x).sum(-1).real + self.D * u_t  # (B, H)
        return self._post(y), x


register_variant("s4d", S4DConfig, S4D,
                 "S4D diagonal SSM layer (Gu et al. 2022), FFT convolution mode with a matching recurrent step.",
                 causal=True)


TestS4DConfig = variant(S4DConfig, "TestS4DConfig", d_model=6, d_state=8)


register_variant("test_s4d", TestS4DConfig, S4D, "Tiny S4D for tests.")
