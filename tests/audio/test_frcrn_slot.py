"""FRCRN's time-memory mixer slot and its normalisation options.

Slot: the default is the FRCRN before the slot, bit for bit; the ``fsmn`` mixer in the slot is
the released complex FSMN arrangement; every causal core mixer streams frame by frame equal to
the offline forward and trains; a non-causal mixer in the causal model is a one-line error.
Norms: ``frozen`` and ``cumulative`` keep an output frame independent of future frames (and of
the other utterances of the batch) in training mode, ``batch`` does not; all of them stream.
"""
from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from ostinato.core.cli import main
from ostinato.core.errors import ConfigError
from ostinato.core.mixer import is_causal, mixer_entries
from ostinato.core.registry import create_model

REPO = Path(__file__).resolve().parents[2]
BEFORE = "32d62d5"  # the last commit before the slot and the norm option: the reference FRCRN

# tiny settings per mixer (d_model comes from the host: 8 channels x 1 bin)
SMALL = {
    "lru": {"d_state": 8}, "s4d": {"d_state": 4}, "s5": {"d_state": 4}, "mamba": {"d_state": 4},
    "ssd": {"d_state": 4, "headdim": 4, "chunk": 4}, "gru": {"d_hidden": 12}, "lstm": {"d_hidden": 12},
    "pararnn_gru": {"d_hidden": 8}, "pararnn_gru_dense": {"d_hidden": 8}, "pararnn_lstm": {"d_hidden": 8},
    "fsmn": {"d_hidden": 8, "lorder": 3}, "causal_attention": {"n_heads": 2}, "causal_transformer": {"n_heads": 2, "n_layers": 1},
}
CAUSAL = sorted(n for n, e in mixer_entries().items() if is_causal(e, e.config()))


def _git_show(path: str) -> str:
    try:
        return subprocess.run(["git", "show", f"{BEFORE}:{path}"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs the git history (the reference FRCRN)")


def _exec(name: str, src: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    sys.modules[name] = mod
    exec(compile(src, f"{name}.py", "exec"), mod.__dict__)
    return mod


def _reference_frcrn():
    """audio/models/{complex_nn,frcrn}.py as they were before the slot, without registering models."""
    cnn = _exec("_frcrn_before_cnn", _git_show("audio/models/complex_nn.py"))
    src = _git_show("audio/models/frcrn.py")
    src = (src.replace("from ..stft import", "from ostinato.audio.stft import")
           .replace("from .complex_nn import", "from _frcrn_before_cnn import")
           .replace("from .losses import", "from ostinato.audio.models.losses import")
           .replace("from ostinato.core.registry import register_variant", "register_variant = lambda *a, **k: None"))
    try:
        return _exec("_frcrn_before", src)
    finally:
        sys.modules.pop("_frcrn_before", None), sys.modules.pop(cnn.__name__, None)


def _spec(b: int = 2, t: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.complex(*(torch.randn(b, 65, t, generator=g, dtype=torch.float64) for _ in range(2)))  # (B, F, T)


@pytest.mark.parametrize("name,cfg", [("test_frcrn", "TestFRCRNConfig"), ("test_frcrn_causal", "TestFRCRNCausalConfig")])
def test_default_is_the_frcrn_before_the_slot(name, cfg):
    ref = _reference_frcrn()
    torch.manual_seed(0)
    old = ref.FRCRN(getattr(ref, cfg)())
    torch.manual_seed(0)
    new = create_model(name)
    assert list(old.state_dict()) == list(new.state_dict())
    for k, v in old.state_dict().items():
        assert torch.equal(v, new.state_dict()[k]), k
    g = torch.Generator().manual_seed(1)
    clean = torch.randn(3, 4000, generator=g) * 0.1
    batch = {"noisy": clean + 0.05 * torch.randn(3, 4000, generator=g), "clean": clean}
    l_old, _ = old.loss(batch)  # training mode: batch statistics
    l_new, _ = new.loss(batch)
    assert torch.equal(l_old, l_new)
    l_old.backward(), l_new.backward()
    for (k, p), q in zip(old.named_parameters(), new.parameters()):
        assert torch.equal(p.grad, q.grad), k
    old.eval(), new.eval()
    with torch.no_grad():
        assert torch.equal(old(batch["noisy"]), new(batch["noisy"]))


def _slot_key(key: str) -> str:
    """A released time-FSMN key in the ``fsmn`` mixer slot: fsmn_re_L2.linear -> mixer_re_L2.layer.layers.0.linear."""
    if ".fsmn.cfsmn.fsmn_" not in key:
        return key
    head, rest = key.split(".fsmn.cfsmn.fsmn_")
    layer, param = rest.split(".", 1)
    return f"{head}.fsmn.cfsmn.mixer_{layer}.layer.layers.0.{param}"


def test_fsmn_mixer_is_the_released_complex_fsmn_arrangement():
    torch.manual_seed(0)
    ref = create_model("test_frcrn_causal").double().eval()
    slot = create_model("test_frcrn_causal", mixer={"name": "fsmn", "d_hidden": 8, "lorder": 4, "n_layers": 1}).double().eval()
    with torch.no_grad():
        for p in ref.parameters():  # e.g. the memory taps: make every weight matter
            p.add_(0.1 * torch.randn_like(p))
    slot.load_state_dict({_slot_key(k): v for k, v in ref.state_dict().items()})  # strict: every tensor set
    x = _spec()
    with torch.no_grad():
        b, _, _ = slot.enhance_spec(x)
        torch.testing.assert_close(ref.enhance_spec(x)[0], b, rtol=1e-12, atol=1e-12)
        ref.unets[0].fsmn.cfsmn.fsmn_im_L2.conv1.weight.add_(0.5)  # the test can fail: the second layer's F_im taps
        assert (ref.enhance_spec(x)[0] - b).abs().max() > 1e-6


@pytest.mark.parametrize("name", CAUSAL)
def test_causal_mixer_streams_frame_by_frame_and_trains(name):
    assert set(SMALL) <= set(mixer_entries()) and {"mamba", "lru", "gru", "fsmn"} <= set(CAUSAL)
    torch.manual_seed(0)
    m = create_model("test_frcrn_causal", mixer={"name": name, **SMALL.get(name, {})})
    g = torch.Generator().manual_seed(1)
    clean = torch.randn(2, 2000, generator=g) * 0.1
    loss, _ = m.loss({"noisy": clean + 0.05 * torch.randn(2, 2000, generator=g), "clean": clean})
    loss.backward()
    grads = [p.grad for n, p in m.named_parameters() if ".fsmn.cfsmn.mixer_" in n and p.requires_grad]
    assert torch.isfinite(loss) and grads and any(g is not None and g.abs().sum() > 0 for g in grads), name
    torch.optim.Adam(m.parameters(), lr=1e-3).step()
    m = m.double().eval()
    x = torch.randn(1, 1500, generator=g, dtype=torch.float64) * 0.1
    with torch.no_grad():
        full = m(x)
    s, hop = m.stream(1), m.stft.shape.hop_length
    outs = [s.push(x[:, i : i + hop]) for i in range(0, x.shape[1], hop)]  # one frame per push
    outs.append(s.flush())
    torch.testing.assert_close(torch.cat(outs, dim=1), full, rtol=1e-9, atol=1e-9)


def test_non_causal_mixer_in_the_causal_model_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"needs a causal mixer") as e:
        create_model("test_frcrn_causal", mixer={"name": "s5", "bidirectional": True, "d_state": 4})
    assert "\n" not in str(e.value)
    create_model("test_frcrn", mixer={"name": "s5", "bidirectional": True, "d_state": 4})  # the offline model takes it
    code = main(["train", "audio/test_frcrn_causal", "model.mixer.name=causal_attention", "model.mixer.causal=false",
                 "model.mixer.n_heads=2", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "needs a causal mixer" in err and len(err.splitlines()) == 1


def _future_grad(m, t0: int) -> tuple[float, float, float]:
    """Train-mode gradients of output frames < t0 of utterance 0: (past frames, future frames, utterance 1)."""
    x = _spec(t=12).requires_grad_(True)
    est, _, _ = m.enhance_spec(x)
    (est[0, :, :t0].abs() ** 2).sum().backward()
    g = x.grad.abs()
    return float(g[0, :, :t0].max()), float(g[0, :, t0:].max()), float(g[1].max())


@pytest.mark.parametrize("norm", ["batch", "frozen", "cumulative"])
def test_causal_norm_keeps_training_frames_causal(norm):
    torch.manual_seed(0)
    m = create_model("test_frcrn_causal", norm=norm).double().train()
    past, future, other = _future_grad(m, t0=5)
    assert past > 1e-3
    if norm == "batch":  # whole-batch statistics: the leak the causal norms remove
        assert future > 1e-4 and other > 1e-4
    else:
        assert future == 0.0 and other == 0.0


@pytest.mark.parametrize("norm", ["frozen", "cumulative"])
def test_causal_norms_stream_and_frozen_trains_like_eval(norm):
    torch.manual_seed(0)
    m = create_model("test_frcrn_causal", norm=norm).double()
    x = torch.randn(2, 2000, dtype=torch.float64) * 0.1
    with torch.no_grad():
        m.eval()
        ev = m(x)
        m.train()
        tr = m(x)  # frozen: normalised with the statistics from before this batch, then updated
        m.eval()
        after = m(x)
    torch.testing.assert_close(tr, ev, rtol=0, atol=0) if norm == "frozen" else torch.testing.assert_close(tr, ev)
    if norm == "frozen":
        assert (after - ev).abs().max() > 1e-6  # the running statistics moved
        assert list(m.state_dict()) == list(create_model("test_frcrn_causal").state_dict())
    s = m.stream(2)
    outs = [s.push(x[:, i : i + 300]) for i in range(0, x.shape[1], 300)]
    outs.append(s.flush())
    torch.testing.assert_close(torch.cat(outs, dim=1), after)
