"""Selective scan (Mamba): chunked and compiled paths vs the reference loop; block streaming; learning."""
import pytest
import torch

from ostinato.core.errors import ConfigError
from ostinato.core.layers import selective as sel
from ostinato.core.layers.selective import Mamba, selective_scan, selective_scan_ref
from ostinato.core.registry import create_model

# the tolerances of mamba's own tests (mamba tests/ops/test_selective_scan.py) for fp32; fp64 is exact up to rounding
TOL = {torch.float32: dict(rtol=6e-4, atol=2e-3), torch.float64: dict(rtol=1e-9, atol=1e-9)}


def _inputs(L, dtype, with_h0, gen, Bsz=2, D=6, N=4):
    r = lambda *s: torch.randn(*s, generator=gen, dtype=dtype)  # noqa: E731
    d = dict(u=r(Bsz, L, D), delta=r(Bsz, L, D), A=-torch.rand(D, N, generator=gen, dtype=dtype) * 4,
             B=r(Bsz, L, N), C=r(Bsz, L, N), D=r(D), z=r(Bsz, L, D), delta_bias=r(D))
    if with_h0:
        d["h0"] = r(Bsz, D, N)
    return d


def _parity(method, L, dtype, with_h0, seed, **kw):
    """Outputs, final state and gradients of every input of ``method`` against the reference."""
    gen = torch.Generator().manual_seed(seed)
    ins = _inputs(L, dtype, with_h0, gen)
    for k, v in kw.pop("override", {}).items():
        ins[k] = v(ins, gen) if callable(v) else v
    drop = kw.pop("drop", ())
    ins = {k: v for k, v in ins.items() if k not in drop}
    softplus = kw.pop("delta_softplus", True)
    x1 = {k: v.clone().requires_grad_() for k, v in ins.items()}
    x2 = {k: v.clone().requires_grad_() for k, v in ins.items()}
    y1, h1 = selective_scan(**x1, delta_softplus=softplus, method=method, **kw)
    y2, h2 = selective_scan_ref(**x2, delta_softplus=softplus)
    torch.testing.assert_close(y1, y2, **TOL[dtype])
    torch.testing.assert_close(h1, h2, **TOL[dtype])
    wy = torch.randn(y1.shape, generator=gen, dtype=dtype)
    wh = torch.randn(h1.shape, generator=gen, dtype=dtype)
    ((y1 * wy).sum() + (h1 * wh).sum()).backward()
    ((y2 * wy).sum() + (h2 * wh).sum()).backward()
    for k in ins:
        g1, g2 = x1[k].grad, x2[k].grad
        scale = g2.abs().max().clamp(min=1.0)
        torch.testing.assert_close(g1 / scale, g2 / scale, **TOL[dtype], msg=lambda m: f"grad {k}: {m}")


@pytest.mark.parametrize("L", [1, 7, 64, 257])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_h0", [False, True])
def test_chunked_matches_reference(L, dtype, with_h0):
    _parity("chunked", L, dtype, with_h0, seed=L + 100 * with_h0, chunk=5)


@pytest.mark.parametrize("L", [1, 7, 64, 257])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_h0", [False, True])
def test_compiled_path_math_matches_reference(L, dtype, with_h0):
    # the compiled path's chunk kernels run eagerly here (no compile): its algorithm, padding
    # of the last chunk, fused softplus/D/gate and in-place outputs against the reference
    with torch.compiler.set_stance("force_eager"):
        _parity("compiled", L, dtype, with_h0, seed=L + 100 * with_h0)


@pytest.mark.parametrize(
    "case",
    [
        dict(drop=("z", "D", "delta_bias")),
        dict(delta_softplus=False, override={"delta": lambda i, g: i["delta"].abs()}),
        dict(chunk=3),
    ],
    ids=["no_gate_skip_bias", "no_softplus", "chunk3"],
)
def test_compiled_path_options_match_reference(case):
    with torch.compiler.set_stance("force_eager"):
        _parity("compiled", 23, torch.float64, True, seed=7, **case)


def test_large_decays_stay_exact():
    # Δ up to ~10 and A down to -16: exp(Δ A) underflows to 0 in places; both fast paths stay
    # equal to the loop (neither divides by a decay nor forms exp(-Δ A))
    big = dict(override={
        "delta": lambda i, g: torch.rand(i["u"].shape, generator=g, dtype=i["u"].dtype) * 10,
        "A": lambda i, g: -torch.rand(i["A"].shape, generator=g, dtype=i["A"].dtype) * 16,
    }, delta_softplus=False, drop=("delta_bias",))
    _parity("chunked", 64, torch.float32, True, seed=3, **big)
    with torch.compiler.set_stance("force_eager"):
        _parity("compiled", 64, torch.float32, True, seed=3, **big)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_kernels_match_reference(dtype):
    # real torch.compile (inductor C++): several minutes of compilation on a loaded 2-core machine
    for L in (1, 7, 64, 257):
        for with_h0 in (False, True):
            _parity("compiled", L, dtype, with_h0, seed=L + 100 * with_h0)


@pytest.mark.parametrize("chunk", [1, 3, 16, 64])
def test_chunk_length_does_not_change_the_result(chunk):
    gen = torch.Generator().manual_seed(chunk)
    ins = _inputs(23, torch.float64, True, gen)
    y1, h1 = selective_scan(**ins, chunk=chunk)
    y2, h2 = selective_scan_ref(**ins)
    torch.testing.assert_close(y1, y2, **TOL[torch.float64])
    torch.testing.assert_close(h1, h2, **TOL[torch.float64])


def test_bad_method_and_chunk():
    ins = _inputs(3, torch.float32, False, torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match="selective scan method"):
        selective_scan(**ins, method="cuda")
    with pytest.raises(ConfigError, match="chunk=-1"):
        selective_scan(**ins, chunk=-1)


def _block():
    torch.manual_seed(0)
    return Mamba(sel.TestMambaConfig()).double()


def test_block_forward_equals_step_loop_and_split():
    m = _block()
    x = torch.randn(3, 19, 8, dtype=torch.float64)
    y, s = m(x)
    st = m.init_state(3, dtype=torch.float64)
    ys = []
    for t in range(x.shape[1]):
        yt, st = m.step(x[:, t], st)
        ys.append(yt)
    torch.testing.assert_close(torch.stack(ys, 1), y)
    torch.testing.assert_close(st["ssm"], s["ssm"])
    torch.testing.assert_close(st["conv"], s["conv"])
    for k in (1, 2, 11):  # k < d_conv - 1 exercises the conv state shorter than the window
        y1, s1 = m(x[:, :k])
        y2, s2 = m(x[:, k:], s1)
        torch.testing.assert_close(torch.cat([y1, y2], 1), y)
        torch.testing.assert_close(s2["ssm"], s["ssm"])


def test_block_ref_chunked_and_compiled_paths_agree():
    m = _block()
    x = torch.randn(2, 30, 8, dtype=torch.float64)
    y1, s1 = m(x)
    m.cfg.scan_method = "ref"
    y2, s2 = m(x)
    torch.testing.assert_close(y1, y2)
    m.cfg.scan_method = "compiled"
    with torch.compiler.set_stance("force_eager"):  # the compiled path's kernels, run eagerly
        y3, s3 = m(x)
    torch.testing.assert_close(y3, y2)
    torch.testing.assert_close(s3["ssm"], s2["ssm"])


def test_init_and_optimizer_hints():
    m = create_model("mamba", d_model=32)
    assert m.dt_rank == 2 and m.d_inner == 64
    A = -torch.exp(m.A_log)
    torch.testing.assert_close(A[0], -torch.arange(1, 17, dtype=torch.float32))
    assert m.A_log._no_weight_decay and m.D._no_weight_decay
    dt = torch.nn.functional.softplus(m.dt_proj.bias)
    assert dt.min() >= 1e-4 - 1e-9 and dt.max() <= 0.1 + 1e-6


def test_learns_running_sum():
    torch.manual_seed(0)
    x = torch.randn(32, 24, 1)
    y = torch.cumsum(x, 1) * 0.2
    net = torch.nn.ModuleDict({"i": torch.nn.Linear(1, 16), "m": Mamba(sel.TestMambaConfig(d_model=16, d_state=8)), "o": torch.nn.Linear(16, 1)})
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(120):
        pred = net["o"](net["m"](net["i"](x))[0])
        loss = torch.nn.functional.mse_loss(pred, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])
