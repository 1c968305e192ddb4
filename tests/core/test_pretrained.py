"""Shipped weights and the Hub layout (ostinato.core.weights, .pretrained, .hub): round trips,
the sha256 manifest, fp16 storage, the `pretrained:` sources in load_run and create_model, and
each shipped weight's test metric against its recorded digits (skipped without its data)."""
import json

import pytest
import torch

from ostinato.core import ConfigError, DataError, EnvironmentMissing, create_model
from ostinato.core import checkpoint as ckpt
from ostinato.core.cli import main
from ostinato.core.hub import from_pretrained, save_pretrained
from ostinato.core.pretrained import load_state, shipped
from ostinato.core.recipe import load
from ostinato.core.train import build_data, build_model, evaluate_split, load_run

SHIPPED = shipped()
ANY = "timeseries/dlinear_etth1"  # small and its data (ETTh1) is shipped


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A run folder holding a best.pt of core/toy_seq (random weights) with an inference state."""
    run = tmp_path_factory.mktemp("toy_run")
    cfg = load("core/toy_seq")
    data = build_data(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, data.model_kwargs)
    inference = {"scale": torch.tensor([1.5, -2.25e-7, 3.0e5], dtype=torch.float64), "ids": torch.arange(5),
                 "columns": ["a", "b"], "nested": {"k": 3, "x": None}}
    ckpt.save({"config": cfg.to_dict(), "model": model.state_dict(), "inference": inference,
               "model_kwargs": dict(data.model_kwargs)}, run / "best.pt")
    return run, model, inference


def _same_inference(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.is_tensor(b[k]) and b[k].dtype == a[k].dtype and torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


def test_round_trip_offline_through_a_hub_folder(toy_run, tmp_path):
    run, model, inference = toy_run
    out = save_pretrained(run, tmp_path / "hub", card_fields={"data": "synthetic toy sequences", "protocol": "MSE"})
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    back = from_pretrained(out)
    assert not back.training
    sd, sd2 = model.state_dict(), back.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)
    _same_inference(inference, load_state(out)["inference"])
    m, cfg, data = load_run(out)  # a Hub folder loads as a run does, and evaluates
    assert evaluate_split(m, data, "test", cfg) == evaluate_split(load_run(run)[0], data, "test", cfg)
    card = (out / "README.md").read_text()
    for words in ("synthetic toy sequences", "## Protocol", "## Metrics", "## Licence", "apache-2.0",
                  json.loads((out / "config.json").read_text())["weights"]["sha256"]):
        assert words in card


def test_fp16_storage_is_restored_to_float32(toy_run, tmp_path):
    from safetensors import safe_open

    run, model, _ = toy_run
    out = save_pretrained(run, tmp_path / "hub16", fp16=True)
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        stored = {k: f.get_tensor(k) for k in f.keys()}
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    state = load_state(out)
    assert state["doc"]["weights"]["stored_dtype"] == "float16"
    for k, v in model.state_dict().items():
        got = state["model"][k]
        assert got.dtype == torch.float32 and torch.equal(got, v.half().float()), k
    assert any(not torch.equal(state["model"][k], v) for k, v in model.state_dict().items())  # it was rounded


def test_a_corrupted_weights_file_is_a_one_line_error(tmp_path, capsys):
    out = save_pretrained(f"pretrained:{ANY}", tmp_path / "hub")
    w = out / "model.safetensors"
    blob = bytearray(w.read_bytes())
    blob[-3] ^= 0xFF
    w.write_bytes(bytes(blob))
    with pytest.raises(DataError, match="sha256 .* does not match the manifest"):
        load_run(out, build_data_too=False)
    assert main(["eval", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "corrupted" in err


def test_shipped_manifest_matches_every_file_and_the_total_is_small():
    from ostinato.core.weights import sha256

    assert ANY in SHIPPED
    total = 0
    for r, s in SHIPPED.items():
        w = s.doc_path.parent / s.doc["weights"]["file"]
        assert sha256(w) == s.doc["weights"]["sha256"], r
        assert s.doc["recipe"] == r and s.doc_path.stem == r.split("/", 1)[1]
        total += w.stat().st_size + s.doc_path.stat().st_size
    assert total <= 40e6


def test_unknown_recipe_lists_the_shipped_ones(capsys):
    with pytest.raises(ConfigError, match=f"no shipped weights for 'timeseries/nope'; expected one of: .*{ANY}"):
        load_run("pretrained:timeseries/nope")
    assert main(["eval", "pretrained:timeseries/nope"]) == 2
    assert ANY in capsys.readouterr().err


def test_create_model_pretrained(toy_run, tmp_path):
    model, cfg, _ = load_run(f"pretrained:{ANY}", build_data_too=False)
    x = torch.randn(2, 96, 7)
    for m in (create_model("dlinear", pretrained=True), create_model(ANY, pretrained=True),
              create_model("dlinear", pretrained=ANY)):
        assert not m.training and torch.equal(m(x), model(x))
    with pytest.raises(ConfigError, match="the weights fix the config"):
        create_model("dlinear", pretrained=True, kernel_size=5)
    with pytest.raises(ConfigError, match="those weights are of model 'dlinear'"):
        create_model("chimera", pretrained=ANY)
    with pytest.raises(ConfigError, match="shipped weights of model 'toy_seq': none"):
        create_model("toy_seq", pretrained=True)
    several = sorted(r for r, s in SHIPPED.items() if s.doc["model"] == "muvla")  # cue task and RememberColor3
    assert len(several) == 2
    with pytest.raises(ConfigError, match=f"model 'muvla': several: {', '.join(several)}; pass pretrained="):
        create_model("muvla", pretrained=True)
    assert create_model("toy_seq", d_model=16).training  # without pretrained: as before


def test_ls_pretrained_lists_recipe_data_metric_and_command(capsys):
    assert main(["ls", "pretrained"]) == 0
    out = capsys.readouterr().out
    for r, s in SHIPPED.items():
        line = next(x for x in out.splitlines() if x.startswith(r + " "))
        assert s.doc["card"]["data_short"] in line and f"ostinato train {r}" in line
        assert all(f"{k}=" in line for k in s.doc["metrics"]["digits"])


def test_hub_repo_ids_go_through_huggingface_hub(toy_run, tmp_path, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    run, model, _ = toy_run
    folder = save_pretrained(run, tmp_path / "cache")
    calls = []

    def fake(repo_id, revision=None, allow_patterns=None):
        calls.append((repo_id, revision, sorted(allow_patterns)))
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    back = from_pretrained("someone/toy@v1")
    assert calls == [("someone/toy", "v1", ["README.md", "config.json", "model.safetensors"])]
    assert all(torch.equal(back.state_dict()[k], v) for k, v in model.state_dict().items())

    def offline(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co'\nmore lines")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(DataError, match=r"^hf:someone/toy: cannot fetch it from the Hugging Face Hub \(OSError: We couldn't connect[^\n]*$"):
        load_run("hf:someone/toy")


def test_forecast_verb_takes_a_pretrained_source(tmp_path, capsys):
    from ostinato.core.cli import _specs
    from ostinato.core.data import locate

    spec = _specs("ETTh1")[0]
    csv = locate(spec.files[0].path, None, spec.shipped)
    dest = tmp_path / "f.csv"
    assert main(["forecast", f"pretrained:{ANY}", "--csv", str(csv), "--horizon", "24", "--out", str(dest)]) == 0
    assert len(dest.read_text().splitlines()) > 24


@pytest.mark.parametrize("verb", ["recommend", "enhance"])
def test_other_verbs_load_pretrained_sources(verb, tmp_path, capsys):
    """They take the source (loaded, then checked for their domain), not a file path."""
    wav = tmp_path / "x.wav"
    wav.write_bytes(b"")
    argv = {"recommend": ["--user", "1"], "enhance": [str(wav), "-o", str(tmp_path / "out")]}[verb]
    assert main([verb, f"pretrained:{ANY}", *argv]) == 2
    err = capsys.readouterr().err
    assert f"{verb}: pretrained:{ANY} is a timeseries run (model dlinear); expected" in err


def _cases():
    for r, s in sorted(SHIPPED.items()):
        slow = float(s.doc["metrics"].get("eval_s", 0)) > 6  # the evaluation alone, when it was shipped
        yield pytest.param(r, marks=[pytest.mark.slow] if slow else [], id=r)


@pytest.mark.parametrize("recipe", list(_cases()))
def test_shipped_weights_reproduce_their_test_metric(recipe):
    from ostinato.core.hub import eval_test_split

    doc = SHIPPED[recipe].doc
    try:
        got, _ = eval_test_split(f"pretrained:{recipe}")  # as `ostinato eval pretrained:RECIPE --split test`
    except DataError as e:
        pytest.skip(f"{recipe}: its data is not here: {e}")
    except EnvironmentMissing as e:  # ManiSkill3, MIKASA-Robo or the CPU renderer is not installed here
        pytest.skip(f"{recipe}: its environment is not here: {e}")
    m = doc["metrics"]
    for k, d in m["digits"].items():
        assert f"{got[k]:.{d}f}" == f"{m['values'][k]:.{d}f}" == f"{m['float32_run'][k]:.{d}f}", (k, got[k])


def test_ship_card_names_generated_data_when_told():
    """Environment-generated episodes match no dataset file: ``ship --data`` names them for the card."""
    from ostinato.core.hub import _dataset_card

    state = {"config": {"domain": "control", "data": {"name": "control_demos", "env": "cue_task"}}}
    assert _dataset_card(state)["data_licence"] == "(see the dataset's source)"
    card = _dataset_card(state, "cue task: generated episodes", "apache-2.0")
    assert card == {"data_short": "cue task", "data": "cue task: generated episodes", "data_licence": "apache-2.0"}
