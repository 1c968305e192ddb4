"""Evaluation: metrics of the noisy input and of the enhanced output, and their difference.

For every utterance of the split, the model enhances the noisy signal (whole utterance, or
in bounded-memory chunks with ``chunk_seconds``) and each metric of
:mod:`ostinato.audio.metrics` is computed against the clean reference, for the noisy input
and for the output. Returned keys (means over utterances):

    <m>           enhanced output        (pesq, stoi, si_sdr, csig, cbak, covl)
    <m>_noisy     the unprocessed input
    <m>_delta     <m> - <m>_noisy
    loss          the model's training loss on the split (whole utterances)

PESQ returns NaN on an utterance without detectable speech; such utterances are left out
of the PESQ mean (``pesq_count`` says how many were scored).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ostinato.core.progress import track

from .metrics import all_metrics


@dataclass
class AudioEvalConfig:
    composite: Literal["test", "always", "never"] = "test"  # CSIG/CBAK/COVL are slow: by default on test only
    chunk_seconds: float = 0.0  # 0: whole utterances; > 0: bounded-memory chunks (see ostinato.audio.enhance)
    max_items: int = 0  # 0: every utterance of the split
    save_dir: str = ""  # write enhanced wavs here (16-bit, named after the utterance)


def _enhance(model, noisy: torch.Tensor, chunk_seconds: float) -> np.ndarray:
    if chunk_seconds > 0:
        from .enhance import ChunkEnhancer

        enh = ChunkEnhancer(model, chunk_seconds)
        return enh.push(noisy.cpu().numpy().astype(np.float32), final=True)
    p = next(model.parameters())
    return model(noisy.to(p.device, p.dtype)[None])[0].float().cpu().numpy()


def evaluate(model, data, split: str, cfg) -> dict[str, float]:
    ecfg: AudioEvalConfig = cfg.eval  # the run's typed eval section
    model.eval()
    ds = data.split(split)
    sr = data.meta.get("sample_rate", model.sample_rate)
    with_comp = ecfg.composite == "always" or (ecfg.composite == "test" and split == "test")
    n = len(ds) if not ecfg.max_items else min(ecfg.max_items, len(ds))
    rows, losses = [], []
    p = next(model.parameters())
    for i in track(range(n), unit="item"):  # progress under `ostinato eval`
        item = ds[i]
        noisy, clean = item["noisy"].float(), item["clean"].float()
        with torch.no_grad():
            loss, _ = model.loss({"noisy": noisy[None].to(p.device, p.dtype), "clean": clean[None].to(p.device, p.dtype)})
            out = _enhance(model, noisy, ecfg.chunk_seconds)
        losses.append(float(loss))
        ref, x = clean.numpy().astype(np.float64), noisy.numpy().astype(np.float64)
        enh = all_metrics(ref, out.astype(np.float64), sr, with_comp)
        base = all_metrics(ref, x, sr, with_comp)
        rows.append((enh, base))
        if ecfg.save_dir:
            from .data.wavio import write_wav16

            write_wav16(Path(ecfg.save_dir) / f"{item.get('name', f'{split}_{i:04d}')}.wav", out, sr)
    result: dict[str, float] = {"loss": float(np.mean(losses))}
    for key in rows[0][0]:
        e = np.array([r[0][key] for r in rows])
        b = np.array([r[1][key] for r in rows])
        ok = np.isfinite(e) & np.isfinite(b)
        result[key] = float(np.mean(e[ok])) if ok.any() else float("nan")
        result[f"{key}_noisy"] = float(np.mean(b[ok])) if ok.any() else float("nan")
        result[f"{key}_delta"] = result[key] - result[f"{key}_noisy"]
        if key == "pesq":
            result["pesq_count"] = float(ok.sum())
    return result
