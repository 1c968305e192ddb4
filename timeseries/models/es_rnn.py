"""ES-RNN-style hybrid (Smyl, "A hybrid method of exponential smoothing and recurrent neural
networks for time series forecasting", IJF 36(1), 2020; M4 winner), the MES-LSTM family's
learned-ES variant.

Per series i, multiplicative Holt-Winters without trend whose coefficients are learned
jointly with the network by gradient descent: level smoothing alpha_i = sigmoid(.),
seasonal smoothing gamma_i = sigmoid(.) and ``period`` initial seasonal indices exp(.),
all in ``nn.Embedding`` tables indexed by the batch's ``series``::

    l_t = alpha y_t / s_t + (1 - alpha) l_{t-1}
    s_{t+m} = gamma y_t / l_t + (1 - gamma) s_t

Each input window is divided by its last level and by the seasonality and log-squashed,
run through a stack of dilated LSTMs (residual between blocks), and a linear layer gives,
per horizon step, the log-ratio quantiles; forecasts are ``exp(out) * l_last * s_future``.
Loss: pinball on the normalised log scale over ``quantiles`` (the median is the point
forecast, the outer ones the interval), plus Smyl's level-variability penalty.

Simplifications (documented choices): the ES recursion runs over the input window (not the
whole history), starting from the learned initial indices aligned to the window's phase
(``t0 mod period``) and ``l_0 = y_0 / s_0``; one seasonality (Smyl used 24 and 168 for
hourly); one model, no ensembling. Inputs must be positive (use ``data.scaling=none``
on M4). ``n_series`` must cover the data's series indices; a batch without ``series``
(unseen series) uses the mean of the learned coefficients.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ostinato.core.config import variant
from ostinato.core.errors import ConfigError
from ostinato.core.layers.rnn import LSTM, RNNConfig
from ostinato.core.registry import register_variant

from .mes_lstm import pinball_loss, quantile_index


class DilatedLSTM(nn.Module):
    """LSTM over every ``dilation``-th step: (B, L, D) -> (B, L, H); front-padded to a multiple."""

    def __init__(self, d_in: int, hidden: int, dilation: int):
        super().__init__()
        self.d = dilation
        self.rnn = LSTM(RNNConfig(d_model=d_in, d_hidden=hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        pad = (-L) % self.d
        if pad:
            x = torch.cat([x[:, :1].expand(-1, pad, -1), x], dim=1)  # (B, L + pad, D)
        n = x.shape[1] // self.d
        xs = x.reshape(B, n, self.d, D).transpose(1, 2).reshape(B * self.d, n, D)  # (B*d, n, D)
        y, _ = self.rnn(xs)  # (B*d, n, H)
        y = y.reshape(B, self.d, n, -1).transpose(1, 2).reshape(B, n * self.d, -1)  # (B, L + pad, H)
        return y[:, pad:]  # (B, L, H)


@dataclass
class ESRNNConfig:
    seq_len: int = 96
    pred_len: int = 48
    n_vars: int = 1  # univariate
    out_vars: int = 0
    n_series: int = 414  # rows of the per-series coefficient tables (M4 Hourly: 414)
    period: int = 24
    hidden: int = 40
    dilations: list[int] = field(default_factory=lambda: [1, 4, 24])
    quantiles: list[float] = field(default_factory=lambda: [0.025, 0.05, 0.1, 0.5, 0.9, 0.95, 0.975])
    level_penalty: float = 0.0  # Smyl's level variability penalty weight
    eps: float = 1e-6  # floor for inputs and levels before division/log (numeric guard)

    def validate(self) -> None:
        if self.n_vars != 1:
            raise ConfigError(f"es_rnn is univariate: expected n_vars=1 (data.features=S), got {self.n_vars}")
        if self.n_series < 1 or self.period < 1 or not self.dilations:
            raise ConfigError("es_rnn: n_series and period must be >= 1 and dilations non-empty")
        quantile_index(self.quantiles, 0.5)


class ESRNN(nn.Module):
    def __init__(self, cfg: ESRNNConfig):
        super().__init__()
        self.cfg = cfg
        m = cfg.period
        self.alpha = nn.Embedding(cfg.n_series, 1)
        self.gamma = nn.Embedding(cfg.n_series, 1)
        self.init_season = nn.Embedding(cfg.n_series, m)
        nn.init.constant_(self.alpha.weight, 0.0)  # alpha = 0.5
        nn.init.constant_(self.gamma.weight, -1.0)  # gamma ~ 0.27
        nn.init.zeros_(self.init_season.weight)  # indices = 1
        for emb in (self.alpha, self.gamma, self.init_season):
            emb.weight._no_weight_decay = True
        blocks, d = [], 1
        for dil in cfg.dilations:
            blocks.append(DilatedLSTM(d, cfg.hidden, dil))
            d = cfg.hidden
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(cfg.hidden, cfg.pred_len * len(cfg.quantiles))
        self.register_buffer("qs", torch.tensor(cfg.quantiles, dtype=torch.float32), persistent=False)

    def _coeffs(self, batch: dict, B: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = batch.get("series")
        if s is None:
            w = [e.weight.mean(0, keepdim=True).expand(B, -1) for e in (self.alpha, self.gamma, self.init_season)]
            return torch.sigmoid(w[0]), torch.sigmoid(w[1]), torch.exp(w[2])
        s = torch.as_tensor(s, device=device).long()
        if int(s.max()) >= self.cfg.n_series:
            raise ConfigError(f"series index {int(s.max())} >= model.n_series={self.cfg.n_series}; set model.n_series to the number of series")
        return torch.sigmoid(self.alpha(s)), torch.sigmoid(self.gamma(s)), torch.exp(self.init_season(s))

    def smooth(self, batch: dict):
        """ES over the window: levels (B, L), seasonal indices (B, L + H)."""
        y = batch["x"][..., -1].clamp_min(self.cfg.eps)  # (B, L)
        B, L = y.shape
        m, H = self.cfg.period, self.cfg.pred_len
        alpha, gamma, s0 = self._coeffs(batch, B, y.device)  # (B, 1), (B, 1), (B, m)
        t0 = torch.as_tensor(batch.get("t0", torch.zeros(B)), device=y.device).long()
        phase = (t0[:, None] + torch.arange(m, device=y.device)) % m  # (B, m)
        seas = list(torch.gather(s0, 1, phase).unbind(1))  # s for steps 0..m-1
        lev = [y[:, 0] / seas[0]]
        seas.append(gamma[:, 0] * y[:, 0] / lev[0] + (1 - gamma[:, 0]) * seas[0])  # s_m
        for t in range(1, L):
            lv = alpha[:, 0] * y[:, t] / seas[t] + (1 - alpha[:, 0]) * lev[-1]
            lev.append(lv.clamp_min(self.cfg.eps))
            seas.append(gamma[:, 0] * y[:, t] / lev[-1] + (1 - gamma[:, 0]) * seas[t])  # s_{t+m}
        while len(seas) < L + H:  # beyond what the recursion defines: repeat the last season
            seas.append(seas[len(seas) - m])
        return torch.stack(lev, 1), torch.stack(seas[: L + H], 1)  # (B, L), (B, L + H)

    def _quantiles(self, batch: dict):
        y = batch["x"][..., -1].clamp_min(self.cfg.eps)  # (B, L)
        L, H = y.shape[1], self.cfg.pred_len
        lev, seas = self.smooth(batch)
        last = lev[:, -1:]  # (B, 1)
        z = torch.log(y / (last * seas[:, :L]))[..., None]  # (B, L, 1)
        h = z
        for i, blk in enumerate(self.blocks):
            out = blk(h)
            h = out if i == 0 else h + out  # residual between blocks
        q = self.head(h[:, -1]).reshape(-1, H, len(self.cfg.quantiles))  # (B, H, Q) log-ratios
        return q, last, seas[:, L:], lev

    def _to_scale(self, q: torch.Tensor, last: torch.Tensor, fut: torch.Tensor) -> torch.Tensor:
        return torch.exp(q) * (last * fut)[..., None]  # (B, H, Q)

    def predict(self, batch: dict) -> torch.Tensor:
        q, last, fut, _ = self._quantiles(batch)
        return self._to_scale(q, last, fut)[..., quantile_index(self.cfg.quantiles, 0.5)][..., None]  # (B, H, 1)

    def predict_interval(self, batch: dict, alpha: float, n_samples: int = 0):
        q, last, fut, _ = self._quantiles(batch)
        v = self._to_scale(q, last, fut)
        lo = v[..., quantile_index(self.cfg.quantiles, alpha / 2)][..., None]
        hi = v[..., quantile_index(self.cfg.quantiles, 1 - alpha / 2)][..., None]
        return torch.minimum(lo, hi), torch.maximum(lo, hi)  # (B, H, 1) each

    def loss(self, batch: dict):
        q, last, fut, lev = self._quantiles(batch)
        target = torch.log(batch["y"][..., -1].clamp_min(self.cfg.eps) / (last * fut))  # (B, H)
        loss = pinball_loss(q, target, self.qs)
        logs = {"pinball": float(loss.detach())}
        if self.cfg.level_penalty > 0 and lev.shape[1] > 2:
            d = torch.diff(torch.log(lev), dim=1)  # (B, L-1)
            lvp = torch.diff(d, dim=1).pow(2).mean()
            loss = loss + self.cfg.level_penalty * lvp
            logs["level_penalty"] = float(lvp.detach())
        return loss, logs


register_variant("es_rnn", ESRNNConfig, ESRNN,
                 "ES-RNN-style (Smyl 2020): per-series learned multiplicative ES + dilated LSTMs, pinball intervals.")


TestESRNNConfig = variant(ESRNNConfig, "TestESRNNConfig", seq_len=24, pred_len=12, n_series=8, period=4, hidden=8,
                          dilations=[1, 2])


register_variant("test_es_rnn", TestESRNNConfig, ESRNN, "Tiny ES-RNN for tests.")
