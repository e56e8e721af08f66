"""Helpers shared by the plot files: saving, the axes a plot draws on, colours, table checks and labels.

Every plot takes ``ax=`` (one Axes, or a sequence of Axes for a plot of several panels) and returns the
Figure it drew on. :func:`panel_axes` turns ``ax`` into the list of panels (creating a figure only when
``ax`` is None); :func:`finish` lays out a figure only when the plot created it, and :func:`figure_title`
puts an overall title on the created figure or, with the caller's axes, on the first panel.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._utils import AttuneInputError

__all__ = ["savefig"]

#: colour of the highlighted method or gene
HIGHLIGHT = "#c0392b"
#: colour of the other methods
OTHER = "#7f8c8d"

#: fixed colours so a method looks the same in every panel
METHOD_COLORS = {
    "Attune": "#d62728", "attune": "#d62728",
    "PCA/LSI": "#7f7f7f", "pca_lsi": "#7f7f7f",
    "PCA/LSI+CCA": "#bcbd22", "cca": "#bcbd22",
    "MultiVI": "#1f77b4", "multivi": "#1f77b4",
    "GLUE": "#2ca02c", "glue": "#2ca02c",
    "scMVP": "#9467bd", "scmvp": "#9467bd",
}

#: the paper's names of the contrast designs (Fig. 2H)
CONTRAST_LABELS = {"default": "RtAt_RsAs\n(default)", "intra": "RtRs_AtAs\n(intra)", "cross": "RtAs_RsAt\n(cross)"}


def savefig(fig: Figure, name: str, *, figures_dir: str | os.PathLike = "figures", dpi: int = 150) -> Path:
    """Write ``fig`` to ``<figures_dir>/<name>.png`` atomically and return the path.

    Parameters
    ----------
    fig
        The figure.
    name
        File name without extension.
    figures_dir
        Output folder (created if needed).
    dpi
        Resolution.
    """
    if not isinstance(fig, Figure):
        raise AttuneInputError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    if not name or "/" in name or "\\" in name:
        raise AttuneInputError(f"figure name must be a plain file stem, got {name!r}")
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    tmp = out / f".{name}.tmp.png"
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------------------
# axes
# --------------------------------------------------------------------------------------------------
def panel_axes(ax, n: int, *, what: str, figsize: tuple[float, float], ncols: int | None = None,
               param: str = "ax", **subplots_kw) -> tuple[Figure, list[Axes], bool]:
    """The ``n`` panels a plot draws on: the caller's ``ax`` or a new figure; ``(figure, axes, created)``.

    With ``ax=None`` a figure of ``n`` panels (``ncols`` per row, all in one row by default) is made; the
    grid cells beyond ``n`` are hidden. Otherwise ``ax`` is one Axes (``n == 1``) or a sequence (or array)
    of exactly ``n`` Axes; the figure is the first one's.

    Parameters
    ----------
    ax
        None, an Axes or a sequence of Axes.
    n
        Number of panels the plot draws.
    what
        What the panels are, for the error message (e.g. ``"one per metric"``).
    figsize
        Size of a new figure.
    ncols
        Panels per row of a new figure (None: ``n``).
    param
        Name of the parameter holding ``ax``, for the error message.
    **subplots_kw
        Passed to :func:`matplotlib.pyplot.subplots` for a new figure.
    """
    if ax is None:
        ncols = max(1, min(ncols or n, n))
        nrows = int(np.ceil(n / ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, **subplots_kw)
        flat = list(axes.flat)
        for extra in flat[n:]:
            extra.set_visible(False)
        return fig, flat[:n], True
    axes = [ax] if isinstance(ax, Axes) else list(np.ravel(np.asarray(ax, dtype=object)))
    bad = [type(a).__name__ for a in axes if not isinstance(a, Axes)]
    if bad:
        raise AttuneInputError(f"{param} must be a matplotlib Axes or a sequence of Axes, got {bad[0]}")
    if len(axes) != n:
        raise AttuneInputError(f"{param}: this plot draws {n} panel(s) ({what}); pass {n} Axes, got {len(axes)}")
    return axes[0].figure, axes, False


def single_axes(ax, *, figsize: tuple[float, float], param: str = "ax") -> tuple[Figure, Axes, bool]:
    """The one panel of a single-panel plot: ``(figure, axes, created)``.

    Parameters
    ----------
    ax
        None (a new figure) or an Axes.
    figsize
        Size of a new figure.
    param
        Name of the parameter holding ``ax``, for the error message.
    """
    fig, axes, created = panel_axes(ax, 1, what="one panel", figsize=figsize, param=param)
    return fig, axes[0], created


def finish(fig: Figure, created: bool) -> Figure:
    """Lay out ``fig`` when the plot created it (the caller's figure is left as it is) and return it.

    Parameters
    ----------
    fig
        The figure drawn on.
    created
        Whether the plot created ``fig``.
    """
    if created:
        fig.tight_layout()
    return fig


def figure_title(fig: Figure, axes: Sequence[Axes], text: str, created: bool, *, fontsize: float = 10) -> None:
    """An overall title: the figure's when the plot created it, else the first panel's (never the caller's figure).

    Parameters
    ----------
    fig
        The figure drawn on.
    axes
        The panels of the plot.
    text
        Title.
    created
        Whether the plot created ``fig``.
    fontsize
        Font size.
    """
    if created:
        fig.suptitle(text, fontsize=fontsize)
    else:
        first = axes[0]
        first.set_title(f"{text}\n{first.get_title()}" if first.get_title() else text, fontsize=fontsize)


def point_size(n_cells: int) -> float:
    """Marker size of a scatter of ``n_cells`` cells.

    Parameters
    ----------
    n_cells
        Number of points.
    """
    return max(120000 / max(n_cells, 1), 2) ** 0.5


# --------------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------------
def need_columns(df, cols: Sequence[str], what: str, *, allow_empty: bool = True) -> pd.DataFrame:
    """``df`` when it is a DataFrame with ``cols`` (and rows unless ``allow_empty``); a named error otherwise.

    Parameters
    ----------
    df
        The table passed to the plot.
    cols
        Required columns.
    what
        Name of the table (the plot's parameter), for the error message.
    allow_empty
        Whether a table without rows is accepted.
    """
    if not isinstance(df, pd.DataFrame):
        raise AttuneInputError(f"{what}: expected a DataFrame, got {type(df).__name__}")
    miss = [c for c in cols if c not in df.columns]
    if miss:
        raise AttuneInputError(f"{what}: table lacks column(s) {miss}; available: {list(df.columns)}")
    if not allow_empty and df.empty:
        raise AttuneInputError(f"{what}: the table is empty")
    return df


def ok_rows(df, need: tuple[str, ...], what: str) -> pd.DataFrame:
    """Rows of a benchmark table whose ``status`` starts with ``"ok"`` and whose ``need`` values are present.

    Parameters
    ----------
    df
        Benchmark or sweep table.
    need
        Required columns (``label``/``method`` may be missing values).
    what
        Name of the plot, for the error message.
    """
    if not isinstance(df, pd.DataFrame):
        raise AttuneInputError(f"{what}: expected a results DataFrame, got {type(df).__name__}")
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise AttuneInputError(f"{what}: results table lacks column(s) {missing}")
    out = df[df["status"].astype(str).str.startswith("ok")] if "status" in df else df
    out = out.dropna(subset=[c for c in need if c not in ("label", "method")])
    if out.empty:
        raise AttuneInputError(f"{what}: no successful ('ok') rows with {list(need)} to plot")
    return out


def name_column(df: pd.DataFrame) -> str:
    """``"label"`` when the benchmark table has it, else ``"method"``.

    Parameters
    ----------
    df
        Benchmark table.
    """
    return "label" if "label" in df.columns else "method"


def method_palette(labels) -> dict:
    """Colour per method label: :data:`METHOD_COLORS` for known methods, tab10 for the others.

    Parameters
    ----------
    labels
        Method labels (order kept, duplicates dropped).
    """
    labels = list(dict.fromkeys(labels))
    extra = [c for c in sns.color_palette("tab10", 10) if c not in METHOD_COLORS.values()]
    out, i = {}, 0
    for lab in labels:
        if lab in METHOD_COLORS:
            out[lab] = METHOD_COLORS[lab]
        else:
            out[lab] = extra[i % len(extra)]
            i += 1
    return out


def ci95(x) -> float:
    """Half-width of the 95% t confidence interval of the mean (0 for fewer than two values).

    Parameters
    ----------
    x
        Values (missing values dropped).
    """
    x = pd.Series(x).dropna()
    if len(x) < 2:
        return 0.0
    from scipy import stats

    return float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))


def mean_ci_bars(ax: Axes, df: pd.DataFrame, x: str, y: str, order, palette, *, title: str, ylabel: str) -> None:
    """One bar per ``order`` value of ``df[x]``: mean of ``y`` with its 95% CI, and one dot per row.

    Parameters
    ----------
    ax
        Axes drawn on.
    df
        Table.
    x
        Column of the bar groups.
    y
        Column of the values.
    order
        Bar order.
    palette
        Colour per group.
    title
        Panel title.
    ylabel
        y-axis label.
    """
    g = df.groupby(x, observed=True)[y]
    means = g.mean().reindex(order)
    cis = g.apply(ci95).reindex(order)
    colors = [palette[o] for o in order]
    ax.bar(range(len(order)), means.to_numpy(), yerr=cis.to_numpy(), color=colors, capsize=4,
           edgecolor="black", linewidth=0.5)
    for i, o in enumerate(order):
        vals = df.loc[df[x] == o, y].to_numpy()
        jitter = np.linspace(-0.15, 0.15, len(vals)) if len(vals) > 1 else np.zeros(len(vals))
        ax.scatter(i + jitter, vals, s=10, color="black", zorder=3)
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([str(o) for o in order], rotation=30, ha="right")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)


def categorical_palette(categories, name: str = "tab10") -> dict:
    """Colour per category (a seaborn palette, cycled past its length).

    Parameters
    ----------
    categories
        Categories in order.
    name
        Seaborn palette.
    """
    cats = list(dict.fromkeys(categories))
    pal = sns.color_palette(name, n_colors=max(len(cats), 1))
    return {c: pal[i % len(pal)] for i, c in enumerate(cats)}
