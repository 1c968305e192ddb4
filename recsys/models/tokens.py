"""SASRec's token layout: where a batch's tokens live (padded or packed by length) and how
attention or a recurrent mixer sees them (recsys/models/sasrec.py builds the blocks on it)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout from ``torch.rand`` (about 2x faster on CPU than ``bernoulli_``)."""
    if not training or p == 0.0:
        return x
    return x * (torch.rand_like(x) >= p).to(x.dtype).mul_(1.0 / (1.0 - p))


class Tokens:
    """Where the tokens of a batch live and how attention sees them.

    Blocks work on a flat (T, D) token matrix; only attention needs the sequence layout.
    ``Tokens.padded(seq)``: every (b, l) position is a token (T = B*L), one (B, L, L)
    attention: the obviously-correct reference. ``Tokens.packed(seq)``: only positions from
    a row's first item on are tokens (T = N), and attention runs on groups of rows of
    similar length, each cut to its own longest row. Padding never influences a real
    position (keys masked, outputs zeroed), so both give the same outputs at real positions;
    packing skips the padding work (on Amazon Games, ~88% of a maxlen-50 batch is padding).
    """

    def __init__(self, seq: torch.Tensor, idx: torch.Tensor, groups: list, inv: torch.Tensor | None):
        self.seq, self.idx, self.groups, self.inv = seq, idx, groups, inv
        B, L = seq.shape
        self.keep = (seq.reshape(-1)[idx] != 0).unsqueeze(-1)  # (T, 1)
        self.col = idx % L  # (T,) column of each token in the window

    @classmethod
    def padded(cls, seq: torch.Tensor) -> "Tokens":
        B, L = seq.shape
        mask = cls._mask(seq != 0)
        return cls(seq, torch.arange(B * L, device=seq.device), [(None, mask)], None)

    @classmethod
    def packed(cls, seq: torch.Tensor, chunk: int = 64) -> "Tokens":
        B, L = seq.shape
        dev = seq.device
        nz = seq != 0  # (B, L)
        first = torch.where(nz.any(1), nz.to(torch.int8).argmax(1), torch.full((B,), L, device=dev))  # (B,)
        span = L - first  # (B,)
        in_span = torch.arange(L, device=dev)[None, :] >= first[:, None]  # (B, L)
        idx = in_span.reshape(-1).nonzero().squeeze(1)  # (N,)
        N = idx.numel()
        pmap = torch.full((B * L,), N, dtype=torch.long, device=dev)
        pmap[idx] = torch.arange(N, device=dev)
        pmap = pmap.view(B, L)  # (B, L), N = outside the row's span
        nz_ext = torch.cat([nz.reshape(-1)[idx], nz.new_zeros(1)])  # (N + 1,)
        order = torch.sort(span, descending=True, stable=True).indices
        spans = span[order].tolist()
        groups, flat = [], []
        for i, j in cls._group_bounds(spans, chunk):
            Lg = spans[i]
            g = pmap[order[i:j], L - Lg:]  # (n_g, Lg) token ids, N = none
            groups.append((g, cls._mask(nz_ext[g])))
            flat.append(g.reshape(-1))
        flat_all = torch.cat(flat) if flat else idx.new_zeros(0)
        inv = torch.empty(N, dtype=torch.long, device=dev)
        hit = flat_all < N
        inv[flat_all[hit]] = hit.nonzero().squeeze(1)  # token -> row of the concatenated group outputs
        return cls(seq, idx, groups, inv)

    @staticmethod
    def _group_bounds(spans: list[int], chunk: int) -> list[tuple[int, int]]:
        """Split rows sorted by decreasing span into groups: a group closes at ``chunk`` rows
        or when the next row is shorter than half the group's longest (padding waste < 4x)."""
        out, i, B = [], 0, len(spans)
        while i < B and spans[i] > 0:
            j = i + 1
            while j < B and j - i < chunk and 2 * spans[j] >= spans[i]:
                j += 1
            out.append((i, j))
            i = j
        return out

    @staticmethod
    def _mask(key_ok: torch.Tensor) -> torch.Tensor:
        """(R, 1, L, L) bool, True = may attend: key j <= query i and key j is an item.

        A padding query would have no key; it attends to itself so the softmax stays
        finite. Its output is zeroed and, as a masked key, never reaches a real position.
        """
        L = key_ok.shape[1]
        causal = torch.ones(L, L, dtype=torch.bool, device=key_ok.device).tril_()  # (L, L)
        eye = torch.eye(L, dtype=torch.bool, device=key_ok.device)  # (L, L)
        return ((causal & key_ok[:, None, :]) | eye).unsqueeze(1)  # (R, 1, L, L)

    def attend(self, q: torch.Tensor, kv: torch.Tensor, n_heads: int, p: float, training: bool) -> torch.Tensor:
        """q (T, D), kv (T, 2D) -> softmax(QK^T/sqrt(d_h) + mask) V: (T, D)."""
        D = q.shape[1]
        qkv = torch.cat([q, kv], dim=1)  # (T, 3D)
        if self.inv is None:  # padded
            return self._heads(qkv.view(*self.seq.shape, 3 * D), self.groups[0][1], n_heads, p, training).reshape(-1, D)
        qkv = torch.cat([qkv, qkv.new_zeros(1, 3 * D)])  # (N + 1, 3D), row N = nothing
        outs = [self._heads(qkv[g], mask, n_heads, p, training).reshape(-1, D) for g, mask in self.groups]
        return torch.cat(outs)[self.inv]  # (N, D)

    def rows(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """Each token's place in a right-aligned (B, Lr, D) batch for a recurrent mixer: row r, place
        p = column - the row's first item (real items at 0..len-1, padding after them, so left padding
        never enters a state); ok: False for padding tokens before a row's first item (padded layout)."""
        if getattr(self, "_rows", None) is None:
            B, L = self.seq.shape
            nz = self.seq != 0
            first = torch.where(nz.any(1), nz.to(torch.int8).argmax(1), torch.full((B,), L, device=nz.device))  # (B,)
            r = self.idx // L  # (T,)
            p = self.col - first[r]  # (T,)
            ok = p >= 0
            self._rows = (r, p.clamp(min=0), ok, max(int((L - first).max()) if B else 1, 1))
        return self._rows

    def mix(self, x: torch.Tensor, mixer: nn.Module) -> torch.Tensor:
        """x (T, D) -> the mixer over each row's tokens in order: (T, D) (zero at leading padding).

        Padded: one (B, Lr, D) grid, the reference. Packed: rows bucketed by length (1, 2, 3-4,
        5-8, ...), each bucket a grid cut to its longest row; a causal mixer never looks past a
        row's last item, so the outputs are the same and the trailing-padding work is skipped."""
        if self.inv is None:
            r, p, ok, Lr = self.rows()
            grid = x.new_zeros(self.seq.shape[0], Lr, x.shape[1]).index_put((r[ok], p[ok]), x[ok])  # (B, Lr, D)
            y, _ = mixer(grid)  # (B, Lr, D)
            return y[r, p] * ok[:, None].to(y.dtype)  # (T, D)
        outs = []
        for sel, lr, p, shape in self.buckets():
            y, _ = mixer(x.new_zeros(*shape, x.shape[1]).index_put((lr, p), x[sel]))  # (n_b, L_b, D)
            outs.append(y[lr, p])  # (T_b, D)
        return torch.cat(outs)[self._bucket_inv]  # (T, D)

    def buckets(self) -> list:
        """Packed tokens by row-length bucket: (token ids, row in bucket, place, grid shape) each."""
        if getattr(self, "_buckets", None) is None:
            r, p, _, _ = self.rows()  # packed: every token is a real item (ok everywhere)
            span = torch.bincount(r, minlength=self.seq.shape[0])  # (B,) items per row
            level = torch.ceil(torch.log2(span.clamp(min=1).double())).long()  # (B,) 1 -> 0, 2 -> 1, 3-4 -> 2, ...
            self._buckets, order = [], []
            for lv in level[span > 0].unique().tolist():
                rows_b = ((level == lv) & (span > 0)).nonzero().squeeze(1)  # (n_b,)
                local = torch.full_like(span, -1).index_put((rows_b,), torch.arange(len(rows_b), device=span.device))
                sel = (local[r] >= 0).nonzero().squeeze(1)  # (T_b,) tokens of this bucket
                self._buckets.append((sel, local[r[sel]], p[sel], (len(rows_b), int(span[rows_b].max()))))
                order.append(sel)
            flat = torch.cat(order) if order else r.new_zeros(0)
            self._bucket_inv = torch.empty_like(flat).index_put((flat,), torch.arange(len(flat), device=flat.device))
        return self._buckets

    @staticmethod
    def _heads(qkv: torch.Tensor, mask: torch.Tensor, H: int, p: float, training: bool) -> torch.Tensor:
        R, L, D3 = qkv.shape
        D = D3 // 3
        q, k, v = qkv.view(R, L, 3, H, D // H).permute(2, 0, 3, 1, 4)  # 3 x (R, H, L, Dh)
        if training and p > 0:  # explicit: SDPA's CPU dropout path is slow
            a = (q @ k.transpose(-1, -2)) * (D // H) ** -0.5  # (R, H, L, L)
            a = a.masked_fill(~mask, float("-inf")).softmax(-1)
            y = dropout(a, p, True) @ v  # (R, H, L, Dh)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (R, H, L, Dh)
        return y.transpose(1, 2).reshape(R, L, D)  # (R, L, D)
