"""The episodic loader (muVLA's): B streams of whole episodes, cut into consecutive windows.

Each stream plays episodes back to back; item ``i`` is window ``i`` of every stream, so a
batch is ``(B, W, ...)`` and consecutive items continue the same episodes. ``is_first``
marks the first step of each episode, which is where the policy resets its memory (per
sample); between items the policy carries its memory (detached), exactly like muVLA's
trainer. The episode order of each stream is drawn from ``index_rng(seed, epoch, 0)`` in
``set_epoch``, so an epoch's windows are a function of (seed, epoch). A stream that runs out
before the longest one wraps around to its first episode (``is_first`` set there too). The
number of windows is epoch 0's in every epoch (with episodes of unequal length a later epoch's
longest stream can be longer or shorter; it wraps or is cut there).

``align=True`` starts every episode at a window boundary: an episode's last step is repeated
to fill its last window, and those filler steps have ``chunk_mask`` all False (no loss), so
a whole short episode (cue and decision) lies inside one TBPTT window of W = K steps. This
trades compute (the filler steps) for gradient paths across the episode; muVLA's own loader
does not align.

``proprio_noise`` (off by default; not in muVLA) adds fresh Gaussian noise to every training
step's proprioception. Measured on RememberColor3 with 200 demos, the memory policy memorised
the demos instead of matching colours: the initial joint offsets (std 0.02 rad) identify an
episode, the memory carries them to the reveal, and the decision is looked up (teacher-forced
first-move accuracy 0.95-0.99 on training demos, chance on held-out ones). Noise of that
size hides the key.

``keyframe_weight`` (1 = off; not in muVLA) weights the loss of the chunk entries whose target
step is a keyframe, a step where the expert's action jumps (largest absolute change from the
previous step's action > ``keyframe_change``), after "keyframe-focused" imitation (Wen et al.,
NeurIPS 2021), which counters copycat shortcuts. On RememberColor3 the keyframe is the first
move at the reveal, the one step that needs the remembered colour; the other steps can be
predicted from the arm's own motion. The item then also holds ``weight (B, W, C)``.
``keyframe_mode`` picks which chunk entries get the weight: ``"target"`` (default) those whose
target step is a keyframe, so the chunks of the C-1 steps before it too, although those
steps cannot see what the keyframe's action depends on (on RememberColor3 the cubes appear
at the keyframe), or ``"step"`` the whole chunk predicted at a keyframe step, every entry of
which can be inferred from that step's inputs and memory.

``keyframe_only`` (off by default; not in muVLA) trains on the keyframes alone: every other
chunk entry gets weight 0, and an episode's windows after the one that holds its last keyframe
are dropped (episodes without a keyframe are dropped whole), so every kept window still
starts at an episode start or continues the window before it and the carried memory stays
exact. It needs ``align=True``. Meant as a first training phase (then full behaviour cloning
from its weights, ``trainer.init_from``): probes on RememberColor3 crossed the decision's
chance plateau only with about 64 undiluted decisions per batch (control/README.md).

``keyframe_horizon`` and ``keyframe_dims`` (off by default; not in muVLA) narrow the keyframe
weight to the first ``keyframe_horizon`` entries of a keyframe step's chunk (0 = all C) and to
the action dimensions ``keyframe_dims`` (empty = all). The other entries of that chunk keep
weight 1, or 0 with ``keyframe_only``. They need ``keyframe_mode="step"``. With dims the item's
``weight`` is ``(B, W, C, A)``. Why: an L1 loss keeps a full-size gradient on entries that are
already right (the sign of the error), so in a chunk of 8 steps x 4 dimensions the one that
needs the colour (the first move's x and y on RememberColor3) is a small part of the gradient;
the probes that crossed the plateau trained on the first move's position entries alone.

``keyframe_steps`` (off by default; not in muVLA; needs ``keyframe_only`` and ``window`` equal
to it) shortens every episode to that many steps, drawn afresh each epoch: its first step, its
last keyframe, and ``keyframe_steps - 2`` distinct steps between them, in order. The memory then
crosses fewer steps from the first step to the decision, and a step costs fewer frames, so a
batch holds more decisions for the same compute (the probes crossed the plateau with many
decisions per batch and fewer memory hops). On RememberColor3 the cue is in view at steps 0-3
and the arm is still until the reveal, so the skipped steps are repeats of the kept ones.

Item (tensors): ``rgb (B, W, S, S, c) uint8`` (when the demos have images), ``proprio (B, W,
P)``, ``instr (B, W, L) long``, ``action (B, W, C, A)`` (the next C actions of the same
episode), ``chunk_mask (B, W, C)`` (False past the episode end), ``is_first (B, W)``,
``is_last (B, W)``. The DataBundle uses ``batch_size=1`` and :func:`unwrap` as collate.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ostinato.core.data import DataBundle, EpochMixin, index_rng, locate
from ostinato.core.errors import ConfigError, DataError
from ostinato.core.registry import register_dataset

from ..envs import EnvConfig
from .seeds import RANGES, SEED_END, TEST_SEED_BASE, VAL_SEED_BASE, check_disjoint, check_seeds  # noqa: F401 (re-exported)
from .tokens import tokenize


def action_jumps(a, change: float):
    """Actions ``(..., T, A)`` (numpy or torch) -> ``(..., T-1)`` bool: step t >= 1 is a keyframe,
    some action entry changed by more than ``change`` from step t-1."""
    return (abs(a[..., 1:, :] - a[..., :-1, :]) > change).any(-1)


def unwrap(items: list) -> dict:
    """Collate for a batch of one pre-batched window."""
    return items[0]


class EpisodicWindows(EpochMixin, torch.utils.data.Dataset):
    def __init__(self, episodes: list[dict], streams: int = 8, window: int = 8, chunk: int = 8, seed: int = 0,
                 vocab: int = 512, max_tokens: int = 16, align: bool = False, proprio_noise: float = 0.0,
                 keyframe_weight: float = 1.0, keyframe_change: float = 0.5, keyframe_mode: str = "target",
                 keyframe_only: bool = False, keyframe_horizon: int = 0, keyframe_dims: tuple = (),
                 keyframe_steps: int = 0):
        if not episodes:
            raise ValueError("EpisodicWindows: expected at least one episode")
        if keyframe_mode not in ("target", "step"):
            raise ConfigError(f"keyframe_mode={keyframe_mode!r}: expected 'target' or 'step'")
        if (keyframe_horizon or keyframe_dims) and keyframe_mode != "step":
            raise ConfigError("keyframe_horizon / keyframe_dims need keyframe_mode='step' (they select entries of a "
                              "keyframe step's chunk)")
        if not 0 <= keyframe_horizon <= chunk:
            raise ConfigError(f"keyframe_horizon={keyframe_horizon}: expected 0 (the whole chunk) to chunk={chunk}")
        A = np.asarray(episodes[0]["action"]).shape[-1]
        if any(not 0 <= int(d) < A for d in keyframe_dims):
            raise ConfigError(f"keyframe_dims={list(keyframe_dims)}: expected action dimensions in 0..{A - 1}")
        if keyframe_only and not align:
            raise ConfigError("keyframe_only=True needs align=True (windows must start at episode starts)")
        if keyframe_steps and (not keyframe_only or keyframe_steps < 2 or keyframe_steps != window):
            raise ConfigError(f"keyframe_steps={keyframe_steps}: expected 0 (off), or >= 2 with keyframe_only=True "
                              f"and window={window} equal to it (one window per shortened episode)")
        self.eps, self.W, self.C, self.seed = episodes, window, chunk, seed
        self.has_rgb, self.align, self.proprio_noise = "rgb" in episodes[0], align, proprio_noise
        self.tokens = [tokenize(str(e["instruction"]), vocab, max_tokens) for e in episodes]
        self.keyframe_weight, self.keyframe_change, self.keyframe_mode = keyframe_weight, keyframe_change, keyframe_mode
        self.keyframe_only, self.keyframe_steps = keyframe_only, keyframe_steps
        # which entries of a keyframe step's chunk (C,) or (C, A) take the keyframe weight
        sel = np.zeros((chunk, A), bool)
        sel[: keyframe_horizon or chunk, list(keyframe_dims) or slice(None)] = True
        self.key_sel = sel if keyframe_dims else sel[:, 0]
        self.weighted = keyframe_weight != 1.0 or keyframe_only
        self.key = []  # per episode (T,) bool: the action jumps at this step (with a keyframe weight or keyframe_only)
        for e in episodes if self.weighted else []:
            jump = np.zeros(len(e["action"]), bool)
            jump[1:] = action_jumps(np.asarray(e["action"], np.float32), keyframe_change)
            self.key.append(jump)
        if keyframe_only and not any(k.any() for k in self.key):
            raise DataError(f"keyframe_only=True: no episode has a keyframe (an action change > {keyframe_change})")
        # the episodes the streams play (keyframe_only drops those without a keyframe)
        self.use = np.array([i for i, k in enumerate(self.key) if k.any()] if keyframe_only else range(len(episodes)))
        self.B = min(streams, len(self.use))
        # steps each episode plays: all, or (keyframe_only) up to its last keyframe
        self.span = [int(np.flatnonzero(self.key[e])[-1]) + 1 if keyframe_only and self.key[e].any() else
                     len(self.eps[e]["action"]) for e in range(len(episodes))]
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        order = self.use[index_rng(self.seed, epoch, 0).permutation(len(self.use))]
        self.streams = [order[s :: self.B] for s in range(self.B)]
        # per stream: (episode, step) of every timeline position
        self.timeline = []
        rng = index_rng(self.seed, epoch, 2**32 - 1)  # not an item index (those draw proprio noise)
        for eps in self.streams:
            # the steps each episode plays, in order: all up to its span, or (keyframe_steps) a random subsequence
            plays = [self._subsequence(e, rng) if self.keyframe_steps else np.arange(self.span[e]) for e in eps]
            slots = [-(-len(p) // self.W) * self.W if self.align else len(p) for p in plays]  # to a window edge
            e_idx = np.concatenate([np.full(n, e) for e, n in zip(eps, slots)])
            # positions past an episode's played steps are filler (step T: no loss)
            s_idx = np.concatenate([np.concatenate([p, np.full(n - len(p), len(self.eps[e]["action"]))])
                                    for e, p, n in zip(eps, plays, slots)])
            self.timeline.append((e_idx, s_idx))
        if epoch == 0:  # the length is fixed at epoch 0's (the trainer plans with it; __init__ sets epoch 0)
            self.n = int(np.ceil(max(len(t[0]) for t in self.timeline) / self.W))

    def _subsequence(self, e: int, rng: np.random.Generator) -> np.ndarray:
        """keyframe_steps: step 0, ``keyframe_steps - 2`` distinct steps drawn between, and the last keyframe."""
        last = self.span[e] - 1
        between = np.arange(1, last)
        k = min(self.keyframe_steps - 2, len(between))
        mid = np.sort(rng.choice(between, k, replace=False)) if k > 0 else between[:0]
        return np.concatenate([[0], mid, [last]]) if last > 0 else np.array([0])

    def __len__(self) -> int:
        return self.n

    def _step(self, e: int, t: int) -> dict:
        ep = self.eps[e]
        T = len(ep["action"])
        idx = np.arange(t, t + self.C)
        valid = (idx < T) & (t < T)  # filler steps (t >= T) carry no loss
        src = np.minimum(idx, T - 1)  # chunk entries past the end repeat the last step
        act = ep["action"][src]  # (C, A)
        tt = min(t, T - 1)
        out = {"proprio": ep["proprio"][tt], "instr": self.tokens[e], "action": act, "chunk_mask": valid,
               "is_first": t == 0, "is_last": t == T - 1}
        if self.weighted:
            hit = self.key[e][src] if self.keyframe_mode == "target" else self.key_sel & self.key[e][tt]
            other = 0.0 if self.keyframe_only else 1.0
            out["weight"] = np.where(hit, self.keyframe_weight, other).astype(np.float32)
        if self.has_rgb:
            out["rgb"] = ep["rgb"][tt]
        return out

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.n:
            raise IndexError(i)
        rows = []
        for e_idx, s_idx in self.timeline:
            pos = (np.arange(i * self.W, (i + 1) * self.W)) % len(e_idx)
            rows.append([self._step(int(e_idx[p]), int(s_idx[p])) for p in pos])
        keys = rows[0][0].keys()
        out = {}
        for k in keys:
            arr = np.stack([np.stack([np.asarray(s[k]) for s in r]) for r in rows])  # (B, W, ...)
            out[k] = torch.from_numpy(arr)
        out["proprio"] = out["proprio"].float()
        if self.proprio_noise > 0:  # fresh Gaussian noise per step, a function of (seed, epoch, item)
            noise = index_rng(self.seed, self.epoch, 1 + i).standard_normal(out["proprio"].shape)
            out["proprio"] = out["proprio"] + self.proprio_noise * torch.from_numpy(noise).float()
        out["action"] = out["action"].float()
        out["instr"] = out["instr"].long()
        return out


# ----------------------------------------------------------------------------- registered dataset
def _seeds(eps: list[dict]) -> list[int]:
    return [int(e["seed"]) for e in eps if "seed" in e]


class RolloutSplit(torch.utils.data.Dataset):
    """A val/test split of a control task is a list of env seeds (rolled out by ``evaluate``)."""

    def __init__(self, seed_base: int, n: int = 100):
        self.seed_base, self.n = seed_base, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return self.seed_base + i


@dataclass
class ControlDemosConfig(EnvConfig):
    demos: str = ""  # folder of .npz episodes (data-root relative or absolute), a ManiSkill .h5, or "" (see below)
    episodes: int = 200  # demos used (0 = all); with demos="" this many oracle demos are generated in memory
    streams: int = 8  # B: parallel episode streams per batch
    window: int = 8  # W: steps per training window (the memory is carried between windows)
    chunk: int = 8  # action-chunk length C (sets the model's chunk)
    vocab: int = 512  # instruction word-hash buckets
    max_tokens: int = 16  # instruction tokens per step
    seed: int = 0  # stream order (and in-memory demo seeds)
    align: bool = False  # start every episode at a window edge (see EpisodicWindows)
    proprio_noise: float = 0.0  # std of Gaussian noise added to the training proprio (every step; 0 = none)
    keyframe_weight: float = 1.0  # loss weight of keyframe targets (action jumps; see EpisodicWindows); 1 = off
    keyframe_change: float = 0.5  # largest absolute action change that makes a step a keyframe
    keyframe_mode: Literal["target", "step"] = "target"  # weight entries aimed at a keyframe, or a keyframe step's chunk
    keyframe_only: bool = False  # train on keyframe entries alone (weight 0 elsewhere; needs align; see EpisodicWindows)
    keyframe_horizon: int = 0  # keyframe weight on the first N entries of a keyframe step's chunk only (0 = all; mode step)
    keyframe_dims: list[int] = field(default_factory=list)  # ... and on these action dimensions only (empty = all)
    keyframe_steps: int = 0  # keyframe_only: play step 0, this many minus 2 random steps and the keyframe (0 = all)
    val_demos: str = ""  # held-out demo folder: teacher-forced validation metrics (see control.evaluate)
    val_demo_episodes: int = 100  # held-out demos used (0 = all)


def load_demos(cfg: ControlDemosConfig, data_root=None) -> list[dict]:
    from .demos import load_episodes, oracle_episodes, read_maniskill_h5

    if not cfg.demos:
        if cfg.env != "cue_task":
            raise ConfigError(f"data.demos is empty: record demos first (`ostinato control collect {cfg.env} "
                              f"--episodes {cfg.episodes}`) and set data.demos to their folder")
        eps = oracle_episodes(cfg, cfg.episodes, seed=cfg.seed)
        check_seeds(_seeds(eps), "train", f"data.seed={cfg.seed} (the in-memory demos use seeds data.seed+i)")
        return eps
    p = locate(cfg.demos, data_root, hint=f"record them with `ostinato control collect {cfg.env}`")
    eps = read_maniskill_h5(p) if p.suffix == ".h5" else load_episodes(p)
    if cfg.episodes and len(eps) < cfg.episodes:
        raise DataError(f"{p}: {len(eps)} episodes, data.episodes={cfg.episodes} requested")
    eps = eps[: cfg.episodes or None]
    check_seeds(_seeds(eps), "train", f"data.demos={cfg.demos}")
    return eps


@register_dataset("control_demos", config=ControlDemosConfig)
def control_demos(cfg: ControlDemosConfig, data_root: Path | None = None) -> DataBundle:
    """Oracle demonstrations (.npz episodes / ManiSkill .h5 / in-memory cue task) as episodic TBPTT windows."""
    if cfg.keyframe_weight <= 0 or cfg.keyframe_change < 0:
        raise ConfigError(f"data.keyframe_weight={cfg.keyframe_weight}, data.keyframe_change={cfg.keyframe_change}: "
                          f"expected a weight > 0 (1 = off) and a change >= 0")
    eps = load_demos(cfg, data_root)
    ds = EpisodicWindows(eps, cfg.streams, cfg.window, cfg.chunk, cfg.seed, cfg.vocab, cfg.max_tokens, cfg.align,
                         cfg.proprio_noise, cfg.keyframe_weight, cfg.keyframe_change, cfg.keyframe_mode,
                         cfg.keyframe_only, cfg.keyframe_horizon, tuple(cfg.keyframe_dims), cfg.keyframe_steps)
    rgb = eps[0].get("rgb")
    mk = {"image_channels": int(rgb.shape[-1]) if rgb is not None else 0, "proprio_dim": int(eps[0]["proprio"].shape[-1]),
          "action_dim": int(eps[0]["action"].shape[-1]), "chunk": cfg.chunk, "vocab": cfg.vocab, "max_tokens": cfg.max_tokens}
    if rgb is not None and rgb.shape[1] != cfg.image_size:
        raise DataError(f"demos are {rgb.shape[1]}x{rgb.shape[2]} images but data.image_size={cfg.image_size}")
    env_cfg = EnvConfig(**{k: getattr(cfg, k) for k in EnvConfig.__dataclass_fields__})
    meta = {"env": env_cfg, "n_demos": len(eps), "demo_steps": int(sum(len(e["action"]) for e in eps))}
    if cfg.val_demos:
        meta["val_windows"] = val_demo_windows(cfg, data_root, mk, _seeds(eps))
    return DataBundle(
        train=ds, val=RolloutSplit(VAL_SEED_BASE), test=RolloutSplit(TEST_SEED_BASE), batch_size=1, collate=unwrap,
        shuffle=False, model_kwargs=mk, meta=meta,
        inference={"env": asdict(env_cfg)},  # rollouts need only the env settings
    )


def val_demo_windows(cfg: ControlDemosConfig, data_root, mk: dict, train_seeds=()) -> EpisodicWindows:
    """The held-out demos of ``data.val_demos``: one stream per episode, one window per whole
    (aligned) episode, a single pass. ``mk`` (the model_kwargs of the training demos) gives
    the action, proprio and image sizes they must match."""
    from .demos import load_episodes

    vp = locate(cfg.val_demos, data_root, hint=f"record held-out demos with `ostinato control collect {cfg.env} "
                                               f"--seed 1000000 --out DIR`")
    val_eps = load_episodes(vp, cfg.val_demo_episodes)
    check_seeds(_seeds(val_eps), "val", f"data.val_demos={cfg.val_demos}")
    check_disjoint(train_seeds, _seeds(val_eps), f"data.val_demos={cfg.val_demos}")
    v = val_eps[0]
    image = (cfg.image_size, cfg.image_size, mk["image_channels"]) if mk["image_channels"] else None
    if (v["action"].shape[-1], v["proprio"].shape[-1], v["rgb"].shape[1:] if "rgb" in v else None) != (
            mk["action_dim"], mk["proprio_dim"], image):
        raise DataError(f"data.val_demos={vp}: its episodes do not match the training demos (expected the "
                        f"same action, proprio and image sizes)")
    longest = max(len(e["action"]) for e in val_eps)
    return EpisodicWindows(val_eps, len(val_eps), longest, cfg.chunk, 0, cfg.vocab, cfg.max_tokens, align=True,
                           keyframe_change=cfg.keyframe_change)
