"""Seasonal naive forecaster: ``yhat_{T+h} = y_{T+h-m*ceil(h/m)}`` (the value one season ago).

With ``period = 1`` it is the naive (last value) forecast. Intervals follow Hyndman &
Athanasopoulos (*FPP3*, §5.5): the residual std of the one-season-ago forecast inside the
look-back window, ``sigma``, grows as ``sigma * sqrt(k + 1)`` with ``k = floor((h-1)/m)``
full seasons ahead; bounds are Gaussian quantiles. It has no parameters to train; the
benchmark evaluates it directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import torch
import torch.nn as nn
import torch.nn.functional as F

from ostinato.core.config import variant
from ostinato.core.errors import ConfigError
from ostinato.core.registry import register_variant


@dataclass
class SeasonalNaiveConfig:
    seq_len: int = 96
    pred_len: int = 96
    n_vars: int = 7
    out_vars: int = 0  # last out_vars variates; 0: all
    period: int = 24  # season length m (24 for hourly data with a daily cycle)


class SeasonalNaive(nn.Module):
    def __init__(self, cfg: SeasonalNaiveConfig):
        super().__init__()
        if not 1 <= cfg.period <= cfg.seq_len:
            raise ConfigError(f"model.period={cfg.period}: expected 1 <= period <= seq_len={cfg.seq_len}")
        self.cfg = cfg
        h = torch.arange(cfg.pred_len)
        # index into the look-back window of the value one (or more) seasons ago
        self.register_buffer("src", cfg.seq_len - cfg.period + (h % cfg.period), persistent=False)
        self.register_buffer("k", (h // cfg.period).float(), persistent=False)

    def _target(self, x: torch.Tensor) -> torch.Tensor:
        c = self.cfg.out_vars or self.cfg.n_vars
        return x[..., -c:]  # (B, L, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, L, C) -> (B, H, out)."""
        return self._target(x)[:, self.src]  # (B, H, out)

    def predict(self, batch: dict) -> torch.Tensor:
        return self(batch["x"])

    def predict_interval(self, batch: dict, alpha: float, n_samples: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._target(batch["x"])  # (B, L, out)
        m = self.cfg.period
        resid = x[:, m:] - x[:, :-m]  # (B, L - m, out)
        if resid.shape[1] == 0:
            raise ConfigError(f"model.period={m}: the look-back window has no full season to estimate intervals")
        sigma = resid.pow(2).mean(1, keepdim=True).sqrt()  # (B, 1, out)
        z = NormalDist().inv_cdf(1 - alpha / 2)
        half = z * sigma * torch.sqrt(self.k + 1)[None, :, None]  # (B, H, out)
        mean = self(batch["x"])
        return mean - half, mean + half

    def loss(self, batch: dict):
        loss = F.mse_loss(self.predict(batch), batch["y"])
        return loss, {"mse": float(loss.detach())}


register_variant("seasonal_naive", SeasonalNaiveConfig, SeasonalNaive,
                 "Seasonal naive forecast (value one season ago) with FPP Gaussian intervals; no training.")


TestSeasonalNaiveConfig = variant(SeasonalNaiveConfig, "TestSeasonalNaiveConfig", seq_len=24, pred_len=12, period=4)


register_variant("test_seasonal_naive", TestSeasonalNaiveConfig, SeasonalNaive,
                 "Tiny seasonal naive for tests (period 4).")
