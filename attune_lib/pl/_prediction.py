"""Plots of the cross-modal prediction benchmark (paper Fig. 2F-H).

They take the tables of :func:`attune_lib.tl.run_prediction_benchmark` (``summary`` and ``per_gene``)
and return the matplotlib Figure; the panels go on the caller's ``ax`` when given.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from .._utils import AttuneInputError
from ._style import CONTRAST_LABELS, figure_title, finish, label, need_columns, panel_axes, single_axes

__all__ = ["PREDICTION_COLORS", "contrast_ablation_prediction", "prediction_table", "prediction_violins"]

#: fixed colours per method
PREDICTION_COLORS = {
    "attune_finetuned": "#d62728",
    "attune_finetuned_intra": "#ff9896",
    "attune_finetuned_cross": "#e377c2",
    "mlp_denovo": "#1f77b4",
    "lasso": "#2ca02c",
    "lasso_peaks": "#98df8a",
    "lsi_ridge": "#bcbd22",
    "noise_free": "#7f7f7f",
}
_METRIC_LABELS = {"pearson": "gene-wise Pearson", "spearman": "gene-wise Spearman", "rmse": "RMSE (per gene)",
                  "pearson_truth": "Pearson with noise-free"}
_LOWER_IS_BETTER = ("rmse",)
_ORDER = ("attune_finetuned", "attune_finetuned_intra", "attune_finetuned_cross", "mlp_denovo", "lasso",
          "lasso_peaks", "lsi_ridge", "noise_free")


def _check(df, need: Sequence[str], what: str) -> pd.DataFrame:
    return need_columns(df, need, what, allow_empty=False)


def _order(methods) -> list[str]:
    methods = list(dict.fromkeys(methods))
    known = [m for m in _ORDER if m in methods]
    return known + [m for m in methods if m not in known]


def _palette(order) -> dict:
    extra = iter(sns.color_palette("tab10", 10))
    return {m: PREDICTION_COLORS.get(m) or next(extra) for m in order}


def prediction_violins(per_gene: pd.DataFrame, *, metrics: Sequence[str] = ("pearson", "spearman", "rmse"),
                       methods: Sequence[str] | None = None, aggregate: str = "mean",
                       title: str | None = None, ax=None) -> Figure:
    """Fig. 2F: per-gene metric distributions per method (violins with inner boxes).

    Parameters
    ----------
    per_gene
        Per-gene table of :func:`attune_lib.tl.run_prediction_benchmark`.
    metrics
        Columns drawn, one panel each.
    methods
        Methods to show, in this order (default: all, Attune first).
    aggregate
        ``"mean"``: one value per gene, averaged over splits; ``"none"``: every (split, gene) value.
    title
        Overall title (with ``ax``: the title of the first panel).
    ax
        ``len(metrics)`` Axes to draw on, one per metric (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    df = _check(per_gene, ("method", "gene", *metrics), "prediction_violins")
    if aggregate not in ("mean", "none"):
        raise AttuneInputError(f"aggregate must be 'mean' or 'none', got {aggregate!r}")
    order = _order(df["method"]) if methods is None else list(methods)
    unknown = [m for m in order if m not in set(df["method"])]
    if unknown:
        raise AttuneInputError(f"prediction_violins: methods {unknown} not in the table")
    df = df[df["method"].isin(order)]
    if aggregate == "mean":
        df = df.groupby(["method", "gene"], sort=False)[list(metrics)].mean().reset_index()
    pal = _palette(order)
    fig, axes, created = panel_axes(ax, len(metrics), what="one per metric",
                                    figsize=(max(3.0, 0.75 * len(order) + 1.2) * len(metrics), 3.6))
    for ax, metric in zip(axes, metrics):
        d = df.dropna(subset=[metric])
        sns.violinplot(data=d, x="method", y=metric, hue="method", order=order, hue_order=order, palette=pal,
                       ax=ax, cut=0, inner="box", linewidth=0.6, density_norm="width", legend=False)
        means = d.groupby("method")[metric].mean().reindex(order)
        ax.scatter(range(len(order)), means.to_numpy(), marker="D", s=18, color="white", edgecolor="black",
                   zorder=4, label="mean")
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels([label(m) for m in order], rotation=35, ha="right", fontsize=8)
        ax.set_xlabel("")
        ax.set_ylabel(_METRIC_LABELS.get(metric, metric))
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(frameon=False, fontsize=8, loc="best")
    figure_title(fig, axes, title or "RNA predicted from ATAC: per-gene metrics on test cells", created)
    return finish(fig, created)


def prediction_table(summary: pd.DataFrame, *, metrics: Sequence[str] = ("pearson", "spearman", "rmse"),
                     paper: pd.DataFrame | None = None, dataset_label: str = "this run",
                     title: str | None = None, ax=None) -> Figure:
    """Fig. 2G-style comparison table: mean (sd) over splits per method, with the paper's values beside.

    Cells are coloured within each metric column over this run's methods (darker = better; RMSE
    reversed). The paper's rows (grey) come from a different dataset (real PBMC 10k) and are shown for
    reference only.

    Parameters
    ----------
    summary
        Summary table of :func:`attune_lib.tl.run_prediction_benchmark` (one row per method and split).
    metrics
        Columns shown.
    paper
        Reference rows with ``source``, ``dataset``, ``method`` and the metric columns (default:
        :func:`attune_lib.tl.paper_prediction_values`); pass an empty DataFrame to leave them out.
    dataset_label
        Name of this run's dataset in the row labels.
    title
        Axes title.
    ax
        Axes to draw on (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..tl import paper_prediction_values

    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    df = _check(summary, ("method", *metrics), "prediction_table")
    order = _order(df["method"])
    g = df.groupby("method")[list(metrics)]
    mean, sd, n = g.mean().reindex(order), g.std(ddof=1).reindex(order), g.size().reindex(order)
    paper = paper_prediction_values() if paper is None else paper
    rows = [f"{label(m)} ({dataset_label}, n={n[m]})" for m in order]
    vals = mean.to_numpy(dtype=float)
    texts = [[f"{mean.loc[m, c]:.3f}" + (f" ± {sd.loc[m, c]:.3f}" if np.isfinite(sd.loc[m, c]) else "")
              for c in metrics] for m in order]
    colors = np.zeros_like(vals)
    for j, c in enumerate(metrics):
        col = vals[:, j]
        ok = np.isfinite(col) & np.array([m != "noise_free" for m in order])
        if ok.sum() > 1 and np.ptp(col[ok]) > 0:
            s = (col - col[ok].min()) / np.ptp(col[ok])
            colors[:, j] = 1 - s if c in _LOWER_IS_BETTER else s
        colors[~ok, j] = np.nan
    for _, r in paper.iterrows():
        rows.append(f"{label(r.get('method', 'attune'))} ({r.get('source', 'paper')}: {r.get('dataset', '')})")
        texts.append([f"{r[c]:.3f}" if c in r and pd.notna(r[c]) else "n/a" for c in metrics])
        colors = np.vstack([colors, np.full(len(metrics), np.nan)])
    fig, ax, created = single_axes(ax, figsize=(2.0 + 1.7 * len(metrics) + 0.09 * max(map(len, rows)),
                                                0.45 * len(rows) + 1.3))
    cmap = plt.get_cmap("Reds").with_extremes(bad="#eeeeee")
    im = ax.imshow(np.ma.masked_invalid(0.15 + 0.6 * colors), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    cb = fig.colorbar(im, ax=ax, shrink=0.8, pad=0.02, ticks=[0.15, 0.75])
    cb.ax.set_yticklabels(["worst", "best"], fontsize=8)
    cb.set_label("within a metric, this run's methods", fontsize=8)
    for i, row in enumerate(texts):
        for j, t in enumerate(row):
            ax.text(j, i, t, ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels([_METRIC_LABELS.get(c, c) + (" (lower better)" if c in _LOWER_IS_BETTER else "")
                        for c in metrics], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=8)
    if len(paper):
        ax.axhline(len(order) - 0.5, color="black", linewidth=1)
    ax.set_xticks(np.arange(-0.5, len(metrics)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(rows)), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ax.set_title(title or "Prediction of RNA from ATAC: mean ± sd over splits (grey: reported values, other data)",
                 fontsize=9, pad=28)
    return finish(fig, created)


def contrast_ablation_prediction(df: pd.DataFrame, *, metrics: Sequence[str] = ("pearson", "spearman", "rmse"),
                                 aggregate: str = "mean", ax=None) -> Figure:
    """Fig. 2H: fine-tuned prediction after pretraining with each contrast design.

    Parameters
    ----------
    df
        Per-gene table (violins of per-gene values) or summary table (one point per split, bar = mean)
        from :func:`attune_lib.tl.run_contrast_ablation_prediction` or :func:`run_prediction_benchmark`
        with several ``contrasts``; only the ``attune_finetuned`` rows are drawn.
    metrics
        One panel per metric.
    aggregate
        For per-gene tables: ``"mean"`` over splits per gene, or ``"none"``.
    ax
        ``len(metrics)`` Axes to draw on, one per metric (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    if aggregate not in ("mean", "none"):
        raise AttuneInputError(f"aggregate must be 'mean' or 'none', got {aggregate!r}")
    d = _check(df, ("setting", "contrast", *metrics), "contrast_ablation_prediction")
    d = d[d["setting"] == "attune_finetuned"].copy()
    if d.empty:
        raise AttuneInputError("contrast_ablation_prediction: no 'attune_finetuned' rows in the table")
    order = [c for c in ("default", "intra", "cross") if c in set(d["contrast"])]
    order += [c for c in dict.fromkeys(d["contrast"]) if c not in order]
    labels = [CONTRAST_LABELS.get(c, c) for c in order]
    pal = dict(zip(order, ["#d62728", "#ff9896", "#e377c2", *sns.color_palette("tab10", 10)]))
    per_gene = "gene" in d.columns
    if per_gene and aggregate == "mean":
        d = d.groupby(["contrast", "gene"], sort=False)[list(metrics)].mean().reset_index()
    fig, axes, created = panel_axes(ax, len(metrics), what="one per metric",
                                    figsize=(max(3.0, 1.0 * len(order) + 1.0) * len(metrics), 3.6))
    for ax, metric in zip(axes, metrics):
        x = d.dropna(subset=[metric])
        if per_gene:
            sns.violinplot(data=x, x="contrast", y=metric, hue="contrast", order=order, hue_order=order,
                           palette=pal, ax=ax, cut=0, inner="box", linewidth=0.6, legend=False)
            means = x.groupby("contrast")[metric].mean().reindex(order)
            ax.scatter(range(len(order)), means.to_numpy(), marker="D", s=18, color="white", edgecolor="black",
                       zorder=4)
            for i, v in enumerate(means.to_numpy()):
                ax.annotate(f"{v:.3f}", (i, v), xytext=(8, 0), textcoords="offset points", fontsize=8,
                            va="center")
        else:
            means = x.groupby("contrast")[metric].mean().reindex(order)
            ax.bar(range(len(order)), means.to_numpy(), color=[pal[c] for c in order], edgecolor="black",
                   linewidth=0.5, alpha=0.8)
            for i, c in enumerate(order):
                v = x.loc[x["contrast"] == c, metric].to_numpy()
                ax.scatter(i + np.linspace(-0.12, 0.12, len(v)) if len(v) > 1 else [i] * len(v), v, s=12,
                           color="black", zorder=3)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_xlabel("")
        ax.set_ylabel(_METRIC_LABELS.get(metric, metric))
        ax.grid(axis="y", alpha=0.3)
    figure_title(fig, axes, "Contrast design of the pretraining vs fine-tuned prediction", created)
    return finish(fig, created)
