"""Regulation shift of one gene along pseudotime (paper Fig. 4A-C, 4E; Methods "Soft cluster").

* :func:`gene_peaks` - the gene's peaks kept by attention (a gene-peak score table and a top fraction).
* :func:`fuzzy_cmeans`, :func:`mestimate` - fuzzy c-means (``skfuzzy.cmeans``) of standardised
  pseudo-bulk profiles, the number of clusters chosen on the minimum-centroid-distance curve, alpha cores.
* :func:`peak_soft_clusters` - the two above on a gene's peaks (Fig. 4A, 4C).
* :func:`transit_pattern` - the shared profiles of peak clusters and their co-occurring genes (Fig. 4E).

See ``docs/chromatin_potential.md``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._access import log_expression as _log_expression
from .._utils import AttuneInputError, get_modality, renamed_kwargs
from ._obs import group_codes as _group_codes
from ._obs import group_matrix as _group_matrix
from ._obs import is_mudata as _is_mudata
from ._obs import obs_column as _obs_column
from ._potential import (
    pseudobulk,
)

logger = logging.getLogger("attune_lib")

__all__ = [
    "gene_peaks",
    "mestimate",
    "fuzzy_cmeans",
    "peak_soft_clusters",
    "transit_pattern",
]


# --------------------------------------------------------------------------------------------------
# peaks kept by attention
# --------------------------------------------------------------------------------------------------
def check_score_table(scores: pd.DataFrame, cols: Sequence[str], what: str = "scores") -> None:
    if not isinstance(scores, pd.DataFrame):
        raise AttuneInputError(f"{what} must be a DataFrame with columns {list(cols)}, got {type(scores).__name__}")
    missing = [c for c in cols if c not in scores]
    if missing:
        raise AttuneInputError(f"{what}: missing column(s) {missing}; columns: {list(scores.columns)}")


def gene_peaks(scores: pd.DataFrame, *, gene: str, top_fraction: float = 0.1, score: str = "score",
               scope: str = "global") -> pd.DataFrame:
    """The gene's high-attention peaks from a gene-peak score table (paper: Gli3's 49 peaks).

    Parameters
    ----------
    scores
        DataFrame ``gene, peak, score`` (e.g. the global attention table of
        :meth:`attune_lib.models.RegulatoryTransformer.get_global_attention`, or correlations).
    gene
        The gene.
    top_fraction
        Fraction of pairs kept. ``scope="global"``: the top ``top_fraction`` of *all* pairs of the table
        (the paper's 10 % cut, Fig. 3C), then the gene's pairs among them; ``scope="gene"``: the top
        ``top_fraction`` of the gene's own pairs (at least one).
    score
        Score column (higher = stronger link).
    scope
        ``"global"`` or ``"gene"`` (see ``top_fraction``).

    Returns
    -------
    DataFrame ``gene, peak, score`` (+ other columns of the table) sorted by decreasing score, with ``rank``.
    """
    check_score_table(scores, ("gene", "peak", score))
    if scope not in ("global", "gene"):
        raise AttuneInputError(f"scope must be 'global' or 'gene', got {scope!r}")
    if not 0 < top_fraction <= 1:
        raise AttuneInputError(f"top_fraction must be in (0, 1], got {top_fraction}")
    mine = scores[scores["gene"].astype(str) == str(gene)]
    if mine.empty:
        raise AttuneInputError(f"gene {gene!r} has no row in the score table")
    vals = scores[score].to_numpy(dtype=float)
    if scope == "global":
        finite = np.sort(vals[np.isfinite(vals)])[::-1]
        n_keep = max(1, int(np.ceil(top_fraction * len(finite))))
        thr = finite[n_keep - 1]
        out = mine[mine[score].to_numpy(dtype=float) >= thr]
    else:
        n_keep = max(1, int(np.ceil(top_fraction * len(mine))))
        out = mine.sort_values(score, ascending=False, kind="stable").iloc[:n_keep]
    out = out.sort_values(score, ascending=False, kind="stable").copy()
    out["rank"] = np.arange(1, len(out) + 1)
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# fuzzy c-means
# --------------------------------------------------------------------------------------------------
def mestimate(n_features: int, n_dims: int) -> float:
    """Fuzzifier ``m`` for fuzzy c-means (Schwaemmle & Jensen 2010, Mfuzz ``mestimate``).

    ``m = 1 + (1418 / N + 22.05) D^-2 + (12.33 / N + 0.243) D^(-0.0406 ln N - 0.1134)`` for ``N`` features
    of dimension ``D``.

    Parameters
    ----------
    n_features
        Number of profiles clustered.
    n_dims
        Dimension of each profile (e.g. pseudo-bulk groups).
    """
    N, D = float(n_features), float(n_dims)
    if N < 2 or D < 1:
        raise AttuneInputError(f"mestimate needs >= 2 features and >= 1 dimension, got {n_features}, {n_dims}")
    return float(1 + (1418 / N + 22.05) * D ** -2 + (12.33 / N + 0.243) * D ** (-0.0406 * np.log(N) - 0.1134))


def _cmeans(data: np.ndarray, c: int, m: float, seed: int, error: float, maxiter: int):
    import skfuzzy

    cntr, u, _, _, jm, _, fpc = skfuzzy.cmeans(data.T, c, m, error=error, maxiter=maxiter, seed=seed)
    return cntr, u, float(jm[-1]), float(fpc)


def _min_center_distance(cntr: np.ndarray) -> float:
    from scipy.spatial.distance import pdist

    return float(pdist(cntr).min()) if len(cntr) > 1 else np.nan


def _elbow(x: np.ndarray, y: np.ndarray) -> int:
    """Index of the elbow of a decreasing curve: largest distance below the chord (kneedle on [0, 1]^2)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(y) < 3 or not (y[0] > y[-1]):
        return 0
    xn = (x - x[0]) / (x[-1] - x[0])
    yn = (y - y[-1]) / (y[0] - y[-1])
    return int(np.argmax((1.0 - xn) - yn))


def _choose_c(cs: np.ndarray, d: np.ndarray, tol: float) -> int:
    """Index of the chosen cluster number on the Dmin curve (see :func:`fuzzy_cmeans`)."""
    eps = 0.02 * max(float(np.nanmax(d)), 1e-12)  # 'duplicated' centroids: < 2 % of the largest Dmin
    for i in range(len(d)):
        if d[i] <= eps:  # duplicated centroids: the previous c was the last non-degenerate solution
            return max(i - 1, 0)
        if i + 1 < len(d) and (d[i] - d[i + 1]) / d[i] < tol:  # the curve stops falling
            return i
    return _elbow(cs, d)


def fuzzy_cmeans(profiles: pd.DataFrame, *, n_clusters: int | None = None, c_range: tuple[int, int] = (2, 20),
                 m: float | None = None, alpha: float = 0.5, n_repeats: int = 3, tol: float = 0.1, seed: int = 0,
                 error: float = 1e-5, maxiter: int = 1000) -> dict[str, Any]:
    """Fuzzy c-means of feature profiles (rows) with the cluster number chosen on the centroid-distance curve.

    **Cluster number** (Mfuzz's ``Dmin`` criterion, as the paper's "centroid distance plot"): for every
    ``c`` in ``c_range`` (capped at ``n_features - 1``), fuzzy c-means is run ``n_repeats`` times (seeds
    ``seed .. seed + n_repeats - 1``) and ``Dmin(c)`` = the mean over repeats of the minimum Euclidean
    distance between two cluster centroids. ``Dmin`` falls quickly while distinct patterns are still being
    separated and stops falling (or collapses to 0, i.e. duplicated centroids) once ``c`` exceeds the
    number of distinct patterns. Going up from the smallest ``c``, the chosen ``c`` is the first one whose
    ``Dmin`` falls by less than ``tol`` (10 %) at ``c + 1`` (where the curve levels off); if ``Dmin(c)`` is
    already ~0 (below 2 % of the curve's maximum), the previous ``c`` (the last solution without duplicated
    centroids). A curve that keeps falling gives its elbow (both axes rescaled to [0, 1], the point farthest
    below the chord from the first to the last point, kneedle).

    **Alpha cores**: features whose largest membership exceeds ``alpha`` (0.5) are the cluster's core
    members; clusters can have none (the paper discarded clusters 1 and 4 that way).

    Clusters are numbered 1..c by the position (column) of their centroid's maximum, so cluster 1 peaks
    earliest when columns are ordered pseudo-bulk groups.

    Parameters
    ----------
    profiles
        DataFrame features x dimensions, typically standardised pseudo-bulk profiles (see
        :func:`attune_lib.tl.pseudobulk`).
    n_clusters
        Use this ``c`` instead of choosing it.
    m
        Fuzzifier (default :func:`mestimate`).
    n_repeats
        Runs per ``c`` (Dmin is averaged; the final clustering keeps the run with the lowest objective).
    tol
        Relative decrease of ``Dmin`` below which the curve counts as levelled off.
    seed
        Seeds the random initialisations.
    c_range
        Smallest and largest ``c`` tried when ``n_clusters`` is None.
    alpha
        Membership above which a feature is in its cluster's core.
    error
        Convergence threshold of each fuzzy c-means run.
    maxiter
        Iteration cap of each run.

    Returns
    -------
    dict with ``clusters`` (DataFrame per feature: ``cluster``, ``membership``, ``core``), ``membership``
    (features x clusters), ``centers`` (clusters x dimensions), ``dmin`` (DataFrame ``c, dmin``, empty when
    ``n_clusters`` is given), ``n_clusters``, ``m``, ``fpc`` (fuzzy partition coefficient).
    """
    if not isinstance(profiles, pd.DataFrame):
        raise AttuneInputError("profiles must be a DataFrame (features x dimensions)")
    X = profiles.to_numpy(dtype=float)
    if not np.isfinite(X).all():
        raise AttuneInputError("profiles contain NaN or infinite values")
    n = X.shape[0]
    if n < 3:
        raise AttuneInputError(f"fuzzy clustering needs at least 3 features, got {n}")
    if not 0 < alpha < 1:
        raise AttuneInputError(f"alpha must be in (0, 1), got {alpha}")
    m = mestimate(n, X.shape[1]) if m is None else float(m)
    if not m > 1:
        raise AttuneInputError(f"m must be > 1, got {m}")
    dmin = pd.DataFrame(columns=["c", "dmin"])
    if n_clusters is None:
        lo, hi = int(c_range[0]), int(min(c_range[1], n - 1))
        if lo < 2 or hi < lo:
            raise AttuneInputError(f"c_range {c_range} is invalid for {n} features (need 2 <= c <= n - 1)")
        cs = np.arange(lo, hi + 1)
        d = [np.mean([_min_center_distance(_cmeans(X, int(c), m, seed + r, error, maxiter)[0])
                      for r in range(n_repeats)]) for c in cs]
        dmin = pd.DataFrame({"c": cs, "dmin": d})
        n_clusters = int(cs[_choose_c(cs, np.asarray(d, dtype=float), tol)])
    elif not 2 <= int(n_clusters) <= n - 1:
        raise AttuneInputError(f"n_clusters must be in [2, {n - 1}], got {n_clusters}")
    n_clusters = int(n_clusters)
    best = min((_cmeans(X, n_clusters, m, seed + r, error, maxiter) for r in range(n_repeats)), key=lambda t: t[2])
    cntr, u, _, fpc = best
    order = np.lexsort((np.arange(n_clusters), np.argmax(cntr, axis=1)))  # by the centroid's peak position
    cntr, u = cntr[order], u[order]
    labels = [f"{i + 1}" for i in range(n_clusters)]
    U = pd.DataFrame(u.T, index=profiles.index, columns=pd.Index(labels, name="cluster"))
    best_c = u.argmax(axis=0)
    clusters = pd.DataFrame({"cluster": pd.Categorical([labels[i] for i in best_c], categories=labels),
                             "membership": u.max(axis=0)}, index=profiles.index)
    clusters["core"] = clusters["membership"] > alpha
    centers = pd.DataFrame(cntr, index=pd.Index(labels, name="cluster"), columns=profiles.columns)
    return {"clusters": clusters, "membership": U, "centers": centers, "dmin": dmin, "n_clusters": n_clusters,
            "m": m, "alpha": float(alpha), "fpc": fpc, "profiles": profiles}


@renamed_kwargs(atac_key="atac_mod")
def peak_soft_clusters(mdata, *, peaks: Sequence[str], groupby: str = "pt_group", atac_mod: str = "atac",
                       layer: str | None = None, n_clusters: int | None = None, c_range: tuple[int, int] = (2, 20),
                       m: float | None = None, alpha: float = 0.5, seed: int = 0,
                       key_added: str | None = "peak_clusters") -> dict[str, Any]:
    """Soft clustering of a gene's peaks on standardised pseudo-bulk accessibility (Fig. 4A, 4C).

    Pseudo-bulk accessibility per group of ``groupby`` (counts per million of the group's counts, see
    :func:`attune_lib.tl.pseudobulk`), standardised per peak; peaks that are constant across groups
    (e.g. never detected) are dropped with a warning; then :func:`fuzzy_cmeans`.

    Returns the :func:`fuzzy_cmeans` dict (also stored in ``mdata[atac_mod].uns[key_added]`` unless
    ``key_added`` is None).

    Parameters
    ----------
    mdata
        MuData with the ATAC modality and ``obs[groupby]``.
    peaks
        Peaks to cluster (e.g. from :func:`gene_peaks`).
    groupby
        obs column with the pseudo-bulk groups (:func:`attune_lib.tl.pseudobulk_groups`).
    atac_mod
        ATAC modality name.
    layer
        ATAC counts (None: ``counts`` when present, else ``.X``).
    n_clusters
        Number of clusters (None: chosen, see :func:`fuzzy_cmeans`).
    c_range
        Range of ``c`` tried when choosing.
    m
        Fuzzifier (None: :func:`mestimate`).
    alpha
        Membership threshold of the cluster cores.
    seed
        Seeds the initialisations.
    key_added
        ``mdata[atac_mod].uns`` key of the result (None: only return).
    """
    atac = get_modality(mdata, atac_mod, role="ATAC") if _is_mudata(mdata) else mdata
    peaks = list(dict.fromkeys(str(p) for p in peaks))
    prof = pseudobulk(mdata, groupby=groupby, modality=atac_mod, layer=layer, features=peaks, standardize=False)
    keep = prof.std(axis=1) > 0
    if (~keep).any():
        warnings.warn(f"{int((~keep).sum())} peak(s) constant across {groupby!r} groups dropped before clustering",
                      UserWarning, stacklevel=2)
    prof = prof[keep]
    Z = prof.sub(prof.mean(axis=1), axis=0).div(prof.std(axis=1, ddof=1), axis=0)
    res = fuzzy_cmeans(Z, n_clusters=n_clusters, c_range=c_range, m=m, alpha=alpha, seed=seed)
    res["groupby"] = groupby
    if key_added is not None:
        atac.uns[key_added] = res
    return res


@renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
def transit_pattern(mdata, *, peak_groups: Mapping[str, Sequence[str]], gene_groups: Mapping[str, Sequence[str]],
                    groupby: str = "pt_group", rna_mod: str = "rna", atac_mod: str = "atac",
                    rna_layer: str | None = None, atac_layer: str | None = None) -> pd.DataFrame:
    """Standardised pseudo-bulk profiles of each cluster's peaks and co-occurring genes (Fig. 4E).

    Parameters
    ----------
    mdata
        MuData with the modalities and ``obs[groupby]``.
    peak_groups
        ``{cluster: peak names}``.
    gene_groups
        ``{cluster: gene names}`` (e.g. the co-occurring genes).
    groupby
        obs column with the pseudo-bulk groups.
    rna_mod
        RNA modality name.
    atac_mod
        ATAC modality name.
    rna_layer
        RNA layer with log-normalised expression (None: ``.X``).
    atac_layer
        ATAC counts (None: ``counts`` when present, else ``.X``).

    Returns
    -------
    DataFrame (rows: features; MultiIndex ``cluster, kind ("peak"/"gene"), feature``; columns: groups).
    """
    blocks = []
    for name in peak_groups:
        pk = [str(p) for p in peak_groups[name]]
        ge = [str(g) for g in gene_groups.get(name, [])]
        if pk:
            P = pseudobulk(mdata, groupby=groupby, modality=atac_mod, layer=atac_layer, features=pk)
            P.index = pd.MultiIndex.from_tuples([(str(name), "peak", p) for p in P.index],
                                                names=["cluster", "kind", "feature"])
            blocks.append(P)
        if ge:
            G = rna_group_profiles(mdata, groupby=groupby, rna_mod=rna_mod, rna_layer=rna_layer, genes=ge)
            G = G.sub(G.mean(axis=1), axis=0).div(G.std(axis=1, ddof=1).replace(0, 1), axis=0)
            G.index = pd.MultiIndex.from_tuples([(str(name), "gene", g) for g in G.index],
                                                names=["cluster", "kind", "feature"])
            blocks.append(G)
    if not blocks:
        raise AttuneInputError("no peaks or genes given")
    return pd.concat(blocks)


@renamed_kwargs(rna_key="rna_mod")
def rna_group_profiles(mdata, *, groupby: str, rna_mod: str, rna_layer: str | None,
                  genes: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean log-normalised expression per group (genes x groups); counts are log-normalised per cell first."""
    rna = get_modality(mdata, rna_mod, role="RNA")
    where = f"mdata[{rna_mod!r}]"
    gidx = np.arange(rna.n_vars) if genes is None else rna.var_names.get_indexer([str(g) for g in genes])
    if (gidx < 0).any():
        raise AttuneInputError(f"{int((gidx < 0).sum())} gene(s) not in {where}.var_names")
    Y = _log_expression(rna, rna_layer, where)[:, gidx]
    g = _obs_column(mdata, groupby, what="groupby").reindex(rna.obs_names)
    codes, cats = _group_codes(mdata, groupby)
    codes = np.asarray(pd.Categorical(g, categories=cats).codes)
    G = _group_matrix(codes, len(cats))
    n = np.asarray(G.sum(axis=1)).ravel()
    n[n == 0] = 1.0
    M = (G @ Y) / n[:, None]
    return pd.DataFrame(
        M.T, index=rna.var_names[gidx].astype(str), columns=pd.Index([str(c) for c in cats], name=groupby)
    )
