"""Memory-token recurrence (muVLA): resets, TBPTT windows, EMA, streaming, m = 0, learning."""
import pytest
import torch

from ostinato.core import create_model
from ostinato.core.layers.attention import Transformer, TransformerConfig
from ostinato.core.layers.memory import MemoryTokens


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/core/conftest.py


def _make(m=3, **kw):
    torch.manual_seed(0)
    return create_model("memory_transformer", d_model=8, n_heads=2, n_layers=1, n_mem=m, **kw).eval()


def test_forward_equals_step_loop_and_split():
    mod = _make(tbptt_length=2).double()
    x = torch.randn(2, 5, 4, 8, dtype=torch.float64)
    first = torch.zeros(2, 5, dtype=torch.bool)
    first[1, 3] = True
    y, st = mod(x, is_first=first)
    state, ys, mems = None, [], []
    for t in range(5):
        y_t, state = mod.step(x[:, t], state, first[:, t] if state is not None else None)
        ys.append(y_t)
        mems.append(state["mem"])
    torch.testing.assert_close(torch.stack(ys, 1), y)
    y_m, _, mem_seq = mod(x, is_first=first, return_memory=True)  # also the memory each step wrote
    torch.testing.assert_close(y_m, y)
    torch.testing.assert_close(mem_seq, torch.stack(mems, 1))
    torch.testing.assert_close(state["mem"], st["mem"])
    assert torch.equal(state["count"], st["count"])
    y1, s1 = mod(x[:, :2], is_first=first[:, :2])
    y2, s2 = mod(x[:, 2:], s1, is_first=first[:, 2:])
    torch.testing.assert_close(torch.cat([y1, y2], 1), y)
    torch.testing.assert_close(s2["mem"], st["mem"])
    assert st["count"].tolist() == [1, 2]  # windows [0,1] [2,3] [4] and [3,4]


def test_per_sample_reset_to_m0():
    mod = _make()
    x = torch.randn(2, 6, 4, 8)
    first = torch.zeros(2, 6, dtype=torch.bool)
    first[0, 3] = True
    y, _ = mod(x, is_first=first)
    y_fresh, _ = mod(x[:1, 3:])
    torch.testing.assert_close(y[:1, 3:], y_fresh)  # sample 0 restarted at t = 3
    y_plain, _ = mod(x[1:])
    torch.testing.assert_close(y[1:], y_plain)  # sample 1 unaffected
    assert not torch.allclose(y[:1, 3:], _make()(x[:1])[0][:, 3:])


_W = torch.randn(8)  # a fixed readout (a plain sum of LayerNorm outputs has zero gradient)


def _grad_pattern(mod, T, first=None):
    """|d loss(last step) / d tokens(t)| summed per step, per sample: (B, T)."""
    x = torch.randn(2, T, 2, 8, requires_grad=True)
    y, _ = mod(x, is_first=first)
    (g,) = torch.autograd.grad((y[:, -1] * _W).sum(), x)
    return g.abs().sum((2, 3))


def test_tbptt_windows_per_sample():
    T = 6
    g = _grad_pattern(_make(tbptt_length=1), T)
    assert (g[:, :-1] == 0).all() and (g[:, -1] > 0).all()
    mod = _make(tbptt_length=2)
    g = _grad_pattern(mod, T)  # windows [0,1] [2,3] [4,5]: last step reaches step 4 only
    assert (g[:, :4] == 0).all() and (g[:, 4:] > 0).all()
    first = torch.zeros(2, T, dtype=torch.bool)
    first[1, 3] = True  # sample 1 restarts at 3: windows [3,4] [5]
    g = _grad_pattern(mod, T, first)
    assert (g[0, 4:] > 0).all() and (g[0, :4] == 0).all()
    assert (g[1, :5] == 0).all() and g[1, 5] > 0
    g = _grad_pattern(_make(tbptt_length=10), T)
    assert (g > 0).all()


def test_m0_stays_in_graph_and_learns():
    mod = _make(tbptt_length=1)
    x = torch.randn(2, 3, 2, 8)
    first = torch.zeros(2, 3, dtype=torch.bool)
    first[0, 2] = True
    st = mod.init_state(2)
    st = MemoryTokens.detach_state(st)
    y, _ = mod(x, st, is_first=first)
    (g,) = torch.autograd.grad((y[0, 2] * _W).sum(), mod.M0, retain_graph=True)
    assert g.abs().sum() > 0  # reached through the is_first step only
    (g,) = torch.autograd.grad((y[1, 2] * _W).sum(), mod.M0, allow_unused=True)
    assert g is None or g.abs().sum() == 0


def test_ema_update_rule_and_no_cross_step_gradient():
    mod = _make(memory_update="ema", ema_alpha=0.3)
    x = torch.randn(2, 3, 2, 8, requires_grad=True)
    _, s0 = mod(x[:, :1])
    mem_in = mod.M0[None].expand(2, -1, -1)
    z = torch.cat([mem_in, x[:, 0]], 1)
    mem_out = mod.transformer(z)[0][:, :3]
    torch.testing.assert_close(s0["mem"], 0.3 * mem_out + 0.7 * mem_in)
    assert not s0["mem"].requires_grad
    y, _ = mod(x)
    (g,) = torch.autograd.grad((y[:, -1] * _W).sum(), x)
    assert (g[:, :2] == 0).all() and (g[:, 2] != 0).any()


def test_memoryless_and_padding_and_custom_mask():
    mod = _make(m=0)
    x = torch.randn(2, 3, 4, 8)
    y, st = mod(x)
    assert st["mem"].shape == (2, 0, 8)
    torch.testing.assert_close(y[:, 1], mod.transformer(x[:, 1])[0])
    mod = _make(m=2, mem_pos=-1)
    kpm = torch.zeros(2, 3, 4, dtype=torch.bool)
    kpm[:, :, 3] = True
    x2 = x.clone()
    x2[:, :, 3] = 100.0
    torch.testing.assert_close(mod(x, key_padding_mask=kpm)[0][..., :3, :], mod(x2, key_padding_mask=kpm)[0][..., :3, :])
    sees = torch.tensor([True, True, False, False])  # memory may not read tokens 2, 3 (actions)
    mask = mod.attn_mask(4, sees)
    _, s1 = mod(x, attn_mask=mask)
    _, s2 = mod(x2.index_fill(2, torch.tensor([2]), -3.0), attn_mask=mask)
    torch.testing.assert_close(s1["mem"], s2["mem"])


def test_custom_transformer_factory_and_registry_errors():
    from ostinato.core import ConfigError

    mod = MemoryTokens(8, 2, lambda: Transformer(TransformerConfig(d_model=8, n_heads=2, n_layers=1, causal=False)))
    y, st = mod.step(torch.randn(3, 5, 8))
    assert y.shape == (3, 5, 8) and st["mem"].shape == (3, 2, 8)
    with pytest.raises(ConfigError):
        create_model("memory_transformer", d_model=8, n_heads=2, tbptt_length=0)


def test_learns_to_recall_a_cue():
    """A cue shown at the first step must be reported at the last step: needs memory."""

    def run(m, iters=150):
        torch.manual_seed(0)
        mod = MemoryTokens(
            16, m, Transformer(TransformerConfig(d_model=16, n_heads=2, n_layers=1, causal=False, mlp_ratio=2.0)),
            tbptt_length=4,
        )
        head = torch.nn.Linear(16, 1)
        opt = torch.optim.Adam(list(mod.parameters()) + list(head.parameters()), lr=3e-3)
        for _ in range(iters):
            cue = torch.randint(0, 2, (32,)).float() * 2 - 1
            x = torch.randn(32, 3, 1, 16) * 0.1
            x[:, 0, 0, 0] = cue
            y, _ = mod(x)
            loss = (head(y[:, -1, 0]).squeeze(-1) - cue).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    with_mem, without = run(2), run(0)
    assert with_mem < 0.2 and without > 0.6, (with_mem, without)
