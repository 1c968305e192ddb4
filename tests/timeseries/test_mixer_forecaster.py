"""The channel-independent mixer forecaster (specs/mixers.md §3, DESIGN.md "Mixer slots"): shapes,
channel independence, every core mixer in the slot trains, the recipes resolve, and the CLI
pipeline (train -> forecast) runs."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from ostinato.core.cli import main
from ostinato.core.errors import ConfigError
from ostinato.core.mixer import mixer_entries
from ostinato.core.registry import create_model
from ostinato.timeseries.data.ett import SHIPPED

ETTH1 = SHIPPED / "timeseries" / "ETT" / "ETTh1.csv"

# tiny settings per mixer (d_model comes from the host)
SMALL = {
    "lru": {"d_state": 8}, "s4d": {"d_state": 4}, "s5": {"d_state": 4}, "mamba": {"d_state": 4},
    "ssd": {"d_state": 4, "headdim": 4, "chunk": 4}, "gru": {"d_hidden": 12}, "lstm": {"d_hidden": 12},
    "pararnn_gru": {"d_hidden": 8}, "pararnn_gru_dense": {"d_hidden": 8}, "pararnn_lstm": {"d_hidden": 8},
    "fsmn": {"d_hidden": 8, "lorder": 3}, "causal_attention": {"n_heads": 2, "causal": False},
    "causal_transformer": {"n_heads": 2, "n_layers": 1},
}


def _batch(B=3, L=24, H=12, C=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(B, L, C, generator=g) * 3 + 1, "y": torch.randn(B, H, C, generator=g)}


@pytest.mark.parametrize("kw", [{}, {"embed": "point", "pos_emb": True, "d_ff": 0},
                                {"bidirectional": True, "out_vars": 2, "norm_affine": True}])
def test_shapes(kw):
    m = create_model("test_mixer_forecaster", n_vars=4, **kw)
    b = _batch()
    y = m.predict(b)
    assert y.shape == (3, 12, kw.get("out_vars", 0) or 4) and torch.isfinite(y).all()
    assert m.blocks[0].mixer.name == "mamba"  # the default mixer
    with pytest.raises(ConfigError, match="expects input"):
        m(torch.randn(2, 20, 4))


@pytest.mark.parametrize("mixer", ["mamba", "lru"])
def test_channel_independence(mixer):
    torch.manual_seed(0)
    m = create_model("test_mixer_forecaster", n_vars=4, bidirectional=True, mixer={"name": mixer, **SMALL[mixer]}).eval()
    x = torch.randn(2, 24, 4)
    x2 = x.clone()
    x2[:, :, 1] = torch.randn(2, 24) * 10 + 5  # change variate 1 only
    y, y2 = m(x), m(x2)
    keep = [0, 2, 3]
    torch.testing.assert_close(y[..., keep], y2[..., keep], rtol=0, atol=1e-6)
    assert not torch.allclose(y[..., 1], y2[..., 1])


def test_every_core_mixer_trains_in_the_slot():
    names = sorted(mixer_entries())
    assert {"mamba", "lru", "s5", "gru", "ssd"} <= set(names)
    b = _batch()
    for name in names:
        torch.manual_seed(0)
        m = create_model("test_mixer_forecaster", n_vars=4, mixer={"name": name, **SMALL.get(name, {})})
        loss, logs = m.loss(b)
        assert torch.isfinite(loss) and logs["mse"] == logs["mse"], name
        loss.backward()
        grads = [p.grad for n, p in m.named_parameters() if ".mixer.layer." in n and p.requires_grad]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), f"{name}: no gradient reaches the mixer"
        torch.optim.Adam(m.parameters(), 1e-3).step()
    # a bidirectional (non-causal) mixer is fine here: the forecaster reads the whole look-back
    m = create_model("test_mixer_forecaster", n_vars=4, mixer={"name": "s5", "d_state": 4, "bidirectional": True})
    assert m.predict(b).shape == (3, 12, 4)
    with pytest.raises(ConfigError, match="unknown mixer"):
        create_model("test_mixer_forecaster", mixer={"name": "mambo"})


def test_recipes_resolve():
    from ostinato.core.recipe import load

    cfg = load("timeseries/mixer_etth1")
    assert cfg.model_name == "mixer_forecaster" and cfg.model.mixer.name == "mamba"
    assert cfg.data.seq_len == 96 and cfg.data.pred_len == 96
    cfg = load("timeseries/test_mixer_forecaster", ["model.mixer.name=lru", "model.mixer.d_state=8"])
    assert cfg.model_name == "test_mixer_forecaster" and cfg.model.mixer.name == "lru"


def test_cli_train_and_forecast(cli, tmp_path, capsys):
    out = tmp_path / "run"
    r = cli("train", "timeseries/test_mixer_forecaster", "--out", out, "--quiet", "trainer.max_steps=4")
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    assert {"mse", "mae"} <= set(res["test"]) and all(v == v for v in res["test"].values())
    fc = tmp_path / "fc.csv"
    assert main(["forecast", str(out), "--csv", str(ETTH1), "--horizon", "12", "--out", str(fc)]) == 0
    df = pd.read_csv(fc)
    assert len(df) == 12 and df.drop(columns="date").notna().all().all()
    # the slot on the command line
    out2 = tmp_path / "lru"
    assert main(["train", "timeseries/test_mixer_forecaster", "--out", str(out2), "--quiet", "trainer.max_steps=2",
                 "model.mixer.name=lru", "model.mixer.d_state=8"]) == 0
    assert "lru" in (out2 / "config.yaml").read_text()
