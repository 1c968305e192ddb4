"""eval.protocol=openstl: OpenSTL's metric convention (checked against a hand computation of its
formulas) and its Moving MNIST test set (mnist_test_seq.npy), or a one-line error."""
import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from ostinato.core import recipe as rec
from ostinato.core.build import build_data, build_model, evaluate_split
from ostinato.core.errors import ConfigError, DataError

REL = "video/moving_mnist/mnist_test_seq.npy"


def _fake_official(root, n=3):
    """A small file in the official layout: time-major (20, n, 64, 64) uint8, smooth blobs."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    arr = np.zeros((20, n, 64, 64), np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(10, 54, 2)
        for t in range(20):
            arr[t, i] = (255 * np.exp(-((yy - cy - t) ** 2 + (xx - cx) ** 2) / 40.0)).astype(np.uint8)
    path = root / REL
    path.parent.mkdir(parents=True)
    np.save(path, arr)
    return arr


def _hand_ssim(a, b, data_range):
    """Wang et al.'s SSIM with skimage's defaults (7x7 uniform window, sample covariance, K1 0.01,
    K2 0.03), mean over the windows inside the frame, written out."""
    pa, pb = (sliding_window_view(x, (7, 7)).reshape(x.shape[0] - 6, x.shape[1] - 6, 49) for x in (a, b))
    ma, mb = pa.mean(-1), pb.mean(-1)
    cov = 49 / 48
    va, vb = cov * ((pa - ma[..., None]) ** 2).mean(-1), cov * ((pb - mb[..., None]) ** 2).mean(-1)
    vab = cov * ((pa - ma[..., None]) * (pb - mb[..., None])).mean(-1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = (2 * ma * mb + c1) * (2 * vab + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    return s.mean()


def _run(tmp_path, protocol):
    cfg = rec.load("vision/test_convlstm", ["data.image_size=64", f"eval.protocol={protocol}"])
    data = build_data(cfg, data_root=tmp_path)
    torch.manual_seed(0)
    return cfg, data, build_model(cfg, data.model_kwargs).eval()


def test_openstl_protocol_matches_hand_computation(tmp_path):
    arr = _fake_official(tmp_path)
    cfg, data, model = _run(tmp_path, "openstl")
    got = evaluate_split(model, data, "test", cfg)
    seq = arr.transpose(1, 0, 2, 3)[:, :, None] / 255.0  # (N, 20, 1, 64, 64), OpenSTL's loader
    x, true = seq[:, :4], seq[:, 4:8]  # the recipe's 4 -> 4 frames
    with torch.no_grad():
        pred = model(torch.tensor(x, dtype=torch.float32), 4).double().numpy()
    # OpenSTL's metrics.py: MSE/MAE = np.mean(err, axis=(0, 1)).sum() on the raw prediction
    assert got["mse"] == pytest.approx(np.mean((pred - true) ** 2, axis=(0, 1)).sum(), rel=1e-6)
    assert got["mae"] == pytest.approx(np.mean(np.abs(pred - true), axis=(0, 1)).sum(), rel=1e-6)
    clip = np.clip(pred, 0, 1)  # then clipped for SSIM/PSNR; SSIM with skimage's float range, 2
    ssim = np.mean([[_hand_ssim(clip[b, f, 0], true[b, f, 0], 2.0) for f in range(4)] for b in range(3)])
    psnr = np.mean([[-10 * np.log10(np.mean((clip[b, f] - true[b, f]) ** 2)) for f in range(4)] for b in range(3)])
    assert got["ssim"] == pytest.approx(ssim, rel=1e-5) and got["psnr"] == pytest.approx(psnr, rel=1e-6)
    # the default protocol: SSIM with data_range 1 (lower here), on the generated held-out-digit sequences
    cfg1, data1, _ = _run(tmp_path, "ostinato")
    assert len(data1.test) != 3 and len(data.test) != 3  # openstl swaps the test split at evaluation only
    ssim1 = np.mean([[_hand_ssim(clip[b, f, 0], true[b, f, 0], 1.0) for f in range(4)] for b in range(3)])
    assert ssim1 < ssim


def test_missing_official_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("OSTINATO_DATA", raising=False)
    cfg, data, model = _run(tmp_path, "openstl")
    with pytest.raises(DataError) as e:
        evaluate_split(model, data, "test", cfg)
    msg = str(e.value)
    assert "\n" not in msg and "mnist_test_seq.npy" in msg and str(tmp_path / REL) in msg
    evaluate_split(model, data, "val", cfg)  # validation never needs the file


def test_conflicting_ssim_range_is_refused():
    with pytest.raises(ConfigError, match="eval.protocol=openstl"):
        rec.load("vision/test_convlstm", ["eval.protocol=openstl", "eval.ssim_data_range=0.5"])
