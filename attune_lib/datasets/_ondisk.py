"""Write a large paired multiome dataset to disk chunk by chunk (never all of it in memory).

:func:`write_multiome_h5ad` draws cells in chunks from a cell-type model (RNA ~15 % and ATAC ~5 %
non-zero by default, as the benchmark's own generator) and appends each chunk's CSR rows to
``rna.h5ad`` and ``atac.h5ad`` in the AnnData on-disk format (``X`` a ``csr_matrix`` group written by
:func:`anndata.io.write_elem` and grown with :func:`anndata.io.sparse_dataset` ``.append``). Memory
is bounded by one chunk plus the per-type profiles, whatever the number of cells. The files open with
``anndata.read_h5ad(path, backed="r")`` and stream into Attune through
:class:`attune_lib.models.OnDiskPairedSource`.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._utils import AttuneInputError, progress

__all__ = ["write_multiome_h5ad"]


def _io():
    try:
        from anndata.io import sparse_dataset, write_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import sparse_dataset, write_elem
    return sparse_dataset, write_elem


def write_multiome_h5ad(out_dir: str | os.PathLike, *, n_cells: int, n_genes: int = 2000, n_peaks: int = 30000,
                        rna_density: float = 0.15, atac_density: float = 0.05, n_types: int = 8,
                        chunk_size: int = 10000, seed: int = 0, overwrite: bool = False,
                        progress_bar: bool = True) -> dict[str, Path]:
    """Simulate paired RNA + ATAC cells and write them as two ``.h5ad`` files, one chunk of cells at a time.

    RNA ``X`` holds log-normalised expression (``log1p`` of counts scaled to 10,000 per cell), ATAC ``X``
    peak counts (1 or 2); ``obs["cell_type"]`` is the generating type. Files are written under temporary
    names and renamed at the end, so an interrupted run leaves no half-written dataset.

    Parameters
    ----------
    out_dir
        Folder receiving ``rna.h5ad`` and ``atac.h5ad`` (created when missing).
    n_cells, n_genes, n_peaks
        Dataset size.
    rna_density, atac_density
        Mean fraction of non-zero entries per modality.
    n_types
        Number of cell types (each with its own feature profile).
    chunk_size
        Cells generated and written per chunk (memory scales with it, not with ``n_cells``).
    seed
        Seed of the generator (the same seed and chunk size give the same files).
    overwrite
        Replace existing files.
    progress_bar
        Show a progress bar over the chunks.

    Returns
    -------
    dict
        ``{"rna": path, "atac": path}``.
    """
    for name, v in (("n_cells", n_cells), ("n_genes", n_genes), ("n_peaks", n_peaks), ("n_types", n_types),
                    ("chunk_size", chunk_size)):
        if int(v) < 1:
            raise AttuneInputError(f"{name} must be >= 1, got {v}")
    for name, v in (("rna_density", rna_density), ("atac_density", atac_density)):
        if not 0 < v < 1:
            raise AttuneInputError(f"{name} must be in (0, 1), got {v}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"rna": out / "rna.h5ad", "atac": out / "atac.h5ad"}
    for p in paths.values():
        if p.exists() and not overwrite:
            raise AttuneInputError(f"{p} exists; pass overwrite=True or another out_dir")
    sparse_dataset, write_elem = _io()
    rng = np.random.default_rng(seed)

    def profile(n_feat, density):
        w = np.exp(rng.normal(0, 1.0, (n_types, n_feat)))
        return np.minimum(density * w / w.mean(axis=1, keepdims=True), 0.95).astype(np.float32)

    prof = {"rna": profile(n_genes, rna_density), "atac": profile(n_peaks, atac_density)}
    g_start = np.arange(n_genes) * 100_000 + 50_000
    var = {
        "rna": pd.DataFrame({"chrom": "chr1", "start": g_start, "end": g_start + 20_000, "strand": "+",
                             "tss": g_start}, index=[f"g{i}" for i in range(n_genes)]),
    }
    p_start = np.sort(rng.integers(0, n_genes * 100_000, n_peaks)) // 10 * 10 + np.arange(n_peaks) % 10
    var["atac"] = pd.DataFrame({"chrom": "chr1", "start": p_start, "end": p_start + 500},
                               index=[f"chr1:{a}-{a + 500}" for a in p_start])
    tmp = {m: p.with_name(f".{p.name}.partial") for m, p in paths.items()}
    files = {m: h5py.File(t, "w") for m, t in tmp.items()}
    labels_all = []
    try:
        n_chunks = -(-n_cells // chunk_size)
        for ci in progress(range(n_chunks), total=n_chunks, enabled=progress_bar, desc="writing chunks",
                           unit="chunk"):
            lab = rng.integers(0, n_types, min(chunk_size, n_cells - ci * chunk_size))
            labels_all.append(lab)
            for mod in ("rna", "atac"):
                m = _draw_chunk(rng, prof[mod][lab], mod)
                if ci == 0:
                    write_elem(files[mod], "X", m, dataset_kwargs={"chunks": (1 << 16,)})
                else:
                    sparse_dataset(files[mod]["X"]).append(m)
        labels = np.concatenate(labels_all)
        obs = pd.DataFrame({"cell_type": pd.Categorical(labels.astype(str))},
                           index=[f"cell{i}" for i in range(n_cells)])
        for mod, f in files.items():
            write_elem(f, "obs", obs)
            write_elem(f, "var", var[mod])
            for key in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
                write_elem(f, key, {})
            f.attrs["encoding-type"] = "anndata"
            f.attrs["encoding-version"] = "0.1.0"
    except BaseException:
        for m, f in files.items():
            f.close()
            tmp[m].unlink(missing_ok=True)
        raise
    for f in files.values():
        f.close()
    for m in paths:
        os.replace(tmp[m], paths[m])
    return paths


def _draw_chunk(rng: np.random.Generator, prob: np.ndarray, mod: str) -> sp.csr_matrix:
    depth = rng.lognormal(0, 0.3, (prob.shape[0], 1)).astype(np.float32)
    rows = []
    for s in range(0, prob.shape[0], 500):  # bounded dense mask
        mask = rng.random(prob[s : s + 500].shape, dtype=np.float32) < prob[s : s + 500] * depth[s : s + 500]
        rows.append(sp.csr_matrix(mask, dtype=np.float32))
    m = sp.vstack(rows, format="csr")
    if mod == "rna":
        m.data = rng.geometric(0.4, m.nnz).astype(np.float32)
        lib = np.asarray(m.sum(1)).ravel()
        m = (sp.diags((1e4 / np.maximum(lib, 1)).astype(np.float32)) @ m).tocsr()
        m.data = np.log1p(m.data)
    else:
        m.data = (1 + (rng.random(m.nnz) < 0.1)).astype(np.float32)
    m.sort_indices()
    return m
