"""Attune layers: sparse teacher (feature embedding + context attention) and student encoders.

Teacher (one per modality), following the original Attune:

* token ``h_i = x_i * E_i`` for every feature ``i`` of the cell (zeros included), where ``x_i`` is the
  feature's value, optionally passed through one per-feature batch norm first (``value_batchnorm``);
* context attention: ``u_i = tanh(W h_i + b)``, ``score_i = u_i . c``, ``w = softmax(score)`` over all
  features of the cell; ``pooled = sum_i w_i h_i``;
* ``tanh(pooled) -> BatchNorm -> Dropout -> Dense + ReLU``.

The dense formulation needs a ``cells x features x d`` tensor. Here only the cell's non-zero
features are materialised ("nnz" tensors from the CSR batch) and the zero features enter in closed form:

* ``W h_i = x_i (E W^T)_i``, so with ``F = E W^T`` (computed once per batch, ``P x d``) the scores cost
  ``O(nnz d)`` instead of ``O(nnz d^2)``;
* without value batch norm a zero feature has ``h_i = 0``: its score is the constant
  ``s0 = tanh(b) . c`` and it adds nothing to the weighted sum, so it only adds
  ``(P - nnz_cell) exp(s0 - m)`` to the softmax denominator;
* with value batch norm a zero maps to the per-feature constant ``a_i = beta_i - mu_i gamma_i / sigma_i``,
  so the zero token ``a_i E_i`` is the same in every cell of the batch. Its score ``s0_i`` and weight
  ``z_i = exp(s0_i - M0)`` are computed for all features once per batch (``P x d``); the per-cell sums
  over zero features are "sum over all features minus sum over the cell's non-zeros", giving
  ``O(nnz d + P d)`` per batch.

The softmax shift ``m`` is the per-cell maximum over the non-zero scores and the largest zero-feature score
(an upper bound of the true maximum, so no term overflows). Weighted sums are CSR x dense matmuls
(:func:`csr_matmul`), and for integer-valued input each distinct (feature, value) pair of a batch is
scored once (``dedup``). :func:`_dense_teacher_forward` is the literal dense formulation, used by the
tests and the benchmark as the reference.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .._utils import AttuneInputError, renamed_kwargs
from ._data import CSRBatch
from ._distributed import SyncBatchNorm1d, all_reduce_sum, is_distributed

__all__ = [
    "SparseFeatureBatchNorm",
    "StudentEncoder",
    "TeacherEncoder",
    "context_scores",
    "context_scores_with_zeros",
    "csr_matmul",
]


# --------------------------------------------------------------------------------------------------
# fused context scores  s_k = c . tanh(v_k F[col_k] + b)
# --------------------------------------------------------------------------------------------------
class _ContextScore(torch.autograd.Function):
    """Scores of non-zero tokens, chunked over nnz so the ``nnz x d`` work stays in cache.

    Autograd of the unfused expression keeps three ``nnz x d`` temporaries and runs ~4x slower on CPU;
    this computes the same values and gradients (checked by ``gradcheck`` in the tests).
    """

    @staticmethod
    def forward(ctx, v, col, Fm, b, c, chunk: int):
        K = v.shape[0]
        s = torch.empty_like(v)
        for st in range(0, K, chunk):
            A = Fm.index_select(0, col[st : st + chunk])
            A.mul_(v[st : st + chunk, None]).add_(b).tanh_()
            torch.mv(A, c, out=s[st : st + chunk])
        ctx.save_for_backward(v, col, Fm, b, c)
        ctx.chunk = chunk
        return s

    @staticmethod
    @once_differentiable
    def backward(ctx, gs):
        v, col, Fm, b, c = ctx.saved_tensors
        chunk = ctx.chunk
        need_v, _, need_F, need_b, need_c, _ = ctx.needs_input_grad
        dv = torch.empty_like(v) if need_v else None
        dF = torch.zeros_like(Fm) if need_F else None
        db = torch.zeros_like(b)
        dc = torch.zeros_like(c)
        gs = gs.contiguous()
        for st in range(0, v.shape[0], chunk):
            sl = slice(st, st + chunk)
            colc, vc, gc = col[sl], v[sl], gs[sl]
            G = Fm.index_select(0, colc)
            T = torch.addcmul(b, G, vc[:, None]).tanh_()
            dc.addmv_(T.t(), gc)
            dA = T.square_().neg_().add_(1).mul_(c).mul_(gc[:, None])  # d s / d A, reuses T's buffer
            db.add_(dA.sum(0))
            if need_v:
                dv[sl] = torch.linalg.vecdot(dA, G)
            if need_F:
                dF.index_add_(0, colc, dA.mul_(vc[:, None]))
        return dv, None, dF, (db if need_b else None), (dc if need_c else None), None


def context_scores(v: torch.Tensor, col: torch.Tensor, Fm: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                   *, chunk: int = 4096) -> torch.Tensor:
    """``s_k = c . tanh(v_k Fm[col_k] + b)`` for flat token values ``v`` of features ``col``."""
    return _ContextScore.apply(v, col, Fm, b, c, int(chunk))


class _ContextScoreWithZeros(torch.autograd.Function):
    """:class:`_ContextScore` of the non-zero tokens plus the zero-token score of every feature,
    ``s0_i = c . tanh(a_i Fm_i + b)``, in one function.

    The all-feature part reads ``Fm`` row by row (no gather) and writes its gradient straight into the
    ``P x d`` gradient buffer that the non-zero tokens then scatter into, so a step allocates, fills and
    sums one ``P x d`` gradient instead of three (the same values as two :func:`context_scores` calls,
    up to float rounding of the sums).
    """

    @staticmethod
    def forward(ctx, v, col, a, Fm, b, c, chunk: int):
        s = torch.empty_like(v)
        for st in range(0, v.shape[0], chunk):
            A = Fm.index_select(0, col[st : st + chunk])
            A.mul_(v[st : st + chunk, None]).add_(b).tanh_()
            torch.mv(A, c, out=s[st : st + chunk])
        s0 = torch.empty_like(a)
        for st in range(0, a.shape[0], chunk):
            A = torch.addcmul(b, Fm[st : st + chunk], a[st : st + chunk, None]).tanh_()
            torch.mv(A, c, out=s0[st : st + chunk])
        ctx.save_for_backward(v, col, a, Fm, b, c)
        ctx.chunk = chunk
        return s, s0

    @staticmethod
    @once_differentiable
    def backward(ctx, gs, gs0):
        v, col, a, Fm, b, c = ctx.saved_tensors
        chunk = ctx.chunk
        need_v, _, need_a, need_F, need_b, need_c, _ = ctx.needs_input_grad
        dv = torch.empty_like(v) if need_v else None
        da = torch.empty_like(a) if need_a else None
        dF = torch.empty_like(Fm)
        db = torch.zeros_like(b)
        dc = torch.zeros_like(c)
        gs, gs0 = gs.contiguous(), gs0.contiguous()
        for st in range(0, a.shape[0], chunk):  # every feature: rows of Fm in order, dF written directly
            sl = slice(st, st + chunk)
            G, ac, gc = Fm[sl], a[sl], gs0[sl]
            T = torch.addcmul(b, G, ac[:, None]).tanh_()
            dc.addmv_(T.t(), gc)
            dA = T.square_().neg_().add_(1).mul_(c).mul_(gc[:, None])
            db.add_(dA.sum(0))
            if need_a:
                da[sl] = torch.linalg.vecdot(dA, G)
            torch.mul(dA, ac[:, None], out=dF[sl])
        for st in range(0, v.shape[0], chunk):  # the non-zero tokens scatter into the same buffer
            sl = slice(st, st + chunk)
            colc, vc, gc = col[sl], v[sl], gs[sl]
            G = Fm.index_select(0, colc)
            T = torch.addcmul(b, G, vc[:, None]).tanh_()
            dc.addmv_(T.t(), gc)
            dA = T.square_().neg_().add_(1).mul_(c).mul_(gc[:, None])
            db.add_(dA.sum(0))
            if need_v:
                dv[sl] = torch.linalg.vecdot(dA, G)
            dF.index_add_(0, colc, dA.mul_(vc[:, None]))
        return (dv, None, da, (dF if need_F else None), (db if need_b else None), (dc if need_c else None), None)


def context_scores_with_zeros(v: torch.Tensor, col: torch.Tensor, a: torch.Tensor, Fm: torch.Tensor,
                              b: torch.Tensor, c: torch.Tensor, *,
                              chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """``(context_scores(v, col, ...), s0)`` with ``s0_i = c . tanh(a_i Fm_i + b)`` for every feature ``i``.

    Parameters
    ----------
    v, col
        Token values and their features (flat, one entry per scored token).
    a
        The value of a zero of each feature (``P``), e.g. the value batch norm's shift.
    Fm
        ``E W^T`` (``P x d``).
    b, c
        Attention bias and context vector (``d``).
    chunk
        Rows per chunk (the ``chunk x d`` work stays in cache).

    Returns
    -------
    tuple of torch.Tensor
        Scores of the tokens (``len(v)``) and of the zero token of every feature (``P``).
    """
    return _ContextScoreWithZeros.apply(v, col, a, Fm, b, c, int(chunk))


class _CSRMatmul(torch.autograd.Function):
    """``S @ D`` for a CSR ``S`` (pattern of ``batch``, differentiable ``values``) and dense ``D``.

    Backward uses the batch's cached transposed pattern for ``dD = S^T g`` and ``(g D^T)`` read at the
    non-zeros for ``d values``. Measured for 128 cells x 30,000 peaks (6 % non-zero), d = 128, one thread:
    25 ms vs 66 ms for torch's own CSR autograd, vs 350 ms for an ``index_add`` over an ``nnz x d`` gather.
    """

    @staticmethod
    def forward(ctx, values, dense, batch):
        ctx.batch = batch
        ctx.save_for_backward(values, dense)
        return batch.to_torch_csr(values) @ dense

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        values, dense = ctx.saved_tensors
        batch = ctx.batch
        g = g.contiguous()
        d_values = d_dense = None
        if ctx.needs_input_grad[0]:  # (g D^T) at the non-zeros only: a sampled matmul, no n_rows x n_cols block
            d_values = _sampled_rows_dot(batch, g, dense)
        if ctx.needs_input_grad[1]:
            crow_t, col_t, perm = batch.transpose_pattern()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                st = torch.sparse_csr_tensor(crow_t, col_t, values[perm], (batch.n_cols, batch.n_rows),
                                             check_invariants=False)
            d_dense = st @ g
        return d_values, d_dense, None


def _sampled_rows_dot(batch: CSRBatch, g: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``(g @ dense.T)[row_k, col_k]`` for every stored entry ``k`` of ``batch`` (CSR order).

    :func:`torch.sparse.sampled_addmm` computes only the stored entries; the dense ``g @ dense.T`` it
    replaces was ``n_rows x n_cols`` (512 cells x 30,000 peaks: 61 MB and 2 GFLOP per step; measured
    57 ms vs 111 ms at 512 cells, 29 vs 23 ms at 128, 2 threads). Falls back to the dense product where
    the sampled kernel is missing.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            pattern = torch.sparse_csr_tensor(batch.crow, batch.col, torch.zeros_like(batch.val), batch.shape,
                                              check_invariants=False)
            return torch.sparse.sampled_addmm(pattern, g, dense.t(), beta=0.0).values()
    except (RuntimeError, NotImplementedError):  # pragma: no cover - device/dtype without the kernel
        return torch.take(g @ dense.t(), batch.row_ids() * batch.n_cols + batch.col)


def csr_matmul(batch: CSRBatch, values: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``S @ dense`` where ``S`` has ``batch``'s sparsity pattern and ``values`` (differentiable in both).

    A CSR matmul (MKL on CPU, cuSPARSE on CUDA) avoids the ``nnz x d`` gather of an ``index_add``
    formulation (see :class:`_CSRMatmul` for the measured timings).
    """
    return _CSRMatmul.apply(values, dense, batch)


def _xavier_(t: torch.Tensor) -> torch.Tensor:
    # Keras' glorot_uniform, the original's default initialiser
    return nn.init.xavier_uniform_(t)


# --------------------------------------------------------------------------------------------------
# per-feature batch norm from sparse batches
# --------------------------------------------------------------------------------------------------
class SparseFeatureBatchNorm(nn.Module):
    """Per-feature batch norm of a ``cells x features`` value matrix given as a :class:`CSRBatch`.

    Same statistics, parameters and running-stat updates as :class:`torch.nn.BatchNorm1d` applied to
    the dense matrix (implicit zeros included), but returns the affine map instead of the normalised
    matrix: ``BN(x)_j = x_j * scale_j + shift_j``. A zero therefore maps to ``shift_j``.
    Statistics use the two-pass form ``sum (x - mu)^2`` over non-zeros plus ``(B - nnz_j) mu_j^2``.

    Parameters
    ----------
    n_features
        Number of features (columns).
    eps
        Added to the variance, as in :class:`torch.nn.BatchNorm1d`.
    momentum
        Running-statistics momentum, as in :class:`torch.nn.BatchNorm1d`.
    """

    def __init__(self, n_features: int, *, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.n_features = int(n_features)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.weight = nn.Parameter(torch.ones(n_features))
        self.bias = nn.Parameter(torch.zeros(n_features))
        self.register_buffer("running_mean", torch.zeros(n_features))
        self.register_buffer("running_var", torch.ones(n_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def extra_repr(self) -> str:
        return f"{self.n_features}, eps={self.eps}, momentum={self.momentum}"

    def batch_stats(self, batch: CSRBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and biased variance of each feature over the batch's cells, zeros included."""
        B, P = batch.n_rows, self.n_features
        col, val = batch.col, batch.val
        B_local = B
        sync = self.training and is_distributed()  # global statistics over every rank's cells (data: no gradient)
        total = torch.zeros(P, dtype=val.dtype, device=val.device).index_add_(0, col, val)
        if sync:
            B = int(all_reduce_sum(torch.tensor([float(B)], device=val.device), grad=False))
            total = all_reduce_sum(total, grad=False)
        mean = total.div_(B)
        dev = val - mean[col]
        n_nz = torch.bincount(col, minlength=P).to(val.dtype)
        sq = torch.zeros_like(mean).index_add_(0, col, dev * dev) + (B_local - n_nz) * mean * mean
        if sync:
            sq = all_reduce_sum(sq, grad=False)
        return mean, sq / B

    def forward(self, batch: CSRBatch) -> tuple[torch.Tensor, torch.Tensor]:
        if batch.n_cols != self.n_features:
            raise AttuneInputError(f"batch has {batch.n_cols} features, the layer expects {self.n_features}")
        if self.training:
            B = batch.n_rows
            if is_distributed():
                B = int(all_reduce_sum(torch.tensor([float(B)], device=batch.val.device), grad=False))
            if B < 2:
                raise AttuneInputError("batch norm needs more than 1 cell per training batch (batch_size >= 2)")
            mean, var = self.batch_stats(batch)
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                self.running_mean.mul_(1 - self.momentum).add_(mean, alpha=self.momentum)
                self.running_var.mul_(1 - self.momentum).add_(var * (B / (B - 1)), alpha=self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.weight * torch.rsqrt(var + self.eps)
        shift = self.bias - mean * scale
        return scale, shift

    def dense(self, X: torch.Tensor) -> torch.Tensor:
        """Dense reference: :func:`torch.nn.functional.batch_norm` with this layer's state."""
        return F.batch_norm(X, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training, self.momentum, self.eps)


# --------------------------------------------------------------------------------------------------
# teacher
# --------------------------------------------------------------------------------------------------
class TeacherEncoder(nn.Module):
    """Attune teacher: feature embedding x value, context attention over all features, dense head.

    Parameters
    ----------
    n_features
        Genes or peaks.
    n_hidden
        Feature-embedding (token) dimension ``d``.
    n_latent
        Output dimension.
    dropout_rate
        Dropout after the pooled batch norm (old name ``dropout``).
    value_batchnorm
        Pass the values through one per-feature batch norm before multiplying the embeddings (the original).
    chunk_size
        Non-zeros per chunk in the fused score kernel.
    dedup
        Score each distinct (feature, value) pair of a batch once (exact; pays off for integer
        values such as ATAC counts). ``"auto"``: when the values are integers and >= 30 % of the
        non-zeros are repeats.
    """

    @renamed_kwargs(dropout="dropout_rate")
    def __init__(self, n_features: int, *, n_hidden: int = 128, n_latent: int = 128, dropout_rate: float = 0.1,
                 value_batchnorm: bool = True, chunk_size: int = 4096, dedup: bool | str = "auto"):
        super().__init__()
        if dedup not in (True, False, "auto"):
            raise AttuneInputError(f"dedup must be True, False or 'auto', got {dedup!r}")
        self.dedup = dedup
        self.n_features = int(n_features)
        self.n_hidden = int(n_hidden)
        self.chunk_size = int(chunk_size)
        self.embedding = nn.Parameter(torch.empty(n_features, n_hidden).uniform_(-0.05, 0.05))  # Keras default
        self.value_bn = SparseFeatureBatchNorm(n_features) if value_batchnorm else None
        self.attn_proj = nn.Linear(n_hidden, n_hidden)  # W, b of u = tanh(W h + b)
        _xavier_(self.attn_proj.weight)
        nn.init.zeros_(self.attn_proj.bias)
        bound = math.sqrt(6.0 / (n_hidden + 1))
        self.context = nn.Parameter(torch.empty(n_hidden).uniform_(-bound, bound))
        self.pool_bn = SyncBatchNorm1d(n_hidden)
        self.dropout = nn.Dropout(dropout_rate)
        self.out = nn.Linear(n_hidden, n_latent)
        _xavier_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def value_batchnorm(self) -> bool:
        return self.value_bn is not None

    def token_values(self, batch: CSRBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token values at the non-zeros and, with value batch norm, the value every zero maps to (P,)."""
        if self.value_bn is None:
            return batch.val, None
        scale, shift = self.value_bn(batch)
        return torch.addcmul(shift[batch.col], batch.val, scale[batch.col]), shift

    def _dedup_groups(self, batch: CSRBatch) -> tuple[torch.Tensor, torch.Tensor] | None:
        """For integer-valued input (counts, binary), the distinct (feature, value) pairs of the batch.

        A token depends only on its feature and value (the value batch norm is per feature), so
        its score is computed once per distinct pair and gathered: for binary ATAC a 128-cell batch
        at 5 % density has ~6x fewer distinct pairs than non-zeros. Returns ``(first, inverse)``:
        the position of each pair's first occurrence and the pair of every non-zero; None when
        deduplication does not pay (continuous values, or fewer than 30 % duplicates).
        """
        if self.dedup is False or batch.nnz == 0:
            return None
        val, col = batch.val.detach(), batch.col
        vmin, vmax = float(val.min()), float(val.max())
        integral = vmin >= 0 and vmax < 2**20 and bool((val == torch.round(val)).all())
        if integral:
            n_vals = int(vmax) + 1
            key = col * n_vals + val.round().long()
            if self.n_features * n_vals <= 8 * batch.nnz + 1_000_000:  # counting instead of sorting
                present = torch.bincount(key, minlength=self.n_features * n_vals) > 0
                ids = torch.cumsum(present, 0) - 1
                inv = ids[key]
                n_unique = int(ids[-1]) + 1
            else:
                ukey, inv = torch.unique(key, return_inverse=True)
                n_unique = int(ukey.numel())
        elif self.dedup == "auto":
            return None
        else:
            ukey, inv = torch.unique(torch.stack([col.to(val.dtype), val]), dim=1, return_inverse=True)
            n_unique = int(ukey.shape[1])
        if self.dedup == "auto" and n_unique > 0.7 * batch.nnz:
            return None
        first = torch.full((n_unique,), batch.nnz, dtype=torch.long, device=col.device).scatter_reduce(
            0, inv, torch.arange(batch.nnz, device=col.device), reduce="amin", include_self=True)
        return first, inv

    def _token_scores(self, batch: CSRBatch, v, Fm, b, c, a=None):
        """Scores of the batch's tokens; with ``a`` (the zero value of each feature) also ``s0`` (``P``)."""
        groups = self._dedup_groups(batch) if self.dedup is not False else None
        vs, cs = (v, batch.col) if groups is None else (v[groups[0]], batch.col[groups[0]])
        if a is None:
            s = context_scores(vs, cs, Fm, b, c, chunk=self.chunk_size)
            s0 = None
        else:
            s, s0 = context_scores_with_zeros(vs, cs, a, Fm, b, c, chunk=self.chunk_size)
        if groups is not None:
            s = s[groups[1]]
        return s if a is None else (s, s0)

    def pool(self, batch: CSRBatch, *, return_attention: bool = False):
        """Attention-pooled token sum (``n_cells x d``), exactly the dense softmax over all features.

        With ``return_attention`` also returns a dict: ``nnz`` (weights of the non-zero features, flat,
        CSR order of ``batch``), ``zero_scale`` (per cell) and ``zero_profile`` (per feature, or None):
        the weight of zero feature ``j`` in cell ``r`` is ``zero_scale[r] * zero_profile[j]``
        (``zero_profile`` None means 1 for every feature).
        """
        if batch.n_cols != self.n_features:
            raise AttuneInputError(f"batch has {batch.n_cols} features, the teacher expects {self.n_features}")
        v, a = self.token_values(batch)
        E = self.embedding
        W, b = self.attn_proj.weight, self.attn_proj.bias
        c = self.context
        Fm = E @ W.t()  # W h_i = v_i * Fm_i
        col, rows, B = batch.col, batch.row_ids(), batch.n_rows
        dtype, dev = v.dtype, v.device
        if a is None:
            s = self._token_scores(batch, v, Fm, b, c)
            s0 = torch.tanh(b) @ c  # score of every zero token (h = 0)
            m = torch.full((B,), float(s0.detach()), dtype=dtype, device=dev).scatter_reduce(
                0, rows, s.detach(), reduce="amax", include_self=True)
            e = torch.exp(s - m[rows])
            e0 = torch.exp(s0 - m)  # (B,)
            n_zero = (self.n_features - batch.row_counts()).to(dtype)
            denom = torch.zeros(B, dtype=dtype, device=dev).index_add(0, rows, e) + n_zero * e0
            num = csr_matmul(batch, e * v, E)  # zero tokens add nothing
            zero_scale, zero_profile = e0 / denom, None
        else:
            s, s0 = self._token_scores(batch, v, Fm, b, c, a)  # s0: (P,) zero-token scores
            M0 = s0.detach().max()
            z = torch.exp(s0 - M0)  # (P,)
            m = torch.full((B,), float(M0), dtype=dtype, device=dev).scatter_reduce(
                0, rows, s.detach(), reduce="amax", include_self=True)
            e = torch.exp(s - m[rows])
            g = torch.exp(M0 - m)  # (B,) rescales the zero-feature sums to the cell's shift
            zc = z[col]
            z_rest = (z.sum() - torch.zeros(B, dtype=dtype, device=dev).index_add(0, rows, zc)).clamp_min(0)
            denom = torch.zeros(B, dtype=dtype, device=dev).index_add(0, rows, e) + g * z_rest
            # sum over the cell's zero features of z_j a_j E_j = (all features) - (the cell's non-zeros)
            coef = e * v - g[rows] * zc * a[col]
            num = csr_matmul(batch, coef, E) + g[:, None] * ((z * a) @ E)[None, :]
            zero_scale, zero_profile = g / denom, z
        pooled = num / denom[:, None]
        if not return_attention:
            return pooled
        return pooled, {"nnz": e / denom[rows], "zero_scale": zero_scale, "zero_profile": zero_profile}

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.relu(self.out(self.dropout(self.pool_bn(torch.tanh(pooled)))))

    def forward(self, batch: CSRBatch) -> torch.Tensor:
        return self.head(self.pool(batch))

    def tokens(self, batch: CSRBatch) -> dict[str, torch.Tensor | None]:
        """Per-feature weighted embeddings of the batch's non-zero features.

        Returns a dict with ``crow``, ``col`` (CSR pattern of ``batch``), ``tokens`` (``nnz x d``:
        ``value_i * E_i``, the value after the value batch norm when it is used), ``attention``
        (``nnz``) and ``zero_tokens`` (``P x d``, the token every zero-valued feature has, ``a_i E_i``;
        None without value batch norm, where zero tokens are 0).
        """
        v, a = self.token_values(batch)
        _, att = self.pool(batch, return_attention=True)
        toks = v[:, None] * self.embedding[batch.col]
        zero = None if a is None else a[:, None] * self.embedding
        return {"crow": batch.crow, "col": batch.col, "tokens": toks, "attention": att["nnz"],
                "zero_tokens": zero}


# --------------------------------------------------------------------------------------------------
# student
# --------------------------------------------------------------------------------------------------
class SparseLinear(nn.Module):
    """Dense layer stored input-major (``weight``: ``n_in x n_out``) so that the CSR matmul and its
    gradient use a contiguous matrix (an ``nn.Linear`` weight, transposed, made the gradient
    accumulation strided and ~4x slower at 30,000 x 128). Glorot-uniform weight, zero bias."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.in_features, self.out_features = int(n_in), int(n_out)
        self.weight = nn.Parameter(_xavier_(torch.empty(n_out, n_in)).t().contiguous())
        self.bias = nn.Parameter(torch.zeros(n_out))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"

    def forward(self, x: torch.Tensor | CSRBatch) -> torch.Tensor:
        if isinstance(x, CSRBatch):
            return csr_matmul(x, x.val, self.weight) + self.bias
        return torch.addmm(self.bias, x, self.weight)


class StudentEncoder(nn.Module):
    """Attune student: BN(values) -> Dense + ReLU -> BN -> Dropout -> Dense + ReLU.

    The value batch norm is folded into the first dense layer
    (``W (x * scale + shift) = (W diag(scale)) x + W shift``), so the input stays sparse and the first
    layer is a CSR x dense matmul. Measured at 128 cells x 30,000 peaks (5 % non-zero), 2 threads:
    CSR 20 ms vs dense 18 ms forward+backward; the sparse form is kept because its cost scales with
    the non-zeros (a 1,024-cell inference batch would otherwise need a 123 MB dense block, and denser
    peak sets grow linearly) and it shares the CSR batch with the teacher.

    Parameters
    ----------
    n_features
        Number of input features.
    n_hidden
        Width of the hidden dense layer.
    n_latent
        Output (embedding) dimension.
    dropout_rate
        Dropout rate after the hidden layer (old name ``dropout``).
    value_batchnorm
        Batch-normalise the input values per feature first (folded into the first layer).
    """

    @renamed_kwargs(dropout="dropout_rate")
    def __init__(self, n_features: int, *, n_hidden: int = 128, n_latent: int = 128, dropout_rate: float = 0.1,
                 value_batchnorm: bool = True):
        super().__init__()
        self.n_features = int(n_features)
        self.value_bn = SparseFeatureBatchNorm(n_features) if value_batchnorm else None
        self.fc1 = SparseLinear(n_features, n_hidden)
        self.bn = SyncBatchNorm1d(n_hidden)
        self.dropout = nn.Dropout(dropout_rate)
        self.fc2 = nn.Linear(n_hidden, n_latent)
        _xavier_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, batch: CSRBatch) -> torch.Tensor:
        if batch.n_cols != self.n_features:
            raise AttuneInputError(f"batch has {batch.n_cols} features, the student expects {self.n_features}")
        W = self.fc1.weight  # (n_features, n_hidden)
        if self.value_bn is not None:
            scale, shift = self.value_bn(batch)
            h = csr_matmul(batch, batch.val, scale[:, None] * W) + (self.fc1.bias + shift @ W)
        else:
            h = csr_matmul(batch, batch.val, W) + self.fc1.bias
        h = self.dropout(self.bn(F.relu(h)))
        return F.relu(self.fc2(h))


# --------------------------------------------------------------------------------------------------
# dense references (tests, benchmark)
# --------------------------------------------------------------------------------------------------
def _dense_teacher_pool(teacher: TeacherEncoder, X: torch.Tensor, *, return_weights: bool = False):
    """Literal dense formulation: every feature is a token; builds ``cells x features x d``."""
    Xv = teacher.value_bn.dense(X) if teacher.value_bn is not None else X
    H = Xv[:, :, None] * teacher.embedding[None, :, :]
    U = torch.tanh(teacher.attn_proj(H))
    w = torch.softmax(U @ teacher.context, dim=1)
    pooled = (w[:, :, None] * H).sum(1)
    return (pooled, w) if return_weights else pooled


def _dense_teacher_forward(teacher: TeacherEncoder, X: torch.Tensor) -> torch.Tensor:
    return teacher.head(_dense_teacher_pool(teacher, X))


def _dense_student_forward(student: StudentEncoder, X: torch.Tensor) -> torch.Tensor:
    Xv = student.value_bn.dense(X) if student.value_bn is not None else X
    h = student.dropout(student.bn(F.relu(student.fc1(Xv))))
    return F.relu(student.fc2(h))
