"""Causal self-attention block: reference math, KV-cache streaming, masks, learning."""
import math

import pytest
import torch

from ostinato.core import create_model
from ostinato.core.layers.attention import (
    AttentionBlock,
    AttentionConfig,
    SelfAttention,
    Transformer,
    TransformerConfig,
    kv_cache_select,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/core/conftest.py


def _tol(dtype):
    return dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=1e-10, rtol=1e-9)


def _ref_attention(attn: SelfAttention, x, valid=None):
    """Explicit softmax attention (the specification of SelfAttention)."""
    B, L, D = x.shape
    H, Dh = attn.n_heads, attn.d_head
    q, k, v = attn.qkv(x).view(B, L, 3, H, Dh).permute(2, 0, 3, 1, 4)
    s = q @ k.transpose(-1, -2) / math.sqrt(Dh)  # (B, H, L, L)
    allow = torch.ones(L, L, dtype=torch.bool)
    if attn.causal:
        allow = torch.tril(allow)
    allow = allow[None].expand(B, L, L)
    if valid is not None:
        allow = allow & valid[:, None, :]
    s = s.masked_fill(~allow[:, None], float("-inf"))
    y = torch.softmax(s, -1) @ v
    return attn.out(y.transpose(1, 2).reshape(B, L, D))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("causal", [True, False])
def test_self_attention_matches_reference(dtype, causal):
    torch.manual_seed(0)
    attn = SelfAttention(16, 4, causal=causal).to(dtype)
    x = torch.randn(3, 9, 16, dtype=dtype)
    y, _ = attn(x)
    torch.testing.assert_close(y, _ref_attention(attn, x), **_tol(dtype))
    valid = torch.ones(3, 9, dtype=torch.bool)
    valid[1, 6:] = False
    valid[2, 3:] = False
    y, _ = attn(x, key_padding_mask=~valid)
    ref = _ref_attention(attn, x, valid)
    torch.testing.assert_close(y[valid], ref[valid], **_tol(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("L", [1, 7, 64])
def test_forward_equals_step_loop_and_split(dtype, L):
    torch.manual_seed(1)
    blk = create_model("causal_transformer", d_model=16, n_heads=2, n_layers=2).to(dtype).eval()
    x = torch.randn(2, L, 16, dtype=dtype, requires_grad=True)
    y, st = blk(x)
    state = blk.init_state(2, dtype=dtype)
    ys = []
    for t in range(L):
        y_t, state = blk.step(x[:, t], state)
        ys.append(y_t)
    y_loop = torch.stack(ys, 1)
    torch.testing.assert_close(y_loop, y, **_tol(dtype))
    for a, b in zip(st, state):
        torch.testing.assert_close(a["k"], b["k"], **_tol(dtype))
    (g1,) = torch.autograd.grad(y.square().sum(), x)
    (g2,) = torch.autograd.grad(y_loop.square().sum(), x)
    torch.testing.assert_close(g1, g2, **_tol(dtype))
    k = L // 2
    y1, s1 = blk(x[:, :k])
    y2, _ = blk(x[:, k:], s1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, **_tol(dtype))


def test_causality_and_padding_equivalence():
    torch.manual_seed(2)
    blk = AttentionBlock(AttentionConfig(d_model=8, n_heads=2)).eval()
    x = torch.randn(1, 10, 8, requires_grad=True)
    y, _ = blk(x)
    (g,) = torch.autograd.grad(y[0, 4].sum(), x)
    assert g[0, 5:].abs().max() == 0 and g[0, :5].abs().sum() > 0
    # left padding with the mask equals the unpadded sequence (no positional encoding here)
    core = torch.randn(1, 6, 8)
    padded = torch.cat([torch.randn(1, 4, 8) * 50, core], 1)
    kpm = torch.zeros(1, 10, dtype=torch.bool)
    kpm[:, :4] = True
    y_pad, _ = blk(padded, key_padding_mask=kpm)
    y_ref, _ = blk(core)
    assert torch.isfinite(y_pad).all()
    torch.testing.assert_close(y_pad[:, 4:], y_ref, atol=1e-5, rtol=1e-4)
    # the cache remembers padding: stepping on after a padded prefix ignores it
    _, st = blk(padded[:, :7], key_padding_mask=kpm[:, :7])
    y_next, _ = blk.step(padded[:, 7], st)
    torch.testing.assert_close(y_next, y_ref[:, 3], atol=1e-5, rtol=1e-4)


def test_attn_mask_and_cache_reset():
    torch.manual_seed(3)
    tr = Transformer(TransformerConfig(d_model=8, n_heads=2, n_layers=1, causal=False)).eval()
    x = torch.randn(2, 5, 8, requires_grad=True)
    mask = torch.ones(5, 5, dtype=torch.bool)
    mask[0, 3:] = False  # token 0 may not read tokens 3, 4
    y, _ = tr(x, attn_mask=mask)
    (g,) = torch.autograd.grad(y[:, 0].sum(), x)
    assert g[:, 3:].abs().max() == 0 and g[:, 1:3].abs().sum() > 0
    causal = Transformer(TransformerConfig(d_model=8, n_heads=2, n_layers=2)).eval()
    a, b = torch.randn(2, 4, 8), torch.randn(2, 3, 8)
    _, st = causal(a)
    st = kv_cache_select(st, torch.tensor([True, False]))  # sample 1 starts a new sequence
    y_cont, _ = causal(b, st)
    y_fresh, _ = causal(b[1:])
    y_full, _ = causal(torch.cat([a, b], 1)[:1])
    torch.testing.assert_close(y_cont[1:], y_fresh, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(y_cont[:1], y_full[:, 4:], atol=1e-5, rtol=1e-4)


def test_dropout_active_in_training_only():
    torch.manual_seed(4)
    blk = AttentionBlock(AttentionConfig(d_model=8, n_heads=2, dropout=0.5, attn_dropout=0.5))
    x = torch.randn(2, 6, 8)
    assert not torch.allclose(blk(x)[0], blk(x)[0])
    blk.eval()
    torch.testing.assert_close(blk(x)[0], blk(x)[0])


def test_learns_running_mean():
    torch.manual_seed(0)
    tr = Transformer(TransformerConfig(d_model=16, n_heads=2, n_layers=1, mlp_ratio=2.0, final_norm=False))
    head = torch.nn.Linear(16, 16)
    opt = torch.optim.Adam(list(tr.parameters()) + list(head.parameters()), lr=3e-3)
    steps = torch.arange(1, 13).view(1, 12, 1)

    def batch():
        x = torch.randn(32, 12, 16)
        return x, x.cumsum(1) / steps

    x, y = batch()
    base = (y**2).mean().item()
    for _ in range(250):
        x, y = batch()
        loss = (head(tr(x)[0]) - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = batch()
    with torch.no_grad():
        final = (head(tr(x)[0]) - y).pow(2).mean().item()
    assert final < 0.3 * base, (final, base)
