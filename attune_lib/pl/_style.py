"""Helpers shared by the plot files: saving, the axes a plot draws on, the style guide, table checks.

Every plot takes ``ax=`` (one Axes, or a sequence of Axes for a plot of several panels) and returns the
Figure it drew on. :func:`panel_axes` turns ``ax`` into the list of panels (creating a figure, with
constrained layout, only when ``ax`` is None); :func:`finish` returns the figure (the caller's figure is
left as it is), and :func:`figure_title` puts an overall title on the created figure or, with the
caller's axes, on the first panel.

The figure style guide (``docs/conventions.md``, "Figures") lives here:

* one colour per cell type, the same in every figure: :func:`cell_type_palette` (a fixed table per
  known cell-type set, :data:`CELL_TYPE_COLORS`; the ``uns["<key>_colors"]`` of the data when it has
  one; a colour derived from the label itself for unknown labels);
* one colour per method (:data:`METHOD_COLORS`, :func:`method_palette`);
* readable labels: :func:`label` turns an internal key (``X_umap_attune``, ``topic_pseudotime``,
  ``lsi_ridge``) into the words a figure shows, through one map (:data:`LABELS`);
* fonts of at least :data:`MIN_FONT` points (:data:`FONT` for tick and in-panel text).
"""

from __future__ import annotations

import os
import re
import zlib
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
#: colour of plain bars (dark enough for white 8-pt text inside them)
BAR = "#2b5d8a"

#: fixed colours so a method looks the same in every panel
METHOD_COLORS = {
    "Attune": "#d62728", "attune": "#d62728",
    "PCA/LSI": "#7f7f7f", "pca_lsi": "#7f7f7f",
    "PCA/LSI+CCA": "#bcbd22", "cca": "#bcbd22",
    "MultiVI": "#1f77b4", "multivi": "#1f77b4",
    "GLUE": "#2ca02c", "glue": "#2ca02c",
    "scMVP": "#9467bd", "scmvp": "#9467bd",
}

#: smallest font size (points, at the saved size) of any text on a figure
MIN_FONT = 8
#: font size of tick labels, legends and in-panel text
FONT = 8

#: internal key -> the words a figure shows (see :func:`label`)
LABELS = {
    # methods (integration, prediction)
    "attune": "Attune", "pca_lsi": "PCA/LSI", "cca": "PCA/LSI+CCA", "multivi": "MultiVI", "glue": "GLUE",
    "scmvp": "scMVP", "attune_finetuned": "Attune (fine-tuned)", "mlp_denovo": "MLP (de novo)",
    "lasso": "Lasso", "lsi_ridge": "LSI + ridge", "lasso_peaks": "Lasso (peaks)",
    # embeddings (obsm keys, without the X_ prefix)
    "umap": "UMAP", "umap_attune": "UMAP (Attune)", "umap_pca": "UMAP (RNA PCA)", "umap_lsi": "UMAP (ATAC LSI)",
    "umap_scmvp": "UMAP (scMVP)", "umap_glue": "UMAP (GLUE)", "umap_multivi": "UMAP (MultiVI)",
    "pca": "RNA PCA", "lsi": "ATAC LSI",
    # obs columns
    "cell_type": "cell type", "pseudotime": "pseudotime", "topic_pseudotime": "pseudotime (topics)",
    "dpt_pseudotime": "pseudotime (diffusion)", "palantir_pseudotime": "pseudotime (Palantir)",
    "pt_group": "pseudotime group", "ref_query": "reference / query", "total_counts": "total counts",
    "n_features": "detected features", "lineage": "lineage", "batch": "batch",
    "cosine_distance": "RNA-ATAC cosine distance", "scmvp_cluster": "scMVP cluster", "leiden": "Leiden cluster",
    # metrics and summary scores
    "overall": "overall score", "bio_conservation": "biology conservation", "omics_mixing": "omics mixing",
    "foscttm": "FOSCTTM", "map": "MAP", "asw": "cell-type ASW", "nc": "neighbour conservation",
    "sas": "seurat alignment score", "asw_batch": "omics-layer ASW", "gc": "graph connectivity",
    "alignment": "alignment", "uniformity": "uniformity", "pearson": "Pearson r", "spearman": "Spearman r",
    "rmse": "RMSE", "auroc": "AUROC", "n_latent": "embedding dimension",
    # modalities
    "rna": "RNA", "atac": "ATAC",
}

#: one colour per cell type of each known cell-type set (simulator presets and the real data sets);
#: a label keeps its colour in every figure
CELL_TYPE_COLORS = {
    # PBMC (simulator preset "pbmc", PBMC 10k)
    "CD14 Mono": "#1f77b4", "CD16 Mono": "#aec7e8", "cDC": "#ff7f0e", "pDC": "#ffbb78", "B naive": "#2ca02c",
    "B memory": "#98df8a", "B": "#2ca02c", "CD4 T": "#d62728", "CD4 Naive": "#d62728", "CD4 TCM": "#ff9896",
    "CD8 T": "#9467bd", "CD8 Naive": "#9467bd", "CD8 TEM": "#c5b0d5", "NK": "#8c564b", "MAIT": "#c49c94",
    "Platelet": "#7f7f7f", "HSPC": "#bcbd22", "Plasma": "#17becf",
    # hair follicle (simulator preset "skin", SHARE-seq TAC)
    "TAC-1": "#fdb462", "TAC-2": "#fb8072", "IRS": "#80b1d3", "Medulla": "#b3de69", "Hair Shaft": "#bc80bd",
    # cortex (simulator preset "cortex")
    "RG": "#66c2a5", "IPC": "#fc8d62", "Neuron immature": "#8da0cb", "Neuron mature": "#e78ac3",
}

#: colours given to labels that are in no known set (chosen from the label, so stable across figures)
FALLBACK_COLORS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
                   "#756bb1", "#636363", "#6baed6", "#fd8d3c", "#74c476", "#9e9ac8", "#969696", "#9c9ede",
                   "#cedb9c", "#e7cb94", "#e7969c", "#de9ed6")


def label(key, *, unit: str | None = None) -> str:
    """The words a figure shows for an internal key: :data:`LABELS`, else the key made readable.

    ``X_<name>`` (an ``obsm`` key) is looked up without its prefix (``X_umap_attune`` -> "UMAP (Attune)"); an
    unknown key has its underscores replaced by spaces. Anything that is not a string (a number, a
    category) is shown as it is.

    Parameters
    ----------
    key
        The key (an obs column, ``obsm`` key, method, metric...).
    unit
        Appended in parentheses (e.g. ``"kb"``).
    """
    if not isinstance(key, str):
        return str(key)
    name = key[2:] if key.startswith("X_") else key
    text = LABELS.get(key, LABELS.get(name))
    if text is None:
        text = re.sub(r"_+", " ", name).strip() if re.search(r"[a-z]_|_[a-z]", name) or key.startswith("X_") \
            else key
    return f"{text} ({unit})" if unit else text


def cell_type_palette(categories, *, adata=None, key: str | None = None) -> dict:
    """One colour per cell type, the same in every figure.

    In order: the data's own colours (``adata.uns[f"{key}_colors"]``, scanpy's convention, when it has one
    colour per category of ``adata.obs[key]``); :data:`CELL_TYPE_COLORS`; for a label in neither, a colour of
    :data:`FALLBACK_COLORS` chosen from the label's checksum (so the same label gets the same colour
    in every figure), moved on to the next free one when it is taken in this plot.

    Parameters
    ----------
    categories
        Labels in order (duplicates dropped).
    adata
        AnnData/MuData whose ``uns`` may hold the colours (None: not looked up).
    key
        obs column of the labels (for ``uns[f"{key}_colors"]``).
    """
    cats = [c for c in dict.fromkeys(categories)]
    own = {}
    if adata is not None and key is not None:
        colors = getattr(adata, "uns", {}).get(f"{key}_colors")
        obs = getattr(adata, "obs", None)
        if colors is not None and obs is not None and key in obs and isinstance(obs[key].dtype, pd.CategoricalDtype):
            levels = [str(c) for c in obs[key].cat.categories]
            if len(colors) == len(levels):
                own = dict(zip(levels, colors))
    out = {}
    for c in cats:
        if str(c) in own:
            out[c] = own[str(c)]
        elif str(c) in CELL_TYPE_COLORS:
            out[c] = CELL_TYPE_COLORS[str(c)]
    used = set(out.values())
    n = len(FALLBACK_COLORS)
    for c in cats:
        if c in out:
            continue
        start = zlib.crc32(str(c).encode()) % n
        pick = next((FALLBACK_COLORS[(start + i) % n] for i in range(n) if FALLBACK_COLORS[(start + i) % n]
                     not in used), FALLBACK_COLORS[start])
        out[c] = pick
        used.add(pick)
    return out


def is_cell_type_key(key) -> bool:
    """Whether an obs column holds cell types (its name says so), so :func:`cell_type_palette` colours it.

    Parameters
    ----------
    key
        obs column name.
    """
    return isinstance(key, str) and bool(re.search(r"cell_?type|celltype", key, re.IGNORECASE))


def cluster_name(lab) -> str:
    """``"cluster <lab>"``, without doubling a label that already says "cluster".

    Parameters
    ----------
    lab
        Cluster label (``1`` or ``"cluster 1"``).
    """
    text = str(lab)
    return text if text.lower().startswith("cluster") else f"cluster {text}"


def natural_key(text) -> tuple:
    """Sort key putting ``"cluster 2"`` before ``"cluster 10"`` (numbers compared as numbers).

    Parameters
    ----------
    text
        Label.
    """
    parts = re.split(r"(\d+)", str(text))
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def genomic_axis(ax: Axes, lo: float, hi: float) -> str:
    """Genomic coordinates on the x axis of ``ax`` in kb or Mb (no "1e6" offset); returns the unit.

    Parameters
    ----------
    ax
        Axes whose x axis holds base pairs.
    lo, hi
        Shown range in base pairs (Mb from a 2 Mb span or a start past 10 Mb, else kb).
    """
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    scale, unit = (1e6, "Mb") if (hi - lo) >= 2e6 or lo >= 1e7 else (1e3, "kb")
    span = (hi - lo) / scale
    decimals = int(max(0, np.ceil(-np.log10(span / 5)))) if span > 0 else 0
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v / scale:,.{decimals}f}"))
    return unit


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
        subplots_kw.setdefault("layout", "constrained")
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

    Figures made by :func:`panel_axes` use constrained layout, which places titles, labels, legends and
    colour bars without overlap when the figure is drawn; others get ``tight_layout``.

    Parameters
    ----------
    fig
        The figure drawn on.
    created
        Whether the plot created ``fig``.
    """
    if created and fig.get_layout_engine() is None:
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
    out = display_names(out)
    if out.empty:
        raise AttuneInputError(f"{what}: no successful ('ok') rows with {list(need)} to plot")
    return out


def display_names(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of a benchmark table whose ``label`` (else ``method``) column holds the words figures show.

    Method keys such as ``pca_lsi`` become their :data:`LABELS` entry ("PCA/LSI"); labels that are already
    words are kept.

    Parameters
    ----------
    df
        Benchmark or sweep table.
    """
    if df.empty:
        return df
    col = name_column(df)
    out = df.copy()
    out[col] = [label(v) if isinstance(v, str) else v for v in out[col]]
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


def seed_interval(x, *, level: float = 0.95, n_boot: int = 4000, seed: int = 0) -> tuple[float, float] | None:
    """Bootstrap percentile interval of the mean over seeds; None when the values do not vary.

    The seeds are resampled with replacement ``n_boot`` times and the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles of the resampled means are returned. A percentile interval lies between
    the smallest and the largest value, so the interval of a score in [0, 1] stays in [0, 1] (a
    t-interval on 3-5 seeds does not: it runs past both ends of the scale). With fewer than two values,
    or values that are all equal (a deterministic method), there is no interval: None.

    Parameters
    ----------
    x
        Values, one per seed (missing values dropped).
    level
        Coverage of the interval.
    n_boot
        Bootstrap resamples.
    seed
        Seed of the resampling (fixed, so a figure is the same at every run).
    """
    v = pd.Series(x, dtype=float).dropna().to_numpy()
    if len(v) < 2 or np.ptp(v) <= 1e-12 * max(1.0, float(np.abs(v).max())):
        return None
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def score_label(df: pd.DataFrame, column: str) -> str:
    """Axis label of a summary score that says how it was scaled (``df.attrs["score_scaling"]``).

    Parameters
    ----------
    df
        Benchmark or sweep table (``attrs["score_scaling"]`` set by :func:`attune_lib.tl.summary_scores`).
    column
        Column plotted.
    """
    text = label(column)
    if column in ("overall", "bio_conservation", "omics_mixing"):
        scaling = getattr(df, "attrs", {}).get("score_scaling")
        if scaling == "fixed":
            text += " (fixed 0-1 anchors)"
        elif scaling == "minmax":
            text += " (min-max within this table)"
    return text


def mean_ci_bars(ax: Axes, df: pd.DataFrame, x: str, y: str, order, palette, *, title: str, ylabel: str) -> None:
    """One bar per ``order`` value of ``df[x]``: mean of ``y`` over seeds, its 95% bootstrap CI, a dot per seed.

    The interval is :func:`seed_interval` (a bootstrap percentile interval, inside the range of the
    values). A group whose seeds all give the same value (a deterministic method) gets no error bar and
    the word "deterministic" above its bar; a group with one value is marked "n=1".

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
    means = g.mean().reindex(order).to_numpy(dtype=float)
    colors = [palette[o] for o in order]
    ax.bar(range(len(order)), means, color=colors, edgecolor="black", linewidth=0.5)
    top = float(np.nanmax(df[y].to_numpy(dtype=float))) if len(df) else 1.0
    for i, o in enumerate(order):
        vals = df.loc[df[x] == o, y].dropna().to_numpy(dtype=float)
        jitter = np.linspace(-0.15, 0.15, len(vals)) if len(vals) > 1 else np.zeros(len(vals))
        ax.scatter(i + jitter, vals, s=10, color="black", zorder=3)
        ci = seed_interval(vals)
        if ci is not None:
            ax.errorbar([i], [means[i]], yerr=[[means[i] - ci[0]], [ci[1] - means[i]]], color="black", capsize=4,
                        lw=1.2, zorder=4)
        else:
            note = "n=1" if len(vals) < 2 else "deterministic"
            ax.annotate(note, (i, max(means[i], vals.max() if len(vals) else means[i])), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom", fontsize=FONT, rotation=0)
    ax.set_ylim(top=max(ax.get_ylim()[1], top * 1.12))
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([str(o) for o in order], rotation=30, ha="right")
    ax.set_title(f"{title}\nmean over seeds, 95% bootstrap CI", fontsize=10)
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
