"""Linear recurrences h_t = a_t * h_{t-1} + b_t.

Shapes: a, b are (B, L, *S) (``a`` broadcastable to ``b``), h0 is (B, *S) or None (zeros);
the result is every state, (B, L, *S); the final state is ``h[:, -1]``. Real or complex.

The sequential loop is the specification; every other method is tested against it.
"""
from __future__ import annotations

import torch


def scan_sequential(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """Reference loop. Accumulates in at least fp32."""
    a, b = torch.broadcast_tensors(a, b)
    acc = torch.promote_types(b.dtype, torch.float32)
    h = torch.zeros_like(b[:, 0], dtype=acc) if h0 is None else h0.to(acc)
    out = []
    for t in range(b.shape[1]):
        h = a[:, t].to(acc) * h + b[:, t].to(acc)
        out.append(h)
    return torch.stack(out, dim=1).to(torch.promote_types(b.dtype, a.dtype))


def scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None, method: str = "auto", **kw) -> torch.Tensor:
    """Entry point: ``method`` in {"auto", "sequential", "associative", "chunked", "log"}."""
    if method in ("auto", "sequential"):
        return scan_sequential(a, b, h0)
    raise ValueError(f"scan method {method!r}: expected auto, sequential, associative, chunked or log")
