"""End to end through the CLI: train test_sasrec for one epoch, eval --json, recommend."""
import dataclasses
import json

import pytest
import torch


def test_train_eval_recommend(cli, tmp_path, capsys, relocate):
    run = tmp_path / "run"
    r = cli("train", "recsys/test_sasrec", "--out", run, "--quiet", "trainer.max_epochs=1")
    assert r.returncode == 0, r.stderr
    res = json.loads((run / "results.json").read_text())
    assert res["epochs"] == 1 and res["monitor"] == "sampled_ndcg@10"
    assert 0 <= res["test"]["sampled_ndcg@10"] <= 1 and res["test"]["full_users"] == 200

    r = cli("eval", run, "--json")
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout.strip().splitlines()[-1])
    assert ev["split"] == "test" and ev["sampled_ndcg@10"] == res["test"]["sampled_ndcg@10"]

    r = cli("recommend", run, "--user", "3", "-k", "5", "--json")
    assert r.returncode == 0, r.stderr
    recs = json.loads(r.stdout)["items"]
    assert len(recs) == 5 and all(1 <= x["item"] <= 50 for x in recs)
    assert [x["score"] for x in recs] == sorted((x["score"] for x in recs), reverse=True)
    from ostinato.recsys.data.synthetic import synthetic_sequences

    d = synthetic_sequences(n_users=200, n_items=50)  # the recipe's data: user 3's history
    seen = set(d.items[d.offsets[2]:d.offsets[3]].tolist())
    assert not seen & {x["item"] for x in recs}

    r = cli("recommend", run, "--user", "99999")
    assert r.returncode == 2 and "no such user" in r.stderr and len(r.stderr.strip().splitlines()) == 1

    from ostinato.core.cli import main

    def recommend(where):
        capsys.readouterr()
        assert main(["recommend", str(where), "--user", "3", "-k", "5", "--json"]) == 0
        return json.loads(capsys.readouterr().out)["items"]

    old = tmp_path / "old_run"  # a checkpoint saved before they held the histories: the data is rebuilt
    old.mkdir()
    state = torch.load(run / "best.pt", weights_only=True)
    torch.save({k: v for k, v in state.items() if k not in ("inference", "model_kwargs")}, old / "best.pt")
    assert recommend(old) == recs

    # shared weights (Hub layout, as shipped) carry the item map but no user's history
    from ostinato.core.hub import save_pretrained

    shared = save_pretrained(run, tmp_path / "shared")
    doc = json.loads((tmp_path / "shared" / "config.json").read_text())
    assert set(doc["inference"]["histories"]) == {"n_items", "source"}
    assert recommend(shared) == recs  # user 3's history rebuilt from the (synthetic) data
    hist = ",".join(str(i) for i in d.items[d.offsets[2]:d.offsets[3]].tolist())
    capsys.readouterr()
    assert main(["recommend", str(shared), "--history", hist, "-k", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == recs  # the same history given by hand: the same items
    assert main(["recommend", str(shared), "--history", "3,51"]) == 2
    assert "--history: item 51 is not an item of the run's dataset (50 items)" in capsys.readouterr().err
    assert recommend(relocate(run)) == recs  # the run folder alone on a fresh machine: the same items


def test_malformed_data_is_one_line(tmp_path):

    from ostinato.core import recipe
    from ostinato.core.errors import DataError
    from ostinato.core.train import build_data

    bad = tmp_path / "bad.txt"
    bad.write_text("1 2\n1 3\n1 oops\n")
    cfg = recipe.resolve({"domain": "recsys", "model": {"name": "test_sasrec"},
                          "data": {"name": "sasrec_txt", "path": str(bad)}})
    with pytest.raises(DataError) as e:
        build_data(cfg)
    assert str(e.value) == f"{bad}:3: expected 'user item' (two integers, item >= 1), got '1 oops'"


def test_recipes_resolve():
    from ostinato.core import recipe

    for name in ("sasrec_games", "sasrec_games_ce", "sasrec_beauty", "sasrec_ml1m", "test_sasrec"):
        cfg = recipe.load(f"recsys/{name}")
        assert cfg.domain == "recsys" and cfg.trainer.mode == "max"
    games = recipe.load("recsys/sasrec_games")
    assert (games.data.maxlen, games.model.d_model, games.model.n_blocks, games.model.dropout) == (50, 50, 2, 0.5)
    assert (games.optim.lr, tuple(games.optim.betas), games.data.batch_size) == (1e-3, (0.9, 0.98), 128)
    ce = recipe.load("recsys/sasrec_games_ce")  # the same model, data and optimiser; only the loss differs
    assert ce.model.loss == "ce" and games.model.loss == "bce"
    assert dataclasses.replace(ce.model, loss="bce") == games.model
    assert ce.data == games.data and ce.optim == games.optim
    ml = recipe.load("recsys/sasrec_ml1m")
    assert (ml.data.maxlen, ml.model.dropout) == (200, 0.2)
    assert recipe.load("recsys/sasrec_beauty").eval.protocol == "full"
