"""End to end: `ostinato train` (1 epoch of test_frcrn on the shipped pairs), `eval --json`,
`enhance` on shipped wavs (mono 16 kHz, stereo 44.1 kHz, long file in chunks), the causal
model streaming through `enhance`, and the one-line errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ostinato.audio.data.paired import SHIPPED
from ostinato.audio.enhance import BlockResampler, ChunkEnhancer, enhance_file
from ostinato.core import checkpoint as ckpt
from ostinato.core.config import to_dict
from ostinato.core.recipe import load as load_recipe
from ostinato.core.registry import create_model

NOISY = SHIPPED / "speech" / "voicebank_demand_test" / "noisy"


def run_cli(*args, env=None):
    e = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "ostinato.core.cli", *map(str, args)],
                          capture_output=True, text=True, env=e, timeout=600)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("audio_run") / "run"
    # OSTINATO_DATA empty: the recipe must run from the pairs shipped in the package
    r = run_cli("train", "audio/test_frcrn", "--out", out, "--quiet", env={"OSTINATO_DATA": ""})
    assert r.returncode == 0, r.stderr
    return out


def cli_main(capsys, *args):
    """In-process `ostinato ARGS` (the subprocess start-up is paid once, by the train run)."""
    from ostinato.core.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def test_train_eval_enhance(run_dir, tmp_path, capsys, relocate):
    def cli(*a, env=None):
        return cli_main(capsys, *a)

    res = json.loads((run_dir / "results.json").read_text())
    assert res["epochs"] == 1 and res["steps"] == 2
    for key in ("pesq", "pesq_noisy", "pesq_delta", "si_sdr_delta", "stoi", "csig", "cbak_delta", "covl_noisy"):
        assert key in res["test"]
    r = cli("eval", run_dir, "--json")
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout.strip().splitlines()[-1])
    assert ev["split"] == "test" and ev["si_sdr_delta"] == pytest.approx(ev["si_sdr"] - ev["si_sdr_noisy"])
    # a stereo 44.1 kHz copy of a shipped wav: downmixed and resampled to 16 kHz
    x, sr = sf.read(str(NOISY / "p257_033.wav"), dtype="float32")
    import torchaudio.functional as AF

    x44 = AF.resample(torch.from_numpy(x), 16000, 44100).numpy()
    sf.write(str(tmp_path / "stereo44.wav"), np.stack([x44, 0.5 * x44], axis=1), 44100)
    out = tmp_path / "enh"
    r = cli("enhance", run_dir, NOISY / "p232_126.wav", tmp_path / "stereo44.wav", "-o", out,
            "--spectrogram", tmp_path / "spec.png", "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert "real-time factor" in r.stdout
    info = sf.info(str(out / "p232_126.wav"))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "PCM_16", 31900)
    info = sf.info(str(out / "stereo44.wav"))
    assert (info.samplerate, info.channels) == (16000, 1) and abs(info.frames - 26300) <= 1
    assert (tmp_path / "spec_p232_126.png").stat().st_size > 1000 and (tmp_path / "spec_stereo44.png").exists()
    r = cli("enhance", run_dir, tmp_path / "stereo44.wav", "-o", tmp_path / "keep", "--keep-rate")
    assert r.returncode == 0 and sf.info(str(tmp_path / "keep" / "stereo44.wav")).samplerate == 44100
    r = cli("enhance", relocate(run_dir), NOISY / "p232_126.wav", "-o", tmp_path / "far")  # the run folder alone
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "far" / "p232_126.wav").read_bytes() == (out / "p232_126.wav").read_bytes()


def test_enhance_errors(run_dir, tmp_path, capsys):
    def cli(*a):
        return cli_main(capsys, *a)

    r = cli("enhance", run_dir, tmp_path / "missing.wav", "-o", tmp_path)
    assert r.returncode == 1 and "missing.wav: no such file" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "junk.wav").write_bytes(b"not audio")
    r = cli("enhance", run_dir, tmp_path / "junk.wav", "-o", tmp_path / "o")
    assert r.returncode == 1 and "junk.wav: unreadable audio file" in r.stderr
    r = cli("enhance", tmp_path / "nope", NOISY / "p232_126.wav", "-o", tmp_path)
    assert r.returncode == 2 and "does not exist" in r.stderr


def _causal_checkpoint(path: Path) -> Path:
    """A run of test_frcrn_causal without training: what `ostinato train` would save."""
    cfg = load_recipe("audio/test_frcrn_causal")
    torch.manual_seed(0)
    model = create_model("test_frcrn_causal")
    ckpt.save({"model": model.state_dict(), "config": to_dict(cfg)}, path)
    return path


def test_enhance_streams_a_causal_model_exactly(tmp_path):
    from ostinato.core.train import load_run

    model, _, _ = load_run(_causal_checkpoint(tmp_path / "best.pt"), build_data_too=False)
    x = (np.random.default_rng(0).standard_normal(16000) * 0.05).astype(np.float32)
    sf.write(str(tmp_path / "in.wav"), x, 16000, subtype="FLOAT")
    r = enhance_file(model, tmp_path / "in.wav", tmp_path / "out.wav")
    assert r["rtf"] > 0
    y, _ = sf.read(str(tmp_path / "out.wav"), dtype="float32")
    with torch.no_grad():
        full = model(torch.from_numpy(x)[None])[0].numpy()
    assert np.abs(y - full).max() < 1.5 / 32768  # equal up to 16-bit quantisation


def test_chunked_non_causal_enhancement_bounds_memory():
    model = create_model("test_frcrn").eval()
    x = (np.random.default_rng(1).standard_normal(20000) * 0.05).astype(np.float32)
    with torch.no_grad():
        full = model(torch.from_numpy(x)[None])[0].numpy()
    whole = ChunkEnhancer(model, chunk_seconds=5.0).push(x, final=True)  # one window: identical
    np.testing.assert_allclose(whole, full, atol=1e-5)
    enh = ChunkEnhancer(model, chunk_seconds=0.25, context_seconds=0.1)
    parts = [enh.push(x[i : i + 3000]) for i in range(0, len(x), 3000)] + [enh.push(x[:0], final=True)]
    y = np.concatenate(parts)
    assert y.shape == x.shape and len(enh.buf) <= 4000 + 2 * 1600 + 3000  # window + context + one block


def test_block_resampler_equals_whole_signal_resampling():
    import torchaudio.functional as AF

    x = np.random.default_rng(2).standard_normal(30001).astype(np.float32)
    r = BlockResampler(22050, 16000, periods=4)
    y = np.concatenate([r.push(x[i : i + 777]) for i in range(0, len(x), 777)] + [r.flush()])
    np.testing.assert_allclose(y, AF.resample(torch.from_numpy(x), 22050, 16000).numpy(), atol=1e-5)
