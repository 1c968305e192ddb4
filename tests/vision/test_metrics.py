import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from ostinato.vision import metrics as M


def test_mse_mae_sum_over_pixels_then_mean_over_frames():
    true = np.full((2, 3, 1, 2, 2), 0.5)
    pred = np.zeros_like(true)
    assert M.mse(pred, true) == pytest.approx(4 * 0.25)  # 4 pixels x 0.25 per frame
    assert M.mae(pred, true) == pytest.approx(4 * 0.5)
    rng = np.random.default_rng(0)
    p, t = rng.random((3, 4, 2, 5, 6)), rng.random((3, 4, 2, 5, 6))
    # OpenSTL: np.mean(err, axis=(0, 1)).sum()
    assert M.mse(p, t) == pytest.approx(np.mean((p - t) ** 2, axis=(0, 1)).sum())
    assert M.mae(p, t) == pytest.approx(np.mean(np.abs(p - t), axis=(0, 1)).sum())
    assert M.mse(torch.tensor(p), torch.tensor(t)) == pytest.approx(M.mse(p, t))


def test_psnr_float_and_clipping():
    t = np.zeros((1, 2, 1, 8, 8))
    p = t + 0.1
    assert M.psnr(p, t) == pytest.approx(20.0)  # -10 log10(0.01)
    assert M.psnr(t - 0.5, t) == math.inf  # clipped to [0, 1] -> perfect


def test_pfgnet_uint8_psnr_wraps_around():
    t = np.ones((1, 1, 1, 4, 4))
    p = np.zeros_like(t)
    assert M.psnr(p, t) == pytest.approx(0.0)  # error 1 everywhere
    # uint8: 0 - 255 wraps to 1, 1**2 = 1 -> "48.1 dB" for a completely wrong frame
    assert M.psnr_pfgnet_uint8(p, t) == pytest.approx(20 * math.log10(255))


def test_ssim_matches_scikit_image():
    rng = np.random.default_rng(1)
    t = rng.random((2, 3, 1, 16, 16))
    p = np.clip(t + 0.1 * rng.standard_normal(t.shape), 0, 1)
    ref = np.mean([structural_similarity(p[n, f, 0], t[n, f, 0], win_size=7, data_range=1.0)
                   for n in range(2) for f in range(3)])
    assert M.ssim(p, t) == pytest.approx(ref)
    assert M.ssim(t, t) == pytest.approx(1.0)
    c3 = rng.random((1, 1, 3, 16, 16))
    ref3 = structural_similarity(c3[0, 0].transpose(1, 2, 0) * 0.5, c3[0, 0].transpose(1, 2, 0),
                                 channel_axis=-1, data_range=1.0, win_size=7)
    assert M.ssim(c3 * 0.5, c3) == pytest.approx(ref3)
    assert M.ssim(p, t, data_range=2.0) > M.ssim(p, t)  # OpenSTL's old implicit range is more lenient


def test_streaming_accumulator_equals_full():
    rng = np.random.default_rng(2)
    p, t = rng.random((5, 3, 1, 8, 8)), rng.random((5, 3, 1, 8, 8))
    acc = M.FrameMetrics(("mse", "mae", "ssim", "psnr", "rmse"))
    acc.update(p[:2], t[:2])
    acc.update(p[2:], t[2:])
    out = acc.compute()
    assert out["mse"] == pytest.approx(M.mse(p, t))
    assert out["mae"] == pytest.approx(M.mae(p, t))
    assert out["ssim"] == pytest.approx(M.ssim(p, t))
    assert out["psnr"] == pytest.approx(M.psnr(p, t))
    assert out["rmse"] == pytest.approx(math.sqrt(M.mse(p, t)))
    per = acc.compute_per_step()["mse"]
    assert per == pytest.approx(((p - t) ** 2).sum(axis=(2, 3, 4)).mean(axis=0).tolist())


def test_params_and_flops():
    conv = torch.nn.Conv2d(1, 4, 3, padding=1)
    assert M.count_params(conv) == 4 * 9 + 4
    x = torch.rand(1, 1, 8, 8)
    assert M.count_flops(lambda: conv(x)) == 2 * 4 * 9 * 64  # 2 FLOPs per multiply-add
    lin = torch.nn.Linear(3, 5, bias=False)
    assert M.count_flops(lambda: lin(torch.rand(7, 3))) == 2 * 7 * 3 * 5


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        M.mse(np.zeros((1, 2, 1, 4, 4)), np.zeros((1, 3, 1, 4, 4)))
