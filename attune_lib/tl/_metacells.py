"""kNN metacells and column correlations shared by the link baselines and the link read-out.

Cells are aggregated into metacells around random seed cells on a representation, counts summed and
log-normalised (:func:`knn_metacells`); columns standardised so dot products are correlations.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from .._access import lognormalize
from .._utils import as_csr, get_modality, renamed_kwargs

logger = logging.getLogger("attune_lib")

__all__ = [
]


# --------------------------------------------------------------------------------------------------
# baselines
# --------------------------------------------------------------------------------------------------
def aggregation_matrix(adata, layer: str | None, where: str) -> sp.csr_matrix:
    """Counts (or normalised, not log, values) for aggregation.

    ``layer="counts"`` falls back by input state, never silently.
    """
    from .._access import get_matrix

    explicit = layer if (layer is not None and (layer != "counts" or layer in adata.layers)) else None
    X, _, _ = get_matrix(adata, "scaled", layer=explicit, where=where, step="link baselines (metacell sums)",
                         param="rna_layer/atac_layer")
    return as_csr(X, dtype=np.float64)


@renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
def knn_metacells(mdata, *, rna_mod: str, atac_mod: str, rna_layer: str | None, atac_layer: str | None,
               use_rep: str, n_metacells: int | None, n_neighbors: int | None, seed: int):
    """kNN metacells: ``n_metacells`` random seed cells, each aggregating its ``n_neighbors`` nearest cells
    (Euclidean on ``use_rep``); counts are summed, then normalised to 10^4 and log1p. Returns dense
    ``(rna, atac)`` metacell matrices."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.neighbors import NearestNeighbors

    rna = get_modality(mdata, rna_mod, role="RNA")
    atac = get_modality(mdata, atac_mod, role="ATAC")
    n = rna.n_obs
    Xr = aggregation_matrix(rna, rna_layer, f"mdata[{rna_mod!r}]")
    Xa = aggregation_matrix(atac, atac_layer, f"mdata[{atac_mod!r}]")
    if use_rep in rna.obsm:
        rep = np.asarray(rna.obsm[use_rep], dtype=np.float64)
    elif use_rep in getattr(mdata, "obsm", {}):
        rep = np.asarray(mdata.obsm[use_rep], dtype=np.float64)
    else:
        logger.info("link_baselines: %r not found; using a 30-component SVD of log-normalised RNA", use_rep)
        k = max(1, min(30, min(Xr.shape) - 1))
        L = Xr.multiply(1.0 / np.maximum(np.asarray(Xr.sum(1)), 1e-12)).tocsr() * 1e4
        L.data = np.log1p(L.data)
        rep = TruncatedSVD(k, random_state=seed).fit_transform(L)
    M = int(n_metacells) if n_metacells else int(min(500, max(20, n // 5)))
    M = min(M, n)
    k = int(n_neighbors) if n_neighbors else int(min(20, max(5, 2 * n // max(M, 1))))
    k = min(k, n)
    rng = np.random.default_rng(seed)
    seeds = np.sort(rng.choice(n, size=M, replace=False))
    nn_idx = NearestNeighbors(n_neighbors=k).fit(rep).kneighbors(rep[seeds], return_distance=False)
    A = sp.csr_matrix((np.ones(M * k), nn_idx.ravel(), np.arange(0, M * k + 1, k)), shape=(M, n))
    return (lognormalize(A @ Xr, dtype=np.float64).toarray(), lognormalize(A @ Xa, dtype=np.float64).toarray())


def standardise_columns(X: np.ndarray) -> np.ndarray:
    """Centre and scale columns to unit norm (constant columns -> 0), so column dot products are correlations."""
    Z = X - X.mean(0, keepdims=True)
    nrm = np.sqrt((Z * Z).sum(0, keepdims=True))
    return np.divide(Z, nrm, out=np.zeros_like(Z), where=nrm > 0)


def paired_column_dots(A: np.ndarray, B: np.ndarray, ia: np.ndarray, ib: np.ndarray,
                       chunk: int = 200_000) -> np.ndarray:
    out = np.empty(len(ia))
    for st in range(0, len(ia), chunk):
        out[st : st + chunk] = np.einsum("ij,ij->j", A[:, ia[st : st + chunk]], B[:, ib[st : st + chunk]])
    return out
