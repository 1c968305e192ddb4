"""SASRec's mixer slot (DESIGN.md "Mixer slots"): the default is the published SASRec, bit for bit;
every causal core mixer builds in the slot and trains; a non-causal one and an unknown name are
one-line errors; ``model.mixer.name=...`` works on the command line; config.yaml round-trips."""
from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from ostinato.core import recipe
from ostinato.core.config import load_yaml, save_yaml
from ostinato.core.errors import ConfigError
from ostinato.core.mixer import is_causal, mixer_entries
from ostinato.core.registry import create_model
from ostinato.core.train import build_model

REPO = Path(__file__).resolve().parents[2]
BEFORE = "a1e3eba"  # the last commit before the slot: the reference SASRec

# tiny settings per mixer (d_model comes from the host)
SMALL = {
    "lru": {"d_state": 8}, "s4d": {"d_state": 4}, "s5": {"d_state": 4}, "mamba": {"d_state": 4},
    "ssd": {"d_state": 4, "headdim": 4, "chunk": 4}, "gru": {"d_hidden": 12}, "lstm": {"d_hidden": 12},
    "pararnn_gru": {"d_hidden": 8}, "pararnn_gru_dense": {"d_hidden": 8}, "pararnn_lstm": {"d_hidden": 8},
    "fsmn": {"d_hidden": 8, "lorder": 3}, "causal_attention": {"n_heads": 2}, "causal_transformer": {"n_heads": 2, "n_layers": 1},
}


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(1, 51, (4, 8), generator=g)
    seq[0, :5] = 0  # left padding
    seq[1, :7] = 0
    pos = torch.randint(1, 51, (4, 8), generator=g) * (seq != 0)
    neg = torch.randint(1, 51, (4, 8, 1), generator=g)
    return {"seq": seq, "pos": pos, "neg": neg}


def _reference_module():
    """recsys/models/sasrec.py as it was before the slot, loaded without registering its models."""
    try:
        src = subprocess.run(["git", "show", f"{BEFORE}:recsys/models/sasrec.py"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs the git history (the reference SASRec)")
    src = src.replace("from ostinato.core.registry import register_model",
                      "register_model = lambda *a, **k: (lambda f: f)")
    mod = types.ModuleType("_sasrec_before")
    sys.modules[mod.__name__] = mod
    try:
        exec(compile(src, "sasrec_before.py", "exec"), mod.__dict__)
    finally:
        sys.modules.pop(mod.__name__)
    return mod


@pytest.mark.parametrize("kw", [{}, {"norm_first": True, "loss": "ce"}, {"post_ln": True, "init": "xavier", "attn_out_proj": True}])
def test_default_is_the_sasrec_before_the_slot(kw):
    ref = _reference_module()
    torch.manual_seed(0)
    old = ref.SASRec(ref.TestSASRecConfig(**kw))
    torch.manual_seed(0)
    new = create_model("test_sasrec", **kw)
    assert list(old.state_dict()) == list(new.state_dict())
    for k, v in old.state_dict().items():
        assert torch.equal(v, new.state_dict()[k]), k
    b = _batch()
    for train in (True, False):
        old.train(train), new.train(train)
        torch.manual_seed(1)
        l_old, _ = old.loss(b)
        torch.manual_seed(1)
        l_new, _ = new.loss(b)
        assert torch.equal(l_old, l_new)
    assert torch.equal(old(b["seq"]), new(b["seq"]))
    assert torch.equal(old.score_all(b["seq"]), new.score_all(b["seq"]))


def test_every_causal_core_mixer_trains_in_the_slot():
    names = sorted(n for n, e in mixer_entries().items() if is_causal(e, e.config()))
    assert set(SMALL) <= set(mixer_entries()) and {"mamba", "lru", "gru"} <= set(names)
    torch.manual_seed(0)
    b = _batch()
    for name in names:
        m = create_model("test_sasrec", n_blocks=1, mixer={"name": name, **SMALL.get(name, {})}, post_ln=True,
                         pos_emb=False, emb_norm=True, final_norm=False, item_bias=True, ffn="gelu", d_ff=32)
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        loss, _ = m.loss(b)
        assert torch.isfinite(loss), name
        loss.backward()
        grads = [p.grad for n, p in m.named_parameters() if ".mixer.layer." in n and p.requires_grad]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), f"{name}: no gradient reaches the mixer"
        opt.step()
        m.eval()  # left padding never reaches a real position: extra padding leaves the scores alone
        s = m.score_all(b["seq"][:2])  # rows 0 and 1 start with >= 5 padding positions
        assert torch.allclose(s, m.score_all(b["seq"][:2, 3:]), atol=1e-5) and torch.isfinite(s[:, 1:]).all(), name


def test_left_padding_does_not_leak_into_the_mixer_state():
    torch.manual_seed(0)
    m = create_model("test_sasrec", mixer={"name": "mamba", "d_state": 4}).eval()  # conv bias: would leak
    seq = torch.tensor([[0, 0, 0, 0, 0, 4, 5, 6]])
    assert torch.allclose(m.score_all(seq), m.score_all(seq[:, 5:]), atol=1e-6)
    assert torch.allclose(m(seq, packed=True), m(seq, packed=False), atol=1e-6)


def test_non_causal_mixer_and_unknown_name_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"needs a causal mixer") as e:
        create_model("test_sasrec", mixer={"name": "s5", "bidirectional": True, "d_state": 4})
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"needs a causal mixer"):
        create_model("test_sasrec", mixer={"name": "causal_attention", "causal": False, "n_heads": 2})
    with pytest.raises(ConfigError, match=r"unknown mixer; valid names: .*lru.*mamba") as e:
        create_model("test_sasrec", mixer={"name": "mambo"})
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"'model.mixer.d_sate'; valid keys for mamba: name, d_state"):
        recipe.resolve({"model": {"name": "test_sasrec", "mixer": {"name": "mamba", "d_sate": 3}},
                        "data": {"name": "synthetic_seq"}})
    with pytest.raises(ConfigError, match=r"model.ffn shapes the mixer blocks"):
        create_model("test_sasrec", ffn="gelu")


def test_config_yaml_round_trips(tmp_path):
    raw = {"model": {"name": "test_sasrec", "mixer": {"name": "mamba", "d_state": 4}, "post_ln": True},
           "data": {"name": "synthetic_seq"}}
    cfg = recipe.resolve(raw, ["model.mixer.d_conv=3"])
    assert cfg.model.mixer.name == "mamba" and cfg.model.mixer.cfg.d_conv == 3 and cfg.model.mixer.cfg.d_state == 4
    save_yaml(cfg.to_dict(), tmp_path / "config.yaml")
    saved = load_yaml(tmp_path / "config.yaml")
    assert "d_model" not in saved["model"]["mixer"]  # the host's
    again = recipe.resolve(saved)
    assert again.model == cfg.model and again.to_dict() == cfg.to_dict()
    torch.manual_seed(0)
    m1 = build_model(cfg, {"n_items": 50})
    torch.manual_seed(0)
    m2 = build_model(again, {"n_items": 50})
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))


def test_paper_recipes_resolve():
    for name, mixer in (("mamba4rec", "mamba"), ("lrurec", "lru"), ("gru4rec", "gru")):
        for data in ("games", "beauty"):
            cfg = recipe.load(f"recsys/{name}_{data}")
            assert cfg.model.mixer.name == mixer
            with torch.device("meta"):
                build_model(cfg, {"n_items": 100})


def test_cli_mixer_override(cli, tmp_path):
    r = cli("train", "recsys/test_sasrec", "model.mixer.name=lru", "model.mixer.d_state=4", "trainer.max_steps=2",
            "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    saved = load_yaml(next((tmp_path / "run").rglob("config.yaml")))
    assert saved["model"]["mixer"]["name"] == "lru" and saved["model"]["mixer"]["d_state"] == 4
    r = cli("train", "recsys/test_sasrec", "model.mixer.name=nope", "trainer.max_steps=2", "--out", str(tmp_path / "bad"))
    assert r.returncode == 2 and "valid names:" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def _stream_host(name: str, **kw):
    return create_model("test_sasrec", n_blocks=2, mixer={"name": name, **SMALL.get(name, {})}, pos_emb=False, **kw).eval()


@pytest.mark.parametrize("layout", [{"post_ln": True, "ffn": "gelu", "d_ff": 32, "final_norm": False, "item_bias": True,
                                     "emb_norm": True}, {}])
def test_streaming_equals_the_full_forward_for_every_causal_mixer(layout):
    """stream_step item by item gives the full forward's scores at every position (1e-5), for every
    causal mixer; the packed (length-bucketed) forward equals the padded one."""
    names = sorted(n for n, e in mixer_entries().items() if is_causal(e, e.config()))
    seq = _batch(3)["seq"]  # (4, 8): rows 0 and 1 left-padded (3 items, 1 item), rows 2 and 3 full
    for name in names:
        torch.manual_seed(0)
        m = _stream_host(name, **layout)
        with torch.no_grad():
            F = m(seq, packed=False)  # (4, 8, D)
            torch.testing.assert_close(m(seq, packed=True)[seq != 0], F[seq != 0], atol=1e-5, rtol=1e-5, msg=name)
            ref = F @ m.item_emb.weight.T + (m.item_bias if m.item_bias is not None else 0.0)  # (4, 8, n_items + 1)
        for rows, start in ((slice(2, 4), 0), (slice(0, 1), 5), (slice(1, 2), 7)):
            state = m.init_stream(rows.stop - rows.start)
            for t in range(start, 8):
                s, state = m.stream_step(seq[rows, t], state)
                torch.testing.assert_close(s[:, 1:], ref[rows, t, 1:], atol=1e-5, rtol=1e-5, msg=f"{name} at t={t}")


def test_streaming_needs_a_mixer_and_no_positions():
    with pytest.raises(ConfigError, match="streaming needs model.mixer"):
        create_model("test_sasrec").init_stream(1)
    with pytest.raises(ConfigError, match="pos_emb=false"):
        create_model("test_sasrec", mixer={"name": "lru", "d_state": 8}).init_stream(1)


def test_mixer_init_host_redraws_the_mixers_linears():
    """mixer_init=host (Mamba4Rec's RecBole init): every Linear in the mixer N(0, 0.02), zero biases; own: Mamba's."""
    kw = dict(d_model=64, n_blocks=1, post_ln=True, pos_emb=False, init="normal", ffn="gelu", d_ff=64)
    torch.manual_seed(0)
    host = create_model("test_sasrec", mixer={"name": "mamba", "d_state": 16}, mixer_init="host", **kw)
    own = create_model("test_sasrec", mixer={"name": "mamba", "d_state": 16}, **kw)
    lin = [m for m in host.blocks[0].mixer.modules() if isinstance(m, torch.nn.Linear)]
    assert len(lin) >= 4  # in_proj, x_proj, dt_proj, out_proj
    w = torch.cat([m.weight.flatten() for m in lin])
    assert abs(w.std().item() / 0.02 - 1) < 0.05
    assert all(m.bias is None or m.bias.abs().max() == 0 for m in lin)
    assert any(m.bias is not None and m.bias.abs().max() > 0 for m in own.blocks[0].mixer.modules()
               if isinstance(m, torch.nn.Linear))  # Mamba's own dt bias
    with pytest.raises(ConfigError, match="mixer_init=host"):
        create_model("test_sasrec", mixer_init="host")
