"""Plot of :func:`attune_lib.tl.link_evaluation`: link methods against one truth."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .._utils import AttuneInputError
from ._style import HIGHLIGHT, OTHER, figure_title, finish, need_columns, panel_axes

__all__ = ["link_comparison"]

_LABELS = {"auroc": "AUROC", "auprc": "AUPRC", "auroc_distance_matched": "distance-matched AUROC"}


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
        ``len(metrics)`` Axes to draw on, one per metric (e.g. from ``plt.subplots(1, 3)``; None: a new
        figure); the overall title then goes on the first panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    need_columns(evaluation, ["truth", "method", *metrics], "evaluation")
    truth = evaluation["truth"].iloc[0] if truth is None and len(evaluation) else truth
    df = evaluation[evaluation["truth"] == truth]
    if df.empty:
        raise AttuneInputError(f"truth={truth!r} not in the evaluation; available: {sorted(set(evaluation['truth']))}")
    fig, axes, created = panel_axes(ax, len(metrics), what="one per metric",
                                    figsize=(3.3 * len(metrics) + 1.6, 0.32 * len(df) + 1.4), sharey=True)
    order = df["method"].tolist()[::-1]
    d = df.set_index("method").loc[order]
    for a, met in zip(axes, metrics):
        colors = [HIGHLIGHT if m == highlight else OTHER for m in order]
        a.barh(range(len(order)), d[met].to_numpy(dtype=float), color=colors)
        if reference is not None and reference in d.index:
            a.axvline(float(d.loc[reference, met]), color="k", ls="--", lw=1)
        if met != "auprc":
            a.axvline(0.5, color="0.6", ls=":", lw=1)
        a.set_yticks(range(len(order)))
        a.set_yticklabels(order, fontsize=8)
        a.set_xlabel(_LABELS.get(met, met))
        for i, v in enumerate(d[met].to_numpy(dtype=float)):
            if np.isfinite(v):
                a.text(v, i, f" {v:.2f}", va="center", fontsize=8)
        a.set_xlim(0, 1.12 if met != "auprc" else max(0.05, float(np.nanmax(d[met])) * 1.25))
    figure_title(fig, axes, f"links vs {truth} (dashed: {reference})" if reference else f"links vs {truth}", created)
    return finish(fig, created)
