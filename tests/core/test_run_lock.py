"""One training per run folder: ``<out>/.lock`` (fcntl.flock), released by the OS on any exit."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ostinato.core import checkpoint as ckpt
from ostinato.core.runlock import RunFolderBusy, RunLock

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fcntl locks are POSIX")


def _train(out, *extra):
    return [sys.executable, "-m", "ostinato.core.cli", "train", "core/toy_seq", "--out", str(out), "--quiet",
            "trainer.max_epochs=6", "data.n_train=256", "data.batch_size=16", "trainer.ckpt_every_steps=3",
            "trainer.log_every_steps=1", *extra]


def _wait_for(cond, p, what, limit=240):
    t0 = time.time()
    while not cond():
        if p.poll() is not None:
            pytest.fail(f"the first run ended before {what}")
        if time.time() - t0 > limit:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_held_folder_is_refused_in_process(tmp_path):
    with RunLock(tmp_path / "run"):
        with pytest.raises(RunFolderBusy, match=rf"in use by another training \(pid {os.getpid()} on "):
            RunLock(tmp_path / "run").acquire()
    with RunLock(tmp_path / "run"):  # released at the end of the with
        pass


def test_second_training_into_the_same_folder_fails_fast(tmp_path):
    out = tmp_path / "run"
    # a fixed 30 s of training: long enough to outlast the second run's start-up on a busy machine
    first = subprocess.Popen(_train(out, "trainer.max_epochs=100000", "trainer.max_minutes=0.5"), env=ENV)
    try:
        _wait_for(lambda: (out / "last.pt").exists(), first, "its first checkpoint")
        t0 = time.time()
        second = subprocess.run(_train(out), env=ENV, capture_output=True, text=True, timeout=120)
        took = time.time() - t0
        assert first.poll() is None, "the first run ended too soon for the test to mean anything"
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "in use by another training" in lines[0] and f"pid {first.pid} on" in lines[0], lines
        assert took < 60
        # --resume into a held folder is refused the same way (it would fight over last.pt)
        again = subprocess.run(_train(out, "--resume"), env=ENV, capture_output=True, text=True, timeout=120)
        assert again.returncode == 2 and "in use by another training" in again.stderr
        assert first.wait(timeout=300) == 0
    finally:
        if first.poll() is None:
            first.kill()
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,epoch,time_s,name,value" and rows.count(rows[0]) == 1
    keys = [tuple(r.split(",")[i] for i in (0, 3)) for r in rows[1:]]
    assert len(keys) == len(set(keys))  # no row written twice
    steps = json.loads((out / "results.json").read_text())["steps"]
    assert [int(s) for s, name in keys if name == "train/loss"] == list(range(1, steps + 1))


def test_a_killed_holder_releases_the_folder(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(_train(out), env=ENV)
    _wait_for(lambda: (out / "last.pt").exists() and ckpt.load(out / "last.pt")["pos"]["step"] >= 6, first,
              "a checkpoint")
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (out / ".lock").exists()  # the file stays; the lock does not
    r = subprocess.run(_train(out, "--resume"), env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert ckpt.load(out / "last.pt")["pos"]["step"] == 6 * 16
    assert f"pid {first.pid} " not in (out / ".lock").read_text()  # the new holder wrote its own line


def test_a_run_that_fails_at_once_leaves_no_folder(tmp_path):
    from ostinato.core import recipe
    from ostinato.core.errors import DataError
    from ostinato.core.train import fit

    with pytest.raises(DataError, match="does not exist"):
        fit(recipe.load("core/toy_seq", [f"trainer.init_from={tmp_path / 'nothing.pt'}"]), tmp_path / "new", quiet=True)
    assert not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()  # a folder that was there stays
    with pytest.raises(DataError, match="does not exist"):
        fit(recipe.load("core/toy_seq", [f"trainer.init_from={tmp_path / 'nothing.pt'}"]), tmp_path / "old", quiet=True)
    assert (tmp_path / "old").is_dir()
