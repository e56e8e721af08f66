"""Plots of :func:`attune_lib.tl.run_integration_benchmark` (paper Fig. 2A-C).

Every function takes the benchmark table (one row per method and seed) and returns the matplotlib Figure.
Only rows whose ``status`` starts with ``"ok"`` are drawn.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from ._style import finish, mean_ci_bars, method_palette, name_column, ok_rows, panel_axes, score_label, single_axes

__all__ = ["alignment_uniformity", "bio_vs_mixing", "overall_and_foscttm"]


def bio_vs_mixing(df: pd.DataFrame, *, title: str | None = None, ax=None) -> Figure:
    """Biology conservation vs omics mixing (Fig. 2A): one small dot per seed, a large one per method mean.

    Parameters
    ----------
    df
        Benchmark table of :func:`attune_lib.tl.run_integration_benchmark` (one row per method and seed).
        Needs ``bio_conservation`` and ``omics_mixing``.
    title
        Axes title (None: a default).
    ax
        Axes to draw on (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    name = name_column(df) if isinstance(df, pd.DataFrame) else "method"
    d = ok_rows(df, (name, "bio_conservation", "omics_mixing"), "bio_vs_mixing")
    pal = method_palette(d[name])
    fig, ax, created = single_axes(ax, figsize=(5.2, 4.2))
    for lab, sub in d.groupby(name, observed=True, sort=False):
        ax.scatter(sub["omics_mixing"], sub["bio_conservation"], s=18, alpha=0.5, color=pal[lab])
        ax.scatter(sub["omics_mixing"].mean(), sub["bio_conservation"].mean(), s=140, color=pal[lab],
                   edgecolor="black", linewidth=0.8, label=lab, zorder=3)
    ax.set_xlabel(score_label(df, "omics_mixing"))
    ax.set_ylabel(score_label(df, "bio_conservation"))
    ax.set_title(title or "Integration: biology conservation vs omics mixing", fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    return finish(fig, created)


def overall_and_foscttm(df: pd.DataFrame, *, ax=None) -> Figure:
    """Overall integration score and FOSCTTM per method, mean and 95% CI over seeds (Fig. 2B).

    The interval is a bootstrap percentile interval of the seed mean (inside the range of the seeds'
    values, so inside [0, 1] for a 0-1 score); a method whose seeds give identical values is marked
    "deterministic" and has no error bar. The y label says how the overall score was scaled
    (``df.attrs["score_scaling"]``, see :func:`attune_lib.tl.summary_scores`).

    Parameters
    ----------
    df
        Benchmark table of :func:`attune_lib.tl.run_integration_benchmark` (one row per method and seed).
        Needs ``overall`` and (for the second panel) ``foscttm``.
    ax
        Two Axes to draw on: overall score, FOSCTTM (None: a new figure). The FOSCTTM panel is switched off
        when no method has a FOSCTTM.

    Returns
    -------
    matplotlib.figure.Figure
    """
    name = name_column(df) if isinstance(df, pd.DataFrame) else "method"
    d = ok_rows(df, (name, "overall"), "overall_and_foscttm")
    order = list(d.groupby(name, observed=True)["overall"].mean().sort_values(ascending=False).index)
    pal = method_palette(order)
    fig, axes, created = panel_axes(ax, 2, what="overall score, FOSCTTM", figsize=(9, 3.8))
    mean_ci_bars(axes[0], d, name, "overall", order, pal, title="Overall integration score (higher is better)",
                 ylabel=score_label(df, "overall"))
    f = d.dropna(subset=["foscttm"]) if "foscttm" in d else d.iloc[:0]
    if len(f):
        forder = [o for o in order if o in set(f[name])]
        mean_ci_bars(axes[1], f, name, "foscttm", forder, pal, title="FOSCTTM (lower is better)", ylabel="FOSCTTM")
    else:
        axes[1].set_axis_off()
    return finish(fig, created)


def alignment_uniformity(df: pd.DataFrame, *, ax=None) -> Figure:
    """Alignment vs uniformity of the L2-normalised embeddings, one dot per seed (Fig. 2C; lower-left is better).

    Parameters
    ----------
    df
        Benchmark table of :func:`attune_lib.tl.run_integration_benchmark` (one row per method and seed).
        Needs ``alignment`` and ``uniformity``.
    ax
        Axes to draw on (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    name = name_column(df) if isinstance(df, pd.DataFrame) else "method"
    d = ok_rows(df, (name, "alignment", "uniformity"), "alignment_uniformity")
    pal = method_palette(d[name])
    fig, ax, created = single_axes(ax, figsize=(5.2, 4.2))
    for lab, sub in d.groupby(name, observed=True, sort=False):
        ax.scatter(sub["uniformity"], sub["alignment"], s=40, color=pal[lab], edgecolor="black",
                   linewidth=0.4, label=lab)
    ax.set_xlabel(r"$\mathcal{L}_{uniform}$ (lower is better)")
    ax.set_ylabel(r"$\mathcal{L}_{align}$ (lower is better)")
    ax.set_title("Alignment and uniformity", fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    return finish(fig, created)
