import os
import shutil
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


@pytest.fixture
def relocate(tmp_path, monkeypatch):
    """``relocate(run) -> copy``: the run folder copied to a "fresh machine". The original is
    moved away (and put back after the test), $OSTINATO_DATA, $HOME and the cache point to an
    empty folder, and ``build_data`` fails: a verb run in-process on the copy must need
    nothing but the copy."""
    moved: list[tuple[Path, Path]] = []

    def move(run: Path) -> Path:
        empty = tmp_path / "fresh_machine_empty"
        empty.mkdir(exist_ok=True)
        copy = tmp_path / "fresh_machine" / f"{run.name}_{len(moved)}"
        shutil.copytree(run, copy)
        away = run.with_name(run.name + ".away")
        run.rename(away)
        moved.append((away, run))
        for var in ("OSTINATO_DATA", "HOME", "OSTINATO_CACHE"):
            monkeypatch.setenv(var, str(empty))
        monkeypatch.setattr("ostinato.core.data.CACHE_DIR", empty)

        def no_data(*a, **k):
            raise AssertionError("the verb rebuilt the training data instead of reading the checkpoint")

        monkeypatch.setattr("ostinato.core.train.build_data", no_data)
        return copy

    yield move
    for away, run in moved:
        away.rename(run)


def pytest_runtest_logreport(report):
    """With OSTINATO_SKIPPED_LOG=FILE, append the id of every skipped test to FILE (.ci/run
    reruns exactly those once the optional parts are installed)."""
    log = os.environ.get("OSTINATO_SKIPPED_LOG")
    if log and report.skipped and report.when in ("setup", "call"):
        with open(log, "a") as f:
            f.write(report.nodeid + "\n")
