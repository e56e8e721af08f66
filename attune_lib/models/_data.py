"""Sparse CSR mini-batching: scipy CSR rows -> flat torch tensors, never densified.

A mini-batch of a modality is a :class:`CSRBatch` holding the three CSR arrays of the selected rows
(``crow`` row pointers, ``col`` feature indices, ``val`` values) as torch tensors. Layers in
:mod:`attune_lib.models._attune_nn` consume these flat "nnz" tensors directly (segment softmax,
sparse matmul), so the cost of a batch scales with its number of non-zeros, not cells x features.

:func:`iter_index_batches` yields the row indices of each mini-batch from an explicit
:class:`numpy.random.Generator`, so the training loop can checkpoint and restore the shuffling state.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .._utils import AttuneInputError, as_csr

__all__ = ["CSRBatch", "PairedCSRSource", "csr_batch", "iter_index_batches", "move_to_device"]


@dataclass
class CSRBatch:
    """Rows of a sparse matrix as flat torch tensors.

    Parameters
    ----------
    crow
        Row pointers (int64, ``n_rows + 1``).
    col
        Column of each stored value (int64).
    val
        Stored values (float32).
    n_cols
        Number of features (columns).

    Attributes
    ----------
    crow
        Row pointers, int64, shape ``(n_rows + 1,)``.
    col
        Feature (column) index of each stored value, int64, shape ``(nnz,)``.
    val
        Stored values, float32, shape ``(nnz,)``.
    n_cols
        Number of features (columns).
    """

    crow: torch.Tensor
    col: torch.Tensor
    val: torch.Tensor
    n_cols: int
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_rows(self) -> int:
        return int(self.crow.numel() - 1)

    @property
    def nnz(self) -> int:
        return int(self.val.numel())

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_rows, self.n_cols)

    @property
    def device(self) -> torch.device:
        return self.val.device

    def row_counts(self) -> torch.Tensor:
        """Number of stored values in each row (int64)."""
        return self.crow[1:] - self.crow[:-1]

    def row_ids(self) -> torch.Tensor:
        """Row index of each stored value (int64, shape ``(nnz,)``; cached)."""
        if "rows" not in self._cache:
            self._cache["rows"] = torch.repeat_interleave(
                torch.arange(self.n_rows, device=self.crow.device), self.row_counts(), output_size=self.nnz
            )
        return self._cache["rows"]

    def transpose_pattern(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """CSR pattern of the transpose (features x cells): ``(crow_t, col_t, perm)`` with
        ``values_t = values[perm]`` (cached; used for the gradient of sparse matmuls)."""
        if "transpose" not in self._cache:
            perm = torch.sort(self.col, stable=True).indices
            counts = torch.bincount(self.col, minlength=self.n_cols)
            crow_t = torch.zeros(self.n_cols + 1, dtype=torch.long, device=self.col.device)
            torch.cumsum(counts, 0, out=crow_t[1:])
            self._cache["transpose"] = (crow_t, self.row_ids()[perm], perm)
        return self._cache["transpose"]

    def to(self, device: torch.device | str) -> CSRBatch:
        device = torch.device(device)
        if self.val.device == device:
            return self
        return CSRBatch(
            self.crow.to(device, non_blocking=True),
            self.col.to(device, non_blocking=True),
            self.val.to(device, non_blocking=True),
            self.n_cols,
        )

    def to_torch_csr(self, values: torch.Tensor | None = None) -> torch.Tensor:
        """A ``torch.sparse_csr`` tensor, optionally with other values on the same pattern."""
        with warnings.catch_warnings():  # "sparse CSR support is in beta": used only for matmul here
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(
                self.crow, self.col, self.val if values is None else values, self.shape, check_invariants=False
            )

    def to_dense(self) -> torch.Tensor:
        """Dense ``(n_rows, n_cols)`` tensor (for tests and small references only)."""
        out = torch.zeros(self.shape, dtype=self.val.dtype, device=self.val.device)
        out[self.row_ids(), self.col] = self.val
        return out

    def to_scipy(self) -> sp.csr_matrix:
        return sp.csr_matrix(
            (self.val.detach().cpu().numpy(), self.col.cpu().numpy(), self.crow.cpu().numpy()), shape=self.shape
        )


def csr_batch(X: sp.csr_matrix, rows: np.ndarray | slice | None = None, *, patterns: bool = False) -> CSRBatch:
    """Select ``rows`` of a CSR matrix as a :class:`CSRBatch` (all rows when ``rows`` is None).

    Parameters
    ----------
    X
        CSR matrix (cells x features).
    rows
        Row positions or a slice (None: all rows).
    patterns
        Also fill the batch's cache with the row of every stored value and the transposed pattern
        (:meth:`CSRBatch.row_ids`, :meth:`CSRBatch.transpose_pattern`), computed with scipy's counting
        sort (identical to the stable sort the batch would run). Training data sources set it, so the work
        happens in the loader thread, overlapped with the previous step.
    """
    sub = X if rows is None else X[rows]
    if not sp.isspmatrix_csr(sub):  # pragma: no cover - scipy returns CSR for CSR row indexing
        sub = sub.tocsr()
    if not sub.has_canonical_format:
        sub = sub.copy()
        sub.sum_duplicates()
    batch = CSRBatch(
        torch.from_numpy(sub.indptr.astype(np.int64, copy=False)),
        torch.from_numpy(sub.indices.astype(np.int64, copy=False)),
        torch.from_numpy(np.ascontiguousarray(sub.data, dtype=np.float32)),
        int(sub.shape[1]),
    )
    if patterns:
        n_rows, nnz = sub.shape[0], sub.nnz
        rows_of = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(sub.indptr))
        # CSR -> CSC keeps the rows of each column in increasing order: the stable sort of the columns
        t = sp.csr_matrix((np.arange(nnz, dtype=np.int64), sub.indices, sub.indptr), shape=sub.shape).tocsc()
        batch._cache["rows"] = torch.from_numpy(rows_of)
        batch._cache["transpose"] = (torch.from_numpy(t.indptr.astype(np.int64, copy=False)),
                                     torch.from_numpy(t.indices.astype(np.int64, copy=False)),
                                     torch.from_numpy(t.data.astype(np.int64, copy=False)))
    return batch


def iter_index_batches(
    indices: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    rng: np.random.Generator | None = None,
    min_batch_size: int = 1,
) -> Iterator[np.ndarray]:
    """Yield mini-batches of ``indices``.

    Parameters
    ----------
    indices
        Row indices to batch.
    batch_size
        Cells per batch.
    shuffle
        Permute ``indices`` with ``rng`` first (one draw per call, so the generator state after an
        epoch is fully determined by its state before it).
    rng
        Generator used when ``shuffle``.
    min_batch_size
        The final batch is dropped when it has fewer cells than this (2 for training with batch norm,
        which cannot normalise a single cell).
    """
    if batch_size < 1:
        raise AttuneInputError(f"batch_size must be >= 1, got {batch_size}")
    indices = np.asarray(indices)
    if shuffle:
        if rng is None:
            raise AttuneInputError("shuffle=True needs an explicit rng")
        indices = indices[rng.permutation(indices.size)]
    for start in range(0, indices.size, batch_size):
        idx = indices[start : start + batch_size]
        if idx.size < min_batch_size:
            break
        yield idx


def n_batches(n: int, batch_size: int, min_batch_size: int = 1) -> int:
    """Number of batches :func:`iter_index_batches` yields for ``n`` indices."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest and rest >= min_batch_size else 0)


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move a batch (tensor, :class:`CSRBatch`, or nested dict/list/tuple of them) to ``device``."""
    if isinstance(batch, (torch.Tensor, CSRBatch)):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


class PairedCSRSource:
    """Batch source over several CSR matrices sharing their rows (cells).

    ``get_batch(idx)`` returns ``{name: CSRBatch}``; this is the data protocol used by
    :class:`attune_lib.models._training.Trainer` (``n_obs`` plus ``get_batch``).

    Parameters
    ----------
    matrices
        ``{name: matrix}`` with the same rows (cells); converted to canonical CSR (copies, never edited in
        place).
    """

    def __init__(self, matrices: Mapping[str, Any]):
        mats = {k: as_csr(v) for k, v in matrices.items()}
        n = {k: m.shape[0] for k, m in mats.items()}
        if len(set(n.values())) != 1:
            raise AttuneInputError(f"matrices must have the same number of rows (cells), got {n}")
        for k, m in mats.items():
            if not m.has_canonical_format:  # sorted indices, no duplicates (on a copy: never edit user data)
                m = m.copy()
                m.sum_duplicates()
                mats[k] = m
        self.matrices = mats
        self.n_obs = next(iter(n.values()))

    def get_batch(self, idx: np.ndarray) -> dict[str, CSRBatch]:
        return {k: csr_batch(m, idx, patterns=True) for k, m in self.matrices.items()}
