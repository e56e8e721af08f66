"""Training and embedding from on-disk ``.h5ad`` files without loading ``X``.

:class:`OnDiskPairedSource` reads mini-batches straight from the CSR groups (``X/data``,
``X/indices``, ``X/indptr``) of an RNA and an ATAC ``.h5ad`` (the AnnData on-disk format; e.g. written
by :func:`attune_lib.datasets._ondisk.write_multiome_h5ad` or ``AnnData.write_h5ad``). Only the row
pointers (8 bytes per cell) stay in memory; a batch's rows are read as h5py slices (runs of
consecutive rows are read together). It is a data source of :class:`~._training.Trainer` (``n_obs``,
``get_batch``), and :func:`prefetch_batches` reads the next batches in a background thread while the
current one trains (h5py and torch release the GIL in their I/O and kernels).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._utils import AttuneInputError
from ._data import csr_batch

__all__ = ["H5CSRMatrix", "OnDiskPairedSource", "prefetch_batches"]


class H5CSRMatrix:
    """Row access to the CSR matrix ``X`` (or ``layers/<layer>``) of an ``.h5ad`` file, read on demand.

    Parameters
    ----------
    path
        The ``.h5ad`` file.
    layer
        A layer instead of ``X``.
    """

    def __init__(self, path: str | os.PathLike, layer: str | None = None):
        self.path = Path(path)
        key = "X" if layer is None else f"layers/{layer}"
        self.key = key
        if not self.path.exists():
            raise AttuneInputError(f"{self.path} does not exist")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise AttuneInputError(f"{self.path} is not a readable HDF5 (.h5ad) file: {err}") from err
        if key not in self._file:
            raise AttuneInputError(f"{self.path} has no {key!r}")
        g = self._file[key]
        enc = g.attrs.get("encoding-type", "") if isinstance(g, h5py.Group) else "array"
        if enc != "csr_matrix":
            raise AttuneInputError(f"{self.path}:{key} is stored as {enc!r}; streaming needs a CSR matrix "
                                   "(write it with AnnData.write_h5ad from a scipy CSR matrix)")
        self.shape = tuple(int(v) for v in g.attrs["shape"])
        self.indptr = g["indptr"][:].astype(np.int64)  # 8 bytes per cell: the only part kept in memory
        self._data, self._indices = g["data"], g["indices"]
        self._lock = threading.Lock()  # one h5py handle shared by the loader thread and the caller

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def rows(self, idx: np.ndarray) -> sp.csr_matrix:
        """The rows ``idx`` (any order) as a canonical scipy CSR matrix, in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        order = np.argsort(idx, kind="stable")
        srt = idx[order]
        if srt.size and (srt[0] < 0 or srt[-1] >= self.shape[0]):
            raise AttuneInputError(f"row indices must lie in [0, {self.shape[0]}) for {self.path}")
        starts, ends = self.indptr[srt], self.indptr[srt + 1]
        # runs of consecutive rows are one slice
        brk = np.flatnonzero(np.diff(srt) != 1) + 1
        run_first = np.concatenate([[0], brk])
        run_last = np.concatenate([brk, [srt.size]]) - 1
        data, ind = [], []
        with self._lock:
            for a, b in zip(run_first, run_last, strict=True):
                s, e = int(starts[a]), int(ends[b])
                data.append(self._data[s:e])
                ind.append(self._indices[s:e])
        counts = ends - starts
        indptr = np.zeros(srt.size + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        m = sp.csr_matrix((np.concatenate(data).astype(np.float32, copy=False) if data else np.zeros(0, np.float32),
                           np.concatenate(ind) if ind else np.zeros(0, np.int32), indptr),
                          shape=(srt.size, self.shape[1]))
        if not np.array_equal(order, np.arange(idx.size)):
            m = m[np.argsort(order, kind="stable")]
        if not m.has_canonical_format:
            m.sum_duplicates()
        return m

    def iter_chunks(self, chunk_size: int = 10000) -> Iterator[tuple[int, sp.csr_matrix]]:
        """``(first_row, rows)`` over the whole matrix in chunks of ``chunk_size`` rows."""
        for s in range(0, self.shape[0], chunk_size):
            yield s, self.rows(np.arange(s, min(s + chunk_size, self.shape[0])))

    def close(self) -> None:
        self._file.close()


class OnDiskPairedSource:
    """Paired RNA + ATAC mini-batches read from two ``.h5ad`` files (same cells in the same order).

    A :class:`~._training.Trainer` data source (``n_obs``, ``get_batch``) for
    :meth:`attune_lib.models.Attune.train` (``data=``) and
    :meth:`~attune_lib.models.Attune.get_latent_representation` (``mdata=``).

    Parameters
    ----------
    rna_path, atac_path
        ``.h5ad`` files with the RNA (log-normalised) and ATAC values in ``X`` (or ``*_layer``), CSR.
    rna_layer, atac_layer
        Read these layers instead of ``X``.
    check_values
        Scan every value once, chunk by chunk, for NaN/inf/negative values (constant memory).
    """

    def __init__(self, rna_path: str | os.PathLike, atac_path: str | os.PathLike, *, rna_layer: str | None = None,
                 atac_layer: str | None = None, check_values: bool = True):
        self.matrices = {"rna": H5CSRMatrix(rna_path, rna_layer), "atac": H5CSRMatrix(atac_path, atac_layer)}
        n = {m: x.shape[0] for m, x in self.matrices.items()}
        if n["rna"] != n["atac"]:
            raise AttuneInputError(f"{rna_path} has {n['rna']} cells but {atac_path} has {n['atac']}; "
                                   "the files must hold the same cells in the same order")
        self.n_obs = n["rna"]
        self.var_names = {m: self._names(x, "var") for m, x in self.matrices.items()}
        obs = {m: self._names(x, "obs") for m, x in self.matrices.items()}
        if not obs["rna"].equals(obs["atac"]):
            raise AttuneInputError(f"obs_names of {rna_path} and {atac_path} differ; pair the cells first")
        self.obs_names = obs["rna"]
        if check_values:
            for x in self.matrices.values():
                for s, chunk in x.iter_chunks():
                    d = chunk.data
                    if d.size and not (np.isfinite(d).all() and d.min() >= 0):
                        raise AttuneInputError(f"{x.path}:{x.key} rows {s}..{s + chunk.shape[0] - 1} hold NaN, "
                                               "inf or negative values; Attune needs finite, non-negative input")

    @staticmethod
    def _names(x: H5CSRMatrix, where: str) -> pd.Index:
        g = x._file[where]
        key = g.attrs.get("_index", "_index")
        vals = g[key][:]
        return pd.Index(vals.astype(str) if vals.dtype.kind != "O" else [v.decode() if isinstance(v, bytes)
                                                                           else str(v) for v in vals])

    def obs(self, column: str) -> np.ndarray:
        """An ``obs`` column of the RNA file (e.g. ``cell_type``), decoded (categoricals included)."""
        try:
            from anndata.io import read_elem
        except ImportError:  # anndata < 0.11
            from anndata.experimental import read_elem
        g = self.matrices["rna"]._file["obs"]
        if column not in g:
            raise AttuneInputError(f"{self.matrices['rna'].path} obs has no column {column!r}")
        return np.asarray(read_elem(g[column]))

    def get_batch(self, idx: np.ndarray) -> dict:
        return {m: csr_batch(x.rows(idx), patterns=True) for m, x in self.matrices.items()}

    def digest(self) -> str:
        """Cheap fingerprint of the data (shapes, row pointers, a sample of values) for checkpoint resume."""
        h = hashlib.blake2b(digest_size=12)
        for m, x in self.matrices.items():
            h.update(f"{m}{x.shape}".encode())
            h.update(x.indptr.view(np.uint8))
            sample = x.rows(np.unique(np.linspace(0, x.shape[0] - 1, 64).astype(np.int64)))
            h.update(sample.data.view(np.uint8))
            h.update(sample.indices.astype(np.int64).view(np.uint8))
        return h.hexdigest()

    def template_mudata(self):
        """A MuData with this source's cells, features and ``obs``, and an all-zero (empty CSR) ``X``:
        what :class:`~attune_lib.models.Attune` is constructed from (it needs the feature names), at
        16 bytes per cell."""
        import anndata as ad
        import mudata as md

        mods = {}
        for m, x in self.matrices.items():
            X = sp.csr_matrix((np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(x.shape[0] + 1, np.int64)),
                              shape=x.shape)
            a = ad.AnnData(X, obs=pd.DataFrame(index=self.obs_names.copy()),
                           var=pd.DataFrame(index=self.var_names[m].copy()))
            mods[m] = a
        return md.MuData(mods)

    def close(self) -> None:
        for x in self.matrices.values():
            x.close()


def prefetch_batches(get_batch: Callable[[np.ndarray], Any], indices: Iterable[np.ndarray], *,
                     depth: int = 2) -> Iterator[tuple[np.ndarray, Any]]:
    """``(idx, get_batch(idx))`` for each ``idx``, the next ``depth`` batches read in a background thread.

    The order is that of ``indices`` (deterministic); an exception in the reader is raised at the batch
    that failed. ``depth=0`` reads in the caller's thread.

    Parameters
    ----------
    get_batch
        Reads one batch (e.g. :meth:`OnDiskPairedSource.get_batch`).
    indices
        Row indices of each batch, in training order.
    depth
        Batches read ahead.
    """
    if depth <= 0:
        for idx in indices:
            yield idx, get_batch(idx)
        return
    it = iter(indices)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="attune-loader") as pool:
        queue: deque = deque()
        for idx in it:
            queue.append((idx, pool.submit(get_batch, idx)))
            if len(queue) > depth:
                break
        while queue:
            idx, fut = queue.popleft()
            nxt = next(it, None)
            if nxt is not None:
                queue.append((nxt, pool.submit(get_batch, nxt)))
            yield idx, fut.result()
