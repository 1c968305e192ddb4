"""The memory policy learns what needs memory; the memoryless one cannot (short CPU runs)."""
import numpy as np
import pytest
import torch

from ostinato.control.data.episodic import EpisodicWindows
from ostinato.control.envs.cue import CueTask
from ostinato.core.registry import create_model

DIRS = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], np.float32)


def _recall_episodes(n=24, T=4, size=16, seed=0):
    """Cue-task frames: the cue only at step 0, then the empty arena; the action at every step
    is a direction fixed by the cue colour, so steps 1.. need the memory of step 0."""
    env = CueTask(image_size=size, cue_steps=1, delay_steps=10)
    eps = []
    for i in range(n):
        obs, _ = env.reset(seed=seed + i)
        frames = [obs["rgb"]]
        for _ in range(T - 1):
            obs, *_ = env.step(np.zeros(2))
            frames.append(obs["rgb"])
        eps.append({"rgb": np.stack(frames), "proprio": np.zeros((T, 4), np.float32),
                    "action": np.repeat(DIRS[env.cue][None], T, 0), "instruction": np.array(env.instruction)})
    return eps


def _train(name, steps=60, **kw):
    torch.manual_seed(0)
    ds = EpisodicWindows(_recall_episodes(), streams=8, window=4, chunk=1, seed=0, vocab=64, max_tokens=4, align=True)
    m = create_model(name, image_channels=3, proprio_dim=4, action_dim=2, chunk=1, vocab=64, max_tokens=4, **kw)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    i = 0
    while i < steps:
        for j in range(len(ds)):
            loss, _ = m.loss(ds[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
            i += 1
    m.eval()
    errs = []
    with torch.no_grad():
        for j in range(len(ds)):
            b = ds[j]
            pred, _ = m(b)  # each window is one whole episode (align=True, W=T)
            errs.append((pred[:, 1:, 0] - b["action"][:, 1:, 0]).abs().mean().item())  # steps after the cue
    return float(np.mean(errs))


def test_memory_recalls_the_cue_and_memoryless_cannot():
    torch.set_num_threads(1)
    with_mem = _train("test_muvla", n_mem=4, tbptt_length=4)
    without = _train("test_muvla", n_mem=0)
    # without memory the best constant guess leaves a large error (|dir - mean| ~ 0.6 per coordinate)
    assert without > 0.3
    assert with_mem < 0.5 * without


@pytest.mark.slow
def test_bench_quick_memory_beats_memoryless(tmp_path):
    """`ostinato bench control --quick`: closed-loop success on the cue task (colours at fixed
    places) after 400 behaviour-cloning steps per policy (a few minutes on one CPU thread)."""
    import json
    import os
    import subprocess
    import sys

    out = tmp_path / "bench.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "ostinato.core.cli", "bench", "control", "--quick", "--out", str(out)],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=1800)
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())["rows"]
    row = {r["policy"]: r["test"] for r in rows if r["task"] == "cue_task"}  # one row per policy
    assert row["muvla"]["episodes"] == 100
    assert row["muvla"]["success_once"] >= 0.8
    assert row["memoryless"]["success_once"] <= 0.5
    assert 0.0 <= row["lstm"]["success_once"] <= 1.0
