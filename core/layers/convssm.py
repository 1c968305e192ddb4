"""ConvS5 (Smith et al., NeurIPS 2023; official JAX code ``NVlabs/ConvSSM``).

Convolutional SSM on u (B, L, U, H, W) with a complex diagonal state x (B, P, H, W):

    x_t = Λ̄ ⊙ x_{t-1} + B̄ ∗ u_t          (∗ = k_B x k_B convolution, 'same' padding)
    y_t = 2 Re(C̃ ∗ x_t)                   (k_C x k_C convolution over the P complex channels)
    out = D-path(y, u)                     ("resnet": ResNet block on y; "standard": act(GN(y + D ∗ u)))

Because the state kernel Λ̄ is pointwise (diagonal, the same at every pixel), the recurrence
is an elementwise linear scan over time for every (channel, pixel): the parallel path is
``scan(Λ̄, B̄ ∗ u, x0)`` over L (associative / chunked / ... by ``scan_method``), then one
batched convolution for C over all frames. The sequential loop (``mode="sequential"``) is
the specification; step mode reuses a cached discretisation (see ``_discrete``).

Init (as the official code): Λ = diagonal of the HiPPO-LegS normal part (real part -1/2,
imaginary parts from its eigen-decomposition), conjugate halving P = ssm_size / 2 (y = 2 Re);
B and C drawn He-normal in the original basis and kept in the eigenbasis as V^{-1} B and
C V; log Δ ~ U[log dt_min, log dt_max] per state; ZOH Λ̄ = e^{ΛΔ}, B̄ = Λ^{-1}(Λ̄ - 1) B̃;
Re Λ clipped to <= -1e-4 (``clip_eigs``). GELU is flax's default (tanh approximation),
GroupNorm and LayerNorm use flax's eps 1e-6. The official optimizer is plain AdamW on all
parameters, so no optimizer hints are set.

Known deviation (``d_init``): the D-path convolutions (``conv1``/``conv2``, or ``conv_D``) keep
PyTorch's default init (Kaiming-uniform with a = sqrt(5), uniform bias) by default, which is
what this project's reported ConvS5 runs used; the JAX code's flax ``nn.Conv`` uses LeCun-normal
(truncated) weights and a zero bias: ``d_init="lecun"`` reproduces that.

Layer (official ``SequenceLayer``, see ``convlstm.SpatialResidual``): SSM -> dropout ->
+ skip -> LayerNorm over channels (post-norm by default). ``ConvS5`` stacks ``n_layers``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import register_variant
from ..scan import scan
from .convlstm import SpatialResidual, SpatialStack, he_normal_, lecun_normal_
from .hippo import make_dplr_hippo

_ACT = {
    "gelu": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "swish": F.silu,
    "elu": F.elu,
}


@dataclass
class ConvS5Config:
    d_model: int = 128  # U: input/output channels (MMNIST-600 config: 128)
    ssm_size: int = 128  # state size before conjugate halving; P = ssm_size / 2
    blocks: int = 1  # HiPPO blocks (block-diagonal init)
    kernel_B: int = 3
    kernel_C: int = 3
    kernel_D: int = 3
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    clip_eigs: bool = True
    cd_config: Literal["resnet", "standard"] = "resnet"
    num_groups: int = 32
    activation: Literal["gelu", "relu", "swish", "elu"] = "gelu"
    n_layers: int = 1
    dropout: float = 0.0
    use_norm: bool = True
    prenorm: bool = False
    per_layer_skip: bool = True
    mode: Literal["parallel", "sequential"] = "parallel"
    # D-path convs: "torch" = PyTorch's default init and bias (kept: what the reported runs used);
    # "lecun" = the JAX code's flax default, LeCun-normal (truncated) weights and zero biases
    d_init: Literal["torch", "lecun"] = "torch"
    scan_method: Literal["auto", "sequential", "associative", "chunked", "log"] = "auto"

    def validate(self) -> None:
        if self.ssm_size % (2 * self.blocks):
            raise ConfigError(f"convs5: ssm_size={self.ssm_size} must be a multiple of 2 * blocks={2 * self.blocks}")
        if self.d_model % self.num_groups:
            raise ConfigError(f"convs5: d_model={self.d_model} must be a multiple of num_groups={self.num_groups}")
        if any(k % 2 == 0 for k in (self.kernel_B, self.kernel_C, self.kernel_D)):
            raise ConfigError("convs5: kernel sizes must be odd ('same' padding)")


def _hippo_legs_diag(block: int, blocks: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ConvS5 ``hippo_initializer``: Λ (P,), V (N, P), V^{-1} = V^H (P, N) for ``blocks``
    HiPPO-LegS blocks of size ``block``, keeping the first half of each block's eigenpairs
    (``eigh`` sorts them, so one of each conjugate pair: conjugate symmetry)."""
    lam, _, _, V, _ = make_dplr_hippo(block)  # (block,), (block, block)
    h = block // 2
    lam = lam[:h].repeat(blocks)  # (P,)
    V = torch.block_diag(*[V[:, :h]] * blocks)  # (N, P)
    return lam, V, V.conj().T


class ConvS5SSM(nn.Module):
    """The convolutional SSM with its C/D output path; contract on (B, L, U, H, W)."""

    def __init__(self, cfg: ConvS5Config):
        super().__init__()
        self.cfg = cfg
        U, N, kB, kC = cfg.d_model, cfg.ssm_size, cfg.kernel_B, cfg.kernel_C
        self.P = P = N // 2
        lam, V, Vinv = _hippo_legs_diag(N // cfg.blocks, cfg.blocks)
        self.Lambda_re = nn.Parameter(lam.real.float())
        self.Lambda_im = nn.Parameter(lam.imag.float())
        B = he_normal_(torch.empty(N, U * kB * kB, dtype=torch.float64), fan_in=U * kB * kB)  # (N, U k k)
        VinvB = (Vinv @ B.to(torch.complex128)).reshape(P, U, kB, kB)  # (P, U, kB, kB)
        self.B = nn.Parameter(torch.view_as_real(VinvB).float())  # (P, U, kB, kB, 2)
        C = he_normal_(torch.empty(U * kC * kC, N, dtype=torch.float64), fan_in=N * kC * kC)  # (U k k, N)
        CV = (C.to(torch.complex128) @ V).reshape(U, kC, kC, P).permute(0, 3, 1, 2)  # (U, P, kC, kC)
        self.C = nn.Parameter(torch.view_as_real(CV.contiguous()).float())  # (U, P, kC, kC, 2)
        self.log_step = nn.Parameter(torch.rand(P) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min))
        act, g = _ACT[cfg.activation], cfg.num_groups
        self.act = act
        kD = cfg.kernel_D
        if cfg.cd_config == "resnet":
            self.norm1, self.norm2 = nn.GroupNorm(g, U, eps=1e-6), nn.GroupNorm(g, U, eps=1e-6)
            self.conv1 = nn.Conv2d(U, U, kD, padding=kD // 2)
            self.conv2 = nn.Conv2d(U, U, kD, padding=kD // 2)
        else:
            self.norm1 = nn.GroupNorm(g, U, eps=1e-6)
            self.conv_D = nn.Conv2d(U, U, kD, padding=kD // 2)
        if cfg.d_init == "lecun":
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    lecun_normal_(m.weight)
                    nn.init.zeros_(m.bias)
        self._cache: tuple | None = None

    # --- discretisation ---------------------------------------------------------------
    def _params(self):
        return (self.Lambda_re, self.Lambda_im, self.B, self.C, self.log_step)

    def _compute_discrete(self):
        lam_re = self.Lambda_re.clamp(max=-1e-4) if self.cfg.clip_eigs else self.Lambda_re
        lam = torch.complex(lam_re, self.Lambda_im)  # (P,)
        step = torch.exp(self.log_step)  # (P,)
        lam_bar = torch.exp(lam * step)  # (P,)
        B_bar = ((lam_bar - 1) / lam)[:, None, None, None] * torch.view_as_complex(self.B)  # (P, U, kB, kB)
        w_B = torch.cat([B_bar.real, B_bar.imag], dim=0)  # (2P, U, kB, kB): conv to [Re; Im]
        C = torch.view_as_complex(self.C)  # (U, P, kC, kC)
        w_C = 2 * torch.cat([C.real, -C.imag], dim=1)  # (U, 2P, kC, kC): 2 Re(C x) from [Re x; Im x]
        return lam_bar, w_B, w_C

    def _discrete(self):
        """Λ̄, B̄ and C as conv weights. Without autograd (generation) the result is cached
        and recomputed only when a parameter changes (tracked by tensor versions)."""
        if torch.is_grad_enabled():
            self._cache = None
            return self._compute_discrete()
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in self._params())
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._compute_discrete())
        return self._cache[1]

    # --- contract ---------------------------------------------------------------------
    def init_state(self, batch_size: int, device=None, dtype=None, size: tuple[int, int] | None = None) -> torch.Tensor:
        if size is None:
            raise ValueError("ConvS5 init_state: pass size=(H, W)")
        real = dtype or self.B.dtype
        cdt = torch.complex128 if real == torch.float64 else torch.complex64
        return torch.zeros(batch_size, self.P, *size, device=device, dtype=cdt)

    def _d_path(self, y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """y, u (N, U, H, W) per frame."""
        if self.cfg.cd_config == "resnet":
            h = self.conv1(self.act(self.norm1(y)))
            h = self.conv2(self.act(self.norm2(h)))
            return self.act(y + h)
        return self.act(self.norm1(y + self.conv_D(u)))

    def forward(self, u: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        Bsz, L, U, H, W = u.shape
        lam_bar, w_B, w_C = self._discrete()
        frames = u.reshape(Bsz * L, U, H, W)  # (B L, U, H, W)
        bu = F.conv2d(frames, w_B.to(u.dtype), padding=self.cfg.kernel_B // 2)  # (B L, 2P, H, W)
        bu = torch.complex(*bu.view(Bsz, L, 2, self.P, H, W).unbind(2))  # (B, L, P, H, W)
        a = lam_bar.to(bu.dtype)[:, None, None]  # (P, 1, 1)
        if state is None:
            state = torch.zeros_like(bu[:, 0])  # (B, P, H, W)
        if self.cfg.mode == "sequential":
            x, xs = state.to(bu.dtype), []
            for t in range(L):
                x = a * x + bu[:, t]
                xs.append(x)
            xs = torch.stack(xs, dim=1)  # (B, L, P, H, W)
        else:
            xs = scan(a.expand_as(bu), bu, state.to(bu.dtype), method=self.cfg.scan_method)  # (B, L, P, H, W)
        x_flat = torch.cat([xs.real, xs.imag], dim=2).reshape(Bsz * L, 2 * self.P, H, W)  # (B L, 2P, H, W)
        y = F.conv2d(x_flat, w_C.to(u.dtype), padding=self.cfg.kernel_C // 2)  # (B L, U, H, W)
        y = self._d_path(y, frames).reshape(Bsz, L, U, H, W)  # (B, L, U, H, W)
        return y, xs[:, -1]

    def step(self, u_t: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """u_t (B, U, H, W) -> (B, U, H, W)."""
        y, state = self(u_t[:, None], state)  # (B, 1, U, H, W)
        return y[:, 0], state


class ConvS5(SpatialStack):
    """``n_layers`` ConvS5 layers, each SSM -> dropout -> + skip -> LayerNorm; state = list."""

    def __init__(self, cfg: ConvS5Config):
        super().__init__([SpatialResidual(ConvS5SSM(cfg), cfg.d_model, cfg.dropout, cfg.use_norm, cfg.prenorm, cfg.per_layer_skip)
                          for _ in range(cfg.n_layers)])
        self.cfg = cfg


register_variant("convs5", ConvS5Config, ConvS5,
                 "ConvS5 layers (NeurIPS 2023): complex diagonal conv-SSM, HiPPO init, parallel scan, step mode.")
