"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

Follows the original TensorFlow code (``kang205/SASRec``, ``model.py`` / ``modules.py``):

- input: item embedding (row 0 = padding, kept at zero) scaled by sqrt(d), plus a learned
  positional embedding over window positions 0..maxlen-1 (sequences are left-padded, so the
  most recent item always sits at position maxlen-1); dropout; multiplied by the timeline
  (non-padding) mask;
- block (``norm_first=False, post_ln=False``, the original layout): only the queries are
  layer-normed, ``q = LN(x)``; causal attention with K = V = x (keys at padding positions
  masked); the residual adds the *normalised* query, ``x = q + Attn(q, x, x)``; there is no
  output projection; then ``h = LN(x)``, ``x = h + FFN(h)`` with FFN = two 1x1 convolutions
  (linear layers) with ReLU and dropout; the timeline mask is reapplied;
- a final LayerNorm (eps 1e-8 everywhere, as in ``normalize``) gives F_t;
- scores use the shared (unscaled) item embedding: r_{t,i} = <F_t, E_i>.

Options that reproduce other implementations:

- ``norm_first=True``: Pre-LN, ``x + Attn(LN(x))`` with K = V = LN(x), ``x + FFN(LN(x))``
  (pmixer's ``--norm_first``).
- ``post_ln=True``: Post-LN, ``LN(x + Attn(x))``, ``LN(x + FFN(x))`` (what pmixer's current
  ``main`` runs without ``--norm_first``; its ``Result_Norm.md`` calls it "Post-LN").
- ``attn_out_proj=True``: an output projection after attention, as ``nn.MultiheadAttention``
  in pmixer's port has; the TF code has none.
- ``init="xavier"``: pmixer's init (xavier-normal on every weight matrix, padding rows
  zeroed); ``init="tf"`` (default) is TF's glorot-uniform on weights and embeddings, zero biases.

Mixer slot (``model.mixer``, DESIGN.md "Mixer slots"): any causal core (B, L, D) mixer in place
of attention, ``model: {name: sasrec, mixer: {name: mamba, d_state: 32}}``. A mixer block keeps the
layout (``sasrec``/``pre``/``post``) with the mixer where attention was, dropout on its output,
and a feed-forward sub-layer set by ``ffn`` / ``d_ff`` (``none``: no FFN); in ``post`` blocks
``mixer_residual`` ("stacked": only when n_blocks > 1, Mamba4Rec) and ``mixer_norm`` (False: no
LayerNorms, GRU4Rec) shape the mixer sub-layer. The mixer sees each row right-aligned to its
first item (real items at 0..len-1, padding after them), so left padding never reaches a
recurrent state (RecBole right-pads). With the input options ``pos_emb``, ``emb_scale``,
``emb_norm`` (LN after the embedding dropout), ``final_norm`` and ``item_bias`` (a learned score
bias per item) this gives Mamba4Rec, LRURec and a GRU4Rec-style model (recipes
``recsys/{mamba4rec,lrurec,gru4rec}_*``; block layouts in docs/recsys.md "Mixer slots"). The
mixer's own parameters keep the mixer's init (``mixer_init="host"``: ``init="normal"`` also re-draws the
mixer's Linear layers, N(0, 0.02) weights and zero biases, as RecBole's ``apply(_init_weights)`` does
in Mamba4Rec's code). No mixer: the published SASRec, unchanged. Packed
batches run the mixer on rows bucketed by length (same outputs, less padding work). Streaming:
with a mixer and ``pos_emb=False``, ``init_stream`` / ``stream_step`` score the next item after
each new one with the mixers' ``step`` (equal to the full forward while the history fits in maxlen).

Deviations of pmixer's port that are *not* options because they change nothing here:
positions 1..L with a zero row for padding (pmixer) versus 0..L-1 (TF) index the same
learned table once padding positions are zeroed by the mask. pmixer's current ``main``
also drops the timeline mask and key masking (padding positions are attended to); this
module always masks padding, so left-padding never changes a user's scores.

Losses (``loss``), all averaged over non-padding target positions:

- ``bce``: -log s(r+) - sum_j log(1 - s(r-_j)) with the batch's negatives (one per position
  in the original; ``data.n_negatives`` sets how many);
- ``ce``: full softmax cross-entropy over all items (SASRec+ / RecBole ``CE``);
- ``sampled_softmax``: softmax over [positive, k negatives] (uniform proposal, so no logQ term);
- ``gbce``: gSASRec's generalised BCE (Petrov & Macdonald, RecSys 2023; ``asash/gSASRec-pytorch``
  ``gbce.py``): with k negatives out of n items, alpha = k / (n - 1) (``gbce_alpha="paper"``;
  "code": k / (n - 2), the code's ``pool_size = n - 1`` put into k / (pool_size - 1)),
  beta = alpha * (t * (1 - 1/alpha) + 1/alpha); the loss is the mean over the k+1 logits of
  [beta * softplus(-r+), softplus(r-_1), ...], i.e. -log sigma(r+)^beta - sum log(1 - sigma(r-)).
  t = 0 gives beta = 1, i.e. BCE / (k+1). Negatives: gSASRec draws them uniformly from all
  items (``data.negatives=all``); the default ``unseen`` is SASRec's sampler (not the user's
  train items). gSASRec's code computes the loss in fp64; here it is in the model's dtype.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ostinato.core.config import variant
from ostinato.core.errors import ConfigError
from ostinato.core.mixer import MixerConfig, build_mixer
from ostinato.core.registry import register_model

from .tokens import Tokens, dropout

# ----------------------------------------------------------------------------- blocks


def gbce_beta(k: int, n_items: int, t: float, alpha: str = "paper") -> float:
    """gSASRec's beta for k negatives out of n_items: alpha (t (1 - 1/alpha) + 1/alpha) (module doc)."""
    a = k / max(n_items - (1 if alpha == "paper" else 2), 1)
    return a * (t * (1 - 1 / a) + 1 / a)


class PointWiseFFN(nn.Module):
    """Two 1x1 convolutions (= position-wise linear layers): dropout(W2 dropout(act(W1 x))).

    SASRec: d_ff = d_model, ReLU; Mamba4Rec / LRURec: d_ff = 4 d_model, GELU."""

    def __init__(self, d_model: int, p: float, d_ff: int = 0, act: str = "relu"):
        super().__init__()
        d_ff = d_ff or d_model
        self.fc1, self.fc2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.p, self.act = p, F.gelu if act == "gelu" else F.relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = dropout(self.act(self.fc1(x)), self.p, self.training)
        return dropout(self.fc2(h), self.p, self.training)


class SASRecBlock(nn.Module):
    """One block on tokens (T, D); ``layout`` is "sasrec" (original), "pre" or "post".

    Attention: Q = W_q q + b_q, [K, V] = W_kv kv + b_kv, causal softmax with dropout on the
    weights (TF), then an optional output projection (pmixer's nn.MultiheadAttention).
    """

    def __init__(self, d_model: int, n_heads: int, p: float, layout: str, eps: float, out_proj: bool):
        super().__init__()
        if d_model % n_heads:
            raise ConfigError(f"model.d_model={d_model} must be divisible by model.n_heads={n_heads}")
        self.layout, self.n_heads, self.p = layout, n_heads, p
        self.attn_norm = nn.LayerNorm(d_model, eps=eps)
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model) if out_proj else None
        self.ffn_norm = nn.LayerNorm(d_model, eps=eps)
        self.ffn = PointWiseFFN(d_model, p)

    def attn(self, q_in: torch.Tensor, kv_in: torch.Tensor, tok: Tokens) -> torch.Tensor:
        y = tok.attend(self.q(q_in), self.kv(kv_in), self.n_heads, self.p, self.training)  # (T, D)
        return self.out(y) if self.out is not None else y

    def forward(self, x: torch.Tensor, tok: Tokens) -> torch.Tensor:
        if self.layout == "sasrec":
            q = self.attn_norm(x)
            x = q + self.attn(q, x, tok)  # the residual adds the normalised query
            h = self.ffn_norm(x)
            x = h + self.ffn(h)
        elif self.layout == "pre":
            h = self.attn_norm(x)
            x = x + self.attn(h, h, tok)
            x = x + self.ffn(self.ffn_norm(x))
        else:  # post
            x = self.attn_norm(x + self.attn(x, x, tok))
            x = self.ffn_norm(x + self.ffn(x))
        return x * tok.keep  # (T, D), timeline mask reapplied


class MixerBlock(nn.Module):
    """A SASRec block with a core mixer where attention was (tokens (T, D), as ``SASRecBlock``).

    sasrec: q = LN(x), x = q + Drop(M(q)), h = LN(x), x = h + FFN(h); pre: x + Drop(M(LN x)),
    x + FFN(LN x); post: x = LN(x + Drop(M(x))), x = LN(x + FFN(x)) (Mamba4Rec, LRURec), where
    ``residual=False`` drops the first ``x +`` and ``norm=False`` both LNs; ``ffn`` "none" skips the
    feed-forward sub-layer.
    """

    def __init__(self, mixer: nn.Module, d_model: int, p: float, layout: str, eps: float,
                 ffn: str, d_ff: int, residual: bool, norm: bool):
        super().__init__()
        self.layout, self.p, self.residual = layout, p, residual
        self.mixer = mixer
        self.mixer_norm = nn.LayerNorm(d_model, eps=eps) if norm else None
        self.ffn = PointWiseFFN(d_model, p, d_ff, ffn) if ffn != "none" else None
        self.ffn_norm = nn.LayerNorm(d_model, eps=eps) if norm and self.ffn is not None else None

    def mix(self, x: torch.Tensor, tok: Tokens) -> torch.Tensor:
        return dropout(tok.mix(x, self.mixer), self.p, self.training)

    def forward(self, x: torch.Tensor, tok: Tokens) -> torch.Tensor:
        norm = (lambda m, v: m(v) if m is not None else v)
        if self.layout == "sasrec":
            q = norm(self.mixer_norm, x)
            x = q + self.mix(q, tok)
            if self.ffn is not None:
                h = norm(self.ffn_norm, x)
                x = h + self.ffn(h)
        elif self.layout == "pre":
            x = x + self.mix(norm(self.mixer_norm, x), tok)
            if self.ffn is not None:
                x = x + self.ffn(norm(self.ffn_norm, x))
        else:  # post
            y = self.mix(x, tok)
            x = norm(self.mixer_norm, x + y if self.residual else y)
            if self.ffn is not None:
                x = norm(self.ffn_norm, x + self.ffn(x))
        return x * tok.keep  # (T, D), timeline mask reapplied

    def step(self, x: torch.Tensor, state) -> tuple[torch.Tensor, object]:
        """One new item per row: x (B, D) -> (B, D), with the mixer's ``step`` (eval mode; ``forward``'s maths)."""
        norm = (lambda m, v: m(v) if m is not None else v)
        mix = lambda v: self.mixer.step(v, state)  # noqa: E731
        if self.layout == "sasrec":
            q = norm(self.mixer_norm, x)
            y, state = mix(q)
            x = q + y
            if self.ffn is not None:
                h = norm(self.ffn_norm, x)
                x = h + self.ffn(h)
        elif self.layout == "pre":
            y, state = mix(norm(self.mixer_norm, x))
            x = x + y
            if self.ffn is not None:
                x = x + self.ffn(norm(self.ffn_norm, x))
        else:  # post
            y, state = mix(x)
            x = norm(self.mixer_norm, x + y if self.residual else y)
            if self.ffn is not None:
                x = norm(self.ffn_norm, x + self.ffn(x))
        return x, state


# ----------------------------------------------------------------------------- model


@dataclass
class SASRecConfig:
    n_items: int = 0  # items are 1..n_items, 0 is padding; filled in from the data
    maxlen: int = 50  # window length (positions 0..maxlen-1); filled in from the data
    d_model: int = 50
    n_blocks: int = 2
    n_heads: int = 1
    dropout: float = 0.5
    norm_first: bool = False  # Pre-LN blocks
    post_ln: bool = False  # Post-LN blocks (pmixer's current default)
    attn_out_proj: bool = False  # output projection after attention (pmixer/nn.MultiheadAttention)
    ln_eps: float = 1e-8
    init: Literal["tf", "xavier", "normal"] = "tf"  # normal: N(0, 0.02) weights, zero biases (RecBole, Mamba4Rec, LRURec)
    loss: Literal["bce", "ce", "sampled_softmax", "gbce"] = "bce"
    gbce_t: float = 0.75  # gSASRec's calibration t (loss="gbce"); k = data.n_negatives
    gbce_alpha: Literal["paper", "code"] = "paper"  # alpha = k/(n-1) (paper) or k/(n-2) (gSASRec-pytorch)
    l2_emb: float = 0.0  # TF's l2_emb: l2_emb * sum(E^2) added to the loss
    packed: bool = True  # compute real positions only (same outputs as padded; faster)
    attn_chunk: int = 64  # packed attention: at most this many rows per length group
    # the mixer slot: a causal core mixer in place of attention (None: SASRec's attention); see the module doc
    mixer: Optional[MixerConfig] = None
    pos_emb: bool = True  # learned positional embedding (Mamba4Rec, LRURec, GRU4Rec: none)
    emb_scale: bool = True  # item embedding * sqrt(d_model) at the input (TF SASRec)
    emb_norm: bool = False  # LayerNorm after the embedding dropout (Mamba4Rec, LRURec)
    final_norm: bool = True  # LayerNorm after the last block (SASRec)
    item_bias: bool = False  # a learned score bias per item, r = <F, E_i> + b_i (LRURec)
    ffn: Literal["relu", "gelu", "none"] = "relu"  # mixer blocks: the feed-forward activation, or none
    d_ff: int = 0  # mixer blocks: FFN inner width; 0 = d_model
    mixer_residual: Literal["always", "stacked", "never"] = "always"  # post mixer blocks: residual around the mixer
    mixer_norm: bool = True  # post mixer blocks: the block's LayerNorms (False: GRU4Rec's bare recurrence)
    mixer_init: Literal["own", "host"] = "own"  # host: init="normal" also re-draws the mixer's Linears (Mamba4Rec/RecBole)

    def validate(self) -> None:
        if self.norm_first and self.post_ln:
            raise ConfigError("model.norm_first and model.post_ln are exclusive; choose one block layout")
        if min(self.maxlen, self.d_model, self.n_heads, self.attn_chunk) < 1 or self.n_blocks < 0:
            raise ConfigError("model.maxlen, d_model, n_heads and attn_chunk must be >= 1 and n_blocks >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout: expected a value in [0, 1), got {self.dropout}")
        if not 0.0 <= self.gbce_t <= 1.0:
            raise ConfigError(f"model.gbce_t: expected a value in [0, 1], got {self.gbce_t}")
        if self.mixer is None:
            odd = [k for k, v in (("ffn", "relu"), ("d_ff", 0), ("mixer_residual", "always"), ("mixer_norm", True))
                   if getattr(self, k) != v]
            if odd:
                raise ConfigError(f"model.{odd[0]} shapes the mixer blocks; set model.mixer (e.g. model.mixer.name=lru) or drop it")
        if self.d_ff < 0:
            raise ConfigError(f"model.d_ff={self.d_ff}: expected >= 0 (0: d_model)")
        if self.mixer_init == "host" and (self.mixer is None or self.init != "normal"):
            raise ConfigError("model.mixer_init=host re-draws a mixer's Linears with init=normal; set model.mixer and model.init=normal")


class SASRec(nn.Module):
    """SASRec. ``forward(seq)`` gives F (B, L, D); ``score``/``score_all`` rank items from F[:, -1]."""

    def __init__(self, cfg: SASRecConfig):
        super().__init__()
        cfg.validate()
        if cfg.n_items < 1:
            raise ConfigError("model.n_items must be >= 1 (it is normally filled in from the dataset)")
        self.cfg = cfg
        d = cfg.d_model
        layout = "pre" if cfg.norm_first else "post" if cfg.post_ln else "sasrec"
        self.item_emb = nn.Embedding(cfg.n_items + 1, d, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.maxlen, d) if cfg.pos_emb else None
        self.emb_norm = nn.LayerNorm(d, eps=cfg.ln_eps) if cfg.emb_norm else None
        if cfg.mixer is None:
            self.blocks = nn.ModuleList(
                SASRecBlock(d, cfg.n_heads, cfg.dropout, layout, cfg.ln_eps, cfg.attn_out_proj) for _ in range(cfg.n_blocks)
            )
        else:
            res = cfg.mixer_residual == "always" or (cfg.mixer_residual == "stacked" and cfg.n_blocks > 1)
            self.blocks = nn.ModuleList(
                MixerBlock(build_mixer(cfg.mixer, d, causal=True, host="sasrec"), d, cfg.dropout, layout, cfg.ln_eps,
                           cfg.ffn, cfg.d_ff, res, cfg.mixer_norm)
                for _ in range(cfg.n_blocks)
            )
        self.final_norm = nn.LayerNorm(d, eps=cfg.ln_eps) if cfg.final_norm else None
        self.item_bias = nn.Parameter(torch.zeros(cfg.n_items + 1)) if cfg.item_bias else None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        d = self.cfg.d_model
        for name, p in self.named_parameters():
            if ".mixer." in name:  # a slot's mixer keeps its own init
                continue
            if self.cfg.init == "normal":  # RecBole / Mamba4Rec / LRURec: N(0, 0.02) weights, zero biases
                if p.dim() >= 2:
                    nn.init.normal_(p, 0.0, 0.02)
                elif name.endswith("bias") and "norm" not in name:
                    p.zero_()
                continue
            if p.dim() < 2:  # biases and LayerNorm: TF zeros / ones (pmixer keeps torch's default biases)
                if self.cfg.init == "tf" and name.endswith("bias") and "norm" not in name:
                    p.zero_()
                continue
            if self.cfg.init == "tf":  # glorot-uniform per TF variable ([in, out] kernels)
                if name.endswith("kv.weight"):  # two TF variables (K and V), each (d, d)
                    nn.init.uniform_(p, -math.sqrt(6 / (2 * d)), math.sqrt(6 / (2 * d)))
                else:
                    nn.init.xavier_uniform_(p)
            else:  # pmixer: xavier-normal; Q/K/V are rows of one (3d, d) in_proj_weight
                if name.endswith(("q.weight", "kv.weight")):
                    nn.init.normal_(p, 0.0, math.sqrt(2 / (4 * d)))
                else:
                    nn.init.xavier_normal_(p)
        if self.cfg.mixer_init == "host":  # RecBole's self.apply(_init_weights) reaches inside the mixer (Mamba4Rec)
            for blk in self.blocks:
                for mod in blk.mixer.modules():
                    if isinstance(mod, nn.Linear):
                        nn.init.normal_(mod.weight, 0.0, 0.02)
                        if mod.bias is not None:
                            mod.bias.zero_()
        self.item_emb.weight[0].zero_()

    # -- encoder ------------------------------------------------------------------------

    def tokens(self, seq: torch.Tensor, packed: bool | None = None) -> Tokens:
        if seq.shape[1] > self.cfg.maxlen:
            raise ConfigError(f"input length {seq.shape[1]} exceeds model.maxlen={self.cfg.maxlen}")
        packed = self.cfg.packed if packed is None else packed
        return Tokens.packed(seq, self.cfg.attn_chunk) if packed else Tokens.padded(seq)

    def encode(self, e: torch.Tensor, tok: Tokens) -> torch.Tensor:
        """e: unscaled item embeddings of the tokens (T, D) -> F of the tokens (T, D)."""
        L = tok.seq.shape[1]
        keep = tok.keep.to(e.dtype)  # (T, 1)
        x = e * math.sqrt(self.cfg.d_model) if self.cfg.emb_scale else e
        if self.pos_emb is not None:
            x = x + self.pos_emb.weight[self.cfg.maxlen - L + tok.col]  # (T, D); the last item sits at maxlen-1
        x = dropout(x, self.cfg.dropout, self.training)
        if self.emb_norm is not None:
            x = self.emb_norm(x)
        x = x * keep
        for blk in self.blocks:
            x = blk(x, tok)
        return self.final_norm(x) if self.final_norm is not None else x  # (T, D)

    def _pad_features(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """F at rows without items: LN(0) = the final LayerNorm's bias (TF), else 0: (n, D)."""
        if self.final_norm is not None:
            return self.final_norm.bias.expand(n, -1)
        return like.new_zeros(1, like.shape[1]).expand(n, -1)

    def _bias(self, items: torch.Tensor) -> torch.Tensor | float:
        return self.item_bias[items] if self.item_bias is not None else 0.0

    def forward(self, seq: torch.Tensor, packed: bool | None = None) -> torch.Tensor:
        """seq: (B, L) item ids, left-padded with 0, L <= maxlen -> F: (B, L, D).

        Padding positions hold LN(0), i.e. the final LayerNorm's bias, as in the TF code.
        """
        B, L = seq.shape
        tok = self.tokens(seq, packed)
        f = self.encode(self.item_emb(seq.reshape(-1)[tok.idx]), tok)  # (T, D)
        out = self._pad_features(B * L, f).index_copy(0, tok.idx, f)  # (B*L, D)
        return out.view(B, L, -1)  # (B, L, D)

    # -- scoring ------------------------------------------------------------------------

    def last_features(self, seq: torch.Tensor) -> torch.Tensor:
        """F at the last position of each row: (B, D)."""
        B, L = seq.shape
        tok = self.tokens(seq)
        f = self.encode(self.item_emb(seq.reshape(-1)[tok.idx]), tok)  # (T, D)
        is_last = tok.col == L - 1  # (T,)
        out = self._pad_features(B, f).clone()  # rows without items: LN(0)
        out[tok.idx[is_last] // L] = f[is_last]
        return out  # (B, D)

    def score(self, seq: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of candidate items after the last position: seq (B, L), items (B, C) -> (B, C)."""
        f = self.last_features(seq)  # (B, D)
        return torch.einsum("bd,bcd->bc", f, self.item_emb(items)) + self._bias(items)  # (B, C)

    def score_all(self, seq: torch.Tensor) -> torch.Tensor:
        """Scores of every item: (B, n_items + 1); column 0 (padding) is -inf."""
        s = self.last_features(seq) @ self.item_emb.weight.T  # (B, n_items + 1)
        if self.item_bias is not None:
            s = s + self.item_bias
        s[:, 0] = float("-inf")
        return s

    # -- streaming ----------------------------------------------------------------------

    def can_stream(self) -> bool:
        """Step-by-step scoring needs a mixer in the slot and no positional embedding (SASRec's
        positions count from the window's end, so every new item would move all earlier ones)."""
        return self.cfg.mixer is not None and self.pos_emb is None

    def init_stream(self, batch_size: int, device=None) -> list:
        """The per-block mixer states before a user's first item."""
        if not self.can_stream():
            raise ConfigError("streaming needs model.mixer set and model.pos_emb=false (attention and positions "
                              "are recomputed over the window instead)")
        dtype = self.item_emb.weight.dtype
        return [blk.mixer.init_state(batch_size, device=device, dtype=dtype) for blk in self.blocks]

    @torch.no_grad()
    def stream_step(self, items: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        """items (B,) the newest item of each row (ids >= 1), state from ``init_stream`` ->
        (scores of every item for the next one (B, n_items + 1), column 0 = -inf; new state).
        Eval mode; equals ``score_all`` on the whole history while it fits in ``maxlen``."""
        x = self.item_emb(items)  # (B, D)
        x = x * math.sqrt(self.cfg.d_model) if self.cfg.emb_scale else x
        if self.emb_norm is not None:
            x = self.emb_norm(x)
        new = []
        for blk, st in zip(self.blocks, state):
            x, st = blk.step(x, st)
            new.append(st)
        f = self.final_norm(x) if self.final_norm is not None else x  # (B, D)
        s = f @ self.item_emb.weight.T  # (B, n_items + 1)
        if self.item_bias is not None:
            s = s + self.item_bias
        s[:, 0] = float("-inf")
        return s, new

    # -- training -----------------------------------------------------------------------

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """batch: seq (B, L), pos (B, L) next items (0 = no target), neg (B, L, k) negatives."""
        seq = batch["seq"]
        tok = self.tokens(seq)
        pos_t = batch["pos"].reshape(-1)[tok.idx]  # (T,) target of each token
        valid = pos_t != 0  # (T,)
        p = pos_t[valid]  # (N,)
        x_ids = seq.reshape(-1)[tok.idx]  # (T,)
        kind = self.cfg.loss
        if kind == "ce":
            f = self.encode(self.item_emb(x_ids), tok)[valid]  # (N, D)
            logits = f @ self.item_emb.weight.T  # (N, n_items + 1)
            if self.item_bias is not None:
                logits = logits + self.item_bias
            logits[:, 0] = float("-inf")
            loss = F.cross_entropy(logits, p)
        else:
            neg = batch["neg"].reshape(-1, batch["neg"].shape[-1])[tok.idx][valid]  # (N, k)
            N, k = neg.shape
            # one lookup for inputs, positives and negatives: a single dense gradient for E
            e = self.item_emb(torch.cat([x_ids, p, neg.reshape(-1)]))  # (T + N + N*k, D)
            e_x, e_pos, e_neg = e.split([x_ids.numel(), N, N * k])
            f = self.encode(e_x, tok)[valid]  # (N, D)
            s_pos = (f * e_pos).sum(-1)  # (N,)
            s_neg = torch.einsum("nd,nkd->nk", f, e_neg.view(N, k, -1))  # (N, k)
            if self.item_bias is not None:
                s_pos, s_neg = s_pos + self.item_bias[p], s_neg + self.item_bias[neg]
            if kind == "bce":
                loss = (F.softplus(-s_pos) + F.softplus(s_neg).sum(-1)).mean()
            elif kind == "sampled_softmax":
                logits = torch.cat([s_pos[:, None], s_neg], dim=1)  # (N, 1 + k)
                loss = F.cross_entropy(logits, torch.zeros_like(p))
            else:  # gbce
                beta = gbce_beta(s_neg.shape[1], self.cfg.n_items, self.cfg.gbce_t, self.cfg.gbce_alpha)
                loss = ((beta * F.softplus(-s_pos) + F.softplus(s_neg).sum(-1)) / (s_neg.shape[1] + 1)).mean()
        logs = {} if kind == "ce" else {"auc": float((s_pos[:, None] > s_neg).float().mean())}  # TF's "auc"
        if self.cfg.l2_emb > 0:
            loss = loss + self.cfg.l2_emb * self.item_emb.weight.pow(2).sum()
        return loss, logs


# ----------------------------------------------------------------------------- variants


@register_model("sasrec", config=SASRecConfig)
def sasrec(cfg: SASRecConfig) -> SASRec:
    """SASRec, paper defaults (Kang & McAuley 2018): d 50, 2 blocks, 1 head, dropout 0.5, BCE."""
    return SASRec(cfg)


TestSASRecConfig = variant(SASRecConfig, "TestSASRecConfig", n_items=50, maxlen=8, d_model=16, n_blocks=2, n_heads=2,
                           dropout=0.1)


@register_model("test_sasrec", config=TestSASRecConfig)
def test_sasrec(cfg: TestSASRecConfig) -> SASRec:
    """Tiny SASRec for tests (d 16, 2 blocks, 2 heads, maxlen 8)."""
    return SASRec(cfg)
