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


@pytest.fixture
def shared_data():
    """The shared benchmark data folder (CI sets OSTINATO_DATA to it)."""
    p = os.environ.get("OSTINATO_DATA")
    if not p or not Path(p).is_dir():
        pytest.fail("OSTINATO_DATA must point at the shared data folder for this test")
    return Path(p)
