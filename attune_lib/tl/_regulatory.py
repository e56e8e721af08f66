"""Regulatory inference tools (paper Fig. 3A-F, Supp. Fig. S4a).

* candidate gene-peak pairs inside a window around each annotated gene's TSS (:func:`gene_peak_pairs`);
* the PCHi-C truth set with GLUE's rules (:func:`pchic_truth`);
* AUROC / AUPRC of any score over the candidates, overall, by distance bin and over windows
  (:func:`score_links`, :func:`window_sweep`);
* baselines on the same pairs (:func:`link_baselines`): distance, Spearman correlation and per-gene LASSO on
  kNN metacells, a Cicero-like distance-penalised co-accessibility, GLUE feature-embedding cosine;
* downstream: top-fraction / elbow cut of the ranked pairs, DPAGs, DE genes and their overlap, GO-style
  over-representation (:func:`select_links`, :func:`find_dpags`, :func:`differential_genes`,
  :func:`dpag_de_overlap`, :func:`enrichment`), and the per-cell-type matrices of Fig. 3F
  (:func:`link_heatmap_data`).

Conventions: a *link table* is a DataFrame with ``gene``, ``peak``, ``distance`` (bp between the peak
midpoint and the gene's TSS) and one column per score (higher = more likely a regulatory link).
Chromosome names are compared with a ``chr`` prefix (added when missing, as in the Javierre table).
See ``docs/regulatory.md``.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import spearmanr

from .._genomics import chrom_with_prefix as _chr
from .._genomics import gene_coords as _gene_coords
from .._genomics import gene_peak_pairs  # the coordinates live in attune_lib._genomics, shared with the models
from .._genomics import peak_coords as _peak_coords
from .._utils import AttuneInputError, as_csr, get_modality, progress
from ._peers import PeerNotAvailable

logger = logging.getLogger("attune_lib")

__all__ = [
    "add_link_scores",
    "attention_cutoffs",
    "differential_genes",
    "dpag_de_overlap",
    "elbow_point",
    "enrichment",
    "find_dpags",
    "gene_peak_pairs",
    "glue_feature_embeddings",
    "label_links",
    "link_baselines",
    "link_heatmap_data",
    "link_score_structure",
    "pchic_truth",
    "score_links",
    "select_links",
    "simulated_gene_sets",
    "window_sweep",
]

_PCHIC_COORDS = ("baitChr", "baitStart", "baitEnd", "baitID", "baitName", "oeChr", "oeStart", "oeEnd", "oeID",
                 "oeName", "dist")
_PAIR_COLS = ("gene", "peak", "distance", "gene_idx", "peak_idx", "label", "pchic")


# --------------------------------------------------------------------------------------------------
# PCHi-C truth
# --------------------------------------------------------------------------------------------------
def _pchic_score_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in _PCHIC_COORDS and pd.api.types.is_numeric_dtype(table[c])]


def pchic_truth(pchic_table: pd.DataFrame, genes_var: pd.DataFrame, peaks_var: pd.DataFrame, *,
                cell_types: Sequence[str] | None = None, min_score: float = 5.0, promoter_bp: int = 1000,
                oe_bp: int = 1000, window_bp: float | None = 1_200_000) -> pd.DataFrame:
    """Gene-peak pairs supported by promoter-capture Hi-C (GLUE's rules, as in the paper).

    A pair (gene, peak) is true when some interaction row has: the gene's TSS within ``promoter_bp`` of the
    bait fragment, the peak (interval) within ``oe_bp`` of the other-end fragment, bait and other end on
    the same chromosome, and a CHiCAGO score >= ``min_score`` in at least one of ``cell_types``.

    Parameters
    ----------
    pchic_table
        Javierre et al. 2016 ``PCHiC_peak_matrix_cutoff5.tsv`` format (``baitChr, baitStart, baitEnd, oeChr,
        oeStart, oeEnd`` and one score column per cell type); chromosome names with or without ``chr``.
        The simulator's ``uns["truth"]["pchic"]`` has this format. The real table is hg19: lift it over to
        the peaks' assembly first.
    genes_var, peaks_var
        ``rna.var`` (``chrom``, ``tss``) and ``atac.var`` (``chrom``, ``start``, ``end``).
    cell_types
        Score columns to use (default: every numeric non-coordinate column). The paper used T, B and
        monocyte types (e.g. ``["Mon", "nCD4", "tCD4", "aCD4", "naCD4", "nCD8", "tCD8", "nB", "tB"]``).
    min_score
        CHiCAGO score cutoff (5).
    promoter_bp, oe_bp
        Proximity of the TSS to the bait and of the peak to the other end (1 kb each).
    window_bp
        Keep only pairs with TSS-to-peak-midpoint distance <= this (None: all).

    Returns
    -------
    DataFrame ``gene, peak, distance`` (unique pairs).
    """
    if not isinstance(pchic_table, pd.DataFrame):
        raise AttuneInputError(f"pchic_table must be a DataFrame, got {type(pchic_table).__name__}")
    need = ("baitChr", "baitStart", "baitEnd", "oeChr", "oeStart", "oeEnd")
    miss = [c for c in need if c not in pchic_table]
    if miss:
        raise AttuneInputError(f"pchic_table lacks column(s) {miss} (Javierre PCHiC_peak_matrix format)")
    avail = _pchic_score_columns(pchic_table)
    cols = list(avail) if cell_types is None else list(cell_types)
    bad = [c for c in cols if c not in pchic_table]
    if bad:
        raise AttuneInputError(f"pchic_table has no score column(s) {bad}; available: {avail}")
    if not cols:
        raise AttuneInputError("pchic_table has no cell-type score columns")
    for v, name in ((promoter_bp, "promoter_bp"), (oe_bp, "oe_bp")):
        if v < 0:
            raise AttuneInputError(f"{name} must be >= 0, got {v}")
    empty = pd.DataFrame({"gene": pd.Series(dtype=str), "peak": pd.Series(dtype=str),
                          "distance": pd.Series(dtype=np.int64)})
    t = pchic_table
    scores = t[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    keep = np.nan_to_num(scores, nan=-np.inf).max(axis=1) >= min_score
    b_chr, o_chr = _chr(t["baitChr"].to_numpy()), _chr(t["oeChr"].to_numpy())
    keep &= b_chr == o_chr
    if not keep.any():
        return empty
    b_chr = b_chr[keep]
    bs, be = (t[c].to_numpy()[keep].astype(np.int64) for c in ("baitStart", "baitEnd"))
    os_, oe = (t[c].to_numpy()[keep].astype(np.int64) for c in ("oeStart", "oeEnd"))

    g_chrom, tss, ok = _gene_coords(genes_var, "genes_var")
    p_chrom, p_start, p_end = _peak_coords(peaks_var, "peaks_var")
    mid = (p_start + p_end) // 2
    max_len = int((p_end - p_start).max()) if len(p_end) else 0
    out_g, out_p = [], []
    for c in pd.unique(b_chr):
        rows = np.flatnonzero(b_chr == c)
        gs = np.flatnonzero(ok & (g_chrom == c))
        pk = np.flatnonzero(p_chrom == c)
        if not len(gs) or not len(pk):
            continue
        gs = gs[np.argsort(tss[gs], kind="stable")]
        pk = pk[np.argsort(p_start[pk], kind="stable")]
        g_lo = np.searchsorted(tss[gs], bs[rows] - promoter_bp, side="left")
        g_hi = np.searchsorted(tss[gs], be[rows] + promoter_bp, side="right")
        # peaks [s, e] with e >= oeStart - oe_bp and s <= oeEnd + oe_bp
        p_lo = np.searchsorted(p_start[pk], os_[rows] - oe_bp - max_len, side="left")
        p_hi = np.searchsorted(p_start[pk], oe[rows] + oe_bp, side="right")
        ng, np_ = np.maximum(g_hi - g_lo, 0), np.maximum(p_hi - p_lo, 0)
        sel = (ng > 0) & (np_ > 0)
        if not sel.any():
            continue
        r, ng, np_, g_lo, p_lo = rows[sel], ng[sel], np_[sel], g_lo[sel], p_lo[sel]
        n = ng * np_
        rid = np.repeat(np.arange(len(r)), n)
        k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        gi = gs[g_lo[rid] + k // np_[rid]]
        pi = pk[p_lo[rid] + k % np_[rid]]
        good = p_end[pi] >= os_[r[rid]] - oe_bp
        out_g.append(gi[good])
        out_p.append(pi[good])
    if not out_g:
        return empty
    gi, pi = np.concatenate(out_g), np.concatenate(out_p)
    key = np.unique(np.stack([gi, pi], axis=1), axis=0)
    gi, pi = key[:, 0], key[:, 1]
    d = np.abs(mid[pi] - tss[gi])
    if window_bp is not None:
        w = d <= window_bp
        gi, pi, d = gi[w], pi[w], d[w]
    return pd.DataFrame({"gene": genes_var.index.to_numpy()[gi].astype(str),
                         "peak": peaks_var.index.to_numpy()[pi].astype(str),
                         "distance": d.astype(np.int64)}).reset_index(drop=True)


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


def _labels(links: pd.DataFrame, truth) -> np.ndarray:
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

    y = _labels(links, truth)
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
    y = _labels(links, truth)
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


# --------------------------------------------------------------------------------------------------
# baselines
# --------------------------------------------------------------------------------------------------
def _counts_matrix(adata, layer: str | None, where: str) -> sp.csr_matrix:
    """Counts (or normalised, not log, values) for aggregation.

    ``layer="counts"`` falls back by input state, never silently.
    """
    from .._access import get_matrix

    explicit = layer if (layer is not None and (layer != "counts" or layer in adata.layers)) else None
    X, _, _ = get_matrix(adata, "scaled", layer=explicit, where=where, step="link baselines (metacell sums)",
                         param="rna_layer/atac_layer")
    return as_csr(X, dtype=np.float64)


def _lognorm(S: np.ndarray) -> np.ndarray:
    tot = S.sum(1, keepdims=True)
    return np.log1p(S / np.maximum(tot, 1e-12) * 1e4)


def _metacells(mdata, *, rna_key: str, atac_key: str, rna_layer: str | None, atac_layer: str | None,
               use_rep: str, n_metacells: int | None, n_neighbors: int | None, seed: int):
    """kNN metacells: ``n_metacells`` random seed cells, each aggregating its ``n_neighbors`` nearest cells
    (Euclidean on ``use_rep``); counts are summed, then normalised to 10^4 and log1p. Returns dense
    ``(rna, atac)`` metacell matrices."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.neighbors import NearestNeighbors

    rna = get_modality(mdata, rna_key, role="RNA")
    atac = get_modality(mdata, atac_key, role="ATAC")
    n = rna.n_obs
    Xr = _counts_matrix(rna, rna_layer, f"mdata[{rna_key!r}]")
    Xa = _counts_matrix(atac, atac_layer, f"mdata[{atac_key!r}]")
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
    return _lognorm((A @ Xr).toarray()), _lognorm((A @ Xa).toarray())


def _standardise(X: np.ndarray) -> np.ndarray:
    """Centre and scale columns to unit norm (constant columns -> 0), so column dot products are correlations."""
    Z = X - X.mean(0, keepdims=True)
    nrm = np.sqrt((Z * Z).sum(0, keepdims=True))
    return np.divide(Z, nrm, out=np.zeros_like(Z), where=nrm > 0)


def _pair_dot(A: np.ndarray, B: np.ndarray, ia: np.ndarray, ib: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    out = np.empty(len(ia))
    for st in range(0, len(ia), chunk):
        out[st : st + chunk] = np.einsum("ij,ij->j", A[:, ia[st : st + chunk]], B[:, ib[st : st + chunk]])
    return out


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


def glue_feature_embeddings(mdata, *, rna_key: str = "rna", atac_key: str = "atac", rna_layer: str | None = "counts",
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
    rna_key
        RNA modality name.
    atac_key
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
    from ._peers import _paired_modalities, run_glue

    rna, atac = _paired_modalities(mdata, rna_key, atac_key)
    out = run_glue(mdata, seed=seed, n_latent=n_latent, max_epochs=max_epochs, n_comps=n_comps,
                   rna_key=rna_key, atac_key=atac_key,
                   rna_layer=rna_layer if rna_layer in rna.layers else None,
                   atac_layer=atac_layer if atac_layer in atac.layers else None,
                   progress_bar=progress_bar, return_features=True)
    return out["features"]


def link_baselines(mdata, *, window_bp: float = 1_200_000,
                   methods: Sequence[str] = ("distance", "spearman", "lasso", "cicero"),
                   rna_key: str = "rna", atac_key: str = "atac", rna_layer: str | None = "counts",
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
    rna_key
        RNA modality name.
    atac_key
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
    pairs = gene_peak_pairs(mdata, window_bp=window_bp, rna_key=rna_key, atac_key=atac_key)
    if not len(pairs):
        raise AttuneInputError(f"no annotated gene-peak pairs within window_bp={window_bp}")
    gi, pi = pairs["gene_idx"].to_numpy(), pairs["peak_idx"].to_numpy()
    out = pairs.copy()
    if "distance" in methods:
        out["distance_only"] = -pairs["distance"].to_numpy(dtype=float)
    if {"spearman", "lasso", "cicero"} & set(methods):
        R, A = _metacells(mdata, rna_key=rna_key, atac_key=atac_key, rna_layer=rna_layer, atac_layer=atac_layer,
                          use_rep=use_rep, n_metacells=n_metacells, n_neighbors=n_neighbors, seed=seed)
        if "spearman" in methods:
            from scipy.stats import rankdata

            Rr, Ar = _standardise(rankdata(R, axis=0)), _standardise(rankdata(A, axis=0))
            out["spearman"] = _pair_dot(Rr, Ar, gi, pi)
        Zr, Za = _standardise(R), _standardise(A)
        if "lasso" in methods:
            out["lasso"] = _lasso_scores(Zr, Za, gi, pi, int(lasso_alphas), progress_bar)
        if "cicero" in methods:
            atac = get_modality(mdata, atac_key)
            _, ps, pe = _peak_coords(atac.var)
            c = _cicero_scores(Za, gi, pi, pairs["distance"].to_numpy(), (ps + pe) // 2, int(promoter_bp),
                               float(cicero_alpha))
            c[np.isnan(c)] = -1.0 - float(cicero_alpha)  # no promoter peak: below every possible score
            out["cicero"] = c
    if "glue" in methods:
        emb = glue_embeddings
        if emb is None:
            try:
                emb = glue_feature_embeddings(mdata, rna_key=rna_key, atac_key=atac_key, seed=seed,
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


def find_dpags(selected: pd.DataFrame, *, min_peaks: int = 10) -> pd.DataFrame:
    """Dense peak-associated genes: genes linked to at least ``min_peaks`` selected peaks.

    Returns DataFrame ``gene, n_peaks`` sorted by decreasing ``n_peaks`` (only the DPAGs).

    Parameters
    ----------
    selected
        Selected pairs (:func:`select_links`) with a ``gene`` column.
    min_peaks
        Smallest number of selected peaks of a DPAG.
    """
    if min_peaks < 1:
        raise AttuneInputError(f"min_peaks must be >= 1, got {min_peaks}")
    if "gene" not in selected:
        raise AttuneInputError("selected links need a 'gene' column")
    n = selected.groupby("gene", observed=True)["peak"].nunique()
    n = n[n >= min_peaks].sort_values(ascending=False, kind="stable")
    return pd.DataFrame({"gene": n.index.astype(str), "n_peaks": n.to_numpy(dtype=int)})


# --------------------------------------------------------------------------------------------------
# DE, overlap, enrichment
# --------------------------------------------------------------------------------------------------
def _group_labels(mdata, adata, groupby: str) -> pd.Series:
    if groupby in adata.obs:
        return adata.obs[groupby]
    if groupby in getattr(mdata, "obs", {}):
        return mdata.obs.loc[adata.obs_names, groupby]
    raise AttuneInputError(f"groupby {groupby!r} not found in the RNA obs nor mdata.obs")


def differential_genes(mdata, *, groupby: str = "cell_type", rna_key: str = "rna", layer: str | None = None,
                       pval_cutoff: float = 0.01, logfc_cutoff: float = 0.25, method: str = "wilcoxon",
                       only_positive: bool = False) -> pd.DataFrame:
    """DE genes per group, one vs rest (scanpy ``rank_genes_groups``; the paper used Seurat's FindAllMarkers).

    Runs on a copy of the RNA modality (log-normalised ``.X`` or ``layer``); nothing is written.

    Parameters
    ----------
    mdata
        MuData with the RNA modality and the groups in ``obs``.
    groupby
        obs column with the groups.
    rna_key
        RNA modality name.
    layer
        RNA layer with log-normalised expression (None: ``.X``).
    pval_cutoff
        Largest adjusted p-value kept.
    logfc_cutoff
        Smallest absolute log fold change kept.
    method
        scanpy ``rank_genes_groups`` test.
    only_positive
        Keep only up-regulated genes.

    Returns
    -------
    DataFrame ``group, gene, logfc, pval, pval_adj, score`` with ``pval_adj < pval_cutoff`` and
    ``|logfc| > logfc_cutoff`` (``logfc > logfc_cutoff`` with ``only_positive``).
    """
    import anndata as ad
    import scanpy as sc

    rna = get_modality(mdata, rna_key, role="RNA")
    labels = _group_labels(mdata, rna, groupby).astype(str)
    X = rna.X if layer is None else rna.layers.get(layer, None)
    if X is None:
        raise AttuneInputError(f"layer {layer!r} not in mdata[{rna_key!r}].layers")
    tmp = ad.AnnData(X=X, obs=pd.DataFrame({"g": pd.Categorical(labels.to_numpy())}, index=rna.obs_names),
                     var=pd.DataFrame(index=rna.var_names))
    tmp.uns["log1p"] = {"base": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.tl.rank_genes_groups(tmp, "g", method=method, reference="rest", use_raw=False)
    df = sc.get.rank_genes_groups_df(tmp, group=None)
    df = df.rename(columns={"names": "gene", "logfoldchanges": "logfc", "pvals": "pval", "pvals_adj": "pval_adj",
                            "scores": "score"})
    if "group" not in df:  # a single group
        df.insert(0, "group", tmp.obs["g"].cat.categories[0])
    lf = df["logfc"] if only_positive else df["logfc"].abs()
    keep = (df["pval_adj"] < pval_cutoff) & (lf > logfc_cutoff)
    return df.loc[keep, ["group", "gene", "logfc", "pval", "pval_adj", "score"]].reset_index(drop=True)


def _hypergeom_sf(k: int, M: int, n: int, N: int) -> float:
    from scipy.stats import hypergeom

    return float(hypergeom.sf(k - 1, M, n, N))


def dpag_de_overlap(dpags: Sequence[str] | pd.DataFrame, degs: pd.DataFrame | Sequence[str], *,
                    universe: Sequence[str]) -> dict:
    """How many DPAGs are DE (Fig. 3D), with the hypergeometric p-value of the overlap.

    Returns dict ``n_dpags, n_de_dpags, fraction, n_degs, n_universe, expected, pval, de_dpags``.

    Parameters
    ----------
    dpags
        DPAG names or the table of :func:`find_dpags`.
    degs
        DE genes: the table of :func:`differential_genes` or names.
    universe
        All genes tested (the background of the hypergeometric test).
    """
    d = set(map(str, dpags["gene"] if isinstance(dpags, pd.DataFrame) else dpags))
    g = set(map(str, degs["gene"] if isinstance(degs, pd.DataFrame) else degs))
    u = set(map(str, universe))
    d, g = d & u, g & u
    k = len(d & g)
    M, n, N = len(u), len(g), len(d)
    return {"n_dpags": N, "n_de_dpags": k, "fraction": k / N if N else np.nan, "n_degs": n, "n_universe": M,
            "expected": N * n / M if M else np.nan, "pval": _hypergeom_sf(k, M, n, N) if N and M else np.nan,
            "de_dpags": sorted(d & g)}


def enrichment(genes: Sequence[str], gene_sets: Mapping[str, Sequence[str]], *, universe: Sequence[str],
               min_size: int = 1, max_size: int | None = None, min_overlap: int = 1) -> pd.DataFrame:
    """Over-representation of ``genes`` in each gene set (one-sided hypergeometric test, BH adjustment).

    For a set ``S`` (restricted to the universe ``U``) and the query ``Q`` (restricted to ``U``):
    ``p = P(X >= |Q ∩ S|)``, ``X ~ Hypergeom(|U|, |S|, |Q|)`` (``scipy.stats.hypergeom.sf(k - 1, ...)``);
    ``padj`` by Benjamini-Hochberg (``statsmodels`` ``fdr_bh``) over the sets tested (those with
    ``min_size <= |S| <= max_size``).

    Parameters
    ----------
    genes
        Query genes.
    gene_sets
        ``{term: genes}``.
    universe
        Background genes.
    min_size
        Smallest set size tested (within the universe).
    max_size
        Largest set size tested (None: no limit).
    min_overlap
        Smallest overlap reported.

    Returns
    -------
    DataFrame ``term, n_set, n_overlap, n_query, n_universe, expected, fold, pval, padj, genes`` sorted by
    ``pval`` (terms with ``n_overlap >= min_overlap``; ``padj`` accounts for all tested sets).
    """
    from statsmodels.stats.multitest import multipletests

    u = pd.Index(pd.unique(pd.Index(universe).astype(str)))
    uset = set(u)
    q = set(map(str, genes)) & uset
    rows = []
    for term, members in gene_sets.items():
        s = set(map(str, members)) & uset
        if len(s) < min_size or (max_size is not None and len(s) > max_size):
            continue
        ov = q & s
        M, n, N, k = len(uset), len(s), len(q), len(ov)
        rows.append({"term": term, "n_set": n, "n_overlap": k, "n_query": N, "n_universe": M,
                     "expected": N * n / M if M else np.nan,
                     "fold": (k / (N * n / M)) if N and n else np.nan,
                     "pval": _hypergeom_sf(k, M, n, N) if N and M else 1.0, "genes": ";".join(sorted(ov))})
    cols = ["term", "n_set", "n_overlap", "n_query", "n_universe", "expected", "fold", "pval", "padj", "genes"]
    if not rows:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(rows)
    df["padj"] = multipletests(df["pval"].to_numpy(), method="fdr_bh")[1]
    df = df[df["n_overlap"] >= min_overlap].sort_values(["pval", "term"], kind="stable")
    return df[cols].reset_index(drop=True)


def simulated_gene_sets(mdata) -> dict[str, list[str]]:
    """The simulator's expression programs as gene sets (``uns["truth"]["gene_program"]``).

    Parameters
    ----------
    mdata
        Simulated MuData (:func:`attune_lib.datasets.simulate_multiome`).
    """
    truth = getattr(mdata, "uns", {}).get("truth")
    if not isinstance(truth, Mapping) or "gene_program" not in truth:
        raise AttuneInputError("mdata.uns['truth']['gene_program'] not found (not a simulated dataset?)")
    gp = truth["gene_program"]
    gp = gp[gp["program"].astype(str).str.len() > 0]
    return {str(p): sorted(map(str, g["gene"])) for p, g in gp.groupby("program", observed=True)}


# --------------------------------------------------------------------------------------------------
# heatmap data (Fig. 3F)
# --------------------------------------------------------------------------------------------------
def link_heatmap_data(mdata, links: pd.DataFrame, *, groupby: str = "cell_type", n_pairs: int | None = 40,
                      rna_key: str = "rna", atac_key: str = "atac", rna_layer: str | None = None,
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
    rna_key
        RNA modality name.
    atac_key
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
    rna = get_modality(mdata, rna_key, role="RNA")
    atac = get_modality(mdata, atac_key, role="ATAC")
    lab = _group_labels(mdata, rna, groupby)
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
    Xa_all = _counts_matrix(atac, atac_layer, f"mdata[{atac_key!r}]")
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
