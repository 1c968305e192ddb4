"""Closed-loop evaluation of a control policy: roll out episodes, count successes.

Protocol (muVLA / MIKASA-Robo): N episodes with seeds ``4242424242 + i`` (test split;
validation uses ``1_000_000 + i``), metric ``success_once`` = the fraction of episodes in
which the task's success flag was true at least once (MIKASA's convention; muVLA reports
it). Also reported: ``success`` = success at the last step, ``episode_len`` (mean steps),
``wall_time_s`` and ``env_steps_per_s`` (env steps per second, policy included).

Execution: ``receding`` (default) re-plans every step and executes the first action of the
chunk, so the memory is updated every step; ``open_loop`` executes the whole chunk of C
actions before re-planning, so the memory is updated only every C steps (stale for C-1 of
C steps, as the muVLA paper warns); ``ensemble`` re-plans every step like ``receding`` and executes ACT's temporal
ensemble (Zhao et al. 2023, not muVLA's execution): the average of the actions that the last C chunks planned for
this step, weighted ``exp(-ensemble_k * i)`` with i = 0 for the oldest plan. ``save_dir=DIR`` writes the first ``gif_episodes``
rollouts as GIFs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ostinato.core.errors import ConfigError
from ostinato.core.measure import model_device
from ostinato.core.progress import track

from .data.seeds import SEED_END, TEST_SEED_BASE, VAL_SEED_BASE
from .envs import EnvConfig, make_env
from .models.encoders import obs_to_batch


EXECUTIONS = ("receding", "open_loop", "ensemble")


@dataclass
class ControlEvalConfig:
    episodes: int = 100  # test rollouts (seeds 4242424242 + i)
    val_episodes: int = 10  # validation rollouts during training (seeds 1_000_000 + i)
    execution: Literal["receding", "open_loop", "ensemble"] = "receding"
    ensemble_k: float = 0.01  # temporal-ensemble weight decay (ACT's m), execution=ensemble only
    max_steps: int = 0  # 0: the env's own time limit
    parallel: int = 0  # envs stepped in lockstep in this process; 0: 16 for cue_task, 1 for simulators
    save_dir: str = ""  # folder for rollout GIFs (filled by `ostinato eval --save-dir DIR`)
    gif_episodes: int = 2
    # more execution modes for the test rollouts (the same seeds): their metrics come as success_once_<mode>, ...
    # e.g. [open_loop] reports muVLA's open-loop execution beside the receding-horizon one
    extra_executions: list[str] = field(default_factory=list)

    def validate(self) -> None:
        bad = [m for m in [self.execution, *self.extra_executions] if m not in EXECUTIONS]
        if bad:
            raise ConfigError(f"eval.execution / eval.extra_executions: {bad[0]!r}: expected one of {', '.join(EXECUTIONS)}")
        if not 0 <= self.episodes <= SEED_END - TEST_SEED_BASE or not 0 <= self.val_episodes <= TEST_SEED_BASE - VAL_SEED_BASE:
            raise ConfigError(f"eval.episodes={self.episodes}, eval.val_episodes={self.val_episodes}: the test seeds "
                              f"{TEST_SEED_BASE}+i and validation seeds {VAL_SEED_BASE}+i must stay in their ranges")


def save_gif(frames: list[np.ndarray], path: Path, fps: int = 10) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    imgs = [Image.fromarray(np.asarray(f, np.uint8)) for f in frames]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0, optimize=True)


def _stack(obs_list: list[dict]) -> dict:
    out = {k: np.stack([o[k] for o in obs_list]) for k in obs_list[0] if k != "instruction"}
    out["instruction"] = [o["instruction"] for o in obs_list]
    return out


@torch.no_grad()
def rollout(model, env_cfg: EnvConfig, seeds: list[int], execution: str = "receding", max_steps: int = 0,
            parallel: int = 0, gif_dir: str = "", gif_episodes: int = 2, envs: list | None = None,
            ensemble_k: float = 0.01) -> dict[str, float]:
    """Run one episode per seed; returns the metrics of the module docstring."""
    if execution not in EXECUTIONS:
        raise ConfigError(f"eval.execution={execution!r}: expected 'receding', 'open_loop' or 'ensemble'")
    model.eval()
    device = model_device(model)
    threads = torch.get_num_threads()
    if env_cfg.env != "cue_task" and device.type == "cpu":
        # torch's OpenMP workers and lavapipe's render threads fight for the cores: measured here,
        # a policy step took 3.4 s with 2 torch threads and 0.08 s with 1 while ManiSkill rendered
        torch.set_num_threads(1)
    try:
        return _rollout(model, env_cfg, seeds, execution, max_steps, parallel, gif_dir, gif_episodes, envs, device,
                        ensemble_k)
    finally:
        torch.set_num_threads(threads)


def _rollout(model, env_cfg, seeds, execution, max_steps, parallel, gif_dir, gif_episodes, envs, device, ensemble_k):
    cfg = model.cfg
    P = parallel or (16 if env_cfg.env == "cue_task" else 1)
    own = envs is None
    envs = envs or [make_env(env_cfg) for _ in range(min(P, len(seeds)))]
    limit = max_steps or getattr(envs[0], "spec_max_steps", 0) or getattr(envs[0], "max_steps", 0) or 200
    succ_once, succ_end, lengths, frames_out = [], [], [], {}
    t0, n_steps = time.time(), 0
    groups = range(0, len(seeds), len(envs))  # progress under `ostinato eval`, in episodes
    for start in track(groups, total=len(seeds), unit="episode", count=lambda s: min(len(envs), len(seeds) - s)):
        group = seeds[start : start + len(envs)]
        E = len(group)
        obs = [envs[j].reset(seed=int(s))[0] for j, s in enumerate(group)]
        active = np.ones(E, bool)
        once, last = np.zeros(E, bool), np.zeros(E, bool)
        length = np.zeros(E, int)
        state = model.init_state(E, device)
        first = torch.ones(E, dtype=torch.bool, device=device)
        chunk, k, plans = None, 0, []
        frames = {j: [envs[j].render()] for j in range(E) if start + j < gif_episodes and gif_dir}
        for t in range(limit):
            if execution != "open_loop" or chunk is None or k >= chunk.shape[1]:
                batch = obs_to_batch(_stack(obs), cfg.vocab, cfg.max_tokens, device)
                chunk, state = model.act(batch, state, first)
                chunk, k = chunk.float().cpu().numpy(), 0  # (E, C, A)
                first = torch.zeros_like(first)
            action = chunk[:, k]  # (E, A)
            if execution == "ensemble":  # plans made at steps t-n+1..t (oldest first); plan i's entry for step t
                plans = [*plans, chunk][-chunk.shape[1] :]
                n = len(plans)
                w = np.exp(-ensemble_k * np.arange(n))[:, None, None]  # (n, 1, 1)
                action = (w * np.stack([p[:, n - 1 - i] for i, p in enumerate(plans)])).sum(0) / w.sum()
            for j in np.flatnonzero(active):
                o, _, te, tr, info = envs[j].step(action[j])
                obs[j] = o
                length[j] += 1
                n_steps += 1
                s = bool(info.get("success", False))
                once[j] |= s
                last[j] = s
                if j in frames:
                    frames[j].append(envs[j].render())
                if te or tr:
                    active[j] = False
            k += 1
            if not active.any():
                break
        succ_once += once.tolist()
        succ_end += last.tolist()
        lengths += length.tolist()
        frames_out.update({start + j: f for j, f in frames.items()})
    wall = time.time() - t0
    if own:
        for e in envs:
            e.close()
    for i, fr in frames_out.items():
        tag = "success" if succ_once[i] else "fail"
        save_gif(fr, Path(gif_dir) / f"{env_cfg.env}_seed{seeds[i]}_{tag}.gif")
    return {"success_once": float(np.mean(succ_once)), "success": float(np.mean(succ_end)),
            "episode_len": float(np.mean(lengths)), "wall_time_s": round(wall, 2),
            "env_steps_per_s": round(n_steps / max(wall, 1e-9), 1), "episodes": float(len(seeds))}


@torch.no_grad()
def demo_metrics(model, windows, group: int = 64) -> dict[str, float]:
    """Teacher-forced metrics on held-out demos (``data.val_demos``; no simulator needed).

    ``windows`` holds one whole episode per stream in a single window (see ``control_demos``).
    The policy runs over each episode from its learned initial memory, fed the recorded
    observations. Returns ``demo_l1`` (the training loss, unweighted), ``key_l1`` (L1 of the
    first chunk entry at keyframes, the steps where the expert's action jumps by more than
    ``data.keyframe_change``) and ``key_acc`` (the fraction of keyframes where the predicted
    jump ``pred - a[t-1]`` points the expert's way, cosine > 0.9). On RememberColor3 the one
    keyframe is the first move after the reveal, the step that needs the remembered colour.
    """
    from .data.episodic import action_jumps
    from .models.encoders import l1_chunk_loss

    model.eval()
    device = model_device(model)
    item = windows[0]  # (N, W, ...) every held-out episode
    N = item["is_first"].shape[0]
    l1_sum = l1_n = 0.0
    key_err, key_hit = [], []
    for s in range(0, N, group):
        b = {k: v[s : s + group].to(device) for k, v in item.items()}
        pred, _ = model(b, model.init_state(b["is_first"].shape[0], device))  # (B, W, C, A)
        pred = pred.float()
        m = b["chunk_mask"]
        n = float(m.sum())
        l1_sum += float(l1_chunk_loss(pred, b["action"], m)) * n
        l1_n += n
        a = b["action"][:, :, 0]  # (B, W, A) the action taken at each step
        key = action_jumps(a, windows.keyframe_change) & m[:, 1:, 0]  # (B, W-1): step t>=1 is a keyframe
        a_prev, a_t, p_t = a[:, :-1], a[:, 1:], pred[:, 1:, 0]  # (B, W-1, A)
        key_err.append((p_t - a_t).abs().mean(-1)[key])
        cos = torch.nn.functional.cosine_similarity(p_t - a_prev, a_t - a_prev, dim=-1)
        key_hit.append((cos > 0.9)[key].float())
    out = {"demo_l1": l1_sum / max(l1_n, 1.0)}
    err, hit = torch.cat(key_err), torch.cat(key_hit)
    if len(err):
        out.update(key_l1=float(err.mean()), key_acc=float(hit.mean()), keyframes=float(len(err)))
    return out


def _val_windows(cfg, model_kwargs: dict):
    """The held-out demos of ``data.val_demos`` (found under $OSTINATO_DATA, the cache or as a path)."""
    from .data.episodic import val_demo_windows

    return val_demo_windows(cfg.data, None, model_kwargs)


def evaluate(model, data, split: str, cfg) -> dict[str, float]:
    """Domain evaluator: rollouts on the val (seeds 1_000_000+i) or test (4242424242+i) seeds.

    With ``data.val_demos`` the val split also reports :func:`demo_metrics`, and
    ``eval.val_episodes=0`` makes validation teacher-forced only (no simulator: a machine
    without ManiSkill can train and select checkpoints on ``demo_l1`` or ``key_acc``).
    """
    ev: ControlEvalConfig = cfg.eval  # the run's typed eval section
    n = ev.val_episodes if split == "val" else ev.episodes
    base = VAL_SEED_BASE if split == "val" else TEST_SEED_BASE
    env_cfg = EnvConfig(**data.inference["env"])  # from the checkpoint: `ostinato eval` builds no data
    gifs = ev.save_dir
    out: dict[str, float] = {}
    windows = data.meta.get("val_windows")
    if split == "val" and windows is None and getattr(cfg.data, "val_demos", ""):
        windows = _val_windows(cfg, data.model_kwargs)  # eval of a saved run: read the held-out demos now
    if split == "val" and windows is not None:
        out.update(demo_metrics(model, windows))
    if n > 0 or not out:
        seeds = [base + i for i in range(n)]
        out.update(rollout(model, env_cfg, seeds, ev.execution, ev.max_steps, ev.parallel,
                           gifs, ev.gif_episodes if gifs else 0, ensemble_k=ev.ensemble_k))
        for mode in (ev.extra_executions if split == "test" and n > 0 else []):
            r = rollout(model, env_cfg, seeds, mode, ev.max_steps, ev.parallel, ensemble_k=ev.ensemble_k)
            out.update({f"{k}_{mode}": r[k] for k in ("success_once", "success", "episode_len")})
    return out
