"""Every command in README.md is exercised: each `ostinato ...` line parses with the real CLI
parser; recipes named by `train` resolve with their overrides (typed config validation);
`eval` overrides validate against the recipe that produced the run; `data download`
names a downloadable dataset; `bench` names a domain with a benchmark; `pip install` names
extras that pyproject.toml defines; every ```python block runs. The quickstarts' training
runs themselves are exercised by each domain's tests on the `test_*` recipes."""
from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _commands() -> list[list[str]]:
    """`ostinato ...` commands of the ```bash blocks, as argv lists (env prefixes and comments dropped)."""
    out = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                    words = words[1:]
                if words and words[0] == "ostinato":
                    out.append(words[1:])
    return out


COMMANDS = _commands()


def test_readme_has_the_two_setup_commands_and_quickstarts():
    setup = _blocks("bash")[:2]
    assert "ostinato train timeseries/chimera_etth1" in setup[0]
    assert "python -m pytest" in setup[1]
    for dom in ("core", "timeseries", "recsys", "vision", "audio", "control"):
        assert any(c[:1] == ["train"] and c[1].startswith(dom + "/") for c in COMMANDS), dom
    assert len(COMMANDS) > 20


def test_ci_runs_the_readme_commands_first_without_the_data_root():
    """.ci/run reads the two set-up commands from README.md and runs the test command with
    OSTINATO_DATA unset before it adds any optional part."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / ".ci" / "readme_commands.py"), str(ROOT / "README.md")],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    setup = _blocks("bash")[:2]
    assert out == [setup[0].strip().splitlines()[0], setup[1].strip().splitlines()[0]]
    ci = (ROOT / ".ci" / "run").read_text()
    newcomer, optional = ci.split("mikasa-robo-suite==1.0.0", 1)
    assert "unset OSTINATO_DATA" in newcomer and 'bash -c "$INSTALL_AND_TEST' in newcomer
    assert 'bash -c "$INSTALL_AND_TRAIN' in newcomer and "OSTINATO_DATA=" not in newcomer.split("unset OSTINATO_DATA")[1]
    assert "setup-render" in optional and "export OSTINATO_DATA" in optional


def test_pip_extras_exist():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = set()
    for block in _blocks("bash"):
        for m in re.finditer(r"pip install -e ['\"]\.\[([a-z,]+)\]['\"]", block):
            named |= set(m.group(1).split(","))
    assert named and named <= set(extras), named - set(extras)


def _parse(argv: list[str]):
    from ostinato.core.cli import build_parser

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    assert not extra or (hasattr(args, "overrides") and all("=" in x and not x.startswith("-") for x in extra)), (argv, extra)
    if extra:
        args.overrides = list(args.overrides) + extra
    return args


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c)[:60] for c in COMMANDS])
def test_readme_command_parses_and_its_names_exist(argv):
    from ostinato.core.domain import get_domain, load_domains
    from ostinato.core.recipe import load

    args = _parse(argv)
    cmd = argv[0]
    if cmd == "train":
        load(args.recipe, args.overrides)  # raises ConfigError on a bad recipe or override
    elif cmd == "eval" and args.overrides:
        runs = {c[c.index("--out") + 1]: c[1] for c in COMMANDS if c[0] == "train" and "--out" in c}
        assert args.checkpoint in runs, f"eval of {args.checkpoint}: no README train writes there"
        load(runs[args.checkpoint], args.overrides)
    elif cmd == "bench":
        assert args.domain in ("core", "mixers") or get_domain(args.domain).bench is not None
    elif cmd == "data" and args.action == "download":
        from ostinato.core.cli import _specs

        specs = _specs(args.dataset)
        assert specs and all(f.url for s in specs for f in s.files), args.dataset
    elif cmd == "ls" and args.what:
        assert args.what in ("models", "recipes", "datasets", "pretrained") or any(
            args.what in (d.listings or {}) for d in load_domains().values()
        )


def test_readme_python_blocks_run():
    blocks = _blocks("python")
    runnable = [b for b in blocks if "register_model" not in b and "layer.step(x_t" not in b]
    assert runnable
    for b in runnable:
        exec(compile(b, "README.md", "exec"), {})


def test_readme_contract_snippet_holds():
    """The contract block in the README (init_state / step) on a registered core layer."""
    import torch

    from ostinato.core import create_model

    layer = create_model("s5", d_model=8)
    x = torch.randn(2, 5, 8)
    y, state = layer(x, state=None)
    st = layer.init_state(2)
    y0, st = layer.step(x[:, 0], st)
    torch.testing.assert_close(y0, y[:, 0], atol=1e-5, rtol=1e-4)
