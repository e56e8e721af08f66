"""Plot of the PCHi-C interactions behind :func:`attune_lib.tl.pchic_truth` (paper Fig. 3A)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ._style import HIGHLIGHT, finish, need_columns, single_axes

__all__ = ["pchic_distances"]


def pchic_distances(pchic_table: pd.DataFrame, *, cell_types: Sequence[str] | None = None, min_score: float = 5.0,
                    window_bp: float = 1_200_000, max_kb: float = 3000.0, bins: int = 60, ax=None) -> Figure:
    """Distance between bait and other-end midpoints of the PCHi-C interactions (Fig. 3A).

    Interactions with a score >= ``min_score`` in at least one of ``cell_types`` (default all score columns),
    same chromosome. Histogram of ``|distance|`` (kb) with the cumulative fraction (right axis) and the
    window marked.

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
    ax
        Axes to draw on (None: a new figure); the cumulative fraction goes on a twin axes of it.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..tl._pchic import pchic_score_columns

    need_columns(pchic_table, ["baitStart", "baitEnd", "oeStart", "oeEnd"], "pchic_table")
    cols = pchic_score_columns(pchic_table) if cell_types is None else list(cell_types)
    need_columns(pchic_table, cols, "pchic_table (cell_types)")
    t = pchic_table
    keep = t[cols].to_numpy(dtype=float).max(axis=1) >= min_score if cols else np.ones(len(t), bool)
    if "baitChr" in t and "oeChr" in t:
        keep &= t["baitChr"].astype(str).to_numpy() == t["oeChr"].astype(str).to_numpy()
    d = np.abs((t["oeStart"] + t["oeEnd"]) / 2 - (t["baitStart"] + t["baitEnd"]) / 2).to_numpy()[keep] / 1e3
    fig, ax, created = single_axes(ax, figsize=(5.2, 3.4))
    ax.hist(np.clip(d, 0, max_kb), bins=bins, color="#5d6d7e", alpha=0.85)
    ax.set_xlabel("bait - other end distance (kb)")
    ax.set_ylabel("interactions")
    ax2 = ax.twinx()
    ds = np.sort(d)
    ax2.plot(np.clip(ds, 0, max_kb), np.arange(1, len(ds) + 1) / max(len(ds), 1), color=HIGHLIGHT, lw=1.5)
    ax2.set_ylabel("cumulative fraction", color=HIGHLIGHT)
    ax2.set_ylim(0, 1.02)
    w = window_bp / 1e3
    frac = float((d <= w).mean()) if len(d) else np.nan
    ax.axvline(w, color="k", ls="--", lw=1)
    ax.text(w, ax.get_ylim()[1] * 0.95, f" {w:g} kb\n {100 * frac:.1f}% within", va="top", fontsize=8)
    ax.set_title(f"PCHi-C interactions (n={len(d):,}, score >= {min_score:g})", fontsize=10)
    return finish(fig, created)
