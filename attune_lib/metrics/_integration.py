"""Integration metrics as GLUE (Cao & Gao 2022, ``scglue.metrics``) defines them.

All cell-level metrics work on the RNA and ATAC embeddings stacked (RNA first), with modality
labels ``"rna"``/``"atac"``. Nearest-neighbour queries use scikit-learn with exact Euclidean
distances; "self excluded" is done by querying the fitted index without ``X`` (scikit-learn then
never returns a point as its own neighbour), which equals GLUE's "take k + 1, drop the first"
except that it is also right when a cell has exact duplicates.

Scores (higher is better unless noted): MAP, cell-type ASW, NC, GC, SAS, omics-layer ASW;
FOSCTTM, alignment and uniformity are lower-is-better.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.special import logsumexp
from sklearn.metrics import silhouette_samples, silhouette_score
from sklearn.neighbors import NearestNeighbors

from .._utils import AttuneInputError, check_values, get_modality, renamed_kwargs

logger = logging.getLogger("attune_lib")

__all__ = [
    "mean_average_precision",
    "avg_silhouette_width",
    "neighbor_conservation",
    "graph_connectivity",
    "seurat_alignment_score",
    "avg_silhouette_width_batch",
    "foscttm",
    "alignment",
    "uniformity",
    "integration_metrics",
    "integration_metrics_from_embeddings",
    "compute_integration_metrics",
    "summarize_scores",
    "BIO_METRICS",
    "MIXING_METRICS",
]

#: columns averaged (after min-max scaling) into ``bio_conservation``
BIO_METRICS = ("map", "asw", "nc")
#: columns averaged (after min-max scaling) into ``omics_mixing``
MIXING_METRICS = ("sas", "asw_batch", "gc")


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------
def as_embedding(x, name: str) -> np.ndarray:
    if sp.issparse(x):
        x = x.toarray()
    x = np.asarray(x)
    if x.ndim != 2:
        raise AttuneInputError(f"{name} must be a 2-D array (cells x dims), got shape {x.shape}")
    check_values(x, name=name, allow_negative=True)
    return x.astype(np.float64, copy=False)


def as_labels(y, n: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise AttuneInputError(f"{name} must be 1-D with {n} entries, got shape {y.shape}")
    n_na = int(pd.isna(y).sum())
    if n_na:
        raise AttuneInputError(f"{name} contains {n_na} missing label(s)")
    return y


def check_frac(neighbor_frac: float) -> float:
    if not (0 < float(neighbor_frac) <= 1):
        raise AttuneInputError(f"neighbor_frac must be in (0, 1], got {neighbor_frac!r}")
    return float(neighbor_frac)


def n_neighbors_for(n: int, neighbor_frac: float) -> int:
    """GLUE's ``k = max(round(neighbor_frac * n), 1)``."""
    return max(int(round(n * neighbor_frac)), 1)


def knn_indices(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` nearest other cells (self excluded), nearest first."""
    k = min(k, x.shape[0] - 1)
    if k < 1:
        raise AttuneInputError(f"need at least 2 cells for neighbour metrics, got {x.shape[0]}")
    nn = NearestNeighbors(n_neighbors=k).fit(x)
    return nn.kneighbors(return_distance=False)


# --------------------------------------------------------------------------------------------
# biology conservation
# --------------------------------------------------------------------------------------------
def mean_average_precision(x, y, *, neighbor_frac: float = 0.01) -> float:
    """Mean average precision of same-label neighbours (GLUE's MAP).

    For every cell, its ``k = max(round(neighbor_frac * N), 1)`` nearest other cells are ranked
    by Euclidean distance; the cell's score is the average precision of that ranking with
    "same label" as relevant, i.e. the mean of precision@i over the ranks i of the hits
    (0 when there is no hit). This equals :func:`sklearn.metrics.average_precision_score`
    on the k neighbours with scores decreasing by rank, computed here for all cells at once.

    Parameters
    ----------
    x
        Embedding, cells x dims.
    y
        Labels (e.g. cell types), one per cell.
    neighbor_frac
        Neighbourhood size as a fraction of the number of cells.

    Returns
    -------
    float
    """
    x = as_embedding(x, "x")
    y = as_labels(y, x.shape[0], "y")
    k = n_neighbors_for(x.shape[0], check_frac(neighbor_frac))
    return map_from_knn(knn_indices(x, k), y)


def map_from_knn(nni: np.ndarray, y: np.ndarray) -> float:
    """MAP of the labels ``y`` over precomputed neighbour indices (so several labelings share one kNN)."""
    match = y[nni] == y[:, None]
    precision_at = np.cumsum(match, axis=1) / np.arange(1, match.shape[1] + 1)
    n_hits = match.sum(axis=1)
    ap = np.divide((precision_at * match).sum(axis=1), n_hits,
                   out=np.zeros(match.shape[0]), where=n_hits > 0)
    return float(ap.mean())


def avg_silhouette_width(x, y) -> float:
    """Cell-type average silhouette width, ``(silhouette_score + 1) / 2`` (Euclidean).

    Parameters
    ----------
    x
        Embedding, cells x dims.
    y
        Labels (at least 2 distinct, fewer than the number of cells).

    Returns
    -------
    float in [0, 1]
    """
    x = as_embedding(x, "x")
    y = as_labels(y, x.shape[0], "y")
    n_labels = np.unique(y).size
    if not 2 <= n_labels <= x.shape[0] - 1:
        raise AttuneInputError(
            f"y must have between 2 and n_cells - 1 distinct labels for ASW, got {n_labels}"
        )
    return (float(silhouette_score(x, y)) + 1) / 2


def neighbor_conservation(x, y, batch, *, neighbor_frac: float = 0.01) -> float:
    """Neighbour conservation (GLUE's NC).

    Within each batch (here: each modality), the Jaccard index between the kNN sets of the
    integrated embedding ``x`` and of the pre-integration representation ``y`` (RNA: PCA;
    ATAC: LSI), self excluded, averaged over cells; then averaged over batches.
    ``k = max(round(neighbor_frac * N), 1)`` with ``N`` the **total** number of cells.

    Parameters
    ----------
    x
        Integrated embedding, cells x dims.
    y
        Pre-integration representation, same cells (any number of dims). When modalities have
        representations of different widths, zero-pad them to the same width (this does not
        change Euclidean distances), or use :func:`integration_metrics`.
    batch
        Batch / modality label per cell.
    neighbor_frac
        Neighbourhood size as a fraction of all cells.

    Returns
    -------
    float in [0, 1]
    """
    x = as_embedding(x, "x")
    y = as_embedding(y, "y")
    if y.shape[0] != x.shape[0]:
        raise AttuneInputError(
            f"x and y must have the same cells, got {x.shape[0]} and {y.shape[0]}"
        )
    batch = as_labels(batch, x.shape[0], "batch")
    k = n_neighbors_for(x.shape[0], check_frac(neighbor_frac))
    per_batch = []
    for b in np.unique(batch):
        mask = batch == b
        per_batch.append(_jaccard_knn(x[mask], y[mask], k))
    return float(np.mean(per_batch))


def _jaccard_knn(x: np.ndarray, y: np.ndarray, k: int) -> float:
    k = min(k, x.shape[0] - 1)
    if k < 1:
        return 0.0
    gx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors_graph(mode="connectivity")
    gy = NearestNeighbors(n_neighbors=k).fit(y).kneighbors_graph(mode="connectivity")
    inter = np.asarray(gx.multiply(gy).sum(axis=1)).ravel()
    union = np.asarray((gx + gy).astype(bool).sum(axis=1)).ravel()
    return float((inter / union).mean())


# --------------------------------------------------------------------------------------------
# omics mixing
# --------------------------------------------------------------------------------------------
@renamed_kwargs(random_state="seed")
def graph_connectivity(x, y, *, n_neighbors: int = 15, seed: int = 0) -> float:
    """Graph connectivity (GLUE's GC).

    A kNN graph is built on ``x`` with :func:`scanpy.pp.neighbors` (``n_neighbors``, UMAP
    connectivities, as GLUE does); for each label, the size of the largest connected component
    of the label's induced subgraph is divided by the label's size; the mean over labels.

    Parameters
    ----------
    x
        Embedding, cells x dims.
    y
        Labels (cell types).
    n_neighbors
        Neighbours of the scanpy graph.
    seed
        Passed to scanpy (only matters for its approximate search on large data).

    Returns
    -------
    float in (0, 1]
    """
    import anndata as ad
    import scanpy as sc

    x = as_embedding(x, "x")
    y = as_labels(y, x.shape[0], "y")
    if isinstance(n_neighbors, bool) or int(n_neighbors) < 2:
        raise AttuneInputError(f"n_neighbors must be an integer >= 2, got {n_neighbors!r}")
    n_neighbors = min(int(n_neighbors), x.shape[0])
    tmp = ad.AnnData(X=x.astype(np.float32))
    # exact kNN (scikit-learn transformer); scanpy's default approximate search for more than
    # 4,096 cells fails with scipy >= 1.15 sparse arrays in scanpy 1.11 (csr_array.getnnz)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sp.SparseEfficiencyWarning)  # raised inside scanpy
        sc.pp.neighbors(tmp, n_neighbors=n_neighbors, n_pcs=0, use_rep="X",
                        transformer="sklearn", random_state=seed)
    conn = sp.csr_matrix(tmp.obsp["connectivities"])
    scores = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        _, comp = connected_components(conn[idx][:, idx], directed=True, connection="strong")
        scores.append(np.bincount(comp).max() / idx.size)
    return float(np.mean(scores))


@renamed_kwargs(random_state="seed")
def seurat_alignment_score(
    x,
    y,
    *,
    neighbor_frac: float = 0.01,
    n_repeats: int = 4,
    seed: int | None = 0,
) -> float:
    """Seurat alignment score (GLUE's SAS) of the labels ``y`` (modalities / batches).

    Each repeat subsamples every label to the size of the smallest one (without replacement),
    takes ``k = max(round(neighbor_frac * n_sub), 1)`` neighbours (self excluded), computes
    ``x̄`` = mean number of same-label neighbours and scores ``(k - x̄) * M / (k * (M - 1))``
    capped at 1 (``M`` labels). The mean over repeats.

    Parameters
    ----------
    x
        Embedding, cells x dims.
    y
        Modality (or batch) label per cell; at least two distinct.
    neighbor_frac
        Neighbourhood size as a fraction of the subsample.
    n_repeats
        Number of subsamples.
    seed
        Seed of the subsampling.

    Returns
    -------
    float, 1 for perfect mixing, 0 for complete separation.
    """
    x = as_embedding(x, "x")
    y = as_labels(y, x.shape[0], "y")
    neighbor_frac = check_frac(neighbor_frac)
    if isinstance(n_repeats, bool) or int(n_repeats) < 1:
        raise AttuneInputError(f"n_repeats must be a positive integer, got {n_repeats!r}")
    groups = [np.flatnonzero(y == u) for u in np.unique(y)]
    m = len(groups)
    if m < 2:
        raise AttuneInputError("y must have at least 2 distinct labels for SAS")
    min_size = min(g.size for g in groups)
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(int(n_repeats)):
        sub = np.concatenate([rng.choice(g, min_size, replace=False) for g in groups])
        k = n_neighbors_for(sub.size, neighbor_frac)
        nni = knn_indices(x[sub], k)
        k = nni.shape[1]
        same = (y[sub][nni] == y[sub][:, None]).sum(axis=1).mean()
        scores.append(min((k - same) * m / (k * (m - 1)), 1.0))
    return float(np.mean(scores))


def avg_silhouette_width_batch(x, batch, celltype) -> float:
    """Omics-layer (batch) ASW: per cell type, mean of ``1 - |silhouette|`` of the batch labels.

    Cell types where the silhouette is undefined (only one batch, or too few cells) score 1, as
    in GLUE. The mean over cell types.

    Parameters
    ----------
    x
        Embedding, cells x dims.
    batch
        Modality / batch label per cell.
    celltype
        Cell type per cell.

    Returns
    -------
    float in [0, 1]
    """
    x = as_embedding(x, "x")
    batch = as_labels(batch, x.shape[0], "batch")
    celltype = as_labels(celltype, x.shape[0], "celltype")
    per_type = []
    for t in np.unique(celltype):
        mask = celltype == t
        n_b = np.unique(batch[mask]).size
        if 2 <= n_b <= mask.sum() - 1:
            s = silhouette_samples(x[mask], batch[mask])
        else:
            s = np.zeros(1)
        per_type.append(float((1 - np.abs(s)).mean()))
    return float(np.mean(per_type))


# --------------------------------------------------------------------------------------------
# pairing
# --------------------------------------------------------------------------------------------
def foscttm(x, y, *, reduce: str = "mean", chunk_size: int = 1024):
    """Fraction of samples closer than the true match (FOSCTTM), Euclidean.

    Row ``i`` of ``x`` and row ``i`` of ``y`` are the same cell. For cell ``i`` of ``x``:
    the fraction of all ``y`` rows strictly closer to ``x_i`` than ``y_i`` is; and the same from
    ``y``'s side (GLUE's definition, denominator N). Distances are computed in row blocks
    (never the full N x N matrix), each true distance taken from the same block as its
    competitors.

    Parameters
    ----------
    x, y
        Paired embeddings, same shape.
    reduce
        ``"mean"``: the mean over both directions (a float); ``"none"``: the tuple
        ``(foscttm_x, foscttm_y)`` of per-cell arrays.
    chunk_size
        Rows per block.

    Returns
    -------
    float or tuple of two arrays
    """
    x = as_embedding(x, "x")
    y = as_embedding(y, "y")
    if x.shape != y.shape:
        raise AttuneInputError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    if reduce not in ("mean", "none"):
        raise AttuneInputError(f"reduce must be 'mean' or 'none', got {reduce!r}")
    n = x.shape[0]
    fx = _closer_fraction(x, y, chunk_size)  # x_i vs all y
    fy = _closer_fraction(y, x, chunk_size)  # y_j vs all x
    if reduce == "none":
        return fx, fy
    return float((fx.mean() + fy.mean()) / 2) if n else float("nan")


def _closer_fraction(a: np.ndarray, b: np.ndarray, chunk_size: int) -> np.ndarray:
    """For each row i of ``a``: fraction of rows of ``b`` strictly closer to ``a_i`` than ``b_i``.

    Squared distances ``|a_i|² + |b_j|² - 2 a_i·b_j`` order the same as distances, and
    ``|a_i|²`` is common to a row, so ``|b_j|² - 2 a_i·b_j`` is compared (one BLAS product per
    block); the true partner's value comes from the same block.
    """
    n = a.shape[0]
    out = np.empty(n)
    bsq = np.einsum("ij,ij->i", b, b)
    chunk_size = max(int(chunk_size), 1)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        d = bsq[None, :] - 2.0 * (a[start:stop] @ b.T)
        true = d[np.arange(stop - start), np.arange(start, stop)]
        out[start:stop] = (d < true[:, None]).sum(axis=1) / n
    return out


def _l2n(z: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation as ``torch.nn.functional.normalize``: ``z / max(|z|, eps)``.

    All-zero rows (e.g. a ReLU output that is all zero) stay zero.
    """
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    return z / np.maximum(norm, eps)


def alignment(x, y) -> float:
    """Alignment (Wang & Isola 2020): mean ``||f(x_i) - f(y_i)||²`` over positive pairs.

    ``f`` is L2 normalisation (all-zero rows stay zero). Lower is better; 0 for identical
    directions, 4 for opposite ones.

    Parameters
    ----------
    x, y
        Paired embeddings, same shape.

    Returns
    -------
    float in [0, 4]
    """
    x = as_embedding(x, "x")
    y = as_embedding(y, "y")
    if x.shape != y.shape:
        raise AttuneInputError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    return float(np.mean(np.sum((_l2n(x) - _l2n(y)) ** 2, axis=1)))


@renamed_kwargs(random_state="seed")
def uniformity(
    z,
    *,
    t: float = 2.0,
    max_pairs: int | None = None,
    seed: int | None = 0,
    chunk_size: int = 1024,
) -> float:
    """Uniformity (Wang & Isola 2020): ``log mean exp(-t ||f(z_i) - f(z_j)||²)`` over ``i != j``.

    ``f`` is L2 normalisation. Lower is better (more uniform on the sphere); the minimum is
    ``-t * 2`` only in the limit. Exact over all pairs (chunked) unless ``max_pairs`` is given
    and smaller than the number of unordered pairs, in which case that many random pairs of
    distinct cells are used.

    Parameters
    ----------
    z
        Embedding, cells x dims (at least 2 cells).
    t
        Temperature (2 in the paper).
    max_pairs
        Optional cap on the number of pairs (random subsample).
    seed
        Seed for the pair subsample.
    chunk_size
        Rows per block in the exact computation.

    Returns
    -------
    float
    """
    z = _l2n(as_embedding(z, "z"))
    n = z.shape[0]
    if n < 2:
        raise AttuneInputError("uniformity needs at least 2 cells")
    if not np.isfinite(t) or t <= 0:
        raise AttuneInputError(f"t must be a positive number, got {t!r}")
    n_pairs = n * (n - 1) // 2
    if max_pairs is not None and int(max_pairs) < n_pairs:
        if int(max_pairs) < 1:
            raise AttuneInputError(f"max_pairs must be a positive integer, got {max_pairs!r}")
        rng = np.random.default_rng(seed)
        i = rng.integers(0, n, size=int(max_pairs))
        j = (i + rng.integers(1, n, size=int(max_pairs))) % n  # uniform over j != i
        sq = np.sum((z[i] - z[j]) ** 2, axis=1)
        return float(logsumexp(-t * sq) - np.log(sq.size))
    parts = []
    zsq = np.einsum("ij,ij->i", z, z)
    chunk_size = max(int(chunk_size), 1)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        sq = zsq[start:stop, None] + zsq[None, :] - 2.0 * (z[start:stop] @ z.T)
        np.maximum(sq, 0.0, out=sq)
        sq[np.arange(stop - start), np.arange(start, stop)] = np.inf  # drop i == j
        parts.append(logsumexp(-t * sq))
    return float(logsumexp(parts) - np.log(n * (n - 1)))


# --------------------------------------------------------------------------------------------
# all together
# --------------------------------------------------------------------------------------------
def pad_columns(a: np.ndarray, width: int) -> np.ndarray:
    return a if a.shape[1] == width else np.hstack([a, np.zeros((a.shape[0], width - a.shape[1]))])


@renamed_kwargs(random_state="seed")
def integration_metrics_from_embeddings(
    rna_emb,
    atac_emb,
    cell_type,
    *,
    rna_ref=None,
    atac_ref=None,
    neighbor_frac: float = 0.01,
    n_neighbors: int = 15,
    n_repeats: int = 4,
    paired: bool = True,
    seed: int = 0,
    uniformity_max_pairs: int | None = None,
) -> dict[str, float]:
    """All GLUE integration metrics on the stacked RNA + ATAC embeddings.

    Parameters
    ----------
    rna_emb, atac_emb
        Integrated embeddings of the RNA and ATAC cells.
    cell_type
        Cell types: one per paired cell (length ``n_rna`` when ``paired``) or one per stacked row
        (length ``n_rna + n_atac``).
    rna_ref, atac_ref
        Pre-integration representations (RNA PCA, ATAC LSI) for NC; NC is NaN without both.
    neighbor_frac
        Neighbourhood fraction of MAP, NC and SAS.
    n_neighbors
        Neighbours of the GC graph.
    n_repeats
        SAS repeats.
    paired
        Rows of ``rna_emb`` and ``atac_emb`` are the same cells; enables FOSCTTM and alignment
        (NaN otherwise).
    seed
        Seed for SAS, GC and the uniformity pair subsample.
    uniformity_max_pairs
        Passed to :func:`uniformity` as ``max_pairs``.

    Returns
    -------
    dict
        ``map``, ``asw``, ``nc`` (biology conservation), ``sas``, ``asw_batch``, ``gc`` (omics
        mixing), ``foscttm``, ``alignment``, ``uniformity`` (mean of the per-modality
        uniformities, as in Wang & Isola's code).
    """
    rna = as_embedding(rna_emb, "rna_emb")
    atac = as_embedding(atac_emb, "atac_emb")
    if rna.shape[1] != atac.shape[1]:
        raise AttuneInputError(
            f"rna_emb and atac_emb must have the same width, got {rna.shape[1]} and {atac.shape[1]}"
        )
    if paired and rna.shape[0] != atac.shape[0]:
        raise AttuneInputError(
            f"paired=True needs as many RNA as ATAC cells, got {rna.shape[0]} and {atac.shape[0]}"
        )
    n_rna, n_atac = rna.shape[0], atac.shape[0]
    ct = np.asarray(cell_type)
    if paired and ct.ndim == 1 and ct.shape[0] == n_rna:
        ct = np.concatenate([ct, ct])
    ct = as_labels(ct, n_rna + n_atac, "cell_type")
    refs = None
    if (rna_ref is None) != (atac_ref is None):
        raise AttuneInputError("give both rna_ref and atac_ref (or neither) for NC")
    if rna_ref is not None:
        r_ref, a_ref = as_embedding(rna_ref, "rna_ref"), as_embedding(atac_ref, "atac_ref")
        if r_ref.shape[0] != n_rna or a_ref.shape[0] != n_atac:
            raise AttuneInputError(
                f"rna_ref/atac_ref must have {n_rna}/{n_atac} rows, got "
                f"{r_ref.shape[0]}/{a_ref.shape[0]}"
            )
        width = max(r_ref.shape[1], a_ref.shape[1])
        refs = np.vstack([pad_columns(r_ref, width), pad_columns(a_ref, width)])
    x = np.vstack([rna, atac])
    modality = np.array(["rna"] * n_rna + ["atac"] * n_atac)
    out: dict[str, float] = {}
    out["map"] = mean_average_precision(x, ct, neighbor_frac=neighbor_frac)
    out["asw"] = avg_silhouette_width(x, ct)
    out["nc"] = (neighbor_conservation(x, refs, modality, neighbor_frac=neighbor_frac)
                 if refs is not None else float("nan"))
    out["sas"] = seurat_alignment_score(x, modality, neighbor_frac=neighbor_frac,
                                        n_repeats=n_repeats, seed=seed)
    out["asw_batch"] = avg_silhouette_width_batch(x, modality, ct)
    out["gc"] = graph_connectivity(x, ct, n_neighbors=n_neighbors, seed=seed)
    if paired:
        out["foscttm"] = foscttm(rna, atac)
        out["alignment"] = alignment(rna, atac)
    else:
        out["foscttm"] = out["alignment"] = float("nan")
    out["uniformity"] = float(np.mean([
        uniformity(rna, max_pairs=uniformity_max_pairs, seed=seed),
        uniformity(atac, max_pairs=uniformity_max_pairs, seed=seed),
    ]))
    return out


def _obsm_or_mdata(mdata, mod_key: str, key: str, what: str) -> np.ndarray:
    adata = mdata.mod[mod_key]
    if key in adata.obsm:
        return np.asarray(adata.obsm[key])
    if key in getattr(mdata, "obsm", {}):
        return np.asarray(mdata.obsm[key])
    raise AttuneInputError(
        f"{what}: key {key!r} not found in mdata[{mod_key!r}].obsm ({sorted(adata.obsm)}) "
        f"nor in mdata.obsm ({sorted(mdata.obsm)})"
    )


def integration_metrics(
    mdata,
    *legacy_args,
    rna_key: str = "X_attune_rna",
    atac_key: str = "X_attune_atac",
    cell_type_key: str = "cell_type",
    rna_ref_key: str | None = "X_pca",
    atac_ref_key: str | None = "X_lsi",
    rna_mod: str = "rna",
    atac_mod: str = "atac",
    **kwargs: Any,
) -> dict[str, float]:
    """GLUE's integration metrics of the embeddings stored in a paired MuData.

    The MuData-first entry point; :func:`integration_metrics_from_embeddings` does the same on arrays.

    Embeddings are looked up in ``mdata[rna_mod].obsm`` / ``mdata[atac_mod].obsm`` (then
    ``mdata.obsm``); cell types in ``mdata.obs`` (then ``rna.obs``). Missing reference keys
    (or ``None``) give NC = NaN with a log message.

    Parameters
    ----------
    mdata
        Paired MuData.
    rna_key, atac_key
        ``.obsm`` keys of the integrated embeddings.
    cell_type_key
        ``.obs`` column of cell types.
    rna_ref_key, atac_ref_key
        ``.obsm`` keys of the pre-integration representations (see
        :func:`attune_lib.pp.pca_rna` and :func:`attune_lib.pp.lsi`).
    rna_mod, atac_mod
        Modality names.
    *legacy_args
        Only for the earlier array form ``integration_metrics(rna_emb, atac_emb, cell_type, ...)``, which is
        passed on to :func:`integration_metrics_from_embeddings` with a ``FutureWarning``.
    **kwargs
        Passed to :func:`integration_metrics_from_embeddings`.

    Returns
    -------
    dict
    """
    if not hasattr(mdata, "mod"):
        if not legacy_args:
            raise AttuneInputError(f"integration_metrics takes a paired MuData first, got {type(mdata).__name__}; "
                                   "for arrays use integration_metrics_from_embeddings(rna_emb, atac_emb, cell_type)")
        warnings.warn("integration_metrics(rna_emb, atac_emb, cell_type) on arrays was renamed "
                      "integration_metrics_from_embeddings; integration_metrics now takes a MuData",
                      FutureWarning, stacklevel=2)
        # the array form's own keywords (rna_ref, atac_ref, ...) arrive in kwargs; ours are at their defaults
        return integration_metrics_from_embeddings(mdata, *legacy_args, **kwargs)
    if legacy_args:
        raise AttuneInputError("integration_metrics(mdata, ...) takes keyword options only after the MuData")
    rna = get_modality(mdata, rna_mod, role="RNA")
    get_modality(mdata, atac_mod, role="ATAC")
    r = _obsm_or_mdata(mdata, rna_mod, rna_key, "rna_key")
    a = _obsm_or_mdata(mdata, atac_mod, atac_key, "atac_key")
    if cell_type_key in mdata.obs:
        ct = mdata.obs[cell_type_key].to_numpy()
    elif cell_type_key in rna.obs:
        ct = rna.obs[cell_type_key].to_numpy()
    else:
        raise AttuneInputError(
            f"cell_type_key={cell_type_key!r} not found in mdata.obs nor in {rna_mod}.obs"
        )
    refs: dict[str, Any] = {"rna_ref": None, "atac_ref": None}
    if rna_ref_key is not None and atac_ref_key is not None:
        try:
            refs = {"rna_ref": _obsm_or_mdata(mdata, rna_mod, rna_ref_key, "rna_ref_key"),
                    "atac_ref": _obsm_or_mdata(mdata, atac_mod, atac_ref_key, "atac_ref_key")}
        except AttuneInputError as err:
            logger.info("integration_metrics: NC skipped (%s)", err)
            refs = {"rna_ref": None, "atac_ref": None}
    return integration_metrics_from_embeddings(r, a, ct, **refs, **kwargs)


def compute_integration_metrics(mdata, **kwargs: Any) -> dict[str, float]:
    """Deprecated name of :func:`integration_metrics` (MuData first).

    Parameters
    ----------
    mdata
        Paired MuData.
    **kwargs
        Passed to :func:`integration_metrics`.
    """
    warnings.warn("compute_integration_metrics was renamed integration_metrics", FutureWarning, stacklevel=2)
    return integration_metrics(mdata, **kwargs)


def summarize_scores(df: pd.DataFrame, *, anchors: dict | None = None) -> pd.DataFrame:
    """Add GLUE's summary scores to a results table (one row per method / run / epoch).

    Each of MAP, ASW, NC, SAS, omics-layer ASW and GC is min-max scaled over **all rows**,
    ``(x - min) / (max - min)``; ``bio_conservation`` = mean of the scaled ``map``, ``asw``,
    ``nc``; ``omics_mixing`` = mean of the scaled ``sas``, ``asw_batch``, ``gc``;
    ``overall`` = 0.6 * bio + 0.4 * mixing. A column with a single distinct value (max == min,
    e.g. a one-row table) scales to 0 for every row, so it adds nothing to the ranking; NaN
    entries stay NaN and are skipped in the means.

    Parameters
    ----------
    df
        Table with columns ``map``, ``asw``, ``nc``, ``sas``, ``asw_batch``, ``gc``.
    anchors
        ``{metric: (lo, hi)}`` fixed anchors instead of the rows' min and max: each metric is scaled
        as ``(x - lo) / (hi - lo)`` clipped to [0, 1], so a row's score does not depend on the other rows.

    Returns
    -------
    DataFrame
        A copy of ``df`` with ``bio_conservation``, ``omics_mixing`` and ``overall`` added.
    """
    if not isinstance(df, pd.DataFrame):
        raise AttuneInputError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in (*BIO_METRICS, *MIXING_METRICS) if c not in df.columns]
    if missing:
        raise AttuneInputError(f"df is missing metric column(s) {missing}")
    out = df.copy()
    scaled = {}
    for c in (*BIO_METRICS, *MIXING_METRICS):
        col = pd.to_numeric(out[c], errors="raise").astype(float)
        if anchors is not None:
            lo, hi = anchors[c]
            scaled[c] = ((col - lo) / (hi - lo)).clip(0.0, 1.0)
            continue
        lo, hi = col.min(), col.max()
        scaled[c] = (col - lo) / (hi - lo) if hi > lo else col * 0.0
    scaled = pd.DataFrame(scaled, index=out.index)
    out["bio_conservation"] = scaled[list(BIO_METRICS)].mean(axis=1)
    out["omics_mixing"] = scaled[list(MIXING_METRICS)].mean(axis=1)
    out["overall"] = 0.6 * out["bio_conservation"] + 0.4 * out["omics_mixing"]
    return out
