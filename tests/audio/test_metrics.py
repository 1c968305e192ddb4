"""Metric values and conventions."""
import numpy as np
import pytest

from ostinato.audio import metrics as M
from ostinato.audio.data.paired import SHIPPED
from ostinato.audio.data.wavio import read_audio

VB = SHIPPED / "speech" / "voicebank_demand_test"


@pytest.fixture(scope="module")
def pair():
    clean, _ = read_audio(VB / "clean" / "p232_005.wav")
    noisy, _ = read_audio(VB / "noisy" / "p232_005.wav")
    return clean.astype(np.float64), noisy.astype(np.float64)


def test_si_sdr_values():
    rng = np.random.default_rng(0)
    s = rng.standard_normal(16000)
    e = rng.standard_normal(16000)
    e -= (e @ s) / (s @ s) * s
    e *= np.linalg.norm(s) / np.linalg.norm(e) * 10 ** (-3 / 20)  # 3 dB below s, orthogonal
    assert M.si_sdr(s, s + e) == pytest.approx(3.0, abs=1e-6)
    assert M.si_sdr(s, 0.1 * (s + e)) == pytest.approx(3.0, abs=1e-6)  # scale invariant
    assert M.si_sdr(s, s) > 100


def test_pesq_stoi_on_a_real_pair(pair):
    clean, noisy = pair
    assert M.pesq_wb(clean, clean, 16000) > 4.5
    assert M.pesq_wb(clean, noisy, 16000) == pytest.approx(1.3456, abs=1e-3)
    assert M.stoi(clean, noisy, 16000) == pytest.approx(0.8839, abs=1e-3)
    assert M.stoi(clean, clean, 16000) == pytest.approx(1.0, abs=1e-6)
    assert np.isnan(M.pesq_wb(np.zeros(16000), np.zeros(16000), 16000))


def test_composite_of_identical_signals_hits_the_ceiling(pair):
    clean, _ = pair
    c = M.composite(clean, clean, 16000)
    assert c["llr"] == pytest.approx(0.0, abs=1e-9) and c["wss"] == pytest.approx(0.0, abs=1e-9)
    assert c["segsnr"] == pytest.approx(35.0)
    assert c["csig"] == c["cbak"] == c["covl"] == 5.0


def test_composite_matches_speechscore_on_a_real_pair(pair):
    """Reference values from ClearerVoice-Studio's SpeechScore (cal_CSIG/CBAK/COVL) on the
    same pair: 2.59488 / 2.01405 / 1.91962. SpeechScore casts its LPC coefficients to
    float32; our float64 LPC moves CSIG/COVL by < 1e-3."""
    clean, noisy = pair
    c = M.composite(clean, noisy, 16000)
    assert c["csig"] == pytest.approx(2.59488, abs=2e-3)
    assert c["cbak"] == pytest.approx(2.01405, abs=2e-3)
    assert c["covl"] == pytest.approx(1.91962, abs=2e-3)


def test_all_metrics_at_another_rate(pair):
    clean, noisy = pair
    import torch
    import torchaudio.functional as AF

    c8 = AF.resample(torch.from_numpy(clean[:32000]), 16000, 8000).numpy()
    n8 = AF.resample(torch.from_numpy(noisy[:32000]), 16000, 8000).numpy()
    out = M.all_metrics(c8, n8, 8000, with_composite=False)
    assert set(out) == {"pesq", "stoi", "si_sdr"} and 1.0 < out["pesq"] < 3.0
