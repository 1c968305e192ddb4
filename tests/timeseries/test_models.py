"""Model behaviour: shapes per task, Chimera's use of the core 2-D SSM, normalisation,
decomposition, DLinear/seasonal-naive formulas, MES-LSTM/ES-RNN heads and intervals."""
import math

import pytest
import torch
import torch.nn.functional as F

from ostinato.core import create_model
from ostinato.core.errors import ConfigError
from ostinato.core.layers.ssm2d import SelectiveSSM2D


def test_chimera_shapes_per_task():
    torch.manual_seed(0)
    x = torch.randn(3, 24, 4)
    m = create_model("test_chimera", n_vars=4)
    assert m(x).shape == (3, 12, 4)
    m = create_model("test_chimera", n_vars=4, out_vars=1)
    assert m(x).shape == (3, 12, 1)
    m = create_model("test_chimera", task="classify", n_vars=4, n_classes=5)
    assert m(x).shape == (3, 5)
    m = create_model("test_chimera", task="anomaly", n_vars=4)
    assert m(x).shape == (3, 24, 4) and m.anomaly_score({"x": x}).shape == (3, 24)
    with pytest.raises(ConfigError, match="expects input"):
        create_model("test_chimera", n_vars=3)(x)


def test_chimera_linear_skip_adds_the_linear_maps_of_the_decomposed_window():
    torch.manual_seed(0)
    x = torch.randn(3, 24, 4)
    m = create_model("test_chimera", n_vars=4, linear_skip=True, norm=False).eval()
    base = create_model("test_chimera", n_vars=4, norm=False).eval()
    base.load_state_dict({k: v for k, v in m.state_dict().items() if "_skip" not in k})
    seasonal, trend = m.decomp(x)  # (B, L, V) each
    skip = m.trend_skip(trend.transpose(1, 2)) + m.seasonal_skip(seasonal.transpose(1, 2))  # (B, V, H)
    with torch.no_grad():
        torch.testing.assert_close(m(x), base(x) + skip.transpose(1, 2))
    m.train()
    m(x).sum().backward()
    assert m.trend_skip.weight.grad.abs().sum() > 0 and m.seasonal_skip.weight.grad.abs().sum() > 0


def test_chimera_uses_core_2d_ssm_bidirectional_with_two_discretisations():
    m = create_model("chimera", n_vars=7, trend_dt=[1e-3, 1e-2], seasonal_dt=[5e-2, 2e-1])
    ssms = [mod for mod in m.modules() if isinstance(mod, SelectiveSSM2D)]
    assert len(ssms) == 4  # (trend, seasonal) x (forward, reversed variates), one layer each
    assert sorted(s.cfg.reverse_variates for s in ssms) == [False, False, True, True]
    trend_dt = F.softplus(m.trend.blocks[0].fwd.dt1_proj.bias)
    seas_dt = F.softplus(m.seasonal.blocks[0].fwd.dt1_proj.bias)
    assert trend_dt.max() <= 1e-2 + 1e-6 and seas_dt.min() >= 5e-2 - 1e-6  # small vs larger Δ1
    assert m.trend.blocks[0].fwd.cfg.dt_var_min == m.cfg.variate_dt[0]


def test_chimera_variates_interact_in_both_directions():
    torch.manual_seed(0)
    m = create_model("test_chimera", n_vars=3, norm=False, dropout=0.0).eval()
    x = torch.randn(1, 24, 3, requires_grad=True)
    y = m(x)
    for v_out in (0, 2):  # the first variate depends on the last and vice versa (bidirectional)
        g, = torch.autograd.grad(y[0, :, v_out].sum(), x, retain_graph=True)
        assert g[0, :, 2 - v_out].abs().sum() > 0


def test_chimera_channel_independent_has_no_flow_across_variates():
    torch.manual_seed(0)
    ci = create_model("test_chimera", n_vars=3, norm=False, dropout=0.0, channel_independent=True).eval()
    x = torch.randn(2, 24, 3, requires_grad=True)
    y = ci(x)
    g, = torch.autograd.grad(y[:, :, 0].sum(), x)
    assert g[:, :, 0].abs().sum() > 0 and g[:, :, 1:].abs().max() == 0  # variate 0 sees only itself
    with torch.no_grad():  # each variate alone gives the same forecast (weights shared over variates)
        alone = torch.cat([ci.trend(x[..., v : v + 1]) for v in range(3)], dim=1)  # (B, V, T', D)
        torch.testing.assert_close(ci.trend(x), alone)


def test_chimera_time_features_are_input_variates_only():
    torch.manual_seed(0)
    m = create_model("test_chimera", n_vars=3, out_vars=1, dropout=0.0, time_features=True).eval()
    x, mark = torch.randn(2, 24, 3), torch.rand(2, 24, 4, requires_grad=True) - 0.5
    y = m(x, mark)
    assert y.shape == (2, 12, 1)  # the calendar variates are not forecast
    g, = torch.autograd.grad(y.sum(), mark)
    assert g.abs().sum() > 0  # the target depends on the calendar through the variate scan
    with torch.no_grad():  # the forecast of the data variates is the full grid's, sliced
        grid = m.trend(torch.cat([m.window_norm.norm(x)[0], mark], -1))  # (B, V + F, T', D)
        assert grid.shape[1] == 7
    assert torch.equal(m.predict({"x": x, "x_mark": mark}), y)
    with pytest.raises(ConfigError, match="time_features=true needs x_mark"):
        m(x)


def test_chimera_training_loss_options():
    torch.manual_seed(0)
    batch = {"x": torch.randn(4, 24, 2), "y": torch.randn(4, 12, 2)}
    m = create_model("test_chimera", n_vars=2, dropout=0.0).eval()
    with torch.no_grad():
        pred = m(batch["x"])
        out = {}
        for kind in ("mse", "mae", "huber"):
            m.cfg.loss = kind
            out[kind] = m.loss(batch)
    torch.testing.assert_close(out["mse"][0], F.mse_loss(pred, batch["y"]))
    torch.testing.assert_close(out["mae"][0], F.l1_loss(pred, batch["y"]))
    torch.testing.assert_close(out["huber"][0], F.huber_loss(pred, batch["y"]))
    assert out["mae"][1]["mse"] == out["mse"][1]["mse"]  # the logged mse is the mse whatever the loss
    with pytest.raises(ConfigError, match="loss"):
        create_model("test_chimera", n_vars=2, loss="l3")


def test_chimera_window_norm_equivariance():
    torch.manual_seed(0)
    m = create_model("test_chimera", n_vars=2, dropout=0.0).eval()
    x = torch.randn(4, 24, 2)
    with torch.no_grad():
        y = m(x)
        y2 = m(3.0 * x + 7.0)  # RevIN-style: the forecast follows the window's scale and level
    torch.testing.assert_close(y2, 3.0 * y + 7.0, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["mean", "last"])
def test_chimera_centring_norm_modes_follow_the_level_not_the_scale(mode):
    torch.manual_seed(0)
    m = create_model("test_chimera", n_vars=2, dropout=0.0, norm_mode=mode).eval()
    x = torch.randn(4, 24, 2)
    z, (loc, scale) = m.window_norm.norm(x)
    ref = x.mean(1, keepdim=True) if mode == "mean" else x[:, -1:]
    torch.testing.assert_close(loc, ref)
    assert torch.equal(scale, torch.ones_like(scale)) and torch.allclose(z, x - ref)
    with torch.no_grad():
        y, shifted, scaled = m(x), m(x + 7.0), m(3.0 * x)
    torch.testing.assert_close(shifted, y + 7.0, rtol=1e-4, atol=1e-4)  # a level shift passes through
    assert not torch.allclose(scaled, 3.0 * y, atol=1e-3)  # the scale is an input, not normalised away


def test_chimera_learns_a_periodic_signal():
    torch.manual_seed(0)
    t = torch.arange(0, 36 * 64, dtype=torch.float32)
    s = torch.sin(2 * math.pi * t / 12)
    win = s.unfold(0, 36, 36)[:16, :, None]  # (16, 36, 1)
    batch = {"x": win[:, :24], "y": win[:, 24:]}
    m = create_model("test_chimera", n_vars=1, dropout=0.0, norm=False)
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    first = m.loss(batch)[0].item()
    for _ in range(40):
        loss, _ = m.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first


def test_dlinear_matches_the_formula():
    m = create_model("test_dlinear", n_vars=2, seq_len=24, pred_len=12)
    with torch.no_grad():
        m.b_seasonal.zero_()
        m.b_trend.zero_()
    x = torch.randn(3, 24, 2)
    # uniform 1/L init: seasonal + trend weights average the window -> the window mean
    torch.testing.assert_close(m(x), x.mean(1, keepdim=True).expand(-1, 12, -1), rtol=1e-5, atol=1e-5)
    mi = create_model("test_dlinear", n_vars=2, individual=True)
    assert mi.w_seasonal.shape == (2, 12, 24) and mi(x).shape == (3, 12, 2)


def test_seasonal_naive_values_and_intervals():
    m = create_model("test_seasonal_naive", n_vars=1, seq_len=8, pred_len=6, period=4)
    x = torch.arange(8.0).reshape(1, 8, 1)
    torch.testing.assert_close(m(x)[0, :, 0], torch.tensor([4.0, 5, 6, 7, 4, 5]))
    lo, hi = m.predict_interval({"x": x}, alpha=0.05)
    w = (hi - lo)[0, :, 0]
    assert torch.all(w[4:] > w[:2])  # the second season ahead is wider (sqrt(k + 1))
    torch.testing.assert_close(w[4] / w[0], torch.tensor(math.sqrt(2.0)))


def test_flipout_kl_and_interval_sampling():
    from ostinato.timeseries.models.mes_lstm import FlipoutLinear

    torch.manual_seed(0)
    layer = FlipoutLinear(5, 3, prior_std=1.0)
    q = torch.distributions.Normal(layer.w_mu, layer.sigma)
    p = torch.distributions.Normal(torch.zeros(3, 5), torch.ones(3, 5))
    torch.testing.assert_close(layer.kl(), torch.distributions.kl_divergence(q, p).sum())
    x = torch.randn(4, 5)
    assert not torch.equal(layer(x, sample=True), layer(x, sample=True))  # stochastic in training
    torch.testing.assert_close(layer(x, sample=False), F.linear(x, layer.w_mu, layer.bias))
    draws = layer.sample(x, 4000)  # (n, B, out): mean over draws -> the posterior-mean output
    torch.testing.assert_close(draws.mean(0), layer(x, sample=False), atol=0.02, rtol=0.0)


def test_mes_lstm_heads():
    batch = {"x": torch.randn(6, 10, 2), "y": torch.randn(6, 3, 2)}
    m = create_model("test_mes_lstm", n_vars=2, seq_len=10, pred_len=3, holt_winters=False)
    assert m.predict(batch).shape == (6, 3, 2)
    lo, hi = m.predict_interval(batch, alpha=0.1, n_samples=50)
    assert torch.all(lo <= hi)
    loss, logs = m.loss(batch)
    assert set(logs) == {"mse", "kl"} and loss.item() > logs["mse"]
    mq = create_model("test_mes_lstm", n_vars=2, seq_len=10, pred_len=3, holt_winters=False, head="quantile")
    lo, hi = mq.predict_interval(batch, alpha=0.05)
    assert lo.shape == (6, 3, 2) and torch.all(lo <= hi)
    with pytest.raises(ConfigError, match="no 0.15 quantile"):
        mq.predict_interval(batch, alpha=0.3)
    with pytest.raises(ConfigError, match="data.holt_winters=true"):
        create_model("test_mes_lstm", n_vars=2, seq_len=10, pred_len=3).predict(batch)


def test_keras_relu_lstm_cell():
    from ostinato.timeseries.models.mes_lstm import KerasLSTM

    torch.manual_seed(0)
    cell = KerasLSTM(2, 3, "relu")
    x = torch.randn(1, 2, 2)
    Wx, b, Wh = cell.w_x.weight, cell.w_x.bias, cell.w_h.weight
    h = torch.zeros(1, 3)
    c = torch.zeros(1, 3)
    for t in range(2):
        i, f, g, o = (x[:, t] @ Wx.T + b + h @ Wh.T).chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.relu(g)
        h = torch.sigmoid(o) * torch.relu(c)
    torch.testing.assert_close(cell(x), h)
    assert torch.all(b[3:6] == 1.0)  # unit forget bias


def test_es_rnn_smoothing_and_forecast_scale():
    m = create_model("test_es_rnn", n_series=2, seq_len=8, pred_len=4, period=4)
    with torch.no_grad():
        m.alpha.weight.fill_(50.0)  # alpha -> 1: level = y / s
        m.gamma.weight.fill_(-50.0)  # gamma -> 0: seasonality stays at its initial indices
        m.init_season.weight.copy_(torch.log(torch.tensor([[1.0, 2.0, 1.0, 0.5]] * 2)))
    y = torch.tensor([10.0, 20, 10, 5, 10, 20, 10, 5]).reshape(1, 8, 1)
    lev, seas = m.smooth({"x": y, "series": torch.tensor([1]), "t0": torch.tensor([0])})
    torch.testing.assert_close(lev[0], torch.full((8,), 10.0))
    torch.testing.assert_close(seas[0, 8:], torch.tensor([1.0, 2.0, 1.0, 0.5]))
    # forecasts are exp(q) * last level * future seasonality: scaling y scales the forecast
    b1 = {"x": y, "series": torch.tensor([1]), "t0": torch.tensor([0])}
    b2 = {"x": 3 * y, "series": torch.tensor([1]), "t0": torch.tensor([0])}
    torch.testing.assert_close(m.predict(b2), 3 * m.predict(b1))
    assert m.predict({"x": y}).shape == (1, 4, 1)  # unseen series: mean coefficients
    with pytest.raises(ConfigError, match="n_series"):
        m.predict({"x": y, "series": torch.tensor([5]), "t0": torch.tensor([0])})
