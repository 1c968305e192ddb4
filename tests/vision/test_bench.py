import pytest
import torch

from ostinato.vision import bench


def test_step_mode_speed_measurement_agrees_with_parallel():
    torch.manual_seed(0)
    r = bench.step_speed(n=4, k=3, quick=True, device="cpu")
    assert r["generated"] == 4 and r["context"] == 3
    assert r["step_mode_s"] > 0 and r["parallel_prefix_s"] > 0
    assert r["teacher_forced_max_abs_diff"] < 1e-4  # parallel on the step-mode inputs == step outputs


def test_clock_is_cpu_time_on_cpu():
    assert bench.clock(torch.device("cpu")) is __import__("time").process_time


@pytest.mark.slow
def test_quick_bench_end_to_end(cli, tmp_path):
    out = tmp_path / "b.json"
    r = cli("bench", "vision", "--quick", "--out", out, timeout=3600)
    assert r.returncode == 0, r.stderr
    import json

    from ostinato.core.benchkit import select

    rows = json.loads(out.read_text())["rows"]
    eq = select(rows, "equal_budget")
    assert [row["model"] for row in eq] == ["pfgnet_mmnist_s", "convlstm_mmnist"]
    assert all(row["params"] > 0 and row["macs_G"] > 0 and "mse" in row["test"] for row in eq)
    assert select(rows, "convs5_step_mode")[0]["speedup"] > 1
    assert {r["name"] for r in select(rows, "no_training_reference")} == {"zeros", "last_input_frame"}


def test_no_training_reference_rows():
    ref = {r["name"]: r["test"] for r in bench.trivial_baselines(test_size=4)}
    assert set(ref) == {"zeros", "last_input_frame"}
    z = ref["zeros"]
    assert z["mse"] > 0 and 0 < z["ssim"] < 1 and z["mae"] > 0


def test_mixer_task_trains_two_mixers_in_the_cell_slot_and_streams():
    from ostinato.core import benchkit as kit
    from ostinato.core.mixer import MixerSlot

    task = bench.mixer_task()
    assert task["slot"] == "model.cell.mixer" and {"gru", "lru", "mingru", "s5"} <= set(task["mixers"])
    for mixer in ("lru", "mingru"):
        seen = {}

        def probe(run):
            seen["slots"] = [m.name for m in run.model.modules() if isinstance(m, MixerSlot)]
            return {"stream_s": task["stream"](run.model, run.cfg)}

        ov = [*task["overrides"], *task["mixer_overrides"], f"{task['slot']}.name={mixer}", "trainer.max_steps=2"]
        r = kit.train(task["quick_recipe"], ov, probe=probe)
        assert r["steps"] == 2 and seen["slots"] == [mixer, mixer]  # test_convs5: 2 layers, each with the mixer
        assert r["test"]["mse"] > 0 and 0 < r["stream_s"] < 10


def test_protocol_openstl_scores_the_official_file(tmp_path, monkeypatch, capsys):
    import numpy as np

    monkeypatch.setenv("OSTINATO_DATA", str(tmp_path))
    assert bench.main(["--protocol", "openstl", "--quick"]) == 2  # no file: one line, exit 2, before training
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(tmp_path / "video/moving_mnist/mnist_test_seq.npy") in err
    arr = np.random.default_rng(0).integers(0, 256, (20, 5, 64, 64), dtype=np.uint8)  # official layout, 5 sequences
    (tmp_path / "video/moving_mnist").mkdir(parents=True)
    np.save(tmp_path / "video/moving_mnist/mnist_test_seq.npy", arr)
    zeros = bench.trivial_baselines(3, "openstl")[0]
    true = arr[10:20, :3].transpose(1, 0, 2, 3) / 255.0  # (3, 10, 64, 64): the first 3 sequences' targets
    assert zeros["test"]["mse"] == pytest.approx((true**2).sum(axis=(2, 3)).mean(), rel=1e-6)
    assert bench.trivial_baselines(3, "ostinato")[0]["test"]["mse"] != pytest.approx(zeros["test"]["mse"], rel=1e-3)
