import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# Tests use small tensors: one thread avoids oversubscription on small CI machines
# (a learning test took 35 s with the default threads under load and 4.5 s with one).
torch.set_num_threads(int(os.environ.get("OSTINATO_TEST_THREADS", "1")))

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, env=None, timeout=600, cwd=None):
    """Run `python -m ostinato.core.cli ARGS`; returns CompletedProcess (text)."""
    e = dict(os.environ)
    e.setdefault("OMP_NUM_THREADS", "1")
    if env:
        e.update(env)
    return subprocess.run(
        [sys.executable, "-m", "ostinato.core.cli", *map(str, args)],
        capture_output=True, text=True, env=e, timeout=timeout, cwd=cwd,
    )


@pytest.fixture
def cli():
    return run_cli


# Optional parts that `pip install -e ".[all,test]"` does not bring. A test that needs one is
# skipped with a one-line reason that says how to get it (`python -m pytest -rs` lists them).
NEEDS_DATA = ("needs the benchmark data root: set OSTINATO_DATA=/path/to/data "
              "(the layout is in README.md, Data; `ostinato data download NAME` fetches the public files)")
NEEDS_MIKASA = ("needs MIKASA-Robo: pip install --no-deps mikasa-robo-suite==1.0.0 "
                "(its own pins conflict with mani-skill 3.0.1, so it is installed without them)")
NEEDS_RENDER = "needs a Vulkan renderer for ManiSkill: run `ostinato control setup-render` once (root, apt), or use a GPU"


@pytest.fixture
def shared_data():
    """The shared benchmark data folder (CI sets OSTINATO_DATA to it); skips without it."""
    p = os.environ.get("OSTINATO_DATA")
    if not p or not Path(p).is_dir():
        pytest.skip(NEEDS_DATA)
    return Path(p)


@pytest.fixture
def mikasa():
    """MIKASA-Robo's environments (RememberColor, ShellGame, ...); skips without the package."""
    pytest.importorskip("mani_skill", reason=NEEDS_MIKASA)
    try:
        import mikasa_robo_suite  # noqa: F401
    except ImportError:
        pytest.skip(NEEDS_MIKASA)


@pytest.fixture
def renderer():
    """A Vulkan renderer for ManiSkill3 (a GPU, or the private lavapipe); skips without one."""
    pytest.importorskip("mani_skill", reason="needs mani-skill: pip install -e '.[control]'")
    from ostinato.control.envs.render import render_status

    if render_status() == "missing":
        pytest.skip(NEEDS_RENDER)


def pytest_runtest_logreport(report):
    """With OSTINATO_SKIPPED_LOG=FILE, append the id of every skipped test to FILE (.ci/run
    reruns exactly those once the optional parts are installed)."""
    log = os.environ.get("OSTINATO_SKIPPED_LOG")
    if log and report.skipped and report.when in ("setup", "call"):
        with open(log, "a") as f:
            f.write(report.nodeid + "\n")
