"""Gymnasium wrappers over ManiSkill3 and MIKASA-Robo on the CPU (physics and rendering).

``ManiSkillEnv(env_id, obs_mode="rgb", image_size=64)`` is a plain single-env
``gymnasium.Env`` (numpy in, numpy out) with the observation API shared by every control env:

    {"rgb": (S, S, 3 * n_cameras) uint8, "proprio": (P,) float32, "instruction": str}

``proprio`` is ``qpos, qvel`` of the robot plus the TCP pose when the task exposes it (25
numbers for the Panda, MIKASA's ``joints``). With ``obs_mode="state"`` there is no ``rgb``
and ``proprio`` is ManiSkill's full flat state (privileged: on MIKASA tasks it holds the
answer, so memory is evaluated on ``rgb``).

It builds the env with ``sim_backend="cpu"``, ``render_backend="cpu"`` and the ``minimal``
shader at ``image_size``, after :func:`render.configure_render` (the private Mesa 25
lavapipe, or the GPU when there is one). ``robot="panda"`` (no wrist camera) is the CPU
default for MIKASA tasks (4x faster than ``panda_wristcam``); ``lowpoly=True`` uses the
decimated Panda meshes (3x faster rendering, identical physics). It works inside
``gym.vector.AsyncVectorEnv`` (each worker builds its own env; see ``make_vector_env``).

MIKASA-Robo ids (``RememberColor3-v0`` ...) come from ``mikasa_robo_suite.rl.memory_envs``
(PyPI ``mikasa-robo-suite==1.0.0`` installed with ``--no-deps``).
"""
from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ostinato.core.errors import ConfigError, EnvironmentMissing

from .render import configure_render

MIKASA_PREFIXES = ("Remember", "ShellGame", "Intercept", "Rotate", "TakeItBack", "BunchOf", "SeqOf", "ChainOf")
NEEDS_YCB = ("ShellGameTouch-v0", "ShellGamePush-v0", "ShellGamePick-v0")
INSTRUCTIONS = {
    "PushCube-v1": "push the cube to the goal region",
    "PullCube-v1": "pull the cube to the goal region",
    "PickCube-v1": "pick up the cube and move it to the goal",
    "StackCube-v1": "stack the red cube on the green cube",
    "RememberColor3-v0": "remember the colour of the cube shown first, then touch the cube of that colour",
    "RememberColor5-v0": "remember the colour of the cube shown first, then touch the cube of that colour",
    "RememberColor9-v0": "remember the colour of the cube shown first, then touch the cube of that colour",
    "RememberShape3-v0": "remember the shape shown first, then touch the object of that shape",
    "InterceptMedium-v0": "intercept the rolling ball and push it to the target",
    "TakeItBack-v0": "move the cube to the target, then take it back where it started",
}


def is_mikasa(env_id: str) -> bool:
    return env_id.startswith(MIKASA_PREFIXES)


def ycb_available() -> bool:
    from mani_skill import ASSET_DIR

    return (Path(ASSET_DIR) / "assets" / "mani_skill2_ycb").exists()


def import_env_modules(env_id: str) -> None:
    """Import the packages that register ``env_id``; one-line errors when they are missing."""
    os.environ.setdefault("MS_SKIP_ASSET_DOWNLOAD_PROMPT", "1")
    try:
        import mani_skill.envs  # noqa: F401
    except ImportError as e:
        raise EnvironmentMissing(
            f"env {env_id!r} needs ManiSkill3: pip install 'mani-skill==3.0.1' mplib ({e.name} missing)"
        ) from None
    if is_mikasa(env_id):
        try:
            import mikasa_robo_suite.rl.memory_envs  # noqa: F401
        except ImportError as e:
            raise EnvironmentMissing(
                f"env {env_id!r} needs MIKASA-Robo: pip install --no-deps mikasa-robo-suite==1.0.0 ({e.name} missing)"
            ) from None
    if env_id in NEEDS_YCB and not ycb_available():
        raise EnvironmentMissing(
            f"env {env_id!r} needs the YCB assets, which cannot be downloaded offline "
            "(`python -m mani_skill.utils.download_asset ycb` where the internet is reachable)"
        )


class ManiSkillEnv(gym.Env):
    """One ManiSkill3 / MIKASA-Robo env on the CPU with the control observation API."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        env_id: str,
        obs_mode: str = "rgb",
        image_size: int = 64,
        robot: str = "",
        control_mode: str = "",
        lowpoly: bool = True,
        max_episode_steps: int = 0,
        render_mode: str | None = "rgb_array",
    ):
        if obs_mode not in ("rgb", "state"):
            raise ConfigError(f"obs_mode={obs_mode!r}: expected 'rgb' or 'state'")
        import_env_modules(env_id)
        configure_render()
        if lowpoly:
            from .lowpoly import use_lowpoly_panda

            use_lowpoly_panda()
        from mani_skill.utils.wrappers.gymnasium import CPUGymWrapper

        kw = dict(
            num_envs=1, obs_mode=obs_mode, sim_backend="cpu", render_backend="cpu",
            sensor_configs=dict(width=image_size, height=image_size, shader_pack="minimal"),
            human_render_camera_configs=dict(width=image_size * 2, height=image_size * 2, shader_pack="minimal"),
            render_mode=render_mode,
        )
        if robot or is_mikasa(env_id):
            kw["robot_uids"] = robot or "panda"
        if control_mode:
            kw["control_mode"] = control_mode
        if max_episode_steps:
            kw["max_episode_steps"] = max_episode_steps
        try:
            raw = gym.make(env_id, **kw)
        except gym.error.Error as e:
            raise ConfigError(f"env {env_id!r}: {e}") from None
        if is_mikasa(env_id):
            patch_mikasa(raw.unwrapped)
        self.env = CPUGymWrapper(raw)
        self.env_id, self.obs_mode, self.size = env_id, obs_mode, image_size
        self.render_mode = render_mode
        self.instruction = INSTRUCTIONS.get(env_id, f"solve the task {env_id.split('-')[0]}")
        self.action_space = self.env.action_space
        obs, _ = self.env.reset(seed=0)
        o = self._convert(obs)
        sp = {"proprio": spaces.Box(-np.inf, np.inf, o["proprio"].shape, np.float32),
              "instruction": spaces.Text(max_length=256, charset=frozenset(self.instruction))}
        if "rgb" in o:
            sp["rgb"] = spaces.Box(0, 255, o["rgb"].shape, np.uint8)
        self.observation_space = spaces.Dict(sp)
        self.spec_max_steps = int(getattr(self.env.unwrapped.spec, "max_episode_steps", 0) or max_episode_steps or 0)

    @property
    def unwrapped_ms(self):
        """The ManiSkill ``BaseEnv`` (privileged state for oracles)."""
        return self.env.unwrapped

    def _convert(self, obs) -> dict:
        if self.obs_mode == "state":
            return {"proprio": np.asarray(obs, np.float32).reshape(-1), "instruction": self.instruction}
        agent, extra = obs.get("agent", {}), obs.get("extra", {})
        parts = [agent[k] for k in ("qpos", "qvel") if k in agent]
        if "tcp_pose" in extra:
            parts.append(extra["tcp_pose"])
        prop = np.concatenate([np.asarray(p, np.float32).reshape(-1) for p in parts])
        cams = [obs["sensor_data"][c]["rgb"] for c in sorted(obs.get("sensor_data", {}))]
        out = {"proprio": prop, "instruction": self.instruction}
        if cams:
            out["rgb"] = np.concatenate([np.asarray(c, np.uint8) for c in cams], axis=-1)  # (S, S, 3 * n_cams)
        return out

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self._convert(obs), self._info(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(np.asarray(action, np.float32))
        return self._convert(obs), float(reward), bool(terminated), bool(truncated), self._info(info)

    @staticmethod
    def _info(info: dict) -> dict:
        return {"success": bool(np.asarray(info.get("success", False)).reshape(-1)[0])}

    def render(self):
        return np.asarray(self.env.render(), np.uint8).reshape(self.size * 2, self.size * 2, -1)[..., :3]

    def close(self):
        self.env.close()


def make_vector_env(factory, n: int = 2, context: str = "spawn") -> gym.vector.AsyncVectorEnv:
    """``n`` worker processes, each building its own env with ``factory()``.

    Call :func:`render.configure_render` first (``ManiSkillEnv`` does it in each worker too):
    forked workers inherit the preloaded libraries, spawned ones get ``LD_LIBRARY_PATH``.
    """
    configure_render(required=False)
    return gym.vector.AsyncVectorEnv([factory] * n, context=context, shared_memory=False)


# ----------------------------------------------------------------------------- MIKASA fix
def _remember_color_evaluate(self):
    """RememberColor's ``evaluate`` with the reveal fixed (patched onto the instance).

    MIKASA-Robo 1.0.0's own ``evaluate`` re-reads the cube poses it has just moved out of
    sight (z = 1000) and "restores" those, so on mani-skill 3.0.1's CPU backend the cubes
    never come back after the delay and no episode can succeed (observed here). This version
    keeps the task's schedule: the goal cube alone at the centre for ``TIME_OFFSET`` steps,
    nothing for ``DELTA_TIME`` steps, then every cube at its own (shuffled) place, from where
    physics moves it. Success and the privileged ``oracle_info`` are as in MIKASA.
    """
    import torch

    t = self.elapsed_steps
    off, reveal_at = self.TIME_OFFSET, self.TIME_OFFSET + self.DELTA_TIME
    if not hasattr(self, "_ost_revealed") or bool((t == 0).all()):
        self._ost_revealed = torch.zeros_like(t, dtype=torch.bool)
    reveal = t >= reveal_at
    first = reveal & ~self._ost_revealed
    hidden = ~reveal
    for key in self.color_dict:
        raw = self.cubes[key].pose.raw_pose.clone()
        raw[first, :3] = self.initial_poses[key].to(raw.device)[first, :3]
        raw[first, 3:] = torch.tensor([1.0, 0.0, 0.0, 0.0], device=raw.device)
        raw[hidden, :3] = self.initial_poses[key].to(raw.device)[hidden, :3]
        raw[hidden, 2] = 1000.0
        cue = hidden & (t < off) & (self.true_color_indices == key)
        raw[cue, :3] = self.center_pose.to(raw.device).expand(int(cue.sum()), -1)
        if bool((first | hidden).any()):
            self.cubes[key].pose = raw
            self.cubes[key].set_linear_velocity(torch.zeros_like(raw[:, :3]))
            self.cubes[key].set_angular_velocity(torch.zeros_like(raw[:, :3]))
    self._ost_revealed = self._ost_revealed | reveal
    self.masks = {k: (self.true_color_indices == k).unsqueeze(-1) for k in self.color_dict}
    goal = sum(self.cubes[k].pose.p * self.masks[k] for k in self.color_dict)
    self.obj_to_goal_pos = goal - self.agent.tcp.pose.p
    placed = (torch.linalg.norm(self.obj_to_goal_pos, axis=1) <= self.GOAL_THRESH) & reveal
    static = self.agent.is_static(0.2)
    return {"obj_to_goal_pos": self.obj_to_goal_pos, "is_obj_placed": placed, "is_robot_static": static,
            "success": placed & static, "task_cue": self.task_cue, "oracle_info": self.oracle_info,
            "reward_dict": self.reward_dict}


def patch_mikasa(ms_env) -> None:
    """Apply the fixes this suite needs to a MIKASA env instance (RememberColor's reveal)."""
    import types

    name = type(ms_env).__name__
    if name.startswith("RememberColor") and hasattr(ms_env, "cubes"):
        ms_env.evaluate = types.MethodType(_remember_color_evaluate, ms_env)
