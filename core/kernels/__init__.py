"""Optional fused CPU kernels (C++, compiled on first use): the selective scan and the linear scan.

What they compute (exactly the reference loops, re-ordered for speed; parity-tested against them):

- ``selective_fwd`` / ``selective_bwd``: Mamba's selective scan with the delta bias and
  softplus, the D skip, the z gate and an initial state (real A, as the core's selective scan).
  The state of a block of 16 channels (N x 16) stays in a local array for the whole sequence;
  the forward pass keeps only the state entering every ``chunk`` steps (default 64); the
  backward pass recomputes each chunk's states from that checkpoint into a cache-resident
  buffer and runs the adjoint recurrence backwards (the (B, L, D, N) volume is never stored),
  the approach of mamba's CUDA kernel.
- ``linear_fwd`` / ``linear_bwd``: h_t = a_t h_{t-1} + b_t (S5, LRU, S4D, minGRU), real or
  complex, one pass over memory each way; the backward pass is the adjoint recurrence.

Both vectorise over channels (the compiler's auto-vectorisation of fixed-width loops, exp by a
polynomial in ``vmath.h``) and run in parallel over (batch x channel blocks) with
``at::parallel_for`` (torch's intra-op threads; ``torch.set_num_threads`` applies).

Build: ``torch.utils.cpp_extension.load`` (ninja + a C++17 compiler with OpenMP) with
``-O3 -march=native``, once, into ``$TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``)
under a name keyed by a hash of the sources, the flags, the torch version and this CPU's feature
flags, so a cache shared between machines never loads a binary built for another CPU.
About a minute on a 2-core machine; ``python -m ostinato.core.kernels`` builds it ahead of time.

Selection: ``method="fused"`` builds on first use; ``method="auto"`` uses the kernels only when
they are already built (it never compiles by itself). If the build fails (no compiler, no
ninja) or ``OSTINATO_FUSED=0`` is set, :func:`load` returns None, a one-line notice is printed
once, and the callers fall back to their pure-PyTorch paths.
"""
from __future__ import annotations

import hashlib
import logging
import os
import platform
import sys
from pathlib import Path

import torch

SOURCES = ("ops.cpp", "selective_scan.cpp", "linear_scan.cpp")
HEADERS = ("kernels.h", "vmath.h")
CFLAGS = ["-O3", "-march=native", "-fopenmp"]
LDFLAGS = ["-fopenmp"]
_DIR = Path(__file__).resolve().parent

_state: dict = {"ops": None, "failed": None, "noticed": False, "name": None}


def _cpu_key() -> str:
    """This CPU's feature flags (what -march=native compiles for)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.machine() + platform.processor()


def _name() -> str:
    """The extension's name: a hash of the sources, flags, versions and CPU flags (cached)."""
    if _state.get("name") is None:
        _state["name"] = _hash_name()
    return _state["name"]


def _hash_name() -> str:
    h = hashlib.sha1()
    for f in SOURCES + HEADERS:
        h.update((_DIR / f).read_bytes())
    h.update(" ".join(CFLAGS + LDFLAGS + [torch.__version__, sys.version.split()[0], _cpu_key()]).encode())
    return f"ostinato_fused_{h.hexdigest()[:12]}"


def _build_dir(name: str) -> Path:
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or str(Path.home() / ".cache" / "torch_extensions")
    return Path(root) / name


def _notice(reason: str) -> None:
    if not _state["noticed"]:
        _state["noticed"] = True
        print(f"ostinato: fused CPU kernels unavailable ({reason}); using the PyTorch path", file=sys.stderr)


def _compile(name: str) -> None:
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "No CUDA runtime" on import
    from torch.utils import cpp_extension

    build = _build_dir(name)
    build.mkdir(parents=True, exist_ok=True)
    cpp_extension.load(name=name, sources=[str(_DIR / f) for f in SOURCES], extra_cflags=list(CFLAGS),
                       extra_ldflags=list(LDFLAGS), build_directory=str(build), with_cuda=False,
                       is_python_module=False, verbose=False)


def load(build: bool = True):
    """``torch.ops.ostinato_fused`` (the kernels), building them first if ``build``; None when
    they are unavailable (disabled, build failed, or not built and ``build`` is False)."""
    if _state["ops"] is not None:
        return _state["ops"]
    if os.environ.get("OSTINATO_FUSED", "1") == "0":
        _notice("OSTINATO_FUSED=0")
        return None
    if _state["failed"] is not None:
        return None
    name = _name()
    so = _build_dir(name) / f"{name}.so"
    try:
        if so.exists():
            torch.ops.load_library(str(so))
        elif build:
            _compile(name)
        else:
            return None
    except Exception as e:  # noqa: BLE001 - any build/load failure means: fall back
        _state["failed"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:160] if str(e).strip() else ''}"
        _notice(f"build failed: {_state['failed']}")
        return None
    _state["ops"] = torch.ops.ostinato_fused
    return _state["ops"]


def available(build: bool = False) -> bool:
    """Whether the kernels can be used now (``build=True``: building them if needed)."""
    return load(build) is not None

