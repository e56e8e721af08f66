"""Plots of the integration benchmark (paper Fig. 2A-E, contrast ablation, Supp. Fig. S9).

Every function takes the tidy table returned by :mod:`attune_lib.tl` (``run_integration_benchmark``,
``sweep_features``, ``sweep_dimension``, ``sweep_contrast``) or the MuData of
``reference_mapping`` and returns the matplotlib Figure. Only rows whose ``status`` starts with
``"ok"`` are drawn.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from .._utils import AttuneInputError

__all__ = [
    "alignment_uniformity",
    "bio_vs_mixing",
    "contrast_ablation",
    "dimension_sweep",
    "feature_sweep",
    "overall_and_foscttm",
    "reference_mapping",
]


def _ok(df: pd.DataFrame, need: tuple[str, ...], what: str) -> pd.DataFrame:
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


#: fixed colours so a method looks the same in every panel
METHOD_COLORS = {
    "Attune": "#d62728", "attune": "#d62728",
    "PCA/LSI": "#7f7f7f", "pca_lsi": "#7f7f7f",
    "PCA/LSI+CCA": "#bcbd22", "cca": "#bcbd22",
    "MultiVI": "#1f77b4", "multivi": "#1f77b4",
    "GLUE": "#2ca02c", "glue": "#2ca02c",
    "scMVP": "#9467bd", "scmvp": "#9467bd",
}


def _palette(labels) -> dict:
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


def _name(df: pd.DataFrame) -> str:
    return "label" if "label" in df.columns else "method"


def _ci95(x: pd.Series) -> float:
    x = pd.Series(x).dropna()
    if len(x) < 2:
        return 0.0
    from scipy import stats

    return float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))


def _bars(ax, df: pd.DataFrame, x: str, y: str, order, palette, *, title: str, ylabel: str):
    g = df.groupby(x, observed=True)[y]
    means = g.mean().reindex(order)
    cis = g.apply(_ci95).reindex(order)
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


def _split_anchors(df: pd.DataFrame, method: str = "attune") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of ``method`` and the anchor (baseline) rows of a sweep table."""
    if "method" not in df.columns:
        return df, df.iloc[:0]
    return df[df["method"] == method], df[df["method"] != method]


def _anchor_lines(ax, anchors: pd.DataFrame, metric: str) -> None:
    if anchors is None or anchors.empty or metric not in anchors:
        return
    ok = anchors[anchors["status"].astype(str).str.startswith("ok")] if "status" in anchors else anchors
    name = _name(ok)
    pal = _palette(ok[name])
    for lab, sub in ok.groupby(name, observed=True, sort=False):
        v = sub[metric].mean()
        if np.isfinite(v):
            ax.axhline(v, color=pal[lab], ls="--", lw=1.2, label=f"{lab}")
    if len(ok):
        ax.legend(frameon=False, fontsize=7, loc="best")


def bio_vs_mixing(df: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Biology conservation vs omics mixing (Fig. 2A): one small dot per seed, a large one per method mean.

    Parameters
    ----------
    df
        Benchmark table of :func:`attune_lib.tl.run_integration_benchmark` (one row per method and seed).
        Needs ``bio_conservation`` and ``omics_mixing``.
    title
        Figure title (None: a default).
    """
    name = _name(df)
    d = _ok(df, (name, "bio_conservation", "omics_mixing"), "bio_vs_mixing")
    pal = _palette(d[name])
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    for lab, sub in d.groupby(name, observed=True, sort=False):
        ax.scatter(sub["omics_mixing"], sub["bio_conservation"], s=18, alpha=0.5, color=pal[lab])
        ax.scatter(sub["omics_mixing"].mean(), sub["bio_conservation"].mean(), s=140, color=pal[lab],
                   edgecolor="black", linewidth=0.8, label=lab, zorder=3)
    ax.set_xlabel("Omics mixing score")
    ax.set_ylabel("Biology conservation score")
    ax.set_title(title or "Integration: biology conservation vs omics mixing", fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def overall_and_foscttm(df: pd.DataFrame) -> Figure:
    """Overall integration score and FOSCTTM per method, mean and 95% CI over seeds (Fig. 2B).

    Parameters
    ----------
    df
        Benchmark table of :func:`attune_lib.tl.run_integration_benchmark` (one row per method and seed).
        Needs ``overall`` and ``foscttm``.
    """
    name = _name(df)
    d = _ok(df, (name, "overall"), "overall_and_foscttm")
    order = list(d.groupby(name, observed=True)["overall"].mean().sort_values(ascending=False).index)
    pal = _palette(order)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    _bars(axes[0], d, name, "overall", order, pal, title="Overall integration score (higher is better)",
          ylabel="overall score")
    f = d.dropna(subset=["foscttm"]) if "foscttm" in d else d.iloc[:0]
    if len(f):
        forder = [o for o in order if o in set(f[name])]
        _bars(axes[1], f, name, "foscttm", forder, pal, title="FOSCTTM (lower is better)", ylabel="FOSCTTM")
    else:
        axes[1].set_axis_off()
    fig.tight_layout()
    return fig


def alignment_uniformity(df: pd.DataFrame) -> Figure:
    """Alignment vs uniformity of the L2-normalised embeddings, one dot per seed (Fig. 2C; lower-left is better).

    Parameters
    ----------
    df
        Benchmark table of :func:`attune_lib.tl.run_integration_benchmark` (one row per method and seed).
        Needs ``alignment`` and ``uniformity``.
    """
    name = _name(df)
    d = _ok(df, (name, "alignment", "uniformity"), "alignment_uniformity")
    pal = _palette(d[name])
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    for lab, sub in d.groupby(name, observed=True, sort=False):
        ax.scatter(sub["uniformity"], sub["alignment"], s=40, color=pal[lab], edgecolor="black",
                   linewidth=0.4, label=lab)
    ax.set_xlabel(r"$\mathcal{L}_{uniform}$ (lower is better)")
    ax.set_ylabel(r"$\mathcal{L}_{align}$ (lower is better)")
    ax.set_title("Alignment and uniformity", fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def feature_sweep(df: pd.DataFrame) -> Figure:
    """Attune under different numbers of genes and peaks (Fig. 2D): bio vs mixing, size = peaks, colour = genes.

    Parameters
    ----------
    df
        Table of the feature sweep (``n_genes``/``n_peaks`` or the requested numbers, ``bio_conservation``,
        ``omics_mixing``, ``overall``).
    """
    gcol = "n_genes_requested" if "n_genes_requested" in df else "n_genes"
    pcol = "n_peaks" if "n_peaks" in df else "n_peaks_requested"
    df, anchors = _split_anchors(df)
    d = _ok(df, ("bio_conservation", "omics_mixing", gcol, pcol), "feature_sweep").copy()
    g = d.groupby([gcol, pcol], observed=True, dropna=False)[["bio_conservation", "omics_mixing", "overall"]].mean()
    g = g.reset_index()
    genes = sorted(g[gcol].unique())
    peaks = np.asarray(g[pcol], dtype=float)
    lo, hi = np.nanmin(peaks), np.nanmax(peaks)
    sizes = 40 + 260 * ((peaks - lo) / (hi - lo) if hi > lo else np.ones_like(peaks) * 0.5)
    cmap = plt.get_cmap("viridis", max(len(genes), 2))
    colors = [cmap(genes.index(v)) for v in g[gcol]]
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    ax.scatter(g["omics_mixing"], g["bio_conservation"], s=sizes, c=colors, edgecolor="black", linewidth=0.5,
               alpha=0.85)
    from matplotlib.lines import Line2D

    h_genes = [Line2D([], [], marker="o", ls="", color=cmap(i), label=f"{int(v)} genes") for i, v in enumerate(genes)]
    pvals = sorted(set(peaks.astype(int)))
    h_peaks = [Line2D([], [], marker="o", ls="", color="grey", mfc="none",
                      markersize=np.sqrt(40 + 260 * ((p - lo) / (hi - lo) if hi > lo else 0.5)),
                      label=f"{p} peaks") for p in pvals]
    h_anchor = []
    if len(anchors):
        a = anchors[anchors["status"].astype(str).str.startswith("ok")]
        name = _name(a)
        pal = _palette(a[name])
        for lab, sub in a.groupby(name, observed=True, sort=False):
            ax.scatter(sub["omics_mixing"].mean(), sub["bio_conservation"].mean(), marker="*", s=220,
                       color=pal[lab], edgecolor="black", linewidth=0.5)
            h_anchor.append(Line2D([], [], marker="*", ls="", color=pal[lab], markersize=12, label=lab))
    ax.legend(handles=h_genes + h_peaks + h_anchor, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
              fontsize=8, labelspacing=1.2)
    ax.set_xlabel("Omics mixing score")
    ax.set_ylabel("Biology conservation score")
    ax.set_title("Attune: numbers of genes and peaks", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def dimension_sweep(df: pd.DataFrame, *, metric: str = "overall") -> Figure:
    """Overall integration score per embedding dimension, mean and 95% CI over seeds (Fig. 2E).

    Anchor (baseline) rows of the table are drawn as dashed horizontal lines.

    Parameters
    ----------
    df
        Table of the dimension sweep (``n_latent`` and the metric, one row per dimension and seed).
    metric
        Column plotted.
    """
    df, anchors = _split_anchors(df)
    d = _ok(df, ("n_latent", metric), "dimension_sweep").copy()
    d["dim"] = d["n_latent"].astype(int).astype(str)
    order = [str(v) for v in sorted(d["n_latent"].astype(int).unique())]
    pal = dict(zip(order, sns.color_palette("crest", n_colors=len(order))))
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    _bars(ax, d, "dim", metric, order, pal, title=f"Attune: embedding dimension ({metric})", ylabel=metric)
    _anchor_lines(ax, anchors, metric)
    ax.set_xlabel("embedding dimension")
    fig.tight_layout()
    return fig


def contrast_ablation(df: pd.DataFrame, *, metrics: tuple[str, ...] = ("overall", "foscttm")) -> Figure:
    """Contrast-design ablation: one bar panel per metric (mean and 95% CI over seeds).

    Anchor (baseline) rows of the table are drawn as dashed horizontal lines.

    Parameters
    ----------
    df
        Table of the contrast-design ablation (``contrast`` and the metrics, one row per design and seed).
    metrics
        Columns, one panel each.
    """
    df, anchors = _split_anchors(df)
    d = _ok(df, ("design", *metrics), "contrast_ablation")
    order = [x for x in ("default", "intra", "cross") if x in set(d["design"])] + \
        [x for x in d["design"].unique() if x not in ("default", "intra", "cross")]
    pal = _palette(order)
    names = {"default": "RtAt_RsAs\n(default)", "intra": "RtRs_AtAs\n(intra)", "cross": "RtAs_RsAt\n(cross)"}
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.8 * len(metrics), 3.8), squeeze=False)
    for ax, met in zip(axes.flat, metrics):
        better = "lower" if met in ("foscttm", "alignment", "uniformity") else "higher"
        _bars(ax, d, "design", met, order, pal, title=f"{met} ({better} is better)", ylabel=met)
        _anchor_lines(ax, anchors, met)
        ax.set_xticklabels([names.get(o, o) for o in order], rotation=0, fontsize=8)
    fig.tight_layout()
    return fig


def reference_mapping(
    mdata,
    *,
    cell_type_key: str = "cell_type",
    use_rep: str = "X_attune",
    basis: str | None = None,
    random_state: int = 0,
) -> Figure:
    """UMAP of reference and mapped query cells (Supp. Fig. S9).

    Three panels: reference vs query; cell types (reference cells faint); the held-out type's query
    cells over the reference. The UMAP is computed from ``obsm[use_rep]`` and stored as ``basis``
    (default ``X_umap_<use_rep>``) unless it already exists.

    Parameters
    ----------
    mdata
        Output of :func:`attune_lib.tl.reference_mapping` (reference and query cells,
        ``uns['reference_mapping']``).
    cell_type_key
        obs column with the cell types.
    use_rep
        obsm key of the joint embedding the UMAP is computed from.
    basis
        obsm key of the UMAP (None: ``X_umap_<use_rep>``; computed unless present).
    random_state
        Seed of the UMAP.
    """
    from ..tl import embed_umap

    for key in ("ref_query", cell_type_key):
        if key not in mdata.obs:
            raise AttuneInputError(f"obs[{key!r}] missing; run attune_lib.tl.reference_mapping first")
    basis = basis or f"X_umap_{use_rep.removeprefix('X_')}"
    if basis not in mdata.obsm:
        embed_umap(mdata, use_rep=use_rep, key_added=basis, random_state=random_state)
    xy = np.asarray(mdata.obsm[basis])[:, :2]
    split = mdata.obs["ref_query"].astype(str).to_numpy()
    ct = mdata.obs[cell_type_key].astype(str).to_numpy()
    held = mdata.obs["held_out"].to_numpy(bool) if "held_out" in mdata.obs else np.zeros(len(ct), bool)
    info = mdata.uns.get("reference_mapping", {})
    types = sorted(np.unique(ct))
    pal = dict(zip(types, sns.color_palette("tab10" if len(types) <= 10 else "husl", n_colors=max(len(types), 1))))
    size = max(120000 / max(len(ct), 1), 2) ** 0.5
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    ax = axes[0]
    for lab, col in (("reference", "#bbbbbb"), ("query", "#d62728")):
        m = split == lab
        ax.scatter(xy[m, 0], xy[m, 1], s=size, color=col, label=f"{lab} ({m.sum()})", linewidths=0, rasterized=True)
    ax.legend(frameon=False, fontsize=8, markerscale=3)
    ax.set_title("reference vs query", fontsize=10)
    ax = axes[1]
    for t in types:
        m = (ct == t) & (split == "reference")
        ax.scatter(xy[m, 0], xy[m, 1], s=size, color=pal[t], alpha=0.3, linewidths=0, rasterized=True)
        m = (ct == t) & (split == "query")
        ax.scatter(xy[m, 0], xy[m, 1], s=size * 1.8, color=pal[t], label=t, edgecolors="black", linewidths=0.4,
                   rasterized=True)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7, markerscale=2)
    ax.set_title("cell types (query outlined, reference faint)", fontsize=10)
    ax = axes[2]
    m = split == "reference"
    for t in types:
        mm = m & (ct == t)
        ax.scatter(xy[mm, 0], xy[mm, 1], s=size, color=pal[t], alpha=0.35, linewidths=0, rasterized=True)
    ax.scatter(xy[held, 0], xy[held, 1], s=size * 2.5, color="black", label="held-out query", linewidths=0,
               rasterized=True)
    hold = info.get("holdout_type", [])
    hold = [hold] if isinstance(hold, str) else list(hold)
    title = f"unseen type: {', '.join(map(str, hold))}" if hold else "held-out query cells"
    near = info.get("nearest_reference_types")
    if isinstance(near, pd.DataFrame) and hold:
        parts = []
        for h in hold:
            if h in near.index:
                top = near.loc[h].drop("n_cells").sort_values(ascending=False).head(2)
                parts.append(", ".join(f"{k} {v:.0%}" for k, v in top.items()))
        if parts:
            title += "\nnearest reference: " + "; ".join(parts)
    ax.legend(frameon=False, fontsize=8, markerscale=2)
    ax.set_title(title, fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("UMAP1")
        ax.set_ylabel("UMAP2")
    fig.tight_layout()
    return fig
