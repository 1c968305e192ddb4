"""The JHU loader's input layouts: ``inputs=targets`` (the targets' own history, the default) and
``inputs=lagged_covariates`` (the official MES-LSTM code's: other columns only, targets ``lag`` days
further on). Checked on small synthetic JHU files: which days and columns each window holds, the
same test days in both layouts, the baselines' shapes, MES-LSTM training on it, one-line errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ostinato.core.errors import ConfigError
from ostinato.core.registry import create_model
from ostinato.timeseries.data.covid import MINMAX_LO, CovidConfig, covid_jhu

N = 200  # days
DAYS = [f"{1 + (d // 28) % 12}/{1 + d % 28}/{20 + d // 336}" for d in range(N)]  # 28-day months, strictly increasing


def _series(kind: str, c: int) -> np.ndarray:
    d = np.arange(N, dtype=float)
    return {"deaths": 10 * c + d + (d % 7), "confirmed": 100 * c + 3 * d, "recovered": 50 + c + d ** 1.5}[kind]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("jhu")
    d = r / "timeseries" / "covid19_jhu"
    d.mkdir(parents=True)
    for kind in ("deaths", "confirmed", "recovered"):
        rows = [f",{name},0,0," + ",".join(f"{v:g}" for v in _series(kind, c)) for c, name in enumerate(("A", "B"))]
        (d / f"time_series_covid19_{kind}_global.csv").write_text(
            "Province/State,Country/Region,Lat,Long," + ",".join(DAYS) + "\n" + "\n".join(rows) + "\n")
    return r


def _scaled(v: np.ndarray, n_tr: int) -> np.ndarray:
    lo, hi = v[:n_tr].min(), v[:n_tr].max()
    sc = (hi - lo) / (1 - MINMAX_LO)
    return (v - (lo - MINMAX_LO * sc)) / sc


def test_lagged_covariates_layout(root):
    L, H, lag = 5, 2, 30
    n_tr, n_va = int(0.85 * N), int(0.05 * N)
    kw = dict(countries=["A", "B"], seq_len=L, pred_len=H, holt_winters=False)
    own = covid_jhu(CovidConfig(**kw), root)
    lagd = covid_jhu(CovidConfig(inputs="lagged_covariates", lag=lag, **kw), root)
    assert own.model_kwargs["n_vars"] == 2 and lagd.model_kwargs == {"n_vars": 1, "seq_len": L, "pred_len": H, "out_vars": 2}
    # the first training window of country B: covariate days 0..L-1, targets of days L+lag .. L+lag+H-1
    it = lagd.train[len(lagd.train) // 2]
    assert it["series"] == 1
    np.testing.assert_allclose(it["x"][:, 0].numpy(), _scaled(_series("recovered", 1), n_tr)[:L], rtol=1e-5)
    for j, kind in enumerate(("deaths", "confirmed")):
        np.testing.assert_allclose(it["y"][:, j].numpy(), _scaled(_series(kind, 1), n_tr)[L + lag : L + lag + H], rtol=1e-5)
    # the same target days in both layouts: training targets end before n_tr, test targets are the last days
    assert len(lagd.train) == 2 * (n_tr - lag - L - H + 1) and len(own.train) == 2 * (n_tr - L - H + 1)
    assert len(lagd.test) == len(own.test) == 2 * (N - n_tr - n_va - H + 1)
    assert len(lagd.val) == len(own.val)
    for a, b in zip((own.test[0], own.test[len(own.test) - 1]), (lagd.test[0], lagd.test[len(lagd.test) - 1])):
        assert torch.equal(a["y"], b["y"]) and a["series"] == b["series"]
    assert lagd.inference["inputs"] == "lagged_covariates" and "inputs" not in own.inference


def test_lagged_layout_baselines_and_training(root):
    kw = dict(countries=["A", "B"], seq_len=8, pred_len=2, hw_init="heuristic", inputs="lagged_covariates", lag=10)
    b = covid_jhu(CovidConfig(**kw), root)
    it = b.train[3]
    assert it["x_base"].shape == (8, 1) and it["y_base"].shape == (2, 2)
    own = covid_jhu(CovidConfig(**{**kw, "inputs": "targets", "lag": 30}), root)
    assert own.train[3]["x_base"].shape == (8, 2)
    torch.manual_seed(0)
    m = create_model("test_mes_lstm", **b.model_kwargs)
    batch = {k: torch.stack([b.train[i][k] for i in range(6)]) for k in ("x", "y", "x_base", "y_base")}
    loss, _ = m.loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and m.lstm.w_x.weight.grad.abs().sum() > 0
    # the model de-levels the covariate (x - x_base) and adds the targets' baseline back
    p = m.predict(batch)
    p2 = m.predict({**batch, "x": batch["x"] + 1.0, "x_base": batch["x_base"] + 1.0, "y_base": batch["y_base"] + 2.0})
    torch.testing.assert_close(p2, p + 2.0)
    with pytest.raises(ConfigError, match="model.feed_scaled feeds the scaled targets"):
        create_model("test_mes_lstm", feed_scaled=True, **b.model_kwargs).predict(batch)


def test_layout_errors_are_one_line(root):
    for bad, msg in (({"covariates": ["deaths"]}, r"data.covariates=\['deaths'\]: expected JHU files other than the targets"),
                     ({"covariates": []}, "data.covariates=\\[\\]"), ({"lag": -1}, "data.lag=-1"),
                     ({"lag": 180}, r"too few for seq_len=14, pred_len=1, lag=180")):
        with pytest.raises(Exception, match=msg) as e:
            covid_jhu(CovidConfig(inputs="lagged_covariates", holt_winters=False, countries=["A"], **bad), root)
        assert "\n" not in str(e.value)
