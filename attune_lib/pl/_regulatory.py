"""Plots of the regulatory-inference analysis (paper Fig. 3A-F, Supp. Fig. S4a); each returns the Figure."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.sparse as sp
from matplotlib.figure import Figure

from .._utils import AttuneInputError, get_modality

__all__ = [
    "attention_elbow",
    "dpag_dotplot",
    "enrichment_bars",
    "link_auroc",
    "link_comparison",
    "link_heatmap",
    "pchic_distances",
    "window_sweep",
]

_HIGHLIGHT = "#c0392b"
_OTHER = "#7f8c8d"


def _need(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise AttuneInputError(f"{what}: expected a DataFrame, got {type(df).__name__}")
    miss = [c for c in cols if c not in df]
    if miss:
        raise AttuneInputError(f"{what}: missing column(s) {miss}; available: {list(df.columns)}")


def pchic_distances(pchic_table: pd.DataFrame, *, cell_types: Sequence[str] | None = None, min_score: float = 5.0,
                    window_bp: float = 1_200_000, max_kb: float = 3000.0, bins: int = 60) -> Figure:
    """Distance between bait and other-end midpoints of the PCHi-C interactions (Fig. 3A).

    Interactions with a score >= ``min_score`` in at least one of ``cell_types`` (default all score columns),
    same chromosome. Histogram of ``|distance|`` (kb) with the cumulative fraction and the window marked.

    Parameters
    ----------
    pchic_table
        PCHi-C interactions in the Javierre table layout (``baitChr``, ``baitStart``, ``baitEnd``, ``oeChr``,
        ``oeStart``, ``oeEnd`` and one score column per cell type).
    cell_types
        Score columns considered (None: all).
    min_score
        Smallest score (CHiCAGO) kept.
    window_bp
        Window half-width marked on the plot (bp).
    max_kb
        Largest distance shown (kb).
    bins
        Histogram bins.
    """
    from ..tl._pchic import pchic_score_columns as _pchic_score_columns

    _need(pchic_table, ["baitStart", "baitEnd", "oeStart", "oeEnd"], "pchic_table")
    cols = _pchic_score_columns(pchic_table) if cell_types is None else list(cell_types)
    t = pchic_table
    keep = t[cols].to_numpy(dtype=float).max(axis=1) >= min_score if cols else np.ones(len(t), bool)
    if "baitChr" in t and "oeChr" in t:
        keep &= t["baitChr"].astype(str).to_numpy() == t["oeChr"].astype(str).to_numpy()
    d = np.abs((t["oeStart"] + t["oeEnd"]) / 2 - (t["baitStart"] + t["baitEnd"]) / 2).to_numpy()[keep] / 1e3
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.hist(np.clip(d, 0, max_kb), bins=bins, color="#5d6d7e", alpha=0.85)
    ax.set_xlabel("bait - other end distance (kb)")
    ax.set_ylabel("interactions")
    ax2 = ax.twinx()
    ds = np.sort(d)
    ax2.plot(np.clip(ds, 0, max_kb), np.arange(1, len(ds) + 1) / max(len(ds), 1), color=_HIGHLIGHT, lw=1.5)
    ax2.set_ylabel("cumulative fraction", color=_HIGHLIGHT)
    ax2.set_ylim(0, 1.02)
    w = window_bp / 1e3
    frac = float((d <= w).mean()) if len(d) else np.nan
    ax.axvline(w, color="k", ls="--", lw=1)
    ax.text(w, ax.get_ylim()[1] * 0.95, f" {w:g} kb\n {100 * frac:.1f}% within", va="top", fontsize=8)
    ax.set_title(f"PCHi-C interactions (n={len(d):,}, score >= {min_score:g})", fontsize=10)
    fig.tight_layout()
    return fig


def link_auroc(scores: pd.DataFrame, *, metrics: Sequence[str] = ("auroc", "auprc"), bin: str = "all",
               highlight: str | None = "Attune + Transformer") -> Figure:
    """Bars of AUROC (and AUPRC) per method (Fig. 3B), from :func:`attune_lib.tl.score_links`.

    Parameters
    ----------
    scores
        Output of :func:`attune_lib.tl.score_links` (``method``, ``bin`` and the metric columns).
    metrics
        Metric columns, one panel each.
    bin
        Distance bin shown (``"all"``: every pair).
    highlight
        Method drawn in a highlight colour (None: none).
    """
    _need(scores, ["method", *metrics], "scores")
    df = scores[scores["bin"] == bin] if "bin" in scores else scores
    if df.empty:
        raise AttuneInputError(f"no rows with bin={bin!r}")
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics) + 0.6, 3.4))
    axes = np.atleast_1d(axes)
    for ax, met in zip(axes, metrics):
        d = df.sort_values(met, ascending=False)
        colors = [_HIGHLIGHT if m == highlight else _OTHER for m in d["method"]]
        ax.barh(d["method"].astype(str), d[met], color=colors)
        ax.invert_yaxis()
        for y, v in enumerate(d[met]):
            ax.text(v, y, f" {v:.3f}", va="center", fontsize=8)
        if met == "auroc":
            ax.axvline(0.5, color="k", ls=":", lw=1)
            ax.set_xlim(0, 1.08)
        elif "pos_rate" in d:
            ax.axvline(float(d["pos_rate"].iloc[0]), color="k", ls=":", lw=1)
            ax.set_xlim(0, min(1.0, float(d[met].max()) * 1.25 + 0.02))
        ax.set_xlabel(met.upper())
    n = df["n_pairs"].iloc[0] if "n_pairs" in df else None
    pos = df["n_pos"].iloc[0] if "n_pos" in df else None
    if n is not None:
        fig.suptitle(f"PCHi-C-supported pairs: {pos:,} of {n:,} candidates", fontsize=10)
    fig.tight_layout()
    return fig


def attention_elbow(links: pd.DataFrame, *, score: str = "score", top_fraction: float = 0.1,
                    log: bool = True) -> Figure:
    """Pairs ranked by attention, with the top-``top_fraction`` cut and the elbow (Fig. 3C).

    Parameters
    ----------
    links
        Link table with the score column.
    score
        Column ranking the pairs.
    top_fraction
        Fraction of top pairs marked (the paper's 10 %).
    log
        Logarithmic score axis.
    """
    from ..tl._link_scores import attention_cutoffs

    _need(links, [score], "links")
    s = np.sort(links[score].to_numpy(dtype=float)[np.isfinite(links[score].to_numpy(dtype=float))])[::-1]
    info = attention_cutoffs(s, top_fraction=top_fraction)
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    x = np.arange(1, len(s) + 1)
    ax.plot(x, s, color="#34495e", lw=1.5)
    if log and (s > 0).all():
        ax.set_yscale("log")
    ax.axvline(info["top_n"], color=_HIGHLIGHT, ls="--", lw=1.2,
               label=f"top {100 * top_fraction:g}%: {info['top_n']:,} pairs")
    ax.axvline(info["elbow_n"], color="#2980b9", ls=":", lw=1.2,
               label=f"elbow (max distance to chord): {info['elbow_n']:,} ({100 * info['elbow_fraction']:.1f}%)")
    ax.scatter([info["elbow_n"]], [info["elbow_threshold"]], color="#2980b9", zorder=3, s=18)
    ax.set_xlabel("gene-peak pairs ranked by attention")
    ax.set_ylabel(score)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def dpag_dotplot(mdata, dpags: Sequence[str] | pd.DataFrame, degs: pd.DataFrame | None = None, *,
                 groupby: str = "cell_type", rna_key: str = "rna", layer: str | None = None,
                 n_genes: int = 30) -> Figure:
    """DPAG expression across groups (Fig. 3D): mean z-scored expression (colour), fraction expressing (size).

    With ``degs`` (:func:`attune_lib.tl.differential_genes`), DE DPAGs are listed first, starred, and the
    left panel counts DE vs non-DE DPAGs.

    Parameters
    ----------
    mdata
        MuData with the RNA modality and the groups in ``obs``.
    dpags
        DPAG names, or the table of :func:`attune_lib.tl.find_dpags`.
    degs
        Table of :func:`attune_lib.tl.differential_genes` (None: no DE marks).
    groupby
        obs column with the groups.
    rna_key
        RNA modality name.
    layer
        RNA layer with log-normalised expression (None: ``.X``).
    n_genes
        Most DPAGs shown.
    """
    from ..tl._obs import group_labels as _group_labels

    rna = get_modality(mdata, rna_key, role="RNA")
    genes = list(dpags["gene"] if isinstance(dpags, pd.DataFrame) else dpags)
    genes = [g for g in genes if g in rna.var_names]
    if not genes:
        raise AttuneInputError("none of the DPAGs is in the RNA modality")
    de = set(degs["gene"].astype(str)) if degs is not None and len(degs) else set()
    ordered = [g for g in genes if g in de] + [g for g in genes if g not in de]
    show = ordered[:n_genes]
    lab = _group_labels(mdata, rna, groupby)
    groups = list(lab.cat.categories) if isinstance(lab.dtype, pd.CategoricalDtype) else sorted(lab.unique())
    lab = lab.astype(str).to_numpy()
    groups = [str(g) for g in groups if (lab == str(g)).any()]
    X = rna.X if layer is None else rna.layers[layer]
    X = X[:, rna.var_names.get_indexer(show)]
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    mean = np.stack([X[lab == g].mean(0) for g in groups], axis=1)
    frac = np.stack([(X[lab == g] > 0).mean(0) for g in groups], axis=1)
    sd = mean.std(1, keepdims=True)
    z = np.divide(mean - mean.mean(1, keepdims=True), sd, out=np.zeros_like(mean), where=sd > 0)
    h = max(3.0, 0.22 * len(show) + 1.2)
    fig, (ax0, ax) = plt.subplots(1, 2, figsize=(1.6 + 0.45 * len(groups) + 2.4, h),
                                  gridspec_kw={"width_ratios": [1.2, max(2.0, 0.45 * len(groups))]})
    n_de = sum(g in de for g in genes)
    ax0.bar(["DE", "not DE"], [n_de, len(genes) - n_de], color=[_HIGHLIGHT, _OTHER])
    ax0.set_title(f"{len(genes)} DPAGs", fontsize=10)
    ax0.set_ylabel("genes")
    yy, xx = np.meshgrid(np.arange(len(show)), np.arange(len(groups)), indexing="ij")
    scat = ax.scatter(xx.ravel(), yy.ravel(), c=z.ravel(), s=10 + 140 * frac.ravel(), cmap="RdBu_r", vmin=-2,
                      vmax=2, edgecolors="none")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(show)))
    ax.set_yticklabels([f"{g} *" if g in de else g for g in show], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(-0.6, len(groups) - 0.4)
    cb = fig.colorbar(scat, ax=ax, fraction=0.04, pad=0.02, shrink=min(1.0, 6.0 / h))
    cb.set_label("mean expression (z)", fontsize=8)
    ax.set_title("DPAG expression (* = DE)", fontsize=10)
    fig.tight_layout()
    return fig


def enrichment_bars(enr: pd.DataFrame, *, n_terms: int = 10, value: str = "padj", alpha: float = 0.05) -> Figure:
    """Top over-represented terms as bars of ``-log10(value)`` (Fig. 3E), from :func:`attune_lib.tl.enrichment`.

    Parameters
    ----------
    enr
        Output of :func:`attune_lib.tl.enrichment`.
    n_terms
        Number of terms shown.
    value
        Column of p-values plotted as ``-log10``.
    alpha
        Significance level marked with a line.
    """
    _need(enr, ["term", value, "n_overlap", "n_set"], "enrichment table")
    d = enr.sort_values(value).head(n_terms)
    fig, ax = plt.subplots(figsize=(6.0, max(2.4, 0.32 * max(len(d), 1) + 1.0)))
    if d.empty:
        ax.text(0.5, 0.5, "no terms", ha="center", va="center")
        ax.set_axis_off()
        return fig
    v = -np.log10(np.maximum(d[value].to_numpy(dtype=float), 1e-300))
    colors = [_HIGHLIGHT if p < alpha else _OTHER for p in d[value]]
    labels = [t if len(t) <= 45 else t[:42] + "..." for t in d["term"].astype(str)]
    ax.barh(labels, v, color=colors)
    ax.invert_yaxis()
    for y, (vv, k, n) in enumerate(zip(v, d["n_overlap"], d["n_set"])):
        ax.text(vv, y, f" {k}/{n}", va="center", fontsize=8)
    ax.axvline(-np.log10(alpha), color="k", ls=":", lw=1)
    ax.set_xlabel(f"-log10 {value}")
    ax.set_xlim(0, max(v.max() * 1.2, -np.log10(alpha) * 1.2))
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    return fig


def link_heatmap(data: dict[str, pd.DataFrame], *, titles: Sequence[str] = ("expression", "accessibility"),
                 cmap: str = "RdBu_r", vmax: float = 2.0) -> Figure:
    """Paired heatmaps of gene expression and peak accessibility across groups (Fig. 3F), rows = gene-peak
    pairs, from :func:`attune_lib.tl.link_heatmap_data`.

    Parameters
    ----------
    data
        Output of :func:`attune_lib.tl.link_heatmap_data` (``{"rna": ..., "atac": ...}``).
    titles
        Titles of the two heatmaps.
    cmap
        Colour map.
    vmax
        Colour-scale limit (symmetric around 0).
    """
    if not {"rna", "atac"} <= set(data):
        raise AttuneInputError("data needs 'rna' and 'atac' tables (tl.link_heatmap_data)")
    r, a = data["rna"], data["atac"]
    n = len(r)
    fig, axes = plt.subplots(1, 2, figsize=(2.8 + 0.38 * r.shape[1] * 2, max(3.0, 0.16 * n + 1.5)), sharey=True)
    for ax, m, title in zip(axes, (r, a), titles):
        im = ax.imshow(m.to_numpy(), aspect="auto", cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_xticks(range(m.shape[1]))
        ax.set_xticklabels(m.columns, rotation=60, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
    axes[0].set_yticks(range(n))
    axes[0].set_yticklabels(r.index, fontsize=6 if n > 30 else 7)
    cb = fig.colorbar(im, ax=list(axes), fraction=0.04, pad=0.02)
    cb.set_label("z-score across groups", fontsize=8)
    return fig


def window_sweep(sweep: pd.DataFrame, *, metric: str = "auroc", window_kb: float | None = 1200.0,
                 highlight: str | None = "Attune + Transformer") -> Figure:
    """AUROC of each method against the peak-gene window (Supp. Fig. S4a), from :func:`attune_lib.tl.window_sweep`.

    Parameters
    ----------
    sweep
        Output of :func:`attune_lib.tl.window_sweep`.
    metric
        Column plotted.
    window_kb
        Window of the main analysis, marked with a line (None: none).
    highlight
        Method drawn in a highlight colour (None: none).
    """
    _need(sweep, ["window_kb", "method", metric], "sweep")
    fig, ax = plt.subplots(figsize=(5.4, 3.6))
    for meth, d in sweep.groupby("method", sort=False):
        d = d.sort_values("window_kb")
        hl = meth == highlight
        ax.plot(d["window_kb"], d[metric], marker="o", ms=3.5, lw=2.2 if hl else 1.2,
                color=_HIGHLIGHT if hl else None, label=str(meth), zorder=3 if hl else 2)
    if window_kb is not None:
        ax.axvline(window_kb, color="k", ls="--", lw=1)
    ax.set_xlabel("peak-gene window (kb)")
    ax.set_ylabel(metric.upper())
    ax.legend(fontsize=7, frameon=False, ncol=2)
    fig.tight_layout()
    return fig


def link_comparison(evaluation: pd.DataFrame, *, truth: str | None = None,
                    metrics: Sequence[str] = ("auroc", "auprc", "auroc_distance_matched"),
                    reference: str | None = "Distance", highlight: str | None = None, ax=None) -> Figure:
    """Bars of each method's AUROC, AUPRC and distance-matched AUROC against one truth.

    Parameters
    ----------
    evaluation
        Output of :func:`attune_lib.tl.link_evaluation` (``truth, method`` and the metric columns).
    truth
        Which truth to show (default: the first in the table).
    metrics
        Metric columns, one panel each.
    reference
        Method drawn as a dashed line in every panel (distance alone, by default).
    highlight
        Method drawn in the highlight colour.
    ax
        Axes to draw on (one per metric, e.g. from ``plt.subplots(1, 3)``); new ones when ``None``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    _need(evaluation, ["truth", "method", *metrics], "evaluation")
    truth = evaluation["truth"].iloc[0] if truth is None else truth
    df = evaluation[evaluation["truth"] == truth]
    if df.empty:
        raise AttuneInputError(f"truth {truth!r} not in the evaluation; available: {sorted(set(evaluation['truth']))}")
    if ax is None:
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics) + 1.6, 0.32 * len(df) + 1.4),
                                 sharey=True)
    else:
        axes = ax
        fig = np.atleast_1d(axes)[0].figure
    axes = np.atleast_1d(axes)
    if len(axes) != len(metrics):
        raise AttuneInputError(f"ax: need {len(metrics)} axes (one per metric), got {len(axes)}")
    labels = {"auroc": "AUROC", "auprc": "AUPRC", "auroc_distance_matched": "distance-matched AUROC"}
    order = df["method"].tolist()[::-1]
    d = df.set_index("method").loc[order]
    for a, met in zip(axes, metrics):
        colors = [_HIGHLIGHT if m == highlight else _OTHER for m in order]
        a.barh(range(len(order)), d[met].to_numpy(dtype=float), color=colors)
        if reference is not None and reference in d.index:
            a.axvline(float(d.loc[reference, met]), color="k", ls="--", lw=1)
        if met != "auprc":
            a.axvline(0.5, color="0.6", ls=":", lw=1)
        a.set_yticks(range(len(order)))
        a.set_yticklabels(order, fontsize=8)
        a.set_xlabel(labels.get(met, met))
        for i, v in enumerate(d[met].to_numpy(dtype=float)):
            if np.isfinite(v):
                a.text(v, i, f" {v:.2f}", va="center", fontsize=7)
        a.set_xlim(0, 1.12 if met != "auprc" else max(0.05, float(np.nanmax(d[met])) * 1.25))
    fig.suptitle(f"links vs {truth} (dashed: {reference})" if reference else f"links vs {truth}", fontsize=10)
    fig.tight_layout()
    return fig
