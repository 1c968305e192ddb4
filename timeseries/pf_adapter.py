"""pytorch-forecasting adapter: Chimera and MES-LSTM as ``BaseModel`` subclasses.

Importing this module imports pytorch-forecasting and Lightning (slow); nothing else in
``ostinato.timeseries`` does. Both classes are built with ``from_dataset`` on a
``TimeSeriesDataSet`` and train with pytorch-forecasting's own Lightning ``Trainer``;
``predict`` then works as for any pytorch-forecasting model::

    from ostinato.timeseries.pf_adapter import ChimeraForecaster, MESLSTMForecaster
    model = ChimeraForecaster.from_dataset(training, d_model=32)   # target=[...] variates
    trainer = lightning.pytorch.Trainer(max_epochs=1)
    trainer.fit(model, train_dataloaders=training.to_dataloader(train=True))
    model.predict(validation.to_dataloader(train=False))

**ChimeraForecaster**: the dataset's targets are the variates (``target=[...]`` gives a
``MultiLoss``; one target works too). The encoder's normalised target columns
(``encoder_cont``) form the (B, L, V) input of :class:`~.models.chimera.Chimera`; its
forecast is rescaled with the dataset's target normaliser (``transform_output``). Point
losses only (MAE by default): Chimera forecasts a point per step. Requires fixed encoder
and prediction lengths. Other covariates are not used.

**MESLSTMForecaster** (one target): Holt-Winters (additive trend and season) parameters
alpha, beta, gamma are fitted per group with statsmodels *offline*, in ``from_dataset``, on
the training data (MES-LSTM's offline ES). The adapter only sees windows, so in
``forward`` each encoder window is MinMax-scaled to (1e-5, 1) and the recursion is re-run
over the window with its group's parameters from statsmodels' heuristic initial state
(level and trend from the first two seasons); the LSTM(50, relu) sees the de-levelled,
deseasonalised window and its output is added to the projected level and season and descaled.
Intervals come from a quantile head trained with ``QuantileLoss`` (pinball) instead of the
original Bayesian layer, so ``predict(mode="quantiles")`` works. Use
``target_normalizer=None`` in the dataset (the model scales each window itself). Unseen
groups use the mean parameters.
"""
from __future__ import annotations

import numpy as np
import torch
from pytorch_forecasting.data import TimeSeriesDataSet
from pytorch_forecasting.data.encoders import NaNLabelEncoder, TorchNormalizer
from pytorch_forecasting.metrics import MAE, MultiLoss, QuantileLoss
from pytorch_forecasting.models.base import BaseModel

from ostinato.core.errors import ConfigError

from .data.holt_winters import fit_holt_winters
from .models.chimera import Chimera, ChimeraConfig
from .models.mes_lstm import KerasLSTM


def _check_fixed_lengths(dataset: TimeSeriesDataSet, name: str) -> None:
    if dataset.min_encoder_length != dataset.max_encoder_length:
        raise ConfigError(f"{name}: needs a fixed encoder length (min_encoder_length == max_encoder_length)")
    if dataset.min_prediction_length != dataset.max_prediction_length:
        raise ConfigError(f"{name}: needs a fixed prediction length (min_prediction_length == max_prediction_length)")
    if dataset.randomize_length is not None:
        raise ConfigError(f"{name}: randomize_length must be None")
    if isinstance(dataset.target_normalizer, NaNLabelEncoder):
        raise ConfigError(f"{name}: regression targets only")


class ChimeraForecaster(BaseModel):
    def __init__(self, n_vars: int, seq_len: int, pred_len: int, target_positions: list[int],
                 chimera: dict | None = None, loss=None, **kwargs):
        self.save_hyperparameters(ignore=["loss"])
        super().__init__(loss=loss if loss is not None else MAE(), **kwargs)
        fields = dict(chimera or {})
        self.net = Chimera(ChimeraConfig(task="forecast", n_vars=n_vars, seq_len=seq_len, pred_len=pred_len, **fields))

    def forward(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pos = torch.as_tensor(self.hparams.target_positions, device=x["encoder_cont"].device)
        z = x["encoder_cont"][..., pos]  # (B, L, V) normalised targets
        y = self.net(z)  # (B, H, V)
        if self.n_targets > 1:
            pred = [y[..., i : i + 1] for i in range(y.shape[-1])]  # V x (B, H, 1)
        else:
            pred = y[..., :1]  # (B, H, 1)
        return self.to_network_output(prediction=self.transform_output(pred, target_scale=x["target_scale"]))

    @classmethod
    def from_dataset(cls, dataset: TimeSeriesDataSet, **kwargs):
        _check_fixed_lengths(dataset, "ChimeraForecaster")
        targets = list(dataset.target_names)
        missing = [t for t in targets if t not in dataset.reals]
        if missing:
            raise ConfigError(f"ChimeraForecaster: target(s) {missing} must be continuous (in the dataset's reals)")
        loss = kwargs.pop("loss", MAE())
        if isinstance(loss, QuantileLoss) or (isinstance(loss, MultiLoss) and any(isinstance(m, QuantileLoss) for m in loss.metrics)):
            raise ConfigError("ChimeraForecaster gives point forecasts: use a point loss such as MAE, RMSE or SMAPE")
        if len(targets) > 1 and not isinstance(loss, MultiLoss):
            loss = MultiLoss([type(loss)() for _ in targets])
        chimera = {k: kwargs.pop(k) for k in list(kwargs) if k in ChimeraConfig.__dataclass_fields__}
        new = dict(n_vars=len(targets), seq_len=dataset.max_encoder_length, pred_len=dataset.max_prediction_length,
                   target_positions=[dataset.reals.index(t) for t in targets], chimera=chimera, loss=loss)
        new.update(kwargs)
        return super().from_dataset(dataset, **new)


class MESLSTMForecaster(BaseModel):
    def __init__(self, seq_len: int, pred_len: int, period: int, hw_params: list[list[float]], hidden: int = 50,
                 activation: str = "relu", loss=None, **kwargs):
        self.save_hyperparameters(ignore=["loss"])
        super().__init__(loss=loss if loss is not None else QuantileLoss(), **kwargs)
        if seq_len < 2 * period:
            raise ConfigError(f"MESLSTMForecaster: encoder length {seq_len} must cover two seasons (2 x {period})")
        self.register_buffer("hw", torch.tensor(hw_params, dtype=torch.float32), persistent=True)  # (G, 3)
        n_q = len(self.loss.quantiles) if isinstance(self.loss, QuantileLoss) else 1
        self.lstm = KerasLSTM(1, hidden, activation)
        self.head = torch.nn.Linear(hidden, pred_len * n_q)
        self.n_q = n_q

    def holt_winters(self, z: torch.Tensor, groups: torch.Tensor):
        """Windowed additive HW: z (B, T) -> in-sample level+season (B, T), projected level+season (B, H)."""
        m, H = self.hparams.period, self.hparams.pred_len
        g = groups.long()
        known = g < len(self.hw)
        p = torch.where(known[:, None], self.hw[g.clamp(max=len(self.hw) - 1)], self.hw.mean(0))  # (B, 3)
        a, b, c = p[:, 0], p[:, 1], p[:, 2]
        first, second = z[:, :m], z[:, m : 2 * m]
        level = first.mean(1)  # statsmodels' heuristic-style initial state
        trend = (second.mean(1) - level) / m
        seas = list((first - level[:, None]).unbind(1))  # s_{1-m} .. s_0
        lev_out, seas_out = [], []
        for t in range(z.shape[1]):
            s_prev = seas[t]
            ln = a * (z[:, t] - s_prev) + (1 - a) * (level + trend)
            bn = b * (ln - level) + (1 - b) * trend
            seas.append(c * (z[:, t] - level - trend) + (1 - c) * s_prev)
            level, trend = ln, bn
            lev_out.append(level)
            seas_out.append(seas[-1])
        base = torch.stack(lev_out, 1) + torch.stack(seas_out, 1)  # (B, T)
        h = torch.arange(1, H + 1, device=z.device)
        full = torch.stack(seas, 1)  # (B, m + T): s_{1-m} .. s_{T-1}
        idx = z.shape[1] + ((h - 1) % m)  # index of s_{T-1+h-m(k+1)} in full
        fc = level[:, None] + full[:, idx]  # (B, H): level and season projected (MES-LSTM baseline)
        return base, fc

    def forward(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        y = x["encoder_target"].float()  # (B, T) on the original scale
        lo, hi = y.min(1, keepdim=True).values, y.max(1, keepdim=True).values
        scale = torch.where(hi > lo, (hi - lo) / (1 - 1e-5), torch.ones_like(hi))  # (B, 1)
        loc = lo - 1e-5 * scale
        z = (y - loc) / scale  # (B, T) in (1e-5, 1)
        base, fc = self.holt_winters(z, x["groups"][:, 0])
        h = self.lstm((z - base)[..., None])  # (B, hidden)
        out = self.head(h).reshape(len(y), self.hparams.pred_len, self.n_q)  # (B, H, Q)
        pred = (out + fc[..., None]) * scale[..., None] + loc[..., None]  # (B, H, Q) original scale
        return self.to_network_output(prediction=self.transform_output(pred, target_scale=x["target_scale"]))

    @classmethod
    def from_dataset(cls, dataset: TimeSeriesDataSet, period: int = 1, **kwargs):
        _check_fixed_lengths(dataset, "MESLSTMForecaster")
        if dataset.multi_target:
            raise ConfigError("MESLSTMForecaster: one target only (Holt-Winters per series)")
        norm = dataset.target_normalizer
        if not (isinstance(norm, TorchNormalizer) and norm.method == "identity" and norm.transformation in (None, "none")):
            raise ConfigError("MESLSTMForecaster scales each window itself: build the TimeSeriesDataSet with target_normalizer=None")
        groups = dataset.data["groups"][:, 0].numpy()
        target = dataset.data["target"][0].numpy().astype(np.float64)
        params = []
        for gid in range(int(groups.max()) + 1):
            y = target[groups == gid]
            if len(y) < 4:
                params.append([0.5, 0.1, 0.1])
                continue
            span = np.ptp(y) or 1.0
            p = fit_holt_winters((y - y.min()) / span, period, cache=False)
            params.append([p.alpha, p.beta, p.gamma])
        new = dict(seq_len=dataset.max_encoder_length, pred_len=dataset.max_prediction_length, period=period, hw_params=params)
        new.update(kwargs)
        return super().from_dataset(dataset, **new)
