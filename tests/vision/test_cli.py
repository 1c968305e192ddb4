import json

import pytest
from PIL import Image


@pytest.mark.parametrize("recipe", ["test_pfgnet", "test_convlstm", "test_convs5"])
def test_one_epoch_train_then_eval_with_gifs(cli, tmp_path, recipe):
    out = tmp_path / "run"
    r = cli("train", f"vision/{recipe}", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["epochs"] == 1 and {"mse", "mae", "ssim", "psnr"} <= set(res["test"])
    gifs = tmp_path / "gifs"
    r = cli("eval", out, "--json", "--save-dir", gifs)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout.strip().splitlines()[-1])
    assert m["split"] == "test" and m["mse"] == pytest.approx(res["test"]["mse"], rel=1e-6)
    files = sorted(p.name for p in gifs.iterdir())
    assert files == ["test_000.gif", "test_000.png", "test_001.gif", "test_001.png"]
    with Image.open(gifs / "test_000.gif") as im:
        assert im.n_frames > 1


def test_bad_override_is_a_one_line_config_error(cli, tmp_path):
    r = cli("train", "vision/test_pfgnet", "--out", tmp_path / "x", "--quiet", "model.N_S=3")
    assert r.returncode == 2 and "N_S" in r.stderr and len(r.stderr.strip().splitlines()) == 1
