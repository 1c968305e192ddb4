"""Teacher-forced validation on held-out demos (data.val_demos, control.evaluate.demo_metrics)."""
import json

import numpy as np
import pytest
import torch

from ostinato.control.data.demos import collect
from ostinato.control.data.episodic import EpisodicWindows
from ostinato.control.envs import EnvConfig
from ostinato.control.evaluate import demo_metrics
from ostinato.core.cli import main


def _episodes():
    """Two episodes (T = 5 and 4) with a jump at t=3 and t=2; actions (T, 2)."""
    a1 = np.array([[0, 0], [0, 0], [0, 0], [1, 0], [1, 0]], np.float32)
    a2 = np.array([[0, 0], [0, 0], [0, -2], [0, -2]], np.float32)
    eps = []
    for a in (a1, a2):
        T = len(a)
        eps.append({"proprio": np.zeros((T, 3), np.float32), "action": a, "instruction": np.array("go"),
                    "is_first": np.arange(T) == 0, "rgb": np.zeros((T, 8, 8, 3), np.uint8)})
    return eps


def _windows(eps):
    return EpisodicWindows(eps, len(eps), 5, chunk=2, align=True, keyframe_change=0.5)


class _Oracle(torch.nn.Module):
    """Predicts the demo's chunk, optionally with the jump reversed at keyframes."""

    def __init__(self, flip=False):
        super().__init__()
        self.p, self.flip = torch.nn.Parameter(torch.zeros(1)), flip

    def init_state(self, batch_size, device=None):
        return None

    def forward(self, batch, state=None):
        pred = batch["action"].clone()  # (B, W, C, A)
        if self.flip:
            prev = torch.cat([pred[:, :1, 0], pred[:, :-1, 0]], 1)  # (B, W, A) a[t-1]
            pred[:, :, 0] = 2 * prev - pred[:, :, 0]  # jump reversed (no change where there is no jump)
        return pred, None


def test_demo_metrics_formula():
    w = _windows(_episodes())
    m = demo_metrics(_Oracle(), w)
    assert m["keyframes"] == 2 and m["demo_l1"] == 0 and m["key_l1"] == 0 and m["key_acc"] == 1
    m = demo_metrics(_Oracle(flip=True), w, group=1)  # one episode per forward pass: same totals
    assert m["keyframes"] == 2 and m["key_acc"] == 0
    # reversed jumps: |(-1) - 1| = 2 on one action entry of 2 and |2 - (-2)| = 4 on one: key_l1 = (1 + 2) / 2
    assert m["key_l1"] == pytest.approx(1.5)
    # demo_l1 averages the first chunk entries' errors with the (unchanged) second entries over valid entries
    assert 0 < m["demo_l1"] < m["key_l1"]


def test_train_validates_on_held_out_demos_without_rollouts(tmp_path, capsys):
    val = tmp_path / "val"
    collect(EnvConfig(env="cue_task", image_size=16), 6, val, seed=1_000_000)
    out = tmp_path / "run"
    rc = main(["train", "control/test_muvla_cue_task", "--out", str(out), f"data.val_demos={val}",
               "eval.val_episodes=0", "trainer.monitor=key_acc", "trainer.mode=max", "trainer.test_at_end=false"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["val"]) == {"demo_l1", "key_l1", "key_acc", "keyframes"}  # no rollout ran
    assert res["val"]["keyframes"] == 6  # the cue task's one jump per episode: the first move after the reveal
    assert 0 <= res["val"]["key_acc"] <= 1 and res["val"]["demo_l1"] > 0
    capsys.readouterr()  # `eval` builds no data for control: it reads the held-out demos itself
    assert main(["eval", str(out), "--split", "val", "--json", "eval.val_episodes=0"]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {k: ev[k] for k in res["val"]} == pytest.approx(res["val"])


def test_val_demos_mismatch_is_one_line(tmp_path, capsys):
    val = tmp_path / "val"
    collect(EnvConfig(env="cue_task", image_size=32), 2, val, seed=1_000_000)
    rc = main(["train", "control/test_muvla_cue_task", "--out", str(tmp_path / "r"), f"data.val_demos={val}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "data.val_demos" in err[0] and "image" in err[0]
