"""Demonstrations: record oracle episodes, one ``.npz`` per episode, and read them back.

Episode layout (MIKASA-Robo's offline format: one file per episode, T steps, observation t
is the one the action t was taken from), keys:

    rgb (T, S, S, 3*n_cams) uint8   (absent for state-observation episodes)
    proprio (T, P) float32          (MIKASA 1.0.0 calls it ``proprio``; 0.0.5 ``joints``)
    action (T, A) float32, reward (T,) float32, success (T,) bool, done (T,) bool,
    is_first (T,) bool, is_last (T,) bool, instruction () str, env () str, seed () int64

``read_maniskill_h5`` reads ManiSkill's ``trajectory.h5`` (``traj_i`` groups with
``actions``, ``success``/``terminated``/``truncated`` and, when recorded or replayed with
observations, ``obs``) into the same per-episode dicts.
"""
from __future__ import annotations

import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from ostinato.core.data import CACHE_DIR
from ostinato.core.errors import ConfigError, DataError
from ostinato.core.io import atomic_write
from ostinato.core.progress import Progress

from ..envs import EnvConfig, make_env
from .seeds import check_seeds

KEYS = ("proprio", "action", "reward", "success", "done", "is_first", "is_last")


def default_demo_dir(env: str) -> Path:
    """Where ``ostinato control collect ENV`` writes demos (and the bench reads them) by default."""
    return CACHE_DIR / "control" / "demos" / env


def episode_from_steps(obs: list[dict], actions, rewards, successes, instruction: str, env: str, seed: int) -> dict:
    T = len(actions)
    ep = {
        "proprio": np.stack([o["proprio"] for o in obs[:T]]).astype(np.float32),  # (T, P)
        "action": np.asarray(actions, np.float32).reshape(T, -1),  # (T, A)
        "reward": np.asarray(rewards, np.float32),
        "success": np.asarray(successes, bool),
        "done": np.arange(T) == T - 1,
        "is_first": np.arange(T) == 0,
        "is_last": np.arange(T) == T - 1,
        "instruction": np.array(instruction),
        "env": np.array(env),
        "seed": np.array(seed, np.int64),
    }
    if "rgb" in obs[0]:
        ep["rgb"] = np.stack([o["rgb"] for o in obs[:T]]).astype(np.uint8)  # (T, S, S, C)
    return ep


def save_episode(ep: dict, path: Path) -> None:
    atomic_write(Path(path), lambda f: np.savez_compressed(f, **ep))


def load_episode(path: str | Path) -> dict:
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            ep = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{p}: not a readable .npz episode ({e})") from None
    if "joints" in ep and "proprio" not in ep:  # MIKASA 0.0.5 naming
        ep["proprio"] = ep.pop("joints")
    missing = [k for k in ("proprio", "action") if k not in ep]
    if missing:
        raise DataError(f"{p}: expected keys proprio (or joints) and action, missing {', '.join(missing)}")
    T = len(ep["action"])
    if len(ep["proprio"]) != T or ("rgb" in ep and len(ep["rgb"]) != T):
        raise DataError(f"{p}: rgb/proprio/action lengths differ ({len(ep['proprio'])} vs {T})")
    ep.setdefault("is_first", np.arange(T) == 0)
    ep.setdefault("is_last", np.asarray(ep.get("done", np.arange(T) == T - 1), bool))
    ep.setdefault("success", np.zeros(T, bool))
    ep.setdefault("reward", np.zeros(T, np.float32))
    ep.setdefault("instruction", np.array(str(ep.get("env", ""))))
    return ep


def load_episodes(folder: str | Path, limit: int = 0) -> list[dict]:
    files = sorted(Path(folder).glob("*.npz"))
    if not files:
        raise DataError(f"{folder}: no .npz episodes; record some with `ostinato control collect ENV --out {folder}`")
    return [load_episode(f) for f in files[: limit or None]]


def read_maniskill_h5(path: str | Path, instruction: str = "") -> list[dict]:
    """ManiSkill ``trajectory.h5`` -> episode dicts (observations must have been recorded)."""
    import h5py

    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such ManiSkill trajectory file")
    out = []
    with h5py.File(p, "r") as f:
        names = sorted((k for k in f if k.startswith("traj_")), key=lambda k: int(k.split("_")[1]))
        for name in names:
            g = f[name]
            if "obs" not in g:
                raise DataError(f"{p}:{name}: no 'obs' group; replay it with observations "
                                "(python -m mani_skill.trajectory.replay_trajectory --traj-path ... -o rgb)")
            act = np.asarray(g["actions"], np.float32)  # (T, A)
            T = len(act)
            obs = g["obs"]
            parts = [np.asarray(obs[k], np.float32).reshape(len(obs[k]), -1) for k in ("agent/qpos", "agent/qvel", "extra/tcp_pose") if k in obs]
            if not parts:
                raise DataError(f"{p}:{name}: obs has no agent/qpos")
            ep = {
                "proprio": np.concatenate(parts, -1)[:T],  # (T, P): obs has T+1 entries
                "action": act,
                "reward": np.asarray(g["rewards"], np.float32) if "rewards" in g else np.zeros(T, np.float32),
                "success": np.asarray(g["success"], bool) if "success" in g else np.zeros(T, bool),
                "is_first": np.arange(T) == 0,
                "is_last": np.arange(T) == T - 1,
                "done": np.arange(T) == T - 1,
                "instruction": np.array(instruction),
            }
            if "sensor_data" in obs:
                cams = sorted(obs["sensor_data"])
                ep["rgb"] = np.concatenate([np.asarray(obs["sensor_data"][c]["rgb"], np.uint8) for c in cams], -1)[:T]
            out.append(ep)
    if not out:
        raise DataError(f"{p}: no traj_* groups")
    return out


class _Recorder(gym.Wrapper):
    """Records every step of whatever drives the env (an oracle loop or a motion planner)."""

    def __init__(self, env):
        super().__init__(env)
        self.obs, self.actions, self.rewards, self.successes = [], [], [], []

    @property
    def unwrapped(self):  # the motion planner needs ManiSkill's BaseEnv
        return getattr(self.env, "unwrapped_ms", self.env)

    def reset(self, **kw):
        o, info = self.env.reset(**kw)
        self.obs, self.actions, self.rewards, self.successes = [o], [], [], []
        return o, info

    def step(self, action):
        o, r, te, tr, info = self.env.step(action)
        self.obs.append(o)
        self.actions.append(np.asarray(action, np.float32).reshape(-1))
        self.rewards.append(r)
        self.successes.append(bool(info.get("success", False)))
        return o, r, te, tr, info


def _run_oracle(rec: _Recorder, env_id: str, seed: int, max_steps: int) -> None:
    from ..envs.oracles import MOTION_PLANNING, privileged_action

    if env_id in MOTION_PLANNING:
        from ..envs.oracles import motion_planning_solver

        motion_planning_solver(env_id)(rec, seed=seed, debug=False, vis=False)
        return
    rec.reset(seed=seed)
    base = rec.env
    for _ in range(max_steps):
        a = base.oracle_action() if env_id == "cue_task" else privileged_action(env_id, base.unwrapped_ms)
        _, _, te, tr, _ = rec.step(a)
        if te or tr:
            break


def collect(cfg: EnvConfig, episodes: int, out: str | Path, seed: int = 0, keep_failures: bool = False,
            max_tries: int = 0, log=print, first_index: int = 0) -> list[Path]:
    """Record ``episodes`` successful oracle demos of ``cfg.env`` into ``out`` (``ep_000000.npz`` ...;
    numbering starts at ``first_index``, so a folder can be topped up without overwriting)."""
    from ..envs.oracles import has_oracle

    if not has_oracle(cfg.env):
        from ..envs.oracles import MOTION_PLANNING, motion_planning_solver

        if cfg.env in MOTION_PLANNING:
            motion_planning_solver(cfg.env)  # raises the one-line reason
        raise ConfigError(f"no oracle for env {cfg.env!r}; demos can be recorded for cue_task, PushCube-v1, the "
                          "MIKASA RememberColor tasks and ManiSkill tasks with motion-planning solutions")
    if episodes <= 0:
        raise ConfigError(f"--episodes {episodes}: expected a positive number")

    limit = max_tries or 3 * episodes
    check_seeds([seed, seed + limit - 1], "val", f"--seed {seed} (with up to {limit} tries)")  # test seeds: evaluation only
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = make_env(cfg)
    rec = _Recorder(env)
    max_steps = getattr(env, "spec_max_steps", 0) or getattr(env, "max_steps", 0) or 200
    paths, tries, t0, steps = [], 0, time.time(), 0
    # stderr: a bar on a TTY, else "[collect ENV] episode 12/100 tries 14 0.8 episodes/s eta 1m50s" every
    # $OSTINATO_LOG_EVERY_S (30) seconds
    prog = Progress(episodes, f"collect {cfg.env}", unit="episode")
    while len(paths) < episodes and tries < limit:
        s = seed + tries
        tries += 1
        _run_oracle(rec, cfg.env, s, max_steps)
        if not rec.actions:
            continue
        steps += len(rec.actions)
        ok = any(rec.successes)
        if not ok and not keep_failures:
            continue
        ep = episode_from_steps(rec.obs, rec.actions, rec.rewards, rec.successes, env.instruction, cfg.env, s)
        p = out / f"ep_{first_index + len(paths):06d}.npz"
        save_episode(ep, p)
        paths.append(p)
        prog.update(1, {"tries": tries})
    prog.close()
    env.close()
    dt = time.time() - t0
    log(f"{cfg.env}: {len(paths)} demos from {tries} tries, {steps} env steps in {dt:.1f} s "
        f"({steps / max(dt, 1e-9):.1f} steps/s incl. oracle) -> {out}")
    if len(paths) < episodes:
        raise DataError(f"{cfg.env}: only {len(paths)} of {episodes} oracle episodes succeeded in {tries} tries")
    return paths


def oracle_episodes(cfg: EnvConfig, episodes: int, seed: int = 0) -> list[dict]:
    """In-memory oracle demos (the cue task's training set is generated this way)."""
    from ..envs.oracles import has_oracle

    if not has_oracle(cfg.env):
        raise ConfigError(f"no oracle for env {cfg.env!r}")
    env = make_env(cfg)
    rec = _Recorder(env)
    max_steps = getattr(env, "spec_max_steps", 0) or getattr(env, "max_steps", 0) or 200
    eps, s = [], seed
    while len(eps) < episodes and s < seed + 3 * episodes:
        _run_oracle(rec, cfg.env, s, max_steps)
        if any(rec.successes):
            eps.append(episode_from_steps(rec.obs, rec.actions, rec.rewards, rec.successes, env.instruction, cfg.env, s))
        s += 1
    env.close()
    return eps
