"""pytorch-forecasting adapter: each model trains one epoch with pytorch-forecasting's own
(Lightning) Trainer on a TimeSeriesDataSet and predicts."""
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    parts = []
    for g in range(3):
        t = np.arange(240)
        parts.append(pd.DataFrame({
            "time_idx": t, "series": str(g),
            "load": 10 + np.sin(2 * np.pi * t / 24 + g) + 0.01 * t + rng.normal(0, 0.1, len(t)),
            "temp": 5 + np.cos(2 * np.pi * t / 24 + g) + rng.normal(0, 0.1, len(t)),
        }))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(autouse=True)
def _cwd_stays_clean(tmp_path, monkeypatch):
    """Run from an empty folder and check Lightning wrote nothing there (no lightning_logs/)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield
    assert not any(cwd.iterdir()), sorted(p.name for p in cwd.iterdir())


def _no_logs(root) -> dict:
    """Trainer settings that write nothing into the working directory (Lightning's default
    ``lightning_logs/`` goes to the cwd): no logger, no checkpoints, root under tmp_path."""
    return dict(logger=False, enable_checkpointing=False, default_root_dir=str(root), accelerator="cpu")


def _trainer(root):
    import lightning.pytorch as pl

    return pl.Trainer(max_epochs=1, limit_train_batches=4, enable_progress_bar=False,
                      enable_model_summary=False, **_no_logs(root))


def test_import_of_timeseries_stays_lazy():
    code = "import sys, ostinato.timeseries.domain; print(sorted(m for m in ('lightning', 'pytorch_forecasting', 'statsmodels', 'matplotlib') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_chimera_forecaster_trains_and_predicts(frame, tmp_path):
    from pytorch_forecasting import TimeSeriesDataSet
    from pytorch_forecasting.metrics import MultiLoss

    from ostinato.timeseries.pf_adapter import ChimeraForecaster

    train = TimeSeriesDataSet(frame[frame.time_idx < 200], time_idx="time_idx", target=["load", "temp"],
                              group_ids=["series"], max_encoder_length=48, max_prediction_length=12,
                              time_varying_unknown_reals=["load", "temp"])
    pred_ds = TimeSeriesDataSet.from_dataset(train, frame, predict=True, stop_randomization=True)
    model = ChimeraForecaster.from_dataset(train, d_model=8, d_state=4, patch_len=8, stride=8, kernel_size=5, learning_rate=1e-3)
    assert isinstance(model.loss, MultiLoss) and model.net.cfg.n_vars == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(tmp_path).fit(model, train_dataloaders=train.to_dataloader(train=True, batch_size=16))
        pred = model.predict(pred_ds.to_dataloader(train=False, batch_size=16), trainer_kwargs=_no_logs(tmp_path))
    assert len(pred) == 2 and pred[0].shape == (3, 12)
    assert abs(float(pred[0].mean()) - 13) < 5  # rescaled to the target's original scale


def test_mes_lstm_forecaster_trains_and_predicts_quantiles(frame, tmp_path):
    from pytorch_forecasting import TimeSeriesDataSet

    from ostinato.core.errors import ConfigError
    from ostinato.timeseries.pf_adapter import MESLSTMForecaster

    kw = dict(time_idx="time_idx", target="load", group_ids=["series"], max_encoder_length=48,
              max_prediction_length=12, time_varying_unknown_reals=["load"])
    with pytest.raises(ConfigError, match="target_normalizer=None"):
        MESLSTMForecaster.from_dataset(TimeSeriesDataSet(frame[frame.time_idx < 200], **kw), period=24)
    train = TimeSeriesDataSet(frame[frame.time_idx < 200], target_normalizer=None, **kw)
    pred_ds = TimeSeriesDataSet.from_dataset(train, frame, predict=True, stop_randomization=True)
    model = MESLSTMForecaster.from_dataset(train, period=24, hidden=8, learning_rate=1e-3)
    assert model.hw.shape == (3, 3)  # statsmodels alpha, beta, gamma per series
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(tmp_path).fit(model, train_dataloaders=train.to_dataloader(train=True, batch_size=16))
        q = model.predict(pred_ds.to_dataloader(train=False, batch_size=16), mode="quantiles",
                          trainer_kwargs=_no_logs(tmp_path))
    assert q.shape == (3, 12, 7)  # QuantileLoss' seven quantiles
    assert abs(float(q[..., 3].mean()) - 13) < 5
