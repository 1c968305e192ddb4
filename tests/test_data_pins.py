"""The README says every download is checked against its sha256 and size: every file with a
download URL in a domain's dataset table pins both."""
from ostinato.core.domain import load_domains


def test_every_download_pins_sha256_and_size():
    unpinned = [(s.name, f.path) for d in load_domains().values() for s in (d.datasets or [])
                for f in s.files if f.url and not (f.sha256 and len(f.sha256) == 64 and f.size)]
    assert not unpinned, unpinned


def test_files_without_a_download_say_how_to_get_them():
    missing = [s.name for d in load_domains().values() for s in (d.datasets or [])
               if not s.shipped and not any(f.url for f in s.files) and not s.how_to_get]
    assert not missing, missing
