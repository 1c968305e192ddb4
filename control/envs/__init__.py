"""Control environments: the pure-gymnasium cue task and ManiSkill3 / MIKASA-Robo wrappers.

Every env has the observation ``{"rgb": (S, S, 3*n_cams) uint8, "proprio": (P,) float32,
"instruction": str}`` (state-mode ManiSkill envs have no ``rgb``) and ``info["success"]``.
``make_env(name, ...)`` builds one; ``list_envs()`` says which are usable on this machine
(``ostinato ls envs``).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import gymnasium as gym

from ostinato.core.errors import ConfigError

MANISKILL = ("PushCube-v1", "PullCube-v1", "PickCube-v1", "StackCube-v1")
MIKASA = tuple(
    f"{g}-v0"
    for g in (
        "RememberColor3", "RememberColor5", "RememberColor9", "RememberShape3", "RememberShape5", "RememberShape9",
        "RememberShapeAndColor3x2", "RememberShapeAndColor3x3", "RememberShapeAndColor5x3",
        "ShellGameTouch", "ShellGamePush", "ShellGamePick", "InterceptSlow", "InterceptMedium", "InterceptFast",
        "InterceptGrabSlow", "InterceptGrabMedium", "InterceptGrabFast", "RotateLenientPos", "RotateLenientPosNeg",
        "RotateStrictPos", "RotateStrictPosNeg", "TakeItBack", "BunchOfColors3", "BunchOfColors5", "BunchOfColors7",
        "SeqOfColors3", "SeqOfColors5", "SeqOfColors7", "ChainOfColors3", "ChainOfColors5", "ChainOfColors7",
    )
)
ENV_NAMES = ("cue_task", *MANISKILL, *MIKASA)


@dataclass
class EnvConfig:
    """How an env is built (a section of the control data config and of ``collect``)."""

    env: str = "cue_task"  # see `ostinato ls envs`
    obs_mode: str = "rgb"  # rgb | state (ManiSkill only; state leaks the answer on MIKASA tasks)
    image_size: int = 64
    robot: str = ""  # "" = the task's default on CPU ("panda" for MIKASA: no wrist camera)
    control_mode: str = ""  # "" = the oracle's mode (pd_ee_delta_pos / pd_joint_pos) or the env default
    lowpoly: bool = True  # decimated Panda visual meshes (3x faster CPU rendering)
    max_episode_steps: int = 0  # 0 = the task's default
    cue_agent_visible: bool = False  # cue_task only: draw the agent and give its position (leaks the choice after one move)
    cue_shuffle: bool = True  # cue_task only: shuffle the target colours every episode (False: fixed places per colour)
    cue_jitter: float = 0.0  # cue_task only: move targets and cue by up to this much each episode (0: fixed places)
    cue_distractors: int = 0  # cue_task only: squares of non-target colours at random places during the delay


def make_env(cfg: EnvConfig | None = None, **kw) -> gym.Env:
    """Build one env from an :class:`EnvConfig` (or its fields as keywords)."""
    cfg = cfg or EnvConfig(**kw)
    if cfg.env == "cue_task":
        from .cue import CueTask

        kw = {"max_steps": cfg.max_episode_steps} if cfg.max_episode_steps else {}
        return CueTask(image_size=cfg.image_size, agent_visible=cfg.cue_agent_visible,
                       shuffle_targets=cfg.cue_shuffle, jitter=cfg.cue_jitter, distractors=cfg.cue_distractors, **kw)
    if cfg.env not in ENV_NAMES:
        raise ConfigError(f"unknown env {cfg.env!r}; see `ostinato ls envs` (e.g. cue_task, PushCube-v1, RememberColor3-v0)")
    from .maniskill import ManiSkillEnv
    from .oracles import CONTROL_MODE

    return ManiSkillEnv(
        cfg.env, obs_mode=cfg.obs_mode, image_size=cfg.image_size, robot=cfg.robot,
        control_mode=cfg.control_mode or CONTROL_MODE.get(cfg.env, ""), lowpoly=cfg.lowpoly,
        max_episode_steps=cfg.max_episode_steps,
    )


def list_envs() -> list[tuple[str, str]]:
    """(env, status) rows: 'ok', or what is missing on this machine (one line each)."""
    from .oracles import has_oracle
    from .render import render_status

    rows = [("cue_task", "ok (pure gymnasium, oracle demos)")]
    have_ms = importlib.util.find_spec("mani_skill") is not None
    have_mk = importlib.util.find_spec("mikasa_robo_suite") is not None
    render = render_status() if have_ms else "missing"
    ycb = False
    if have_ms:
        from .maniskill import ycb_available

        ycb = ycb_available()
    for name in (*MANISKILL, *MIKASA):
        if not have_ms:
            st = "needs mani-skill==3.0.1 (pip)"
        elif name in MIKASA and not have_mk:
            st = "needs mikasa-robo-suite==1.0.0 (pip --no-deps)"
        elif render == "missing":
            st = "needs `ostinato control setup-render`"
        elif name.startswith("ShellGame") and not ycb:
            st = "needs YCB assets (download unavailable offline)"
        else:
            st = f"ok ({render})"
        if st.startswith("ok"):
            st += ", oracle demos" if has_oracle(name) else ", no oracle"
        rows.append((name, st))
    return rows
