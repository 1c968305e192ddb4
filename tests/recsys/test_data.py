"""Readers, leave-one-out split and training batches on tiny fixtures of each format."""
import zipfile

import numpy as np
import pytest
import torch

from ostinato.core.errors import DataError
from ostinato.core.registry import get_dataset, make_config
from ostinato.recsys.data.movielens import count_filter, load_movielens, MovieLensConfig, read_ratings, movielens_interactions
from ostinato.recsys.data.s3rec_txt import read_s3rec_txt
from ostinato.recsys.data.sasrec_txt import read_sasrec_txt
from ostinato.recsys.data.sequences import LeaveOneOut, TrainSequences, make_bundle, SeqDataConfig
from ostinato.recsys.data.synthetic import synthetic_sequences


def _seqs(data):
    return {data.user_ids[u]: data.items[data.offsets[u]:data.offsets[u + 1]].tolist() for u in range(data.n_users)}


def test_sasrec_txt_reader_and_split(tmp_path):
    p = tmp_path / "toy.txt"
    # user 1 has 4 items, user 2 two (stays in train), user 3 three; users interleaved
    p.write_text("1 5\n1 3\n2 7\n1 9\n3 1\n1 2\n2 4\n\n3 6\n3 8\n")
    d = read_sasrec_txt(p)
    assert _seqs(d) == {1: [5, 3, 9, 2], 2: [7, 4], 3: [1, 6, 8]}
    assert d.n_items == 9
    loo = LeaveOneOut(d)
    u1, u2, u3 = (d.user_index(str(u)) for u in (1, 2, 3))
    assert loo.val_target[u1] == 9 and loo.test_target[u1] == 2
    assert loo.val_target[u2] == 0 and loo.test_target[u2] == 0 and not loo.evaluable[u2]
    assert loo.val_target[u3] == 6 and loo.test_target[u3] == 8
    s, e = loo.history(np.array([u1]), "val")
    assert d.items[s[0]:e[0]].tolist() == [5, 3]
    s, e = loo.history(np.array([u1]), "test")
    assert d.items[s[0]:e[0]].tolist() == [5, 3, 9]


@pytest.mark.parametrize("text,line", [("1 2\n1 x\n", 2), ("1 2\n\n3\n", 3), ("1 2 3\n", 1), ("1 2\n2 0\n", 2)])
def test_sasrec_txt_malformed(tmp_path, text, line):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(DataError) as e:
        read_sasrec_txt(p)
    msg = str(e.value)
    assert f"bad.txt:{line}:" in msg and "user item" in msg and "\n" not in msg


def test_s3rec_reader(tmp_path):
    p = tmp_path / "Beauty.txt"
    p.write_text("1 1 2 3 4 5\n2 6 7 8 9 10 4 11\n3 4 12\n")
    d = read_s3rec_txt(p)
    assert _seqs(d) == {1: [1, 2, 3, 4, 5], 2: [6, 7, 8, 9, 10, 4, 11], 3: [4, 12]}
    assert d.n_items == 12
    loo = LeaveOneOut(d)
    assert loo.test_target.tolist() == [5, 11, 0] and loo.val_target.tolist() == [4, 4, 0]
    for text, line in [("1 1 2\n2 a 3\n", 2), ("1 1 2\n2\n", 2), ("1 1 0\n", 1)]:
        p.write_text(text)
        with pytest.raises(DataError, match=f"Beauty.txt:{line}: expected 'user_id item_1"):
            read_s3rec_txt(p)
    p.write_text("1 1 2\n1 3 4\n")
    with pytest.raises(DataError, match="more than one line"):
        read_s3rec_txt(p)


RATINGS = [  # user, movie, rating, timestamp (file order is not time order)
    (1, 10, 5, 300), (1, 20, 3, 100), (1, 30, 4, 200), (2, 20, 5, 50), (2, 40, 1, 60),
    (2, 10, 2, 40), (3, 30, 4, 10), (3, 10, 4, 10), (3, 50, 4, 5),
]


def _write_ratings(path, sep):
    path.write_text("".join(sep.join(map(str, r)) + "\n" for r in RATINGS))


@pytest.mark.parametrize("name,sep", [("ratings.dat", "::"), ("u.data", "\t")])
def test_movielens_formats_sorted_by_time(tmp_path, name, sep):
    p = tmp_path / name
    _write_ratings(p, sep)
    rows = read_ratings(p)
    assert rows.tolist() == [list(r) for r in RATINGS]
    d = movielens_interactions(rows, kcore="none", source=str(p))
    labels = {u: d.item_label(np.array(s)).tolist() for u, s in _seqs(d).items()}
    # sorted by timestamp within a user; ties (user 3, t=10) keep file order
    assert labels == {1: [20, 30, 10], 2: [10, 20, 40], 3: [50, 30, 10]}
    assert d.n_items == 5 and d.item_ids[1] == 10  # items numbered by first appearance in the file


def test_movielens_malformed_and_zip(tmp_path):
    p = tmp_path / "ratings.dat"
    p.write_text("1::2::3::4\n1::2::3\n")
    with pytest.raises(DataError, match=r"ratings.dat:2: expected 'UserID::MovieID::Rating::Timestamp'"):
        read_ratings(p)
    z = tmp_path / "ml-1m.zip"
    _write_ratings(p, "::")
    with zipfile.ZipFile(z, "w") as f:
        f.write(p, "ml-1m/ratings.dat")
    assert read_ratings(z).tolist() == [list(r) for r in RATINGS]
    cfg = MovieLensConfig(path=str(tmp_path / "missing.zip"), alt_paths=[str(z)], kcore="none")
    assert load_movielens(cfg).n_users == 3
    with pytest.raises(DataError, match="MovieLens not found"):
        load_movielens(MovieLensConfig(path="nope/ml-1m.zip", alt_paths=[]), data_root=tmp_path)


def test_kcore_once_vs_iterative():
    # item 9 is rated once; dropping it leaves user 1 with 2 ratings (< 3): only the
    # iterative filter goes on to drop user 1
    users = np.array([1, 1, 1, 2, 2, 2, 3, 3, 3])
    items = np.array([1, 2, 9, 1, 2, 3, 3, 1, 2])
    once = count_filter(users, items, min_user=3, min_item=2, iterative=False)
    it = count_filter(users, items, min_user=3, min_item=2, iterative=True)
    assert once.tolist() == [True, True, False] + [True] * 6
    assert it.tolist() == [False] * 3 + [True] * 6


def test_training_batches():
    data = synthetic_sequences(n_users=40, n_items=30, min_len=1, max_len=15, seed=3)
    loo = LeaveOneOut(data)
    ds = TrainSequences(loo, maxlen=6, n_negatives=3, seed=7)
    train_len = loo.train_end - data.offsets[:-1]
    assert len(ds) == int((train_len >= 2).sum())
    b = ds.__getitems__(list(range(len(ds))))
    seq, pos, neg = b["seq"].numpy(), b["pos"].numpy(), b["neg"].numpy()
    assert seq.shape == (len(ds), 6) and neg.shape == (len(ds), 6, 3)
    for r, u in enumerate(ds.users):
        tr = data.items[data.offsets[u]:loo.train_end[u]].tolist()
        n = min(len(tr) - 1, 6)
        assert seq[r, 6 - n:].tolist() == tr[:-1][-n:] and (seq[r, :6 - n] == 0).all()
        assert pos[r, 6 - n:].tolist() == tr[1:][-n:] and (pos[r, :6 - n] == 0).all()
        assert (neg[r, :6 - n] == 0).all()
        got = neg[r, 6 - n:].ravel()
        assert ((got >= 1) & (got <= 30)).all() and not set(got) & set(tr)
    # an example depends on (seed, epoch, index) only: not on its batch-mates
    single = ds[5]
    np.testing.assert_array_equal(single["neg"], neg[5])
    ds.set_epoch(1)
    assert not np.array_equal(ds[5]["neg"], neg[5])
    ds.set_epoch(0)
    np.testing.assert_array_equal(ds.__getitems__([9, 5])["neg"][1].numpy(), neg[5])


def test_bundle_and_registered_datasets(tmp_path):
    p = tmp_path / "toy.txt"
    p.write_text("".join(f"{u} {i}\n" for u in range(1, 6) for i in range(1, 3 + u)))
    e = get_dataset("sasrec_txt")
    b = e.builder(make_config(e, {"path": str(p), "maxlen": 4, "batch_size": 2}), None)
    assert b.model_kwargs == {"n_items": 7, "maxlen": 4}
    assert len(b.val) == len(b.test) == 5 and b.batch_size == 2
    item = b.test[0]  # user 1: items 1..3 -> test target 3, input [1, 2] left-padded
    assert item["seq"].tolist() == [0, 0, 1, 2] and item["target"] == 3
    t = b.test.__getitems__([0, 4])
    assert t["target"].tolist() == [3, 7] and t["seq"][1].tolist() == [3, 4, 5, 6]
    v = b.val.__getitems__([4])
    assert v["target"].tolist() == [6] and v["seq"][0].tolist() == [2, 3, 4, 5]
    with pytest.raises(DataError, match="not found"):
        e.builder(make_config(e, {"path": "recsys/sasrec/none.txt"}), tmp_path)
    with pytest.raises(DataError, match="3 interactions"):
        make_bundle(synthetic_sequences(n_users=3, min_len=2, max_len=2), SeqDataConfig())


def test_shared_files_match_their_published_statistics(shared_data):
    d = read_sasrec_txt(shared_data / "recsys/sasrec/Video.txt")
    assert (d.n_users, d.n_items, int(d.offsets[-1])) == (31013, 23715, 287107)
    b = read_s3rec_txt(shared_data / "recsys/s3rec_seq/Beauty.txt")
    assert (b.n_users, b.n_items, int(b.offsets[-1])) == (22363, 12101, 198502)


def test_negatives_all_draws_from_every_item():
    """negatives="all" (gSASRec): uniform over 1..n_items, the user's own items included; "unseen" never."""
    data = synthetic_sequences(n_users=40, n_items=12, min_len=4, max_len=10, seed=3)
    loo = LeaveOneOut(data)
    for mode in ("unseen", "all"):
        ds = TrainSequences(loo, maxlen=8, n_negatives=50, seed=7, negatives=mode)
        b = ds.__getitems__(list(range(len(ds))))
        seen = hits = 0
        for r, u in enumerate(ds.users):
            tr = set(data.items[data.offsets[u]:loo.train_end[u]].tolist())
            got = b["neg"][r][b["pos"][r] != 0].ravel().numpy()
            assert ((got >= 1) & (got <= 12)).all()
            seen += np.isin(got, list(tr)).sum()
            hits += got.size
            if mode == "all":  # uniform: every item drawn about equally often
                counts = np.bincount(got, minlength=13)[1:]
        if mode == "unseen":
            assert seen == 0
        else:
            assert seen > 0.2 * hits and counts.min() > 0
