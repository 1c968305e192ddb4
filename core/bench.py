"""``ostinato bench core``: speed and memory of the core's scans and SSM layers on this machine.

(The domains' benches, and this one, are written with :mod:`ostinato.core.benchkit`.)

Rows, all fp32 on the CPU, batch B=8, width D=256 (quick: L in {256, 1024}; full: L in
{256, 1024, 4096, 16384}):

- ``scan/*``: h_t = a_t h_{t-1} + b_t on a (B, L, D) state, every method of
  ``ostinato.core.scan`` against the sequential loop (the reference).
- ``selective/*``: the Mamba selective scan (d_inner D=256, d_state N=16, input-dependent
  Δ, B, C; D skip and z gate included), the chunked fast path (the default) against
  ``selective_scan_ref`` (the step-by-step loop); in the full run (or with ``--compiled``) also
  the opt-in ``method="compiled"`` path (torch.compile'd chunk kernels), whose row notes the
  time of its first forward+backward call, which includes compiling (the first length
  compiles, the second recompiles once for symbolic strides; inductor caches on disk).
- ``scan/fused`` and ``selective/fused (C++ kernel)``: the fused kernels of
  :mod:`ostinato.core.kernels` (built on first use in the full run; in the quick run only when
  already built). Their ``x fast`` columns compare with the fastest pure-PyTorch path
  (scan: associative; selective: chunked). Selective rows also give GFLOP/s under a fixed count
  of 7 flops per (b, t, d, n) element forward and 29 forward+backward (exp counted as one flop,
  so the rate understates the instructions executed), next to ``peak/fp32 matmul``: the
  GFLOP/s of a 2048^3 fp32 matmul on this machine, the practical compute ceiling.
- ``e2e/*`` (full run, or ``--e2e``): training steps/s of Mamba4Rec (the recipe
  ``E2E_RECIPE``, built in-process through the registry, its own data) with the selective scan
  chunked vs fused (``model.mixer.scan_method``); skipped with a note when the recipe's domain
  or data is missing.
- ``s5/*``: our S5 SSM against ``s5-pytorch`` 0.2.1 (``s5.S5``), both with H=256 and P=16
  complex states (ours with conj_sym off so the state counts match), ZOH; the s5-pytorch row
  says so when the package is not installed (``pip install s5-pytorch``).
- ``lstm/torch``: ``torch.nn.LSTM(256, 256)``, the familiar baseline.

Time: best of ``reps`` wall-clock runs after one warm-up run (one run, no warm-up, where a
single run takes more than ~2 s). "fwd" runs under ``torch.no_grad()``; "fwd+bwd" is forward
plus ``backward()`` of a scalar reduction of every output.
Peak memory: the largest total of live tensor bytes allocated *during* the call, from the
PyTorch profiler's CPU memory events (``profile_memory=True``): allocations minus frees, in
event order, maximum of the running sum (inputs allocated before the call are not counted).
It measures tensor storage only, not Python objects or allocator slack.
Selective reference at L=16384 (several GB and minutes per run) is not run: its time is
extrapolated linearly from L=4096 and labelled "extrapolated"; its memory is left empty.
The machine's load is not controlled: numbers taken while other jobs run are noisy.
``--cpu-time`` times with the process's CPU time instead of the wall clock: on a machine shared
with other jobs it counts only this process's own work (run it with one thread,
OMP_NUM_THREADS=1: with more, idle threads' spin-waiting counts too).
"""
from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from . import benchkit as kit
from .layers.s5 import S5, S5Config
from .progress import announce
from . import kernels
from .layers.selective import selective_scan, selective_scan_ref
from .scan import scan

B, D, N = 8, 256, 16  # defaults; run(..., batch=, width=, state=) overrides them (tests use tiny sizes)
SEL_FLOPS = {"fwd_s": 7, "fwdbwd_s": 29}  # flop count per (b, t, d, n) element (module docstring)
E2E_RECIPE = "recsys/mamba4rec_games"  # the end-to-end rows' model (a recipe reference, not an import)
E2E_STEPS = 5
_CLOCK = {"fn": time.perf_counter}  # --cpu-time: time.process_time (module docstring)


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (the profiler's C++ start/stop lines bypass Python's stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _peak_bytes(fn: Callable[[], None]) -> int:
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # quieter profiler start/stop logging on stderr
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    try:
        evs = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    except AttributeError:  # a PyTorch without the kineto event API: no memory column
        return -1
    evs.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for e in evs:
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def _time(fn: Callable[[], None], reps: int) -> float:
    t0 = _CLOCK["fn"]()
    fn()
    first = _CLOCK["fn"]() - t0
    if first > 2.0 or reps <= 1:
        return first
    best = first
    for _ in range(reps):
        t0 = _CLOCK["fn"]()
        fn()
        best = min(best, _CLOCK["fn"]() - t0)
    return best


def _first_call(make: Callable[[], tuple], fwd: Callable) -> float:
    """Seconds of one forward+backward call (for the compiled path: includes compiling)."""
    leaves = [x.detach().requires_grad_(x.is_floating_point()) for x in make()]
    t0 = _CLOCK["fn"]()
    out = fwd(*leaves)
    sum(o.sum() for o in (out if isinstance(out, (tuple, list)) else (out,)) if o is not None).backward()
    return _CLOCK["fn"]() - t0


def _measure(make: Callable[[], tuple], fwd: Callable, reps: int, memory: bool) -> dict:
    """make() -> inputs (leaves); fwd(*inputs) -> tensor or tuple of tensors."""
    inputs = make()

    def run_fwd():
        with torch.no_grad():
            fwd(*inputs)

    def run_fwdbwd():
        leaves = [x.detach().requires_grad_(x.is_floating_point() or x.is_complex()) for x in inputs]
        out = fwd(*leaves)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        sum(o.real.sum() if o.is_complex() else o.sum() for o in outs if o is not None).backward()

    r = {"fwd_s": _time(run_fwd, reps), "fwdbwd_s": _time(run_fwdbwd, reps)}
    if memory:
        r["fwd_peak_mib"] = _peak_bytes(run_fwd) / 2**20  # -1/2**20 means "not measurable here"
        r["fwdbwd_peak_mib"] = _peak_bytes(run_fwdbwd) / 2**20
    return r


def _scan_inputs(L: int, B: int = B, D: int = D):
    g = torch.Generator().manual_seed(L)
    return (torch.rand(B, L, D, generator=g) * 0.5 + 0.5, torch.randn(B, L, D, generator=g))


def _selective_inputs(L: int, B: int = B, D: int = D, N: int = N):
    g = torch.Generator().manual_seed(L)
    return (
        torch.randn(B, L, D, generator=g),  # u
        torch.randn(B, L, D, generator=g) * 0.5 - 2.0,  # Δ before softplus
        -torch.arange(1, N + 1, dtype=torch.float32).repeat(D, 1),  # A (Mamba init)
        torch.randn(B, L, N, generator=g),  # B
        torch.randn(B, L, N, generator=g),  # C
        torch.ones(D),  # D
        torch.randn(B, L, D, generator=g),  # z
    )


def _s5_pytorch():
    try:
        import s5 as s5_pkg  # the s5-pytorch distribution
    except ImportError:
        return None
    return s5_pkg


def _matmul_peak_row(n: int = 2048, reps: int = 3) -> dict:
    """GFLOP/s of an n^3 fp32 matmul (best of reps): the machine's practical compute ceiling."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    s = _time(lambda: torch.mm(a, b), reps)
    return {"table": "core", "name": "peak/fp32 matmul", "group": "peak", "impl": f"fp32 matmul {n}^3", "L": n,
            "fwd_s": s, "gflops": 2 * n**3 / s / 1e9, "note": "the practical compute ceiling"}


def _fast_ratio(row: dict, base: dict) -> None:
    row["x_fast_fwd"], row["x_fast_fwdbwd"] = base["fwd_s"] / row["fwd_s"], base["fwdbwd_s"] / row["fwdbwd_s"]


def _gflops(row: dict, elems: int) -> None:
    row["gflops_fwd"], row["gflops_fwdbwd"] = (SEL_FLOPS[k] * elems / row[k] / 1e9 for k in ("fwd_s", "fwdbwd_s"))


def _rows_for_length(L: int, quick: bool, reps: int, s5_pkg, ref_times: dict, B: int, D: int, N: int,
                     compiled: bool = False, fused: bool = False) -> list[dict]:
    rows = []

    def add(group, impl, res, note=""):
        row = {"table": "core", "name": f"{group}/{impl}", "group": group, "impl": impl, "L": L, **res, "note": note}
        rows.append(row)
        announce(f"{group}/{impl} L={L}: fwd {res.get('fwd_s', float('nan')):.4f} s, "
                 f"fwd+bwd {res.get('fwdbwd_s', float('nan')):.4f} s")
        return row

    # --- scans
    ref = add("scan", "sequential (reference)", _measure(lambda: _scan_inputs(L, B, D), lambda a, b: scan(a, b, method="sequential"), reps, True))
    scan_rows = {}
    for m in ("associative", "chunked", "log") + (("fused",) if fused else ()):
        r = scan_rows[m] = add("scan", m, _measure(lambda: _scan_inputs(L, B, D), lambda a, b, m=m: scan(a, b, method=m), reps, True))
        r["speedup_fwd"], r["speedup_fwdbwd"] = ref["fwd_s"] / r["fwd_s"], ref["fwdbwd_s"] / r["fwdbwd_s"]
    if fused:
        _fast_ratio(scan_rows["fused"], scan_rows["associative"])

    # --- selective scan
    def sel(method):
        return lambda u, dl, A, Bm, Cm, Dd, z: selective_scan(u, dl, A, Bm, Cm, Dd, z, delta_softplus=True, method=method)

    if L <= 4096:
        sref = add("selective", "ref loop (selective_scan_ref)", _measure(lambda: _selective_inputs(L, B, D, N), sel("ref"), 1, L <= 1024 or not quick))
        ref_times[L] = sref
    else:
        base = max(k for k in ref_times)
        f = L / base
        sref = add("selective", "ref loop (selective_scan_ref)",
                   {"fwd_s": ref_times[base]["fwd_s"] * f, "fwdbwd_s": ref_times[base]["fwdbwd_s"] * f},
                   note=f"extrapolated linearly from L={base}; not run")
    make = lambda: _selective_inputs(L, B, D, N)  # noqa: E731
    impls = [("chunked (ours)", "chunked")] + ([("compiled (opt-in, torch.compile)", "compiled")] if compiled else [])
    sel_rows = {}
    for impl, method in impls + ([("fused (C++ kernel)", "fused")] if fused else []):
        first = _first_call(make, sel(method)) if method == "compiled" else None
        note = "" if first is None else f"first fwd+bwd call {first:.1f} s (includes any compile)"
        r = sel_rows[method] = add("selective", impl, _measure(make, sel(method), reps, True), note=note)
        if first is not None:
            r["first_call_s"] = first
        r["speedup_fwd"], r["speedup_fwdbwd"] = sref["fwd_s"] / r["fwd_s"], sref["fwdbwd_s"] / r["fwdbwd_s"]
        _gflops(r, B * L * D * N)
        if method != "chunked":
            _fast_ratio(r, sel_rows["chunked"])

    # --- S5
    torch.manual_seed(0)
    ours = S5(S5Config(d_model=D, d_state=N, conj_sym=False, clip_eigs=False))
    r5 = add("s5", "ours (associative scan)", _measure(lambda: (torch.randn(B, L, D),), lambda x: ours(x)[0], reps, True))
    if s5_pkg is None:
        add("s5", "s5-pytorch", {}, note="s5-pytorch not installed (pip install s5-pytorch)")
    else:
        theirs = s5_pkg.S5(D, N)
        rt = add("s5", "s5-pytorch 0.2.1", _measure(lambda: (torch.randn(B, L, D),), lambda x: theirs(x), reps, True))
        r5["speedup_fwd"], r5["speedup_fwdbwd"] = rt["fwd_s"] / r5["fwd_s"], rt["fwdbwd_s"] / r5["fwdbwd_s"]
        r5["note"] = "speedup = s5-pytorch time / ours"

    # --- LSTM baseline
    lstm = torch.nn.LSTM(D, D, batch_first=True)
    add("lstm", "torch.nn.LSTM", _measure(lambda: (torch.randn(B, L, D),), lambda x: lstm(x)[0], reps, L <= 4096))
    return rows


def _e2e_rows(recipe: str, steps: int) -> list[dict]:
    """Training steps/s of ``recipe`` with its selective scan chunked vs fused (one batch of its
    own training data, repeated; Adam; best step of ``steps`` after one warm-up step)."""
    from .build import build_data, build_model
    from .recipe import load as load_recipe

    try:
        data = build_data(load_recipe(recipe))
        ds = data.split("train")
        batch = data.collate([ds[i] for i in range(min(len(ds), data.batch_size))])
    except Exception as e:  # noqa: BLE001 - a missing domain/data is reported in the table, not fatal
        return [{"table": "core", "name": "e2e/skipped", "group": "e2e", "impl": recipe, "L": 0,
                 "note": f"skipped: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"}]
    rows = []
    for method in ("chunked", "fused"):
        cfg = load_recipe(recipe, [f"model.mixer.scan_method={method}"])
        torch.manual_seed(0)
        model = build_model(cfg, data.model_kwargs).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step():
            loss, _ = model.loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        s = _time(step, steps)
        rows.append({"table": "core", "name": f"e2e/{method}", "group": "e2e", "impl": f"{recipe} scan={method}",
                     "L": cfg.data.maxlen if hasattr(cfg.data, "maxlen") else 0, "fwdbwd_s": s, "steps_per_s": 1 / s,
                     "note": f"train step, batch {data.batch_size}"})
        announce(f"e2e {recipe} {method}: {1 / s:.2f} steps/s")
    rows[1]["x_fast_fwdbwd"] = rows[0]["fwdbwd_s"] / rows[1]["fwdbwd_s"]
    return rows


NOTES = {  # what the JSON document says the columns mean
    "timing": "best of reps after a warm-up (single run when > 2 s); fwd under no_grad; fwd+bwd = forward + backward of a sum",
    "memory": "peak live tensor bytes allocated during the call (profiler CPU memory events)",
    "speedup": "reference time / row time (scan: sequential; selective: ref loop; s5: s5-pytorch / ours)",
    "x fast": "fastest pure-PyTorch path's time / row time (scan: associative; selective and e2e: chunked)",
    "gflops": f"selective: {SEL_FLOPS['fwd_s']} (fwd) / {SEL_FLOPS['fwdbwd_s']} (fwd+bwd) flops per (b, t, d, n) / time; peak: fp32 matmul",
}


def _ms(v: float) -> str:
    return f"{v * 1e3:.1f}"


COLUMNS = [("group", "group"), ("impl", "impl"), ("L", "L"), ("fwd ms", "fwd_s", _ms), ("f+b ms", "fwdbwd_s", _ms),
           ("fwd MiB", "fwd_peak_mib", ".1f"), ("f+b MiB", "fwdbwd_peak_mib", ".1f"), ("x fwd", "speedup_fwd", ".1f"),
           ("x f+b", "speedup_fwdbwd", ".1f"), ("x fast fwd", "x_fast_fwd", ".1f"), ("x fast f+b", "x_fast_fwdbwd", ".1f"),
           ("GF/s fwd", "gflops_fwd", ".1f"), ("GF/s f+b", "gflops_fwdbwd", ".1f"), ("GF/s", "gflops", ".1f"),
           ("steps/s", "steps_per_s", ".2f"), ("note", "note")]


def print_table(rows: list[dict]) -> None:
    kit.print_table(rows, COLUMNS)


def run(quick: bool = False, out: Path | None = None, *, lengths: list[int] | None = None,
        batch: int = B, width: int = D, state: int = N, compiled: bool | None = None,
        fused: bool | None = None, e2e: bool | None = None, cpu_time: bool = False) -> list[dict]:
    """Run the core benchmark, print the table, write the JSON document to ``out`` if given
    (:func:`ostinato.core.benchkit.write_json`: shape, timing notes and ``total_s`` beside the rows);
    returns the rows.

    ``lengths``/``batch``/``width``/``state`` override the benchmark's shape (the tests use
    tiny ones); the defaults are the issue's B=8, D=256, N=16. ``compiled`` adds the opt-in
    compiled selective scan rows (default: in the full run only; compiling takes minutes).
    ``fused`` adds the fused-kernel rows (default: when the kernels load; the full run builds
    them, the quick run uses them only when already built); ``e2e`` adds the end-to-end rows
    (default: full run only). ``cpu_time``: time with process CPU time (module docstring).
    """
    _CLOCK["fn"] = time.process_time if cpu_time else time.perf_counter
    compiled = (not quick) if compiled is None else compiled
    fused = kernels.available(build=not quick) if fused is None else (fused and kernels.available(build=True))
    e2e = (not quick) if e2e is None else e2e
    lengths = lengths or ([256, 1024] if quick else [256, 1024, 4096, 16384])
    reps = 1 if quick else 3
    s5_pkg = _s5_pytorch()
    rows, ref_times = [], {}
    t0 = time.perf_counter()
    if fused:
        rows.append(_matmul_peak_row(256 if quick else 2048))
    for L in lengths:
        rows += _rows_for_length(L, quick, reps, s5_pkg, ref_times, batch, width, state, compiled, fused)
    if e2e:
        rows += _e2e_rows(E2E_RECIPE, E2E_STEPS)
    total_s = time.perf_counter() - t0
    print_table(rows)
    print(f"total {total_s:.0f} s, {torch.get_num_threads()} threads; timings on a shared machine are noisy")
    shape = {"B": batch, "D": width, "N": state, "lengths": lengths, "dtype": "float32",
             "clock": "process CPU time" if cpu_time else "wall"}
    kit.write_json(out, "core", quick, rows, shape=shape, total_s=total_s, **NOTES)
    return rows


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path)
    p.add_argument("--compiled", action=argparse.BooleanOptionalAction, default=None,
                   help="include the opt-in compiled selective scan rows (default: full run only)")
    p.add_argument("--fused", action=argparse.BooleanOptionalAction, default=None,
                   help="include the fused C++ kernel rows (default: when the kernels load)")
    p.add_argument("--e2e", action=argparse.BooleanOptionalAction, default=None,
                   help="include the end-to-end Mamba4Rec training rows (default: full run only)")
    p.add_argument("--lengths", type=lambda v: [int(x) for x in v.split(",")], default=None, help="e.g. 256,4096")
    p.add_argument("--cpu-time", action="store_true", help="time with process CPU time (use with OMP_NUM_THREADS=1)")
    a = p.parse_args()
    run(a.quick, a.out, lengths=a.lengths, compiled=a.compiled, fused=a.fused, e2e=a.e2e, cpu_time=a.cpu_time)
