"""FRCRN's time-memory slot: a core sequence mixer in place of each real FSMN of the bottleneck.

The released bottleneck (``ComplexUniDeepFsmn``) chains complex layers made of two real FSMNs
F_re, F_im combined as a complex product, x (B, L, D, 2) with [..., 0] = real:

    out_re = F_re(x_re) - F_im(x_im),    out_im = F_re(x_im) + F_im(x_re)

``ComplexMixer`` keeps exactly that arrangement and puts a core (B, L, D) mixer, built by name
through :func:`ostinato.core.mixer.build_mixer`, where each real FSMN was (its whole block: the
FSMN's residual is part of F, so a mixer brings only what it has itself). With the ``fsmn``
mixer (n_layers 1, the same lorder and hidden size) this is the released module up to parameter
names. State: one (s_re, s_im) per layer, each the mixer's state for a batch of 2B (the real and
imaginary parts stacked); a one-frame call with a state goes through the mixers' ``step``.
"""
from __future__ import annotations

import torch
from torch import nn

from ostinato.core.mixer import MixerConfig, build_mixer


class ComplexMixer(nn.Module):
    def __init__(self, spec: MixerConfig, d_model: int, n_layers: int, causal: bool):
        super().__init__()
        self.n_layers = n_layers
        for i in range(1, n_layers + 1):
            for part in ("re", "im"):
                setattr(self, f"mixer_{part}_L{i}", build_mixer(spec, d_model, causal, host="causal FRCRN time-memory"))

    def _pair(self, i: int) -> tuple[nn.Module, nn.Module]:
        return getattr(self, f"mixer_re_L{i + 1}"), getattr(self, f"mixer_im_L{i + 1}")

    def forward(self, x: torch.Tensor, state=None):
        """x (B, L, D, 2) -> (y (B, L, D, 2), state)."""
        b = x.shape[0]
        z = torch.cat([x[..., 0], x[..., 1]], dim=0)  # (2B, L, D): [re; im]
        step = state is not None and z.shape[1] == 1
        new = []
        for i in range(self.n_layers):
            m_re, m_im = self._pair(i)
            s_re, s_im = (None, None) if state is None else state[i]
            if step:
                r, s_re = m_re.step(z[:, 0], s_re)  # (2B, D)
                m, s_im = m_im.step(z[:, 0], s_im)
                r, m = r[:, None], m[:, None]  # (2B, 1, D)
            else:
                r, s_re = m_re(z, s_re)  # (2B, L, D): [m_re(x_re); m_re(x_im)]
                m, s_im = m_im(z, s_im)  # (2B, L, D): [m_im(x_re); m_im(x_im)]
            z = torch.cat([r[:b] - m[b:], r[b:] + m[:b]], dim=0)  # (2B, L, D)
            new.append((s_re, s_im))
        return torch.stack([z[:b], z[b:]], dim=-1), new  # (B, L, D, 2)
