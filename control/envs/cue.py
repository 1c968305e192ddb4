"""A pure-gymnasium memory task (no simulator), shaped like MIKASA-Robo's RememberColor.

Episode (defaults): a coloured cue square is shown at the centre for ``cue_steps`` steps,
then the screen is empty for ``delay_steps`` steps, then ``n_targets`` squares of distinct
colours appear at fixed places on an arc above the agent's start. The agent (continuous 2-D
velocity action in [-1, 1]^2, ``speed`` per step) must touch the target whose colour
matches the cue: touching it ends the episode with success (reward 1), touching another
ends it without. Timeout: ``max_steps``.

**Why every post-reveal step needs memory.** By default (``agent_visible=False``) the agent
is not drawn in the observation and ``proprio`` is only the elapsed-time fraction ``t /
max_steps``: nothing the policy sees after the reveal depends on where it is or where it is
heading. The oracle's action after the reveal is the (constant) full-speed direction from
the start to the goal, so the correct action at *every* step after the reveal is a function
of the remembered cue colour (and, with shuffled targets, of where that colour is). A
memoryless policy sees the same observation whatever the cue was; behaviour cloning then
gives it the per-coordinate median of the three directions, straight up, which reaches the
middle target: success 1/3 = chance. With ``agent_visible=True`` (the earlier version of
this task) the agent is drawn and ``proprio`` is ``[x, y, vx, vy, t / max_steps]``: there
the agent's position reveals its choice after the first move, so only one step per episode
needs memory and the BC signal for memory is weak.

**Target order.** ``shuffle_targets=True`` (the default of this class) draws a fresh colour
order every episode, independent of the cue, as RememberColor does: the goal is then a
function of the cue *and* the revealed image, so a policy must store the colour and, at the
reveal, match it against the target colours. Neither part alone lowers the BC loss (the
cue alone says nothing about the direction; the image alone neither), so plain gradient
descent starts on a plateau: on a CPU budget the cue recipes' muVLA and LSTM stayed at
chance for thousands of steps (measured in the control README). ``shuffle_targets=False`` (``EnvConfig.
cue_shuffle=False``, used by the cue recipes and the bench) keeps each colour at its own
place: the direction is a function of the remembered cue alone, which isolates memory and
is learned in a few hundred steps; a memoryless policy is still at chance, because the cue
is gone before the reveal and nothing after it depends on the cue. The memory must carry
the cue from the last cue step through the delay and all post-reveal steps, so a TBPTT
window K shorter than the episode cuts the gradient paths it learns from.

**Unseen episodes.** With fixed places the task has only ``n_targets`` distinct episodes (one per cue colour), and
with shuffled colours ``n_targets * n_targets!``: a test seed then replays a training episode pixel for pixel.
``jitter > 0`` moves each target (each episode, uniformly within ``jitter`` of its arc place in x and y) and the cue
(within ``jitter`` of the centre), and ``distractors = k`` shows k squares of colours that are never targets at
random places during the delay. Both are drawn after the cue and the colour order, so a seed keeps its cue and
order; the goal direction then depends on the remembered cue and on where the targets are seen, and test episodes
are new ones (tests/control/test_envs.py checks that none is in the training demos by content).

Observation (the API of the ManiSkill wrappers): ``{"rgb": (S, S, 3) uint8, "proprio": (1,)
or (5,) float32, "instruction": str}``, rendered with numpy. :meth:`render` (GIFs) always
draws the agent (a white dot). :meth:`CueTask.oracle_action` is the privileged expert used
for demonstrations: it waits until the targets appear, then moves straight to the goal.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

# MIKASA-Robo's RememberColor palette (RGB)
PALETTE = np.array(
    [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255],
     [128, 0, 0], [255, 128, 0], [0, 128, 128]], dtype=np.uint8
)
INSTRUCTION = "remember the colour of the cue, then touch the target of that colour"
START = np.array([0.0, -0.6], np.float32)  # the agent's start (and position during cue and delay)
ARC_RADIUS = 1.0  # targets lie on an arc of this radius around START, from 150 to 30 degrees


class CueTask(gym.Env):
    """Cue, delay, choice (see module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        n_targets: int = 3,
        image_size: int = 64,
        cue_steps: int = 3,
        delay_steps: int = 3,
        max_steps: int = 24,
        speed: float = 0.15,
        target_radius: float = 0.2,
        agent_visible: bool = False,
        shuffle_targets: bool = True,
        jitter: float = 0.0,
        distractors: int = 0,
        render_mode: str | None = "rgb_array",
    ):
        if not 2 <= n_targets <= len(PALETTE):
            raise ValueError(f"n_targets={n_targets}: expected 2..{len(PALETTE)}")
        self.n_targets, self.size, self.agent_visible = n_targets, image_size, agent_visible
        self.shuffle_targets, self.jitter, self.n_distractors = shuffle_targets, float(jitter), int(distractors)
        if not 0.0 <= self.jitter <= 0.3 or not 0 <= self.n_distractors <= len(PALETTE) - n_targets:
            raise ValueError(f"jitter={jitter}, distractors={distractors}: expected 0 <= jitter <= 0.3 and "
                             f"0..{len(PALETTE) - n_targets} distractors")
        self.cue_steps, self.delay_steps, self.max_steps = cue_steps, delay_steps, max_steps
        self.speed, self.render_mode = speed, render_mode
        ang = np.deg2rad(np.linspace(150.0, 30.0, n_targets))  # (n,) left to right
        self.arc_xy = (START + ARC_RADIUS * np.stack([np.cos(ang), np.sin(ang)], -1)).astype(np.float32)  # (n, 2)
        chord = 2 * ARC_RADIUS * np.sin((ang[0] - ang[1]) / 2)
        # touching areas never overlap, jittered or not
        self.radius = float(min(target_radius, 0.45 * (chord - 2 * np.sqrt(2) * self.jitter)))
        self.target_xy, self.cue_xy, self.distractor_xy = self.arc_xy.copy(), np.zeros(2, np.float32), np.zeros((0, 2))
        self.instruction = INSTRUCTION
        self.observation_space = spaces.Dict(
            {
                "rgb": spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
                "proprio": spaces.Box(-np.inf, np.inf, (5 if agent_visible else 1,), np.float32),
                "instruction": spaces.Text(max_length=256, charset=frozenset(INSTRUCTION + "abcdefghijklmnopqrstuvwxyz ")),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    # ------------------------------------------------------------------ state
    @property
    def targets_visible(self) -> bool:
        return self.t >= self.cue_steps + self.delay_steps

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        self.cue = int(rng.integers(self.n_targets))  # index into PALETTE
        perm = rng.permutation(self.n_targets)  # drawn either way: the cue of a seed does not depend on the option
        self.order = perm if self.shuffle_targets else np.arange(self.n_targets)  # target i has colour PALETTE[order[i]]
        self.goal = int(np.flatnonzero(self.order == self.cue)[0])
        if self.jitter:  # drawn after the cue and the order: a seed keeps both
            j = rng.uniform(-self.jitter, self.jitter, (self.n_targets + 1, 2)).astype(np.float32)
            self.target_xy, self.cue_xy = self.arc_xy + j[:-1], j[-1]
        if self.n_distractors:  # colours that are never targets, anywhere in the upper part of the frame
            self.distractor_col = self.n_targets + rng.permutation(len(PALETTE) - self.n_targets)[: self.n_distractors]
            self.distractor_xy = rng.uniform([-0.9, -0.3], [0.9, 0.9], (self.n_distractors, 2)).astype(np.float32)
        self.pos = START.copy()
        self.vel = np.zeros(2, np.float32)
        self.t = 0
        return self._obs(), {"success": False, "oracle_goal": self.goal}

    def step(self, action):
        a = np.clip(np.asarray(action, np.float32).reshape(2), -1.0, 1.0)
        self.vel = self.speed * a
        self.pos = np.clip(self.pos + self.vel, -1.0, 1.0).astype(np.float32)
        self.t += 1
        success, terminated = False, False
        if self.targets_visible:
            d = np.linalg.norm(self.target_xy - self.pos, axis=-1)  # (n,)
            hit = np.flatnonzero(d < self.radius)
            if hit.size:
                terminated = True
                success = bool(self.goal in hit.tolist())
        truncated = not terminated and self.t >= self.max_steps
        info = {"success": success, "oracle_goal": self.goal}
        return self._obs(), float(success), terminated, truncated, info

    def oracle_action(self) -> np.ndarray:
        """Privileged expert: wait while the cue/delay is on, then head for the goal at full speed."""
        if not self.targets_visible:
            return np.zeros(2, np.float32)
        d = (self.target_xy[self.goal] - self.pos) / self.speed
        n = float(np.abs(d).max())
        return (d / max(n, 1.0)).astype(np.float32)

    # ------------------------------------------------------------------ pixels
    def _px(self, xy: np.ndarray) -> tuple[int, int]:
        s = self.size
        col = int(round((xy[0] + 1.0) / 2.0 * (s - 1)))
        row = int(round((1.0 - (xy[1] + 1.0) / 2.0) * (s - 1)))
        return row, col

    def _square(self, img: np.ndarray, xy: np.ndarray, half: int, colour) -> None:
        r, c = self._px(xy)
        img[max(r - half, 0) : r + half + 1, max(c - half, 0) : c + half + 1] = colour

    def _frame(self, agent: bool) -> np.ndarray:
        s = self.size
        img = np.full((s, s, 3), 40, np.uint8)  # (S, S, 3)
        half = max(1, s // 16)
        if self.t < self.cue_steps:
            self._square(img, self.cue_xy, 2 * half, PALETTE[self.cue])
        elif not self.targets_visible:
            for xy, c in zip(self.distractor_xy, getattr(self, "distractor_col", ())):
                self._square(img, xy, half, PALETTE[c])
        if self.targets_visible:
            for i in range(self.n_targets):
                self._square(img, self.target_xy[i], half, PALETTE[self.order[i]])
        if agent:
            self._square(img, self.pos, max(1, half // 2), (255, 255, 255))
        return img

    def render(self) -> np.ndarray:
        """The frame with the agent drawn (for GIFs; the observation omits it unless ``agent_visible``)."""
        return self._frame(True)

    def _obs(self) -> dict:
        clock = np.array([self.t / self.max_steps], np.float32)
        prop = np.concatenate([self.pos, self.vel, clock]) if self.agent_visible else clock
        return {"rgb": self._frame(self.agent_visible), "proprio": prop.astype(np.float32), "instruction": self.instruction}
