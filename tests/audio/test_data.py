"""Loaders: layouts, .scp lists, on-the-fly mixing, determinism, and every bad-input case."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ostinato.audio.data.mixing import SpeechMixConfig, speech_mix
from ostinato.audio.data.paired import SHIPPED, SpeechPairsConfig, speech_pairs
from ostinato.audio.data.synthetic import SpeechSyntheticConfig, speech_synthetic
from ostinato.audio.data.wavio import find_pairs, read_audio
from ostinato.core.errors import ConfigError, DataError

VB = SHIPPED / "speech" / "voicebank_demand_test"


def _wav(path: Path, x, sr=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(x, dtype=np.float32), sr, subtype="PCM_16")
    return path


def _tone(n, f=440.0, sr=16000, amp=0.3):
    return amp * np.sin(2 * np.pi * f * np.arange(n) / sr)


@pytest.fixture
def vb_root(tmp_path):
    """A VoiceBank+DEMAND-style root: clean_testset_wav / noisy_testset_wav."""
    rng = np.random.default_rng(0)
    for name, n in (("p1_001", 8000), ("p1_002", 12000)):
        c = _tone(n)
        _wav(tmp_path / "clean_testset_wav" / f"{name}.wav", c)
        _wav(tmp_path / "noisy_testset_wav" / f"{name}.wav", c + 0.05 * rng.standard_normal(n))
    return tmp_path


def test_shipped_pairs_and_plain_layout():
    pairs = find_pairs(VB)
    assert [p.name for p in pairs] == ["p232_005", "p232_126", "p257_033"]
    b = speech_pairs(SpeechPairsConfig(train=str(VB), test=str(VB), train_names=["p232_005", "p232_126"], test_names=["p257_033"]))
    item = b.train[0]
    assert item["noisy"].shape == item["clean"].shape == (16000,) and item["noisy"].dtype == torch.float32
    t = b.test[0]
    assert t["name"] == "p257_033" and t["noisy"].shape == (26300,)
    assert b.model_kwargs == {"sample_rate": 16000} and b.eval_batch_size == 1


def test_voicebank_layout_pairs_by_name(vb_root):
    for src in (vb_root / "clean_testset_wav", vb_root / "noisy_testset_wav"):
        pairs = find_pairs(src)
        assert [p.name for p in pairs] == ["p1_001", "p1_002"]
        assert pairs[0].clean.parent.name == "clean_testset_wav" and pairs[0].noisy.parent.name == "noisy_testset_wav"


def test_scp_list(vb_root):
    scp = vb_root / "test.scp"
    scp.write_text("# noisy clean\nnoisy_testset_wav/p1_002.wav clean_testset_wav/p1_002.wav\n\n"
                   f"{vb_root}/noisy_testset_wav/p1_001.wav {vb_root}/clean_testset_wav/p1_001.wav\n")
    pairs = find_pairs(scp)
    assert [p.name for p in pairs] == ["p1_002", "p1_001"]
    b = speech_pairs(SpeechPairsConfig(train=str(scp), crop_seconds=0.25))
    assert len(b.train) == 2 and b.train[1]["clean"].shape == (4000,)


def test_scp_errors_name_the_line(vb_root):
    bad = vb_root / "bad.scp"
    bad.write_text("noisy_testset_wav/p1_001.wav\n")
    with pytest.raises(DataError, match=r"bad\.scp:1: expected 'noisy_path clean_path'"):
        find_pairs(bad)
    bad.write_text("noisy_testset_wav/p1_001.wav clean_testset_wav/nope.wav\n")
    with pytest.raises(DataError, match=r"bad\.scp:1: .*nope\.wav: no such file"):
        find_pairs(bad)


def test_missing_counterpart(vb_root):
    _wav(vb_root / "clean_testset_wav" / "p1_003.wav", _tone(100))
    with pytest.raises(DataError, match=r"p1_003\.wav: no noisy file"):
        find_pairs(vb_root / "clean_testset_wav")


def test_mismatched_pair_length(tmp_path):
    _wav(tmp_path / "clean" / "a.wav", _tone(8000))
    _wav(tmp_path / "noisy" / "a.wav", _tone(8001))
    with pytest.raises(DataError, match=r"noisy/a\.wav: 8001 samples but its clean pair .*a\.wav has 8000"):
        speech_pairs(SpeechPairsConfig(train=str(tmp_path)))


def test_wrong_channel_count(tmp_path):
    _wav(tmp_path / "clean" / "a.wav", _tone(8000))
    (tmp_path / "noisy").mkdir()
    sf.write(str(tmp_path / "noisy" / "a.wav"), np.stack([_tone(8000)] * 2, axis=1), 16000)
    with pytest.raises(DataError, match=r"noisy/a\.wav: 2 channels, expected mono"):
        speech_pairs(SpeechPairsConfig(train=str(tmp_path)))
    x, sr = read_audio(tmp_path / "noisy" / "a.wav", downmix=True)
    assert x.shape == (8000,) and sr == 16000


def test_unreadable_file(tmp_path):
    _wav(tmp_path / "clean" / "a.wav", _tone(8000))
    (tmp_path / "noisy").mkdir()
    (tmp_path / "noisy" / "a.wav").write_bytes(b"RIFF not really a wav file")
    with pytest.raises(DataError, match=r"noisy/a\.wav: unreadable audio file"):
        speech_pairs(SpeechPairsConfig(train=str(tmp_path)))
    with pytest.raises(DataError, match=r"a\.wav: unreadable audio file"):
        read_audio(tmp_path / "noisy" / "a.wav")


def test_sample_rate_mismatch_and_resampling_only_when_asked(tmp_path):
    _wav(tmp_path / "clean" / "a.wav", _tone(8000, sr=8000), sr=8000)
    _wav(tmp_path / "noisy" / "a.wav", _tone(8000, sr=8000), sr=8000)
    with pytest.raises(DataError, match=r"a\.wav: sample rate 8000 Hz, expected 16000 Hz \(set data\.resample=true"):
        speech_pairs(SpeechPairsConfig(train=str(tmp_path)))
    b = speech_pairs(SpeechPairsConfig(train=str(tmp_path), test=str(VB), test_names=["p257_033"], resample=True, crop_seconds=2.0))
    x = b.train[0]["clean"].numpy()
    assert x.shape == (32000,) and np.abs(x[16000:]).max() == 0  # 1 s at 8 kHz -> 16000 samples, then padding
    spec = np.abs(np.fft.rfft(x[2000:14000]))
    assert abs(np.argmax(spec) * 16000 / 12000 - 440) < 2  # the tone survives resampling


def test_crops_depend_on_seed_epoch_index_only():
    cfg = SpeechPairsConfig(train=str(VB), crop_seconds=0.5, seed=3)
    a, b = speech_pairs(cfg).train, speech_pairs(cfg).train
    torch.testing.assert_close(a[0]["clean"], b[0]["clean"])
    b.set_epoch(1)
    assert not torch.equal(a[0]["clean"], b[0]["clean"])
    a.set_epoch(1)
    torch.testing.assert_close(a[0]["noisy"], b[0]["noisy"])


def test_held_out_pairs_cannot_be_trained_on():
    with pytest.raises(ConfigError, match="held-out"):
        speech_pairs(SpeechPairsConfig(train=str(VB), test=str(VB), test_names=["p257_033"]))
    with pytest.raises(ConfigError, match="must not be trained on"):
        speech_mix(SpeechMixConfig(pairs=[str(VB)], test=str(VB), test_names=["p232_126"]))


def test_mixing_snr_gain_and_determinism(tmp_path):
    clean = _wav(tmp_path / "speech" / "s.wav", _tone(16000, amp=0.2))
    noise = _wav(tmp_path / "noise" / "n.wav", np.random.default_rng(0).uniform(-0.3, 0.3, 4000))  # shorter: looped
    cfg = SpeechMixConfig(clean=[str(clean)], noise=[str(tmp_path / "noise")], snr_db=(5.0, 5.0), gain_db=(0.0, 0.0),
                          crop_seconds=0.5, items_per_epoch=4, seed=1)
    b = speech_mix(cfg)
    for i in range(4):
        it = b.train[i]
        c, n = it["clean"].double(), (it["noisy"] - it["clean"]).double()
        assert c.shape == (8000,)
        snr = 10 * np.log10(0.2**2 / 2 / n.pow(2).mean().item())  # against the whole source's power
        assert abs(snr - 5.0) < 0.05
    again = speech_mix(cfg).train
    torch.testing.assert_close(again[2]["noisy"], b.train[2]["noisy"])
    loud = speech_mix(SpeechMixConfig(clean=[str(clean)], noise=[str(noise)], snr_db=(-5.0, -5.0), gain_db=(20.0, 20.0),
                                      crop_seconds=0.5, items_per_epoch=2))
    it = loud.train[0]
    assert it["noisy"].abs().max() <= 0.99 + 1e-6  # rescaled instead of clipping
    ratio = (it["noisy"] - it["clean"]).pow(2).mean() / it["clean"].pow(2).mean()
    assert abs(10 * np.log10(ratio.item()) - 5.0) < 0.1  # the SNR survives the rescaling


def test_mixing_from_real_pairs_uses_their_noise():
    b = speech_mix(SpeechMixConfig(pairs=[str(VB)], pair_names=["p232_005"], val=str(VB), val_names=["p232_126"],
                                   test=str(VB), test_names=["p257_033"], items_per_epoch=2, crop_seconds=0.25))
    noise_src = b.train.noise[0]
    n = noise_src.load()
    noisy, _ = read_audio(VB / "noisy" / "p232_005.wav")
    clean, _ = read_audio(VB / "clean" / "p232_005.wav")
    np.testing.assert_allclose(n, noisy - clean)
    assert len(b.val) == 1 and len(b.test) == 1 and b.train[1]["noisy"].shape == (4000,)


def test_mixing_resamples_other_rates_only_when_asked(tmp_path):
    src = _wav(tmp_path / "s48.wav", _tone(48000, sr=48000), sr=48000)
    with pytest.raises(DataError, match=r"s48\.wav: sample rate 48000 Hz"):
        speech_mix(SpeechMixConfig(clean=[str(src)], synthetic_noise=1.0))
    b = speech_mix(SpeechMixConfig(clean=[str(src)], synthetic_noise=1.0, resample=True, items_per_epoch=1))
    assert b.train.clean[0].length == 16000 and b.train[0]["clean"].shape == (16000,)


def test_mix_config_errors():
    with pytest.raises(ConfigError, match="both empty"):
        SpeechMixConfig(noise=["x"]).validate()
    with pytest.raises(ConfigError, match="snr_db"):
        SpeechMixConfig(clean=["x"], noise=["y"], snr_db=(10.0, 0.0)).validate()


def test_synthetic_generator():
    b = speech_synthetic(SpeechSyntheticConfig(train_items=3, seconds=0.5))
    it = b.train[0]
    assert it["noisy"].shape == (8000,) and it["clean"].abs().max() > 0
    assert not torch.equal(b.val[0]["clean"], b.test[0]["clean"])
