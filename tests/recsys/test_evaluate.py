"""The evaluator against hand-computed rankings (ties count against the model)."""
import math

import numpy as np
import pytest
import torch

from ostinato.core.config import from_dict
from ostinato.recsys.data.sequences import Interactions, SeqDataConfig, make_bundle
from ostinato.recsys.evaluate import RecEvalConfig, evaluate
from ostinato.recsys.metrics import rank_of_true, ranking_metrics


def test_metrics_by_hand():
    m = ranking_metrics(np.array([0, 3, 9, 10, 25]), ks=(5, 10))
    assert m["hr@5"] == pytest.approx(2 / 5)
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(5)) / 5)
    assert m["mrr@5"] == pytest.approx((1 + 1 / 4) / 5)
    assert m["hr@10"] == pytest.approx(3 / 5)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(5) + 1 / math.log2(11)) / 5)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 4 + 1 / 10) / 5)


def test_ties_count_against_the_model():
    true = torch.tensor([1.0, 1.0, 0.0])
    others = torch.tensor([[1.0, 0.5, 2.0], [0.0, 0.5, 0.9], [0.0, 0.0, 0.0]])
    assert rank_of_true(true, others).tolist() == [2, 0, 3]


class Stub(torch.nn.Module):
    """Scores item i as w[i] whatever the input; records what it was asked."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(torch.as_tensor(w, dtype=torch.float32), requires_grad=False)
        self.seen_seq, self.seen_items = [], []

    def score(self, seq, items):
        self.seen_seq.append(seq.clone())
        self.seen_items.append(items.clone())
        return self.w[items]

    def score_all(self, seq):
        self.seen_seq.append(seq.clone())
        s = self.w.expand(len(seq), -1).clone()
        s[:, 0] = float("-inf")
        return s


def _bundle():
    # 10 items; user A: 1 2 3 4 (val 3, test 4), user B: 5 6 7 (val 6, test 7), user C: 8 9 (train only)
    data = Interactions.from_lists([[1, 2, 3, 4], [5, 6, 7], [8, 9]])
    data.n_items = 10
    return make_bundle(data, SeqDataConfig(maxlen=3))


class Cfg:
    def __init__(self, **ev):
        self.eval = from_dict(RecEvalConfig, ev)  # evaluate reads the run's typed eval section


def test_full_ranking_filters_seen_items_by_hand():
    b = _bundle()
    w = np.arange(11, dtype=np.float32)  # higher id = better
    w[9] = w[4]  # item 9 ties with item 4
    out = evaluate(Stub(w), b, "test", Cfg(protocol="full", ks=[1, 3]))
    # A, test 4, seen {1,2,3}: better unseen 5..8, 10 and the tie 9 -> rank 6
    # B, test 7, seen {5,6}: better 8, 10 (9 scores 4) -> rank 2
    assert out["full_users"] == 2
    assert out["full_hr@1"] == 0.0 and out["full_hr@3"] == 0.5
    out = evaluate(Stub(w), b, "test", Cfg(protocol="full", ks=[4, 6, 7]))
    assert out["full_hr@4"] == 0.5 and out["full_hr@6"] == 0.5 and out["full_hr@7"] == 1.0
    assert out["full_ndcg@7"] == pytest.approx((1 / math.log2(8) + 1 / math.log2(4)) / 2)
    assert out["full_mrr@4"] == pytest.approx(1 / 3 / 2)
    # val: A target 3 seen {1,2}: better 4..10 (7, tie included) -> rank 7; B target 6 seen {5}: 7, 8, 10 -> rank 3
    out = evaluate(Stub(w), b, "val", Cfg(protocol="full", ks=[5, 8]))
    assert out["full_hr@5"] == 0.5 and out["full_hr@8"] == 1.0


def test_full_ranking_keeps_a_repeated_true_item():
    data = Interactions.from_lists([[3, 1, 2, 3], [1, 2, 3]])  # user A's test item 3 was seen before
    data.n_items = 5
    b = make_bundle(data, SeqDataConfig(maxlen=4))
    w = np.array([0, 1, 2, 9, 1, 8], dtype=np.float32)
    out = evaluate(Stub(w), b, "test", Cfg(protocol="full", ks=[1]))
    # A: 3 beats the unseen 4 and 5 -> rank 0; B (test 3, seen {1, 2}): also rank 0
    assert out["full_hr@1"] == 1.0
    w[5] = 10.0  # now 5 beats 3 for both users
    out = evaluate(Stub(w), b, "test", Cfg(protocol="full", ks=[1, 2]))
    assert out["full_hr@1"] == 0.0 and out["full_hr@2"] == 1.0


def test_sampled_protocol():
    data = Interactions.from_lists([list(range(1 + 5 * u, 6 + 5 * u)) for u in range(40)])  # disjoint histories
    b = make_bundle(data, SeqDataConfig(maxlen=3))
    w = -np.arange(201, dtype=np.float32)  # lower id = better
    cfg = Cfg(protocol="sampled", n_negatives=50, max_users=30, seed=3, ks=[10])
    stub = Stub(w)
    out = evaluate(stub, b, "test", cfg)
    assert out["sampled_users"] == 30
    items = torch.cat(stub.seen_items).numpy()
    seqs = torch.cat(stub.seen_seq).numpy()
    assert items.shape == (30, 51)
    for cand, seq in zip(items, seqs):
        u = (cand[0] - 1) // 5  # the true item (last of the user's 5) comes first
        assert cand[0] == 5 + 5 * u
        assert seq.tolist() == [2 + 5 * u, 3 + 5 * u, 4 + 5 * u]  # the validation item is in the input
        hist = set(range(1 + 5 * u, 6 + 5 * u))
        assert not hist & set(cand[1:].tolist()) and ((cand >= 1) & (cand <= 200)).all()
    # rank = negatives with a smaller id; compare with the evaluator's HR@10
    ranks = (items[:, 1:] <= items[:, :1]).sum(1)
    assert out["sampled_hr@10"] == pytest.approx((ranks < 10).mean())
    again = evaluate(Stub(w), b, "test", cfg)
    assert again == {**out, "eval_s": again["eval_s"]}  # fixed seed: same users, same negatives
    # a model that scores everything equally gets the worst rank (ties count against it)
    flat = evaluate(Stub(np.zeros(201, np.float32)), b, "test", Cfg(protocol="both", n_negatives=50, ks=[10]))
    assert flat["sampled_hr@10"] == 0.0 and flat["full_hr@10"] == 0.0


def test_eval_config_defaults_follow_the_paper():
    c = RecEvalConfig()
    assert (c.n_negatives, c.max_users, c.ks, c.protocol) == (100, 10000, [5, 10, 20], "both")
