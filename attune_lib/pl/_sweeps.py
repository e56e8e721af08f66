"""Plots of the Attune sweeps of :mod:`attune_lib.tl._sweeps` (paper Fig. 2D, 2E, contrast ablation).

Every function takes the sweep table (``sweep_features``, ``sweep_dimension``, ``sweep_contrast``) and
returns the matplotlib Figure. Only rows whose ``status`` starts with ``"ok"`` are drawn; rows of other
methods than Attune (the anchors of the sweep) are drawn as reference marks.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from . import _style as style

__all__ = ["contrast_ablation", "dimension_sweep", "feature_sweep"]


def _split_anchors(df: pd.DataFrame, method: str = "attune") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of ``method`` and the anchor (baseline) rows of a sweep table."""
    if not isinstance(df, pd.DataFrame) or "method" not in df.columns:
        return df, pd.DataFrame()
    return df[df["method"] == method], df[df["method"] != method]


def _ok_anchors(anchors: pd.DataFrame) -> pd.DataFrame:
    if anchors.empty:
        return anchors
    ok = anchors[anchors["status"].astype(str).str.startswith("ok")] if "status" in anchors else anchors
    return style.display_names(ok)


def _anchor_lines(ax, anchors: pd.DataFrame, metric: str) -> None:
    ok = _ok_anchors(anchors)
    if ok.empty or metric not in ok:
        return
    name = style.name_column(ok)
    pal = style.method_palette(ok[name])
    drawn = False
    for lab, sub in ok.groupby(name, observed=True, sort=False):
        v = sub[metric].mean()
        if np.isfinite(v):
            ax.axhline(v, color=pal[lab], ls="--", lw=1.2, label=f"{lab}")
            drawn = True
    if drawn:
        ax.legend(frameon=False, fontsize=8, loc="best")


def feature_sweep(df: pd.DataFrame, *, ax=None) -> Figure:
    """Attune under different numbers of genes and peaks (Fig. 2D): bio vs mixing, size = peaks, colour = genes.

    One dot per (genes, peaks) setting (the mean over seeds); anchor methods are stars. The legend lists
    the gene numbers (colours), the peak numbers (sizes) and the anchors.

    Parameters
    ----------
    df
        Table of :func:`attune_lib.tl.sweep_features` (``n_genes``/``n_peaks`` or the requested numbers,
        ``bio_conservation``, ``omics_mixing``, ``overall``).
    ax
        Axes to draw on (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    gcol = "n_genes_requested" if "n_genes_requested" in df else "n_genes"
    pcol = "n_peaks" if "n_peaks" in df else "n_peaks_requested"
    df, anchors = _split_anchors(df)
    d = style.ok_rows(df, ("bio_conservation", "omics_mixing", gcol, pcol), "feature_sweep").copy()
    cols = [c for c in ("bio_conservation", "omics_mixing", "overall") if c in d]
    g = d.groupby([gcol, pcol], observed=True, dropna=False)[cols].mean().reset_index()
    genes = sorted(g[gcol].unique())
    peaks = np.asarray(g[pcol], dtype=float)
    lo, hi = np.nanmin(peaks), np.nanmax(peaks)

    def size(p):
        return 40 + 260 * ((p - lo) / (hi - lo) if hi > lo else 0.5)

    cmap = plt.get_cmap("viridis", max(len(genes), 2))
    colors = [cmap(genes.index(v)) for v in g[gcol]]
    fig, ax, created = style.single_axes(ax, figsize=(5.6, 4.4))
    ax.scatter(g["omics_mixing"], g["bio_conservation"], s=size(peaks), c=colors, edgecolor="black", linewidth=0.5,
               alpha=0.85)
    h_genes = [Line2D([], [], marker="o", ls="", color=cmap(i), label=f"{int(v)} genes") for i, v in enumerate(genes)]
    h_peaks = [Line2D([], [], marker="o", ls="", color="grey", mfc="none", markersize=np.sqrt(size(p)),
                      label=f"{p} peaks") for p in sorted(set(peaks.astype(int)))]
    h_anchor = []
    a = _ok_anchors(anchors)
    if len(a):
        name = style.name_column(a)
        pal = style.method_palette(a[name])
        for lab, sub in a.groupby(name, observed=True, sort=False):
            ax.scatter(sub["omics_mixing"].mean(), sub["bio_conservation"].mean(), marker="*", s=220,
                       color=pal[lab], edgecolor="black", linewidth=0.5)
            h_anchor.append(Line2D([], [], marker="*", ls="", color=pal[lab], markersize=12, label=lab))
    ax.legend(handles=h_genes + h_peaks + h_anchor, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
              fontsize=8, labelspacing=1.2)
    ax.set_xlabel(style.score_label(df, "omics_mixing"))
    ax.set_ylabel(style.score_label(df, "bio_conservation"))
    ax.set_title("Attune: numbers of genes and peaks", fontsize=10)
    ax.grid(alpha=0.3)
    return style.finish(fig, created)


def dimension_sweep(df: pd.DataFrame, *, metric: str = "overall", ax=None) -> Figure:
    """Overall integration score per embedding dimension, mean and 95% CI over seeds (Fig. 2E).

    Anchor (baseline) rows of the table are drawn as dashed horizontal lines with a legend.

    Parameters
    ----------
    df
        Table of :func:`attune_lib.tl.sweep_dimension` (``n_latent`` and the metric, one row per dimension
        and seed).
    metric
        Column plotted.
    ax
        Axes to draw on (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    df, anchors = _split_anchors(df)
    d = style.ok_rows(df, ("n_latent", metric), "dimension_sweep").copy()
    d["dim"] = d["n_latent"].astype(int).astype(str)
    order = [str(v) for v in sorted(d["n_latent"].astype(int).unique())]
    pal = dict(zip(order, sns.color_palette("crest", n_colors=len(order))))
    fig, ax, created = style.single_axes(ax, figsize=(4.6, 3.8))
    style.mean_ci_bars(ax, d, "dim", metric, order, pal, title=f"Attune: embedding dimension ({style.label(metric)})",
                       ylabel=style.score_label(df, metric))
    _anchor_lines(ax, anchors, metric)
    ax.set_xlabel("embedding dimension")
    return style.finish(fig, created)


def contrast_ablation(df: pd.DataFrame, *, metrics: Sequence[str] = ("overall", "foscttm"), ax=None) -> Figure:
    """Contrast-design ablation: one bar panel per metric (mean and 95% CI over seeds).

    Anchor (baseline) rows of the table are drawn as dashed horizontal lines with a legend.

    Parameters
    ----------
    df
        Table of :func:`attune_lib.tl.sweep_contrast` (``design`` and the metrics, one row per design and seed).
    metrics
        Columns, one panel each.
    ax
        ``len(metrics)`` Axes to draw on, one per metric (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    df, anchors = _split_anchors(df)
    d = style.ok_rows(df, ("design", *metrics), "contrast_ablation")
    known = ("default", "intra", "cross")
    order = [x for x in known if x in set(d["design"])] + [x for x in d["design"].unique() if x not in known]
    pal = style.method_palette(order)
    fig, axes, created = style.panel_axes(ax, len(metrics), what="one per metric", figsize=(3.8 * len(metrics), 3.8))
    for a, met in zip(axes, metrics):
        better = "lower" if met in ("foscttm", "alignment", "uniformity") else "higher"
        style.mean_ci_bars(a, d, "design", met, order, pal, title=f"{style.label(met)} ({better} is better)",
                           ylabel=style.score_label(df, met))
        _anchor_lines(a, anchors, met)
        a.set_xticklabels([style.CONTRAST_LABELS.get(o, o) for o in order], rotation=0, fontsize=8)
    return style.finish(fig, created)
