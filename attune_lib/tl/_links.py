"""Pair-specific peak-gene link read-outs (beyond the paper) and their evaluation against distance.

The paper's global attention score is, per cell, a gene-only factor times a peak-only factor, so it cannot
say *which* of a gene's peaks regulate it (see :func:`attune_lib.tl.link_score_structure`). This module
scores every candidate pair with features that are specific to the pair, and combines them with
distance:

* :func:`link_features` - per pair: distance, a power-law contact, the peak's activity, an ABC-like
  score (activity x contact normalised over the gene's window, Fulco et al. 2019) and the
  **within-state co-variation**: the correlation, over cells, of the gene's and the peak's deviations
  from their cell-state expectation, the state being each cell's neighbourhood in the trained Attune
  joint embedding. Same-program decoy peaks follow the same cell state as the gene, so they share its
  state-level co-variation but not its cell-to-cell deviations; causal links do.
* :func:`link_readout` - the combined score: a logistic regression over those features fitted on the
  truth of some chromosomes and applied to held-out chromosomes only (cross-fitting by chromosome
  groups), or, without truth, a fixed rule (contact rank plus co-variation rank).
* :func:`link_evaluation` - every score against a truth: AUROC, AUPRC and the distance-matched AUROC
  (:func:`attune_lib.metrics.distance_matched_auroc`).

See ``docs/regulatory.md`` ("A pair-specific read-out").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._genomics import gene_peak_pairs, peak_coords
from .._utils import AttuneInputError, as_csr, get_modality, renamed_kwargs
from ..metrics._links import distance_matched_auroc
from ._link_scores import link_truth_labels
from ._metacells import aggregation_matrix, knn_metacells, paired_column_dots, standardise_columns

logger = logging.getLogger("attune_lib")

__all__ = ["LINK_FEATURES", "link_evaluation", "link_features", "link_readout"]

#: Features the combiner uses by default (columns of :func:`link_features`).
LINK_FEATURES = ("log_distance", "proximity_rank", "log_abc", "log_activity", "covariation_z", "covariation_rank",
                 "state_spearman", "state_spearman_rank")


def _embedding(mdata, use_rep: str, rna_mod: str) -> np.ndarray:
    rna = get_modality(mdata, rna_mod, role="RNA")
    for where, store in (("mdata.obsm", getattr(mdata, "obsm", {})), (f"mdata[{rna_mod!r}].obsm", rna.obsm)):
        if use_rep in store:
            rep = np.asarray(store[use_rep], dtype=np.float64)
            if rep.shape[0] != rna.n_obs:
                raise AttuneInputError(f"use_rep {use_rep!r} in {where} has {rep.shape[0]} rows, expected "
                                       f"{rna.n_obs} cells")
            return rep
    raise AttuneInputError(f"use_rep {use_rep!r} not found in mdata.obsm nor mdata[{rna_mod!r}].obsm; train "
                           "Attune and call model.get_latent_representation(key_added=...) first, or pass "
                           "another embedding (e.g. use_rep='X_pca')")


def _neighbour_average(rep: np.ndarray, n_neighbors: int) -> sp.csr_matrix:
    """Row-stochastic ``cells x cells`` matrix averaging each cell's ``n_neighbors`` nearest others."""
    from sklearn.neighbors import NearestNeighbors

    n = rep.shape[0]
    k = int(min(n_neighbors, n - 1))
    if k < 1:
        raise AttuneInputError(f"need at least 2 cells for neighbourhoods, got {n}")
    idx = NearestNeighbors(n_neighbors=k + 1).fit(rep).kneighbors(rep, return_distance=False)
    # drop each cell itself (first column unless duplicates tie; remove it wherever it is)
    rows = np.repeat(np.arange(n), k + 1)
    cols = idx.ravel()
    keep = cols != rows
    rows, cols = rows[keep], cols[keep]
    A = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    A.data[:] = 1.0
    deg = np.asarray(A.sum(1)).ravel()
    return sp.diags(1.0 / np.maximum(deg, 1)) @ A


def _standardised_residuals(X, A: sp.csr_matrix) -> np.ndarray:
    """``X - A X`` with columns centred and scaled to unit norm (constant columns -> 0), float32."""
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    X = X.astype(np.float64, copy=False)
    Z = X - A @ X
    Z -= Z.mean(0, keepdims=True)
    nrm = np.sqrt((Z * Z).sum(0, keepdims=True))
    return np.divide(Z, nrm, out=np.zeros_like(Z), where=nrm > 0).astype(np.float32)


def _within_gene_rank(gi: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rank of each value among its gene's candidates, scaled to (0, 1] (1 = highest)."""
    df = pd.DataFrame({"g": gi, "v": values})
    return df.groupby("g")["v"].rank(method="average", pct=True).to_numpy()


@renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
def link_features(mdata, *, window_bp: float = 1_200_000, use_rep: str = "X_attune", rna_mod: str = "rna",
                  atac_mod: str = "atac", rna_layer: str | None = None, atac_layer: str | None = "counts",
                  n_neighbors: int = 20, contact_gamma: float = 1.0, contact_scale_bp: float = 5_000,
                  n_metacells: int | None = None, seed: int = 0, peak_chunk: int = 2_000,
                  key_added: str | None = "link_features") -> pd.DataFrame:
    """Pair-specific features of every candidate gene-peak pair within ``window_bp``.

    Parameters
    ----------
    mdata
        MuData with gene coordinates in ``rna.var`` (``chrom``, ``tss``) and peak coordinates in
        ``atac.var``; a cell embedding ``use_rep`` (the trained Attune joint embedding by default).
    window_bp
        Half-width of the candidate window around each TSS.
    use_rep
        Key of the cell embedding in ``mdata.obsm`` or ``rna.obsm`` that defines each cell's state
        (its ``n_neighbors`` nearest cells).
    rna_mod, atac_mod
        Modality names.
    rna_layer
        RNA values (``None``: ``.X``, log-normalised after :func:`attune_lib.pp.preprocess`).
    atac_layer
        ATAC counts (``None``: ``.X``); binarised and divided by each cell's fraction of open peaks.
    n_neighbors
        Neighbourhood size of the cell-state expectation.
    contact_gamma, contact_scale_bp
        Power-law contact ``(1 + d / contact_scale_bp) ** -contact_gamma`` (ABC's default shape, exponent
        about 1).
    n_metacells
        Metacells of the state-level co-variation (``None``: ``min(500, n_cells / 5)``); each sums the
        counts of its nearest cells in ``use_rep``.
    seed
        Seeds the metacell centres.
    peak_chunk
        Peaks processed at once (memory bound: ``cells x peak_chunk`` floats).
    key_added
        Store the table in ``mdata.uns[key_added]`` (``None``: only return it).

    Returns
    -------
    pandas.DataFrame
        One row per candidate, gene-major: ``gene, peak, chrom, distance, gene_idx, peak_idx`` and

        - ``log_distance``: ``log10(distance + 1 kb)``; ``proximity_rank``: rank of nearness among the
          gene's candidates in (0, 1]; ``contact``: the power law above;
        - ``activity``: mean normalised accessibility of the peak; ``log_activity``;
        - ``abc``: ``activity x contact / sum`` of the same over the gene's candidates (ABC-like,
          observed activity); ``log_abc``;
        - ``covariation``: Pearson correlation over cells of the gene's and the peak's residuals from
          their neighbourhood means in ``use_rep`` (within-state co-variation);
          ``covariation_z``: Fisher ``z x sqrt(n_cells - 3)``; ``covariation_rank``: its rank among
          the gene's candidates in (0, 1];
        - ``state_spearman``: Spearman correlation of the gene and the peak over metacells of
          neighbouring cells in ``use_rep`` (state-level co-variation; shared by same-program decoys);
          ``state_spearman_rank``: its rank among the gene's candidates.

        Every feature of a pair depends only on that gene's and that peak's values (plus the shared
        embedding and, for ``abc``/``covariation_rank``, the other peaks of the same gene's window).
    """
    rna = get_modality(mdata, rna_mod, role="RNA")
    atac = get_modality(mdata, atac_mod, role="ATAC")
    for v, name in ((n_neighbors, "n_neighbors"), (peak_chunk, "peak_chunk")):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise AttuneInputError(f"{name} must be a positive integer, got {v!r}")
    if not contact_gamma > 0:
        raise AttuneInputError(f"contact_gamma must be > 0, got {contact_gamma!r}")
    if not contact_scale_bp > 0:
        raise AttuneInputError(f"contact_scale_bp must be > 0, got {contact_scale_bp!r}")
    pairs = gene_peak_pairs(mdata, window_bp=window_bp, rna_mod=rna_mod, atac_mod=atac_mod)
    if not len(pairs):
        raise AttuneInputError(f"no annotated gene-peak pairs within window_bp={window_bp}")
    gi, pi = pairs["gene_idx"].to_numpy(), pairs["peak_idx"].to_numpy()
    d = pairs["distance"].to_numpy(dtype=float)
    p_chrom, _, _ = peak_coords(atac.var)
    out = pairs.copy()
    out.insert(2, "chrom", p_chrom[pi].astype(str))
    out["log_distance"] = np.log10(d + 1_000.0)
    out["proximity_rank"] = _within_gene_rank(gi, -d)
    contact = np.power(1.0 + d / float(contact_scale_bp), -float(contact_gamma))
    out["contact"] = contact

    # ATAC: binary accessibility, per-cell normalised (a cell's fraction of open peaks)
    Xa = aggregation_matrix(atac, atac_layer, f"mdata[{atac_mod!r}]")
    Xa = (Xa > 0).astype(np.float64).tocsr()
    frac = np.asarray(Xa.mean(1)).ravel()
    Xa = as_csr(sp.diags(1.0 / np.maximum(frac / max(np.median(frac), 1e-12), 1e-6)) @ Xa)
    activity = np.asarray(Xa.mean(0)).ravel()
    out["activity"] = activity[pi]
    out["log_activity"] = np.log10(activity[pi] + 1e-4)
    ac = activity[pi] * contact
    tot = pd.Series(ac).groupby(gi).transform("sum").to_numpy()
    out["abc"] = np.divide(ac, tot, out=np.zeros_like(ac), where=tot > 0)
    out["log_abc"] = np.log10(out["abc"].to_numpy() + 1e-6)

    # within-state co-variation on residuals from the neighbourhood mean in the embedding
    rep = _embedding(mdata, use_rep, rna_mod)
    A = _neighbour_average(rep, int(n_neighbors))
    Xr = rna.X if rna_layer is None else rna.layers.get(rna_layer)
    if Xr is None:
        raise AttuneInputError(f"rna_layer {rna_layer!r} not in mdata[{rna_mod!r}].layers; available: "
                               f"{sorted(rna.layers)}")
    genes_used = np.unique(gi)
    Zr = np.zeros((rna.n_obs, rna.n_vars), dtype=np.float32)
    Zr[:, genes_used] = _standardised_residuals(as_csr(Xr)[:, genes_used], A)
    cov = np.empty(len(pairs))
    peaks_used = np.unique(pi)
    order = np.argsort(pi, kind="stable")
    bounds = np.searchsorted(pi[order], peaks_used)
    bounds = np.r_[bounds, len(pi)]
    for st in range(0, len(peaks_used), int(peak_chunk)):
        chunk = peaks_used[st : st + int(peak_chunk)]
        Za = _standardised_residuals(Xa[:, chunk], A)
        rows = order[bounds[st] : bounds[min(st + int(peak_chunk), len(peaks_used))]]
        local = np.searchsorted(chunk, pi[rows])
        cov[rows] = np.einsum("ij,ij->j", Zr[:, gi[rows]], Za[:, local])
    cov = np.clip(cov, -0.999999, 0.999999)
    out["covariation"] = cov
    out["covariation_z"] = np.arctanh(cov) * np.sqrt(max(rna.n_obs - 3, 1))
    out["covariation_rank"] = _within_gene_rank(gi, cov)
    from scipy.stats import rankdata

    rl = rna.layers["counts"] if "counts" in rna.layers else None
    R_m, A_m = knn_metacells(mdata, rna_mod=rna_mod, atac_mod=atac_mod, rna_layer="counts" if rl is not None else None,
                          atac_layer=atac_layer, use_rep=use_rep, n_metacells=n_metacells, n_neighbors=None,
                          seed=seed)
    out["state_spearman"] = paired_column_dots(standardise_columns(rankdata(R_m, axis=0)),
                                               standardise_columns(rankdata(A_m, axis=0)), gi, pi)
    out["state_spearman_rank"] = _within_gene_rank(gi, out["state_spearman"].to_numpy())
    if key_added is not None:
        if not isinstance(key_added, str) or not key_added:
            raise AttuneInputError(f"key_added must be a non-empty string or None, got {key_added!r}")
        mdata.uns[key_added] = out
    return out


def _chromosome_folds(chroms: np.ndarray, n_folds: int, seed: int) -> dict[str, int]:
    """Assign chromosomes to ``n_folds`` groups of similar candidate counts (greedy, seeded order)."""
    counts = pd.Series(chroms).value_counts()
    rng = np.random.default_rng(seed)
    names = counts.index.to_numpy()
    names = names[np.lexsort((rng.random(len(names)), -counts.to_numpy()))]
    load = np.zeros(n_folds)
    fold = {}
    for c in names:
        j = int(np.argmin(load))
        fold[str(c)] = j
        load[j] += counts[c]
    return fold


def link_readout(features: pd.DataFrame, truth=None, *, feature_cols: Sequence[str] = LINK_FEATURES,
                 n_folds: int = 3, test_chroms: Sequence[str] | None = None, degree: int = 2, C: float = 0.1,
                 seed: int = 0,
                 key_added: str = "link_score", mdata=None) -> pd.DataFrame:
    """The pair-specific link score: distance, ABC and within-state co-variation combined.

    With ``truth`` (e.g. a PCHi-C or CRISPRi truth set), a logistic regression
    (``sklearn.linear_model.LogisticRegression``, class-balanced, L2) on the standardised ``feature_cols``
    and, with ``degree=2``, their pairwise products and squares (so that, e.g., co-variation can count
    more for near peaks than for far ones) is fitted on the candidates of some chromosomes and scores
    the others only:

    * ``test_chroms`` given: fitted on every other chromosome, scores only ``test_chroms`` (the rest get NaN);
    * otherwise cross-fitting: chromosomes are split into ``n_folds`` groups of similar size, and each
      group is scored by the model fitted on the other groups. No model sees the chromosomes it scores.

    Without ``truth``, a fixed rule needs no fitting: the mean of the pair's within-gene rank of
    contact (proximity) and of co-variation, ``(rank(-distance) + covariation_rank) / 2``.

    Parameters
    ----------
    features
        Output of :func:`link_features` (needs ``gene``, ``peak``, ``chrom``, ``distance`` and ``feature_cols``).
    truth
        True pairs (DataFrame ``gene, peak``), a boolean column name of ``features``, or a boolean array;
        ``None`` for the truth-free rule.
    feature_cols
        Columns the combiner uses.
    n_folds
        Number of chromosome groups for cross-fitting (>= 2).
    degree
        1 (linear in the features) or 2 (with pairwise products; default).
    test_chroms
        Score only these chromosomes with a model fitted on all others.
    C
        Inverse L2 regularisation of the logistic regression.
    seed
        Seeds the chromosome grouping.
    key_added
        Name of the score column.
    mdata
        If given, the returned table is also stored in ``mdata.uns[key_added]``.

    Returns
    -------
    pandas.DataFrame
        ``features`` with ``key_added`` (the score; higher = more likely a link) and ``fold`` (the
        chromosome group a pair was scored in; -1 for pairs used only for fitting, NaN-scored). The
        fitted coefficients are in ``DataFrame.attrs["coefficients"]`` (one row per fold) and the
        chromosome groups in ``attrs["folds"]``.
    """
    need = {"gene", "peak", "chrom", "distance"}
    miss = sorted(need - set(features.columns))
    if miss:
        raise AttuneInputError(f"features lack column(s) {miss}; compute them with link_features()")
    if not isinstance(key_added, str) or not key_added:
        raise AttuneInputError(f"key_added must be a non-empty string, got {key_added!r}")
    out = features.copy()
    if truth is None:
        prox = _within_gene_rank(out["gene"].to_numpy(), -out["distance"].to_numpy(dtype=float))  # proximity_rank
        if "covariation_rank" not in out:
            raise AttuneInputError("features lack 'covariation_rank'; compute them with link_features()")
        out[key_added] = 0.5 * (prox + out["covariation_rank"].to_numpy(dtype=float))
        out["fold"] = 0
        out.attrs = {"rule": "(rank(-distance) + covariation_rank) / 2 within each gene"}
    else:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import PolynomialFeatures, StandardScaler

        cols = list(feature_cols)
        bad = [c for c in cols if c not in out]
        if bad:
            raise AttuneInputError(f"feature_cols {bad} not in features; available: {list(out.columns)}")
        if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
            raise AttuneInputError(f"n_folds must be an integer >= 2, got {n_folds!r}")
        y = link_truth_labels(out, truth)
        X = out[cols].to_numpy(dtype=float)
        if not np.isfinite(X).all():
            raise AttuneInputError(f"feature_cols {cols} contain non-finite values")
        chroms = out["chrom"].astype(str).to_numpy()
        if test_chroms is not None:
            test = {str(c) for c in test_chroms}
            unknown = sorted(test - set(chroms))
            if unknown:
                raise AttuneInputError(f"test_chroms {unknown} have no candidates; chromosomes: "
                                       f"{sorted(set(chroms))}")
            folds = {c: (0 if c in test else -1) for c in pd.unique(chroms)}
            fold_ids = [0]
        else:
            if len(set(chroms)) < n_folds:
                raise AttuneInputError(f"n_folds={n_folds} exceeds the number of chromosomes ({len(set(chroms))})")
            folds = _chromosome_folds(chroms, int(n_folds), seed)
            fold_ids = list(range(int(n_folds)))
        if degree not in (1, 2):
            raise AttuneInputError(f"degree must be 1 or 2, got {degree!r}")
        fold = np.array([folds[c] for c in chroms])
        score = np.full(len(out), np.nan)
        coefs = []
        for j in fold_ids:
            train, test_rows = fold != j, fold == j
            if test_chroms is not None:
                train = fold == -1
            if y[train].all() or not y[train].any():
                raise AttuneInputError(f"the training chromosomes of fold {j} have only one class of labels")
            steps = [StandardScaler()]
            if degree == 2:
                steps += [PolynomialFeatures(2, include_bias=False), StandardScaler()]
            model = make_pipeline(*steps, LogisticRegression(C=C, class_weight="balanced", max_iter=3000))
            model.fit(X[train], y[train])
            score[test_rows] = model.decision_function(X[test_rows])
            lr = model[-1]
            names = model[1].get_feature_names_out(cols) if degree == 2 else cols
            coefs.append({"fold": j, "intercept": float(lr.intercept_[0]),
                          **{str(c): float(w) for c, w in zip(names, lr.coef_[0])},
                          "test_chroms": ",".join(sorted(c for c, f in folds.items() if f == j)),
                          "n_train": int(train.sum()), "n_test": int(test_rows.sum())})
        out[key_added] = score
        out["fold"] = fold
        out.attrs = {"coefficients": pd.DataFrame(coefs), "folds": folds, "feature_cols": cols}
    if mdata is not None:
        mdata.uns[key_added] = out
    return out


def link_evaluation(links: pd.DataFrame, truths: dict, *, methods: Sequence[str], n_strata: int = 10,
                    distance: str = "distance") -> pd.DataFrame:
    """AUROC, AUPRC and distance-matched AUROC of each score against each truth.

    Parameters
    ----------
    links
        Candidate table with ``distance`` and one column per method (missing/NaN scores rank lowest;
        pairs with a NaN score in *any* method are kept, so every method is scored on the same pairs).
    truths
        ``{name: truth}``; each truth is a DataFrame ``gene, peak``, a boolean column name or a boolean array.
    methods
        Score columns.
    n_strata
        Distance strata of the matched AUROC (:func:`attune_lib.metrics.distance_matched_auroc`).
    distance
        Column of ``links`` with the TSS-to-peak distance.

    Returns
    -------
    pandas.DataFrame
        ``truth, method, auroc, auprc, auroc_distance_matched, n_pairs, n_pos``.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    if distance not in links:
        raise AttuneInputError(f"links lack the {distance!r} column")
    methods = [methods] if isinstance(methods, str) else list(methods)
    bad = [m for m in methods if m not in links]
    if bad:
        raise AttuneInputError(f"methods {bad} not in links; available: {list(links.columns)}")
    d = links[distance].to_numpy(dtype=float)
    rows = []
    for tname, truth in truths.items():
        y = link_truth_labels(links, truth)
        for m in methods:
            s = links[m].to_numpy(dtype=float).copy()
            bad_s = ~np.isfinite(s)
            if bad_s.any():
                s[bad_s] = (s[~bad_s].min() - 1.0) if (~bad_s).any() else 0.0
            ok = 0 < y.sum() < len(y)
            rows.append({"truth": tname, "method": m,
                         "auroc": float(roc_auc_score(y, s)) if ok else np.nan,
                         "auprc": float(average_precision_score(y, s)) if ok else np.nan,
                         "auroc_distance_matched": distance_matched_auroc(y, s, d, n_strata=n_strata),
                         "n_pairs": int(len(y)), "n_pos": int(y.sum())})
    return pd.DataFrame(rows)
