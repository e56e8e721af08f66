"""Differentially peak-associated genes (DPAGs), DE genes, their overlap and over-representation
(paper Fig. 3D-E).

See ``docs/regulatory.md``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .._utils import AttuneInputError, get_modality, renamed_kwargs
from ._obs import group_labels

logger = logging.getLogger("attune_lib")

__all__ = [
    "find_dpags",
    "differential_genes",
    "dpag_de_overlap",
    "enrichment",
    "simulated_gene_sets",
]


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
@renamed_kwargs(rna_key="rna_mod")
def differential_genes(mdata, *, groupby: str = "cell_type", rna_mod: str = "rna", layer: str | None = None,
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
    rna_mod
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

    rna = get_modality(mdata, rna_mod, role="RNA")
    labels = group_labels(mdata, rna, groupby).astype(str)
    X = rna.X if layer is None else rna.layers.get(layer, None)
    if X is None:
        raise AttuneInputError(f"layer {layer!r} not in mdata[{rna_mod!r}].layers")
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
