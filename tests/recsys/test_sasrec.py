"""SASRec: shapes, causality, padding, packed == padded reference, losses, options."""
import math

import pytest
import torch

from ostinato.core.errors import ConfigError
from ostinato.core.registry import create_model
from ostinato.recsys.data.synthetic import synthetic_sequences
from ostinato.recsys.data.sequences import LeaveOneOut, TrainSequences, collate
from ostinato.recsys.models.sasrec import SASRec, SASRecConfig


def _seq(B=12, L=8, n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(1, n + 1, (B, L), generator=g)
    lens = torch.randint(0, L + 1, (B,), generator=g)
    lens[0], lens[1] = L, 1
    seq[torch.arange(L)[None, :] < (L - lens)[:, None]] = 0  # left padding
    return seq


LAYOUTS = [{}, {"norm_first": True}, {"post_ln": True, "attn_out_proj": True, "init": "xavier"}]


@pytest.mark.parametrize("kw", LAYOUTS)
def test_shapes_and_scores(kw):
    m = create_model("test_sasrec", **kw).eval()
    seq = _seq()
    f = m(seq)
    assert f.shape == (12, 8, 16)
    cand = torch.randint(1, 51, (12, 7))
    s = m.score(seq, cand)
    assert s.shape == (12, 7)
    full = m.score_all(seq)
    assert full.shape == (12, 51) and torch.isinf(full[:, 0]).all()
    # score == <F_last, E_i> with the shared, unscaled item embedding
    torch.testing.assert_close(s, torch.einsum("bd,bcd->bc", f[:, -1], m.item_emb.weight[cand]))
    torch.testing.assert_close(full[:, 1:], f[:, -1] @ m.item_emb.weight[1:].T)


@pytest.mark.parametrize("kw", LAYOUTS)
def test_causality(kw):
    m = create_model("test_sasrec", **kw).eval()
    seq = _seq()
    seq2 = seq.clone()
    seq2[:, 5] = torch.where(seq[:, 5] > 0, seq[:, 5] % 50 + 1, 0)  # change a later item
    a, b = m(seq), m(seq2)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


@pytest.mark.parametrize("kw", LAYOUTS + [{"attn_chunk": 3}])
def test_packed_equals_padded_reference(kw):
    # float64, and a loss with fixed random weights: with float32 and a sum of squares the inner
    # gradients are ~1e-5 after the final LayerNorm's cancellation, i.e. summation-order noise
    # that differs between CPUs; here every gradient is O(1) or more and any real difference shows
    torch.manual_seed(0)
    m = create_model("test_sasrec", dropout=0.0, **kw).double()
    seq = _seq(B=40, seed=1)
    seq[3, 4] = 0  # a hole inside a sequence is padding too
    a = m(seq, packed=True)
    b = m(seq, packed=False)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    w = torch.randn(a[seq != 0].shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ga = torch.autograd.grad((a[seq != 0] * w).sum(), list(m.parameters()), allow_unused=True)
    gb = torch.autograd.grad((b[seq != 0] * w).sum(), list(m.parameters()), allow_unused=True)
    n_checked = 0
    for x, y in zip(ga, gb):
        if x is not None or y is not None:
            torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-11)
            n_checked += 1
    assert n_checked > 10


def test_padding_has_no_influence():
    m = create_model("test_sasrec", packed=False).eval()
    seq = _seq()
    real = seq != 0
    before = m(seq)
    with torch.no_grad():  # perturb what padding would read: its embedding row and early positions
        m.item_emb.weight[0].normal_()
    after = m(seq)
    torch.testing.assert_close(before[real], after[real])
    # padding outputs are LN(0) = the final LayerNorm's bias, as in the TF code
    torch.testing.assert_close(before[~real], m.final_norm.bias.expand_as(before[~real]))
    # a user's scores do not depend on the other users in the batch or their padding
    solo = m(seq[2:3])
    torch.testing.assert_close(solo[0], before[2])


def test_padding_row_gets_no_gradient():
    m = create_model("test_sasrec")
    b = _batch(m.cfg.n_items)
    loss, _ = m.loss(b)
    loss.backward()
    assert m.item_emb.weight.grad[0].abs().max() == 0


def _batch(n_items=50, k=1, seed=0):
    data = synthetic_sequences(n_users=64, n_items=n_items, seed=seed)
    ds = TrainSequences(LeaveOneOut(data), maxlen=8, n_negatives=k, seed=seed)
    return collate(ds.__getitems__(list(range(32))))


@pytest.mark.parametrize("loss,k", [("bce", 1), ("ce", 1), ("sampled_softmax", 8), ("gbce", 8)])
def test_losses_finite_and_decrease(loss, k):
    torch.manual_seed(0)
    m = create_model("test_sasrec", loss=loss, dropout=0.0)
    batch = _batch(k=k)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = None
    for _ in range(20):
        value, logs = m.loss(batch)
        assert torch.isfinite(value) and all(math.isfinite(v) for v in logs.values())
        first = first if first is not None else value.item()
        opt.zero_grad()
        value.backward()
        opt.step()
    assert value.item() < 0.7 * first


def test_bce_matches_tf_formula():
    m = create_model("test_sasrec", dropout=0.0)
    b = _batch()
    loss, _ = m.loss(b)
    f = m(b["seq"])  # (B, L, D)
    E = m.item_emb.weight
    t = b["pos"] != 0
    sp = (f * E[b["pos"]]).sum(-1)[t]
    sn = (f * E[b["neg"][..., 0]]).sum(-1)[t]
    ref = (-torch.log(torch.sigmoid(sp) + 1e-24) - torch.log(1 - torch.sigmoid(sn) + 1e-24)).sum() / t.sum()
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)


def test_gbce_t0_is_bce_over_k_plus_1():
    torch.manual_seed(0)
    b = _batch(k=4)
    m = create_model("test_sasrec", dropout=0.0, loss="gbce", gbce_t=0.0)
    m2 = create_model("test_sasrec", dropout=0.0, loss="bce")
    m2.load_state_dict(m.state_dict())
    torch.testing.assert_close(m.loss(b)[0] * 5, m2.loss(b)[0])


def test_config_errors():
    with pytest.raises(ConfigError, match="exclusive"):
        create_model("test_sasrec", norm_first=True, post_ln=True)
    with pytest.raises(ConfigError, match="divisible"):
        create_model("test_sasrec", d_model=15, n_heads=2)
    with pytest.raises(ConfigError, match="n_items"):
        SASRec(SASRecConfig())
    m = create_model("test_sasrec")
    with pytest.raises(ConfigError, match="maxlen"):
        m(torch.ones(1, 9, dtype=torch.long))


def test_paper_defaults_and_init():
    m = create_model("sasrec", n_items=1000)
    c = m.cfg
    assert (c.d_model, c.n_blocks, c.n_heads, c.dropout, c.maxlen, c.loss) == (50, 2, 1, 0.5, 50, "bce")
    assert m.item_emb.weight[0].abs().sum() == 0
    lim = math.sqrt(6 / (1001 + 50))  # TF glorot-uniform on the (vocab, d) table
    assert m.item_emb.weight.abs().max() <= lim
    assert m.blocks[0].q.bias.abs().sum() == 0 and m.blocks[0].out is None
    n_params = sum(p.numel() for p in m.parameters())
    # E + P + per block (2 LN + Q + KV + 2 FFN) + final LN, no attention output projection
    assert n_params == 1001 * 50 + 50 * 50 + 2 * (4 * 50 + 3 * 2550 + 2 * 2550) + 100


def test_gbce_beta_at_t_075_is_the_papers():
    from ostinato.recsys.models.sasrec import gbce_beta

    # Petrov & Macdonald 2023, eq. for beta: alpha = k / (|I| - 1); k = 1, |I| = 101, t = 0.75: alpha = 0.01,
    # beta = 0.01 * (0.75 * (1 - 100) + 100) = 0.2575 (by hand)
    assert gbce_beta(1, 101, 0.75) == pytest.approx(0.2575)
    assert gbce_beta(1, 101, 0.0) == pytest.approx(1.0) and gbce_beta(1, 101, 1.0) == pytest.approx(0.01)
    assert gbce_beta(1, 101, 0.75, "code") == pytest.approx((1 / 99) * (0.75 * (1 - 99) + 99))  # gSASRec-pytorch


@pytest.mark.parametrize("alpha", ["paper", "code"])
def test_gbce_loss_is_the_papers_formula(alpha):
    """loss = mean over positions of [-log sigma(s+)^beta - sum_j log(1 - sigma(s-_j))] / (k + 1), t = 0.75."""
    torch.manual_seed(0)
    k, t = 4, 0.75
    m = create_model("test_sasrec", dropout=0.0, loss="gbce", gbce_t=t, gbce_alpha=alpha).double()
    b = _batch(k=k)
    loss, _ = m.loss(b)
    f = m(b["seq"])  # (B, L, D)
    E = m.item_emb.weight
    on = b["pos"] != 0
    sp = (f * E[b["pos"]]).sum(-1)[on]  # (N,)
    sn = torch.einsum("bld,blkd->blk", f, E[b["neg"]])[on]  # (N, k)
    n = m.cfg.n_items
    a = k / (n - 1) if alpha == "paper" else k / (n - 2)
    beta = a * (t * (1 - 1 / a) + 1 / a)
    ref = (-(torch.sigmoid(sp) ** beta).log() - (1 - torch.sigmoid(sn)).log().sum(-1)) / (k + 1)
    torch.testing.assert_close(loss, ref.mean(), rtol=1e-10, atol=1e-12)
