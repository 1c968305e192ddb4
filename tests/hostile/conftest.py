"""One tiny trained run per domain (built once for the hostile-input tests), and a file to keep."""
import numpy as np
import pytest

from ._common import ETTH1, _pairs_file


def _tiny_run(tmp_path_factory, recipe):
    """A run folder of ``recipe`` (a tiny test_* recipe), trained in-process without its test pass."""
    from ostinato.core.cli import main

    out = tmp_path_factory.mktemp("hostile_" + recipe.split("/")[0]) / "run"
    assert main(["train", recipe, "--out", str(out), "--quiet", "trainer.test_at_end=false"]) == 0
    return out


@pytest.fixture(scope="package")
def audio_run(tmp_path_factory):
    return _tiny_run(tmp_path_factory, "audio/test_frcrn")


@pytest.fixture(scope="package")
def ts_run(tmp_path_factory):
    """test_dlinear trained on a copy of ETTh1 that fails its declared checksum: the stderr of
    the run (the warning) and the run folder."""
    import contextlib
    import io

    from ostinato.core.cli import main

    tmp = tmp_path_factory.mktemp("hostile_ts")
    root = tmp / "root"
    f = root / "timeseries" / "ETT" / "ETTh1.csv"
    f.parent.mkdir(parents=True)
    lines = ETTH1.read_text().splitlines()
    lines[-1] += "1"  # one more digit in the last value: still a valid CSV, not the declared file
    f.write_text("\n".join(lines) + "\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["train", "timeseries/test_dlinear", "--out", str(tmp / "run"), "--quiet",
                     "--data-root", str(root)])
    assert code == 0, err.getvalue()
    return tmp / "run", f, err.getvalue()


@pytest.fixture(scope="package")
def rec_run(tmp_path_factory):
    from ostinato.core.cli import main

    tmp = tmp_path_factory.mktemp("hostile_rec")
    rng = np.random.default_rng(0)
    raw = np.array([7, 3, 123456789012, *(10**10 + 977 * np.arange(27))])  # 30 items, ids up to 1.2e11
    pairs = [(u, int(raw[j])) for u in range(1, 41) for j in rng.permutation(30)[:6]]
    f = _pairs_file(tmp / "sparse.txt", pairs)
    out = tmp / "run"
    recipe = tmp / "sparse.yaml"
    recipe.write_text(f"""domain: recsys
model: {{name: test_sasrec}}
data: {{name: sasrec_txt, path: {f}, maxlen: 8, batch_size: 32}}
optim: {{name: adam, lr: 1.0e-2}}
trainer: {{max_epochs: 1, monitor: sampled_ndcg@10, mode: max, test_at_end: false}}
eval: {{protocol: sampled, n_negatives: 2}}
""")
    assert main(["train", str(recipe), "--out", str(out), "--quiet"]) == 0
    return out, set(raw.tolist())


@pytest.fixture(scope="package")
def vision_run(tmp_path_factory):
    return _tiny_run(tmp_path_factory, "vision/test_convlstm")


@pytest.fixture(scope="package")
def control_run(tmp_path_factory):
    return _tiny_run(tmp_path_factory, "control/test_muvla_cue_task")


@pytest.fixture
def a_file(tmp_path):
    f = tmp_path / "precious.txt"
    f.write_text("keep me\n")
    return f
