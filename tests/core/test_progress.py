"""Progress without a terminal: periodic training lines, validation lines, eval/collect/bench
progress, and resumable downloads (against a local HTTP server)."""
import hashlib
import http.server
import io
import json
import re
import threading

import pytest

from ostinato.core import data as D
from ostinato.core import recipe
from ostinato.core.errors import ConfigError, DataError
from ostinato.core.progress import Progress, announcing, fmt_duration, track, tracking
from ostinato.core.train import fit

NUM = r"[-+0-9.e]+"
STEP_LINE = re.compile(rf"^\[toy_seq\] step (\d+)/(\d+) epoch {NUM} loss {NUM} lr {NUM} {NUM} steps/s eta \S+$", re.M)
VAL_LINE = re.compile(rf"^\[toy_seq\] val step (\d+) epoch {NUM}: mse {NUM} loss {NUM}( \(best\))?$", re.M)


def test_train_and_eval_print_progress_lines_without_a_tty(cli, tmp_path):
    run = tmp_path / "run"
    r = cli("train", "core/toy_seq", "--out", run, "trainer.max_steps=6", "trainer.eval_every_steps=3",
            "trainer.log_every_s=0.0001")
    assert r.returncode == 0, r.stderr
    steps = [(int(m.group(1)), int(m.group(2))) for m in STEP_LINE.finditer(r.stderr)]
    assert steps == [(i, 6) for i in range(1, 7)], r.stderr  # one line per step at this period; grep-able
    assert [int(m.group(1)) for m in VAL_LINE.finditer(r.stderr)] == [3, 6], r.stderr
    assert "(best)" in r.stderr
    assert re.search(rf"^\[toy_seq\] test \(best step \d+\): mse {NUM} loss {NUM}$", r.stderr, re.M), r.stderr
    assert "[toy_seq]" not in r.stdout  # stdout keeps only the summary

    e = cli("eval", run, "--json", "trainer.log_every_s=0.0001")
    assert e.returncode == 0, e.stderr
    assert json.loads(e.stdout)["split"] == "test"  # stdout stays pure JSON
    assert re.search(rf"^\[eval test\] batch 1/\d+ {NUM} batches/s eta \S+$", e.stderr, re.M), e.stderr
    assert re.search(r"^\[eval test\] done \d+ batches in \d+s$", e.stderr, re.M), e.stderr


def _cfg(*over):
    return recipe.load("core/toy_seq", ["trainer.max_steps=4", "trainer.eval_every_steps=2", *over])


def test_quiet_silences_and_zero_keeps_only_validation_lines(tmp_path, capsys):
    fit(_cfg("trainer.log_every_s=0.0001"), tmp_path / "q", quiet=True)
    cap = capsys.readouterr()
    assert "[toy_seq]" not in cap.err + cap.out
    fit(_cfg("trainer.log_every_s=0"), tmp_path / "z")
    err = capsys.readouterr().err
    assert not STEP_LINE.search(err) and "val step 2 " in err and "val step 4 " in err


def test_log_every_s_is_validated():
    with pytest.raises(ConfigError, match="log_every_s"):
        recipe.load("core/toy_seq", ["trainer.log_every_s=-1"])
    assert recipe.load("core/toy_seq", []).trainer.log_every_s == 30.0


def test_progress_eta_mean_and_tty(monkeypatch):
    out = io.StringIO()
    p = Progress(100, "x", every_s=1e-9, stream=out, deadline=None)
    p.update(10, {"loss": 1.0, "lr": "1.0e-03"}, mean=("loss",))
    p.update(10, {"loss": 3.0, "lr": "2.0e-03"}, mean=("loss",))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[x] step 10/100 loss 1 lr 1.0e-03 ") and lines[1].startswith("[x] step 20/100 loss 3 ")
    assert p.eta(1.0, now=0.0) == 80  # 80 steps left at 1 step/s
    p.deadline = 5.0  # a wall-clock budget nearer than the steps left
    assert p.eta(1.0, now=0.0) == 5.0
    assert fmt_duration(930) == "15m30s" and fmt_duration(7500) == "2h05m"

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    bar = Progress(5, "y", every_s=1e-9, stream=tty)
    bar.update(1, {"loss": 0.5})
    bar.write("[y] val step 1: mse 0.1")
    bar.close()
    assert bar.bar is None and "[y] step" not in tty.getvalue() and "[y] val step 1" in tty.getvalue()
    assert "y:" in tty.getvalue()  # tqdm's bar


def test_track_is_a_no_op_outside_a_scope(capsys):
    items = [1, 2, 3]
    assert track(items) is items
    with tracking("eval val", every_s=1e-9):
        assert list(track(items, unit="item")) == items
    err = capsys.readouterr().err
    assert "[eval val] item 3/3" in err and "[eval val] done 3 items" in err


def test_bench_scope_announces_each_finished_run(tmp_path, capsys):
    with announcing("bench core"):
        fit(_cfg(), tmp_path / "b", quiet=True)
    fit(_cfg(), tmp_path / "c", quiet=True)  # outside the scope: nothing
    err = capsys.readouterr().err
    assert re.search(rf"^\[bench core\] core/toy_seq done: 4 steps in \d+s; val mse {NUM}", err, re.M), err
    assert err.count("[bench core]") == 1


def test_collect_prints_episodes_done(tmp_path, capsys, monkeypatch):
    pytest.importorskip("gymnasium")
    from ostinato.control.data.demos import collect
    from ostinato.control.envs import EnvConfig

    monkeypatch.setenv("OSTINATO_LOG_EVERY_S", "0.0001")
    collect(EnvConfig(env="cue_task"), 2, tmp_path, log=lambda s: None)
    err = capsys.readouterr().err
    assert re.search(rf"^\[collect cue_task\] episode 2/2 tries \d+ {NUM} episodes/s eta \S+$", err, re.M), err


# ----------------------------------------------------------------------------- downloads
BLOB = bytes(range(256)) * 4000  # 1 000 KiB
SHA = hashlib.sha256(BLOB).hexdigest()


@pytest.fixture
def range_server():
    """Serves BLOB at /blob (Range-aware), /norange (ignores Range) and /cut (the first request
    stops after 300 000 bytes); records the Range headers it saw."""
    seen, cut_once = [], []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            rng = self.headers.get("Range")
            seen.append((self.path, rng))
            start = int(rng[len("bytes="):].split("-")[0]) if rng and self.path != "/norange" else 0
            body = BLOB[start:]
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(body)))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}")
            self.end_headers()
            if self.path == "/cut" and not cut_once:
                cut_once.append(1)
                self.wfile.write(body[:300_000])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def _spec(url):
    return D.DatasetSpec(name="blob", domain="core", files=(D.FileSpec("toy/blob.bin", SHA, url, len(BLOB)),),
                         source="test", licence="public domain")


def test_download_resumes_a_partial_file_and_shows_bytes(range_server, tmp_path, capsys, monkeypatch):
    url, seen = range_server
    monkeypatch.setenv("OSTINATO_LOG_EVERY_S", "1e-9")
    with pytest.raises(DataError, match="resume"):  # the connection drops mid-file: the .part stays
        D.download(_spec(f"{url}/cut"), tmp_path, timeout=10)
    part = tmp_path / "toy/blob.bin.part"
    assert part.stat().st_size == 300_000 and not (tmp_path / "toy/blob.bin").exists()
    [p] = D.download(_spec(f"{url}/cut"), tmp_path, timeout=10)
    assert seen[-1] == ("/cut", "bytes=300000-")
    assert p.read_bytes() == BLOB and not part.exists()
    err = capsys.readouterr().err
    assert re.search(r"^\[download blob.bin\] \d+\.\d KiB/1000\.0 KiB [0-9.]+ \w+/s eta \S+$", err, re.M), err


def test_download_restarts_when_the_server_ignores_range(range_server, tmp_path):
    url, seen = range_server
    part = tmp_path / "toy/blob.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage" * 100)  # not even a prefix: a 200 answer rewrites it
    [p] = D.download(_spec(f"{url}/norange"), tmp_path, timeout=10)
    assert seen == [("/norange", "bytes=700-")] and p.read_bytes() == BLOB and not part.exists()


def test_download_bad_resume_fails_checksum_and_removes_the_part(range_server, tmp_path):
    url, _ = range_server
    part = tmp_path / "toy/blob.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 1000)  # a wrong prefix that Range would keep
    with pytest.raises(DataError, match="checksum"):
        D.download(_spec(f"{url}/blob"), tmp_path, timeout=10)
    assert not part.exists() and not (tmp_path / "toy/blob.bin").exists()
