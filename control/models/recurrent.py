"""Recurrent-state baseline: the muVLA policy with an LSTM state in place of memory tokens.

Same step encoder, transformer and action-chunk head as :mod:`.muvla`; the difference is
what is carried across steps. Here one "state token" (a projection of the LSTM's top-layer
h from step t-1) takes the memory tokens' place in the step's token sequence; the
transformer's output at that position is the input of one ``ostinato.core`` LSTM step,
whose new state is carried to t+1 (like PPO-LSTM in MIKASA-Robo's baselines, but trained by
behaviour cloning). Resets on ``is_first`` are per sample (zero state), TBPTT counts K steps
per sample like :class:`ostinato.core.layers.memory.MemoryTokens`, and training carries the
detached state between windows of the episodic loader.

``memory_recon > 0`` (not in MIKASA's baseline) adds the same auxiliary loss as muVLA's option: a small decoder
rebuilds the episode's first frame from the LSTM's top-layer ``h`` that each step writes, so the two memory
policies can be trained by the same procedure.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ostinato.core.config import variant
from ostinato.core.errors import ConfigError
from ostinato.core.layers.attention import Transformer, TransformerConfig
from ostinato.core.layers.rnn import LSTM, RNNConfig
from ostinato.core.registry import register_variant

from .encoders import fitting_carry, policy_loss, recon_decoder, step_encoder, step_tokens, window_tokens
from .policy_config import StepPolicyConfig


@dataclass
class LSTMPolicyConfig(StepPolicyConfig):
    d_hidden: int = 256  # LSTM width
    rnn_layers: int = 1

    def validate(self) -> None:
        if self.memory_recon < 0 or (self.memory_recon and not self.image_channels):
            raise ConfigError(f"lstm_policy: memory_recon={self.memory_recon}: expected 0 (off), or a weight > 0 "
                              f"with images (image_channels={self.image_channels})")
        if self.chunk < 1 or self.tbptt_length < 1 or self.image_channels % 3:
            raise ConfigError(f"lstm_policy: expected chunk >= 1, tbptt_length >= 1, image_channels a multiple of 3; "
                              f"got {self.chunk}, {self.tbptt_length}, {self.image_channels}")


class LSTMPolicy(nn.Module):
    def __init__(self, cfg: LSTMPolicyConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.obs = step_encoder(cfg)
        self.n_img = self.obs.n_tokens - 1 - cfg.max_tokens
        self.queries = nn.Parameter(torch.randn(cfg.chunk, d) * 0.02)  # (C, d)
        self.backbone = Transformer(TransformerConfig(d_model=d, n_heads=cfg.n_heads, mlp_ratio=cfg.mlp_ratio,
                                                      dropout=cfg.dropout, n_layers=cfg.n_layers, causal=False))
        self.rnn = LSTM(RNNConfig(d_model=d, d_hidden=cfg.d_hidden, n_layers=cfg.rnn_layers))
        self.h_in = nn.Linear(cfg.d_hidden, d)
        self.head = nn.Linear(d, cfg.action_dim)
        self._carry: dict | None = None
        if cfg.memory_recon:  # the first frame's pixels from the written h (see LSTMPolicyConfig.memory_recon)
            self.recon = recon_decoder(cfg.d_hidden, cfg)
            self._first: torch.Tensor | None = None  # training: each stream's episode-first frame (B, c*g*g)

    def init_state(self, batch_size: int, device=None):
        h, c = self.rnn.init_state(batch_size, device)
        return {"h": h, "c": c, "count": torch.zeros(batch_size, dtype=torch.long, device=h.device)}

    @staticmethod
    def detach_state(state: dict) -> dict:
        return {"h": state["h"].detach(), "c": state["c"].detach(), "count": torch.zeros_like(state["count"])}

    def _prepare(self, state: dict, is_first: torch.Tensor) -> dict:
        """Per-sample zero reset on ``is_first`` and TBPTT truncation every K steps."""
        first = is_first.to(torch.bool)
        cut = (state["count"] >= self.cfg.tbptt_length) & ~first  # (B,)
        out = {}
        for k in ("h", "c"):
            s = torch.where(cut[:, None, None], state[k].detach(), state[k])  # (B, n_layers, H)
            out[k] = torch.where(first[:, None, None], torch.zeros_like(s), s)
        out["count"] = torch.where(first | cut, torch.zeros_like(state["count"]), state["count"])
        return out

    def _step(self, tok, pad, state, is_first):
        """tok (B, n_obs + C, d) -> chunk (B, C, A), state."""
        state = self._prepare(state, is_first)
        B, i = tok.shape[0], self.n_img + 1
        s_tok = self.h_in(state["h"][:, -1])[:, None]  # (B, 1, d) state token
        z = torch.cat([tok[:, :i], s_tok, tok[:, i:]], dim=1)  # (B, n + 1, d)
        kpm = torch.cat([pad[:, :i], torch.zeros(B, 1, dtype=torch.bool, device=pad.device), pad[:, i:]], 1)
        y, _ = self.backbone(z, key_padding_mask=kpm)  # (B, n + 1, d)
        _, (h, c) = self.rnn.step(y[:, i], (state["h"], state["c"]))
        chunk = self.head(y[:, -self.cfg.chunk :])  # (B, C, A)
        return chunk, {"h": h, "c": c, "count": state["count"] + 1}

    def _tokens(self, rgb, proprio, instr):
        return step_tokens(self.obs, self.queries, rgb, proprio, instr)  # (N, n_obs + C, d), (N, n_obs + C)

    def forward(self, batch: dict, state=None, return_memory: bool = False):
        """Windows (B, W, ...) -> chunks (B, W, C, A), final state (and with ``return_memory`` the top-layer h
        each step wrote, (B, W, H))."""
        B, W = batch["is_first"].shape
        tok, pad = window_tokens(self._tokens, batch, self.cfg.image_channels)  # (B, W, n, d), (B, W, n)
        is_first = batch["is_first"].clone()
        if state is None:
            state = self.init_state(B, tok.device)
            is_first[:, 0] = True
        preds, hs = [], []
        for t in range(W):
            p, state = self._step(tok[:, t], pad[:, t], state, is_first[:, t])
            preds.append(p)
            hs.append(state["h"][:, -1])
        if return_memory:
            return torch.stack(preds, 1), state, torch.stack(hs, 1)
        return torch.stack(preds, 1), state  # (B, W, C, A)

    def loss(self, batch: dict):
        carry = fitting_carry(self._carry, "h", batch)
        pred, state, *hs = self(batch, carry, return_memory=bool(self.cfg.memory_recon))
        self._carry = self.detach_state(state)
        return policy_loss(self, pred, batch, hs[0] if hs else None)

    @torch.no_grad()
    def act(self, obs: dict, state, is_first: torch.Tensor):
        tok, pad = self._tokens(obs.get("rgb") if self.cfg.image_channels else None, obs["proprio"], obs["instr"])
        return self._step(tok, pad, state, is_first)


register_variant("lstm_policy", LSTMPolicyConfig, LSTMPolicy,
                 "Recurrent-state baseline: core LSTM state token instead of muVLA memory tokens.")


TestLSTMPolicyConfig = variant(LSTMPolicyConfig, "TestLSTMPolicyConfig", encoder="test_efficientnet", d_model=32,
                               n_layers=1, n_heads=2, image_grid=2, d_hidden=32)


register_variant("test_lstm_policy", TestLSTMPolicyConfig, LSTMPolicy,
                 "Tiny LSTM policy for tests (test_efficientnet, d=32, 1 layer, LSTM 32).")
