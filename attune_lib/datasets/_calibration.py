"""Calibration of the simulator against real data: statistics, targets and a report.

Three public functions:

* :func:`calibration_stats` measures a fixed set of statistics on a MuData of raw counts (see
  :data:`CALIBRATION_STATISTICS` for every definition);
* :func:`calibration_targets` returns the targets of a named reference, each with a band and its source;
* :func:`calibration_report` puts the two side by side, one row per statistic.

Targets come from two kinds of sources, never from the simulator:

* **measured** on the real data registered with the project (``bmmc500_openproblems``,
  ``pbmc1k_muon``, and the cell metadata released with the original Attune for SHARE-seq skin and
  fetal cortex) by :func:`measure_calibration_targets`. The numbers are shipped below in
  ``MEASURED_TARGETS`` so the report works without the data; ``python benchmarks/calibration_targets.py
  --write`` re-measures them (``ATTUNE_DATA_DIR`` pointing at the data) and rewrites that table;
  ``tests/test_calibration.py`` checks that the shipped numbers equal a fresh measurement.
* **published** values with their citation in ``PUBLISHED_TARGETS``. Only values found in a citable
  source are used; no published per-cell depth, sparsity or separation value for the 10x PBMC
  Multiome web summary, SHARE-seq skin (Ma et al. 2020) or fetal cortex (Trevino et al. 2021) was
  available to this project, so those statistics are measured or left out (see ``docs/simulator.md``).

Bands: a statistic on a scale (counts, per-feature depths, densities, ratios) is in band within a
factor 2 of the target; a bounded one (silhouettes, entropies, shares, dropout-curve values) within an
absolute tolerance (:data:`CALIBRATION_STATISTICS`, column ``tolerance``). When a reference lists
several real values for one statistic the band spans all of them plus the tolerance. The tolerances are
a choice, not a measurement.

The per-cell depth of the whole library of the bone-marrow cells comes from the per-cell QC columns that
the data providers computed on all 13,431 genes and 116,490 peaks of the full dataset (``obs``
``n_counts``, ``n_genes``, ``nCount_peaks``); the registered subset keeps 600 genes and 600 peaks that
are 4-5 times more expressed / accessible than average, so statistics of feature depth or sparsity are
taken from the whole-library columns, and only feature *relationships* (the dropout-vs-mean curve,
the share of ATAC entries above 1) and cell-level structure (cell types, separation) from the subset.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._access import get_matrix
from .._utils import AttuneInputError, check_values, get_modality

logger = logging.getLogger("attune_lib")

__all__ = [
    "CALIBRATION_STATISTICS",
    "CALIBRATION_REFERENCES",
    "calibration_stats",
    "calibration_targets",
    "calibration_report",
    "measure_calibration_targets",
]

# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------

#: name -> (definition, tolerance kind, tolerance): "fold" = in band within target / t .. target * t,
#: "abs" = within target - t .. target + t.
_STATS: dict[str, tuple[str, str, float]] = {
    "rna_umis_median": ("median over cells of the RNA counts per cell (UMIs)", "fold", 2.0),
    "rna_umis_p10": ("10th percentile over cells of the RNA counts per cell", "fold", 2.0),
    "rna_umis_p90": ("90th percentile over cells of the RNA counts per cell", "fold", 2.0),
    "rna_umis_p90_p10": ("spread of library sizes: rna_umis_p90 / rna_umis_p10", "fold", 2.0),
    "rna_umis_per_gene": ("rna_umis_median / number of genes (depth per feature)", "fold", 2.0),
    "rna_genes_median": ("median over cells of the genes with >= 1 count", "fold", 2.0),
    "rna_genes_p10": ("10th percentile over cells of the genes with >= 1 count", "fold", 2.0),
    "rna_genes_p90": ("90th percentile over cells of the genes with >= 1 count", "fold", 2.0),
    "rna_genes_frac_median": ("rna_genes_median / number of genes", "fold", 2.0),
    "rna_density": ("fraction of non-zero entries of the RNA count matrix", "fold", 2.0),
    "rna_dropout_at_mean1": ("zero fraction of a gene with a mean of 1 count per cell, from the least-squares "
                             "fit logit(zero fraction) = a + b ln(mean) over genes with 0 < zero fraction < 1 "
                             "(sigmoid(a); Poisson: 0.37)", "abs", 0.1),
    "rna_dropout_slope": ("slope b of that fit (Poisson at a fixed depth: about -1.6 near a mean of 1; "
                          "flatter with over-dispersion)", "abs", 0.3),
    "rna_dropout_excess_frac": ("fraction of genes with mean >= 0.1 whose zero fraction exceeds the Poisson "
                                "expectation exp(-mean) by more than 0.05", "abs", 0.15),
    "atac_counts_median": ("median over cells of the ATAC counts in peaks per cell", "fold", 2.0),
    "atac_counts_p10": ("10th percentile over cells of the ATAC counts per cell", "fold", 2.0),
    "atac_counts_p90": ("90th percentile over cells of the ATAC counts per cell", "fold", 2.0),
    "atac_counts_p90_p10": ("spread of ATAC depths: atac_counts_p90 / atac_counts_p10", "fold", 2.0),
    "atac_counts_per_peak": ("atac_counts_median / number of peaks (depth per feature)", "fold", 2.0),
    "atac_peaks_frac_median": ("median over cells of the fraction of peaks with >= 1 count", "fold", 2.0),
    "atac_peaks_frac_p10": ("10th percentile of that fraction", "fold", 2.0),
    "atac_peaks_frac_p90": ("90th percentile of that fraction", "fold", 2.0),
    "atac_density": ("fraction of non-zero entries of the ATAC count matrix", "fold", 2.0),
    "atac_nonzero_above1": ("fraction of the non-zero ATAC entries that are > 1", "abs", 0.1),
    "atac_nonzero_even": ("fraction of the non-zero ATAC entries that are even (Cell Ranger ARC counts Tn5 cut "
                          "sites, two per fragment inside a peak, so real peak matrices are mostly 2s)", "abs", 0.1),
    "atac_peak_detection_p10": ("10th percentile over peaks of the fraction of cells with >= 1 count", "fold", 2.0),
    "atac_peak_detection_median": ("median over peaks of that fraction", "fold", 2.0),
    "atac_peak_detection_p90": ("90th percentile over peaks of that fraction", "fold", 2.0),
    "n_cell_types": ("number of known cell types (with >= 1 cell)", "fold", 2.0),
    "cell_type_entropy": ("entropy of the cell-type proportions / ln(number of types) (1 = equal sizes)",
                          "abs", 0.1),
    "cell_type_largest_share": ("proportion of the largest cell type", "abs", 0.1),
    "rna_silhouette": ("silhouette (sklearn, Euclidean) of the known cell types on the RNA PCA: seurat_v3 "
                       "HVGs (2,000, when more genes), normalise to 1e4, log1p, scale (max 10), PCA, as "
                       "al.pp.pca_rna", "abs", 0.1),
    "atac_silhouette": ("silhouette of the known cell types on the ATAC LSI: Signac TF-IDF, randomised "
                        "SVD, GLUE's per-cell standardisation, as al.pp.lsi", "abs", 0.1),
    "rna_minus_atac_silhouette": ("rna_silhouette - atac_silhouette (how much better RNA alone separates "
                                  "the types)", "abs", 0.1),
    "doublet_frac": ("fraction of cells that are doublets, where truth records it (obs[doublet_key]); 0 for a "
                     "simulation whose truth records none", "fold", 2.0),
    "low_quality_frac": ("fraction of low-quality cells, where truth records it (obs[low_quality_key]); 0 for "
                         "a simulation whose truth records none", "fold", 2.0),
}

#: every statistic of :func:`calibration_stats`: ``definition``, ``tolerance_kind`` (``fold``/``abs``), ``tolerance``
CALIBRATION_STATISTICS = pd.DataFrame(
    [(k, *v) for k, v in _STATS.items()], columns=["statistic", "definition", "tolerance_kind", "tolerance"]
).set_index("statistic")

#: statistics that are fractions (their bands are clipped to [0, 1])
_UNIT_INTERVAL = {s for s in _STATS if s.endswith(("_frac", "_share", "_entropy", "_above1", "_even", "_mean1",
                                                   "_density", "_frac_median", "_frac_p10", "_frac_p90"))
                  or s.startswith("atac_peak_detection")}
_CELL_TYPE_STATS = ("n_cell_types", "cell_type_entropy", "cell_type_largest_share", "rna_silhouette",
                    "atac_silhouette", "rna_minus_atac_silhouette")


def _quantiles(x: np.ndarray, prefix: str, out: dict[str, float]) -> None:
    p10, p50, p90 = np.percentile(x, [10, 50, 90])
    out[f"{prefix}_median"], out[f"{prefix}_p10"], out[f"{prefix}_p90"] = float(p50), float(p10), float(p90)


def _counts(adata, where: str, *, allow_binary: bool):
    try:
        X, name, state = get_matrix(adata, "counts", where=where, step="calibration_stats",
                                    param="the counts layer", allow_binary=allow_binary)
    except AttuneInputError as exc:
        raise AttuneInputError(f"calibration_stats: modality {where} has no raw counts: {exc}") from None
    check_values(X, name=name)
    return sp.csr_matrix(X, dtype=np.float64), name, state


def _dropout_curve(X: sp.csr_matrix, out: dict[str, float]) -> None:
    n = X.shape[0]
    mean = np.asarray(X.mean(axis=0)).ravel()
    zero = 1.0 - np.diff(X.tocsc().indptr) / n
    ok = (mean > 0) & (zero > 0) & (zero < 1)
    if ok.sum() >= 3:
        b, a = np.polyfit(np.log(mean[ok]), np.log(zero[ok] / (1 - zero[ok])), 1)
        out["rna_dropout_at_mean1"] = float(1.0 / (1.0 + math.exp(-a)))
        out["rna_dropout_slope"] = float(b)
    expressed = mean >= 0.1
    if expressed.any():
        out["rna_dropout_excess_frac"] = float(np.mean(zero[expressed] > np.exp(-mean[expressed]) + 0.05))


def _rna_pca(X: sp.csr_matrix, n_comps: int, seed: int) -> np.ndarray:
    """al.pp.pca_rna's recipe on raw counts (datasets may not import pp; tests check they agree)."""
    import anndata as ad
    import scanpy as sc

    tmp = ad.AnnData(X=X.astype(np.float32))
    if tmp.n_vars > 2000:
        tmp.layers["counts"] = tmp.X.copy()
        sc.pp.highly_variable_genes(tmp, n_top_genes=2000, flavor="seurat_v3", layer="counts")
        tmp = tmp[:, tmp.var["highly_variable"].to_numpy()].copy()
    sc.pp.normalize_total(tmp, target_sum=1e4)
    sc.pp.log1p(tmp)
    tmp.X = tmp.X.toarray() if sp.issparse(tmp.X) else tmp.X
    sc.pp.scale(tmp, max_value=10)
    n = min(n_comps, min(tmp.shape) - 1)
    sc.pp.pca(tmp, n_comps=n, random_state=seed)
    return np.asarray(tmp.obsm["X_pca"], dtype=np.float64)


def _atac_lsi(X: sp.csr_matrix, n_comps: int, seed: int) -> np.ndarray:
    """al.pp.lsi's defaults (Signac TF-IDF, randomised SVD with 15 iterations, GLUE standardisation)."""
    from sklearn.utils.extmath import randomized_svd

    n_cells = X.shape[0]
    row = np.asarray(X.sum(axis=1)).ravel()
    col = np.asarray(X.sum(axis=0)).ravel()
    inv_row = np.divide(1.0, row, out=np.zeros_like(row), where=row > 0)
    idf = np.divide(n_cells, col, out=np.zeros_like(col), where=col > 0)
    T = sp.csr_matrix(sp.diags(inv_row) @ X @ sp.diags(idf * 1e4))
    np.log1p(T.data, out=T.data)
    T = T.astype(np.float32).astype(np.float64)
    n = min(n_comps, min(T.shape) - 1)
    U, _, _ = randomized_svd(T, n_components=n, n_iter=15, random_state=seed)
    emb = U - U.mean(axis=1, keepdims=True)
    sd = emb.std(axis=1, ddof=1, keepdims=True)
    return np.divide(emb, sd, out=np.zeros_like(emb), where=sd > 1e-8)


def _truth_fraction(mdata, rna, key: str) -> float | None:
    for obs in (rna.obs, mdata.obs):
        if key in obs.columns:
            return float(np.mean(obs[key].to_numpy(dtype=bool)))
    if isinstance(mdata.uns.get("truth"), dict):
        return 0.0
    return None


def calibration_stats(
    mdata,
    *,
    cell_type_key: str | None = "cell_type",
    rna_mod: str = "rna",
    atac_mod: str = "atac",
    max_cells: int = 2000,
    n_comps: int = 50,
    doublet_key: str = "truth_doublet",
    low_quality_key: str = "truth_low_quality",
    seed: int = 0,
) -> dict[str, float]:
    """Statistics of a paired multiome dataset's raw counts, for calibrating the simulator.

    Every statistic is defined in :data:`CALIBRATION_STATISTICS`. Raw counts are read through the
    data-access layer (``.layers["counts"]``, else ``.X`` when it holds counts). Cell-type statistics
    need ``obs[cell_type_key]`` (the RNA modality's, else ``mdata.obs``); cells without a type are left out
    of them. The silhouettes embed at most ``max_cells`` cells drawn with ``seed``.

    Parameters
    ----------
    mdata
        MuData with an RNA and an ATAC modality of the same cells.
    cell_type_key
        ``obs`` column of known cell types; None (or absent) skips the cell-type statistics.
    rna_mod
        RNA modality.
    atac_mod
        ATAC modality.
    max_cells
        Cells embedded for the silhouettes (a random subset when there are more).
    n_comps
        Components of the RNA PCA and the ATAC LSI (capped by the data's shape).
    doublet_key
        Boolean ``obs`` column marking doublets (simulation truth).
    low_quality_key
        Boolean ``obs`` column marking low-quality cells (simulation truth).
    seed
        Seed of the cell subset, the PCA and the randomised SVD.

    Returns
    -------
    dict
        Statistic name -> float. Statistics that cannot be computed (no cell types, no truth) are absent.

    Raises
    ------
    AttuneInputError
        When a modality is missing, holds no raw counts (the message names the modality and the state
        of its values), or the two modalities do not hold the same number of cells.
    """
    rna = get_modality(mdata, rna_mod, role="RNA")
    atac = get_modality(mdata, atac_mod, role="ATAC")
    if rna.n_obs != atac.n_obs:
        raise AttuneInputError(f"calibration_stats: mdata[{rna_mod!r}] has {rna.n_obs} cells but "
                               f"mdata[{atac_mod!r}] has {atac.n_obs}; they must be the same cells")
    if int(max_cells) < 10:
        raise AttuneInputError(f"max_cells={max_cells!r}; use at least 10")
    R, _, _ = _counts(rna, f"mdata[{rna_mod!r}]", allow_binary=False)
    A, _, _ = _counts(atac, f"mdata[{atac_mod!r}]", allow_binary=True)
    out: dict[str, float] = {}

    umis = np.asarray(R.sum(axis=1)).ravel()
    genes = np.diff(R.indptr).astype(float)
    _quantiles(umis, "rna_umis", out)
    _quantiles(genes, "rna_genes", out)
    out["rna_umis_p90_p10"] = out["rna_umis_p90"] / out["rna_umis_p10"] if out["rna_umis_p10"] > 0 else math.inf
    out["rna_umis_per_gene"] = out["rna_umis_median"] / R.shape[1]
    out["rna_genes_frac_median"] = out["rna_genes_median"] / R.shape[1]
    out["rna_density"] = R.nnz / (R.shape[0] * R.shape[1])
    _dropout_curve(R, out)

    counts = np.asarray(A.sum(axis=1)).ravel()
    peaks = np.diff(A.indptr).astype(float)
    _quantiles(counts, "atac_counts", out)
    _quantiles(peaks / A.shape[1], "atac_peaks_frac", out)
    out["atac_counts_p90_p10"] = (out["atac_counts_p90"] / out["atac_counts_p10"] if out["atac_counts_p10"] > 0
                                  else math.inf)
    out["atac_counts_per_peak"] = out["atac_counts_median"] / A.shape[1]
    out["atac_density"] = A.nnz / (A.shape[0] * A.shape[1])
    out["atac_nonzero_above1"] = float(np.mean(A.data > 1)) if A.nnz else 0.0
    out["atac_nonzero_even"] = float(np.mean(np.mod(A.data, 2) == 0)) if A.nnz else 0.0
    detection = np.diff(A.tocsc().indptr) / A.shape[0]
    p10, p50, p90 = np.percentile(detection, [10, 50, 90])
    out["atac_peak_detection_p10"], out["atac_peak_detection_median"] = float(p10), float(p50)
    out["atac_peak_detection_p90"] = float(p90)

    labels = None
    if cell_type_key is not None:
        for obs in (rna.obs, mdata.obs):
            if cell_type_key in obs.columns:
                labels = obs[cell_type_key]
                break
    if labels is not None:
        lab = pd.Series(labels.to_numpy(), dtype=object)
        known = lab.notna().to_numpy()
        out.update(cell_type_stats(lab))
        out.update(_silhouettes(R, A, lab.to_numpy(), known, max_cells=int(max_cells), n_comps=n_comps, seed=seed))

    for name, key in (("doublet_frac", doublet_key), ("low_quality_frac", low_quality_key)):
        value = _truth_fraction(mdata, rna, key)
        if value is not None:
            out[name] = value
    return out


def cell_type_stats(labels) -> dict[str, float]:
    """``n_cell_types``, ``cell_type_entropy`` and ``cell_type_largest_share`` of a vector of labels (NaN left out).

    Parameters
    ----------
    labels
        One cell type per cell (missing values are ignored).
    """
    lab = pd.Series(np.asarray(labels, dtype=object))
    sizes = lab[lab.notna()].value_counts()
    if not len(sizes):
        return {}
    p = sizes.to_numpy(float) / sizes.sum()
    return {"n_cell_types": float(len(sizes)),
            "cell_type_entropy": float(-(p * np.log(p)).sum() / math.log(len(p))) if len(p) > 1 else 0.0,
            "cell_type_largest_share": float(p.max())}


def _silhouettes(R, A, labels, known, *, max_cells: int, n_comps: int, seed: int) -> dict[str, float]:
    from sklearn.metrics import silhouette_score

    idx = np.flatnonzero(known)
    rng = np.random.default_rng(seed)
    if idx.size > max_cells:
        idx = np.sort(rng.choice(idx, size=max_cells, replace=False))
    lab = labels[idx].astype(str)
    # keep types with >= 2 sampled cells; silhouette needs 2 to n - 1 labels
    vals, cnt = np.unique(lab, return_counts=True)
    keep = np.isin(lab, vals[cnt >= 2])
    idx, lab = idx[keep], lab[keep]
    if np.unique(lab).size < 2 or idx.size <= np.unique(lab).size:
        return {}
    Rs, As = R[idx], A[idx]
    # a cell without counts in one modality is left out of that modality's embedding
    rna_ok = np.asarray(Rs.sum(axis=1)).ravel() > 0
    atac_ok = np.asarray(As.sum(axis=1)).ravel() > 0
    out = {"rna_silhouette": float(silhouette_score(_rna_pca(Rs[rna_ok], n_comps, seed), lab[rna_ok])),
           "atac_silhouette": float(silhouette_score(_atac_lsi(As[atac_ok], n_comps, seed), lab[atac_ok]))}
    out["rna_minus_atac_silhouette"] = out["rna_silhouette"] - out["atac_silhouette"]
    return out


# ---------------------------------------------------------------------------------------------
# targets
# ---------------------------------------------------------------------------------------------

#: feature totals of the full NeurIPS 2021 BMMC Multiome dataset (69,249 cells x 13,431 genes; ATAC
#: 116,490 peaks), from https://openproblems.bio/datasets/openproblems_neurips2021/bmmc_multiome
BMMC_FULL_GENES = 13431
BMMC_FULL_PEAKS = 116490

MEASURED_DATASETS = {
    "bmmc500_openproblems": "real 10x Multiome bone marrow (Luecken et al. 2021, NeurIPS 2021 challenge), 500 cells "
                            "of the registered subset bmmc500_openproblems",
    "pbmc1k_muon": "real 10x Multiome PBMC, 1,000 cells (45 marker genes, 174 peaks near them) of the registered "
                   "subset pbmc1k_muon",
    "share_tac": "SHARE-seq mouse skin TAC subset (Ma et al. 2020), cell types of the 6,436 cells released with "
                 "the original Attune (attune_release/share_tac/celltype.csv)",
    "cortex_trevino": "fetal human cortex 10x Multiome (Trevino et al. 2021), clusters of the 4,693 cells released "
                      "with the original Attune (attune_release/cortex/pseudotime.txt)",
}

# BEGIN MEASURED TARGETS (written by `python benchmarks/calibration_targets.py --write`; do not edit by hand)
MEASURED_TARGETS: list[tuple[str, str, float, str]] = [
    ('bmmc500_openproblems', 'rna_dropout_at_mean1', 0.5129153725667024,
     "the registered 500 cells x 600 genes / 600 peaks (layers['counts'])"),
    ('bmmc500_openproblems', 'rna_dropout_slope', -1.0345244175112103,
     "the registered 500 cells x 600 genes / 600 peaks (layers['counts'])"),
    ('bmmc500_openproblems', 'rna_dropout_excess_frac', 0.5908141962421712,
     "the registered 500 cells x 600 genes / 600 peaks (layers['counts'])"),
    ('bmmc500_openproblems', 'atac_nonzero_above1', 0.9058141726347531,
     "the registered 500 cells x 600 genes / 600 peaks (layers['counts'])"),
    ('bmmc500_openproblems', 'atac_nonzero_even', 0.8613597813795703,
     "the registered 500 cells x 600 genes / 600 peaks (layers['counts'])"),
    ('bmmc500_openproblems', 'n_cell_types', 21.0,
     "the registered 500 cells x 600 genes / 600 peaks (layers['counts'])"),
    ('bmmc500_openproblems', 'cell_type_entropy', 0.8096473321956147,
     "the registered 500 cells x 600 genes / 600 peaks (layers['counts'])"),
    ('bmmc500_openproblems', 'cell_type_largest_share', 0.178,
     "the registered 500 cells x 600 genes / 600 peaks (layers['counts'])"),
    ('bmmc500_openproblems', 'rna_silhouette', -0.016179955417440196,
     "the registered 500 cells x 600 genes / 600 peaks (layers['counts'])"),
    ('bmmc500_openproblems', 'atac_silhouette', -0.05142908688951958,
     "the registered 500 cells x 600 genes / 600 peaks (layers['counts'])"),
    ('bmmc500_openproblems', 'rna_minus_atac_silhouette', 0.035249131472079386,
     "the registered 500 cells x 600 genes / 600 peaks (layers['counts'])"),
    ('bmmc500_openproblems', 'rna_umis_median', 2220.5,
     "whole library: the providers' per-cell QC obs['n_counts']"),
    ('bmmc500_openproblems', 'rna_umis_p10', 1220.9,
     "whole library: the providers' per-cell QC obs['n_counts']"),
    ('bmmc500_openproblems', 'rna_umis_p90', 5017.600000000001,
     "whole library: the providers' per-cell QC obs['n_counts']"),
    ('bmmc500_openproblems', 'rna_umis_p90_p10', 4.109755098697683,
     "whole library: the providers' per-cell QC obs['n_counts']"),
    ('bmmc500_openproblems', 'rna_umis_per_gene', 0.1653264835083017,
     "whole library: the providers' per-cell QC obs['n_counts'] / 13,431 genes"),
    ('bmmc500_openproblems', 'rna_genes_median', 1315.0,
     "whole library: the providers' per-cell QC obs['n_genes']"),
    ('bmmc500_openproblems', 'rna_genes_p10', 803.4000000000001,
     "whole library: the providers' per-cell QC obs['n_genes']"),
    ('bmmc500_openproblems', 'rna_genes_p90', 2358.700000000002,
     "whole library: the providers' per-cell QC obs['n_genes']"),
    ('bmmc500_openproblems', 'rna_genes_frac_median', 0.09790782518055245,
     "whole library: the providers' per-cell QC obs['n_genes'] / 13,431 genes"),
    ('bmmc500_openproblems', 'rna_density', 0.1116783560419924,
     "whole library: the providers' per-cell QC obs['n_genes'] (mean) / 13,431 genes"),
    ('bmmc500_openproblems', 'atac_counts_median', 7107.5,
     "whole library: the providers' per-cell QC obs['nCount_peaks']"),
    ('bmmc500_openproblems', 'atac_counts_p10', 1982.7,
     "whole library: the providers' per-cell QC obs['nCount_peaks']"),
    ('bmmc500_openproblems', 'atac_counts_p90', 12968.600000000002,
     "whole library: the providers' per-cell QC obs['nCount_peaks']"),
    ('bmmc500_openproblems', 'atac_counts_p90_p10', 6.540878599889041,
     "whole library: the providers' per-cell QC obs['nCount_peaks']"),
    ('bmmc500_openproblems', 'atac_counts_per_peak', 0.061013820928835096,
     "whole library: the providers' per-cell QC obs['nCount_peaks'] / 116,490 peaks"),
    ('pbmc1k_muon', 'rna_dropout_at_mean1', 0.6676138973544252,
     '1,000 cells x 45 genes / 174 peaks (.X, raw counts)'),
    ('pbmc1k_muon', 'rna_dropout_slope', -0.9333312259276775,
     '1,000 cells x 45 genes / 174 peaks (.X, raw counts)'),
    ('pbmc1k_muon', 'rna_dropout_excess_frac', 0.975609756097561,
     '1,000 cells x 45 genes / 174 peaks (.X, raw counts)'),
    ('pbmc1k_muon', 'atac_nonzero_above1', 0.9009470679813181,
     '1,000 cells x 45 genes / 174 peaks (.X, raw counts)'),
    ('pbmc1k_muon', 'atac_nonzero_even', 0.8753243383497665,
     '1,000 cells x 45 genes / 174 peaks (.X, raw counts)'),
    ('share_tac', 'n_cell_types', 5.0,
     "obs['cell_type'] of the released metadata"),
    ('share_tac', 'cell_type_entropy', 0.8809209513925715,
     "obs['cell_type'] of the released metadata"),
    ('share_tac', 'cell_type_largest_share', 0.4701678060907396,
     "obs['cell_type'] of the released metadata"),
    ('cortex_trevino', 'n_cell_types', 8.0,
     "obs['cell_type'] of the released metadata"),
    ('cortex_trevino', 'cell_type_entropy', 0.8589650721046499,
     "obs['cell_type'] of the released metadata"),
    ('cortex_trevino', 'cell_type_largest_share', 0.348817387598551,
     "obs['cell_type'] of the released metadata"),
]
# END MEASURED TARGETS

#: published values: (reference, statistic, value, source)
PUBLISHED_TARGETS: list[tuple[str, str, float, str]] = [
    ("pbmc10k_multiome", "doublet_frac", 0.08,
     "published: 10x Genomics knowledge base article 360059124751 (kb.10xgenomics.com), estimated multiplet "
     "rate of the standard Next GEM single-cell assays ~0.4 % at 500 to ~8 % at 10,000 recovered cells; "
     "the value at ~10,000 cells (the PBMC 10k Multiome run)"),
]

#: the statistics each measured dataset contributes (the bone-marrow subset's own per-cell totals and
#: sparsity are not used: its 600 genes and 600 peaks are selected, see the module docstring)
_BMMC_WHOLE_LIBRARY = ("rna_umis_median", "rna_umis_p10", "rna_umis_p90", "rna_umis_p90_p10", "rna_umis_per_gene",
                       "rna_genes_median", "rna_genes_p10", "rna_genes_p90", "rna_genes_frac_median", "rna_density",
                       "atac_counts_median", "atac_counts_p10", "atac_counts_p90", "atac_counts_p90_p10",
                       "atac_counts_per_peak")
_RELATIONSHIPS = ("rna_dropout_at_mean1", "rna_dropout_slope", "rna_dropout_excess_frac", "atac_nonzero_above1",
                  "atac_nonzero_even")

#: reference name -> list of (dataset or "published", statistics or None for all it has); the first
#: source of a statistic gives its target, every listed source widens its band
_REFERENCES: dict[str, list[tuple[str, tuple[str, ...] | None]]] = {
    "pbmc10k_multiome": [("published", None), ("pbmc1k_muon", None), ("bmmc500_openproblems", None)],
    "10x_multiome_technology": [("pbmc1k_muon", None), ("bmmc500_openproblems", tuple(
        s for s in _STATS if s not in _CELL_TYPE_STATS))],
    "bmmc_multiome": [("bmmc500_openproblems", None)],
    "pbmc_multiome_muon": [("pbmc1k_muon", None)],
    "share_seq_skin": [("share_tac", None)],
    "fetal_cortex_trevino": [("cortex_trevino", None)],
}

#: the named references of :func:`calibration_targets` and what each is built from
CALIBRATION_REFERENCES = {
    "pbmc10k_multiome": "10x PBMC Multiome (the paper's dataset): feature relationships measured on pbmc1k_muon, "
                        "depth, sparsity, cell types and separation on the closest labelled 10x Multiome here "
                        "(bone marrow, bmmc500_openproblems), and the published doublet rate",
    "10x_multiome_technology": "what does not depend on the tissue's cell types: pbmc10k_multiome without the "
                               "cell-type statistics and the doublet rate",
    "bmmc_multiome": "10x Multiome bone marrow, measured on bmmc500_openproblems (whole-library depth from the "
                     "providers' per-cell QC)",
    "pbmc_multiome_muon": "10x Multiome PBMC, measured on pbmc1k_muon (feature relationships only)",
    "share_seq_skin": "SHARE-seq skin TAC (Ma et al. 2020): cell-type proportions of the released cells only",
    "fetal_cortex_trevino": "fetal cortex (Trevino et al. 2021): cluster proportions of the released cells only",
}


def _measured_table(measured: pd.DataFrame | None) -> pd.DataFrame:
    if measured is None:
        measured = pd.DataFrame(MEASURED_TARGETS, columns=["dataset", "statistic", "value", "how"])
    need = {"dataset", "statistic", "value", "how"}
    if not need <= set(measured.columns):
        raise AttuneInputError(f"measured needs the columns {sorted(need)}; got {list(measured.columns)}")
    return measured


def calibration_targets(reference: str = "pbmc10k_multiome", *, measured: pd.DataFrame | None = None) -> pd.DataFrame:
    """Targets of a named real reference, each with its band and source.

    Parameters
    ----------
    reference
        One of :data:`CALIBRATION_REFERENCES`: ``"pbmc10k_multiome"`` (default), ``"10x_multiome_technology"``,
        ``"bmmc_multiome"``, ``"pbmc_multiome_muon"``, ``"share_seq_skin"``, ``"fetal_cortex_trevino"``.
    measured
        Measured values (the output of :func:`measure_calibration_targets`) to use instead of the table
        shipped with the package.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``statistic``: ``target``, ``low``, ``high`` (the band), ``source`` (where the target
        comes from and how it was computed), ``definition``. Statistics without a real or published value
        are absent.
    """
    if reference not in _REFERENCES:
        raise AttuneInputError(f"reference={reference!r}; choose one of {sorted(_REFERENCES)}")
    table = _measured_table(measured)
    values: dict[str, list[tuple[float, str]]] = {}
    for dataset, stats in _REFERENCES[reference]:
        if dataset == "published":
            rows = [(s, v, src) for ref, s, v, src in PUBLISHED_TARGETS if ref == reference]
        else:
            sub = table[table["dataset"] == dataset]
            rows = [(s, float(v), f"measured: {MEASURED_DATASETS[dataset]}; {how}")
                    for s, v, how in zip(sub["statistic"], sub["value"], sub["how"])]
        for s, v, src in rows:
            if (stats is None or s in stats) and np.isfinite(v):
                values.setdefault(s, []).append((v, src))
    out = []
    for s in _STATS:
        if s not in values:
            continue
        vals = [v for v, _ in values[s]]
        _, kind, tol = _STATS[s]
        low, high = (min(vals) / tol, max(vals) * tol) if kind == "fold" else (min(vals) - tol, max(vals) + tol)
        if s in _UNIT_INTERVAL:
            low, high = max(low, 0.0), min(high, 1.0)
        src = values[s][0][1] + "".join(f" | band also spans {v:.4g} ({src.split(';')[0]})"
                                        for v, src in values[s][1:])
        out.append({"statistic": s, "target": vals[0], "low": low, "high": high, "source": src,
                    "definition": _STATS[s][0]})
    return pd.DataFrame(out, columns=["statistic", "target", "low", "high", "source", "definition"]
                        ).set_index("statistic")


def calibration_report(
    mdata,
    *,
    reference: str | list[str] = "pbmc10k_multiome",
    cell_type_key: str | None = "cell_type",
    rna_mod: str = "rna",
    atac_mod: str = "atac",
    max_cells: int = 2000,
    measured: pd.DataFrame | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Compare a (simulated) MuData with the targets of a real reference, one row per statistic.

    Parameters
    ----------
    mdata
        MuData of raw counts, typically from :func:`~attune_lib.datasets.simulate_multiome`.
    reference
        A name of :data:`CALIBRATION_REFERENCES`, or a list of names (a statistic takes its target from the
        first reference that has one), e.g. ``["share_seq_skin", "10x_multiome_technology"]``.
    cell_type_key
        ``obs`` column of known cell types (see :func:`calibration_stats`).
    rna_mod
        RNA modality.
    atac_mod
        ATAC modality.
    max_cells
        Cells embedded for the silhouettes.
    measured
        Measured target values to use instead of the shipped table (see :func:`calibration_targets`).
    seed
        Seed of :func:`calibration_stats`.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``statistic`` (every statistic that both has a target and could be measured on
        ``mdata``): ``simulated``, ``target``, ``low``, ``high``, ``in_band`` (bool), ``ratio``
        (simulated / target), ``reference``, ``source``. ``.attrs["untargeted"]`` lists the measured
        statistics without a target, ``.attrs["not_measured"]`` the targets that ``mdata`` cannot give.

    Examples
    --------
    >>> import attune_lib as al
    >>> sim = al.datasets.simulate_multiome("pbmc", size="small", seed=0)
    >>> report = al.datasets.calibration_report(sim)
    >>> print(report[["simulated", "target", "low", "high", "in_band"]].to_string())  # doctest: +SKIP
    """
    names = [reference] if isinstance(reference, str) else list(reference)
    if not names:
        raise AttuneInputError("reference is empty; pass a name of CALIBRATION_REFERENCES")
    targets = []
    for name in names:
        t = calibration_targets(name, measured=measured)
        t["reference"] = name
        targets.append(t[~t.index.isin([i for tt in targets for i in tt.index])])
    targets = pd.concat(targets)
    stats = calibration_stats(mdata, cell_type_key=cell_type_key, rna_mod=rna_mod, atac_mod=atac_mod,
                              max_cells=max_cells, seed=seed)
    rows = []
    for s in targets.index:
        if s not in stats:
            continue
        v, t = stats[s], targets.loc[s]
        rows.append({"statistic": s, "simulated": v, "target": t["target"], "low": t["low"], "high": t["high"],
                     "in_band": bool(t["low"] <= v <= t["high"]),
                     "ratio": v / t["target"] if t["target"] != 0 else math.nan,
                     "reference": t["reference"], "source": t["source"]})
    report = pd.DataFrame(rows, columns=["statistic", "simulated", "target", "low", "high", "in_band", "ratio",
                                         "reference", "source"]).set_index("statistic")
    report.attrs["untargeted"] = [s for s in stats if s not in targets.index]
    report.attrs["not_measured"] = [s for s in targets.index if s not in stats]
    return report


# ---------------------------------------------------------------------------------------------
# measuring the targets on the registered real data
# ---------------------------------------------------------------------------------------------


def _bmmc_rows(offline: bool | None, seed: int, max_cells: int) -> list[tuple[str, str, float, str]]:
    from ._fetch import fetch
    from ._readers import read_h5ad_pair

    p = fetch("bmmc500_openproblems", offline=offline)
    mdata = read_h5ad_pair(p["rna.h5ad"], p["atac.h5ad"])
    rna, atac = mdata["rna"], mdata["atac"]
    ds = "bmmc500_openproblems"
    stats = calibration_stats(mdata, seed=seed, max_cells=max_cells)
    sub = "the registered 500 cells x 600 genes / 600 peaks (layers['counts'])"
    rows = [(ds, s, stats[s], sub) for s in (*_RELATIONSHIPS, *_CELL_TYPE_STATS) if s in stats]
    missing = [c for c in ("n_counts", "n_genes") if c not in rna.obs] + (
        ["nCount_peaks"] if "nCount_peaks" not in atac.obs else [])
    if missing:
        raise AttuneInputError(f"{p['rna.h5ad']} / {p['atac.h5ad']}: obs column(s) {missing} missing")
    whole = {}
    _quantiles(rna.obs["n_counts"].to_numpy(float), "rna_umis", whole)
    _quantiles(rna.obs["n_genes"].to_numpy(float), "rna_genes", whole)
    _quantiles(atac.obs["nCount_peaks"].to_numpy(float), "atac_counts", whole)
    whole["rna_umis_p90_p10"] = whole["rna_umis_p90"] / whole["rna_umis_p10"]
    whole["atac_counts_p90_p10"] = whole["atac_counts_p90"] / whole["atac_counts_p10"]
    whole["rna_umis_per_gene"] = whole["rna_umis_median"] / BMMC_FULL_GENES
    whole["rna_genes_frac_median"] = whole["rna_genes_median"] / BMMC_FULL_GENES
    whole["rna_density"] = float(rna.obs["n_genes"].to_numpy(float).mean() / BMMC_FULL_GENES)
    whole["atac_counts_per_peak"] = whole["atac_counts_median"] / BMMC_FULL_PEAKS
    how = {"rna_umis": "obs['n_counts']", "rna_genes": "obs['n_genes']", "atac_counts": "obs['nCount_peaks']"}
    for s in _BMMC_WHOLE_LIBRARY:
        col = next((c for k, c in how.items() if s.startswith(k)), "obs['n_genes'] (mean)")
        per = (f" / {BMMC_FULL_GENES:,} genes" if s.startswith("rna") and ("per_gene" in s or "frac" in s
                                                                          or s == "rna_density")
               else f" / {BMMC_FULL_PEAKS:,} peaks" if s == "atac_counts_per_peak" else "")
        rows.append((ds, s, float(whole[s]), f"whole library: the providers' per-cell QC {col}{per}"))
    return rows


def measure_calibration_targets(*, seed: int = 0, max_cells: int = 2000, offline: bool | None = None) -> pd.DataFrame:
    """Measure the calibration targets on the registered real data (the numbers shipped in ``MEASURED_TARGETS``).

    Loads ``bmmc500_openproblems`` (:func:`~attune_lib.datasets.read_h5ad_pair` of its manifest's files),
    ``pbmc1k_muon`` (:func:`~attune_lib.datasets.pbmc1k`), and the cell metadata released with the original
    Attune for SHARE-seq skin and fetal cortex (:func:`~attune_lib.datasets.load_share_tac_metadata`,
    :func:`~attune_lib.datasets.load_cortex_metadata`) through the data cache (``ATTUNE_DATA_DIR``).

    Parameters
    ----------
    seed
        Seed of :func:`calibration_stats` (cell subset, PCA, randomised SVD).
    max_cells
        Cells embedded for the silhouettes.
    offline
        Refuse to download (None: ``$ATTUNE_OFFLINE``); a missing file raises an error naming it.

    Returns
    -------
    pandas.DataFrame
        One row per measured value: ``dataset``, ``statistic``, ``value``, ``how``.
    """
    from ._real import load_cortex_metadata, load_share_tac_metadata, pbmc1k

    rows = _bmmc_rows(offline, seed, max_cells)
    stats = calibration_stats(pbmc1k(annotate=False, offline=offline), cell_type_key=None, seed=seed)
    rows += [("pbmc1k_muon", s, stats[s], "1,000 cells x 45 genes / 174 peaks (.X, raw counts)")
             for s in _RELATIONSHIPS if s in stats]
    for ds, meta in (("share_tac", load_share_tac_metadata(offline=offline)),
                     ("cortex_trevino", load_cortex_metadata(offline=offline))):
        rows += [(ds, s, v, "obs['cell_type'] of the released metadata") for s, v in cell_type_stats(
            meta["cell_type"]).items()]
    return pd.DataFrame(rows, columns=["dataset", "statistic", "value", "how"])
