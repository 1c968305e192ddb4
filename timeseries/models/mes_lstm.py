"""MES-LSTM (Mathonsi & van Zyl, "A Statistics and Deep Learning Hybrid Method for
Multivariate Time Series Forecasting and Mortality Modeling", *Forecasting* 4(1), 2022),
following the official TensorFlow code.

- **ES part**: Holt-Winters with additive trend and additive season, fitted per series and
  column with statsmodels *offline* (in the data loader, ``data.holt_winters=true``; see
  :mod:`ostinato.timeseries.data.holt_winters`). The batch carries ``x_base`` (level +
  season at each input step of the last ``x_base.shape[-1]`` input columns, subtracted from
  them) and ``y_base`` (the targets' level + season projected from the window's last step
  to each target step).
- **Inputs**: by default the targets' own de-levelled history (the target columns last).
  The official code instead feeds 30-day-lagged covariates and no target at all; the JHU
  loader offers that layout as ``data.inputs=lagged_covariates`` (its differences from the
  original are listed in :mod:`ostinato.timeseries.data.covid`).
- **LSTM part**: the input with the target columns de-levelled and deseasonalised
  (``x - x_base``) goes through an LSTM(50) with ReLU activations (Keras
  ``LSTM(50, activation="relu")``: candidate and cell-output activation ReLU, sigmoid
  gates, forget-gate bias 1, Glorot-uniform input kernel, Keras ``Orthogonal`` over the whole
  (hidden, 4 hidden) recurrent kernel; ``recurrent_init="per_gate"``, each gate's (hidden, hidden)
  block orthogonal on its own, is this project's earlier init); the last hidden state feeds the
  output layer. The output is re-trended (``+ y_base``) and, by the evaluator, descaled
  (MinMax (1e-5, 1) per series, undone with ``meta["loc"]``/``meta["scale"]``).
- **Intervals** (``head="bayes"``, the original): the output layer is Bayesian, a
  mean-field Gaussian over the weights trained with Flipout (Wen et al. 2018, as
  ``tfp.layers.DenseFlipout``: posterior mean N(0, 0.1) init, softplus scale from -3,
  deterministic bias, N(0, 1) prior). Loss = MSE + ``kl_weight`` x KL(q || prior)
  (set ``kl_weight`` to about 1 / number of training windows; TFP adds the unscaled KL).
  Point forecasts use the posterior mean weights; intervals draw ``eval.n_samples``
  (100) weight samples and take the alpha/2 and 1 - alpha/2 quantiles. These intervals
  carry weight (epistemic) uncertainty only, and training with sampled weights rewards
  low output variance: on M4 Hourly the 95 % intervals cover about 6 % of the test values
  with ``kl_weight`` 5e-6, and collapse to near zero width with the unscaled KL
  (``kl_weight=1``, TFP's default), where the network shrinks the features that the
  weight noise multiplies. Use ``head="quantile"`` for calibrated intervals (0.95 there).
- **Quantile option** (``head="quantile"``, not in the paper): a linear head predicts the
  ``quantiles`` and is trained with the pinball loss; the point forecast is the median.

Multi-step horizons use a direct multi-output layer (H x C outputs); the paper forecasts
one step. No per-window normalisation: the data is MinMax-scaled per series.

Recurrence slot (``model.mixer``, not in the paper): any causal core (B, L, D) mixer in place
of the Keras LSTM, ``model: {name: mes_lstm, mixer: {name: lru, d_state: 64}}``. The de-levelled
inputs map linearly to ``d_model = hidden`` (``Linear(d_in, hidden)``), the mixer runs over the
window in time order, and its output at the last step feeds the output layer, as the LSTM's last
hidden state does. The mixer keeps its own init; ``activation`` (the LSTM's) does not apply.
No mixer (the default): the Keras LSTM, unchanged. Every recurrence also runs step by step:
``init_state`` / ``step`` advance it one time step, and :meth:`MESLSTM.stream` over a window
gives the same last state as the full forward.

``feed_scaled`` (off by default, not in the original): when statsmodels fits a level
smoothing alpha close to 1 (typical for hourly M4 series), ``l_t + s_t`` follows ``y_t``
almost exactly and the de-levelled input carries next to no information; the option
feeds the scaled targets as extra LSTM input channels next to the residuals.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ostinato.core.config import variant
from ostinato.core.errors import ConfigError
from ostinato.core.mixer import MixerConfig, build_mixer
from ostinato.core.registry import register_variant


class KerasLSTM(nn.Module):
    """Single-layer LSTM with a configurable activation (Keras semantics). (B, L, D) -> h_L (B, H).

    ``recurrent_init="keras"``: Keras' ``Orthogonal`` on the whole (H, 4H) recurrent kernel (QR of a
    (4H, H) normal draw, signs fixed by diag(R), transposed), so K K^T = I_H and each gate block has
    singular values below 1. ``"per_gate"``: every (H, H) gate block orthogonal on its own, K K^T = 4 I_H,
    a recurrent matrix twice as large in norm; what this project did before matching Keras.
    """

    def __init__(self, d_in: int, hidden: int, activation: str = "relu", recurrent_init: str = "keras"):
        super().__init__()
        self.hidden = hidden
        self.act = torch.relu if activation == "relu" else torch.tanh
        self.w_x = nn.Linear(d_in, 4 * hidden)
        self.w_h = nn.Linear(hidden, 4 * hidden, bias=False)
        nn.init.xavier_uniform_(self.w_x.weight)  # Keras glorot_uniform over the whole (d_in, 4H) kernel
        if recurrent_init == "keras":  # Keras Orthogonal over the whole (H, 4H) kernel: orthonormal rows
            nn.init.orthogonal_(self.w_h.weight)  # (4H, H) = kernel^T: orthonormal columns, the same QR
        else:  # "per_gate": each (H, H) gate block orthogonal on its own (this project before 2026-12)
            for k in range(4):
                nn.init.orthogonal_(self.w_h.weight.data[k * hidden : (k + 1) * hidden])
        with torch.no_grad():
            self.w_x.bias.zero_()
            self.w_x.bias[hidden : 2 * hidden] = 1.0  # unit forget bias (order i, f, c, o)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, _ = x.shape
        gx = self.w_x(x)  # (B, L, 4H)
        h = x.new_zeros(B, self.hidden)
        c = x.new_zeros(B, self.hidden)
        for t in range(L):
            i, f, g, o = (gx[:, t] + self.w_h(h)).chunk(4, dim=-1)  # (B, H) each
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * self.act(g)
            h = torch.sigmoid(o) * self.act(c)
        return h  # (B, H)

    def init_state(self, batch_size: int, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.zeros(batch_size, self.hidden, device=device, dtype=dtype)
        return z, z.clone()  # (h, c), (B, H) each

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """One time step: x_t (B, D), state (h, c) -> h (B, H), (h, c)."""
        h, c = state
        i, f, g, o = (self.w_x(x_t) + self.w_h(h)).chunk(4, dim=-1)  # (B, H) each
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * self.act(g)
        h = torch.sigmoid(o) * self.act(c)
        return h, (h, c)


class MixerCell(nn.Module):
    """A causal core mixer as MES-LSTM's recurrence: Linear(d_in, hidden), the mixer over time, its
    last output. (B, L, d_in) -> (B, hidden); ``step`` advances it one time step."""

    def __init__(self, d_in: int, hidden: int, spec: MixerConfig):
        super().__init__()
        self.inp = nn.Linear(d_in, hidden)
        self.mixer = build_mixer(spec, hidden, causal=True, where="model.mixer", host="mes_lstm")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.mixer(self.inp(x))  # (B, L, hidden)
        return y[:, -1]  # (B, hidden)

    def init_state(self, batch_size: int, device=None, dtype=None):
        return self.mixer.init_state(batch_size, device=device, dtype=dtype)

    def step(self, x_t: torch.Tensor, state):
        """x_t (B, d_in) -> (B, hidden), the next state."""
        return self.mixer.step(self.inp(x_t), state)


class FlipoutLinear(nn.Module):
    """Mean-field Gaussian dense layer trained with Flipout; deterministic bias."""

    def __init__(self, d_in: int, d_out: int, prior_std: float = 1.0):
        super().__init__()
        self.prior_std = prior_std
        self.w_mu = nn.Parameter(torch.randn(d_out, d_in) * 0.1)
        self.w_rho = nn.Parameter(-3.0 + 0.1 * torch.randn(d_out, d_in))
        self.bias = nn.Parameter(torch.zeros(d_out))
        self.w_rho._no_weight_decay = True

    @property
    def sigma(self) -> torch.Tensor:
        return F.softplus(self.w_rho)

    def forward(self, x: torch.Tensor, sample: bool = True) -> torch.Tensor:
        mean = F.linear(x, self.w_mu, self.bias)  # (B, out)
        if not sample:
            return mean
        dw = self.sigma * torch.randn_like(self.w_mu)  # one weight perturbation per batch
        s_in = torch.randint_like(x, 2) * 2 - 1  # (B, in) random signs
        s_out = torch.randint_like(mean, 2) * 2 - 1  # (B, out)
        return mean + F.linear(x * s_in, dw) * s_out

    def sample(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """n independent weight draws: (n, B, out)."""
        w = self.w_mu + self.sigma * torch.randn(n, *self.w_mu.shape, device=x.device, dtype=x.dtype)  # (n, out, in)
        return torch.einsum("bi,noi->nbo", x, w) + self.bias  # (n, B, out)

    def kl(self) -> torch.Tensor:
        s, p = self.sigma, self.prior_std
        return (torch.log(p / s) + (s**2 + self.w_mu**2) / (2 * p**2) - 0.5).sum()


def pinball_loss(pred: torch.Tensor, y: torch.Tensor, qs: torch.Tensor) -> torch.Tensor:
    """pred (..., Q), y (...), qs (Q,): mean of max(q d, (q - 1) d), d = y - pred."""
    d = y.unsqueeze(-1) - pred
    return torch.maximum(qs * d, (qs - 1) * d).mean()


def quantile_index(qs: list[float], q: float) -> int:
    for i, v in enumerate(qs):
        if abs(v - q) < 1e-9:
            return i
    raise ConfigError(f"model.quantiles={qs} has no {q:g} quantile; add it (intervals at alpha={2 * min(q, 1 - q):g} need it)")


@dataclass
class MESLSTMConfig:
    seq_len: int = 14
    pred_len: int = 1
    n_vars: int = 2  # input columns (targets last)
    out_vars: int = 0  # forecast the last out_vars columns; 0: all
    hidden: int = 50
    activation: Literal["relu", "tanh"] = "relu"
    head: Literal["bayes", "quantile"] = "bayes"
    quantiles: list[float] = field(default_factory=lambda: [0.025, 0.05, 0.1, 0.5, 0.9, 0.95, 0.975])
    kl_weight: float = 1e-4  # multiplies the summed KL; about 1 / number of training windows
    prior_std: float = 1.0
    holt_winters: bool = True  # use the batch's Holt-Winters baselines (x_base, y_base)
    feed_scaled: bool = False  # also feed the scaled targets themselves (not in the original; see the module doc)
    mixer: Optional[MixerConfig] = None  # the recurrence: a causal core mixer in place of the LSTM; None: the Keras LSTM
    recurrent_init: Literal["keras", "per_gate"] = "keras"  # LSTM recurrent kernel: Keras Orthogonal over all gates, or per gate block

    def validate(self) -> None:
        if self.mixer is not None:
            for k, v, d in (("activation", self.activation, "relu"), ("recurrent_init", self.recurrent_init, "keras")):
                if v != d:
                    raise ConfigError(f"model.{k}={v!r} is the Keras LSTM's; with model.mixer set it does not apply, drop it")
        if self.head == "quantile":
            if not self.quantiles or any(not 0 < q < 1 for q in self.quantiles):
                raise ConfigError(f"model.quantiles={self.quantiles}: expected values in (0, 1)")
            quantile_index(self.quantiles, 0.5)


class MESLSTM(nn.Module):
    def __init__(self, cfg: MESLSTMConfig):
        super().__init__()
        self.cfg = cfg
        self.c_out = cfg.out_vars or cfg.n_vars
        d_in = cfg.n_vars + (self.c_out if cfg.feed_scaled and cfg.holt_winters else 0)
        if cfg.mixer is None:
            self.lstm = KerasLSTM(d_in, cfg.hidden, cfg.activation, cfg.recurrent_init)
        else:
            self.cell = MixerCell(d_in, cfg.hidden, cfg.mixer)
        n_out = cfg.pred_len * self.c_out
        if cfg.head == "bayes":
            self.out = FlipoutLinear(cfg.hidden, n_out, cfg.prior_std)
        else:
            self.out = nn.Linear(cfg.hidden, n_out * len(cfg.quantiles))
            self.register_buffer("qs", torch.tensor(cfg.quantiles, dtype=torch.float32), persistent=False)

    @property
    def recurrence(self) -> nn.Module:
        """The Keras LSTM, or the mixer in the slot: (B, L, d_in) -> (B, hidden), with init_state/step."""
        return self.lstm if self.cfg.mixer is None else self.cell

    def init_state(self, batch_size: int, device=None, dtype=None):
        return self.recurrence.init_state(batch_size, device=device, dtype=dtype)

    def step(self, f_t: torch.Tensor, state):
        """One time step of the recurrence on the input features f_t (B, d_in) -> (B, hidden), state."""
        return self.recurrence.step(f_t, state)

    def stream(self, batch: dict) -> torch.Tensor:
        """The window's last hidden state, computed step by step: equals the full forward's. (B, hidden)"""
        f, _ = self.features(batch)  # (B, L, d_in)
        state = self.init_state(f.shape[0], device=f.device, dtype=f.dtype)
        h = None
        for t in range(f.shape[1]):
            h, state = self.step(f[:, t], state)
        return h

    def _encode(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        f, base = self.features(batch)
        return self.recurrence(f), base  # (B, hidden), (B, H, C_out)

    def features(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The recurrence's input (B, L, d_in) and the baseline added back to the output (B, H, C_out)."""
        x = batch["x"]  # (B, L, C_in)
        base = torch.zeros(x.shape[0], self.cfg.pred_len, self.c_out, device=x.device, dtype=x.dtype)
        if self.cfg.holt_winters:
            if "x_base" not in batch:
                raise ConfigError("MES-LSTM with model.holt_winters=true needs Holt-Winters baselines: set data.holt_winters=true")
            nb = batch["x_base"].shape[-1]  # the de-levelled input columns, last: the targets (or every covariate)
            if self.cfg.feed_scaled and nb != self.c_out:
                raise ConfigError("model.feed_scaled feeds the scaled targets, and these inputs hold none "
                                  "(data.inputs=lagged_covariates); drop model.feed_scaled")
            resid = torch.cat([x[..., : x.shape[-1] - nb], x[..., -nb:] - batch["x_base"]], dim=-1)  # (B, L, C_in)
            x = torch.cat([resid, x[..., -self.c_out :]], dim=-1) if self.cfg.feed_scaled else resid  # (B, L, C_in [+ C_out])
            base = batch["y_base"]  # (B, H, C_out)
        return x, base

    def _shape(self, out: torch.Tensor) -> torch.Tensor:
        return out.reshape(*out.shape[:-1], self.cfg.pred_len, self.c_out)  # (..., H, C_out)

    def predict(self, batch: dict) -> torch.Tensor:
        h, base = self._encode(batch)
        if self.cfg.head == "bayes":
            return self._shape(self.out(h, sample=False)) + base  # (B, H, C_out)
        q = self.out(h).reshape(h.shape[0], self.cfg.pred_len, self.c_out, -1)  # (B, H, C, Q)
        return q[..., quantile_index(self.cfg.quantiles, 0.5)] + base

    def predict_interval(self, batch: dict, alpha: float, n_samples: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
        h, base = self._encode(batch)
        if self.cfg.head == "bayes":
            draws = self._shape(self.out.sample(h, n_samples)) + base  # (n, B, H, C)
            qs = torch.tensor([alpha / 2, 1 - alpha / 2], device=h.device, dtype=draws.dtype)
            lo, hi = torch.quantile(draws, qs, dim=0)  # (B, H, C) each
            return lo, hi
        q = self.out(h).reshape(h.shape[0], self.cfg.pred_len, self.c_out, -1) + base.unsqueeze(-1)  # (B, H, C, Q)
        lo = q[..., quantile_index(self.cfg.quantiles, alpha / 2)]
        hi = q[..., quantile_index(self.cfg.quantiles, 1 - alpha / 2)]
        return torch.minimum(lo, hi), torch.maximum(lo, hi)

    def loss(self, batch: dict):
        h, base = self._encode(batch)
        y = batch["y"]  # (B, H, C_out)
        if self.cfg.head == "bayes":
            pred = self._shape(self.out(h, sample=True)) + base
            mse = F.mse_loss(pred, y)
            kl = self.out.kl()
            return mse + self.cfg.kl_weight * kl, {"mse": float(mse.detach()), "kl": float(kl.detach())}
        q = self.out(h).reshape(h.shape[0], self.cfg.pred_len, self.c_out, -1) + base.unsqueeze(-1)  # (B, H, C, Q)
        loss = pinball_loss(q, y, self.qs)
        return loss, {"pinball": float(loss.detach())}


register_variant("mes_lstm", MESLSTMConfig, MESLSTM,
                 "MES-LSTM (Mathonsi & van Zyl 2022): offline Holt-Winters + ReLU LSTM(50) + Flipout Bayesian head.")


TestMESLSTMConfig = variant(MESLSTMConfig, "TestMESLSTMConfig", hidden=8)


register_variant("test_mes_lstm", TestMESLSTMConfig, MESLSTM, "Tiny MES-LSTM for tests (hidden 8).")
