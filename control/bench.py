"""``ostinato bench control``: does memory help where the task needs it?

For each task, three policies are trained by behaviour cloning on the same oracle demos with
the same budget (optimizer steps and a wall-clock cap), then evaluated closed-loop on the
test seeds ``4242424242 + i`` (``success_once``, receding-horizon execution; the cue tasks also report open-loop
execution on the same seeds, ``eval.extra_executions``):

- ``muvla``      memory tokens (cue task m=8, RememberColor3 m=16), TBPTT K=12 (the muVLA
  mechanism, CPU-sized backbone);
- ``memoryless`` the same network with m=0 (expected near chance, 1/3, on these tasks);
- ``lstm``       the same network with the memory slot holding a core LSTM (``model.mixer.name=lstm``: one state
  token and the LSTM's carried state instead of memory tokens).

Tasks: the pure-gymnasium cue task with colours at fixed places (always; ``--quick`` runs
only this one, with fewer steps), the cue task with colours shuffled every episode (full
run only: memory and colour matching must be learned together, see ``envs/cue.py``), and
MIKASA-Robo ``RememberColor3-v0`` with rgb 64x64 + joints observations (needs mani-skill,
mikasa-robo-suite and the CPU render set-up; 200 demos are recorded into the cache first if
missing). Also reported: env steps/s (random actions, one process) and training time.
Timings depend on the machine and its load.

``RememberColor3-v0 (two-phase)`` (full run only) trains the three policies by the procedure that first got the
memory policy above chance (docs/control.md): phase 1 on decision windows with the first-frame reconstruction
loss on the memory (``memory_recon``; the memoryless policy has no memory to reconstruct from, so it runs phase 1
without it), then phase 2, full behaviour cloning from phase 1's best weights, selected on 100 validation rollouts.
It records 8000 training demos and 100 held-out demos (seeds 1000000+) into the cache first if missing, and its
budget is each phase recipe's ``trainer.max_minutes`` per policy: hours on a CPU.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ostinato.core import benchkit as kit

POLICIES = (("muvla", "muvla"), ("memoryless", "memoryless"), ("lstm", "lstm"))
BUDGETS = {  # task -> (recipe suffix, overrides shared by the three policies)
    "cue_task": ("cue_task", ["eval.extra_executions=[open_loop]", "trainer.max_steps=800", "trainer.max_minutes=20", "trainer.eval_every_steps=200",
                              "eval.episodes=100"]),
    "cue_task_quick": ("cue_task", ["eval.extra_executions=[open_loop]", "trainer.max_steps=400", "trainer.max_minutes=10", "trainer.eval_every_steps=200",
                                    "eval.episodes=100", "eval.val_episodes=30"]),
    # measured: muVLA at chance up to ~3000 steps, 0.66 test success after 5813 (see README)
    "cue_task_shuffled": ("cue_task", ["eval.extra_executions=[open_loop]", "data.cue_shuffle=true", "trainer.max_steps=6000", "trainer.max_epochs=1000",
                                       "trainer.max_minutes=40", "trainer.eval_every_steps=1000", "eval.episodes=100"]),
    "RememberColor3-v0": ("remembercolor3", ["trainer.max_steps=1500", "trainer.max_minutes=40",
                                             "trainer.eval_every_steps=500", "eval.episodes=100"]),
}


TWO_PHASE = {  # policy -> (phase-1 recipe, phase-2 recipe, overrides for both)
    "muvla": ("muvla_remembercolor3_recon", "muvla_remembercolor3_recon_bc", []),
    "memoryless": ("memoryless_remembercolor3_recon", "memoryless_remembercolor3_recon_bc", []),
    "lstm": ("lstm_remembercolor3_recon", "lstm_remembercolor3_recon_bc", []),
}
TWO_PHASE_DEMOS, TWO_PHASE_VAL_SEED = 8000, 1_000_000


def env_steps_per_s(env: str, n: int = 200, **kw) -> float:
    from .envs import EnvConfig, make_env

    e = make_env(EnvConfig(env=env, **kw))
    e.reset(seed=0)
    t0 = time.time()
    for i in range(n):
        _, _, te, tr, _ = e.step(e.action_space.sample())
        if te or tr:
            e.reset(seed=i + 1)
    dt = time.time() - t0
    e.close()
    return round(n / dt, 1)


def _ensure_demos(env: str, episodes: int, folder: str = "", first_seed: int = 0) -> None:
    """Top up the cached demos of ``env`` (or ``folder`` beside them, e.g. held-out ones) to ``episodes``."""
    from .data.demos import collect, default_demo_dir
    from .envs import EnvConfig

    d = default_demo_dir(env).parent / folder if folder else default_demo_dir(env)
    have = sorted(d.glob("ep_*.npz"))
    if len(have) < episodes:  # top up: seeds after the last recorded one, files numbered after the last
        import numpy as np

        seed = int(np.load(have[-1])["seed"]) + 1 if have else first_seed  # collect numbers files in seed order
        collect(EnvConfig(env=env), episodes - len(have), d, seed=seed, first_index=len(have))


def run_two_phase(work: Path, extra: list[str] | None = None) -> list[dict]:
    """RememberColor3 by the two-phase procedure (module docstring): one row per policy, its phase-2 run
    with both phases' steps and training time, and phase 1's validation ``key_acc``."""
    env = "RememberColor3-v0"
    _ensure_demos(env, TWO_PHASE_DEMOS)
    _ensure_demos(env, 100, f"{env}_val", TWO_PHASE_VAL_SEED)
    task = f"{env} (two-phase)"
    speed = env_steps_per_s(env, 100, image_size=64)
    rows = []
    for short, (p1, p2, over) in TWO_PHASE.items():
        r1 = kit.train(f"control/{p1}", [*over, *(extra or [])], workdir=work / f"two_phase_{short}_p1")
        init = f"trainer.init_from={work / f'two_phase_{short}_p1' / 'best.pt'}"
        r2 = kit.train(f"control/{p2}", [*over, init, *(extra or [])], workdir=work / f"two_phase_{short}_p2",
                       name=f"{task} {short}", table="control", task=task, policy=short, env_steps_per_s=speed,
                       phase1_key_acc=r1["val"].get("key_acc", float("nan")))
        for k in ("steps", "train_time_s", "wall_s", "cpu_s"):
            r2[k] = r1[k] + r2[k]
        rows.append(r2)
    return rows


def run_task(task: str, work: Path | None = None, extra: list[str] | None = None) -> list[dict]:
    """One task's three policies (module docstring), one row each; ``work``: keep the runs there."""
    suffix, overrides = BUDGETS[task]
    env = "cue_task" if task.startswith("cue_task") else task
    if env != "cue_task":
        _ensure_demos(env, 200)
    name = "cue_task (shuffled)" if task == "cue_task_shuffled" else env
    speed = env_steps_per_s(env, 200 if env == "cue_task" else 100, image_size=32 if env == "cue_task" else 64)
    return [kit.train(f"control/{prefix}_{suffix}", [*overrides, *(extra or [])], name=f"{name} {short}",
                      table="control", workdir=work / f"{task}_{short}" if work else None, task=name, policy=short,
                      env_steps_per_s=speed)
            for short, prefix in POLICIES]


COLUMNS = [("task", "task"), ("policy", "policy"), ("success_once", "test.success_once", ".2f"),
           ("open-loop", "test.success_once_open_loop", ".2f"),
           ("final", "test.success", ".2f"), ("ep_len", "test.episode_len", ".1f"), ("train_s", "train_time_s", ".0f"),
           ("steps", "steps"), ("env steps/s", "env_steps_per_s", ".1f")]
NOTE = ("success_once on test seeds 4242424242+i (eval.episodes of them); best checkpoint chosen on validation seeds "
        "1000000+i; training seed trainer.seed; CPU timings depend on machine load")


def run(quick: bool = False, out: str | Path | None = None) -> list[dict]:
    """Every task's rows (module docstring); ``out``: the JSON document."""
    import tempfile

    tasks = ["cue_task_quick"] if quick else ["cue_task", "cue_task_shuffled", "RememberColor3-v0"]
    rows = []
    for task in tasks:
        rows += run_task(task)
    if not quick:
        with tempfile.TemporaryDirectory(prefix="ostinato_bench_control_") as tmp:  # phase 2 reads phase 1's best.pt
            rows += run_two_phase(Path(tmp))
    kit.print_table(rows, COLUMNS)
    kit.write_json(out, "control", quick, rows, chance=1 / 3, note=NOTE)
    return rows


def stream_latency(model, cfg, steps: int = 20) -> float:
    """Seconds per streamed step at batch 1: ``act`` on one env's observations, the state carried (the policy's
    execution mode, the memory slot's ``step``), on the run's env (cue task: no simulator)."""
    import torch

    from ostinato.core.measure import model_device

    from .data.seeds import TEST_SEED_BASE
    from .envs import EnvConfig, make_env
    from .evaluate import _stack
    from .models.encoders import obs_to_batch

    env = make_env(EnvConfig(**{k: getattr(cfg.data, k) for k in EnvConfig.__dataclass_fields__}))
    obs = env.reset(seed=TEST_SEED_BASE)[0]
    model.eval()
    device = model_device(model)
    batch = obs_to_batch(_stack([obs]), model.cfg.vocab, model.cfg.max_tokens, device)
    state, first = model.init_state(1, device), torch.ones(1, dtype=torch.bool, device=device)
    with torch.no_grad():
        for _ in range(2):  # warm-up
            _, state = model.act(batch, state, first)
        t0 = time.perf_counter()
        for _ in range(steps):
            _, state = model.act(batch, state, torch.zeros_like(first))
        dt = (time.perf_counter() - t0) / steps
    env.close()
    return dt


def mixer_task() -> dict[str, Any]:
    """muVLA's memory slot on the cue task (``success_once`` on the test seeds), for ``ostinato bench mixers``.

    The recipe's default is muVLA's memory tokens (the slot left empty); every causal core mixer can hold the
    policy's memory instead (one state token, the mixer's carried state; ``control/models/slot_memory.py``), with
    that mixer's default settings. ``stream`` times the policy's own execution mode, one ``act`` per step.
    """
    from ostinato.core.mixer import is_causal, mixer_entries

    return {
        "task": "control/cue_task",
        "recipe": "control/muvla_cue_task",
        "quick_recipe": "control/test_muvla_cue_task",
        "slot": "model.mixer",
        "default": "memory tokens",
        "mixers": sorted(n for n, e in mixer_entries().items() if is_causal(e, e.config())),
        "overrides": ["trainer.test_at_end=true"],
        "metrics": {"success_once": "test.success_once", "success": "test.success"},
        "stream": stream_latency,
    }
