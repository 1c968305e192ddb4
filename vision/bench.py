"""``ostinato bench vision``: equal-budget Moving MNIST comparison and ConvS5 generation speed.

1. **Equal training budget.** PFGNet-S (``vision/pfgnet_mmnist_s``) and ConvLSTM
   (``vision/convlstm_mmnist``, OpenSTL's 4 x 128 configuration) are trained with the shared
   trainer on Moving MNIST with the same compute budget on the same device. On CPU the budget
   is **process CPU time** (``time.process_time``, all threads), so that other jobs on a shared
   machine do not shift it; on CUDA it is wall-clock time. Each run first times a training step
   (after a warm-up) and sets ``max_steps = budget / time per step``, so that its LR schedule
   completes within the budget. Both are then scored on the same fixed test sequences (first
   ``test_size`` of the generated test set: digits never seen in training) with OpenSTL's
   metrics. Reported: MSE, MAE (per-frame pixel sums), SSIM, PSNR, parameters, MACs and FLOPs per
   10 -> 10 sequence (torch FlopCounterMode; MACs = OpenSTL's "FLOPs" column), training
   sequences per second and inference sequences per second (OpenSTL's "FPS"), both per second
   of the same clock (CPU time on CPU).
2. **ConvS5 step mode.** Generating ``n`` frames after ``k`` context frames in step mode (state
   carried, one frame per step) against re-running the parallel (scan) model on every prefix,
   which is what a model without a recurrent mode must do. Outputs are checked to agree.

For reference, the same test sequences are also scored for two predictors that learn nothing
(all-black frames; the last input frame repeated).

Default: 10-minute budgets, batch 16, 200 test sequences, ConvS5 with d_model 128 (about 27
CPU-minutes in all; 45 minutes of wall-clock on a shared 2-core machine).
``--quick``: 1-minute budgets, batch 4, 32 test sequences, a small ConvS5 (about 4 CPU-minutes).
Other devices:
``python -m ostinato.vision.bench --device cuda --minutes 3`` (the CLI's ``ostinato bench
vision`` runs on CPU). ``--protocol openstl``: score with OpenSTL's conventions (SSIM
data_range 2, test = ``mnist_test_seq.npy``, its first ``--test-size`` sequences, 0 = all as
OpenSTL; see evaluate.py); the default scores held-out-digit sequences with SSIM data_range 1.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ostinato.core import benchkit as kit
from ostinato.core import recipe as rec
from ostinato.core.device import autocast, select_device, to_device
from ostinato.core.measure import clock, count_flops, count_params
from ostinato.core.runstate import model_name

from .metrics import FrameMetrics

# Overrides for the short budget only, each chosen on the validation split (64 sequences) at
# this budget (124 steps of batch 16): PFGNet-S's OneCycle peak lr, 1e-3 (its 200-epoch config)
# -> val MSE 146.2, 3e-3 -> 139.3, 6e-3 -> 134.4, 1e-2 -> 135.0. ConvLSTM keeps its recipe's.
BUDGET_OVERRIDES = {"vision/pfgnet_mmnist_s": ["optim.lr=6e-3"], "vision/convlstm_mmnist": []}


def step_time(cfg, device: torch.device, steps: int) -> float:
    """Seconds (of ``clock``) per training step of ``cfg``'s model (forward, backward, Adam)."""
    from ostinato.core.train import build_data, build_model

    data = build_data(cfg)
    model = build_model(cfg, data.model_kwargs).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    batch = to_device(torch.utils.data.default_collate([data.train[i] for i in range(data.batch_size)]), device)
    now = clock(device)
    t = 0.0
    for i in range(steps + 1):  # the first step is a warm-up
        t0 = now()
        with autocast(device, "auto")[0]:  # what the trainer enters (trainer.amp=auto)
            loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            t += now() - t0
    return t / steps


@torch.no_grad()
def infer_throughput(model, x: torch.Tensor, n_out: int, reps: int = 2) -> float:
    """Sequences per second (of ``clock``) for ``model(x, n_out)``, after a warm-up call."""
    model.eval()
    now = clock(x.device)
    with autocast(x.device, "auto")[0]:
        model(x, n_out)
        t0 = now()
        for _ in range(reps):
            model(x, n_out)
        t = now() - t0
    return reps * x.shape[0] / t


def equal_budget(minutes: float, test_size: int, device: str, keep: Path | None = None, batch_size: int = 16,
                 threads: int = 0, protocol: str = "ostinato") -> list[dict]:
    """The two equal-budget rows (module doc, 1.); ``keep``: write the runs there instead of temp folders."""
    rows = []
    dev = select_device(device)
    for recipe in ("vision/pfgnet_mmnist_s", "vision/convlstm_mmnist"):
        common = [f"trainer.device={device}", "trainer.max_epochs=1000", f"data.test_size={test_size}",
                  "data.val_size=16", "trainer.log_every_steps=10", "trainer.eval_every=1000",
                  f"data.batch_size={batch_size}", f"data.eval_batch_size={batch_size}", f"trainer.threads={threads}",
                  f"eval.protocol={protocol}", *BUDGET_OVERRIDES[recipe]]
        if protocol == "openstl":  # the official file: its first test_size sequences (0: all 10,000)
            common.append(f"eval.max_samples={test_size}")
        per_step = step_time(rec.load(recipe, common), dev, steps=1 if dev.type == "cpu" else 5)
        steps = max(2, int(minutes * 60 / per_step))
        extra = [f"trainer.max_steps={steps}"]
        if dev.type == "cuda":  # feed the GPU with loader workers; wall-clock cap in case loading is the bottleneck
            extra += ["trainer.num_workers=6", f"trainer.max_minutes={minutes * 1.1}"]

        def probe(run: kit.Run) -> dict:
            model = run.model  # the best checkpoint, on dev, eval mode
            x = torch.rand(1, 10, 1, 64, 64, device=dev)
            flops = count_flops(lambda: model(x, 10))
            xb = torch.rand(batch_size if dev.type == "cpu" else 64, 10, 1, 64, 64, device=dev)
            return {"model": model_name(run.cfg), "lr": run.cfg.optim.lr,
                    "macs_G": flops / 2e9, "flops_G": flops / 1e9, "infer_seq_per_s": infer_throughput(model, xb, 10)}

        name = recipe.split("/")[1]
        rows.append(kit.train(recipe, common + extra, name=name, table="equal_budget", probe=probe, device=str(dev),
                              workdir=Path(keep) / name if keep else None, batch_size=batch_size, step_time_s=per_step,
                              train_budget_s=minutes * 60, train_seq_per_s=batch_size / per_step))
    return rows


def protocol_test_set(test_size: int, protocol: str):
    """The bench's test sequences and its eval config under ``protocol`` (evaluate.py): the first
    ``test_size`` held-out-digit sequences, or all of mnist_test_seq.npy (a missing file raises
    the one-line DataError before anything trains)."""
    from ostinato.core.train import build_data

    from .evaluate import eval_split

    cfg = rec.load("vision/pfgnet_mmnist_s", [f"data.test_size={test_size}", "data.val_size=16", f"eval.protocol={protocol}"])
    test = eval_split(build_data(cfg), "test", cfg.eval)
    if protocol == "openstl" and 0 < test_size < len(test):
        test = torch.utils.data.Subset(test, range(test_size))
    return test, cfg.eval


def trivial_baselines(test_size: int, protocol: str = "ostinato") -> list[dict]:
    """Metrics of two predictors that learn nothing, on the same fixed test sequences as the
    equal-budget runs: all-black frames and the last input frame repeated. They show where a
    briefly trained model stands (on Moving MNIST an all-black prediction already has SSIM ~0.77)."""
    test, ecfg = protocol_test_set(test_size, protocol)
    out = []
    for name in ("zeros", "last_input_frame"):
        m = FrameMetrics(ssim_data_range=ecfg.data_range())
        for i in range(0, len(test), 20):
            b = torch.utils.data.default_collate([test[j] for j in range(i, min(i + 20, len(test)))])
            x, y = b["frames_in"], b["frames_out"]  # (B, T, C, H, W)
            m.update(torch.zeros_like(y) if name == "zeros" else x[:, -1:].expand_as(y), y)
        out.append(kit.row("no_training_reference", name, test=m.compute(), params=0))
    return out


def step_speed(n: int, k: int, quick: bool, device: str) -> dict:
    from .models.convs5 import ConvS5Predictor, ConvS5VPConfig

    dev = select_device(device)
    if quick:
        cfg = ConvS5VPConfig(enc_widths=(16, 32, 64), d_model=32, ssm_size=32, n_layers=2, num_groups=8)
    else:
        cfg = ConvS5VPConfig(enc_widths=(32, 64, 128), d_model=128, ssm_size=128, n_layers=4)
    torch.manual_seed(0)
    model = ConvS5Predictor(cfg).to(dev).eval()
    now = clock(dev)
    x = torch.rand(1, k, 1, 64, 64, device=dev) * 2 - 1  # the model's [-1, 1] space
    with torch.no_grad():
        model.generate(x, 2)  # warm-up
        t0 = now()
        fast = model.generate(x, n)
        t_step = now() - t0
        t0 = now()
        slow = model.generate_by_prefix(x, n)
        t_prefix = now() - t0
        # parallel model on the step-mode inputs must reproduce the step-mode outputs; the free
        # rollouts themselves drift apart in fp32 (rounding amplified through 100 feedbacks)
        par, _ = model.predict_next(torch.cat([x, fast[:, :-1]], 1))
        tf_diff = (par[:, k - 1:] - fast).abs().max().item()
    diff = (fast - slow).abs().max().item()
    return kit.row("convs5_step_mode", "convs5", **{"model": f"convs5 (d_model {cfg.d_model}, {cfg.n_layers} layers, widths {list(cfg.enc_widths)})",
            "params": count_params(model), "context": k, "generated": n, "step_mode_s": t_step,
            "parallel_prefix_s": t_prefix, "speedup": t_prefix / t_step,
            "teacher_forced_max_abs_diff": tf_diff, "free_rollout_max_abs_diff": diff})


TABLE = [("model", "name"), ("params", "params", lambda v: f"{v / 1e6:.2f}M"), ("MACs/seq", "macs_G", lambda v: f"{v:.2f}G"),
         ("train seq/s", "train_seq_per_s", ".2f"), ("infer seq/s", "infer_seq_per_s", ".2f"), ("steps", "steps"),
         ("MSE", "test.mse", ".2f"), ("MAE", "test.mae", ".2f"), ("SSIM", "test.ssim", ".4f"), ("PSNR", "test.psnr", ".2f")]


def run(quick: bool = False, out: str | Path | None = None, device: str = "cpu", minutes: float | None = None,
        test_size: int | None = None, n_generate: int = 100, context: int = 10, keep: Path | None = None,
        threads: int = 1, protocol: str = "ostinato") -> list[dict]:
    """The benchmark (module doc): its rows; ``out``: the JSON document. ``keep``: write the two
    training runs there instead of temp dirs. ``threads``: torch CPU threads (default 1: CPU time
    then measures work, not the spin-waiting of idle OpenMP threads on a busy machine); 0 leaves
    torch's default."""
    if threads:
        torch.set_num_threads(threads)
    minutes = minutes if minutes is not None else (1.0 if quick else 10.0)
    test_size = test_size if test_size is not None else (32 if quick else 200)
    if protocol == "openstl":
        protocol_test_set(test_size, protocol)  # fail fast where mnist_test_seq.npy is missing
    rows = equal_budget(minutes, test_size, device, keep, batch_size=4 if quick else 16, threads=threads,
                        protocol=protocol)
    ref = trivial_baselines(test_size, protocol)
    speed = step_speed(n_generate, context, quick, device)
    pf, cl = rows
    gain = 1.0 - pf["test"]["mse"] / cl["test"]["mse"]
    goal = {"table": "goals", "name": "PFGNet-S MSE below ConvLSTM's", "pfgnet_mse_reduction": gain, "met": gain >= 0.2}
    what = "CPU-time (process_time)" if select_device(device).type == "cpu" else "wall-clock"
    tests = (f"{test_size} fixed test sequences (held-out digits), SSIM data_range 1" if protocol == "ostinato" else
             f"OpenSTL protocol: {f'the first {test_size}' if test_size else 'all'} sequences of mnist_test_seq.npy, "
             "SSIM data_range 2")
    print(f"Moving MNIST 10->10, {minutes:g} min {what} training budget each on {device}, {tests}; "
          "throughputs per second of that clock:")
    kit.print_table(rows, TABLE)
    for r in ref:
        t = r["test"]
        print(f"reference, no training ({r['name']}): MSE {t['mse']:.2f}, MAE {t['mae']:.2f}, SSIM {t['ssim']:.4f}, "
              f"PSNR {t['psnr']:.2f}")
    print(f"PFGNet-S MSE is {100 * gain:.1f}% below ConvLSTM's (goal: >= 20%)")
    print(f"ConvS5 generation of {speed['generated']} frames after {speed['context']}: step mode "
          f"{speed['step_mode_s']:.2f}s, parallel model re-run on each prefix {speed['parallel_prefix_s']:.2f}s ({what}) "
          f"-> {speed['speedup']:.1f}x (goal: >= 10x); parallel vs step on the same inputs: max |diff| "
          f"{speed['teacher_forced_max_abs_diff']:.1e}")
    rows = [*rows, *ref, speed, goal]
    kit.write_json(out, "vision", quick, rows, device=device, budget_minutes=minutes, test_size=test_size,
                   threads=torch.get_num_threads(), protocol=protocol)
    return rows


# --------------------------------------------------------------------------- ostinato bench mixers


@torch.no_grad()
def stream_latency(model, cfg, steps: int = 8) -> float:
    """Seconds per generated frame at batch 1 in the predictor's step mode (encode, one step of the
    cell with the carried state, decode): (time of 1 + ``steps`` frames - time of 1) / ``steps``,
    after the context frames have been run in parallel."""
    import time

    m = getattr(model, "cfg", cfg.model)  # the predictor's own config (frame sizes from the data)
    dev = next(model.parameters()).device
    x = torch.rand(1, m.in_frames, m.channels, m.height, m.width, device=dev)
    model.eval()
    model(x, 2)  # warm-up

    def timed(n: int) -> float:
        t0 = time.perf_counter()
        model(x, n)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter() - t0

    return max(timed(1 + steps) - timed(1), 0.0) / steps


def mixer_task() -> dict:
    """Moving MNIST 10 -> 10 with a small ConvS5 predictor (``vision/cells_mmnist``), test MSE
    (OpenSTL's per-frame pixel sum), for ``ostinato bench mixers``.

    The slot is the predictor's cell (``model.cell``, models/cells.py) filled with ``convmix``: a
    3x3 conv, then the core mixer over time at every pixel (a convolutional LRU, minGRU, ...);
    the default row is the recipe's own ConvS5 stack. Every causal core mixer fits (the host
    needs causality for generation). ``stream``: seconds per generated frame at batch 1.
    The core spatial stacks (ConvLSTM, ConvGRU, conv minGRU) are not core mixers, so they are
    compared by ``model.cell.name=...`` runs of the same recipe (docs/vision.md), not here.
    """
    from ostinato.core.mixer import is_causal, mixer_entries

    return {
        "task": "vision/mmnist",
        "recipe": "vision/cells_mmnist",
        "quick_recipe": "vision/test_convs5",
        "slot": "model.cell.mixer",
        "default": "convs5",
        "mixers": sorted(n for n, e in mixer_entries().items() if is_causal(e, e.config()) and n != "ssd"),  # ssd: its default headdim 64 does not divide expand*d_model at these widths
        "overrides": ["trainer.test_at_end=true"],
        "mixer_overrides": ["model.cell.name=convmix"],
        "metrics": {"MSE": "test.mse", "SSIM": "test.ssim"},
        "stream": stream_latency,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ostinato.vision.bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    p.add_argument("--minutes", type=float, default=None, help="training budget per model (CPU time on CPU)")
    p.add_argument("--test-size", type=int, default=None)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--keep", type=Path, default=None, help="keep the training runs in this folder")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    p.add_argument("--protocol", choices=["ostinato", "openstl"], default="ostinato",
                   help="metric/test-set convention (evaluate.py); openstl needs mnist_test_seq.npy under the data root")
    a = p.parse_args(argv)
    from ostinato.core.errors import ConfigError, DataError

    try:
        run(a.quick, a.out, a.device, a.minutes, a.test_size, keep=a.keep, threads=a.threads, protocol=a.protocol)
    except (ConfigError, DataError) as e:  # one line, as the ostinato CLI prints them
        print(f"error: {e}", file=__import__("sys").stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
