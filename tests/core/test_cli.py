"""Each CLI verb and its exit codes (0 ok, 2 usage/config, 1 runtime)."""
import json


def test_ls_lists_models_recipes_datasets(cli):
    r = cli("ls")
    assert r.returncode == 0, r.stderr
    assert "toy_seq" in r.stdout and "core/toy_seq" in r.stdout and "dataset loaders" in r.stdout
    r = cli("ls", "models", "--domain", "core", "--pattern", "toy")
    assert r.returncode == 0 and "toy_seq" in r.stdout
    r = cli("ls", "nonsense")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "expected one of" in r.stderr


def test_train_eval_roundtrip_and_errors(cli, tmp_path):
    out = tmp_path / "run"
    r = cli("train", "core/toy_seq", "--out", out, "--quiet", "trainer.max_steps=6", "trainer.eval_every_steps=3")
    assert r.returncode == 0, r.stderr
    assert {"config.yaml", "last.pt", "best.pt", "metrics.csv", "results.json"} <= {p.name for p in out.iterdir()}
    r = cli("eval", out, "--json", "--split", "val")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout.strip().splitlines()[-1])
    assert m["split"] == "val" and m["mse"] > 0
    r = cli("eval", out / "last.pt", "--json")  # a checkpoint file works too
    assert r.returncode == 0 and "mse" in json.loads(r.stdout.strip().splitlines()[-1])
    # resume of a finished run is a no-op that still succeeds
    r = cli("train", "core/toy_seq", "--out", out, "--quiet", "--resume", "trainer.max_steps=6", "trainer.eval_every_steps=3")
    assert r.returncode == 0, r.stderr
    for args, needle in [
        (("train", "core/toy_seq", "--out", tmp_path / "x", "optim.lr=abc"), "optim.lr"),
        (("train", "core/toy_seq", "--out", tmp_path / "x", "trainer.nope=1"), "trainer.nope"),
        (("train", "core/missing"), "not found"),
        (("train", "core/toy_seq", "notakeyvalue"), "expected key=value"),
        (("train", "core/toy_seq", "--bogus-flag"), "unrecognized"),
        (("eval", tmp_path / "nowhere"), "does not exist"),
        (("bench", "nodomain"), "unknown domain"),
        (("data", "verify", "nodataset"), "unknown dataset"),
    ]:
        r = cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = cli("eval", out, "--json", "--debug", "model.nope=1")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_runtime_failure_exit_code_1(cli, tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint")
    r = cli("eval", bad)
    assert r.returncode == 1 and "cannot be read" in r.stderr and r.stderr.count("\n") == 1


def test_data_where_verify(cli):
    r = cli("data", "where")
    assert r.returncode == 0 and "search order" in r.stdout
    r = cli("data", "verify")
    assert r.returncode in (0, 1) and "dataset" in r.stdout


def test_module_entry_point(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "ostinato.core.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "train" in r.stdout and "bench" in r.stdout


def test_python_m_domain_train(tmp_path):
    import subprocess
    import sys

    from ostinato.core.cli import domain_train_main

    # the argument rewriting, without training
    import ostinato.core.cli as c

    seen = {}
    orig = c.main
    c.main = lambda argv: seen.setdefault("argv", argv) and 0
    try:
        domain_train_main("recsys", ["--out", "x", "sasrec_games", "optim.lr=1"])
    finally:
        c.main = orig
    assert seen["argv"] == ["train", "--out", "x", "recsys/sasrec_games", "optim.lr=1"]
    r = subprocess.run([sys.executable, "-m", "ostinato.recsys.train", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "RECIPE" in r.stdout.upper()
