"""Data roots and verified downloads (against a local HTTP server)."""
import hashlib
import http.server
import threading
from functools import partial

import pytest

from ostinato.core import data as D
from ostinato.core.errors import DataError


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "good.bin").write_bytes(b"0123456789" * 1000)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            if self.path == "/truncated.bin":  # promises 10000 bytes, sends 100, then hangs up
                self.send_response(200)
                self.send_header("Content-Length", "10000")
                self.end_headers()
                self.wfile.write(b"0123456789" * 10)
                return
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


GOOD_SHA = hashlib.sha256(b"0123456789" * 1000).hexdigest()


def _spec(url, sha=GOOD_SHA, size=10000, name="x"):
    return D.DatasetSpec(name=name, domain="core", files=(D.FileSpec(f"toy/{name}.bin", sha, url, size),),
                         source="test", licence="public domain")


def test_download_verifies_and_places_atomically(server, tmp_path):
    dest = tmp_path / "root"
    [p] = D.download(_spec(f"{server}/good.bin"), dest)
    assert p == dest / "toy/x.bin" and D.sha256_of(p) == GOOD_SHA
    assert D.verify(_spec(f"{server}/good.bin"), dest)[0][1] == "ok"


def test_download_wrong_checksum_leaves_nothing(server, tmp_path):
    dest = tmp_path / "root"
    with pytest.raises(DataError, match="failed its checksum"):
        D.download(_spec(f"{server}/good.bin", sha="0" * 64, size=None), dest)
    assert not (dest / "toy/x.bin").exists()
    assert not list((dest / "toy").glob("*"))  # no temp file left either


def test_download_truncated_leaves_nothing(server, tmp_path):
    dest = tmp_path / "root"
    with pytest.raises(DataError, match="truncated|failed"):
        D.download(_spec(f"{server}/truncated.bin"), dest)
    assert not (dest / "toy/x.bin").exists()


def test_download_unreachable(tmp_path):
    with pytest.raises(DataError, match="failed"):
        D.download(_spec("http://127.0.0.1:9/none.bin"), tmp_path)


def test_locate_search_order_and_message(tmp_path, monkeypatch):
    a, b, shipped = tmp_path / "a", tmp_path / "b", tmp_path / "shipped"
    for r in (a, b, shipped):
        (r / "d").mkdir(parents=True)
    (b / "d/f.txt").write_text("env")
    (shipped / "d/f.txt").write_text("shipped")
    monkeypatch.setenv("OSTINATO_DATA", str(b))
    monkeypatch.setattr(D, "CACHE_DIR", tmp_path / "cache")
    assert D.locate("d/f.txt", None, shipped).read_text() == "env"
    (a / "d/f.txt").write_text("explicit")
    assert D.locate("d/f.txt", a, shipped).read_text() == "explicit"
    monkeypatch.delenv("OSTINATO_DATA")
    assert D.locate("d/f.txt", None, shipped).read_text() == "shipped"
    with pytest.raises(DataError) as e:
        D.locate("d/missing.txt", a, shipped, hint="run `ostinato data download x`")
    msg = str(e.value)
    assert "\n" not in msg and str(a) in msg and "cache" in msg and "ostinato data download x" in msg


def test_index_rng_is_a_function_of_its_arguments():
    x = D.index_rng(1, 2, 3).standard_normal(4)
    assert (x == D.index_rng(1, 2, 3).standard_normal(4)).all()
    assert not (x == D.index_rng(1, 2, 4).standard_normal(4)).all()
