"""``ostinato bench vision``: equal-budget Moving MNIST comparison and ConvS5 generation speed.

1. **Equal training budget.** PFGNet-S (``vision/pfgnet_mmnist_s``) and ConvLSTM
   (``vision/convlstm_mmnist``, OpenSTL's 4 x 128 configuration) are trained with the shared
   trainer on Moving MNIST for the same wall-clock budget on the same device. Each run first
   times a few steps and sets ``max_steps`` so that its LR schedule completes within the budget
   (``max_minutes`` caps it as well). Both are then scored on the same fixed test sequences
   (first ``test_size`` of the generated test set: digits never seen in training) with OpenSTL's
   metrics. Reported: MSE, MAE (per-frame pixel sums), SSIM, PSNR, parameters, MACs and FLOPs per
   10 -> 10 sequence (torch FlopCounterMode; MACs = OpenSTL's "FLOPs" column), training
   sequences/s, inference sequences/s (OpenSTL's "FPS": sequences per second).
2. **ConvS5 step mode.** Generating ``n`` frames after ``k`` context frames in step mode (state
   carried, one frame per step) against re-running the parallel (scan) model on every prefix,
   which is what a model without a recurrent mode must do. Outputs are checked to agree.

``--quick``: 1-minute budgets, 32 test sequences, a small ConvS5. Run elsewhere with
``python -m ostinato.vision.bench --device cuda --minutes 3`` (the CLI's ``ostinato bench
vision`` runs on CPU). Timings on a shared machine are noisy.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from ostinato.core import recipe as rec
from ostinato.core.registry import create_model
from ostinato.core.train import fit, select_device, to_device

from .metrics import count_flops, count_params


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _train_throughput(cfg, device: torch.device, steps: int = 3) -> float:
    """Training sequences/s of ``cfg``'s model (forward + backward + Adam), after 1 warm-up step."""
    from ostinato.core.train import build_data, build_model

    data = build_data(cfg)
    model = build_model(cfg, data.model_kwargs).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    bs = data.batch_size
    batch = to_device(torch.utils.data.default_collate([data.train[i] for i in range(bs)]), device)
    times = []
    for i in range(steps + 1):
        _sync(device)
        t = time.perf_counter()
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        _sync(device)
        if i:
            times.append(time.perf_counter() - t)
    return bs / (sum(times) / len(times))


@torch.no_grad()
def _infer_throughput(model, x: torch.Tensor, n_out: int, reps: int = 2) -> float:
    model.eval()
    model(x, n_out)
    _sync(x.device)
    t = time.perf_counter()
    for _ in range(reps):
        model(x, n_out)
    _sync(x.device)
    return reps * x.shape[0] / (time.perf_counter() - t)


def equal_budget(minutes: float, test_size: int, device: str, out_dir: Path, quiet: bool = True) -> list[dict]:
    rows = []
    dev = select_device(device)
    for recipe in ("vision/pfgnet_mmnist_s", "vision/convlstm_mmnist"):
        common = [f"trainer.device={device}", "trainer.max_epochs=1000", f"data.test_size={test_size}",
                  "data.val_size=16", "trainer.log_every_steps=10", "trainer.eval_every=1000"]
        cfg = rec.load(recipe, common)
        sps = _train_throughput(cfg, dev)
        steps = max(2, int(minutes * 60 * sps / cfg.data["batch_size"]))
        cfg = rec.load(recipe, common + [f"trainer.max_steps={steps}", f"trainer.max_minutes={minutes * 1.25}"])
        res = fit(cfg, out_dir / recipe.split("/")[1], quiet=quiet)
        model = create_model(cfg.model["name"], **{k: v for k, v in cfg.model.items() if k != "name"}).to(dev).eval()
        x = torch.rand(1, 10, 1, 64, 64, device=dev)
        flops = count_flops(lambda: model(x, 10))
        xb = torch.rand(16 if dev.type == "cpu" else 64, 10, 1, 64, 64, device=dev)
        rows.append({
            "model": cfg.model["name"], "params": count_params(model), "macs_G": flops / 2e9, "flops_G": flops / 1e9,
            "train_steps": res["steps"], "train_time_s": res["train_time_s"],
            "train_seq_per_s": res["steps"] * cfg.data["batch_size"] / max(res["train_time_s"], 1e-9),
            "infer_seq_per_s": _infer_throughput(model, xb, 10),
            **{k: res["test"][k] for k in ("mse", "mae", "ssim", "psnr")},
        })
    return rows


def step_speed(n: int, k: int, quick: bool, device: str) -> dict:
    from .models.convs5 import ConvS5Predictor, ConvS5VPConfig

    dev = select_device(device)
    if quick:
        cfg = ConvS5VPConfig(enc_widths=(16, 32, 64), d_model=32, ssm_size=32, n_layers=2, num_groups=8)
    else:
        cfg = ConvS5VPConfig(enc_widths=(32, 64, 128), d_model=128, ssm_size=128, n_layers=4)
    torch.manual_seed(0)
    model = ConvS5Predictor(cfg).to(dev).eval()
    x = torch.rand(1, k, 1, 64, 64, device=dev)
    with torch.no_grad():
        x = x * 2 - 1  # the model's [-1, 1] space
        model.generate(x, 2)  # warm-up
        _sync(dev)
        t = time.perf_counter()
        fast = model.generate(x, n)
        _sync(dev)
        t_step = time.perf_counter() - t
        t = time.perf_counter()
        slow = model.generate_by_prefix(x, n)
        _sync(dev)
        t_prefix = time.perf_counter() - t
    diff = (fast - slow).abs().max().item()
    return {"model": f"convs5 (d_model {cfg.d_model}, {cfg.n_layers} layers, widths {list(cfg.enc_widths)})",
            "params": count_params(model), "context": k, "generated": n, "step_mode_s": t_step,
            "parallel_prefix_s": t_prefix, "speedup": t_prefix / t_step, "max_abs_diff": diff}


def _table(rows: list[dict]) -> str:
    head = ["model", "params", "MACs/seq", "train seq/s", "infer seq/s", "steps", "MSE", "MAE", "SSIM", "PSNR"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r['macs_G']:.2f}G | {r['train_seq_per_s']:.2f} | "
                     f"{r['infer_seq_per_s']:.2f} | {r['train_steps']} | {r['mse']:.2f} | {r['mae']:.2f} | "
                     f"{r['ssim']:.4f} | {r['psnr']:.2f} |")
    return "\n".join(lines)


def run(quick: bool = False, out: Path | None = None, device: str = "cpu", minutes: float | None = None,
        test_size: int | None = None, n_generate: int = 100, context: int = 10) -> dict:
    minutes = minutes if minutes is not None else (1.0 if quick else 10.0)
    test_size = test_size if test_size is not None else (32 if quick else 200)
    with tempfile.TemporaryDirectory(prefix="ostinato_bench_vision_") as tmp:
        rows = equal_budget(minutes, test_size, device, Path(tmp))
    speed = step_speed(n_generate, context, quick, device)
    pf, cl = rows
    gain = 1.0 - pf["mse"] / cl["mse"]
    print(f"Moving MNIST 10->10, {minutes:g} min training budget each on {device}, "
          f"{test_size} fixed test sequences (held-out digits):")
    print(_table(rows))
    print(f"PFGNet-S MSE is {100 * gain:.1f}% below ConvLSTM's (goal: >= 20%)")
    print(f"ConvS5 generation of {speed['generated']} frames after {speed['context']}: step mode "
          f"{speed['step_mode_s']:.2f}s, parallel model re-run on each prefix {speed['parallel_prefix_s']:.2f}s "
          f"-> {speed['speedup']:.1f}x (goal: >= 10x; max |diff| {speed['max_abs_diff']:.2e})")
    return {"device": device, "quick": quick, "budget_minutes": minutes, "test_size": test_size,
            "equal_budget": rows, "pfgnet_mse_reduction": gain, "convs5_step_mode": speed,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ostinato.vision.bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    p.add_argument("--minutes", type=float, default=None, help="training budget per model")
    p.add_argument("--test-size", type=int, default=None)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    res = run(a.quick, a.out, a.device, a.minutes, a.test_size)
    if a.out:
        a.out.write_text(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
