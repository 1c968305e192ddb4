"""DLinear (Zeng, Chen, Zhang, Xu; "Are Transformers Effective for Time Series
Forecasting?", AAAI 2023), as in Time-Series-Library's ``models/DLinear.py``.

The look-back window is split by a moving average (kernel 25) into trend and seasonal
parts; one linear map ``seq_len -> pred_len`` per part (shared by all variates unless
``individual``), both initialised to the uniform average ``1/seq_len`` as in TSLib; the
forecast is their sum. No per-window normalisation (TSLib's DLinear has none); ``norm=True``
adds it (that is RLinear-like, not the paper's model).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ostinato.core.config import variant
from ostinato.core.registry import register_variant

from .blocks import MovingAvgDecomp, WindowNorm


@dataclass
class DLinearConfig:
    seq_len: int = 96
    pred_len: int = 96
    n_vars: int = 7  # input variates (filled from the data)
    out_vars: int = 0  # forecast the last out_vars variates; 0: all (TSLib f_dim)
    kernel_size: int = 25
    individual: bool = False  # one pair of linear maps per variate
    norm: bool = False  # per-window normalisation (not in the paper's DLinear)


class DLinear(nn.Module):
    def __init__(self, cfg: DLinearConfig):
        super().__init__()
        self.cfg = cfg
        self.decomp = MovingAvgDecomp(cfg.kernel_size)
        self.norm = WindowNorm(cfg.n_vars) if cfg.norm else None
        n = cfg.n_vars if cfg.individual else 1
        w = torch.full((n, cfg.pred_len, cfg.seq_len), 1.0 / cfg.seq_len)
        self.w_seasonal = nn.Parameter(w.clone())
        self.w_trend = nn.Parameter(w.clone())
        bound = 1.0 / cfg.seq_len**0.5  # nn.Linear's default bias init
        self.b_seasonal = nn.Parameter(torch.empty(n, cfg.pred_len).uniform_(-bound, bound))
        self.b_trend = nn.Parameter(torch.empty(n, cfg.pred_len).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, L, C) -> (B, H, out_vars)."""
        if self.norm is not None:
            x, stats = self.norm.norm(x)
        seasonal, trend = self.decomp(x)  # (B, L, C) each
        if self.cfg.individual:
            s = torch.einsum("blc,chl->bhc", seasonal, self.w_seasonal)  # (B, H, C)
            t = torch.einsum("blc,chl->bhc", trend, self.w_trend)  # (B, H, C)
            y = s + t + (self.b_seasonal + self.b_trend).transpose(0, 1)  # (B, H, C)
        else:
            s = F.linear(seasonal.transpose(1, 2), self.w_seasonal[0], self.b_seasonal[0])  # (B, C, H)
            t = F.linear(trend.transpose(1, 2), self.w_trend[0], self.b_trend[0])  # (B, C, H)
            y = (s + t).transpose(1, 2)  # (B, H, C)
        c = self.cfg.out_vars or self.cfg.n_vars
        y = y[..., -c:]  # (B, H, out)
        if self.norm is not None:
            y = self.norm.denorm(y, stats)
        return y

    def predict(self, batch: dict) -> torch.Tensor:
        return self(batch["x"])

    def loss(self, batch: dict):
        loss = F.mse_loss(self.predict(batch), batch["y"])
        return loss, {"mse": float(loss.detach())}


register_variant("dlinear", DLinearConfig, DLinear,
                 "DLinear (Zeng et al. 2023): moving-average decomposition + two linear maps, TSLib defaults.")


TestDLinearConfig = variant(DLinearConfig, "TestDLinearConfig", seq_len=24, pred_len=12, kernel_size=5)


register_variant("test_dlinear", TestDLinearConfig, DLinear,
                 "Tiny DLinear for tests (same model; the recipe sets short windows).")
