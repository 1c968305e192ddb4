"""The core contract, checked once for every registered core mixer (DESIGN.md, "The core contract"):

    y, state = layer(x, state=None)            # (B, L, D) -> (B, L, D)
    state = layer.init_state(batch_size)
    y_t, state = layer.step(x_t, state)        # (B, D) -> (B, D)

For each layer (and each parallel path it has: scan method, FFT / scan mode, discretisation):
forward equals the step loop (outputs, final state and, where the layer has a parallel path,
gradients); chunked streaming (``forward(x[:, :k])`` then ``forward(x[:, k:], state)``) equals the
full forward; ``init_state`` gives the state ``forward`` returns (same structure and shapes); a
causal layer's ``y[:, :t]`` does not depend on ``x[:, t:]``; the scan layers learn a running sum.
Layer-specific checks (init, kernels, other paths) stay in each layer's own test file.

A new core mixer is covered by adding it to CASES; ``test_every_core_mixer_is_covered`` fails
until it is.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from ostinato.core.registry import create_model, is_test_variant, list_models

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/core/conftest.py

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.float64: dict(rtol=1e-9, atol=1e-9)}
D = 6


@dataclasses.dataclass(frozen=True)
class Case:
    name: str  # registered core model
    kw: tuple = ()  # config overrides, (key, value) pairs (small sizes)
    causal: bool = True
    parallel: bool = True  # forward has its own parallel path (gradients are compared with the loop)
    full: bool = False  # the parity rules' full matrix: lengths 1, 7, 64, 257, fp32 and fp64, with and without a state
    tol32: tuple = ()  # (rtol, atol) where fp32 needs a looser bound than TOL
    tol64: tuple = ()  # (rtol, atol) where fp64 does (a scan that accumulates in fp32)
    grows: bool = False  # the state grows with the sequence (a KV cache)
    d: int = D

    @property
    def id(self) -> str:
        return self.name + "".join(f"-{v}" for _, v in self.kw)

    def build(self, dtype):
        torch.manual_seed(0)
        return create_model(self.name, d_model=self.d, **dict(self.kw)).to(dtype).eval()

    def tol(self, dtype):
        loose = self.tol32 if dtype == torch.float32 else self.tol64
        return dict(rtol=loose[0], atol=loose[1]) if loose else TOL[dtype]


CASES = [
    # the parity rules' full matrix: every parallel path of the scan layers
    Case("lru", (("d_state", 8), ("scan_method", "associative")), full=True),
    Case("lru", (("d_state", 8), ("scan_method", "chunked")), full=True),
    Case("s4d", (("d_state", 8), ("mode", "fft")), full=True),
    Case("s4d", (("d_state", 8), ("mode", "scan")), full=True),
    Case("s5", (("d_state", 8), ("discretization", "zoh"), ("activation", "half_glu1")), full=True),
    Case("s5", (("d_state", 8), ("discretization", "bilinear"), ("activation", "half_glu1")), full=True),
    # log-space Heinsen scan against the product loop: fp32 drifts a little over 257 steps
    Case("mingru", full=True, tol32=(1e-3, 1e-3)),
    Case("minlstm", full=True, tol32=(1e-3, 1e-3)),
    Case("ssd", (("d_state", 4), ("headdim", 4), ("chunk", 5)), full=True, tol32=(6e-4, 2e-3), d=8),
    # the selective scan accumulates in fp32 even for fp64 inputs (DESIGN: fp32 accumulation inside scans)
    Case("mamba", (("d_state", 4),), tol32=(6e-4, 2e-3), tol64=(1e-6, 1e-6), d=8),
    # recurrences and memories with a step of their own
    Case("gru", (("d_hidden", D),), parallel=False),
    Case("lstm", (("d_hidden", D),), parallel=False),
    Case("pararnn_gru", (("d_hidden", D),), tol32=(1e-3, 1e-3)),
    Case("pararnn_gru_dense", (("d_hidden", D),), tol32=(1e-3, 1e-3)),
    Case("pararnn_lstm", (("d_hidden", D),), tol32=(1e-3, 1e-3)),
    Case("fsmn", (("d_hidden", 8), ("lorder", 4)), parallel=False),
    Case("causal_attention", (("n_heads", 2),), parallel=False, grows=True),
    Case("causal_transformer", (("n_heads", 2), ("n_layers", 2)), parallel=False, grows=True),
]

# registered core models that are not (B, L, D) sequence mixers, or follow the contract on other
# shapes, each checked in its own test file
NOT_HERE = {
    "toy_seq": "a task model around a mixer (tests/core/test_train.py)",
    "complex_fsmn": "complex (B, L, 2D) FRCRN block (tests/core/test_fsmn.py)",
    "memory_transformer": "one recurrence step per token group (tests/core/test_memory.py)",
    "convlstm": "spatial (B, L, C, H, W) (tests/core/test_convlstm.py)",
    "convs5": "spatial (B, L, C, H, W) (tests/core/test_convssm.py)",
    "convgru": "spatial (B, L, C, H, W) (tests/core/test_convgru.py)",
    "convmingru": "spatial (B, L, C, H, W) (tests/core/test_convgru.py)",
    "ssm2d": "2-D over (variate, time) (tests/core/test_ssm2d.py)",
}


def _tensors(state) -> list[torch.Tensor]:
    """Every tensor in a state, in a fixed order (tensors, tuples, lists, dicts, dataclasses)."""
    if isinstance(state, torch.Tensor):
        return [state]
    if dataclasses.is_dataclass(state):
        return [t for f in dataclasses.fields(state) for t in _tensors(getattr(state, f.name))]
    if isinstance(state, dict):
        return [t for k in sorted(state) for t in _tensors(state[k])]
    if isinstance(state, (tuple, list)):
        return [t for s in state for t in _tensors(s)]
    return []


def _map(state, fn):
    if isinstance(state, torch.Tensor):
        return fn(state)
    if dataclasses.is_dataclass(state):
        return dataclasses.replace(state, **{f.name: _map(getattr(state, f.name), fn) for f in dataclasses.fields(state) if f.init})
    if isinstance(state, dict):
        return {k: _map(v, fn) for k, v in state.items()}
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(_map(s, fn) for s in state))
    if isinstance(state, (tuple, list)):
        return type(state)(_map(s, fn) for s in state)
    return state


def _close(a, b, **tol):
    ta, tb = _tensors(a), _tensors(b)
    assert len(ta) == len(tb)
    for p, q in zip(ta, tb):
        torch.testing.assert_close(p, q, **tol)


def _loop(m, x, state):
    ys = []
    for t in range(x.shape[1]):
        y, state = m.step(x[:, t], state)
        ys.append(y)
    return torch.stack(ys, 1), state  # (B, L, D)


def _random_state(m, gen, dtype):
    """A state as init_state makes it, its floating tensors replaced by small random values."""
    def fill(t):
        if t.is_floating_point() or t.is_complex():
            return 0.5 * torch.randn(t.shape, generator=gen, dtype=t.dtype)
        return t

    return _map(m.init_state(2, dtype=dtype), fill)


def _params():
    for c in CASES:
        lengths = [1, 7, 64, 257] if c.full else [1, 9]
        dtypes = [torch.float32, torch.float64] if c.full else [torch.float64]
        for L in lengths:
            for dtype in dtypes:
                for with_state in (False, True):
                    yield pytest.param(c, L, dtype, with_state, id=f"{c.id}-L{L}-{str(dtype)[6:]}-{'s0' if with_state else 'none'}")


@pytest.mark.parametrize("case,L,dtype,with_state", list(_params()))
def test_forward_equals_step_loop(case, L, dtype, with_state):
    m = case.build(dtype)
    gen = torch.Generator().manual_seed(L)
    x = torch.randn(2, L, case.d, generator=gen, dtype=dtype, requires_grad=True)
    s0 = _random_state(m, gen, dtype) if with_state else m.init_state(2, dtype=dtype)
    y1, s1 = m(x, s0 if with_state else None)
    y2, s2 = _loop(m, x, s0)
    tol = case.tol(dtype)
    torch.testing.assert_close(y1, y2, **tol)
    _close(s1, s2, **tol)
    if not case.parallel:
        return
    w = torch.randn(y1.shape, generator=gen, dtype=dtype)
    params = [x] + [p for p in m.parameters() if p.requires_grad]

    def objective(y, s):  # the outputs and the final state both carry gradient
        return (y * w).sum() + sum(t.real.sum() for t in _tensors(s) if t.is_floating_point() or t.is_complex())

    g1 = torch.autograd.grad(objective(y1, s1), params, allow_unused=True)
    g2 = torch.autograd.grad(objective(y2, s2), params, allow_unused=True)
    for p, a, b in zip(params, g1, g2):
        assert (a is None) == (b is None), p.shape
        if a is not None:
            scale = b.abs().max().clamp(min=1.0)
            torch.testing.assert_close(a / scale, b / scale, **tol)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_chunked_streaming_equals_full_forward(case):
    m = case.build(torch.float64)
    x = torch.randn(2, 40, case.d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        y, s = m(x)
        for k in (1, 13, 39):
            y1, s1 = m(x[:, :k])
            y2, s2 = m(x[:, k:], s1)
            torch.testing.assert_close(torch.cat([y1, y2], 1), y)
            _close(s2, s)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_init_state_shapes(case):
    m = case.build(torch.float64)
    x = torch.randn(2, 5, case.d, dtype=torch.float64)
    with torch.no_grad():
        y, s = m(x)
        s0 = m.init_state(2, dtype=torch.float64)
        y_t, s_t = m.step(x[:, 0], s0)
    assert y.shape == x.shape and y_t.shape == x[:, 0].shape
    shapes = lambda st: [tuple(t.shape) for t in _tensors(st)]  # noqa: E731
    if case.grows:  # a KV cache: one more position per step, the rest of the shape fixed
        assert len(shapes(s0)) == len(shapes(s_t)) == len(shapes(s))
    else:
        assert shapes(s0) == shapes(s_t) == shapes(s), (shapes(s0), shapes(s_t), shapes(s))
    assert all(t.dtype in (torch.float64, torch.complex128) for t in _tensors(s0) if t.is_floating_point() or t.is_complex())


@pytest.mark.parametrize("case", [c for c in CASES if c.causal], ids=lambda c: c.id)
def test_causal(case):
    m = case.build(torch.float64)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 24, case.d, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        y, _ = m(x)
        for t in (1, 10, 23):
            x2 = x.clone()
            x2[:, t:] = torch.randn(x2[:, t:].shape, generator=gen, dtype=torch.float64)
            y2, _ = m(x2)
            torch.testing.assert_close(y2[:, :t], y[:, :t])
            assert not torch.allclose(y2[:, t:], y[:, t:])


LEARNERS = [("lru", {"d_state": 16, "r_min": 0.5}), ("s4d", {"d_state": 16, "ssm_lr": None}), ("s5", {"d_state": 16}),
            ("mingru", {}), ("minlstm", {}), ("ssd", {"d_state": 8, "headdim": 8, "chunk": 8})]


@pytest.mark.parametrize("name,kw", LEARNERS, ids=[n for n, _ in LEARNERS])
def test_learns_a_running_sum(name, kw):
    """in-projection -> mixer -> out-projection fits a scaled running sum: the loss falls tenfold."""
    torch.manual_seed(0)
    x = torch.rand(32, 24, 1) - (0.0 if name.startswith("min") else 0.5)  # min*: positive inputs, as their papers
    y = torch.cumsum(x, 1) * 0.2  # (B, L, 1)
    net = torch.nn.ModuleDict({"i": torch.nn.Linear(1, 16), "m": create_model(name, d_model=16, **kw), "o": torch.nn.Linear(16, 1)})
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        loss = torch.nn.functional.mse_loss(net["o"](net["m"](net["i"](x))[0]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])


def test_every_core_mixer_is_covered():
    covered = {c.name for c in CASES} | set(NOT_HERE)
    names = {e.name for e in list_models(domain="core") if not is_test_variant(e.name)}
    assert names <= covered, f"core models the contract test does not cover: {sorted(names - covered)}; add them to CASES"
