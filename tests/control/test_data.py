"""Cue task, oracle demos, .npz / .h5 episode IO and the episodic TBPTT loader."""
import h5py
import numpy as np
import pytest
import torch

from ostinato.control.data.demos import collect, load_episode, load_episodes, oracle_episodes, read_maniskill_h5
from ostinato.control.data.episodic import ControlDemosConfig, EpisodicWindows
from ostinato.control.envs import EnvConfig, make_env
from ostinato.control.envs.cue import CueTask
from ostinato.core.config import from_dict
from ostinato.core.errors import ConfigError, DataError


def _episodes(lengths):
    eps = []
    for e, T in enumerate(lengths):
        eps.append({"proprio": np.full((T, 3), e, np.float32) + np.arange(T)[:, None] / 100,
                    "action": np.stack([np.full(T, e, np.float32), np.arange(T, dtype=np.float32)], -1),
                    "instruction": np.array("go"), "rgb": np.zeros((T, 8, 8, 3), np.uint8)})
    return eps


def _drive_to(env, target):
    """Wait for the reveal, then go straight to target ``target``; returns the last info."""
    for _ in range(env.max_steps):
        if env.targets_visible:
            d = (env.target_xy[target] - env.pos) / env.speed
            a = d / max(1.0, float(np.abs(d).max()))
        else:
            a = np.zeros(2)
        _, _, term, trunc, info = env.step(a)
        if term or trunc:
            return term, info
    raise AssertionError("episode did not end")


def test_cue_task_memory_structure_and_oracle():
    env = CueTask(image_size=32)
    obs, info = env.reset(seed=3)
    assert obs["rgb"].shape == (32, 32, 3) and obs["proprio"].shape == (1,) and isinstance(obs["instruction"], str)
    seen_targets, done, frames, props = [], False, [obs["rgb"]], [obs["proprio"]]
    while not done:
        obs, r, term, trunc, info = env.step(env.oracle_action())
        done = term or trunc
        seen_targets.append(env.targets_visible)
        frames.append(obs["rgb"])
        props.append(obs["proprio"])
    assert info["success"] and r == 1.0 and term
    assert not any(seen_targets[: env.cue_steps + env.delay_steps - 1])  # the cue is gone before the choice
    # after the reveal the observation does not depend on where the agent is: the frames are
    # identical while it moves, proprio is the clock, the oracle action is constant
    reveal = env.cue_steps + env.delay_steps
    assert all((f == frames[reveal]).all() for f in frames[reveal:])
    assert np.allclose(np.concatenate(props), np.arange(len(props)) / env.max_steps)
    assert not (env.render() == frames[-1]).all()  # GIF frames draw the agent
    # a wrong target ends the episode without success; every target is reachable
    for target in range(env.n_targets):
        env.reset(seed=3)
        term, info = _drive_to(env, target)
        assert term and info["success"] == (target == env.goal)
    # the choice does not depend on the cue alone: colours are re-shuffled every episode
    goals, cues = [], []
    for s in range(60):
        env.reset(seed=s)
        goals.append(env.goal)
        cues.append(env.cue)
    assert len(set(zip(cues, goals))) == 9
    # cue_shuffle=False: every colour has its own place (the goal is the cue), same cue per seed
    fixed = make_env(EnvConfig(env="cue_task", image_size=16, cue_shuffle=False))
    for s in range(12):
        fixed.reset(seed=s)
        env.reset(seed=s)
        assert fixed.goal == fixed.cue == env.cue and (fixed.order == np.arange(3)).all()


def test_cue_task_memoryless_median_policy_is_at_chance():
    """BC without memory regresses the per-coordinate median of the oracle's directions:
    straight up, which reaches the middle target, so success is 1/3."""
    env = CueTask(image_size=16)
    env.reset(seed=0)
    dirs = []
    for g in range(env.n_targets):
        d = env.target_xy[g] - env.pos
        dirs.append(d / np.abs(d).max())
    med = np.median(np.stack(dirs), 0)
    wins = 0
    for s in range(90):
        env.reset(seed=s)
        for _ in range(env.max_steps):
            _, _, term, trunc, info = env.step(med if env.targets_visible else np.zeros(2))
            if term or trunc:
                break
        wins += info["success"]
    assert abs(wins / 90 - 1 / 3) < 0.12


def test_cue_task_visible_agent_variant():
    env = make_env(EnvConfig(env="cue_task", image_size=16, cue_agent_visible=True))
    obs, _ = env.reset(seed=0)
    assert obs["proprio"].shape == (5,) and (obs["rgb"] == env.render()).all()


def test_collect_and_npz_roundtrip(tmp_path):
    cfg = EnvConfig(env="cue_task", image_size=16)
    paths = collect(cfg, 3, tmp_path, seed=5, log=lambda s: None)
    assert [p.name for p in paths] == ["ep_000000.npz", "ep_000001.npz", "ep_000002.npz"]
    ep = load_episode(paths[0])
    T = len(ep["action"])
    assert ep["rgb"].shape == (T, 16, 16, 3) and ep["proprio"].shape == (T, 1) and ep["action"].shape == (T, 2)
    assert ep["is_first"][0] and not ep["is_first"][1:].any() and ep["is_last"][-1] and ep["success"][-1]
    assert str(ep["env"]) == "cue_task" and int(ep["seed"]) == 5
    assert len(load_episodes(tmp_path)) == 3
    mem = oracle_episodes(cfg, 1, seed=5)[0]
    assert np.array_equal(mem["action"], ep["action"]) and np.array_equal(mem["rgb"], ep["rgb"])
    more = collect(cfg, 2, tmp_path, seed=8, first_index=3, log=lambda s: None)  # top-up keeps the first three
    assert [p.name for p in more] == ["ep_000003.npz", "ep_000004.npz"] and int(load_episode(paths[0])["seed"]) == 5
    assert len(load_episodes(tmp_path)) == 5


def test_npz_errors_are_one_line(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        load_episode(tmp_path / "bad.npz")
    np.savez(tmp_path / "x.npz", rgb=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(DataError, match="missing proprio, action"):
        load_episode(tmp_path / "x.npz")
    with pytest.raises(DataError, match="no .npz episodes"):
        load_episodes(tmp_path / "empty")


def test_maniskill_h5_reader(tmp_path):
    p = tmp_path / "trajectory.h5"
    with h5py.File(p, "w") as f:
        for i, T in enumerate((3, 5)):
            g = f.create_group(f"traj_{i}")
            g["actions"] = np.ones((T, 8), np.float32) * i
            g["success"] = np.arange(T) == T - 1
            g["obs/agent/qpos"] = np.zeros((T + 1, 9), np.float32)
            g["obs/agent/qvel"] = np.zeros((T + 1, 9), np.float32)
            g["obs/extra/tcp_pose"] = np.zeros((T + 1, 7), np.float32)
            g["obs/sensor_data/base_camera/rgb"] = np.zeros((T + 1, 8, 8, 3), np.uint8)
    eps = read_maniskill_h5(p, "push")
    assert [len(e["action"]) for e in eps] == [3, 5]
    assert eps[1]["proprio"].shape == (5, 25) and eps[1]["rgb"].shape == (5, 8, 8, 3)
    assert eps[1]["is_first"][0] and eps[1]["success"][-1] and (eps[1]["action"] == 1).all()
    with h5py.File(tmp_path / "noobs.h5", "w") as f:
        f.create_group("traj_0")["actions"] = np.zeros((2, 8))
    with pytest.raises(DataError, match="no 'obs' group"):
        read_maniskill_h5(tmp_path / "noobs.h5")


def test_episodic_windows_stream_episodes_with_is_first():
    eps = _episodes([5, 3, 4, 6])
    ds = EpisodicWindows(eps, streams=2, window=3, chunk=2, seed=1, vocab=16, max_tokens=2)
    assert len(ds) == int(np.ceil(max(sum(len(eps[e]["action"]) for e in s) for s in ds.streams) / 3))
    windows = [ds[i] for i in range(len(ds))]
    b = windows[0]
    assert b["rgb"].shape == (2, 3, 8, 8, 3) and b["action"].shape == (2, 3, 2, 2) and b["chunk_mask"].shape == (2, 3, 2)
    for s, order in enumerate(ds.streams):
        # concatenating the windows of a stream replays its episodes back to back
        prop = np.concatenate([w["proprio"][s].numpy() for w in windows])
        first = np.concatenate([w["is_first"][s].numpy() for w in windows])
        act = np.concatenate([w["action"][s].numpy() for w in windows])
        mask = np.concatenate([w["chunk_mask"][s].numpy() for w in windows])
        t = 0
        for e in order:
            T = len(eps[e]["action"])
            assert first[t] and not first[t + 1 : t + T].any()
            assert np.allclose(prop[t : t + T], eps[e]["proprio"])
            assert np.allclose(act[t : t + T, 0], eps[e]["action"])  # chunk[0] is the step's own action
            assert np.allclose(act[t : t + T - 1, 1], eps[e]["action"][1:])  # chunk[1] the next one
            assert not mask[t + T - 1, 1] and mask[t + T - 2, 1]  # no target past the episode end
            t += T
    # set_epoch: a deterministic reshuffle
    ds.set_epoch(3)
    o3 = [list(s) for s in ds.streams]
    ds.set_epoch(0)
    ds.set_epoch(3)
    assert [list(s) for s in ds.streams] == o3


def test_make_env_unknown_name_is_config_error():
    with pytest.raises(ConfigError, match="unknown env"):
        make_env(EnvConfig(env="NoSuchEnv-v9"))


def test_episodic_windows_align_episodes_to_window_edges():
    eps = _episodes([5, 3, 4])
    ds = EpisodicWindows(eps, streams=1, window=4, chunk=2, seed=0, vocab=16, max_tokens=2, align=True)
    assert len(ds) == 2 + 1 + 1  # 5 -> 8 slots, 3 -> 4, 4 -> 4
    first = np.concatenate([ds[i]["is_first"][0].numpy() for i in range(len(ds))])
    mask = np.concatenate([ds[i]["chunk_mask"][0].numpy() for i in range(len(ds))])
    assert first.sum() == 3 and (np.flatnonzero(first) % 4 == 0).all()  # every episode starts a window
    order = list(ds.streams[0])
    t = 0
    for e in order:
        T = len(eps[e]["action"])
        slots = -(-T // 4) * 4
        assert first[t] and mask[t : t + T, 0].all() and not mask[t + T : t + slots].any()
        t += slots


def test_episodic_windows_proprio_noise_is_fresh_and_reproducible():
    eps = _episodes([5, 3, 4, 6])
    clean = EpisodicWindows(eps, streams=2, window=3, chunk=2, seed=1, vocab=16, max_tokens=2)
    noisy = EpisodicWindows(eps, streams=2, window=3, chunk=2, seed=1, vocab=16, max_tokens=2, proprio_noise=0.5)
    d = noisy[0]["proprio"] - clean[0]["proprio"]  # (B, W, P)
    assert 0.2 < float(d.std()) < 1.0 and torch.equal(noisy[0]["action"], clean[0]["action"])
    assert not torch.allclose(d, noisy[1]["proprio"] - clean[1]["proprio"])  # fresh per item
    again = EpisodicWindows(eps, streams=2, window=3, chunk=2, seed=1, vocab=16, max_tokens=2, proprio_noise=0.5)
    assert torch.equal(again[0]["proprio"], noisy[0]["proprio"])  # a function of (seed, epoch, item)
    noisy.set_epoch(1), clean.set_epoch(1)
    assert not torch.allclose(noisy[0]["proprio"] - clean[0]["proprio"], d)  # and of the epoch


def test_episodic_windows_keyframe_weight_marks_action_jumps_and_weights_the_loss():
    from ostinato.control.models.encoders import l1_chunk_loss

    eps = _episodes([6, 6])
    for e in eps:  # the action (second column counts steps: +1 each) jumps by 5 at step 3
        e["action"][3:, 1] += 5.0
    plain = EpisodicWindows(eps, streams=2, window=6, chunk=2, seed=0, vocab=16, max_tokens=2)
    ds = EpisodicWindows(eps, streams=2, window=6, chunk=2, seed=0, vocab=16, max_tokens=2, keyframe_weight=4.0,
                         keyframe_change=2.0)
    assert "weight" not in plain[0]
    b = ds[0]
    w = b["weight"]  # (B, W, C): chunk entry c of step t targets step t + c
    want = torch.ones(2, 6, 2)
    want[:, 3, 0] = 4.0  # step 3 itself
    want[:, 2, 1] = 4.0  # step 2's chunk, second entry (step 3)
    assert torch.equal(w, want)
    pred = torch.zeros_like(b["action"])
    err = b["action"].abs().mean(-1)  # (B, W, C)
    m = b["chunk_mask"].float() * w
    assert torch.allclose(l1_chunk_loss(pred, b["action"], b["chunk_mask"], w), (err * m).sum() / m.sum())
    assert not torch.allclose(l1_chunk_loss(pred, b["action"], b["chunk_mask"]),
                              l1_chunk_loss(pred, b["action"], b["chunk_mask"], w))


def test_episodic_windows_keyframe_mode_step_weights_the_keyframe_steps_whole_chunk():
    eps = _episodes([6, 6])
    for e in eps:  # a jump at step 3, as above
        e["action"][3:, 1] += 5.0
    ds = EpisodicWindows(eps, streams=2, window=6, chunk=3, seed=0, vocab=16, max_tokens=2, keyframe_weight=4.0,
                         keyframe_change=2.0, keyframe_mode="step")
    want = torch.ones(2, 6, 3)
    want[:, 3, :] = 4.0  # every entry of the chunk predicted at step 3; none of step 1's or 2's
    assert torch.equal(ds[0]["weight"], want)
    with pytest.raises(ConfigError, match="keyframe_mode"):
        from_dict(ControlDemosConfig, {"keyframe_mode": "sideways"})
    with pytest.raises(ConfigError, match="keyframe_mode"):
        EpisodicWindows(eps, streams=2, window=6, chunk=3, keyframe_weight=4.0, keyframe_mode="steps")


def test_episodic_windows_keyframe_only_keeps_windows_up_to_the_last_keyframe_and_weights_only_keyframes():
    eps = _episodes([10, 10, 10])
    eps[0]["action"][3:, 1] += 5.0  # episode 0 jumps at step 3, episode 1 at step 7, episode 2 never
    eps[1]["action"][7:, 1] += 5.0
    ds = EpisodicWindows(eps, streams=4, window=4, chunk=2, seed=0, vocab=16, max_tokens=2, align=True,
                         keyframe_change=2.0, keyframe_mode="step", keyframe_only=True)
    assert ds.B == 2 and len(ds) == 2  # episode 2 dropped; episode 1 keeps two windows (steps 0-7), episode 0 one
    for i in range(2):
        b = ds[i]
        ep = b["proprio"][:, :, 0].floor().long()  # (B, W): proprio = episode + step / 100
        step = ((b["proprio"][:, :, 0] - ep) * 100).round().long()
        assert set(ep.flatten().tolist()) <= {0, 1}
        key = ((ep == 0) & (step == 3)) | ((ep == 1) & (step == 7))
        assert torch.equal(b["weight"], key[..., None].float().expand(-1, -1, 2))  # weight 1 at keyframes, else 0
        assert torch.equal(b["is_first"], step == 0)
        assert step.max() <= 7 and not ((ep == 0) & (step > 3)).any()  # nothing past the last keyframe's window
    with pytest.raises(ConfigError, match="align"):
        EpisodicWindows(eps, streams=2, window=4, keyframe_only=True)
    with pytest.raises(DataError, match="no episode has a keyframe"):
        EpisodicWindows(_episodes([6]), streams=2, window=4, align=True, keyframe_change=2.0, keyframe_only=True)


def test_keyframe_horizon_and_dims_narrow_the_keyframe_weight_to_the_first_moves_entries():
    from ostinato.control.models.encoders import l1_chunk_loss

    eps = _episodes([10, 10])
    eps[0]["action"][3:, 1] += 5.0  # keyframes: episode 0 at step 3, episode 1 at step 7
    eps[1]["action"][7:, 1] += 5.0
    ds = EpisodicWindows(eps, streams=2, window=4, chunk=3, seed=0, vocab=16, max_tokens=2, align=True,
                         keyframe_change=2.0, keyframe_mode="step", keyframe_only=True, keyframe_horizon=1,
                         keyframe_dims=(1,))
    seen = set()
    for i in range(len(ds)):
        b = ds[i]
        assert b["weight"].shape == b["action"].shape  # (B, W, C, A)
        ep = b["proprio"][:, :, 0].floor().long()
        step = ((b["proprio"][:, :, 0] - ep) * 100).round().long()
        key = ((ep == 0) & (step == 3)) | ((ep == 1) & (step == 7))  # (B, W)
        want = torch.zeros_like(b["weight"])
        want[..., 0, 1] = key.float()  # the first chunk entry's dimension 1 at keyframes, nothing else
        assert torch.equal(b["weight"], want)
        seen |= set(ep[key].tolist())
        # the loss is the mean error over the weighted entries alone
        pred = torch.randn_like(b["action"])
        err = (pred - b["action"]).abs()[..., 0, 1]
        assert torch.allclose(l1_chunk_loss(pred, b["action"], b["chunk_mask"], b["weight"]), err[key].mean())
    assert seen == {0, 1}  # both episodes' keyframes were checked
    # the horizon alone keeps (B, W, C) weights: the first two entries of the keyframe step's chunk
    ds = EpisodicWindows(eps, streams=2, window=4, chunk=3, seed=0, vocab=16, max_tokens=2, align=True,
                         keyframe_change=2.0, keyframe_mode="step", keyframe_weight=4.0, keyframe_horizon=2)
    w = torch.cat([ds[i]["weight"].flatten(0, 1) for i in range(len(ds))])  # (N, C)
    assert set(map(tuple, w.tolist())) == {(1.0, 1.0, 1.0), (4.0, 4.0, 1.0)}
    with pytest.raises(ConfigError, match="keyframe_mode"):
        EpisodicWindows(eps, streams=2, window=4, chunk=3, keyframe_weight=4.0, keyframe_horizon=1)
    with pytest.raises(ConfigError, match="keyframe_horizon=4"):
        EpisodicWindows(eps, streams=2, window=4, chunk=3, keyframe_mode="step", keyframe_horizon=4)
    with pytest.raises(ConfigError, match="keyframe_dims"):
        EpisodicWindows(eps, streams=2, window=4, chunk=3, keyframe_mode="step", keyframe_dims=(2,))


def test_episodic_windows_keep_epoch_zeros_length_when_episode_lengths_differ():
    ds = EpisodicWindows(_episodes([3, 9, 4, 12, 5]), streams=2, window=4, chunk=2, seed=0, vocab=16, max_tokens=2,
                         align=True)
    n = len(ds)
    lens = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        lens.add(int(np.ceil(max(len(t[0]) for t in ds.timeline) / ds.W)))
        assert len(ds) == n
        for i in range(n):  # every planned item exists in every epoch
            assert ds[i]["is_first"].shape == (2, 4)
    assert len(lens) > 1  # the epochs' own stream lengths did differ


def test_keyframe_steps_play_the_first_step_random_steps_between_and_the_keyframe():
    eps = _episodes([12, 12, 12])
    for e, k in zip(eps, (6, 9, 11)):  # keyframes (action jumps) at steps 6, 9 and 11
        e["action"][k:, 1] += 5.0
    ds = EpisodicWindows(eps, streams=3, window=4, chunk=2, seed=0, vocab=16, max_tokens=2, align=True,
                         keyframe_change=2.0, keyframe_mode="step", keyframe_only=True, keyframe_steps=4)
    assert len(ds) == 1  # every episode is one window of 4 steps
    draws = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        b = ds[0]
        ep = b["proprio"][:, :, 0].floor().long()  # (B, W)
        step = ((b["proprio"][:, :, 0] - ep) * 100).round().long()
        for r in range(3):
            e = int(ep[r, 0])
            s = step[r].tolist()
            assert (ep[r] == e).all() and s[0] == 0 and s[-1] == (6, 9, 11)[e]  # first step ... the keyframe
            assert all(a < b_ for a, b_ in zip(s, s[1:]))  # distinct, in order
            assert b["is_first"][r].tolist() == [True, False, False, False]
            assert b["weight"][r, :, 0].tolist() == [0.0, 0.0, 0.0, 1.0]  # the loss is the keyframe's alone
            draws.add((e, tuple(s)))
    assert len(draws) > 6  # the steps between are drawn afresh each epoch
    with pytest.raises(ConfigError, match="keyframe_steps=4"):
        EpisodicWindows(eps, streams=3, window=5, chunk=2, align=True, keyframe_change=2.0, keyframe_mode="step",
                        keyframe_only=True, keyframe_steps=4)
    with pytest.raises(ConfigError, match="keyframe_steps=4"):
        EpisodicWindows(eps, streams=3, window=4, chunk=2, align=True, keyframe_steps=4)
