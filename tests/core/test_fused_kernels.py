"""The fused C++ kernels (ostinato.core.kernels) against the reference loops: outputs, final
states and the gradients of every input, fp32, L in {1, 7, 64, 257} (4096: slow); 1 and 2
threads; the clean fallback when the kernels cannot be built; method selection.

The first test run on a machine compiles the kernels (about a minute, cached afterwards)."""
import pytest
import torch

from ostinato.core import kernels
from ostinato.core.layers.selective import selective_scan, selective_scan_ref
from ostinato.core.scan import scan

LENGTHS = [1, 7, 64, 257, pytest.param(4096, marks=pytest.mark.slow)]
SEL_INPUTS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "h0")


@pytest.fixture(scope="module")
def ops():
    ops = kernels.load(build=True)
    if ops is None:
        pytest.skip("fused kernels unavailable here (no compiler?)")
    return ops


def close(x, ref, name, tol=1e-4):
    """max |x - ref| <= tol * (1 + max |ref|): fp32 tolerance at the tensor's scale."""
    err = (x - ref).abs().max().item()
    assert err <= tol * (1 + ref.abs().max().item()), f"{name}: max error {err:.3g}, scale {ref.abs().max().item():.3g}"


def sel_inputs(Bsz, L, D, N, seed=0, big_delta=False):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return {
        "u": r(Bsz, L, D),
        "delta": r(Bsz, L, D) * 0.5 + (40.0 if big_delta else -1.0),  # softplus(40) = 40: exp(Δ A) underflows to 0
        "A": -torch.rand(D, N, generator=g) * 4 - 0.1,
        "B": r(Bsz, L, N), "C": r(Bsz, L, N), "D": r(D), "z": r(Bsz, L, D),
        "delta_bias": r(D) * 0.3, "h0": r(Bsz, D, N),
    }


def run_sel(fn, x, **kw):
    leaves = {k: v.clone().requires_grad_() for k, v in x.items()}
    out, last = fn(**leaves, **kw)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(7))
    ((out * w).sum() + (last * last).sum()).backward()  # a gradient through the final state too
    return out.detach(), last.detach(), {k: v.grad for k, v in leaves.items()}


def check_sel(x, tol=1e-4, **kw):
    ref = run_sel(selective_scan_ref, x, **kw)
    got = run_sel(selective_scan, x, method="fused", **kw)
    close(got[0], ref[0], "out", tol)
    close(got[1], ref[1], "last state", tol)
    for k in x:
        close(got[2][k], ref[2][k], f"grad {k}", tol)


@pytest.mark.parametrize("L", LENGTHS)
def test_selective_parity(ops, L):
    # D = 19: one full block of 16 channels and a partial one; N = 5
    check_sel(sel_inputs(2, L, 19, 5, seed=L), delta_softplus=True)


def test_selective_parity_without_options(ops):
    x = sel_inputs(2, 33, 16, 3)
    for k in ("D", "z", "delta_bias", "h0"):
        del x[k]
    x["delta"] = x["delta"].abs() * 0.3  # Δ used as given: keep it positive
    check_sel(x, delta_softplus=False)


def test_selective_underflowing_decay(ops):
    """Δ = 40, A <= -0.1: exp(Δ A) underflows to 0 (both paths), gradients stay finite and equal."""
    check_sel(sel_inputs(1, 40, 16, 4, big_delta=True), delta_softplus=True)


def test_selective_chunk_lengths(ops):
    """Any checkpoint interval gives the same result (the backward recomputes from checkpoints)."""
    x = sel_inputs(1, 50, 16, 4)
    base = run_sel(selective_scan, x, method="fused", chunk=64, delta_softplus=True)
    for chunk in (1, 7, 50):
        got = run_sel(selective_scan, x, method="fused", chunk=chunk, delta_softplus=True)
        close(got[0], base[0], f"out chunk={chunk}", 1e-6)
        for k in x:
            close(got[2][k], base[2][k], f"grad {k} chunk={chunk}", 1e-6)


@pytest.mark.parametrize("threads", [1, 2])
def test_selective_threads(ops, threads):
    """One batch element, 3 channel blocks, enough work per block (L N 16 >= 2^16) for the kernels to
    use every thread; with 2 threads the backward splits the channels into groups."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        check_sel(sel_inputs(1, 1024, 40, 4, seed=3), delta_softplus=True)
    finally:
        torch.set_num_threads(old)


def run_lin(a, b, h0, method):
    leaves = [None if x is None else x.clone().requires_grad_() for x in (a, b, h0)]
    h = scan(*leaves, method=method)
    w = torch.randn(h.shape, dtype=h.dtype, generator=torch.Generator().manual_seed(3))
    (h * w).real.sum().backward() if h.is_complex() else (h * w).sum().backward()
    return h.detach(), [None if x is None else x.grad for x in leaves]


def check_lin(a, b, h0):
    ref_h, ref_g = run_lin(a, b, h0, "sequential")
    h, g = run_lin(a, b, h0, "fused")
    close(h, ref_h, "h")
    close(h[:, -1], ref_h[:, -1], "final state")
    for name, x, y in zip(("a", "b", "h0"), g, ref_g):
        if y is not None:
            close(x, y, f"grad {name}")


def decay(*shape, cplx=False, g=None):
    """|a| < 1: a stable recurrence (complex: modulus in [0.5, 1), any phase)."""
    r = torch.rand(*shape, generator=g) * 0.5 + 0.5
    return torch.polar(r, torch.rand(*shape, generator=g) * 6.28) if cplx else r


@pytest.mark.parametrize("cplx", [False, True])
@pytest.mark.parametrize("L", LENGTHS)
def test_linear_parity(ops, L, cplx):
    g = torch.Generator().manual_seed(L)
    dt = torch.complex64 if cplx else torch.float32
    S = 70  # one full block of 64 and a partial one
    b, h0 = torch.randn(2, L, S, dtype=dt, generator=g), torch.randn(2, S, dtype=dt, generator=g)
    check_lin(decay(2, L, S, cplx=cplx, g=g), b, h0)  # a per step
    check_lin(decay(1, 1, S, cplx=cplx, g=g), b, None)  # a shared over batch and time (S5, S4D)


@pytest.mark.parametrize("cplx", [False, True])
def test_linear_broadcasts(ops, cplx):
    g = torch.Generator().manual_seed(0)
    dt = torch.complex64 if cplx else torch.float32
    b = torch.randn(3, 20, 4, 6, dtype=dt, generator=g)
    check_lin(decay(1, 1, 4, 1, cplx=cplx, g=g), b, torch.randn(3, 4, 6, dtype=dt, generator=g))  # shared over a state axis
    check_lin(decay(1, 20, 4, 6, cplx=cplx, g=g), b, None)  # shared over the batch only
    lam = decay(24, cplx=cplx, g=g)  # LRU: lam.expand(B, L, N), a stride-0 view
    check_lin(lam.expand(3, 20, 24), torch.randn(3, 20, 24, dtype=dt, generator=g), None)


def test_linear_real_a_complex_b(ops):
    g = torch.Generator().manual_seed(1)
    check_lin(decay(2, 30, 8, g=g), torch.randn(2, 30, 8, dtype=torch.complex64, generator=g), None)


@pytest.mark.parametrize("threads", [1, 2])
def test_linear_threads(ops, threads):
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(2)
        L = 1024  # L x 64 >= 2^16: enough work per block for the kernel to use every thread
        check_lin(decay(1, L, 200, g=g), torch.randn(1, L, 200, generator=g), torch.randn(1, 200, generator=g))
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_mingru_fused_mode(ops, name):
    """minGRU/minLSTM with method="fused" against their sequential loop: outputs, state, gradients."""
    from ostinato.core.registry import create_model

    torch.manual_seed(0)
    seq = create_model(name, d_model=12, method="sequential")
    fused = create_model(name, d_model=12, method="fused")
    fused.load_state_dict(seq.state_dict())
    x, h0 = torch.randn(2, 70, 12), torch.randn(2, 12)
    (y1, s1), (y2, s2) = seq(x, h0), fused(x, h0)
    close(y2, y1, "out")
    close(s2, s1, "state")
    (y1.sin().sum() + s1.sum()).backward()
    (y2.sin().sum() + s2.sum()).backward()
    for (k, p1), p2 in zip(seq.named_parameters(), fused.parameters()):
        close(p2.grad, p1.grad, f"grad {k}")


@pytest.mark.parametrize("name, extra", [("test_s5", {}), ("test_s5", {"bidirectional": True}), ("test_lru", {}),
                                         ("test_s4d", {"mode": "scan"})])
def test_layers_pass_the_method_through(ops, name, extra):
    """S5, LRU, S4D with scan_method="fused" against scan_method="sequential": outputs and gradients."""
    from ostinato.core.registry import create_model

    torch.manual_seed(0)
    ref = create_model(name, scan_method="sequential", **extra)
    fused = create_model(name, scan_method="fused", **extra)
    fused.load_state_dict(ref.state_dict())
    x = torch.randn(2, 40, ref.cfg.d_model)
    y1, y2 = ref(x)[0], fused(x)[0]
    close(y2, y1, "out")
    y1.sin().sum().backward()
    y2.sin().sum().backward()
    for (k, p1), p2 in zip(ref.named_parameters(), fused.parameters()):
        if p1.grad is not None:
            close(p2.grad, p1.grad, f"grad {k}")


def test_auto_uses_the_built_kernels(ops):
    x = sel_inputs(1, 20, 16, 4)
    auto = selective_scan(**x, delta_softplus=True, method="auto")[0]
    fused = selective_scan(**x, delta_softplus=True, method="fused")[0]
    assert torch.equal(auto, fused)
    a, b = decay(2, 40, 8), torch.randn(2, 40, 8)
    assert torch.equal(scan(a, b, method="auto"), scan(a, b, method="fused"))


@pytest.fixture
def failed_build(monkeypatch, tmp_path):
    """A fresh loader state whose build fails (as without a compiler), with an empty cache."""
    monkeypatch.setattr(kernels, "_state", {"ops": None, "failed": None, "noticed": False})
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))

    def no_compiler(name):
        raise RuntimeError("Error building extension: c++: command not found")

    monkeypatch.setattr(kernels, "_compile", no_compiler)


def test_fallback_when_the_build_fails(failed_build, capsys):
    x = sel_inputs(1, 20, 16, 4)
    got = selective_scan(**x, delta_softplus=True, method="fused")
    want = selective_scan(**x, delta_softplus=True, method="chunked")
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    a, b = decay(2, 40, 8), torch.randn(2, 40, 8)
    assert torch.equal(scan(a, b, method="fused"), scan(a, b, method="associative"))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fused CPU kernels unavailable" in err[0] and "command not found" in err[0]
    assert not kernels.available()


def test_auto_does_not_build(failed_build, capsys):
    """auto with nothing built: the PyTorch paths, no compile attempt, no notice."""
    a, b = decay(2, 40, 8), torch.randn(2, 40, 8)
    assert torch.equal(scan(a, b, method="auto"), scan(a, b, method="associative"))
    assert kernels._state["failed"] is None and capsys.readouterr().err == ""


def test_disabled_by_environment(monkeypatch, capsys):
    monkeypatch.setattr(kernels, "_state", {"ops": None, "failed": None, "noticed": False})
    monkeypatch.setenv("OSTINATO_FUSED", "0")
    a, b = decay(2, 40, 8), torch.randn(2, 40, 8)
    assert torch.equal(scan(a, b, method="fused"), scan(a, b, method="associative"))
    assert "OSTINATO_FUSED=0" in capsys.readouterr().err
