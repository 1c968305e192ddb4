"""``ostinato --help`` and ``ostinato ls models`` answer without importing torch (they read the
domains' index.json files), the index files match the live registry, and a domain whose extra
is missing says which extra to install."""
import json
import subprocess
import sys
import textwrap

import pytest

RUN = textwrap.dedent("""
    import json, sys
    {prelude}
    from ostinato.core.cli import main
    try:
        rc = main(sys.argv[1:])
    except SystemExit as e:
        rc = e.code
    heavy = sorted(m for m in ("torch", "pandas", "numpy", "scipy", "ostinato.audio.domain") if m in sys.modules)
    print(json.dumps({{"rc": rc, "heavy": heavy}}), file=sys.stderr)
""")

# makes `import soundfile` fail as if the audio extra were not installed
NO_SOUNDFILE = textwrap.dedent("""
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "soundfile":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, _Block())
""")


def _run(*argv, prelude=""):
    r = subprocess.run([sys.executable, "-c", RUN.format(prelude=prelude), *argv],
                       capture_output=True, text=True, timeout=300)
    *err, last = r.stderr.strip().splitlines()
    return r.stdout, "\n".join(err), json.loads(last)


@pytest.mark.parametrize("argv", [["--help"], ["ls", "models"], ["ls", "models", "--domain", "audio", "--pattern", "frcrn"],
                                  ["train", "--help"], []])
def test_help_and_ls_models_import_no_torch(argv):
    out, err, res = _run(*argv)
    assert res["heavy"] == [], (argv, res, err)
    assert res["rc"] in (0, 2) and "Traceback" not in err, err
    if argv == ["--help"]:
        for verb in ("ls", "train", "recommend", "forecast", "enhance", "control"):
            assert f"\n    {verb} " in out or f"\n    {verb}\n" in out, out
    if argv[:2] == ["ls", "models"]:
        assert "frcrn" in out and (len(argv) > 2 or "toy_seq" in out)
        assert "test_" not in out  # the tests' tiny variants only with --all


def test_ls_models_all_shows_the_test_variants():
    out, err, res = _run("ls", "models", "--all")
    assert res["rc"] == 0 and res["heavy"] == [], err
    assert "test_" in out


def test_index_files_match_the_live_registry():
    """If this fails, run `python -m ostinato.core.index` and commit the index.json files."""
    from ostinato.core import index

    for package, live in index.live(with_requires=False).items():
        stored = index.read(package)
        assert stored is not None, f"{package} has no index.json; run `python -m ostinato.core.index`"
        live.pop("requires", None)
        stored = {k: v for k, v in stored.items() if k != "requires"}
        assert stored == live, f"{package}/index.json is stale; run `python -m ostinato.core.index`"


@pytest.mark.slow
def test_index_requires_are_current():
    r = subprocess.run([sys.executable, "-m", "ostinato.core.index", "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ls_models_static_matches_live(capsys):
    import argparse

    from ostinato.core import cli
    from ostinato.core.registry import list_models

    for domain, pattern, all_ in [(None, None, False), (None, None, True), ("vision", None, False), (None, "frcrn", True), ("core", "s*", False)]:
        assert cli._ls_models_static(argparse.Namespace(what="models", domain=domain, pattern=pattern, all=all_))
        static = capsys.readouterr().out
        rows = [[e.name, e.domain, e.description] for e in list_models(domain, pattern)
                if e.builder.__module__.startswith("ostinato.")  # not the ones other tests register
                and (all_ or not e.name.startswith("test_"))]
        print(f"models ({len(rows)}):")
        cli._print_table(rows, ["name", "domain", "description"])
        assert static == capsys.readouterr().out


@pytest.mark.parametrize("argv", [["ls", "models"], ["ls", "recipes"]])
def test_missing_extra_names_the_extra(argv):
    out, err, res = _run(*argv, prelude=NO_SOUNDFILE)
    assert res["rc"] == 0, err
    assert "the audio domain failed to import" in err and 'pip install -e ".[audio]"' in err, err
    assert 'pip install "ostinato[audio]"' in err and "soundfile" in err, err
    assert "frcrn_causal" not in out and "audio/" not in out and "core" in out, out


def test_domain_verb_still_gets_its_full_parser():
    out, err, res = _run("recommend", "--help")
    assert res["rc"] == 0 and "--user" in out, err
