import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from ostinato.core.data import index_rng
from ostinato.core.errors import DataError
from ostinato.core.registry import get_dataset, make_config
from ostinato.vision.data import kth as K
from ostinato.vision.data import mnist as MM
from ostinato.vision.data import taxibj as TB
from ostinato.vision.data import video as V


def build(name, data_root=None, **over):
    e = get_dataset(name)
    return e.builder(make_config(e, over), data_root)


# ------------------------------------------------------------------ MNIST / Moving MNIST

def test_idx_reader_shipped_digits_and_bad_file(tmp_path):
    d = MM.load_digits("video/mnist/t10k-images-idx3-ubyte.gz")
    assert d.shape == (10000, 28, 28) and d.dtype == np.uint8
    assert abs(d.mean() - 33.79) < 0.01  # MANIFEST's check value
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") + b"\x00" * 10))
    with pytest.raises(DataError, match="IDX header"):
        MM.read_idx(bad)
    with pytest.raises(DataError, match="IDX"):
        MM.read_idx(tmp_path / "missing.gz")


def test_digit_split_is_fixed_and_disjoint():
    tr, va, te = MM.split_digits(10000)
    assert (len(tr), len(va), len(te)) == (8000, 1000, 1000)
    assert len(set(tr) | set(va) | set(te)) == 10000
    assert np.array_equal(te, MM.split_digits(10000)[2])


def test_generator_deterministic_and_digits_inside_frame():
    digits = MM.load_digits("video/mnist/t10k-images-idx3-ubyte.gz")[:50]
    a = MM.moving_mnist_sequence(index_rng(0, 0, 5), digits, 20)
    b = MM.moving_mnist_sequence(index_rng(0, 0, 5), digits, 20)
    c = MM.moving_mnist_sequence(index_rng(0, 1, 5), digits, 20)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == (20, 64, 64) and a.min() >= 0 and a.max() <= 1
    for i in range(30):  # one digit: every frame holds the whole digit (nothing cropped)
        rng = index_rng(7, 0, i)
        top, left = MM.bouncing_trajectory(np.random.Generator(np.random.PCG64(i)), 200, 0.1, 36)
        assert top.min() >= 0 and top.max() <= 36 and left.min() >= 0 and left.max() <= 36
        seq = MM.moving_mnist_sequence(rng, digits, 40, num_digits=1, step_length=0.15)
        mass = seq.reshape(40, -1).sum(1)
        assert np.allclose(mass, mass[0], rtol=1e-5)


def test_bounce_reflects_velocity():
    class R:  # x=0.95, y=0.5, theta=0 -> moves right in x (cos) and bounces at 1
        vals = iter([0.95, 0.5, 0.0])

        def random(self):
            return next(self.vals)

    top, left = MM.bouncing_trajectory(R(), 4, 0.1, 36)
    assert list(left) == [36, int(36 * 0.9), int(36 * 0.8), int(36 * 0.7)]
    assert list(top) == [18] * 4


def test_mmnist_bundle_train_resumable_val_test_fixed():
    b = build("mmnist", train_size=4, val_size=2, test_size=3)
    assert b.model_kwargs == {"in_frames": 10, "out_frames": 10, "channels": 1, "height": 64, "width": 64}
    it = b.train[1]
    assert it["frames_in"].shape == (10, 1, 64, 64) and it["frames_out"].shape == (10, 1, 64, 64)
    b.train.set_epoch(3)
    e3 = b.train[1]["frames_in"]
    b.train.set_epoch(0)
    assert torch.equal(b.train[1]["frames_in"], it["frames_in"]) and not torch.equal(e3, it["frames_in"])
    b.test.set_epoch(5)
    t0 = b.test[0]["frames_out"]
    b2 = build("mmnist", train_size=4, val_size=2, test_size=3, seed=99)  # test set ignores the seed
    assert torch.equal(b2.test[0]["frames_out"], t0)
    assert not torch.equal(b.val[0]["frames_in"], b.test[0]["frames_in"])


def test_official_test_file_is_time_major(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (20, 3, 64, 64), dtype=np.uint8)
    (tmp_path / "video" / "moving_mnist").mkdir(parents=True)
    np.save(tmp_path / "video/moving_mnist/mnist_test_seq.npy", arr)
    b = build("mmnist", tmp_path, test="official", train_size=2, val_size=1, test_size=0)
    assert len(b.test) == 3
    it = b.test[2]
    assert torch.allclose(it["frames_in"][:, 0], torch.tensor(arr[:10, 2] / 255.0, dtype=torch.float32))
    assert torch.allclose(it["frames_out"][:, 0], torch.tensor(arr[10:, 2] / 255.0, dtype=torch.float32))
    np.save(tmp_path / "video/moving_mnist/mnist_test_seq.npy", arr.astype(np.float32))
    with pytest.raises(DataError, match="uint8"):
        build("mmnist", tmp_path, test="official", train_size=2, val_size=1)


def test_long_horizon_bundle():
    b = build("mmnist_long", train_size=2, val_size=1, test_size=1, train_frames=30, in_frames=10, out_frames=40)
    tr = b.train[0]
    assert tr["frames_in"].shape[0] + tr["frames_out"].shape[0] == 30
    te = b.test[0]
    assert te["frames_in"].shape[0] == 10 and te["frames_out"].shape[0] == 40
    assert b.meta["step_length"] == 0.15


# ------------------------------------------------------------------ generic video / frames

def test_video_reader_on_real_clip(shared_data):
    clip = shared_data / "video/real_clips/carphone_pristine.mp4"
    arr = V.read_video(clip)
    assert arr.shape == (120, 144, 176, 3) and arr.dtype == np.uint8 and arr.std() > 30
    g = V.read_video(clip, gray=True, max_frames=5)
    assert g.shape == (5, 144, 176, 1)
    b = build("video_clips", shared_data, in_frames=4, out_frames=4, height=32, width=32)
    assert b.model_kwargs["channels"] == 1
    x = b.train[0]
    assert x["frames_in"].shape == (4, 1, 32, 32) and 0 <= x["frames_in"].min() and x["frames_in"].max() <= 1
    used = lambda ds: {s + k for _, s in ds.starts for k in range(8)}  # noqa: E731
    assert not used(b.train) & used(b.val) and not used(b.val) & used(b.test)
    with pytest.raises(DataError, match="cannot decode"):
        V.read_video(Path(__file__))


def test_frame_folder_reader(tmp_path):
    from PIL import Image

    frames = np.random.default_rng(0).integers(0, 256, (6, 10, 12, 3), dtype=np.uint8)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / f"frame_{i:03d}.png")
    assert np.array_equal(V.read_frame_folder(tmp_path), frames)
    assert V.read_clip(tmp_path, gray=True).shape == (6, 10, 12, 1)
    t = V.to_tensor_frames(frames, (5, 6))
    assert t.shape == (6, 3, 5, 6) and t.dtype == torch.float32


# ------------------------------------------------------------------ KTH

def _write_avi(path: Path, n: int, value_step: int = 10):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 32, 24, "yuv420p"
        for i in range(n):
            f = av.VideoFrame.from_ndarray(np.full((24, 32, 3), (i * value_step) % 256, np.uint8), format="rgb24")
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_kth_avi_and_frames_split_by_person(tmp_path):
    from PIL import Image

    root = tmp_path / "video" / "kth"
    (root / "boxing").mkdir(parents=True)
    (root / "running").mkdir(parents=True)
    _write_avi(root / "boxing" / "person01_boxing_d1_uncomp.avi", 20)
    _write_avi(root / "boxing" / "person17_boxing_d1_uncomp.avi", 12)
    fdir = root / "running" / "person02_running_d1_uncomp"
    fdir.mkdir()
    for i in range(1, 11):
        Image.fromarray(np.full((24, 32, 3), i * 20, np.uint8)).save(fdir / f"image_{i:04d}.jpg")
    b = build("kth", tmp_path, in_frames=2, out_frames=3, image_size=16, val_persons=[2])
    # boxing (stride = window 5): 20 frames -> starts 15, 10, 5, 0; running (stride 3): 10 frames -> 5, 2
    assert sorted(s for _, s in b.train.index) == [0, 5, 10, 15]
    assert sorted(s for _, s in b.val.index) == [2, 5]
    assert len(b.test) == 2  # person 17: 12 frames -> starts 7, 2
    it = b.train[0]
    assert it["frames_in"].shape == (2, 1, 16, 16) and it["frames_out"].shape == (3, 1, 16, 16)
    v = b.val[0]["frames_in"][:, 0].mean((1, 2))
    assert torch.allclose(v * 255, torch.tensor([60.0, 80.0]), atol=3)  # frames 3, 4 of the folder
    with pytest.raises(DataError, match="no KTH videos"):
        K.scan_kth(tmp_path)


# ------------------------------------------------------------------ TaxiBJ

def test_taxibj_npz_maps_to_unit_range_and_val_from_train(tmp_path):
    rng = np.random.default_rng(0)
    d = {k: rng.uniform(-1, 1, (n, 4, 2, 32, 32)).astype(np.float32)
         for k, n in (("X_train", 40), ("Y_train", 40), ("X_test", 6), ("Y_test", 6))}
    (tmp_path / "video" / "taxibj").mkdir(parents=True)
    np.savez(tmp_path / "video/taxibj/dataset.npz", **d)
    b = build("taxibj", tmp_path)
    assert len(b.test) == 6 and len(b.val) == 4 and len(b.train) == 40 - 4 - 7
    assert torch.allclose(b.test[1]["frames_in"], torch.tensor((d["X_test"][1] + 1) / 2))
    assert torch.allclose(b.val[0]["frames_out"], torch.tensor((d["Y_train"][36] + 1) / 2))
    assert b.model_kwargs["channels"] == 2
    np.savez(tmp_path / "video/taxibj/dataset.npz", X_train=d["X_train"])
    with pytest.raises(DataError, match="Y_train"):
        build("taxibj", tmp_path)


def test_taxibj_h5_windows_only_consecutive_slots(tmp_path):
    import h5py

    days = [f"201301{d:02d}" for d in range(1, 31)]
    dates = [f"{d}{s:02d}".encode() for d in days for s in range(1, 49) if not (d == "20130105" and s == 7)]
    data = np.random.default_rng(0).uniform(-5, 100, (len(dates), 2, 32, 32)).astype(np.float32)
    with h5py.File(tmp_path / "BJ13_M32x32_T30_InOut.h5", "w") as h:
        h["data"], h["date"] = data, np.array(dates)
    arrs = TB.load_h5_folder(tmp_path, 4, 4, test_days=2)
    n_test = 2 * 48 - 7
    assert arrs["X_test"].shape == (n_test, 4, 2, 32, 32)
    # before the test days: 198 consecutive slots, a gap, then 1145 -> 191 + 1138 windows of 8
    assert arrs["X_train"].shape[0] == 191 + 1138
    assert arrs["X_train"].min() >= 0 and arrs["X_train"].max() <= 1
