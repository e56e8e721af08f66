"""Scoring gene-peak link tables (paper Fig. 3A-C, 3F).

* AUROC / AUPRC of any score over the candidate pairs, overall, by distance bin and over windows
  (:func:`score_links`, :func:`window_sweep`), and what a score's structure says (:func:`link_score_structure`);
* baselines on the same pairs (:func:`link_baselines`): distance, Spearman correlation and per-gene LASSO on
  kNN metacells, a Cicero-like distance-penalised co-accessibility, GLUE feature-embedding cosine;
* the top-fraction / elbow cut of the ranked pairs (:func:`select_links`, :func:`attention_cutoffs`) and the
  per-cell-type matrices of Fig. 3F (:func:`link_heatmap_data`).

Conventions: a *link table* is a DataFrame with ``gene``, ``peak``, ``distance`` (bp between the peak
midpoint and the gene's TSS) and one column per score (higher = more likely a regulatory link).
Candidate pairs come from :func:`attune_lib._genomics.gene_peak_pairs`. See ``docs/regulatory.md``.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .._genomics import gene_peak_pairs  # the coordinates live in attune_lib._genomics, shared with the models
from .._genomics import peak_coords as _peak_coords
from .._utils import AttuneInputError, as_csr, get_modality, progress, renamed_kwargs
from ._metacells import aggregation_matrix, knn_metacells, paired_column_dots, standardise_columns
from ._obs import group_labels
from ._peers import PeerNotAvailable

logger = logging.getLogger("attune_lib")

__all__ = [
    "label_links",
    "add_link_scores",
    "score_links",
    "window_sweep",
    "link_score_structure",
    "glue_feature_embeddings",
    "link_baselines",
    "elbow_point",
    "attention_cutoffs",
    "select_links",
    "link_heatmap_data",
]


_PAIR_COLS = ("gene", "peak", "distance", "gene_idx", "peak_idx", "label", "pchic")


# --------------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------------
def label_links(links: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    """Boolean array: is each (gene, peak) of ``links`` in ``truth`` (DataFrame with ``gene``, ``peak``).

    Parameters
    ----------
    links
        Link table with ``gene`` and ``peak``.
    truth
        True pairs, a DataFrame with ``gene`` and ``peak``.
    """
    for df, name in ((links, "links"), (truth, "truth")):
        if not {"gene", "peak"} <= set(df.columns):
            raise AttuneInputError(f"{name} needs 'gene' and 'peak' columns")
    key = pd.MultiIndex.from_arrays([truth["gene"].astype(str), truth["peak"].astype(str)])
    q = pd.MultiIndex.from_arrays([links["gene"].astype(str), links["peak"].astype(str)])
    return q.isin(key)


def add_link_scores(links: pd.DataFrame, other: pd.DataFrame, *, column: str = "score",
                    name: str | None = None) -> pd.DataFrame:
    """Left-join ``other[column]`` onto ``links`` by (gene, peak) as column ``name`` (NaN where absent).

    Parameters
    ----------
    links
        Link table with ``gene`` and ``peak``.
    other
        Table with ``gene``, ``peak`` and ``column``.
    column
        Column of ``other`` to add.
    name
        Name of the new column (None: ``column``).
    """
    if column not in other:
        raise AttuneInputError(f"column {column!r} not in the table to add; available: {list(other.columns)}")
    name = name or column
    o = other[["gene", "peak", column]].drop_duplicates(["gene", "peak"]).rename(columns={column: name})
    base = links.drop(columns=[name]) if name in links else links
    return base.merge(o, on=["gene", "peak"], how="left")


def _score_columns(links: pd.DataFrame, methods) -> list[str]:
    if methods is None:
        return [c for c in links.columns if c not in _PAIR_COLS and pd.api.types.is_numeric_dtype(links[c])
                and not pd.api.types.is_bool_dtype(links[c])]
    methods = [methods] if isinstance(methods, str) else list(methods)
    bad = [m for m in methods if m not in links]
    if bad:
        raise AttuneInputError(f"score column(s) {bad} not in the link table; available: {list(links.columns)}")
    return methods


def link_truth_labels(links: pd.DataFrame, truth) -> np.ndarray:
    if isinstance(truth, str):
        if truth not in links:
            raise AttuneInputError(f"truth column {truth!r} not in the link table")
        return links[truth].to_numpy(dtype=bool)
    if isinstance(truth, pd.DataFrame):
        return label_links(links, truth)
    y = np.asarray(truth, dtype=bool)
    if y.shape != (len(links),):
        raise AttuneInputError(f"truth labels have shape {y.shape}, expected ({len(links)},)")
    return y


def _auc(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    if y.all() or not y.any():
        return np.nan, np.nan
    return float(roc_auc_score(y, s)), float(average_precision_score(y, s))


def _fill(s: np.ndarray) -> tuple[np.ndarray, int]:
    s = np.asarray(s, dtype=float)
    bad = ~np.isfinite(s)
    if bad.any():
        fin = s[~bad]
        s = s.copy()
        s[bad] = (fin.min() - 1.0) if fin.size else 0.0
    return s, int(bad.sum())


def score_links(links: pd.DataFrame, truth, *, methods: Sequence[str] | str | None = None,
                distance_bins: Sequence[float] | None = None) -> pd.DataFrame:
    """AUROC and AUPRC (scikit-learn) of each score column against the truth, over the candidate pairs.

    Parameters
    ----------
    links
        Link table (``gene, peak, distance`` + score columns). Every row is a candidate.
    truth
        DataFrame of true pairs (``gene, peak``; e.g. :func:`pchic_truth`), the name of a boolean column of
        ``links``, or a boolean array.
    methods
        Score columns (default: every numeric column but ``distance`` and indices). Missing or infinite
        scores count as the lowest (reported in ``n_missing``).
    distance_bins
        Bin edges in bp; adds one row per method and bin (``bin`` = ``"[lo, hi)"``), labelled ``"all"``
        for the whole set.

    Returns
    -------
    DataFrame ``method, bin, auroc, auprc, auroc_distance_matched, n_pairs, n_pos, pos_rate, n_missing``.
    ``auroc_distance_matched`` (row ``"all"`` only, needs ``distance``): the mean AUROC within 10
    distance strata of equal numbers of true pairs (:func:`attune_lib.metrics.distance_matched_auroc`),
    i.e. what a score adds to proximity.
    """
    from ..metrics._links import distance_matched_auroc

    y = link_truth_labels(links, truth)
    cols = _score_columns(links, methods)
    bins = [("all", np.ones(len(links), dtype=bool))]
    if distance_bins is not None:
        if "distance" not in links:
            raise AttuneInputError("distance_bins needs a 'distance' column in the link table")
        edges = np.asarray(distance_bins, dtype=float)
        d = links["distance"].to_numpy(dtype=float)
        for lo, hi in itertools.pairwise(edges):
            bins.append((f"[{lo / 1e3:g}, {hi / 1e3:g}) kb", (d >= lo) & (d < hi)))
    rows = []
    for m in cols:
        s, n_miss = _fill(links[m].to_numpy())
        for label, sel in bins:
            au, ap = _auc(y[sel], s[sel])
            dm = (distance_matched_auroc(y, s, links["distance"].to_numpy(dtype=float))
                  if label == "all" and "distance" in links and y.any() else np.nan)
            rows.append({"method": m, "bin": label, "auroc": au, "auprc": ap, "auroc_distance_matched": dm,
                         "n_pairs": int(sel.sum()),
                         "n_pos": int(y[sel].sum()), "pos_rate": float(y[sel].mean()) if sel.any() else np.nan,
                         "n_missing": int((~np.isfinite(links[m].to_numpy(dtype=float)[sel])).sum())
                         if n_miss else 0})
    return pd.DataFrame(rows)


def window_sweep(links: pd.DataFrame, truth, *, windows: Sequence[float] | None = None,
                 methods: Sequence[str] | None = None) -> pd.DataFrame:
    """AUROC/AUPRC of each method over the candidates within each window (Supp. Fig. S4a).

    ``links`` should hold the candidates of the largest window. A method with missing scores among a
    window's candidates (e.g. the transformer trained with a smaller window) gets NaN for that window.

    Parameters
    ----------
    windows
        Window half-widths in bp (default 150 kb to 1,500 kb by 150 kb).
    links
        Candidate table of the largest window (``distance`` and one column per method).
    truth
        True pairs: a DataFrame ``gene, peak``, a boolean column name or a boolean array.
    methods
        Score columns (None: every score column).

    Returns
    -------
    DataFrame ``window_kb, method, auroc, auprc, n_pairs, n_pos``.
    """
    windows = np.arange(150_000, 1_500_001, 150_000) if windows is None else np.asarray(windows, dtype=float)
    if "distance" not in links:
        raise AttuneInputError("window_sweep needs a 'distance' column in the link table")
    y = link_truth_labels(links, truth)
    cols = _score_columns(links, methods)
    d = links["distance"].to_numpy(dtype=float)
    rows = []
    for w in windows:
        sel = d <= w
        for m in cols:
            s = links[m].to_numpy(dtype=float)[sel]
            au, ap = _auc(y[sel], s) if np.isfinite(s).all() else (np.nan, np.nan)
            rows.append({"window_kb": w / 1e3, "method": m, "auroc": au, "auprc": ap, "n_pairs": int(sel.sum()),
                         "n_pos": int(y[sel].sum())})
    return pd.DataFrame(rows)


def link_score_structure(links: pd.DataFrame, *, score: str = "score", distance: str = "distance") -> dict:
    """How much of a link score is a gene effect times a peak effect, and how much is distance.

    A pair-specific score (one that can say *which* of a gene's peaks regulate it) must not be
    explained by per-gene and per-peak marginals alone. The paper's global attention score is, per cell,
    an outer product of a gene-only and a peak-only factor, so summed over cells it tends to be close
    to ``gene_mean x peak_mean``. This diagnostic measures that.

    Parameters
    ----------
    links
        Table with ``gene``, ``peak``, the ``score`` column and (optionally) ``distance``.
    score, distance
        Column names.

    Returns
    -------
    dict
        ``rank1_spearman``: Spearman between the score and the product of its per-gene and per-peak means
        (1 = a pure gene x peak product: within every gene, peaks rank the same way).
        ``within_gene_spearman``: per gene with 3 or more pairs, Spearman between the score and each
        peak's mean score over all genes, averaged over genes. It is 1 when every gene ranks its window
        peaks in the same global peak order, which is the order that matters for links.
        ``distance_spearman``: Spearman between the score and the negative distance (NaN without a
        distance column). ``n_pairs``.
    """
    for col in ("gene", "peak", score):
        if col not in links:
            raise AttuneInputError(f"link_score_structure: the link table has no {col!r} column")
    tab = links[["gene", "peak", score] + ([distance] if distance in links else [])].dropna(subset=[score])
    if len(tab) < 3:
        raise AttuneInputError(f"link_score_structure: needs at least 3 scored pairs, got {len(tab)}")
    s = tab[score].to_numpy(dtype=float)
    peak_mean = tab.groupby("peak")[score].transform("mean").to_numpy(dtype=float)
    rank1 = float(spearmanr(s, tab.groupby("gene")[score].transform("mean").to_numpy() * peak_mean).statistic)
    # within-gene agreement between the score and the peak marginal
    per_gene = [spearmanr(s[idx], peak_mean[idx]).statistic for idx in tab.groupby("gene").indices.values()
                if len(idx) >= 3 and np.ptp(s[idx]) > 0 and np.ptp(peak_mean[idx]) > 0]
    within = float(np.mean(per_gene)) if per_gene else float("nan")
    dist = float(spearmanr(s, -tab[distance].astype(float)).statistic) if distance in tab else float("nan")
    return {"rank1_spearman": rank1, "within_gene_spearman": within, "distance_spearman": dist,
            "n_pairs": int(len(tab))}


def _lasso_scores(Zr: np.ndarray, Za: np.ndarray, gi: np.ndarray, pi: np.ndarray, n_alphas: int,
                  progress_bar: bool) -> np.ndarray:
    """Per gene, the LASSO path of expression on its window peaks; score = (alpha at which the peak enters
    / alpha_max) x sign of its coefficient there (0 if it never enters)."""
    from sklearn.linear_model import lasso_path

    out = np.zeros(len(gi))
    starts = np.flatnonzero(np.r_[True, gi[1:] != gi[:-1]])
    ends = np.r_[starts[1:], len(gi)]
    M = Zr.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings at the smallest alphas
        for st, en in progress(list(zip(starts, ends)), enabled=progress_bar, desc="LASSO", unit="gene"):
            y = Zr[:, gi[st]] * np.sqrt(M)
            X = Za[:, pi[st:en]] * np.sqrt(M)
            if not np.any(y) or not np.any(X):
                continue
            alphas, coefs, _ = lasso_path(X, y, n_alphas=n_alphas, eps=1e-3)
            nz = coefs != 0
            entered = nz.any(1)
            first = np.argmax(nz, axis=1)
            val = alphas[first] / alphas[0] * np.sign(coefs[np.arange(len(first)), first])
            out[st:en] = np.where(entered, val, 0.0)
    return out


def _cicero_scores(Za: np.ndarray, gi: np.ndarray, pi: np.ndarray, dist: np.ndarray, mid: np.ndarray,
                   promoter_bp: int, alpha: float) -> np.ndarray:
    """Max over the gene's promoter peaks of ``corr(promoter peak, peak) - alpha (1 - (d / 1 kb)^-0.75)``."""
    out = np.full(len(gi), np.nan)
    is_prom = dist <= promoter_bp
    starts = np.flatnonzero(np.r_[True, gi[1:] != gi[:-1]])
    ends = np.r_[starts[1:], len(gi)]
    for st, en in zip(starts, ends):
        pr = pi[st:en][is_prom[st:en]]
        if not len(pr):
            continue
        cand = pi[st:en]
        r = Za[:, pr].T @ Za[:, cand]  # n_prom x n_cand correlations
        d = np.abs(mid[pr][:, None] - mid[cand][None, :]).astype(float)
        pen = alpha * (1.0 - np.power(np.maximum(d, 1000.0) / 1000.0, -0.75))
        out[st:en] = (r - pen).max(0)
    return out


@renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
def glue_feature_embeddings(mdata, *, rna_mod: str = "rna", atac_mod: str = "atac", rna_layer: str | None = "counts",
                            atac_layer: str | None = "counts", n_latent: int = 50, max_epochs: int = 30,
                            n_comps: int = 50, seed: int = 0, progress_bar: bool = False) -> pd.DataFrame:
    """Train scglue's ``PairedSCGLUEModel`` and return its feature embeddings (``model.encode_graph``).

    Same set-up as :func:`attune_lib.tl._peers.run_glue` (guidance graph from
    :func:`~attune_lib.tl._peers.glue_guidance_graph`, NB decoders on counts, PCA/LSI encoders' inputs),
    capped at ``max_epochs`` per stage (a thin wrapper over ``run_glue(..., return_features=True)``).
    Raises :class:`~attune_lib.tl._peers.PeerNotAvailable` when scglue is not installed.

    Parameters
    ----------
    mdata
        MuData with raw counts and coordinates.
    rna_mod
        RNA modality name.
    atac_mod
        ATAC modality name.
    rna_layer
        RNA count layer.
    atac_layer
        ATAC count layer.
    n_latent
        Embedding dimension.
    max_epochs
        Cap on the epochs of each stage.
    n_comps
        PCA / LSI components fed to the encoders.
    seed
        Seed of scglue.
    progress_bar
        Show scglue's progress output.

    Returns
    -------
    DataFrame ``features x n_latent`` indexed by gene and peak names.
    """
    from ._peers import paired_modalities, run_glue

    rna, atac = paired_modalities(mdata, rna_mod, atac_mod)
    out = run_glue(mdata, seed=seed, n_latent=n_latent, max_epochs=max_epochs, n_comps=n_comps,
                   rna_mod=rna_mod, atac_mod=atac_mod,
                   rna_layer=rna_layer if rna_layer in rna.layers else None,
                   atac_layer=atac_layer if atac_layer in atac.layers else None,
                   progress_bar=progress_bar, return_features=True)
    return out["features"]


@renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
def link_baselines(mdata, *, window_bp: float = 1_200_000,
                   methods: Sequence[str] = ("distance", "spearman", "lasso", "cicero"),
                   rna_mod: str = "rna", atac_mod: str = "atac", rna_layer: str | None = "counts",
                   atac_layer: str | None = "counts", use_rep: str = "X_pca", n_metacells: int | None = None,
                   n_neighbors: int | None = None, promoter_bp: int = 2000, cicero_alpha: float = 0.25,
                   lasso_alphas: int = 30, glue_embeddings: pd.DataFrame | None = None,
                   glue_kwargs: Mapping | None = None, seed: int = 0, progress_bar: bool = False,
                   key_added: str = "link_baselines") -> None:
    """Baseline gene-peak scores over the candidate pairs, written to ``mdata.uns[key_added]``.

    Methods (higher = more likely linked):

    * ``distance`` (column ``distance_only``): ``-distance`` (TSS to peak midpoint);
    * ``spearman``: Spearman correlation of gene expression and peak accessibility over kNN metacells;
    * ``lasso``: per gene, the LASSO path of its (standardised) metacell expression on its window peaks;
      score = ``alpha_enter / alpha_max`` times the sign of the coefficient when the peak enters
      (0 if it never does), so every candidate is ranked, not only the non-zero ones;
    * ``cicero``: Cicero-like: max over the gene's promoter peaks (midpoint within ``promoter_bp`` of the
      TSS) of the metacell Pearson co-accessibility with the candidate minus Cicero's distance penalty
      ``cicero_alpha (1 - (d / 1 kb)^-0.75)`` (``d`` = promoter-peak to peak distance); genes without a
      promoter peak get the lowest score;
    * ``glue``: cosine of GLUE feature embeddings (``glue_embeddings``, or trained with
      :func:`glue_feature_embeddings` when scglue is installed; skipped with a log message otherwise).

    Metacells: ``n_metacells`` random cells (default ``min(500, max(20, n / 5))``), each summing the counts
    of its ``n_neighbors`` nearest cells on ``rna.obsm[use_rep]`` (default ``X_pca`` from
    :func:`attune_lib.pp.preprocess`), normalised to 10^4 and log1p.

    Writes a link table ``gene, peak, distance, gene_idx, peak_idx, <method>...`` to ``mdata.uns[key_added]``.

    Parameters
    ----------
    mdata
        MuData with gene and peak coordinates and counts.
    window_bp
        Half-width of the window around each TSS (bp).
    methods
        Baselines to compute (see above).
    rna_mod
        RNA modality name.
    atac_mod
        ATAC modality name.
    rna_layer
        RNA count layer.
    atac_layer
        ATAC count layer.
    use_rep
        ``rna.obsm`` key the metacell neighbours are found in.
    n_metacells
        Number of metacells (None: ``min(500, max(20, n / 5))``).
    n_neighbors
        Cells summed per metacell (None: chosen from the number of cells).
    promoter_bp
        Distance of a promoter peak's midpoint to the TSS (``cicero``).
    cicero_alpha
        Weight of Cicero's distance penalty.
    lasso_alphas
        Number of alphas on each gene's LASSO path.
    glue_embeddings
        GLUE feature embeddings for ``glue`` (None: trained when scglue is installed).
    glue_kwargs
        Arguments of :func:`glue_feature_embeddings` when they are trained here.
    seed
        Seeds the metacells and GLUE.
    progress_bar
        Show progress bars.
    key_added
        ``mdata.uns`` key of the table.
    """
    known = ("distance", "spearman", "lasso", "cicero", "glue")
    methods = [methods] if isinstance(methods, str) else list(methods)
    bad = [m for m in methods if m not in known]
    if bad:
        raise AttuneInputError(f"methods {bad} unknown; choose from {known}")
    if not isinstance(key_added, str) or not key_added:
        raise AttuneInputError(f"key_added must be a non-empty string, got {key_added!r}")
    pairs = gene_peak_pairs(mdata, window_bp=window_bp, rna_mod=rna_mod, atac_mod=atac_mod)
    if not len(pairs):
        raise AttuneInputError(f"no annotated gene-peak pairs within window_bp={window_bp}")
    gi, pi = pairs["gene_idx"].to_numpy(), pairs["peak_idx"].to_numpy()
    out = pairs.copy()
    if "distance" in methods:
        out["distance_only"] = -pairs["distance"].to_numpy(dtype=float)
    if {"spearman", "lasso", "cicero"} & set(methods):
        R, A = knn_metacells(mdata, rna_mod=rna_mod, atac_mod=atac_mod, rna_layer=rna_layer, atac_layer=atac_layer,
                          use_rep=use_rep, n_metacells=n_metacells, n_neighbors=n_neighbors, seed=seed)
        if "spearman" in methods:
            from scipy.stats import rankdata

            Rr, Ar = standardise_columns(rankdata(R, axis=0)), standardise_columns(rankdata(A, axis=0))
            out["spearman"] = paired_column_dots(Rr, Ar, gi, pi)
        Zr, Za = standardise_columns(R), standardise_columns(A)
        if "lasso" in methods:
            out["lasso"] = _lasso_scores(Zr, Za, gi, pi, int(lasso_alphas), progress_bar)
        if "cicero" in methods:
            atac = get_modality(mdata, atac_mod)
            _, ps, pe = _peak_coords(atac.var)
            c = _cicero_scores(Za, gi, pi, pairs["distance"].to_numpy(), (ps + pe) // 2, int(promoter_bp),
                               float(cicero_alpha))
            c[np.isnan(c)] = -1.0 - float(cicero_alpha)  # no promoter peak: below every possible score
            out["cicero"] = c
    if "glue" in methods:
        emb = glue_embeddings
        if emb is None:
            try:
                emb = glue_feature_embeddings(mdata, rna_mod=rna_mod, atac_mod=atac_mod, seed=seed,
                                              **dict(glue_kwargs or {}))
            except PeerNotAvailable as err:
                logger.info("link_baselines: skipping the GLUE baseline (%s)", err)
        if emb is not None:
            E = emb.reindex(pd.Index(pairs["gene"])).to_numpy(dtype=float)
            P = emb.reindex(pd.Index(pairs["peak"])).to_numpy(dtype=float)
            nrm = np.linalg.norm(E, axis=1) * np.linalg.norm(P, axis=1)
            out["glue"] = np.where(nrm > 0, (E * P).sum(1) / np.where(nrm > 0, nrm, 1), np.nan)
    mdata.uns[key_added] = out


# --------------------------------------------------------------------------------------------------
# cutoffs, DPAGs
# --------------------------------------------------------------------------------------------------
def elbow_point(values: Sequence[float]) -> int:
    """Elbow of a descending curve: the index of maximal distance to the chord (kneedle on [0, 1]^2).

    ``values`` are sorted in decreasing order first; both axes are rescaled to [0, 1] and the point
    farthest below the straight line from the first to the last point is returned (0-based index, so
    ``index + 1`` values lie at or above the elbow).

    Parameters
    ----------
    values
        Scores (sorted in decreasing order here).
    """
    y = np.sort(np.asarray(values, dtype=float))[::-1]
    y = y[np.isfinite(y)]
    n = len(y)
    if n < 3:
        return max(n - 1, 0)
    x = np.linspace(0.0, 1.0, n)
    span = y[0] - y[-1]
    if span <= 0:
        return 0
    yn = (y - y[-1]) / span
    # chord from (0, 1) to (1, 0): distance ∝ (1 - x) - yn  (convex decreasing curve lies below it)
    return int(np.argmax((1.0 - x) - yn))


def attention_cutoffs(scores: Sequence[float], *, top_fraction: float = 0.1) -> dict:
    """The top-``top_fraction`` cut and the elbow of the ranked scores (Fig. 3C).

    Parameters
    ----------
    scores
        Scores of all pairs.
    top_fraction
        Fraction of top pairs kept by the top cut.

    Returns
    -------
    dict ``n_pairs, top_n, top_threshold, elbow_n, elbow_threshold, elbow_fraction``.
    """
    if not 0 < top_fraction <= 1:
        raise AttuneInputError(f"top_fraction must be in (0, 1], got {top_fraction}")
    s = np.sort(np.asarray(scores, dtype=float)[np.isfinite(np.asarray(scores, dtype=float))])[::-1]
    n = len(s)
    if n == 0:
        raise AttuneInputError("no finite scores")
    top_n = max(1, int(np.ceil(top_fraction * n)))
    e = elbow_point(s)
    return {"n_pairs": n, "top_n": top_n, "top_threshold": float(s[top_n - 1]), "elbow_n": e + 1,
            "elbow_threshold": float(s[e]), "elbow_fraction": (e + 1) / n}


def select_links(links: pd.DataFrame, *, score: str = "score", top_fraction: float = 0.1,
                 cutoff: str = "top") -> pd.DataFrame:
    """The highest-scoring pairs: the top ``top_fraction`` (``cutoff="top"``, the paper's 10 %) or those at or
    above the elbow (``cutoff="elbow"``). Returns the selected rows sorted by decreasing score, with ``rank``.

    Parameters
    ----------
    links
        Link table.
    score
        Column ranking the pairs.
    top_fraction
        Fraction kept with ``cutoff="top"``.
    cutoff
        ``"top"`` or ``"elbow"``.
    """
    if score not in links:
        raise AttuneInputError(f"score column {score!r} not in the link table; available: {list(links.columns)}")
    if cutoff not in ("top", "elbow"):
        raise AttuneInputError(f"cutoff must be 'top' or 'elbow', got {cutoff!r}")
    df = links[np.isfinite(links[score].to_numpy(dtype=float))].sort_values(score, ascending=False, kind="stable")
    info = attention_cutoffs(df[score].to_numpy(), top_fraction=top_fraction)
    n = info["top_n"] if cutoff == "top" else info["elbow_n"]
    out = df.iloc[:n].copy()
    out["rank"] = np.arange(1, n + 1)
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# heatmap data (Fig. 3F)
# --------------------------------------------------------------------------------------------------
@renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
def link_heatmap_data(mdata, links: pd.DataFrame, *, groupby: str = "cell_type", n_pairs: int | None = 40,
                      rna_mod: str = "rna", atac_mod: str = "atac", rna_layer: str | None = None,
                      atac_layer: str | None = "counts", scale: bool = True) -> dict[str, pd.DataFrame]:
    """Per-group mean expression of each pair's gene and mean accessibility of its peak (Fig. 3F).

    ``links`` (e.g. the selected DPAG pairs, best first) gives the rows; the first ``n_pairs`` are kept.
    ATAC values are normalised to 10^4 per cell and log1p. With ``scale``, each row is z-scored across
    groups. Rows are ordered by the group of maximal expression, then by that maximum.

    Parameters
    ----------
    mdata
        MuData with the groups in ``obs``.
    links
        Pairs to show (best first), with ``gene`` and ``peak``.
    groupby
        obs column with the groups.
    n_pairs
        Number of pairs kept (None: all).
    rna_mod
        RNA modality name.
    atac_mod
        ATAC modality name.
    rna_layer
        RNA layer with log-normalised expression (None: ``.X``).
    atac_layer
        ATAC count layer.
    scale
        z-score each row across groups.

    Returns
    -------
    dict ``{"rna": pairs x groups, "atac": pairs x groups}``, index ``"gene | peak"``.
    """
    rna = get_modality(mdata, rna_mod, role="RNA")
    atac = get_modality(mdata, atac_mod, role="ATAC")
    lab = group_labels(mdata, rna, groupby)
    groups = list(lab.cat.categories) if isinstance(lab.dtype, pd.CategoricalDtype) else sorted(lab.unique())
    lab = lab.astype(str).to_numpy()
    df = links.head(n_pairs) if n_pairs else links
    if not len(df):
        raise AttuneInputError("no links to show")
    gi = rna.var_names.get_indexer(df["gene"].astype(str))
    pi = atac.var_names.get_indexer(df["peak"].astype(str))
    if (gi < 0).any() or (pi < 0).any():
        raise AttuneInputError("links name genes/peaks absent from the modalities")
    Xr = as_csr(rna.X if rna_layer is None else rna.layers[rna_layer], dtype=np.float64)[:, gi].toarray()
    Xa_all = aggregation_matrix(atac, atac_layer, f"mdata[{atac_mod!r}]")
    tot = np.asarray(Xa_all.sum(1)).ravel()
    Xa = Xa_all[:, pi].toarray() / np.maximum(tot, 1e-12)[:, None] * 1e4
    Xa = np.log1p(Xa)
    groups = [str(g) for g in groups if (lab == str(g)).any()]
    mr = np.stack([Xr[lab == g].mean(0) for g in groups], axis=1)
    ma = np.stack([Xa[lab == g].mean(0) for g in groups], axis=1)

    def z(m):
        if not scale:
            return m
        sd = m.std(1, keepdims=True)
        return np.divide(m - m.mean(1, keepdims=True), sd, out=np.zeros_like(m), where=sd > 0)

    mr, ma = z(mr), z(ma)
    order = np.lexsort((-mr.max(1), mr.argmax(1)))
    idx = [f"{g} | {p}" for g, p in zip(df["gene"].astype(str), df["peak"].astype(str))]
    idx = [idx[i] for i in order]
    return {"rna": pd.DataFrame(mr[order], index=idx, columns=groups),
            "atac": pd.DataFrame(ma[order], index=idx, columns=groups)}
