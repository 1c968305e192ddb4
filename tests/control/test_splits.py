"""Seed ranges (demos / validation / test), unseen cue-task test episodes, the attention mask, both executions."""
import hashlib
from dataclasses import asdict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ostinato.control.data.demos import collect, oracle_episodes
from ostinato.control.data.episodic import TEST_SEED_BASE, VAL_SEED_BASE, ControlDemosConfig, control_demos
from ostinato.control.envs import EnvConfig, make_env
from ostinato.core.errors import ConfigError
from ostinato.core.recipe import load
from ostinato.core.registry import create_model

CUE = dict(env="cue_task", image_size=16)


def test_demo_seeds_cannot_reach_validation_or_test_seeds(tmp_path):
    control_demos(ControlDemosConfig(**CUE, episodes=4, seed=0))  # the default: seeds 0..3
    for seed in (TEST_SEED_BASE, VAL_SEED_BASE - 2):  # the test episodes themselves; running into validation
        with pytest.raises(ConfigError, match=f"data.seed={seed}.*training range"):
            control_demos(ControlDemosConfig(**CUE, episodes=4, seed=seed))
    with pytest.raises(ConfigError, match="--seed 4242424242"):
        collect(EnvConfig(**CUE), 2, tmp_path / "t", seed=TEST_SEED_BASE, log=lambda *a: None)
    collect(EnvConfig(**CUE), 3, tmp_path / "train", seed=0, log=lambda *a: None)
    collect(EnvConfig(**CUE), 3, tmp_path / "overlap", seed=2, log=lambda *a: None)
    collect(EnvConfig(**CUE), 3, tmp_path / "val", seed=VAL_SEED_BASE, log=lambda *a: None)
    ok = ControlDemosConfig(**CUE, demos=str(tmp_path / "train"), episodes=3, val_demos=str(tmp_path / "val"))
    control_demos(ok)
    with pytest.raises(ConfigError, match="also training demo seeds"):
        control_demos(ControlDemosConfig(**{**asdict(ok), "val_demos": str(tmp_path / "overlap")}))
    with pytest.raises(ConfigError, match="training range"):  # validation episodes as training demos
        control_demos(ControlDemosConfig(**{**asdict(ok), "demos": str(tmp_path / "val"), "val_demos": ""}))


def _content(frames: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(frames).tobytes()).hexdigest()


def _test_contents(env_cfg: EnvConfig, n: int, steps: int) -> list[str]:
    env, out = make_env(env_cfg), []
    for i in range(n):  # the agent is not drawn: these frames do not depend on the policy's moves
        frames = [env.reset(seed=TEST_SEED_BASE + i)[0]["rgb"]]
        frames += [env.step(np.zeros(2, np.float32))[0]["rgb"] for _ in range(steps - 1)]
        out.append(_content(np.stack(frames)))
    return out


def test_cue_recipes_test_episodes_are_not_training_demos():
    d = load("control/muvla_cue_task").data
    assert all(load(f"control/{p}_cue_task").data == d for p in ("memoryless", "lstm"))  # one task for the three
    env_cfg = EnvConfig(**{k: getattr(d, k) for k in EnvConfig.__dataclass_fields__})
    steps = 7  # cue 3, delay 3, the reveal: everything an episode shows
    train = {_content(e["rgb"][:steps]) for e in oracle_episodes(env_cfg, d.episodes, seed=d.seed)}
    assert len(train) == d.episodes  # every training demo is a distinct episode
    assert not set(_test_contents(env_cfg, 100, steps)) & train
    fixed = EnvConfig(**{**asdict(env_cfg), "cue_jitter": 0.0, "cue_distractors": 0})  # the earlier task: 3 episodes
    fixed_train = {_content(e["rgb"][:steps]) for e in oracle_episodes(fixed, d.episodes, seed=d.seed)}
    assert len(fixed_train) == 3 and set(_test_contents(fixed, 20, steps)) <= fixed_train


def _written_memory(mode: str, perturb: bool, **kw):
    torch.manual_seed(0)
    m = create_model("test_muvla", image_channels=3, proprio_dim=1, action_dim=2, chunk=4, vocab=64, max_tokens=4,
                     n_layers=2, attention_mask_mode=mode, **kw).eval()
    if perturb:
        with torch.no_grad():
            m.queries.add_(torch.randn_like(m.queries))
    g = torch.Generator().manual_seed(1)
    obs = {"rgb": torch.randint(0, 256, (2, 16, 16, 3), generator=g, dtype=torch.uint8),
           "proprio": torch.randn(2, 1, generator=g), "instr": torch.randint(1, 64, (2, 4), generator=g)}
    with torch.no_grad():
        chunk, state = m.act(obs, m.init_state(2), torch.ones(2, dtype=torch.bool))
    return chunk, state["mem"] if "mem" in state else state["y"]


@pytest.mark.parametrize("slot", [{}, {"mixer": {"name": "gru"}}])
def test_official_mask_keeps_the_action_queries_out_of_the_memory(slot):
    assert create_model("test_muvla").cfg.attention_mask_mode == "custom"  # the default
    c0, mem0 = _written_memory("custom", False, **slot)
    c1, mem1 = _written_memory("custom", True, **slot)
    assert torch.equal(mem0, mem1) and not torch.allclose(c0, c1)  # queries change the actions, not the memory
    for other in ("memory_only", "full"):  # through the context rows of layer 1, the queries reach the memory
        assert not torch.allclose(_written_memory(other, False, **slot)[1], _written_memory(other, True, **slot)[1])
    m = create_model("test_muvla", image_channels=3, chunk=4, max_tokens=4)
    S, C, i, n_mem = m.mask.shape[0], 4, m.n_img + 1, m.cfg.n_mem
    assert not m.mask[: S - C, S - C :].any() and m.mask[S - C :].all() and m.mask[:, : S - C].all()
    old = create_model("test_muvla", image_channels=3, chunk=4, max_tokens=4, attention_mask_mode="memory_only").mask
    assert not old[i : i + n_mem, S - C :].any() and old[: i, S - C :].all() and old[i + n_mem :].all()


def test_both_execution_modes_are_reported_on_the_same_test_seeds():
    from ostinato.control.evaluate import ControlEvalConfig, evaluate

    torch.manual_seed(0)
    m = create_model("test_muvla", image_channels=3, proprio_dim=1, action_dim=2, chunk=4)
    data = SimpleNamespace(inference={"env": asdict(EnvConfig(**CUE))}, meta={})
    cfg = SimpleNamespace(eval=ControlEvalConfig(episodes=4, extra_executions=["open_loop"]), data=SimpleNamespace())
    out = evaluate(m, data, "test", cfg)
    assert {"success_once", "success_once_open_loop", "episode_len_open_loop"} <= set(out)
    assert "success_once_open_loop" not in evaluate(m, data, "val", cfg)  # validation: the chosen mode only
    with pytest.raises(ConfigError, match="extra_executions"):
        ControlEvalConfig(extra_executions=["closed"]).validate()
