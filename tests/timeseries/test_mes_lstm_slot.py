"""MES-LSTM's recurrence slot (``model.mixer``): with no mixer (and ``recurrent_init="per_gate"``, the
earlier init) the model is the MES-LSTM before the slot, bit for bit; every causal core mixer builds in
the slot, trains a step, and its step-by-step run over the window (``stream``) equals the full forward;
a non-causal mixer is a one-line error. The default recurrent init is Keras' Orthogonal over the
whole (H, 4H) kernel."""
from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from ostinato.core.errors import ConfigError
from ostinato.core.mixer import is_causal, mixer_entries
from ostinato.core.registry import create_model

REPO = Path(__file__).resolve().parents[2]
BEFORE = "eab05ce"  # the last commit before the slot: the reference MES-LSTM

# tiny settings per mixer (d_model is the host's hidden size)
SMALL = {
    "lru": {"d_state": 8}, "s4d": {"d_state": 4}, "s5": {"d_state": 4}, "mamba": {"d_state": 4},
    "ssd": {"d_state": 4, "headdim": 4, "chunk": 4}, "gru": {"d_hidden": 12}, "lstm": {"d_hidden": 12},
    "pararnn_gru": {"d_hidden": 8}, "pararnn_gru_dense": {"d_hidden": 8}, "pararnn_lstm": {"d_hidden": 8},
    "fsmn": {"d_hidden": 8, "lorder": 3}, "causal_attention": {"n_heads": 2},
    "causal_transformer": {"n_heads": 2, "n_layers": 1},
}
CAUSAL = sorted(n for n, e in mixer_entries().items() if is_causal(e, e.config()))


def _batch(B=3, L=10, H=2, C=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(B, L, C, generator=g), "x_base": torch.randn(B, L, C, generator=g) * 0.1,
            "y_base": torch.randn(B, H, C, generator=g) * 0.1, "y": torch.randn(B, H, C, generator=g)}


def _reference_module():
    """timeseries/models/mes_lstm.py as it was before the slot, loaded without registering its models."""
    try:
        src = subprocess.run(["git", "show", f"{BEFORE}:timeseries/models/mes_lstm.py"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs the git history (the reference MES-LSTM)")
    src = src.replace("from ostinato.core.registry import register_variant",
                      "register_variant = lambda *a, **k: None")
    mod = types.ModuleType("_mes_lstm_before")
    sys.modules[mod.__name__] = mod
    try:
        exec(compile(src, "mes_lstm_before.py", "exec"), mod.__dict__)
    finally:
        sys.modules.pop(mod.__name__)
    return mod


@pytest.mark.parametrize("kw", [{}, {"head": "quantile", "feed_scaled": True, "out_vars": 1}])
def test_default_is_the_mes_lstm_before_the_slot(kw):
    ref = _reference_module()
    kw = {"n_vars": 2, "seq_len": 10, "pred_len": 2, **kw}
    torch.manual_seed(0)
    old = ref.MESLSTM(ref.TestMESLSTMConfig(**kw))
    torch.manual_seed(0)
    new = create_model("test_mes_lstm", recurrent_init="per_gate", **kw)
    assert list(old.state_dict()) == list(new.state_dict())
    for k, v in old.state_dict().items():
        assert torch.equal(v, new.state_dict()[k]), k
    b = _batch()
    if kw.get("out_vars") == 1:
        b = {**b, "x_base": b["x_base"][..., -1:], "y_base": b["y_base"][..., -1:], "y": b["y"][..., -1:]}
    torch.manual_seed(1)
    l_old, _ = old.loss(b)
    torch.manual_seed(1)
    l_new, _ = new.loss(b)
    assert torch.equal(l_old, l_new)
    assert torch.equal(old.predict(b), new.predict(b))
    l_new.backward()
    l_old.backward()
    for (k, p), q in zip(old.named_parameters(), new.parameters()):
        assert torch.equal(p.grad, q.grad), k


def test_the_lstm_streams_too():
    torch.manual_seed(0)
    m = create_model("test_mes_lstm", n_vars=2, seq_len=10, pred_len=2).eval()
    b = _batch()
    with torch.no_grad():
        h_full, _ = m._encode(b)
        torch.testing.assert_close(m.stream(b), h_full, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", CAUSAL)
def test_every_causal_mixer_trains_and_streams(name):
    torch.manual_seed(0)
    m = create_model("test_mes_lstm", n_vars=2, seq_len=10, pred_len=2, mixer={"name": name, **SMALL.get(name, {})})
    assert m.cell.mixer.name == name and not hasattr(m, "lstm")
    b = _batch()
    loss, _ = m.loss(b)
    assert torch.isfinite(loss), name
    loss.backward()
    grads = [p.grad for n, p in m.named_parameters() if n.startswith("cell.mixer.layer.") and p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), f"{name}: no gradient reaches the mixer"
    before = [p.detach().clone() for p in m.parameters()]
    torch.optim.Adam(m.parameters(), lr=1e-2).step()
    assert any(not torch.equal(a, p) for a, p in zip(before, m.parameters())), name
    m.eval()
    with torch.no_grad():
        h_full, _ = m._encode(b)  # (B, hidden)
        h_step = m.stream(b)
    assert h_full.shape == (3, 8) and torch.isfinite(h_full).all()
    torch.testing.assert_close(h_step, h_full, rtol=1e-3, atol=2e-3)
    assert not torch.allclose(h_full[0], h_full[1])  # the windows differ, so do their states


def test_slot_errors_are_one_line():
    with pytest.raises(ConfigError, match=r"mes_lstm slot needs a causal mixer") as e:
        create_model("test_mes_lstm", mixer={"name": "s5", "bidirectional": True, "d_state": 4})
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"unknown mixer; valid names: .*lru"):
        create_model("test_mes_lstm", mixer={"name": "mambo"})
    with pytest.raises(ConfigError, match=r"model.activation='tanh' is the Keras LSTM's"):
        create_model("test_mes_lstm", mixer={"name": "lru"}, activation="tanh")
    with pytest.raises(ConfigError, match=r"model.recurrent_init='per_gate' is the Keras LSTM's"):
        create_model("test_mes_lstm", mixer={"name": "lru"}, recurrent_init="per_gate")


def test_recipe_override_reaches_the_slot():
    from ostinato.core.recipe import load
    from ostinato.core.train import build_model

    cfg = load("timeseries/test_mes_lstm", ["model.mixer.name=lru", "model.mixer.d_state=8"])
    m = build_model(cfg, {"n_vars": 1, "seq_len": 24, "pred_len": 12, "out_vars": 1})
    assert m.cell.mixer.name == "lru" and m.cell.inp.in_features == 1


def test_recurrent_init_is_keras_orthogonal_over_the_whole_kernel():
    from ostinato.timeseries.models.mes_lstm import KerasLSTM

    H = 6
    torch.manual_seed(0)
    k = KerasLSTM(3, H).w_h.weight.detach().T  # Keras layout: kernel (H, 4H), gates i, f, c, o
    torch.testing.assert_close(k @ k.T, torch.eye(H), rtol=0, atol=1e-5)  # orthonormal rows, as Orthogonal()
    blocks = k.reshape(H, 4, H).transpose(0, 1)  # (4, H, H)
    assert (blocks @ blocks.transpose(1, 2) - torch.eye(H)).abs().max() > 0.1  # no block is orthogonal alone
    # Keras' algorithm: QR of a (4H, H) normal draw, columns signed by diag(R), transposed to (H, 4H)
    torch.manual_seed(1)
    w = torch.empty(4 * H, H)
    torch.nn.init.orthogonal_(w)
    torch.manual_seed(1)
    q, r = torch.linalg.qr(torch.randn(4 * H, H))
    torch.testing.assert_close(w.T, (q * torch.sign(torch.diagonal(r))).T)
    torch.manual_seed(0)
    kg = KerasLSTM(3, H, recurrent_init="per_gate").w_h.weight.detach().T
    torch.testing.assert_close(kg @ kg.T, 4 * torch.eye(H), rtol=0, atol=1e-5)  # each gate block orthogonal
    for b in kg.reshape(H, 4, H).transpose(0, 1):
        torch.testing.assert_close(b @ b.T, torch.eye(H), rtol=0, atol=1e-5)
    m = create_model("test_mes_lstm", n_vars=2)
    assert m.cfg.recurrent_init == "keras"
