"""core imports no domain; a domain imports only ostinato.core and itself."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = ["vision", "timeseries", "audio", "control", "recsys"]


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_dependency_direction():
    bad = []
    for pkg in ["core", *DOMAINS]:
        for f in (ROOT / pkg).rglob("*.py"):
            for mod in _imports(f):
                top = mod.split(".")
                if top[0] in ["core", *DOMAINS]:
                    bad.append(f"{f.relative_to(ROOT)}: import {mod} (use ostinato.{mod})")
                if top[0] == "ostinato" and len(top) > 1 and top[1] != "core" and top[1] != pkg:
                    bad.append(f"{f.relative_to(ROOT)}: imports ostinato.{top[1]}")
    assert not bad, "\n".join(bad)


def test_repository_root_layout():
    names = {p.name for p in ROOT.iterdir() if not p.name.startswith(".") or p.name == ".ci"}
    expected = {"pyproject.toml", "README.md", "LICENSE", "CITATION.cff", "docs", "core", "vision", "timeseries", "audio", "control", "recsys", "tests", ".ci"}
    extra = names - expected - {"runs", "build", "dist", "ostinato.egg-info", "bench_out"}
    assert not extra, f"unexpected entries at the repository root: {sorted(extra)}"
    assert not (ROOT / "ostinato").exists()
