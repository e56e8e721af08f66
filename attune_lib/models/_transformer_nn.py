"""Layers of the regulatory transformer (gene-peak decoder on frozen feature tokens).

Per cell, the decoder reads two token sequences built from *frozen* per-feature embeddings:

* genes ``[gene-CLS, t_1 .. t_G]`` and peaks ``[peak-CLS, s_1 .. s_P]``; a token is affine in the
  feature's value, ``t_i = x_i * slope_i + offset_i`` (:class:`AffineTokens`; for Attune's teachers
  ``slope_i = scale_i E_i`` and ``offset_i = shift_i E_i`` from the eval-mode value batch norm);
* the peak-CLS token pools the cell's peaks with one query (attention over ``[peak-CLS, peaks]``,
  residual + layer norm), so its output depends on the cell; it replaces the input CLS in the memory;
* a post-LN decoder layer: gene self-attention (dense) -> cross-attention from genes to the memory
  with the window mask -> feed-forward (``d -> d_ff -> d``), each with dropout, residual and layer norm.

Attention mask (additive; 0 allowed, -1e9 masked): row 0 (gene-CLS) sees every peak and the
peak-CLS; gene ``g`` sees the peak-CLS and the peaks whose midpoint is within ``window_bp`` of its
TSS; genes without annotation see only the peak-CLS. It is stored as a gene-major CSR pattern over
``(G + 1) x (P + 1)`` (column 0 = peak-CLS first in each row, then peaks in increasing order).

Two implementations of the masked cross-attention give the same values and gradients (tested):

* ``"dense"`` (reference): ``softmax(Q K^T / sqrt(d_h) + M) V`` with a dense ``(G+1) x (P+1)`` mask per
  cell and head;
* ``"sparse"``: logits only at the pattern's entries (a chunked gather "SDDMM"), a per-row (segment)
  softmax with ``scatter_reduce``/``index_add``, and a chunked gather + ``index_add`` for ``weights @ V``,
  all in a sequence-major layout (``L x cells*heads x d_h``) with custom backward passes. Memory is
  ``O(nnz + (G + P) d)`` per cell instead of ``O(G P)``: at PBMC scale (2,000 genes x 30,000 peaks,
  ~0.2 % of pairs in the window) the pattern has ~0.25 % of the dense entries.

Single-query rows (the peak-CLS pooling, and the gene-CLS row, the only row of the last layer that reaches
the losses) use :func:`affine_query_attention`: with affine tokens, ``q . k_p`` and ``sum_p w_p v_p`` reduce
to ``B x P`` and ``B x d`` products, so training never forms the ``P x B x d`` peak keys/values
(:class:`PeakMemory` forms them, once per layer, only when every gene row is needed).

The same softmax (and dropout on its output) is used in training and inference.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .._utils import AttuneInputError
from ._attune_losses import nt_xent

__all__ = [
    "AffineTokens",
    "AttentionPattern",
    "PeakMemory",
    "RegulatoryDecoderModule",
    "affine_query_attention",
    "dense_masked_attention",
    "matching_pairs",
    "sample_hard_negatives",
    "sparse_masked_attention",
]

MASK_VALUE = -1e9


# --------------------------------------------------------------------------------------------------
# attention pattern (window mask as CSR)
# --------------------------------------------------------------------------------------------------
class AttentionPattern:
    """Gene-major CSR pattern of allowed (query row, memory column) pairs.

    Rows ``0..G`` (0 = gene-CLS), columns ``0..P`` (0 = peak-CLS). Built from the in-window
    gene-peak pairs (0-based gene and peak indices, gene-major and increasing peak order within a gene)
    and the annotated-gene mask.

    Parameters
    ----------
    n_genes, n_peaks
        Sequence lengths without CLS.
    pair_gene, pair_peak
        In-window pairs (gene-major, sorted), 0-based.
    """

    def __init__(self, n_genes: int, n_peaks: int, pair_gene: np.ndarray, pair_peak: np.ndarray):
        pair_gene = np.asarray(pair_gene, dtype=np.int64)
        pair_peak = np.asarray(pair_peak, dtype=np.int64)
        if pair_gene.shape != pair_peak.shape:
            raise AttuneInputError("pair_gene and pair_peak must have the same length")
        if len(pair_gene) and (pair_gene.min() < 0 or pair_gene.max() >= n_genes
                               or pair_peak.min() < 0 or pair_peak.max() >= n_peaks):
            raise AttuneInputError("window pairs index genes/peaks out of range")
        order = np.lexsort((pair_peak, pair_gene))
        pair_gene, pair_peak = pair_gene[order], pair_peak[order]
        self.n_genes, self.n_peaks = int(n_genes), int(n_peaks)
        self.pair_gene, self.pair_peak = pair_gene, pair_peak
        counts = np.bincount(pair_gene, minlength=n_genes) + 1  # + peak-CLS
        row_len = np.concatenate([[n_peaks + 1], counts])
        crow = np.zeros(n_genes + 2, dtype=np.int64)
        np.cumsum(row_len, out=crow[1:])
        col = np.empty(crow[-1], dtype=np.int64)
        col[: n_peaks + 1] = np.arange(n_peaks + 1)
        col[crow[1:-1]] = 0  # each gene row starts with the peak-CLS
        # positions of the pair entries: after the CLS entry of their row
        rank = np.arange(len(pair_gene)) - (np.cumsum(counts - 1) - (counts - 1))[pair_gene]
        self.pair_pos = crow[1 + pair_gene] + 1 + rank
        col[self.pair_pos] = pair_peak + 1
        self.crow_np, self.col_np = crow, col
        self._torch: dict = {}

    @property
    def nnz(self) -> int:
        return int(self.crow_np[-1])

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_genes + 1, self.n_peaks + 1)

    def density(self) -> float:
        """Fraction of in-window gene-peak pairs (without CLS rows and columns)."""
        return len(self.pair_gene) / max(self.n_genes * self.n_peaks, 1)

    def tensors(self, device: torch.device, n_rows: int | None = None) -> dict[str, torch.Tensor]:
        """``crow, col, rows`` (row id per entry) and the transposed pattern, for the first ``n_rows`` rows."""
        n_rows = self.n_genes + 1 if n_rows is None else int(n_rows)
        key = (str(device), n_rows)
        if key not in self._torch:
            crow = torch.from_numpy(self.crow_np[: n_rows + 1].copy()).to(device)
            nnz = int(crow[-1])
            col = torch.from_numpy(self.col_np[:nnz].copy()).to(device)
            rows = torch.repeat_interleave(torch.arange(n_rows, device=device), crow[1:] - crow[:-1],
                                           output_size=nnz)
            self._torch[key] = {"crow": crow, "col": col, "rows": rows, "n_rows": n_rows,
                                "n_cols": self.n_peaks + 1}
        return self._torch[key]

    def dense_mask(self, n_rows: int | None = None, *, device=None, dtype=torch.float32) -> torch.Tensor:
        """Additive ``n_rows x (P + 1)`` mask: 0 where allowed, ``-1e9`` elsewhere (the dense reference)."""
        t = self.tensors(torch.device("cpu") if device is None else torch.device(device), n_rows)
        M = torch.full((t["n_rows"], t["n_cols"]), MASK_VALUE, dtype=dtype, device=t["col"].device)
        M[t["rows"], t["col"]] = 0.0
        return M

    def to_scipy(self):
        import scipy.sparse as sp

        return sp.csr_matrix((np.ones(self.nnz, dtype=np.float32), self.col_np, self.crow_np), shape=self.shape)


# --------------------------------------------------------------------------------------------------
# sparse kernels (sequence-major layout: L x N x d_h, N = cells x heads)
# --------------------------------------------------------------------------------------------------
class _SDDMM(torch.autograd.Function):
    """``out[e, n] = a[rows[e], n] . b[cols[e], n]`` chunked over entries; ``a``: R x N x d, ``b``: C x N x d.

    Gathers are row copies along dim 0 (``index_select``); no ``nnz x N x d`` tensor is kept for backward.
    """

    @staticmethod
    def forward(ctx, a, b, rows, cols, chunk: int):
        E, N = rows.numel(), a.shape[1]
        out = a.new_empty((E, N))
        for st in range(0, E, chunk):
            r, c = rows[st : st + chunk], cols[st : st + chunk]
            A, Bc = a.index_select(0, r), b.index_select(0, c)
            out[st : st + chunk] = torch.bmm(A.view(-1, 1, A.shape[-1]), Bc.view(-1, A.shape[-1], 1)).view(-1, N)
        ctx.save_for_backward(a, b, rows, cols)
        ctx.chunk = chunk
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        a, b, rows, cols = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad[:2]
        da = torch.zeros_like(a) if need_a else None
        db = torch.zeros_like(b) if need_b else None
        for st in range(0, rows.numel(), ctx.chunk):
            r, c = rows[st : st + ctx.chunk], cols[st : st + ctx.chunk]
            gc = g[st : st + ctx.chunk, :, None]
            if need_a:
                da.index_add_(0, r, b.index_select(0, c).mul_(gc))
            if need_b:
                db.index_add_(0, c, a.index_select(0, r).mul_(gc))
        return da, db, None, None, None


class _SpMM(torch.autograd.Function):
    """``out[r, n] = sum_{e in row r} w[e, n] v[cols[e], n]``; ``w``: nnz x N, ``v``: C x N x d -> R x N x d."""

    @staticmethod
    def forward(ctx, w, v, rows, cols, n_rows: int, chunk: int):
        out = v.new_zeros((n_rows, *v.shape[1:]))
        for st in range(0, rows.numel(), chunk):
            r, c = rows[st : st + chunk], cols[st : st + chunk]
            out.index_add_(0, r, v.index_select(0, c).mul_(w[st : st + chunk, :, None]))
        ctx.save_for_backward(w, v, rows, cols)
        ctx.chunk = chunk
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        w, v, rows, cols = ctx.saved_tensors
        g = g.contiguous()
        dw = dv = None
        if ctx.needs_input_grad[0]:
            dw = _SDDMM.apply(g, v, rows, cols, ctx.chunk)
        if ctx.needs_input_grad[1]:
            dv = torch.zeros_like(v)
            for st in range(0, rows.numel(), ctx.chunk):
                r, c = rows[st : st + ctx.chunk], cols[st : st + ctx.chunk]
                dv.index_add_(0, c, g.index_select(0, r).mul_(w[st : st + ctx.chunk, :, None]))
        return dw, dv, None, None, None, None


def _segment_softmax(logits: torch.Tensor, rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """Softmax of ``logits`` (``nnz x N``) within each row segment (rows sorted or not)."""
    N = logits.shape[1]
    idx = rows[:, None].expand(-1, N)
    m = torch.full((n_rows, N), -torch.inf, dtype=logits.dtype, device=logits.device)
    m = m.scatter_reduce(0, idx, logits.detach(), reduce="amax", include_self=True)
    e = torch.exp(logits - m.index_select(0, rows))
    denom = torch.zeros((n_rows, N), dtype=logits.dtype, device=logits.device).index_add_(0, rows, e)
    return e / denom.index_select(0, rows)


def sparse_masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pat: dict, *,
                            dropout_p: float = 0.0, training: bool = False, chunk: int = 1024):
    """Masked attention on a CSR pattern (sequence-major tensors).

    Parameters
    ----------
    q
        ``R x N x d_h`` queries (``R`` = pattern rows, ``N`` = cells x heads).
    k, v
        ``C x N x d_h`` keys and values.
    pat
        :meth:`AttentionPattern.tensors` (``crow``, ``col``, ``rows``, ``n_rows``, ``n_cols``).

    Returns
    -------
    ``(out, weights)``: ``R x N x d_h`` and the softmax weights at the pattern's entries (``nnz x N``,
    before dropout).
    """
    logits = _SDDMM.apply(q, k, pat["rows"], pat["col"], int(chunk)) / math.sqrt(q.shape[-1])
    w = _segment_softmax(logits, pat["rows"], pat["n_rows"])
    wd = F.dropout(w, dropout_p, training) if dropout_p > 0 else w
    return _SpMM.apply(wd, v, pat["rows"], pat["col"], pat["n_rows"], int(chunk)), w


def dense_masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, *,
                           dropout_p: float = 0.0, training: bool = False):
    """Reference: ``softmax(Q K^T / sqrt(d_h) + mask) V`` with a dense additive mask (``R x C``).

    Same layout as :func:`sparse_masked_attention`; returns ``(out, weights)`` with dense ``N x R x C``
    weights (before dropout).
    """
    qn, kn, vn = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
    logits = qn @ kn.transpose(-1, -2) / math.sqrt(q.shape[-1]) + mask
    w = torch.softmax(logits, dim=-1)
    wd = F.dropout(w, dropout_p, training) if dropout_p > 0 else w
    return (wd @ vn).transpose(0, 1), w


# --------------------------------------------------------------------------------------------------
# tokens
# --------------------------------------------------------------------------------------------------
class _AffineOuter(torch.autograd.Function):
    """``out[f, b] = x[f, b] * s[f] + o[f]`` (``F x B x d``); the backward reduces over cells with ``bmm``
    (autograd's broadcast reduction over the middle axis is several times slower on CPU)."""

    @staticmethod
    def forward(ctx, xt, s, o):
        ctx.save_for_backward(xt, s)
        return torch.addcmul(o[:, None, :], xt[:, :, None], s[:, None, :])

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        xt, s = ctx.saved_tensors
        g = g.contiguous()
        dx = ds = do = None
        if ctx.needs_input_grad[0]:
            dx = torch.bmm(g, s[:, :, None])[:, :, 0]
        if ctx.needs_input_grad[1]:
            ds = torch.bmm(xt[:, None, :], g)[:, 0]
        if ctx.needs_input_grad[2]:
            do = torch.bmm(torch.ones_like(xt[:, None, :]), g)[:, 0]
        return dx, ds, do


def _affine_outer(xt: torch.Tensor, s: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
    return _AffineOuter.apply(xt, s, o)


class AffineTokens(nn.Module):
    """Frozen per-feature tokens ``t_i(x) = scale * (x * slope_i + offset_i)``.

    ``slope`` and ``offset`` (``n_features x d``) are buffers, so the token source stays frozen while the
    decoder trains. ``scale`` is one scalar (e.g. 1 / RMS of the tokens, see ``token_scaling``).
    Outputs are sequence-major: ``n_features x B x d``.
    """

    def __init__(self, slope: torch.Tensor, offset: torch.Tensor | None = None, *, scale: float = 1.0):
        super().__init__()
        slope = torch.as_tensor(slope, dtype=torch.float32)
        self.register_buffer("slope", slope.clone())
        self.register_buffer("offset", torch.zeros_like(slope) if offset is None
                             else torch.as_tensor(offset, dtype=torch.float32).clone())
        self.register_buffer("scale", torch.tensor(float(scale)))

    @property
    def n_features(self) -> int:
        return int(self.slope.shape[0])

    @property
    def dim(self) -> int:
        return int(self.slope.shape[1])

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.slope * self.scale, self.offset * self.scale

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """``B x F`` dense values -> ``F x B x d`` tokens."""
        slope, offset = self.affine()
        return torch.addcmul(offset[:, None, :], X.t()[:, :, None], slope[:, None, :])

    def project(self, X: torch.Tensor, lin: nn.Linear) -> torch.Tensor:
        """``lin(tokens(X))`` (``F x B x d_out``) without materialising the tokens:
        ``x (slope W^T) + (offset W^T + b)``, so the ``d x d`` product is paid once per batch, not per cell."""
        slope, offset = self.affine()
        return _affine_outer(X.t().contiguous(), slope @ lin.weight.t(), lin(offset))

    @torch.no_grad()
    def rms(self, X: torch.Tensor) -> float:
        """Root mean square of the (unscaled) tokens of the cells ``X`` (``B x F``)."""
        t = torch.addcmul(self.offset[:, None, :], X.t()[:, :, None], self.slope[:, None, :])
        return float(t.pow(2).mean().sqrt())


# --------------------------------------------------------------------------------------------------
# hard negatives and matching labels
# --------------------------------------------------------------------------------------------------
def sample_hard_negatives(sim: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """For each row ``i`` of a ``B x B`` similarity, draw a column ``j != i`` with probability
    ``softmax(sim[i, j], j != i)`` (ALBEF-style hard negatives). Needs ``B >= 2``."""
    B = sim.shape[0]
    if B < 2 or sim.shape != (B, B):
        raise AttuneInputError(f"hard negatives need a square similarity with B >= 2, got {tuple(sim.shape)}")
    eye = torch.eye(B, dtype=torch.bool, device=sim.device)
    logits = sim.detach().float().masked_fill(eye, -torch.inf)
    p = torch.nan_to_num(torch.softmax(logits, dim=1), nan=0.0)
    bad = p.sum(1) <= 0  # rows without a finite similarity: uniform over the others
    if bad.any():
        p[bad] = (~eye)[bad].float()
    return torch.multinomial(p, 1, generator=generator).squeeze(1)


def matching_pairs(neg_atac: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RNA/ATAC cell indices and labels of the matching task: ``B`` own pairs then ``B`` mismatched ones.

    Labels are derived from the indices: 1 exactly where the RNA and the ATAC cell are the same cell.
    """
    B = neg_atac.numel()
    idx = torch.arange(B, device=neg_atac.device)
    rna = torch.cat([idx, idx])
    atac = torch.cat([idx, neg_atac])
    return rna, atac, (rna == atac).long()


# --------------------------------------------------------------------------------------------------
# single-query attention over affine tokens (CLS rows), and the peak memory
# --------------------------------------------------------------------------------------------------
def affine_query_attention(q: torch.Tensor, lin_k: nn.Linear, lin_v: nn.Linear, X: torch.Tensor,
                           slope: torch.Tensor, offset: torch.Tensor, cls_in: torch.Tensor, *,
                           dropout_p: float = 0.0, training: bool = False) -> torch.Tensor:
    """One query per cell and head over ``[CLS, tokens]`` where token ``p`` of cell ``b`` is
    ``X[b, p] * slope[p] + offset[p]``, without forming the ``P x B x d`` keys or values.

    With ``u = W_k^T q``: ``q . k_p = X_bp (u . slope_p) + u . offset_p + q . b_k``, and
    ``sum_p w_p v_p = W_v (sum_p w_p (X_bp slope_p + offset_p)) + b_v sum_p w_p``; the cost is ``O(B H P d)``
    (no ``P d^2`` term). Identical to softmax attention over the materialised keys/values (tested).

    Parameters
    ----------
    q
        ``B x H x d_h`` queries.
    lin_k, lin_v
        Key and value projections (``d -> H d_h``).
    X
        ``B x P`` token values.
    slope, offset
        ``P x d`` affine token maps.
    cls_in
        ``B x d``: the CLS token at position 0 (its key and value go through ``lin_k``/``lin_v``).

    Returns
    -------
    ``B x H x d_h`` attention outputs (before the output projection).
    """
    B, H, dh = q.shape
    d_in = slope.shape[1]
    Wk, bk = lin_k.weight.view(H, dh, d_in), lin_k.bias.view(H, dh)
    Wv, bv = lin_v.weight.view(H, dh, d_in), lin_v.bias.view(H, dh)
    scale = 1.0 / math.sqrt(dh)
    u = torch.einsum("bhe,hed->bhd", q, Wk)
    logits_p = (X[:, None, :] * (u @ slope.t()) + u @ offset.t() + (q * bk).sum(-1, keepdim=True)) * scale
    logit_c = (q * lin_k(cls_in).view(B, H, dh)).sum(-1, keepdim=True) * scale
    w = torch.softmax(torch.cat([logit_c, logits_p], dim=-1), dim=-1)
    if dropout_p > 0:
        w = F.dropout(w, dropout_p, training)
    wc, wp = w[..., :1], w[..., 1:]
    z = (wp * X[:, None, :]) @ slope + wp @ offset  # B x H x d_in
    return (torch.einsum("bhd,hed->bhe", z, Wv) + bv * wp.sum(-1, keepdim=True)
            + wc * lin_v(cls_in).view(B, H, dh))


class PeakMemory:
    """The cross-attention memory of a batch: ``[peak-CLS output, peaks]`` with affine peak tokens.

    Single-query rows use :func:`affine_query_attention`; full keys/values (``(P+1) x (B H) x d_h``) are
    formed only when all gene rows are needed (:meth:`kv`, cached per layer).
    """

    def __init__(self, X: torch.Tensor, p_cls: torch.Tensor, slope: torch.Tensor, offset: torch.Tensor):
        self.X, self.p_cls, self.slope, self.offset = X, p_cls, slope, offset
        self._kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def select(self, idx: torch.Tensor) -> PeakMemory:
        """The memory of cells ``idx`` (e.g. mismatched partners)."""
        return PeakMemory(self.X.index_select(0, idx), self.p_cls.index_select(0, idx), self.slope, self.offset)

    def kv(self, key: int, ca: _Attention) -> tuple[torch.Tensor, torch.Tensor]:
        if key not in self._kv:
            xt = self.X.t().contiguous()
            out = []
            for lin in (ca.k, ca.v):
                toks = _affine_outer(xt, self.slope @ lin.weight.t(), lin(self.offset))
                out.append(ca.heads(torch.cat([lin(self.p_cls)[None], toks], dim=0)))
            self._kv[key] = (out[0], out[1])
        return self._kv[key]

    def query(self, ca: _Attention, q: torch.Tensor, *, dropout_p: float, training: bool) -> torch.Tensor:
        """``q``: ``B x H x d_h`` single queries -> ``B x H x d_h``."""
        return affine_query_attention(q, ca.k, ca.v, self.X, self.slope, self.offset, self.p_cls,
                                      dropout_p=dropout_p, training=training)


# --------------------------------------------------------------------------------------------------
# attention blocks
# --------------------------------------------------------------------------------------------------
class _Attention(nn.Module):
    """Multi-head attention with separate Q, K, V, output projections; sequence-major ``L x B x d``."""

    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        if d % n_heads:
            raise AttuneInputError(f"n_hidden={d} must be divisible by n_heads={n_heads}")
        self.d, self.h, self.dh = d, n_heads, d // n_heads
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)
        self.dropout = float(dropout)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """``L x B x d`` -> ``L x (B H) x d_h`` (a view)."""
        L, B, _ = x.shape
        return x.reshape(L, B * self.h, self.dh)

    def merge(self, x: torch.Tensor) -> torch.Tensor:
        """``L x (B H) x d_h`` -> output projection of ``L x B x d``."""
        L, N, _ = x.shape
        return self.o(x.reshape(L, N // self.h, self.d))

    def full(self, x_q: torch.Tensor, x_kv: torch.Tensor) -> torch.Tensor:
        """Unmasked attention (gene self-attention)."""
        q, k, v = self.heads(self.q(x_q)), self.heads(self.k(x_kv)), self.heads(self.v(x_kv))
        out = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1),
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.merge(out.transpose(0, 1))


class DecoderLayer(nn.Module):
    """Post-LN decoder layer: gene self-attention, masked cross-attention to the peaks, feed-forward."""

    def __init__(self, d: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.self_attn = _Attention(d, n_heads, dropout)
        self.cross_attn = _Attention(d, n_heads, dropout)
        self.ff = nn.Sequential(nn.Linear(d, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mem: PeakMemory, key: int, pattern: AttentionPattern, *,
                n_rows: int | None = None, impl: str = "sparse", return_weights: bool = False):
        """``x``: ``(G+1) x B x d`` gene sequence; ``mem``: the batch's :class:`PeakMemory` (``key`` caches its
        keys/values for this layer).

        ``n_rows`` computes only the first rows' outputs (``1``: the gene-CLS, all the losses need from
        the last layer; it is unmasked and uses :func:`affine_query_attention`). Returns ``(h, weights)``:
        ``R x B x d`` and the cross-attention weights (``nnz x (B H)`` sparse, ``(B H) x R x (P+1)`` dense;
        None unless ``return_weights``).
        """
        xq = x if n_rows is None else x[:n_rows]
        R, B = xq.shape[0], xq.shape[1]
        h = self.norm1(xq + self.drop(self.self_attn.full(xq, x)))
        ca = self.cross_attn
        q = ca.heads(ca.q(h))
        p = ca.dropout if self.training else 0.0
        if R == 1 and not return_weights:
            out = mem.query(ca, q[0].view(B, ca.h, ca.dh), dropout_p=p, training=self.training)
            out, w = out.reshape(1, B * ca.h, ca.dh), None
        else:
            k, v = mem.kv(key, ca)
            if impl == "sparse":
                out, w = sparse_masked_attention(q, k, v, pattern.tensors(x.device, R), dropout_p=p,
                                                 training=self.training)
            elif impl == "dense":
                mask = pattern.dense_mask(R, device=x.device, dtype=q.dtype)
                out, w = dense_masked_attention(q, k, v, mask, dropout_p=p, training=self.training)
            else:
                raise AttuneInputError(f"attention must be 'sparse' or 'dense', got {impl!r}")
        h = self.norm2(h + self.drop(ca.merge(out)))
        h = self.norm3(h + self.drop(self.ff(h)))
        return h, (w if return_weights else None)


# --------------------------------------------------------------------------------------------------
# the module
# --------------------------------------------------------------------------------------------------
class RegulatoryDecoderModule(nn.Module):
    """Regulatory transformer: frozen tokens -> decoder; CLS contrast + RNA-ATAC matching losses.

    Parameters
    ----------
    rna_tokens, atac_tokens
        :class:`AffineTokens` (frozen) of genes and peaks.
    pattern
        :class:`AttentionPattern` (window mask) over these genes and peaks.
    n_hidden
        Model dimension ``d`` (128). Tokens of another dimension are projected by a linear layer.
    n_heads, n_layers, d_ff, dropout_rate
        1, 1, 512, 0.1 as in the original.
    temperature
        NT-Xent temperature of the CLS contrast.
    attention
        ``"sparse"`` or ``"dense"`` (reference) masked cross-attention.
    hard_negatives
        Draw the mismatched partner from the similarity softmax (True) or uniformly (ablation).

    The batch is ``{"rna": CSRBatch, "atac": CSRBatch}`` (same cells). Losses (:meth:`loss`):

    * ``loss_cls``: NT-Xent between the *output* gene-CLS (after the decoder, so it depends on the
      attention weights) and the output peak-CLS (after pooling the peaks) of the same cells;
    * ``loss_match``: cross-entropy of a linear classifier on the output gene-CLS of ``B`` own
      (RNA_i, ATAC_i) pairs (label 1) and ``B`` mismatched (RNA_i, ATAC_j) pairs (label 0), ``j != i`` drawn
      from ``softmax_j(sim(gene-CLS_i, peak-CLS_j))`` (hard negatives, drawn without gradient).

    In the last layer only the gene-CLS row reaches the losses, so training computes that row only
    (same losses and gradients); inference (:meth:`cell_attention`) computes every row.
    """

    def __init__(self, rna_tokens: AffineTokens, atac_tokens: AffineTokens, pattern: AttentionPattern, *,
                 n_hidden: int = 128, n_heads: int = 1, n_layers: int = 1, d_ff: int = 512, dropout_rate: float = 0.1,
                 temperature: float = 0.1, attention: str = "sparse", hard_negatives: bool = True):
        super().__init__()
        if attention not in ("sparse", "dense"):
            raise AttuneInputError(f"attention must be 'sparse' or 'dense', got {attention!r}")
        if rna_tokens.n_features != pattern.n_genes or atac_tokens.n_features != pattern.n_peaks:
            raise AttuneInputError(
                f"pattern is {pattern.n_genes} genes x {pattern.n_peaks} peaks but the tokens have "
                f"{rna_tokens.n_features} genes and {atac_tokens.n_features} peaks")
        if not 0.0 <= dropout_rate < 1.0:
            raise AttuneInputError(f"dropout_rate must be in [0, 1), got {dropout_rate}")
        if int(n_layers) < 1:
            raise AttuneInputError(f"n_layers must be >= 1, got {n_layers}")
        if temperature <= 0:
            raise AttuneInputError(f"temperature must be > 0, got {temperature}")
        d = int(n_hidden)
        self.rna_tokens, self.atac_tokens = rna_tokens, atac_tokens
        self.pattern = pattern
        self.attention = attention
        self.temperature = float(temperature)
        self.hard_negatives = bool(hard_negatives)
        self.rna_in = nn.Identity() if rna_tokens.dim == d else nn.Linear(rna_tokens.dim, d)
        self.atac_in = nn.Identity() if atac_tokens.dim == d else nn.Linear(atac_tokens.dim, d)
        self.gene_cls = nn.Parameter(torch.randn(d) * 0.02)
        self.peak_cls = nn.Parameter(torch.randn(d) * 0.02)
        self.peak_pool = _Attention(d, n_heads, dropout_rate)
        self.peak_norm = nn.LayerNorm(d)
        self.layers = nn.ModuleList(DecoderLayer(d, n_heads, d_ff, dropout_rate) for _ in range(int(n_layers)))
        self.match_head = nn.Linear(d, 2)
        self.drop = nn.Dropout(dropout_rate)

    @property
    def n_heads(self) -> int:
        return self.layers[0].cross_attn.h

    # ----------------------------------------------------------------------------------- pieces
    @staticmethod
    def _dense(batch) -> torch.Tensor:
        return batch.to_dense() if hasattr(batch, "to_dense") else batch

    def gene_sequence(self, X_rna: torch.Tensor) -> torch.Tensor:
        """``B x G`` values -> ``(G+1) x B x d`` (gene-CLS first)."""
        t = self.rna_in(self.rna_tokens(X_rna))
        return torch.cat([self.gene_cls.expand(1, t.shape[1], -1), t], dim=0)

    def peak_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(slope, offset)`` (``P x d``) of the peak tokens in model space (after ``atac_in``)."""
        slope, offset = self.atac_tokens.affine()
        if not isinstance(self.atac_in, nn.Identity):
            slope, offset = slope @ self.atac_in.weight.t(), self.atac_in(offset)
        return slope, offset

    def memory(self, X_atac: torch.Tensor) -> tuple[PeakMemory, torch.Tensor]:
        """The batch's :class:`PeakMemory` and the output peak-CLS (``B x d``).

        The peak-CLS pools the cell's peaks: one query over ``[peak-CLS, peaks]``, residual, layer norm.
        """
        B = X_atac.shape[0]
        pool = self.peak_pool
        slope, offset = self.peak_affine()
        cls_in = self.peak_cls.expand(B, -1)
        q = pool.q(cls_in).view(B, pool.h, pool.dh)
        out = affine_query_attention(q, pool.k, pool.v, X_atac, slope, offset, cls_in,
                                     dropout_p=pool.dropout if self.training else 0.0, training=self.training)
        p_cls = self.peak_norm(cls_in + self.drop(pool.o(out.reshape(B, -1))))
        return PeakMemory(X_atac, p_cls, slope, offset), p_cls

    def decode(self, genes: torch.Tensor, mem: PeakMemory, *, mem_index: torch.Tensor | None = None,
               cls_only: bool = False, return_weights: bool = False, attention: str | None = None):
        """Run the decoder. ``mem_index`` (``B``) pairs gene sequence ``i`` with memory cell ``mem_index[i]``.

        Returns ``(h, weights)``: the last layer's output rows (``R x B x d``; only the gene-CLS row with
        ``cls_only``) and its cross-attention weights (``nnz x B x H`` sparse, ``B x H x R x (P+1)`` dense).
        """
        impl = attention or self.attention
        B = genes.shape[1]
        H = self.n_heads
        if mem_index is not None:
            mem = mem.select(mem_index)
        h, w = genes, None
        for li, layer in enumerate(self.layers):
            last = li == len(self.layers) - 1
            h, w = layer(h, mem, li, self.pattern, n_rows=1 if (cls_only and last) else None, impl=impl,
                         return_weights=return_weights and last)
        if w is not None:
            w = w.reshape(w.shape[0], B, H) if impl == "sparse" else w.reshape(B, H, *w.shape[1:])
        return h, w

    # ----------------------------------------------------------------------------------- losses
    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """Output gene-CLS (own pairs) and output peak-CLS (``B x d`` each), plus the decoder inputs."""
        genes = self.gene_sequence(self._dense(batch["rna"]))
        mem, p_cls = self.memory(self._dense(batch["atac"]))
        h, _ = self.decode(genes, mem, cls_only=True)
        return {"gene_cls": h[0], "peak_cls": p_cls, "genes": genes, "mem": mem}

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        out = self(batch)
        g_cls, p_cls = out["gene_cls"], out["peak_cls"]
        B = g_cls.shape[0]
        if B < 2:
            raise AttuneInputError("the regulatory transformer needs >= 2 cells per training batch")
        loss_cls = nt_xent(g_cls, p_cls, temperature=self.temperature)
        with torch.no_grad():
            sim = F.normalize(g_cls, dim=1) @ F.normalize(p_cls, dim=1).t() / self.temperature
            if not self.hard_negatives:  # ablation: uniform over the other cells
                sim = torch.zeros_like(sim)
        neg = sample_hard_negatives(sim)
        _, _, labels = matching_pairs(neg)
        h_neg, _ = self.decode(out["genes"], out["mem"], mem_index=neg, cls_only=True)
        logits = self.match_head(torch.cat([g_cls, h_neg[0]], dim=0))
        loss_match = F.cross_entropy(logits, labels)
        acc = (logits.argmax(1) == labels).float().mean()
        return {"loss": loss_cls + loss_match, "loss_cls": loss_cls, "loss_match": loss_match,
                "match_acc": acc.detach()}

    # ----------------------------------------------------------------------------------- weights
    @torch.no_grad()
    def cell_attention(self, batch: dict, *, attention: str | None = None) -> dict[str, torch.Tensor]:
        """Per-cell cross-attention weights of the last layer (mean over heads), eval mode.

        Returns ``gene_to_cls`` (``B x G``: each gene's weight on the peak-CLS), ``cls_to_peak``
        (``B x P``: the gene-CLS weights over peaks) and ``pair`` (``B x n_pairs``: gene -> peak weights at
        the window pairs, in :attr:`AttentionPattern.pair_pos` order).
        """
        was_training = self.training
        self.eval()
        try:
            genes = self.gene_sequence(self._dense(batch["rna"]))
            mem, _ = self.memory(self._dense(batch["atac"]))
            impl = attention or self.attention
            _, w = self.decode(genes, mem, return_weights=True, attention=impl)
        finally:
            self.train(was_training)
        pat = self.pattern
        if impl == "dense":  # B x H x (G+1) x (P+1)
            w = w.mean(1)
            rows = torch.from_numpy(1 + pat.pair_gene).to(w.device)
            cols = torch.from_numpy(1 + pat.pair_peak).to(w.device)
            return {"gene_to_cls": w[:, 1:, 0], "cls_to_peak": w[:, 0, 1:], "pair": w[:, rows, cols]}
        w = w.mean(2).t()  # B x nnz
        crow = torch.from_numpy(pat.crow_np).to(w.device)
        return {"gene_to_cls": w[:, crow[1:-1]], "cls_to_peak": w[:, 1 : pat.n_peaks + 1],
                "pair": w[:, torch.from_numpy(pat.pair_pos).to(w.device)]}
