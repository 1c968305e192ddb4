"""Hostile input to the core: data files without checksums, foreign or torn checkpoints, a checkpoint
write killed midway. Every error is one line, and nothing on disk is lost."""
import os
import pickle
import signal
import subprocess
import sys
import time
import pytest
import torch
from ostinato.core import checkpoint as ckpt
from ostinato.core import data as D
from ostinato.core.errors import DataError

from ._common import cli_main, one_line, run_cli


def test_data_download_needs_a_name_or_all():
    r = run_cli("data", "download", timeout=60)
    assert r.returncode == 2
    one_line(r.stderr, "download", "--all")


def test_declared_file_without_checksum_is_named_once(tmp_path, capsys):
    f = tmp_path / "recsys" / "movielens" / "ml-1m.zip"  # declared with no checksum
    f.parent.mkdir(parents=True)
    f.write_bytes(b"PK")
    import ostinato.recsys.data.movielens  # noqa: F401  (declares it)

    capsys.readouterr()
    assert D.locate("recsys/movielens/ml-1m.zip", tmp_path) == f
    assert D.locate("recsys/movielens/ml-1m.zip", tmp_path) == f
    one_line(capsys.readouterr().err, f, "no checksum")


def test_download_does_not_silently_trust_a_file_already_on_disk(tmp_path, capsys):
    spec = D.DatasetSpec(name="hostile_fixture", domain="core", source="-", licence="-",
                         files=(D.FileSpec("hostile/already.bin", url="http://127.0.0.1:9/never"),))
    f = tmp_path / "hostile" / "already.bin"
    f.parent.mkdir()
    f.write_bytes(b"whatever was there")
    capsys.readouterr()
    assert D.download(spec, tmp_path) == [f]  # kept, not fetched
    one_line(capsys.readouterr().err, f, "no checksum")
    assert f.read_bytes() == b"whatever was there"


def test_checkpoint_load_never_suggests_unsafe_loading(tmp_path, capsys):
    import datetime

    foreign = tmp_path / "foreign.pt"
    torch.save({"when": datetime.datetime(2020, 1, 1)}, foreign)
    pick = tmp_path / "pickle.pt"
    pick.write_bytes(pickle.dumps({"a": 1}))
    torn = tmp_path / "torn.pt"
    torch.save({"w": torch.zeros(1000)}, torn)
    torn.write_bytes(torn.read_bytes()[:300])
    for p, words in ((foreign, "datetime.datetime"), (pick, "pickled"), (torn, "truncated or corrupted")):
        with pytest.raises(DataError) as e:
            ckpt.load(p)
        msg = one_line(str(e.value), p, words, "expected an ostinato checkpoint")
        assert "weights_only=False" not in msg and "weights_only` set to `False" not in msg
        assert "trust" not in msg and "\x1b" not in msg
    code, _, err = cli_main(capsys, "eval", foreign)
    assert code == 1
    msg = one_line(err, foreign)
    assert "False" not in msg


_WRITER = r"""
import sys, torch
from ostinato.core import checkpoint as ckpt
path = sys.argv[1]
ckpt.save({"gen": 0, "w": torch.zeros(10)}, path)
print("old", flush=True)
g = 0
while True:
    g += 1
    print("writing", g, flush=True)
    ckpt.save({"gen": g, "w": torch.full((6_000_000,), float(g))}, path)
"""


@pytest.mark.parametrize("delay", [0.0, 0.05])
def test_killed_checkpoint_write_leaves_old_or_new_never_broken(tmp_path, delay):
    path = tmp_path / "last.pt"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert proc.stdout.readline().strip() == "old"
        assert proc.stdout.readline().startswith("writing 1")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
    state = ckpt.load(path)  # the old file or a whole new one
    g = state["gen"]
    if g == 0:
        assert state["w"].shape == (10,)
    else:
        assert state["w"].shape == (6_000_000,) and bool((state["w"] == g).all())
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["last.pt"]
