"""muVLA memory semantics: per-sample reset, TBPTT windows, EMA formula, chunk shapes."""
import torch

from ostinato.core.registry import create_model

KW = dict(image_channels=3, proprio_dim=4, action_dim=2, chunk=4, vocab=64, max_tokens=4)
LSTM = dict(mixer={"name": "lstm", "d_hidden": 32})  # the LSTM-state memory (the former lstm_policy)


def _batch(B=2, W=6, S=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "rgb": torch.randint(0, 256, (B, W, S, S, 3), generator=g, dtype=torch.uint8),
        "proprio": torch.randn(B, W, 4, generator=g),
        "instr": torch.randint(1, 64, (B, W, 4), generator=g),
        "action": torch.randn(B, W, 4, 2, generator=g),
        "chunk_mask": torch.ones(B, W, 4, dtype=torch.bool),
        "is_first": torch.zeros(B, W, dtype=torch.bool),
    }


def _model(**kw):
    torch.manual_seed(0)
    m = create_model("test_muvla", **{**KW, **kw}).eval()
    with torch.no_grad():  # a non-trivial M0 so that resets are visible
        m.memory.M0.normal_()
    return m


def test_reset_on_is_first_is_per_sample():
    m = _model(tbptt_length=100)
    b = _batch()
    b["is_first"][:, 0] = True
    b["is_first"][0, 3] = True  # sample 0 starts a new episode at step 3, sample 1 does not
    with torch.no_grad():
        pred, _ = m(b)
        tail = {k: v[:, 3:] for k, v in b.items()}
        tail["is_first"] = torch.ones(2, 3, dtype=torch.bool)
        tail["is_first"][:, 1:] = False
        fresh, _ = m(tail)  # both samples started from M0 at step 3
    assert torch.allclose(pred[0, 3:], fresh[0], atol=1e-5)
    assert not torch.allclose(pred[1, 3:], fresh[1], atol=1e-3)


def test_memoryless_ignores_history():
    m = _model(n_mem=0)
    b = _batch()
    with torch.no_grad():
        full, _ = m(b)
        last, _ = m({k: v[:, -1:] for k, v in b.items()})
    assert m.memory.n_mem == 0
    assert torch.allclose(full[:, -1:], last, atol=1e-5)


def _proprio_grads(m, W=4):
    b = _batch(B=1, W=W)
    b["is_first"][:, 0] = True
    b["proprio"].requires_grad_(True)
    pred, _ = m(b)
    pred[:, -1].sum().backward()  # loss on the last step only
    return b["proprio"].grad[0].abs().sum(-1)  # (W,)


def test_tbptt_gradients_span_k_steps_and_stop_at_window_edges():
    g = _proprio_grads(_model(tbptt_length=2))  # windows [0, 1], [2, 3]
    assert g[3] > 0 and g[2] > 0
    assert g[0] == 0 and g[1] == 0
    g = _proprio_grads(_model(tbptt_length=4))  # one window: every step reaches the loss
    assert (g > 0).all()
    g = _proprio_grads(_model(n_mem=0))
    assert g[3] > 0 and (g[:3] == 0).all()


def test_ema_update_equals_formula():
    m = _model(memory_update="ema", ema_alpha=0.3)
    b = _batch(B=2, W=1)
    captured = {}
    h = m.memory.transformer.register_forward_hook(lambda mod, inp, out: captured.update(z=inp[0], y=out[0]))
    tok, pad = m._tokens(b["rgb"][:, 0], b["proprio"][:, 0], b["instr"][:, 0])
    state = m.memory.init_state(2)
    state = {"mem": state["mem"] + torch.randn_like(state["mem"]), "count": state["count"]}
    _, new = m.memory.step(tok, state, torch.zeros(2, dtype=torch.bool), key_padding_mask=pad, attn_mask=m._mask())
    h.remove()
    i, n = m.n_img + 1, m.cfg.n_mem
    assert torch.equal(captured["z"][:, i : i + n], state["mem"])  # memory inserted after the proprio token
    expect = 0.3 * captured["y"][:, i : i + n] + 0.7 * state["mem"]
    assert torch.allclose(new["mem"], expect, atol=1e-6)
    assert not new["mem"].requires_grad  # detached: no cross-step gradient


def test_action_chunk_shapes_and_act():
    m = _model()
    b = _batch(B=3, W=5)
    pred, state = m(b)
    assert pred.shape == (3, 5, 4, 2)
    assert state["mem"].shape == (3, m.cfg.n_mem, m.cfg.d_model)
    loss, logs = m.loss(b)
    assert loss.ndim == 0 and "l1" in logs
    obs = {k: b[k][:, 0] for k in ("rgb", "proprio", "instr")}
    chunk, st = m.act(obs, m.init_state(3), torch.ones(3, dtype=torch.bool))
    assert chunk.shape == (3, 4, 2) and st["mem"].shape[0] == 3


def test_training_memory_is_carried_between_windows_detached():
    m = _model()
    b = _batch()
    b["is_first"][:, 0] = True
    m.loss(b)
    carry = m._carry["mem"]
    assert carry.shape == (2, m.cfg.n_mem, m.cfg.d_model) and not carry.requires_grad
    b2 = _batch(seed=1)
    with torch.no_grad():
        p_carry, _ = m(b2, m._carry)
        p_fresh, _ = m(b2)
    assert not torch.allclose(p_carry, p_fresh)


def test_receding_vs_open_loop_execution_counts_policy_calls():
    from ostinato.control.envs import EnvConfig
    from ostinato.control.evaluate import rollout

    m = create_model("test_muvla", **{**KW, "proprio_dim": 1, "chunk": 4, "max_tokens": 16})  # cue task: proprio = clock
    calls = []
    act = m.act
    m.act = lambda *a: calls.append(1) or act(*a)
    env = EnvConfig(env="cue_task", image_size=16, max_episode_steps=8)
    r = rollout(m, env, [1, 2], execution="receding")
    assert len(calls) == 8 and r["episode_len"] == 8.0  # a random policy times out; one call per step
    calls.clear()
    r = rollout(m, env, [1, 2], execution="open_loop")
    assert len(calls) == 2 and set(r) >= {"success_once", "success", "wall_time_s"}  # one call per chunk of 4


def test_memory_norm_false_carries_the_raw_residual_stream():
    b = _batch(B=2, W=3)
    b["is_first"][:, 0] = True
    for norm in (True, False):
        m = _model(memory_norm=norm)
        captured = []
        h = m.memory.transformer.blocks[-1].register_forward_hook(lambda mod, inp, out: captured.append(out[0]))
        with torch.no_grad():
            pred, state = m(b)
        h.remove()
        i, n = m.n_img + 1, m.cfg.n_mem
        raw = captured[-1][:, i : i + n]  # last block's output at the memory positions, last step
        normed = torch.nn.functional.layer_norm(raw, raw.shape[-1:])
        assert torch.allclose(state["mem"], normed if norm else raw, atol=1e-5)
        assert not torch.allclose(state["mem"], raw if norm else normed, atol=1e-3)
        assert isinstance(m.head_norm, torch.nn.Identity) == norm  # the head reads through a LayerNorm either way
        assert pred.shape == (2, 3, 4, 2)
    assert not any(k.startswith("head_norm") for k in _model().state_dict())  # default: earlier checkpoints load


def _zero_decoder_loss(m, b):
    """With a decoder that outputs zeros the reconstruction loss is the mean squared target: returns the loss, its
    logs and the pooled, normalised frames (B, W, 3*4*4) to build the expected targets from."""
    with torch.no_grad():
        m.recon[-1].weight.zero_()
        m.recon[-1].bias.zero_()
    loss, logs = m.loss(b)
    B, W = b["is_first"].shape
    x = torch.nn.functional.adaptive_avg_pool2d(b["rgb"].permute(0, 1, 4, 2, 3).flatten(0, 1).float(), 4)
    return loss, logs, ((x - m.obs.mean) / m.obs.std).reshape(B, W, -1)


def test_memory_recon_rebuilds_each_episodes_first_frame_from_the_written_memory():
    import pytest

    from ostinato.core.errors import ConfigError

    m = _model(memory_recon=2.0, recon_grid=4)
    b = _batch(B=2, W=4)
    b["is_first"][0, 0] = b["is_first"][0, 2] = True  # stream 0: episodes start at steps 0 and 2
    b["is_first"][1, 0] = True
    loss, logs, x = _zero_decoder_loss(m, b)
    first = torch.stack([x[0, 0], x[0, 0], x[0, 2], x[0, 2], x[1, 0], x[1, 0], x[1, 0], x[1, 0]])
    assert abs(logs["recon"] - float((first**2).mean())) < 1e-4
    assert abs(float(loss) - logs["l1"] - 2.0 * logs["recon"]) < 1e-4
    # the next window's steps before an episode start keep the carried first frame; a new start replaces it
    b2 = _batch(B=2, W=2, seed=1)
    b2["is_first"][1, 1] = True
    _, logs2 = m.loss(b2)
    x2 = torch.nn.functional.adaptive_avg_pool2d(b2["rgb"].permute(0, 1, 4, 2, 3).flatten(0, 1).float(), 4)
    x2 = ((x2 - m.obs.mean) / m.obs.std).reshape(2, 2, -1)
    first2 = torch.stack([x[0, 2], x[0, 2], x[1, 0], x2[1, 1]])
    assert abs(logs2["recon"] - float((first2**2).mean())) < 1e-4
    # the loss reaches the memory written at the first step (through M0's update) and the encoder
    m2 = _model(memory_recon=1.0, recon_grid=4)
    b3 = _batch(B=2, W=3)
    b3["is_first"][:, 0] = True
    b3["weight"] = torch.zeros(2, 3, 4)  # no action loss: every gradient below comes from the reconstruction
    loss3, _ = m2.loss(b3)
    loss3.backward()
    assert m2.memory.M0.grad.abs().sum() > 0 and m2.obs.img_proj.weight.grad.abs().sum() > 0
    assert not any(k.startswith("recon") for k in _model().state_dict())  # off by default: no new keys
    with pytest.raises(ConfigError, match="memory_recon"):
        create_model("test_muvla", **{**KW, "memory_recon": 1.0, "n_mem": 0})


def test_lstm_slot_memory_recon_rebuilds_the_first_frame_from_each_steps_h():
    import pytest

    from ostinato.core.errors import ConfigError

    torch.manual_seed(0)
    m = create_model("test_muvla", **LSTM, **KW, memory_recon=3.0, recon_grid=4).eval()
    b = _batch(B=2, W=4)
    b["is_first"][:, 0] = True
    b["is_first"][1, 3] = True  # stream 1: a new episode at step 3
    loss, logs, x = _zero_decoder_loss(m, b)
    first = torch.stack([x[0, 0]] * 4 + [x[1, 0]] * 3 + [x[1, 3]])
    assert abs(logs["recon"] - float((first**2).mean())) < 1e-4
    assert abs(float(loss) - logs["l1"] - 3.0 * logs["recon"]) < 1e-4
    # with a live decoder and no action loss, the gradient reaches the LSTM and the image encoder
    torch.manual_seed(1)
    m2 = create_model("test_muvla", **LSTM, **KW, memory_recon=1.0, recon_grid=4)
    b["weight"] = torch.zeros(2, 4, 4)
    m2.loss(b)[0].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in m2.memory.mixer.named_parameters())
    assert m2.obs.img_proj.weight.grad.abs().sum() > 0
    assert not any(k.startswith("recon") for k in create_model("test_muvla", **LSTM, **KW).state_dict())
    with pytest.raises(ConfigError, match="memory_recon"):
        create_model("test_muvla", **LSTM, **{**KW, "memory_recon": 1.0, "image_channels": 0})


def test_ensemble_execution_averages_the_last_chunks_plans_for_each_step():
    import numpy as np

    from ostinato.control.envs import EnvConfig
    from ostinato.control.evaluate import rollout

    C, k = 3, 0.5

    class Plan(torch.nn.Module):  # plan made at call s: entry i is the action for step s+i, value 10*s + i
        cfg = type("cfg", (), {"vocab": 64, "max_tokens": 4})

        def __init__(self):
            super().__init__()
            self.w, self.calls = torch.nn.Parameter(torch.zeros(1)), 0

        def init_state(self, B, device=None):
            return None

        def act(self, batch, state, first):
            s, self.calls = self.calls, self.calls + 1
            return (10.0 * s + torch.arange(C, dtype=torch.float32))[None, :, None].expand(1, C, 2), state

    class Env:  # records the executed actions; never ends before the limit
        spec_max_steps = 5

        def __init__(self):
            self.done = []

        def reset(self, seed=None):
            return {"proprio": np.zeros(1, np.float32), "instruction": "go"}, {}

        def step(self, a):
            self.done.append(float(a[0]))
            return self.reset()[0], 0.0, False, False, {}

    env = Env()
    rollout(Plan(), EnvConfig(env="cue_task"), [0], execution="ensemble", envs=[env], ensemble_k=k)
    want = []
    for t in range(5):  # plans made at s = max(0, t-C+1)..t, oldest first, each gives 10*s + (t - s)
        ss = list(range(max(0, t - C + 1), t + 1))
        w = np.exp(-k * np.arange(len(ss)))
        want.append(float((w * np.array([10 * s + t - s for s in ss])).sum() / w.sum()))
    assert np.allclose(env.done, want) and not np.allclose(env.done, [10 * t for t in range(5)])
