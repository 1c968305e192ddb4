"""muVLA's memory slot (model.mixer): any causal core mixer's state carried step by step."""
import pytest
import torch

from ostinato.core.errors import ConfigError
from ostinato.core.mixer import is_causal, mixer_entries
from ostinato.core.registry import create_model

KW = dict(image_channels=3, proprio_dim=4, action_dim=2, chunk=4, vocab=64, max_tokens=4, tbptt_length=3)
SMALL = {"pararnn_gru_dense": {"d_hidden": 8}}  # its dense autograd Jacobian is slow at the default width
CAUSAL = sorted(n for n, e in mixer_entries().items() if is_causal(e, e.config()))


def _batch(B=2, W=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = {"rgb": torch.randint(0, 256, (B, W, 16, 16, 3), generator=g, dtype=torch.uint8),
         "proprio": torch.randn(B, W, 4, generator=g), "instr": torch.randint(0, 64, (B, W, 4), generator=g),
         "action": torch.randn(B, W, 4, 2, generator=g), "chunk_mask": torch.ones(B, W, 4, dtype=torch.bool),
         "is_first": torch.zeros(B, W, dtype=torch.bool)}
    b["is_first"][:, 0] = True
    b["is_first"][B - 1, 3] = B > 1  # sample 1 starts a new episode at step 3
    return b


def _policy(name, **kw):
    torch.manual_seed(0)
    return create_model("test_muvla", mixer={"name": name, **SMALL.get(name, {})}, **{**KW, **kw})


def test_the_slot_offers_every_causal_core_recurrence():
    assert {"lstm", "gru", "s5", "lru", "mingru", "mamba"} <= set(CAUSAL)


@pytest.mark.parametrize("name", CAUSAL)
def test_streaming_step_equals_the_window_forward_and_a_training_step_works(name):
    m = _policy(name).eval()
    b = _batch()
    with torch.no_grad():
        full, _ = m(b)  # (B, W, C, A): the mixer called on one-step sequences
        state, steps = m.init_state(2), []
        for t in range(b["is_first"].shape[1]):  # execution: the mixer's own `step`
            obs = {k: b[k][:, t] for k in ("rgb", "proprio", "instr")}
            a, state = m.act(obs, state, b["is_first"][:, t])
            steps.append(a)
        tail = {k: v[1:, 3:] for k, v in b.items()}
        fresh, _ = m(tail)  # sample 1 from step 3 on, from a fresh state
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-4)
    assert torch.allclose(full[1, 3:], fresh[0], atol=1e-5, rtol=1e-4)  # the reset is per sample and complete
    assert not torch.allclose(full[1, 1:3], full[1, 4:], atol=1e-4)  # the carried state changes the output
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    loss, logs = m.loss(b)
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0
                                        for p in m.memory.mixer.parameters())
    before = [p.detach().clone() for p in m.memory.mixer.parameters()]
    opt.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, m.memory.mixer.parameters()))
    m.loss(_batch(seed=1))[0].backward()  # the next window continues from the carried (detached) state


def test_the_carried_state_reaches_back_k_steps_and_no_further():
    m = _policy("gru", tbptt_length=2).eval()
    b = _batch(B=1, W=4)
    b["proprio"].requires_grad_(True)
    pred, _ = m(b)
    pred[:, -1].sum().backward()
    g = b["proprio"].grad[0].abs().sum(-1)  # (W,)
    assert (g[2:] > 0).all() and (g[:2] == 0).all()  # K=2: windows [0, 1], [2, 3]


def test_the_recurrence_carries_what_an_earlier_step_saw():
    m = _policy("lstm").eval()
    b = _batch(B=1, W=4)
    b2 = {k: v.clone() for k, v in b.items()}
    b2["rgb"][:, 0] = 255 - b2["rgb"][:, 0]  # only the first frame differs
    with torch.no_grad():
        p1, p2 = m(b)[0], m(b2)[0]
    assert not torch.allclose(p1[:, -1], p2[:, -1], atol=1e-5)


def test_a_kv_cache_drops_the_keys_no_sample_reads():
    m = _policy("causal_attention").eval()
    with torch.no_grad():
        state, first = m.init_state(2), torch.ones(2, dtype=torch.bool)
        b = _batch()
        obs = {k: b[k][:, 0] for k in ("rgb", "proprio", "instr")}
        for t in range(6):
            _, state = m.act(obs, state, first if t in (0, 3) else torch.zeros(2, dtype=torch.bool))
    assert state["s"]["k"].shape[2] == 3  # both samples restarted at step 3: the 3 older keys are gone


def test_non_causal_and_unknown_mixers_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="needs a causal mixer.*causal mixers: .*lstm"):
        create_model("test_muvla", mixer={"name": "s5", "bidirectional": True}, **KW)
    with pytest.raises(ConfigError, match="lstm"):
        create_model("test_muvla", mixer={"name": "no_such_mixer"}, **KW)
    with pytest.raises(ConfigError, match="memory_update"):
        create_model("test_muvla", mixer={"name": "gru"}, memory_update="ema", **KW)
