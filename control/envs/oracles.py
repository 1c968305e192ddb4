"""Scripted / privileged-state expert policies used to record demonstrations.

- ``cue_task``: :meth:`CueTask.oracle_action` (waits for the targets, then goes to the goal).
- MIKASA ``RememberColor{3,5,9}-v0`` (control mode ``pd_ee_delta_pos``): does nothing while
  the cue and the delay are on (so that neither its motion nor its proprioception leaks the
  answer before the choice), then moves the TCP above the goal cube (read from the privileged
  ``true_color_indices``) at a safe height and lowers it to touch it.
- ``PushCube-v1`` (``pd_ee_delta_pos``): a scripted privileged-state pusher (go behind the
  cube on the cube-goal line at table height, then push along it).
- ManiSkill tasks with a motion-planning solution in the mani-skill wheel
  (``mani_skill/examples/motionplanning/panda/solutions``, control mode ``pd_joint_pos``):
  the solution drives the env; :func:`motion_planning_solver` returns it. mani-skill 3.0.1
  pins ``mplib==0.1.1``, whose ``Planner`` crashes (SIGSEGV) when NumPy 2 is installed (seen
  here with NumPy 2.4); :func:`motion_planning_solver` refuses that combination with a
  one-line error instead of crashing.
"""
from __future__ import annotations

import importlib

import numpy as np

from ostinato.core.errors import ConfigError

# env id -> module name under mani_skill.examples.motionplanning.panda.solutions
MOTION_PLANNING = {
    "PickCube-v1": "pick_cube", "StackCube-v1": "stack_cube",
    "PullCube-v1": "pull_cube", "PegInsertionSide-v1": "peg_insertion_side", "PlugCharger-v1": "plug_charger",
    "LiftPegUpright-v1": "lift_peg_upright", "PlaceSphere-v1": "place_sphere", "StackPyramid-v1": "stack_pyramid",
    "PullCubeTool-v1": "pull_cube_tool", "DrawTriangle-v1": "draw_triangle",
}
PRIVILEGED = ("RememberColor3-v0", "RememberColor5-v0", "RememberColor9-v0", "PushCube-v1")
CONTROL_MODE = {**{k: "pd_joint_pos" for k in MOTION_PLANNING}, **{k: "pd_ee_delta_pos" for k in PRIVILEGED}}


def motion_planning_usable() -> str:
    """'' when mani-skill's motion planner can run here, else why not (one line)."""
    try:
        import mplib
        import numpy
    except ImportError:
        return "motion planning needs mplib (pip install mplib==0.1.1)"
    if getattr(mplib, "__version__", "0.1.1").startswith("0.1") and int(numpy.__version__.split(".")[0]) >= 2:
        return f"mplib {getattr(mplib, '__version__', '0.1.x')} (pinned by mani-skill 3.0.1) crashes with NumPy {numpy.__version__}"
    return ""


def has_oracle(env_id: str) -> bool:
    if env_id in MOTION_PLANNING:
        return not motion_planning_usable()
    return env_id == "cue_task" or env_id in PRIVILEGED


def privileged_action(env_id: str, ms_env) -> np.ndarray:
    if env_id == "PushCube-v1":
        return push_cube_action(ms_env)
    return remember_color_action(ms_env)


def push_cube_action(ms_env, gain: float = 1.0) -> np.ndarray:
    """Scripted PushCube expert (``pd_ee_delta_pos``): line up behind the cube, then push to the goal."""
    cube = ms_env.obj.pose.p[0].cpu().numpy()
    goal = ms_env.goal_region.pose.p[0].cpu().numpy()
    tcp = ms_env.agent.tcp.pose.p[0].cpu().numpy()
    u = goal[:2] - cube[:2]
    u = u / max(np.linalg.norm(u), 1e-6)
    behind = np.array([*(cube[:2] - 0.06 * u), 0.02])
    rel = tcp[:2] - cube[:2]
    along, lateral = float(rel @ u), float(abs(rel[0] * u[1] - rel[1] * u[0]))
    if along > -0.035 or lateral > 0.015 or tcp[2] > 0.03:  # not yet low behind the cube: go there, from above
        target = behind.copy()
        if np.linalg.norm(tcp[:2] - behind[:2]) > 0.02:
            target[2] = 0.08
        d = target - tcp
    else:  # push along the line, holding the table height
        d = np.array([*(u * 0.05), 0.02 - tcp[2]])
        off = cube[:2] - tcp[:2]
        d[:2] += off - (off @ u) * u  # lateral correction toward the cube-goal line
    a = np.clip(d / 0.1 * gain, -1.0, 1.0)
    return np.array([*a, -1.0], np.float32)


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
    why = motion_planning_usable()
    if why:
        raise ConfigError(f"cannot record {env_id!r} demos by motion planning here: {why}")
    try:
        mod = importlib.import_module(f"mani_skill.examples.motionplanning.panda.solutions.{MOTION_PLANNING[env_id]}")
    except ImportError as e:
        raise ConfigError(f"motion planning for {env_id!r} needs mplib: pip install mplib ({e.name} missing)") from None
    return mod.solve
