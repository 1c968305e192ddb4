"""Scripted / privileged-state expert policies used to record demonstrations.

- ``cue_task``: :meth:`CueTask.oracle_action` (waits for the targets, then goes to the goal).
- MIKASA ``RememberColor{3,5,9}-v0`` (control mode ``pd_ee_delta_pos``): does nothing while
  the cue and the delay are on (so that neither its motion nor its proprioception leaks the
  answer before the choice), then moves the TCP above the goal cube (read from the privileged
  ``true_color_indices``) at a safe height and lowers it to touch it.
- ManiSkill tasks with a motion-planning solution in the mani-skill wheel
  (``mani_skill/examples/motionplanning/panda/solutions``, control mode ``pd_joint_pos``):
  the solution drives the env; :func:`motion_planning_solver` returns it.
"""
from __future__ import annotations

import importlib

import numpy as np

from ostinato.core.errors import ConfigError

# env id -> module name under mani_skill.examples.motionplanning.panda.solutions
MOTION_PLANNING = {
    "PushCube-v1": "push_cube", "PickCube-v1": "pick_cube", "StackCube-v1": "stack_cube",
    "PullCube-v1": "pull_cube", "PegInsertionSide-v1": "peg_insertion_side", "PlugCharger-v1": "plug_charger",
    "LiftPegUpright-v1": "lift_peg_upright", "PlaceSphere-v1": "place_sphere", "StackPyramid-v1": "stack_pyramid",
    "PullCubeTool-v1": "pull_cube_tool", "DrawTriangle-v1": "draw_triangle",
}
PRIVILEGED = ("RememberColor3-v0", "RememberColor5-v0", "RememberColor9-v0")
CONTROL_MODE = {**{k: "pd_joint_pos" for k in MOTION_PLANNING}, **{k: "pd_ee_delta_pos" for k in PRIVILEGED}}


def has_oracle(env_id: str) -> bool:
    return env_id == "cue_task" or env_id in MOTION_PLANNING or env_id in PRIVILEGED


def remember_color_action(ms_env, hover: float = 0.08, gain: float = 1.0) -> np.ndarray:
    """Privileged expert for RememberColor (``pd_ee_delta_pos``: dx, dy, dz in [-1, 1] ~ 0.1 m, gripper)."""
    t = int(ms_env.elapsed_steps[0])
    if t < ms_env.TIME_OFFSET + ms_env.DELTA_TIME:
        return np.array([0.0, 0.0, 0.0, -1.0], np.float32)
    k = int(ms_env.true_color_indices[0])
    goal = ms_env.cubes[k].pose.p[0].cpu().numpy() + np.array([0.0, 0.0, 0.025])
    tcp = ms_env.agent.tcp.pose.p[0].cpu().numpy()
    d = goal - tcp
    if np.linalg.norm(d[:2]) > 0.02:  # travel at the hover height, then descend
        d[2] = hover - tcp[2]
    a = np.clip(d / 0.1 * gain, -1.0, 1.0)
    return np.array([*a, -1.0], np.float32)


def motion_planning_solver(env_id: str):
    """``solve(env, seed)`` from the mani-skill wheel's motion-planning solutions (needs mplib)."""
    if env_id not in MOTION_PLANNING:
        raise ConfigError(f"no motion-planning solution for {env_id!r}; have: {', '.join(sorted(MOTION_PLANNING))}")
    try:
        mod = importlib.import_module(f"mani_skill.examples.motionplanning.panda.solutions.{MOTION_PLANNING[env_id]}")
    except ImportError as e:
        raise ConfigError(f"motion planning for {env_id!r} needs mplib: pip install mplib ({e.name} missing)") from None
    return mod.solve
