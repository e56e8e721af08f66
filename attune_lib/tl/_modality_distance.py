"""Distances between a cell's RNA and ATAC embeddings (paper Fig. 5B-C, Supp. Fig. S8).

* :func:`modality_cosine` - per cell, the cosine distance between its own RNA and ATAC embeddings.
* :func:`cross_modal_similarity` - the cell x cell cosine similarity of RNA (rows) vs ATAC (columns)
  embeddings, cells ordered by cluster and pseudotime (Fig. 5B; subsampled).
* :func:`cross_modal_shift` - for each cell, the pseudotime of the ATAC embeddings most similar to its RNA
  embedding minus its own pseudotime (negative: RNA resembles earlier chromatin, i.e. RNA lags).
* :func:`high_distance_cells`, :func:`high_distance_genes` - cells above a distance threshold (0.1) and
  the genes they over-express (Wilcoxon, adjusted p < 0.01, log fold change > 0.25).
* :func:`add_release_embeddings` - attach the embeddings released with the original Attune
  (:func:`attune_lib.datasets.attune_release`) to a MuData, or build a small AnnData from them.

See ``docs/chromatin_potential.md``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .._utils import AttuneInputError, renamed_kwargs
from ._obs import obs_column as _obs_column
from ._obs import obs_holders as _holders
from ._obs import pseudotime_values as _pseudotime
from ._obs import write_obs as _write_obs

__all__ = [
    "add_release_embeddings",
    "cross_modal_shift",
    "cross_modal_similarity",
    "high_distance_cells",
    "high_distance_genes",
    "modality_cosine",
]


def _embedding(data, key: str, what: str) -> np.ndarray:
    """``obsm[key]`` of the MuData (or AnnData), else of the modality holding it (same cells required)."""
    for holder in _holders(data):
        if key in holder.obsm:
            if holder is not data and not holder.obs_names.equals(data.obs_names):
                raise AttuneInputError(f"{what}={key!r} is in a modality whose cells differ from mdata's")
            Z = np.asarray(holder.obsm[key], dtype=np.float64)
            if Z.ndim != 2 or Z.shape[0] != data.n_obs:
                raise AttuneInputError(f"{what}={key!r} has shape {Z.shape}, expected ({data.n_obs}, d)")
            return Z
    raise AttuneInputError(f"{what}={key!r} not found in obsm of the data or its modalities (run "
                           "Attune.get_latent_representation(modality=..., key_added=True) first)")


def _normalise(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to unit norm; rows that are all zero or hold NaN (cells without an embedding) become 0."""
    fin = np.isfinite(Z).all(axis=1)
    Z = np.where(fin[:, None], Z, 0.0)
    n = np.linalg.norm(Z, axis=1)
    ok = fin & (n > 0)
    out = np.zeros_like(Z)
    out[ok] = Z[ok] / n[ok, None]
    return out, ok


def modality_cosine(mdata, *, rna_key: str = "X_attune_rna", atac_key: str = "X_attune_atac",
                    key_added: str = "rna_atac_cosine_distance") -> None:
    """Cosine distance between each cell's RNA and ATAC embeddings (Fig. 5C, Supp. Fig. S8c).

    ``distance = 1 - cos(z_rna, z_atac)``, in [0, 2]; 0 when the two embeddings of the cell coincide.
    Cells with an all-zero or missing (NaN) embedding (e.g. 6 RNA and 1 ATAC rows of the released PBMC
    file) get NaN, with a warning. Written to ``obs[key_added]`` of the MuData and its modalities.

    Parameters
    ----------
    mdata
        MuData (or AnnData) with both embeddings in ``obsm`` (``mdata.obsm`` or a modality's).
    rna_key, atac_key
        ``obsm`` keys (Attune writes ``X_attune_rna`` and ``X_attune_atac``).
    key_added
        obs column written with the distances.
    """
    A = _embedding(mdata, rna_key, "rna_key")
    B = _embedding(mdata, atac_key, "atac_key")
    if A.shape != B.shape:
        raise AttuneInputError(f"rna_key {A.shape} and atac_key {B.shape} embeddings must have the same shape")
    a, oka = _normalise(A)
    b, okb = _normalise(B)
    d = 1.0 - (a * b).sum(axis=1)
    ok = oka & okb
    if (~ok).any():
        warnings.warn(f"{int((~ok).sum())} cell(s) have an all-zero or missing embedding; their distance is NaN",
                      UserWarning, stacklevel=2)
    d[~ok] = np.nan
    _write_obs(mdata, key_added, np.clip(d, 0.0, 2.0))


def _order_cells(data, *, groupby: str | None, pseudotime_key: str | None) -> np.ndarray:
    """Cell order: by group (groups ranked by median pseudotime when known), then pseudotime, then position."""
    n = data.n_obs
    pt = np.zeros(n)
    if pseudotime_key is not None:
        pt = _pseudotime(data, pseudotime_key)
        pt = np.where(np.isfinite(pt), pt, np.inf)
    grank = np.zeros(n)
    if groupby is not None:
        g = _obs_column(data, groupby, what="groupby").astype(str).to_numpy()
        if pseudotime_key is not None:
            med = pd.Series(pt).replace(np.inf, np.nan).groupby(g).median()
        else:
            med = pd.Series(np.arange(n, dtype=float)).groupby(g).min()
        grank = pd.Series(g).map(med.rank(method="first")).to_numpy(dtype=float)
    return np.lexsort((np.arange(n), pt, grank))


def cross_modal_similarity(mdata, *, rna_key: str = "X_attune_rna", atac_key: str = "X_attune_atac",
                           groupby: str | None = "cell_type", pseudotime_key: str | None = "pseudotime",
                           max_cells: int | None = 1000, seed: int = 0) -> pd.DataFrame:
    """Cell x cell cosine similarity between RNA (rows) and ATAC (columns) embeddings (Fig. 5B).

    Cells are ordered by ``groupby`` (groups sorted by their median pseudotime when ``pseudotime_key`` is
    given) and by pseudotime within a group; rows and columns are the same cells in the same order, so
    the diagonal holds each cell's own RNA-ATAC similarity. With ``max_cells``, a random subsample
    (``seed``) keeps the matrix small.

    Parameters
    ----------
    mdata
        MuData with both embeddings in ``obsm``.
    rna_key
        obsm key of the RNA embedding.
    atac_key
        obsm key of the ATAC embedding.
    groupby
        obs column ordering the cells by group (None: no grouping).
    pseudotime_key
        obs column ordering the cells within groups (None: keep the order).
    max_cells
        Subsample to at most this many cells (None: all).
    seed
        Seed of the subsample.

    Returns
    -------
    DataFrame (RNA cells x ATAC cells, same order). ``attrs["groups"]`` holds the ordered group labels.
    """
    A = _embedding(mdata, rna_key, "rna_key")
    B = _embedding(mdata, atac_key, "atac_key")
    a, _ = _normalise(A)
    b, _ = _normalise(B)
    order = _order_cells(mdata, groupby=groupby, pseudotime_key=pseudotime_key)
    if max_cells is not None and len(order) > max_cells:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(order), size=int(max_cells), replace=False))
        order = order[keep]
    names = mdata.obs_names[order]
    S = pd.DataFrame(a[order] @ b[order].T, index=names, columns=names)
    if groupby is not None:
        S.attrs["groups"] = _obs_column(mdata, groupby).iloc[order].astype(str).tolist()
    if pseudotime_key is not None:
        S.attrs["pseudotime"] = _pseudotime(mdata, pseudotime_key)[order].tolist()
    return S


def cross_modal_shift(mdata, *, rna_key: str = "X_attune_rna", atac_key: str = "X_attune_atac",
                      pseudotime_key: str = "pseudotime", k: int = 10,
                      key_added: str = "rna_atac_pseudotime_shift") -> None:
    """Pseudotime shift between a cell's RNA embedding and the ATAC embeddings it resembles most.

    For each cell, the ``k`` ATAC embeddings (of all cells) with the highest cosine similarity to its RNA
    embedding are found; ``shift`` = their mean pseudotime minus the cell's own pseudotime. Negative values
    mean the transcriptome looks like the chromatin of earlier cells (RNA lags ATAC), the "upward shift of
    blocks" of the paper's Fig. 5B, quantified. Written to ``obs[key_added]``.

    Parameters
    ----------
    mdata
        MuData with both embeddings in ``obsm`` and a pseudotime in ``obs``.
    rna_key
        obsm key of the RNA embedding.
    atac_key
        obsm key of the ATAC embedding.
    pseudotime_key
        obs column with the pseudotime.
    k
        Number of most similar ATAC embeddings averaged.
    key_added
        obs column written with the shift.
    """
    A = _embedding(mdata, rna_key, "rna_key")
    B = _embedding(mdata, atac_key, "atac_key")
    pt = _pseudotime(mdata, pseudotime_key)
    if not isinstance(k, (int, np.integer)) or k < 1 or k > len(pt):
        raise AttuneInputError(f"k must be an integer in [1, {len(pt)}], got {k!r}")
    a, _ = _normalise(A)
    b, _ = _normalise(B)
    ok = np.isfinite(pt)
    bo, pto = b[ok], pt[ok]
    shift = np.full(len(pt), np.nan)
    for st in range(0, len(pt), 2048):
        S = a[st:st + 2048] @ bo.T
        top = np.argpartition(-S, kth=min(k, S.shape[1]) - 1, axis=1)[:, :k]
        shift[st:st + 2048] = pto[top].mean(axis=1) - pt[st:st + 2048]
    _write_obs(mdata, key_added, shift)


def high_distance_cells(mdata, *, distance_key: str = "rna_atac_cosine_distance", threshold: float | None = 0.1,
                        quantile: float | None = None, key_added: str = "high_distance") -> float:
    """Label cells whose RNA-ATAC cosine distance exceeds a threshold (the paper: 0.1, Supp. Fig. S8d).

    Parameters
    ----------
    threshold
        Distance cut-off (cells with ``distance > threshold`` are ``"high"``).
    quantile
        Instead of ``threshold``, use this quantile of the distances (e.g. 0.9), for embeddings whose
        distance scale differs from the paper's.
    key_added
        obs column (categorical ``"high"``/``"rest"``).
    mdata
        MuData with the RNA-ATAC distance in ``obs``.
    distance_key
        obs column with the distance (:func:`modality_cosine`).

    Returns
    -------
    The threshold used.
    """
    d = pd.to_numeric(_obs_column(mdata, distance_key, what="distance_key")).to_numpy(dtype=float)
    if quantile is not None:
        if not 0 < quantile < 1:
            raise AttuneInputError(f"quantile must be in (0, 1), got {quantile}")
        threshold = float(np.nanquantile(d, quantile))
    if threshold is None:
        raise AttuneInputError("pass threshold or quantile")
    lab = np.where(np.isfinite(d) & (d > threshold), "high", "rest")
    if (lab == "high").sum() == 0:
        warnings.warn(f"no cell has {distance_key} > {threshold:g}", UserWarning, stacklevel=2)
    _write_obs(mdata, key_added, pd.Categorical(lab, categories=["high", "rest"]))
    return float(threshold)


@renamed_kwargs(rna_key="rna_mod")
def high_distance_genes(
    mdata,
    *,
    groupby: str = "high_distance",
    group: str = "high",
    rna_mod: str = "rna",
    layer: str | None = None,
    pval_cutoff: float = 0.01,
    logfc_cutoff: float = 0.25,
) -> pd.DataFrame:
    """Genes over-expressed in the high-distance cells (scanpy ``rank_genes_groups``, Wilcoxon, vs the rest).

    Uses :func:`attune_lib.tl.differential_genes` (one group vs the rest on log-normalised
    expression) and keeps ``group``'s genes with adjusted p < ``pval_cutoff`` and log fold change >
    ``logfc_cutoff`` (the paper's thresholds), sorted by score.

    Parameters
    ----------
    mdata
        MuData with the high-distance labels in ``obs`` (:func:`high_distance_cells`).
    groupby
        obs column with the labels.
    group
        Label of the high-distance cells.
    rna_mod
        RNA modality name.
    layer
        RNA layer with log-normalised expression (None: ``.X``).
    pval_cutoff
        Largest adjusted p-value kept.
    logfc_cutoff
        Smallest log fold change kept.
    """
    from ._dpag import differential_genes

    labels = _obs_column(mdata, groupby, what="groupby")
    if (labels.astype(str) == group).sum() < 2:
        raise AttuneInputError(f"obs[{groupby!r}] has fewer than two cells in group {group!r}")
    de = differential_genes(mdata, groupby=groupby, rna_mod=rna_mod, layer=layer, pval_cutoff=pval_cutoff,
                            logfc_cutoff=logfc_cutoff, method="wilcoxon", only_positive=True)
    de = de[de["group"].astype(str) == group]
    return de.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def add_release_embeddings(release: Mapping, mdata=None, *, key_prefix: str = "X_attune_release"):
    """Attach the Attune release embeddings (``attune_release("cortex")`` or ``("pbmc10k")``).

    With ``mdata``: the cortex release identifies cells by ``row_ids`` (row positions in the released
    count matrix, i.e. in :func:`attune_lib.datasets.cortex` loaded with ``intersect=False``), PBMC by
    ``cell_ids`` (barcodes). Embeddings go to ``mdata.obsm[key_prefix + "_rna"]`` / ``"_atac"`` (NaN rows
    for cells without one; :func:`modality_cosine` then gives NaN). Without ``mdata`` an AnnData with just
    these cells and embeddings is returned (obs names ``row<id>`` or the barcodes).

    Parameters
    ----------
    release
        Output of :func:`attune_lib.datasets.attune_release` (``rna_embedding``, ``atac_embedding`` and the
        cell identifiers).
    mdata
        MuData receiving the embeddings (None: return a new AnnData).
    key_prefix
        obsm key prefix; ``_rna`` and ``_atac`` are appended.
    """
    import anndata as ad

    for k in ("rna_embedding", "atac_embedding"):
        if k not in release:
            raise AttuneInputError(f"release has no {k!r}; use attune_release('cortex') or ('pbmc10k')")
    R = np.asarray(release["rna_embedding"], dtype=np.float32)
    T = np.asarray(release["atac_embedding"], dtype=np.float32)
    if "row_ids" in release:
        ids = np.asarray(release["row_ids"], dtype=np.int64)
        names = pd.Index([f"row{i}" for i in ids])
    elif "cell_ids" in release:
        ids = None
        names = pd.Index(np.asarray(release["cell_ids"]).astype(str))
    else:
        raise AttuneInputError("release has neither row_ids nor cell_ids")
    if mdata is None:
        out = ad.AnnData(obs=pd.DataFrame(index=names))
        out.obsm[f"{key_prefix}_rna"] = R
        out.obsm[f"{key_prefix}_atac"] = T
        return out
    n = mdata.n_obs
    if ids is not None:
        if ids.max() >= n:
            raise AttuneInputError(f"release row_ids reach {ids.max()} but mdata has {n} cells; load the full dataset")
        pos = ids
    else:
        pos = mdata.obs_names.get_indexer(names)
        if (pos < 0).all():
            raise AttuneInputError("no release barcode matches mdata.obs_names")
    for key, Z in ((f"{key_prefix}_rna", R), (f"{key_prefix}_atac", T)):
        full = np.full((n, Z.shape[1]), np.nan, dtype=np.float32)
        full[pos[pos >= 0]] = Z[pos >= 0]
        mdata.obsm[key] = full
    return None

