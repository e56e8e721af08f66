"""Chromatin potential (paper Fig. 3G-I, Supp. Fig. S6-S7): residuals, pseudotime, GAM trends, pseudo-bulk.

* :func:`residuals` - predicted (from ATAC) minus measured expression, per cell and gene. **Sign:** positive
  means the chromatin predicts more expression than is measured, i.e. expression lags accessibility.
* :func:`cis_predicted_expression` - a transparent chromatin-only stand-in for the Attune prediction
  head: each gene's expression predicted from its own linked peaks (used in tests and as a labelled
  fallback).
* :func:`topic_pseudotime` - LDA topics of the ATAC counts (cisTopic-like, 10 topics), z-scored, then
  Palantir diffusion maps (10 components) and pseudotime from a start cell (scanpy DPT as fallback).
* :func:`residual_trends`, :func:`lagging_gene_scores` - a GAM (pygam ``LinearGAM``) of each gene's
  residual along pseudotime, its standard deviation and local extrema (``scipy.signal.argrelextrema``),
  a pattern label, and a ranking of lagging genes.
* :func:`pseudobulk_groups`, :func:`pseudobulk_composition`, :func:`pseudobulk` - equal-size groups of
  cells along pseudotime (the paper's 10 pseudo-samples), their cell-type composition (Fig. 3I) and
  per-group mean profiles.
* :func:`cell_type_transition` - the pseudotime at which the early cell types give way to later ones.

See ``docs/chromatin_potential.md``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._access import counts_matrix as _counts_layer
from .._access import layer_matrix, matrix_state
from .._access import log_expression as _log_expression
from .._utils import AttuneInputError, as_csr, check_values, get_modality, progress, renamed_kwargs
from ._obs import group_codes as _group_codes
from ._obs import group_matrix as _group_matrix
from ._obs import is_mudata as _is_mudata
from ._obs import obs_column as _obs_column
from ._obs import pseudotime_values as _pseudotime
from ._obs import write_obs as _write_obs

logger = logging.getLogger("attune_lib")

__all__ = [
    "cell_type_transition",
    "cis_predicted_expression",
    "lagging_gene_scores",
    "pseudobulk",
    "pseudobulk_composition",
    "pseudobulk_groups",
    "residual_trends",
    "residuals",
    "topic_pseudotime",
]

PATTERNS = ("flat", "monotone up", "monotone down", "peak-early", "peak-late", "dip-early", "dip-late",
            "complex")


# --------------------------------------------------------------------------------------------------
# small helpers (obs and group helpers shared with other files live in tl._obs)
# --------------------------------------------------------------------------------------------------
def _dense(X) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else np.asarray(X)


# --------------------------------------------------------------------------------------------------
# residuals
# --------------------------------------------------------------------------------------------------
@renamed_kwargs(rna_key="rna_mod")
def residuals(mdata, *, predicted_layer: str, measured_layer: str | None = None, rna_mod: str = "rna",
              standardize: bool = True, center_cells: bool = True, key_added: str = "residual") -> None:
    """Residual of modalities: predicted minus measured expression (paper Fig. 3G, Methods).

    ``residual = normalised predicted - normalised measured``. Both are log-normalised expression
    (counts normalised to 10,000 per cell, log1p): the Attune prediction head outputs that scale, and a
    raw-count ``measured_layer`` is normalised on the fly. **Sign convention:** a positive residual
    means the chromatin state predicts *more* expression than is measured, i.e. expression lags
    accessibility (chromatin potential of a gene being switched on); negative means expression persists
    after the chromatin closed.

    Parameters
    ----------
    mdata
        MuData with an RNA modality (or an AnnData of RNA).
    predicted_layer
        Layer of ``mdata[rna_mod]`` with expression predicted from ATAC (e.g. ``"attune_predicted"`` from
        :meth:`attune_lib.models.RNAPredictor.predict_to_layer`).
    measured_layer
        Layer with the measured expression (None: ``.X``; raw counts are log-normalised first).
    standardize
        Divide each gene's residual by the standard deviation of its measured expression, so genes are
        comparable; the zero of the residual is kept.
    center_cells
        Subtract each cell's median residual over genes. Log-normalised values of all genes shift together
        when the cell's composition changes (the library-size normalisation), a shift a per-gene
        ``cis`` predictor cannot know; it is removed so that it does not look like chromatin potential.
    key_added
        Layer receiving the residuals (dense float32); settings go to ``uns[key_added]``.
    rna_mod
        RNA modality name.
    """
    rna = get_modality(mdata, rna_mod, role="RNA") if _is_mudata(mdata) else mdata
    where = f"mdata[{rna_mod!r}]" if _is_mudata(mdata) else "adata"
    if predicted_layer not in rna.layers:
        raise AttuneInputError(f"predicted_layer={predicted_layer!r} not found in {where}.layers; "
                               f"available: {sorted(rna.layers)}")
    P = _dense(rna.layers[predicted_layer]).astype(np.float64)
    check_values(P, name=f"{where}.layers[{predicted_layer!r}]", allow_negative=True)
    M = _log_expression(rna, measured_layer, where)
    if P.shape != M.shape:
        raise AttuneInputError(f"predicted_layer {predicted_layer!r} has shape {P.shape}, measured {M.shape}")
    if not isinstance(key_added, str) or not key_added:
        raise AttuneInputError(f"key_added must be a non-empty string, got {key_added!r}")
    R = P - M
    if standardize:
        sd = M.std(axis=0)
        sd[~(sd > 0)] = 1.0
        R /= sd
    if center_cells:
        R -= np.median(R, axis=1, keepdims=True)
    rna.layers[key_added] = R.astype(np.float32)
    rna.uns[key_added] = {"predicted_layer": predicted_layer, "measured_layer": measured_layer or "X",
                          "standardize": bool(standardize), "center_cells": bool(center_cells),
                          "sign": "predicted - measured (positive: expression lags accessibility)"}


def _link_matrix(links: pd.DataFrame, genes: pd.Index, peaks: pd.Index, weight: str | None) -> sp.csr_matrix:
    """Peaks x genes matrix of link weights, columns normalised to sum 1 (genes without links: 0)."""
    for col in ("gene", "peak"):
        if col not in links:
            raise AttuneInputError(f"links: missing column {col!r}; expected gene, peak[, {weight}]")
    if weight is not None and weight not in links:
        raise AttuneInputError(f"links: weight column {weight!r} not found; columns: {list(links.columns)}")
    gi = genes.get_indexer(links["gene"].astype(str))
    pi = peaks.get_indexer(links["peak"].astype(str))
    ok = (gi >= 0) & (pi >= 0)
    w = np.ones(int(ok.sum())) if weight is None else np.clip(links[weight].to_numpy(dtype=float)[ok], 0, None)
    W = sp.csr_matrix((w, (pi[ok], gi[ok])), shape=(len(peaks), len(genes)))
    col = np.asarray(W.sum(axis=0)).ravel()
    col[col == 0] = 1.0
    return (W @ sp.diags(1.0 / col)).tocsr()


@renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
def cis_predicted_expression(mdata, *, links: pd.DataFrame, weight: str | None = "weight",
                             rna_mod: str = "rna", atac_mod: str = "atac", rna_layer: str | None = None,
                             atac_layer: str | None = None, use_rep: str | None = "X_lsi", n_neighbors: int = 15,
                             n_splines: int = 8, key_added: str = "cis_predicted") -> None:
    """Chromatin-only ("cis") prediction of each gene from its own linked peaks; a stand-in prediction head.

    For each cell, peak accessibility (counts per 10,000, or the values of ``atac_layer`` when they are
    not counts) is optionally averaged over the cell's ``n_neighbors`` nearest neighbours in the ATAC
    representation ``use_rep`` (never RNA); a gene's chromatin score is the link-weighted mean over its
    linked peaks; the measured log-normalised expression is regressed on that score with a per-gene
    penalised spline (pygam ``LinearGAM``, ``n_splines``). Unlike a whole-cell predictor (the Attune MLP,
    which can learn the cell's position in time and hence the lag itself), a cis model reads only the
    gene's own chromatin, so a lag between accessibility and expression stays in the residual.

    Parameters
    ----------
    links
        DataFrame ``gene, peak`` (+ ``weight``): e.g. top attention links, correlation links or, on the
        simulator, ``mdata.uns["truth"]["links"]``. Genes without a link get their mean expression.
    weight
        Column of ``links`` with non-negative link weights (None: equal weights).
    rna_layer, atac_layer
        Measured expression (None: ``.X``; counts are log-normalised) and ATAC values (None: the
        ``counts`` layer when present, else ``.X``).
    use_rep
        ATAC ``obsm`` key for the kNN smoothing (None or missing: no smoothing).
    key_added
        RNA layer receiving the prediction (dense float32, log-normalised scale).
    mdata
        Paired MuData.
    rna_mod
        RNA modality name.
    atac_mod
        ATAC modality name.
    n_neighbors
        Neighbours of the kNN smoothing on ``use_rep``.
    n_splines
        Spline basis size of each gene's GAM.
    """
    from pygam import LinearGAM, s

    rna = get_modality(mdata, rna_mod, role="RNA")
    atac = get_modality(mdata, atac_mod, role="ATAC")
    if not rna.obs_names.equals(atac.obs_names):
        raise AttuneInputError(f"mdata[{rna_mod!r}] and mdata[{atac_mod!r}] must hold the same cells in the same order")
    W = _link_matrix(links, rna.var_names, atac.var_names, weight)
    Y = _log_expression(rna, rna_layer, f"mdata[{rna_mod!r}]")
    A, used = _counts_layer(atac, atac_layer, f"mdata[{atac_mod!r}]", kind="any")
    A = as_csr(A, dtype=np.float64)
    if matrix_state(atac, used) != "log-normalised":  # counts or scaled counts: accessibility per 10k
        tot = np.asarray(A.sum(axis=1)).ravel()
        tot[tot == 0] = 1.0
        A = (sp.diags(1e4 / tot) @ A).tocsr()
    S = np.asarray((A @ W).todense()) if sp.issparse(A) else A @ W
    if use_rep is not None and use_rep in atac.obsm and n_neighbors > 1:
        from sklearn.neighbors import NearestNeighbors

        Xr = np.asarray(atac.obsm[use_rep])
        k = min(n_neighbors, Xr.shape[0])
        _, nn = NearestNeighbors(n_neighbors=k).fit(Xr).kneighbors(Xr)
        S = S[nn].mean(axis=1)
    pred = np.tile(Y.mean(axis=0), (Y.shape[0], 1))
    has = np.asarray((W != 0).sum(axis=0)).ravel() > 0
    for g in progress(np.flatnonzero(has), desc="cis prediction", unit="gene"):
        x = S[:, g]
        if np.ptp(x) <= 0:
            continue
        gam = LinearGAM(s(0, n_splines=n_splines)).fit(x, Y[:, g])
        pred[:, g] = gam.predict(x)
    rna.layers[key_added] = pred.astype(np.float32)
    rna.uns[key_added] = {"kind": "cis (linked peaks) spline regression", "atac_layer": used or "X",
                          "use_rep": use_rep if (use_rep in atac.obsm) else None, "n_neighbors": int(n_neighbors)}


# --------------------------------------------------------------------------------------------------
# pseudotime
# --------------------------------------------------------------------------------------------------
@renamed_kwargs(atac_key="atac_mod")
def topic_pseudotime(mdata, *, start_cell: str, n_topics: int = 10, n_components: int = 10, atac_mod: str = "atac",
                     layer: str | None = None, max_iter: int = 50, knn: int = 30, num_waypoints: int = 500,
                     method: str = "palantir", seed: int = 0, key_added: str = "topic_pseudotime") -> None:
    """Pseudotime from ATAC topics (paper Methods "Pseudotime inference": cisTopic + Palantir).

    1. LDA (:class:`sklearn.decomposition.LatentDirichletAllocation`, batch variational Bayes,
       ``max_iter`` passes) with ``n_topics`` topics on the binarised peak counts. cisTopic used collapsed
       Gibbs sampling with alpha = 50 / n_topics and beta = 0.1; sklearn keeps the topic-word prior 0.1
       but allows a document-topic prior of at most 1, so its default 1 / n_topics is used.
    2. Topic proportions z-scored per topic (cisTopic ``modelMatSelection(method="Z-score")``).
    3. ``method="palantir"``: ``palantir.utils.run_diffusion_maps`` (``n_components``, ``knn``),
       ``determine_multiscale_space`` and ``palantir.core.run_palantir`` from ``start_cell``
       (``use_early_cell_as_start=True``). ``method="dpt"``: scanpy diffusion map + DPT from the same
       cell (fallback, e.g. when Palantir fails on a disconnected graph).

    Writes ``obs[key_added]`` (rescaled to [0, 1]) and ``obs[key_added + "_entropy"]`` (Palantir) to
    ``mdata.obs`` and each modality, ``obsm["X_topics"]`` (topic proportions) and
    ``obsm["X_topic_diffmap"]`` on the ATAC modality and the MuData, and the settings in
    ``uns[key_added]``.

    Parameters
    ----------
    start_cell
        obs name of the root cell (the simulator's ``uns["truth"]["start_cell"]``; for real data a cell
        of the earliest type, e.g. a TAC-1 cell).
    n_topics, n_components
        Topics (10 in the paper) and diffusion components (10).
    layer
        ATAC counts (None: ``counts`` layer when present, else ``.X``).
    max_iter, knn, num_waypoints
        LDA passes; kNN of the diffusion map and of Palantir; Palantir waypoints (capped at the cell
        number).
    seed
        Seeds LDA, the diffusion map and Palantir's waypoint sampling.
    mdata
        MuData with the ATAC modality.
    atac_mod
        ATAC modality name.
    method
        ``"palantir"`` or ``"dpt"`` (see above).
    key_added
        obs column written with the pseudotime.
    """
    if method not in ("palantir", "dpt"):
        raise AttuneInputError(f"method must be 'palantir' or 'dpt', got {method!r}")
    atac = get_modality(mdata, atac_mod, role="ATAC") if _is_mudata(mdata) else mdata
    where = f"mdata[{atac_mod!r}]" if _is_mudata(mdata) else "adata"
    if start_cell not in atac.obs_names:
        raise AttuneInputError(f"start_cell={start_cell!r} is not an obs name of {where}")
    for name, v, lo in (("n_topics", n_topics, 2), ("n_components", n_components, 2), ("knn", knn, 2)):
        if not isinstance(v, (int, np.integer)) or v < lo:
            raise AttuneInputError(f"{name} must be an integer >= {lo}, got {v!r}")
    X, used = _counts_layer(atac, layer, where, step="topic pseudotime (LDA is a count model)")
    X = as_csr(X, dtype=np.float64).copy()
    X.data[:] = 1.0
    from sklearn.decomposition import LatentDirichletAllocation

    lda = LatentDirichletAllocation(n_components=n_topics, learning_method="batch", max_iter=max_iter,
                                    topic_word_prior=0.1, random_state=seed)
    theta = lda.fit_transform(X)
    sd = theta.std(axis=0)
    sd[sd == 0] = 1.0
    Z = (theta - theta.mean(axis=0)) / sd
    names = atac.obs_names
    knn = int(min(knn, X.shape[0] - 1))
    info: dict[str, Any] = {"method": method, "n_topics": int(n_topics), "n_components": int(n_components),
                            "start_cell": start_cell, "layer": used or "X", "seed": int(seed)}
    entropy = np.full(len(names), np.nan)
    if method == "palantir":
        import palantir

        df = pd.DataFrame(Z, index=names)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dm = palantir.utils.run_diffusion_maps(df, n_components=int(min(n_components, X.shape[0] - 2)),
                                                   knn=knn, seed=seed)
            ms = palantir.utils.determine_multiscale_space(dm)
            res = palantir.core.run_palantir(ms, start_cell, knn=knn, num_waypoints=int(min(num_waypoints, len(names))),
                                             n_jobs=1, use_early_cell_as_start=True, seed=seed)
        pt = res.pseudotime.reindex(names).to_numpy(dtype=float)
        entropy = res.entropy.reindex(names).to_numpy(dtype=float)
        dmap = np.asarray(dm["EigenVectors"].reindex(names))
        info["n_multiscale_components"] = int(ms.shape[1])
    else:
        import anndata as ad
        import scanpy as sc

        tmp = ad.AnnData(obs=pd.DataFrame(index=names), obsm={"rep": Z})
        sc.pp.neighbors(tmp, use_rep="rep", n_neighbors=knn, random_state=seed, transformer="sklearn")
        sc.tl.diffmap(tmp, n_comps=int(min(n_components + 1, X.shape[0] - 2)))
        tmp.uns["iroot"] = int(names.get_loc(start_cell))
        sc.tl.dpt(tmp)
        pt = tmp.obs["dpt_pseudotime"].to_numpy(dtype=float)
        dmap = np.asarray(tmp.obsm["X_diffmap"])
    pt[~np.isfinite(pt)] = np.nan
    lo, hi = np.nanmin(pt), np.nanmax(pt)
    pt = (pt - lo) / (hi - lo) if hi > lo else np.zeros_like(pt)
    _write_obs(mdata, key_added, pt, names)
    if method == "palantir":
        _write_obs(mdata, f"{key_added}_entropy", entropy, names)
    for holder in ([mdata, atac] if _is_mudata(mdata) else [mdata]):
        holder.obsm["X_topics"] = theta.astype(np.float32)
        holder.obsm["X_topic_diffmap"] = dmap.astype(np.float32)
    atac.uns[key_added] = info
    if _is_mudata(mdata):
        mdata.uns[key_added] = info


# --------------------------------------------------------------------------------------------------
# pseudo-bulk
# --------------------------------------------------------------------------------------------------
def pseudobulk_groups(mdata, *, pseudotime_key: str = "pseudotime", n_groups: int = 10, key_added: str = "pt_group",
                      prefix: str = "t") -> None:
    """Split cells into ``n_groups`` equal-size groups along pseudotime (the paper's 10 pseudo-samples).

    Cells are sorted by pseudotime (ties keep their order) and cut into consecutive groups whose sizes
    differ by at most one (``numpy.array_split``). Labels ``t1 .. tN`` (ordered categorical, ``t1`` the
    earliest) go to ``obs[key_added]`` of the MuData and every modality; cells without a finite
    pseudotime get NaN.

    Parameters
    ----------
    mdata
        MuData or AnnData with ``obs[pseudotime_key]``.
    n_groups
        Number of groups (at most the number of cells with a pseudotime).
    prefix
        Label prefix.
    pseudotime_key
        obs column with the pseudotime.
    key_added
        obs column written with the groups.
    """
    pt = _pseudotime(mdata, pseudotime_key)
    ok = np.flatnonzero(np.isfinite(pt))
    if not isinstance(n_groups, (int, np.integer)) or n_groups < 1 or n_groups > len(ok):
        raise AttuneInputError(f"n_groups must be an integer in [1, {len(ok)}] (cells with a pseudotime), "
                               f"got {n_groups!r}")
    order = ok[np.argsort(pt[ok], kind="stable")]
    labels = np.full(len(pt), None, dtype=object)
    cats = [f"{prefix}{i + 1}" for i in range(n_groups)]
    for i, chunk in enumerate(np.array_split(order, n_groups)):
        labels[chunk] = cats[i]
    _write_obs(mdata, key_added, pd.Categorical(labels, categories=cats, ordered=True))


def pseudobulk_composition(mdata, *, groupby: str = "pt_group", cell_type_key: str = "cell_type",
                           normalize: bool = True) -> pd.DataFrame:
    """Cell-type composition of each pseudo-bulk group (paper Fig. 3I).

    Parameters
    ----------
    mdata
        MuData or AnnData with both obs columns.
    groupby
        obs column with the groups.
    cell_type_key
        obs column with the cell types.
    normalize
        Fractions per group instead of counts.

    Returns
    -------
    DataFrame groups x cell types: fractions (rows sum to 1) or counts (``normalize=False``).
    """
    g = _obs_column(mdata, groupby, what="groupby")
    ct = _obs_column(mdata, cell_type_key, what="cell_type_key")
    tab = pd.crosstab(pd.Categorical(g), pd.Categorical(ct), dropna=True)
    tab.index.name, tab.columns.name = groupby, cell_type_key
    if isinstance(g.dtype, pd.CategoricalDtype):
        tab = tab.reindex([c for c in g.cat.categories if c in tab.index])
    if isinstance(ct.dtype, pd.CategoricalDtype):
        tab = tab.reindex(columns=[c for c in ct.cat.categories if c in tab.columns])
    tab = tab.loc[:, tab.sum(axis=0) > 0]
    if normalize:
        tab = tab.div(tab.sum(axis=1).replace(0, 1), axis=0)
    return tab


def pseudobulk(
    mdata,
    *,
    groupby: str = "pt_group",
    modality: str = "atac",
    layer: str | None = None,
    features: Sequence[str] | None = None,
    normalize: str = "auto",
    standardize: bool = True,
) -> pd.DataFrame:
    """Per-group profiles of features (features x groups), optionally standardised per feature.

    Parameters
    ----------
    mdata
        MuData (``modality`` picks the AnnData) or AnnData.
    groupby
        obs column with the groups (e.g. from :func:`pseudobulk_groups`); its category order is kept.
    layer
        Matrix to aggregate (None: ``.X``; for ``modality="atac"`` the ``counts`` layer when present).
    features
        Feature names to return (default all).
    normalize
        ``"cpm"``: summed counts of the group / total counts of the group x 1e6 (for counts);
        ``"mean"``: mean value per group (for log-normalised data); ``"auto"``: ``cpm`` for integer-valued
        matrices, else ``mean``.
    standardize
        Z-score each feature across groups (mean 0, SD 1 with ``ddof=1`` as Mfuzz's ``standardise``);
        constant features become 0.
    modality
        Modality aggregated (for a MuData).
    """
    adata = get_modality(mdata, modality) if _is_mudata(mdata) else mdata
    where = f"mdata[{modality!r}]" if _is_mudata(mdata) else "adata"
    if normalize not in ("auto", "cpm", "mean"):
        raise AttuneInputError(f"normalize must be 'auto', 'cpm' or 'mean', got {normalize!r}")
    if layer is None and modality == "atac" and "counts" in adata.layers:
        layer = "counts"
    X = layer_matrix(adata, layer, where=where)
    check_values(X, name=f"{where}{'.X' if layer is None else f'.layers[{layer!r}]'}", allow_negative=True)
    idx = np.arange(adata.n_vars)
    if features is not None:
        features = [str(f) for f in features]
        idx = adata.var_names.get_indexer(features)
        if (idx < 0).any():
            missing = [f for f, i in zip(features, idx) if i < 0]
            raise AttuneInputError(f"{len(missing)} feature(s) not in {where}.var_names, e.g. {missing[:3]}")
    codes, cats = _group_codes(adata if not _is_mudata(mdata) else mdata, groupby)
    if _is_mudata(mdata) and not adata.obs_names.equals(mdata.obs_names):
        g = _obs_column(mdata, groupby).reindex(adata.obs_names)
        codes = np.asarray(pd.Categorical(g, categories=cats).codes)
    G = _group_matrix(codes, len(cats))
    Xs = (
        as_csr(X, dtype=np.float64)[:, idx]
        if sp.issparse(X)
        else sp.csr_matrix(np.asarray(X, dtype=np.float64)[:, idx])
    )
    auto = "cpm" if matrix_state(adata, layer) in ("counts", "binary", "normalised") else "mean"
    mode = normalize if normalize != "auto" else auto
    if mode == "cpm":
        tot = np.asarray((G @ as_csr(X, dtype=np.float64)).sum(axis=1)).ravel()
        tot[tot == 0] = 1.0
        M = np.asarray((G @ Xs).todense()) / tot[:, None] * 1e6
    else:
        n = np.asarray(G.sum(axis=1)).ravel()
        n[n == 0] = 1.0
        M = np.asarray((G @ Xs).todense()) / n[:, None]
    M = M.T  # features x groups
    if standardize:
        sd = M.std(axis=1, ddof=1, keepdims=True)
        mu = M.mean(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            M = np.where(sd > 0, (M - mu) / np.where(sd > 0, sd, 1.0), 0.0)
    return pd.DataFrame(
        M, index=adata.var_names[idx].astype(str), columns=pd.Index([str(c) for c in cats], name=groupby)
    )


def cell_type_transition(mdata, *, pseudotime_key: str = "pseudotime", groupby: str = "cell_type",
                         early_types: Sequence[str] | None = None, window: float = 0.1) -> float:
    """Pseudotime of the cell-type transition: where the early types stop being the majority.

    Cells are sorted by pseudotime; in a sliding window of ``window`` x (number of cells) cells the
    fraction of ``early_types`` is computed, and the pseudotime at the centre of the first window where it
    falls below 0.5 is returned. ``early_types`` default: the types whose median pseudotime is below the
    median pseudotime of all cells (skin: TAC-1 and TAC-2, i.e. lineage commitment; cortex: RG and IPC).

    Parameters
    ----------
    mdata
        MuData or AnnData with both obs columns.
    pseudotime_key
        obs column with the pseudotime.
    groupby
        obs column with the cell types.
    early_types
        Types before the transition (None: see above).
    window
        Size of the sliding window, as a fraction of the number of cells.
    """
    pt = _pseudotime(mdata, pseudotime_key)
    ct = _obs_column(mdata, groupby, what="groupby").astype(str).to_numpy()
    ok = np.isfinite(pt)
    pt, ct = pt[ok], ct[ok]
    if early_types is None:
        med = pd.Series(pt).groupby(ct).median()
        early_types = list(med.index[med < np.median(pt)])
    early_types = [str(t) for t in early_types]
    if not set(early_types) & set(ct):
        raise AttuneInputError(f"early_types {early_types} not found in obs[{groupby!r}]")
    order = np.argsort(pt, kind="stable")
    is_early = np.isin(ct[order], early_types).astype(float)
    w = max(3, round(window * len(order)))
    frac = np.convolve(is_early, np.ones(w) / w, mode="valid")
    below = np.flatnonzero(frac < 0.5)
    if len(below) == 0:
        return float(pt[order][-1])
    centre = below[0] + w // 2
    return float(pt[order][centre])


# --------------------------------------------------------------------------------------------------
# GAM trends of residuals
# --------------------------------------------------------------------------------------------------
def _classify(f: np.ndarray, grid: np.ndarray, *, order: int, min_sd: float, sd: float, split: float,
              rel_tol: float = 0.1) -> tuple[str, list[float], list[float]]:
    """Pattern of a fitted trend from its local extrema (``scipy.signal.argrelextrema``)."""
    from scipy.signal import argrelextrema

    if sd < min_sd or np.ptp(f) == 0:
        return "flat", [], []
    rng = np.ptp(f)
    maxima = argrelextrema(f, np.greater, order=order)[0]
    minima = argrelextrema(f, np.less, order=order)[0]
    # keep extrema that stand out from both ends of the curve by rel_tol of its range
    maxima = [i for i in maxima if f[i] - max(f[0], f[-1]) > rel_tol * rng]
    minima = [i for i in minima if min(f[0], f[-1]) - f[i] > rel_tol * rng]
    t_max, t_min = [float(grid[i]) for i in maxima], [float(grid[i]) for i in minima]
    if not maxima and not minima:
        return ("monotone up" if f[-1] > f[0] else "monotone down"), t_max, t_min
    if len(maxima) == 1 and not minima:
        return ("peak-early" if t_max[0] < split else "peak-late"), t_max, t_min
    if len(minima) == 1 and not maxima:
        return ("dip-early" if t_min[0] < split else "dip-late"), t_max, t_min
    return "complex", t_max, t_min


@renamed_kwargs(rna_key="rna_mod")
def residual_trends(
    mdata,
    *,
    pseudotime_key: str = "pseudotime",
    layer: str = "residual",
    genes: Sequence[str] | None = None,
    rna_mod: str = "rna",
    n_splines: int = 10,
    lam: float = 10.0,
    n_grid: int = 100,
    min_sd: float = 0.0,
    order: int = 5,
    transition: float | None = None,
    key_added: str | None = "residual_trends",
) -> pd.DataFrame:
    """GAM trend of each gene's residual along pseudotime, its SD, extrema and pattern (Fig. 3H, S7a-b).

    For each gene a penalised regression spline (``pygam.LinearGAM(s(0, n_splines, lam))``) of the residual
    on pseudotime is evaluated on ``n_grid`` points. Reported per gene: ``sd`` (SD of the fitted trend,
    the paper's filter), ``snr`` (``sd`` / SD of the residual around the trend), ``r2`` (pygam's explained
    deviance), ``max``/``t_max`` and ``min``/``t_min`` (value and pseudotime of the largest and smallest
    trend value), ``pattern`` and the interior local maxima/minima (``scipy.signal.argrelextrema`` with
    ``order`` grid points, kept when they stand out from both curve ends by 10 % of the curve's range).

    Patterns: ``flat`` (``sd < min_sd``), ``monotone up``/``monotone down`` (no interior extremum),
    ``peak-early``/``peak-late`` (one interior maximum before / after ``transition``),
    ``dip-early``/``dip-late`` (one interior minimum), ``complex`` (several). ``transition`` defaults to the
    middle of the pseudotime range. ``peak_before_transition``: the trend passes the SD filter, its maximum is
    positive and lies before ``transition`` (a residual peak before the cell-type transition, the paper's lagging
    pattern).

    Parameters
    ----------
    mdata
        MuData/AnnData with the residual layer (see :func:`residuals`) and ``obs[pseudotime_key]``.
    genes
        Genes to fit (default all).
    n_splines, lam
        Basis size and smoothing penalty of the GAM.
    min_sd
        Trends with a smaller SD are ``flat`` and ``passes_sd`` is False.
    key_added
        Store ``{"table", "curves"}`` (curves: grid x genes DataFrame) in ``uns[key_added]`` of the RNA
        modality (None: only return).
    pseudotime_key
        obs column with the pseudotime.
    layer
        RNA layer with the residuals.
    rna_mod
        RNA modality name.
    n_grid
        Pseudotime grid points of the curves.
    order
        Neighbouring grid points compared when finding local extrema.
    transition
        Pseudotime of the cell-type transition (None: the middle of the range).

    Returns
    -------
    DataFrame indexed by gene (sorted by decreasing ``snr``).
    """
    from pygam import LinearGAM, s

    rna = get_modality(mdata, rna_mod, role="RNA") if _is_mudata(mdata) else mdata
    where = f"mdata[{rna_mod!r}]" if _is_mudata(mdata) else "adata"
    if layer not in rna.layers:
        raise AttuneInputError(f"layer={layer!r} not found in {where}.layers; run attune_lib.tl.residuals first "
                               f"(available: {sorted(rna.layers)})")
    pt = _pseudotime(mdata, pseudotime_key)
    if _is_mudata(mdata) and not rna.obs_names.equals(mdata.obs_names):
        pt = _obs_column(mdata, pseudotime_key).reindex(rna.obs_names).to_numpy(dtype=float)
    if genes is None:
        gidx = np.arange(rna.n_vars)
    else:
        genes = list(dict.fromkeys(str(g) for g in genes))
        gidx = rna.var_names.get_indexer(genes)
        if (gidx < 0).any():
            bad = [g for g, i in zip(genes, gidx) if i < 0]
            raise AttuneInputError(f"{len(bad)} gene(s) not in {where}.var_names, e.g. {bad[:3]}")
    if n_splines < 4:
        raise AttuneInputError(f"n_splines must be >= 4, got {n_splines}")
    ok = np.isfinite(pt)
    x = pt[ok]
    R = _dense(rna.layers[layer])[ok][:, gidx].astype(np.float64)
    check_values(R, name=f"{where}.layers[{layer!r}]", allow_negative=True)
    grid = np.linspace(x.min(), x.max(), n_grid)
    split = float(transition) if transition is not None else float((x.min() + x.max()) / 2)
    rows, curves = [], np.empty((n_grid, len(gidx)))
    names = rna.var_names[gidx].astype(str)
    for j in progress(range(len(gidx)), desc="residual GAMs", unit="gene"):
        y = R[:, j]
        if np.ptp(y) == 0:
            f, fitted, r2 = np.full(n_grid, y[0]), np.full_like(y, y[0]), 0.0
        else:
            gam = LinearGAM(s(0, n_splines=n_splines, lam=lam)).fit(x, y)
            f, fitted = gam.predict(grid), gam.predict(x)
            r2 = float(gam.statistics_["pseudo_r2"]["explained_deviance"])
        curves[:, j] = f
        sd = float(f.std())
        noise = float((y - fitted).std())
        pattern, t_maxima, t_minima = _classify(f, grid, order=order, min_sd=min_sd, sd=sd, split=split)
        i_max, i_min = int(np.argmax(f)), int(np.argmin(f))
        rows.append({"gene": names[j], "sd": sd, "snr": sd / noise if noise > 0 else np.inf, "r2": r2,
                     "max": float(f[i_max]), "t_max": float(grid[i_max]), "min": float(f[i_min]),
                     "t_min": float(grid[i_min]), "pattern": pattern, "n_maxima": len(t_maxima),
                     "n_minima": len(t_minima), "local_maxima": ";".join(f"{t:.3f}" for t in t_maxima),
                     "local_minima": ";".join(f"{t:.3f}" for t in t_minima), "passes_sd": sd >= min_sd,
                     "peak_before_transition": bool(sd >= min_sd and f[i_max] > 0 and grid[i_max] < split)})
    table = pd.DataFrame(rows).set_index("gene").sort_values("snr", ascending=False, kind="stable")
    table["pattern"] = pd.Categorical(table["pattern"], categories=list(PATTERNS))
    if key_added is not None:
        rna.uns[key_added] = {"table": table, "curves": pd.DataFrame(curves, index=pd.Index(grid, name=pseudotime_key),
                                                                      columns=names),
                              "params": {"pseudotime_key": pseudotime_key, "layer": layer, "n_splines": int(n_splines),
                                         "lam": float(lam), "min_sd": float(min_sd), "transition": split}}
    return table


def lagging_gene_scores(trends: pd.DataFrame, *, score: str = "snr", min_sd: float = 0.0,
                        require_peak_before_transition: bool = False) -> pd.DataFrame:
    """Rank genes by the strength of their residual trend (chromatin potential).

    Parameters
    ----------
    trends
        Output of :func:`residual_trends` (or ``uns["residual_trends"]["table"]``).
    score
        Column ranking the genes: ``"snr"`` (default: trend SD over the SD of the residual around the
        trend, robust to how noisy a gene is), ``"sd"`` (the paper's SD of the trend), ``"r2"``, or
        ``"max"`` (largest positive residual).
    min_sd
        Drop genes whose trend SD is below this (the paper's SD filter).
    require_peak_before_transition
        Keep only genes whose residual trend peaks (positive) before the cell-type transition.

    Returns
    -------
    DataFrame with ``score`` and ``rank`` (1 = strongest), sorted.
    """
    if score not in trends:
        raise AttuneInputError(f"score={score!r} not a column of the trend table; available: {list(trends.columns)}")
    df = trends.copy()
    df = df[df["sd"] >= min_sd]
    if require_peak_before_transition:
        df = df[df["peak_before_transition"]]
    df["score"] = df[score].astype(float)
    df = df.sort_values("score", ascending=False, kind="stable")
    df["rank"] = np.arange(1, len(df) + 1)
    return df
