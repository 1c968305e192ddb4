import numpy as np
import pytest
import torch
from scipy.ndimage import correlate

from ostinato.core.registry import create_model
from ostinato.vision.models import pfgnet as P


def _x(b=2, t=4, c=1, h=16, w=16, seed=0):
    return torch.rand(b, t, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_shapes_and_autoregressive_chunks():
    torch.manual_seed(0)
    m = create_model("test_pfgnet").eval()
    x = _x()
    assert m(x, 4).shape == (2, 4, 1, 16, 16)
    assert m(x, 2).shape == (2, 2, 1, 16, 16)
    y = m(x, 10)  # 3 passes of 4 frames, cut to 10
    assert y.shape == (2, 10, 1, 16, 16)
    a = m.step(x)
    b = m.step(a)
    c = m.step(b)
    assert torch.allclose(y, torch.cat([a, b, c], 1)[:, :10])
    assert torch.allclose(m(x, 2), a[:, :2])
    with pytest.raises(Exception, match="in_frames=4"):
        m(_x(t=3), 4)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    m = create_model("test_pfgnet", drop_path=0.1)
    batch = {"frames_in": _x(), "frames_out": _x(seed=1)}
    loss, logs = m.loss(batch)
    loss.backward()
    assert logs["mse"] == pytest.approx(loss.item())
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(p.grad.abs().sum() > 0 for n, p in m.named_parameters() if "translator" not in n)


def test_released_param_counts():
    assert sum(p.numel() for p in create_model("pfgnet_mmnist").parameters()) == 41_261_409
    n = sum(p.numel() for p in create_model("pfgnet_mmnist_s").parameters())
    assert n == 2_775_969 and 1.9e6 <= n <= 7.3e6


def test_cue_kernels_are_sobel_and_laplacian():
    sobel_x = np.outer([1, 2, 1], [-1, 0, 1])  # smoothing (rows) x central difference (cols)
    assert np.array_equal(np.array(P.SOBEL_X), sobel_x)
    assert np.array_equal(np.array(P.SOBEL_Y), sobel_x.T)
    lap = np.zeros((3, 3))
    lap[1, 0] = lap[1, 2] = lap[0, 1] = lap[2, 1] = 1
    lap[1, 1] = -4  # 5-point stencil: sum of 4 neighbours - 4 x centre
    assert np.array_equal(np.array(P.LAPLACIAN), lap)


def test_frequency_cues_match_definitions():
    rng = np.random.default_rng(0)
    img = rng.random((2, 9, 11))  # (C, H, W)
    k = torch.tensor([P.SOBEL_X, P.SOBEL_Y, P.LAPLACIAN], dtype=torch.float64).unsqueeze(1)
    cues = P.frequency_cues(torch.tensor(img)[None], k)[0].numpy()  # (3, H, W)
    corr = lambda a, f: correlate(a, np.array(f), mode="constant", cval=0.0)  # noqa: E731
    gx = np.stack([corr(c, P.SOBEL_X) for c in img])
    gy = np.stack([corr(c, P.SOBEL_Y) for c in img])
    lap = np.stack([corr(c, P.LAPLACIAN) for c in img])
    box = lambda a: correlate(a, np.full((3, 3), 1 / 9), mode="constant", cval=0.0)  # noqa: E731
    var = np.stack([np.maximum(box(c * c) - box(c) ** 2, 0) for c in img])
    np.testing.assert_allclose(cues[0], np.sqrt(gx**2 + gy**2 + 1e-6).mean(0), rtol=1e-10)
    np.testing.assert_allclose(cues[1], np.abs(lap).mean(0), rtol=1e-10)
    np.testing.assert_allclose(cues[2], var.mean(0), atol=1e-12)
    # a unit ramp along x: Sobel-x = 8 inside, Sobel-y = 0, Laplacian = 0
    ramp = torch.arange(8.0, dtype=torch.float64).repeat(8, 1)[None, None]
    c = P.frequency_cues(ramp, k)[0, :, 1:-1, 1:-1]
    assert torch.allclose(c[0], torch.full_like(c[0], 8.0), atol=1e-6)
    assert torch.allclose(c[1], torch.zeros_like(c[1]))


def test_block_initial_state_and_grn():
    blk = P.PFGBlock(32, drop_path=0.0)
    assert torch.all(blk.gamma_tm == 1e-6) and torch.all(blk.gamma_cm == 1e-6)
    assert blk.gamma_tm._no_weight_decay
    assert all(torch.all(b.beta == 0) for b in blk.pfga.branches)  # suppression starts off
    assert [b.dw_h.kernel_size for b in blk.pfga.branches] == [(1, 9), (1, 15), (1, 31)]
    w = blk.pw_in.weight  # Kaiming normal, fan-out = out_channels for a 1x1 conv
    assert abs(w.std().item() - (2.0 / w.shape[0]) ** 0.5) < 0.1 * (2.0 / w.shape[0]) ** 0.5
    grn = P.GRN(3)
    with torch.no_grad():
        grn.gamma.fill_(0.5)
        grn.beta.fill_(0.25)
    x = torch.rand(2, 3, 4, 5)
    ref = x + 0.5 * x / (x.pow(2).sum((2, 3), keepdim=True).sqrt() + 1e-6) + 0.25
    assert torch.allclose(grn(x), ref)
    x = torch.rand(2, 32, 8, 8)
    assert torch.allclose(blk(x), x, atol=1e-3)  # LayerScale 1e-6: the block starts near identity


def test_drop_path_schedule_and_config_errors():
    assert P.drop_path_rates(4, 0.0) == [0.0] * 4
    r = P.drop_path_rates(5, 0.1)
    assert r[0] == pytest.approx(0.01) and r[-1] == pytest.approx(0.1)
    assert np.allclose(np.diff(r), np.diff(r)[0])
    from ostinato.core.errors import ConfigError

    with pytest.raises(ConfigError, match="N_S"):
        create_model("test_pfgnet", N_S=3)


def test_drop_path_is_timms():
    from timm.layers import DropPath

    assert isinstance(P.PFGBlock(8, drop_path=0.1).drop_path, DropPath)
    assert isinstance(P.PFGBlock(8).drop_path, torch.nn.Identity)
