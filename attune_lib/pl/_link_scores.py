"""Plots of :mod:`attune_lib.tl._link_scores`: AUROC of link scores, the attention elbow, pair heatmaps and the
window sweep (paper Fig. 3B, 3C, 3F, Supp. Fig. S4a)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .._utils import AttuneInputError
from ._style import HIGHLIGHT, OTHER, figure_title, finish, label, need_columns, panel_axes, single_axes

__all__ = ["attention_elbow", "link_auroc", "link_heatmap", "window_sweep"]


def link_auroc(scores: pd.DataFrame, *, metrics: Sequence[str] = ("auroc", "auprc"), bin: str = "all",
               highlight: str | None = "Attune + Transformer", ax=None) -> Figure:
    """Bars of AUROC (and AUPRC) per method (Fig. 3B), from :func:`attune_lib.tl.score_links`.

    The overall title counts the PCHi-C-supported pairs (when the table has ``n_pairs``/``n_pos``).

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
    ax
        ``len(metrics)`` Axes to draw on, one per metric (None: a new figure); the overall title then goes
        on the first panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    need_columns(scores, ["method", *metrics], "scores")
    df = scores[scores["bin"] == bin] if "bin" in scores else scores
    if df.empty:
        raise AttuneInputError(f"bin={bin!r}: no rows of scores with this bin")
    fig, axes, created = panel_axes(ax, len(metrics), what="one per metric", figsize=(3.6 * len(metrics) + 0.6, 3.4))
    for a, met in zip(axes, metrics):
        d = df.sort_values(met, ascending=False)
        colors = [HIGHLIGHT if m == highlight else OTHER for m in d["method"]]
        a.barh(d["method"].astype(str), d[met], color=colors)
        a.invert_yaxis()
        for y, v in enumerate(d[met]):
            a.text(v, y, f" {v:.3f}", va="center", fontsize=8)
        if met == "auroc":
            a.axvline(0.5, color="k", ls=":", lw=1)
            a.set_xlim(0, 1.08)
        elif "pos_rate" in d:
            a.axvline(float(d["pos_rate"].iloc[0]), color="k", ls=":", lw=1)
            a.set_xlim(0, min(1.0, float(d[met].max()) * 1.25 + 0.02))
        a.set_xlabel(met.upper())
    if "n_pairs" in df and "n_pos" in df:
        figure_title(fig, axes, f"PCHi-C-supported pairs: {df['n_pos'].iloc[0]:,} of {df['n_pairs'].iloc[0]:,} "
                     "candidates", created)
    return finish(fig, created)


def attention_elbow(links: pd.DataFrame, *, score: str = "score", top_fraction: float = 0.1,
                    log: bool = True, ax=None) -> Figure:
    """Pairs ranked by attention, with the top-``top_fraction`` cut and the elbow (Fig. 3C).

    Cut and elbow come from :func:`attune_lib.tl.attention_cutoffs`; both are in the legend.

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
    ax
        Axes to draw on (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..tl import attention_cutoffs

    need_columns(links, [score], "links")
    v = links[score].to_numpy(dtype=float)
    s = np.sort(v[np.isfinite(v)])[::-1]
    if not len(s):
        raise AttuneInputError(f"links[{score!r}] has no finite score")
    info = attention_cutoffs(s, top_fraction=top_fraction)
    fig, ax, created = single_axes(ax, figsize=(5.2, 3.4))
    x = np.arange(1, len(s) + 1)
    ax.plot(x, s, color="#34495e", lw=1.5)
    if log and (s > 0).all():
        ax.set_yscale("log")
    ax.axvline(info["top_n"], color=HIGHLIGHT, ls="--", lw=1.2,
               label=f"top {100 * top_fraction:g}%: {info['top_n']:,} pairs")
    ax.axvline(info["elbow_n"], color="#2980b9", ls=":", lw=1.2,
               label=f"elbow (max distance to chord): {info['elbow_n']:,} ({100 * info['elbow_fraction']:.1f}%)")
    ax.scatter([info["elbow_n"]], [info["elbow_threshold"]], color="#2980b9", zorder=3, s=18)
    ax.set_xlabel("gene-peak pairs ranked by attention")
    ax.set_ylabel(label(score))
    ax.set_title("attention scores of gene-peak pairs, ranked", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return finish(fig, created)


def link_heatmap(data: dict[str, pd.DataFrame], *, titles: Sequence[str] = ("expression", "accessibility"),
                 cmap: str = "RdBu_r", vmax: float = 2.0, ax=None) -> Figure:
    """Paired heatmaps of gene expression and peak accessibility across groups (Fig. 3F).

    Rows are gene-peak pairs, columns groups, from :func:`attune_lib.tl.link_heatmap_data`; one colour bar
    (z-score) serves both.

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
    ax
        Two Axes to draw on: expression, accessibility (None: a new figure sharing the y axis).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(data, dict) or not {"rna", "atac"} <= set(data):
        raise AttuneInputError("data needs 'rna' and 'atac' tables (attune_lib.tl.link_heatmap_data)")
    r, a = data["rna"], data["atac"]
    if r.shape != a.shape:
        raise AttuneInputError(f"data: 'rna' {r.shape} and 'atac' {a.shape} tables differ in shape")
    n = len(r)
    fig, axes, created = panel_axes(ax, 2, what="expression, accessibility",
                                    figsize=(2.8 + 0.38 * r.shape[1] * 2, max(3.0, 0.16 * n + 1.5)), sharey=True)
    for a_, m, title in zip(axes, (r, a), titles):
        im = a_.imshow(m.to_numpy(), aspect="auto", cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
        a_.set_xticks(range(m.shape[1]))
        a_.set_xticklabels(m.columns, rotation=60, ha="right", fontsize=8)
        a_.set_title(title, fontsize=10)
    axes[0].set_yticks(range(n))
    axes[0].set_yticklabels(r.index, fontsize=8)
    cb = fig.colorbar(im, ax=list(axes), fraction=0.04, pad=0.02)
    cb.set_label("z-score across groups", fontsize=8)
    return fig


def window_sweep(sweep: pd.DataFrame, *, metric: str = "auroc", window_kb: float | None = 1200.0,
                 highlight: str | None = "Attune + Transformer", ax=None) -> Figure:
    """AUROC of each method against the peak-gene window (Supp. Fig. S4a), from :func:`attune_lib.tl.window_sweep`.

    One line per method (named in the legend).

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
    ax
        Axes to draw on (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    need_columns(sweep, ["window_kb", "method", metric], "sweep", allow_empty=False)
    fig, ax, created = single_axes(ax, figsize=(5.4, 3.6))
    for meth, d in sweep.groupby("method", sort=False):
        d = d.sort_values("window_kb")
        hl = meth == highlight
        ax.plot(d["window_kb"], d[metric], marker="o", ms=3.5, lw=2.2 if hl else 1.2,
                color=HIGHLIGHT if hl else None, label=str(meth), zorder=3 if hl else 2)
    if window_kb is not None:
        ax.axvline(window_kb, color="k", ls="--", lw=1)
    ax.set_xlabel("peak-gene window (kb)")
    ax.set_ylabel(metric.upper())
    ax.set_title(f"link {metric.upper()} by peak-gene window", fontsize=10)
    ax.legend(fontsize=8, frameon=False, ncol=2)
    return finish(fig, created)
