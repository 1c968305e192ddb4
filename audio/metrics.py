"""Speech-enhancement metrics, with the conventions of ClearerVoice-Studio's SpeechScore
(the source of the FRCRN anchor numbers in the spec).

- ``pesq_wb``: ITU-T P.862.2 wide-band PESQ (MOS-LQO) from the ``pesq`` package,
  ``pesq(16000, ref, deg, 'wb')``. Signals at another rate are resampled to 16 kHz first
  (torchaudio). Returns NaN when PESQ finds no utterance (e.g. pure silence).
- ``stoi``: ``pystoi.stoi(ref, deg, fs, extended=False)`` (classic STOI, 0-1).
- ``si_sdr``: scale-invariant SDR (Le Roux et al., 2019) as SpeechScore computes it: no mean
  removal, a = (eps + <s, s'>) / (eps + <s, s>), SI-SDR = 10 log10((eps + |a s|^2) /
  (eps + |s' - a s|^2)), eps = float64 machine epsilon, in dB.
- ``composite``: CSIG / CBAK / COVL of Hu & Loizou (2008), "Evaluation of objective quality
  measures for speech enhancement", implemented here from the published regression

      CSIG = 3.093 - 1.029 LLR + 0.603 PESQ - 0.009 WSS
      CBAK = 1.634 + 0.478 PESQ - 0.007 WSS + 0.063 segSNR
      COVL = 1.594 + 0.805 PESQ - 0.512 LLR - 0.007 WSS        (each clipped to [1, 5])

  with the framing of Loizou's ``composite.m`` as ported to Python by SpeechScore (and the
  SEGAN / MetricGAN evaluation scripts): 30 ms Hann frames ``0.5 (1 - cos(2 pi n / (L+1)))``,
  n = 1..L, hop L // 4, ``int(N / hop - L / hop)`` frames; LLR with LPC order 16 (10 below
  10 kHz) and WSS (25 Gaussian critical bands, Kmax 20, Klocmax 1, the MATLAB peak search)
  each averaged over the lowest 95 % of frames; segSNR after removing the DC and scaling the
  processed signal to the reference's peak, per frame clipped to [-10, 35] dB, averaged over
  all frames; PESQ is wide-band MOS-LQO (as SpeechScore; Loizou's MATLAB used P.862 raw).
  A frame whose LLR is undefined (silent reference, so no LPC fit) counts as 0, as
  SpeechScore's ``nan_to_num`` does. Signals must be 16 kHz or 8 kHz for PESQ.

FRCRN's training loss (SI-SNR, ``si_snr_torch``) belongs to the model: ``models/losses.py``.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import solve_toeplitz

_EPS64 = float(np.finfo(np.float64).eps)


def si_sdr(ref: np.ndarray, deg: np.ndarray) -> float:
    """SI-SDR in dB, SpeechScore convention (see module doc)."""
    s = np.asarray(ref, dtype=np.float64)
    e = np.asarray(deg, dtype=np.float64)
    a = (_EPS64 + s @ e) / (_EPS64 + s @ s)
    target = a * s
    res = e - target
    return float(10 * np.log10((_EPS64 + target @ target) / (_EPS64 + res @ res)))


def _to_rate(x: np.ndarray, fs: int, target: int) -> np.ndarray:
    if fs == target:
        return x
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(np.asarray(x, dtype=np.float32)), fs, target).numpy()


def pesq_wb(ref: np.ndarray, deg: np.ndarray, fs: int) -> float:
    """Wide-band PESQ (MOS-LQO); NaN if PESQ detects no utterance."""
    from pesq import pesq
    from pesq.cypesq import PesqError

    r = _to_rate(np.asarray(ref, dtype=np.float64), fs, 16000)
    d = _to_rate(np.asarray(deg, dtype=np.float64), fs, 16000)
    try:
        with np.errstate(invalid="ignore", divide="ignore"):  # pesq normalises silent input by 0
            return float(pesq(16000, r, d, "wb"))
    except PesqError:
        return float("nan")


def stoi(ref: np.ndarray, deg: np.ndarray, fs: int) -> float:
    from pystoi import stoi as _stoi

    return float(_stoi(np.asarray(ref, dtype=np.float64), np.asarray(deg, dtype=np.float64), fs, extended=False))


# ----------------------------------------------------------------------------- composite
def _frames(x: np.ndarray, fs: int) -> np.ndarray:
    """Hann-windowed 30 ms frames, hop L // 4, composite.m's frame count: (T, L)."""
    win = int(round(30 * fs / 1000))
    hop = win // 4
    n = int(len(x) / hop - win / hop)
    if n <= 0:
        raise ValueError(f"signal of {len(x)} samples is too short for 30 ms frames")
    idx = np.arange(n)[:, None] * hop + np.arange(win)[None, :]  # (T, L)
    window = 0.5 * (1 - np.cos(2 * np.pi * np.arange(1, win + 1) / (win + 1)))
    return x[idx] * window


def llr_frames(ref: np.ndarray, deg: np.ndarray, fs: int) -> np.ndarray:
    """Per-frame log-likelihood ratio (Itakura LPC distance), (T,)."""
    order = 10 if fs < 10000 else 16
    fr, fd = _frames(ref, fs), _frames(deg, fs)
    out = np.zeros(len(fr))
    for t in range(len(fr)):
        rc = np.array([fr[t, : len(fr[t]) - k] @ fr[t, k:] for k in range(order + 1)])  # (P+1,)
        rd = np.array([fd[t, : len(fd[t]) - k] @ fd[t, k:] for k in range(order + 1)])
        if rc[0] <= 0 or rd[0] <= 0:
            continue  # no LPC fit: SpeechScore's nan_to_num gives 0
        ac = np.concatenate([[1.0], -solve_toeplitz(rc[:order], rc[1:])])  # (P+1,) clean LPC polynomial
        ad = np.concatenate([[1.0], -solve_toeplitz(rd[:order], rd[1:])])
        toe = rc[np.abs(np.arange(order + 1)[:, None] - np.arange(order + 1)[None, :])]  # (P+1, P+1) Toeplitz(R_clean)
        num, den = ad @ toe @ ad, ac @ toe @ ac
        out[t] = np.log(num / den) if num / den > 0 and np.isfinite(num / den) else 0.0
    return out


_CENT = [50.0, 120, 190, 260, 330, 400, 470, 540, 617.372, 703.378, 798.717, 904.128, 1020.38, 1148.30,
         1288.72, 1442.54, 1610.70, 1794.16, 1993.93, 2211.08, 2446.71, 2701.97, 2978.04, 3276.17, 3597.63]
_BW = [70.0, 70, 70, 70, 70, 70, 70, 77.3724, 86.0056, 95.3398, 105.411, 116.256, 127.914, 140.423,
       153.823, 168.154, 183.457, 199.776, 217.153, 235.631, 255.255, 276.072, 298.126, 321.465, 346.136]


def _nearest_peaks(energy: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """composite.m's peak search per band (including its off-by-one on rising slopes)."""
    k = len(slope)
    out = np.empty(k)
    for i in range(k):
        n = i
        if slope[i] > 0:
            while n < k and slope[n] > 0:
                n += 1
            out[i] = energy[n - 1]
        else:
            while n >= 0 and slope[n] <= 0:
                n -= 1
            out[i] = energy[n + 1]
    return out


def wss_frames(ref: np.ndarray, deg: np.ndarray, fs: int) -> np.ndarray:
    """Per-frame weighted spectral slope distance (Klatt 1982), (T,)."""
    win = int(round(30 * fs / 1000))
    n_fft = int(2 ** np.ceil(np.log2(2 * win)))
    half = n_fft // 2
    j = np.arange(half)
    filt = np.zeros((25, half))
    floor = np.exp(-30.0 / (2 * 2.303))
    for i in range(25):
        f0 = np.floor(_CENT[i] / (fs / 2) * half)
        bw = _BW[i] / (fs / 2) * half
        f = np.exp(-11 * ((j - f0) / bw) ** 2 + np.log(_BW[0]) - np.log(_BW[i]))
        filt[i] = f * (f > floor)
    out = []
    for fr_c, fr_d in zip(_frames(ref, fs), _frames(deg, fs)):
        ec = 10 * np.log10(np.maximum(filt @ (np.abs(np.fft.fft(fr_c, n_fft))[:half] ** 2), 1e-10))  # (25,)
        ed = 10 * np.log10(np.maximum(filt @ (np.abs(np.fft.fft(fr_d, n_fft))[:half] ** 2), 1e-10))
        sc, sd = np.diff(ec), np.diff(ed)  # (24,)
        wc = 20 / (20 + ec.max() - ec[:-1]) * (1 / (1 + _nearest_peaks(ec, sc) - ec[:-1]))
        wd = 20 / (20 + ed.max() - ed[:-1]) * (1 / (1 + _nearest_peaks(ed, sd) - ed[:-1]))
        w = (wc + wd) / 2
        out.append(np.sum(w * (sc - sd) ** 2) / np.sum(w))
    return np.array(out)


def seg_snr(ref: np.ndarray, deg: np.ndarray, fs: int) -> float:
    """Segmental SNR in dB (DC removed, processed scaled to the reference's peak)."""
    r = ref - ref.mean()
    d = deg - deg.mean()
    peak = np.max(np.abs(d))
    d = d * (np.max(np.abs(r)) / peak) if peak > 0 else d
    fr, fd = _frames(r, fs), _frames(d, fs)
    sig = np.sum(fr**2, axis=1)
    noise = np.sum((fr - fd) ** 2, axis=1)
    snr = 10 * np.log10(sig / (noise + 1e-10) + 1e-10)
    return float(np.mean(np.clip(snr, -10, 35)))


def _mean_lowest(x: np.ndarray, alpha: float = 0.95) -> float:
    x = np.sort(x)
    return float(np.mean(x[: int(round(len(x) * alpha))]))


def composite(ref: np.ndarray, deg: np.ndarray, fs: int, pesq_score: float | None = None) -> dict[str, float]:
    """CSIG, CBAK, COVL (and their ingredients) of a processed signal against its reference."""
    ref = np.asarray(ref, dtype=np.float64)
    deg = np.asarray(deg, dtype=np.float64)
    if len(ref) != len(deg):
        raise ValueError(f"reference and processed signals differ in length: {len(ref)} vs {len(deg)}")
    wss = _mean_lowest(wss_frames(ref, deg, fs))
    llr = _mean_lowest(llr_frames(ref, deg, fs))
    snr = seg_snr(ref, deg, fs)
    p = pesq_wb(ref, deg, fs) if pesq_score is None else pesq_score

    def clip(v: float) -> float:
        return float(min(max(v, 1.0), 5.0))

    return {
        "csig": clip(3.093 - 1.029 * llr + 0.603 * p - 0.009 * wss),
        "cbak": clip(1.634 + 0.478 * p - 0.007 * wss + 0.063 * snr),
        "covl": clip(1.594 + 0.805 * p - 0.512 * llr - 0.007 * wss),
        "llr": llr, "wss": wss, "segsnr": snr,
    }


def all_metrics(ref: np.ndarray, deg: np.ndarray, fs: int, with_composite: bool = True) -> dict[str, float]:
    """pesq, stoi, si_sdr (+ csig, cbak, covl) of one utterance."""
    out = {"pesq": pesq_wb(ref, deg, fs), "stoi": stoi(ref, deg, fs), "si_sdr": si_sdr(ref, deg)}
    if with_composite:
        comp = composite(_to_rate(ref, fs, 16000), _to_rate(deg, fs, 16000), 16000, pesq_score=out["pesq"])
        out.update({k: comp[k] for k in ("csig", "cbak", "covl")})
    return out
