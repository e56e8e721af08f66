"""Plots of :mod:`attune_lib.tl._motifs`: co-occurring genes, motif enrichment and motif regulons (paper Fig. 4D)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .._utils import AttuneInputError
from ._style import BAR, FONT, HIGHLIGHT, cluster_name, finish, need_columns, panel_axes, single_axes

__all__ = ["cooccurring_genes", "motif_enrichment", "regulon"]


def cooccurring_genes(table: pd.DataFrame, *, n: int = 5, highlight: Sequence[str] = (),
                      highlight_label: str = "highlighted gene", ax=None) -> Figure:
    """Top co-occurring genes per peak cluster: -log10 p of the background-matched test (Fig. 4D).

    Each bar is labelled with the mean correlation and the p-value; ``highlight`` genes are red, and the
    legend (right of the last panel) says what red means.

    Parameters
    ----------
    table
        Output of :func:`attune_lib.tl.co_occurrence` (``cluster``, ``gene``, ``pval``, ``mean_r``); the top
        ``n`` per cluster are taken with :func:`attune_lib.tl.top_cooccurring_genes`.
    n
        Genes shown per cluster.
    highlight
        Genes drawn in red.
    highlight_label
        What the red genes are, for the legend (e.g. "planted TF").
    ax
        One Axes per cluster with a co-occurring gene, in the table's cluster order (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..tl import top_cooccurring_genes

    need_columns(table, ["cluster", "gene", "pval", "mean_r"], "table")
    top = top_cooccurring_genes(table, n=n)
    clusters = list(pd.unique(top["cluster"]))
    if not clusters:
        raise AttuneInputError("table: no co-occurring gene to show")
    fig, axes, created = panel_axes(ax, len(clusters), what="one per cluster with a co-occurring gene",
                                    figsize=(3.6 * len(clusters) + 1.6, 0.36 * n + 1.8))
    hl = set(highlight)
    any_hl = False
    for a, c in zip(axes, clusters):
        sub = top[top["cluster"] == c].iloc[::-1]
        is_hl = [g in hl for g in sub["gene"]]
        any_hl |= any(is_hl)
        colors = [HIGHLIGHT if h else BAR for h in is_hl]
        a.barh(sub["gene"].astype(str), -np.log10(sub["pval"].to_numpy(dtype=float)), color=colors, height=0.8)
        for y, (r, p) in enumerate(zip(sub["mean_r"], sub["pval"])):
            a.text(0.02, y, f"r={r:.2f}, p={p:.1e}", va="center", fontsize=FONT, color="w",
                   transform=a.get_yaxis_transform())
        a.set_xlabel("-log10 p (vs background peaks)")
        a.tick_params(axis="y", labelsize=FONT + 1)
        a.set_title(cluster_name(c), fontsize=FONT + 2)
    handles = [Patch(color=BAR, label="co-occurring gene")]
    if hl:
        text = highlight_label if any_hl else f"{highlight_label} (none in the top {n})"
        handles.append(Patch(color=HIGHLIGHT, label=text))
    axes[-1].legend(handles=handles, fontsize=FONT, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return finish(fig, created)


def motif_enrichment(table: pd.DataFrame, *, n: int = 10, highlight: Sequence[str] = (), title: str = "",
                     ax=None) -> Figure:
    """Top enriched motifs (-log10 p, Fisher) of a peak group; bars labelled with foreground/background counts.

    Parameters
    ----------
    table
        Output of :func:`attune_lib.tl.motif_enrichment` (``motif_id``, ``motif_name``, ``pval``, ``k_fg``,
        ``n_fg``, ``frac_bg``).
    n
        Number of top motifs shown.
    highlight
        Motif IDs drawn in red.
    title
        Axes title (empty: "motif enrichment").
    ax
        Axes to draw on (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    need_columns(table, ["motif_id", "motif_name", "pval", "k_fg", "n_fg", "frac_bg"], "table", allow_empty=False)
    top = table.iloc[:n].iloc[::-1]
    hl = set(highlight)
    fig, ax, created = single_axes(ax, figsize=(5.2, 0.3 * len(top) + 1.2))
    labels = [f"{i} {nm}" for i, nm in zip(top["motif_id"], top["motif_name"])]
    colors = ["tab:red" if i in hl else "tab:blue" for i in top["motif_id"]]
    ax.barh(labels, -np.log10(top["pval"].to_numpy(dtype=float)), color=colors)
    for y, (k, nn, fb) in enumerate(zip(top["k_fg"], top["n_fg"], top["frac_bg"])):
        ax.text(0.01, y, f"{k}/{nn} vs {100 * fb:.0f}%", va="center", fontsize=8, color="w",
                transform=ax.get_yaxis_transform())
    ax.set_xlabel("-log10 p (Fisher, vs background)")
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title(title or "motif enrichment", fontsize=9)
    return finish(fig, created)


def regulon(table: pd.DataFrame, *, tf: str, n: int = 20, truth: Sequence[str] = (), ax=None) -> Figure:
    """Targets of a motif-supported co-expression regulon: correlation with the TF (bars, colours in the legend).

    Parameters
    ----------
    table
        Output of :func:`attune_lib.tl.motif_regulon` (``target``, ``r``).
    tf
        Transcription factor of the regulon (for the title).
    n
        Number of targets shown.
    truth
        Known targets, drawn in red.
    ax
        Axes to draw on (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    need_columns(table, ["target", "r"], "table")
    top = table.iloc[:n].iloc[::-1]
    if top.empty:
        raise AttuneInputError(f"table: the regulon of {tf} has no target")
    hl = set(truth)
    fig, ax, created = single_axes(ax, figsize=(5.0, 0.25 * len(top) + 1.3))
    colors = [
        "tab:red" if g in hl else ("tab:green" if r > 0 else "tab:purple") for g, r in zip(top["target"], top["r"])
    ]
    ax.barh(top["target"].astype(str), top["r"], color=colors)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel(f"Spearman r with {tf} (pseudo-bulk)")
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title(f"{tf} regulon (motif in linked peaks)", fontsize=9)
    handles = [Patch(color="tab:green", label="positive r"), Patch(color="tab:purple", label="negative r")]
    if hl:
        handles.insert(0, Patch(color="tab:red", label="true target"))
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="best")
    return finish(fig, created)
