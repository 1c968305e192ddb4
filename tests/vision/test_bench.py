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

    res = json.loads(out.read_text())
    assert [row["model"] for row in res["equal_budget"]] == ["pfgnet_mmnist_s", "convlstm_mmnist"]
    assert res["convs5_step_mode"]["speedup"] > 1
    assert set(res["no_training_reference"]) == {"zeros", "last_input_frame"}


def test_no_training_reference_rows():
    ref = bench.trivial_baselines(test_size=4)
    assert set(ref) == {"zeros", "last_input_frame"}
    z = ref["zeros"]
    assert z["mse"] > 0 and 0 < z["ssim"] < 1 and z["mae"] > 0
