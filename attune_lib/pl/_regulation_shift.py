"""Plots of :mod:`attune_lib.tl._regulation_shift`: soft clusters of a gene's peaks, their cores, the link plot and
the transit pattern (paper Fig. 4A-C, 4E)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from .._utils import AttuneInputError, get_modality, renamed_kwargs
from ._style import FONT, cluster_name, finish, genomic_axis, label, natural_key, panel_axes, single_axes

__all__ = ["cluster_cores", "peak_links", "soft_clusters", "transit_heatmap"]


def _check_result(result, keys: Sequence[str]) -> None:
    if not isinstance(result, Mapping):
        raise AttuneInputError(f"result: expected the dict of attune_lib.tl.peak_soft_clusters, got "
                               f"{type(result).__name__}")
    for k in keys:
        if k not in result:
            raise AttuneInputError(f"result has no {k!r}; pass the output of attune_lib.tl.peak_soft_clusters")


def soft_clusters(result: Mapping, *, ncols: int = 4, cmap: str = "viridis", ax=None) -> Figure:
    """Fuzzy clusters of peak profiles (Mfuzz style, Fig. 4A) and the centroid-distance curve.

    One panel per cluster: member profiles coloured by membership (colour bar; alpha cores drawn thicker),
    the centroid in black; a last panel (when ``result`` has ``dmin``) shows ``Dmin`` against ``c`` with
    the chosen ``c``.

    Parameters
    ----------
    result
        Output of :func:`attune_lib.tl.peak_soft_clusters` or :func:`attune_lib.tl.fuzzy_cmeans`
        (``profiles``, ``clusters``, ``membership``, ``centers``; ``dmin`` and ``n_clusters`` for the last panel).
    ncols
        Panels per row of a new figure.
    cmap
        Colour map of the membership.
    ax
        One Axes per cluster, plus one for the ``Dmin`` curve when ``result`` has ``dmin`` (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_result(result, ("clusters", "membership", "centers", "profiles"))
    prof, cl, cen = result["profiles"], result["clusters"], result["centers"]
    labels = list(cen.index)
    has_dmin = len(result.get("dmin", [])) > 0
    n_panels = len(labels) + int(has_dmin)
    ncols = min(ncols, n_panels)
    nrows = int(np.ceil(n_panels / ncols))
    what = "one per cluster" + (", then the Dmin curve" if has_dmin else "")
    fig, axes, created = panel_axes(ax, n_panels, what=what, ncols=ncols, figsize=(3.6 * ncols + 1.2, 3.2 * nrows))
    x = np.arange(prof.shape[1])
    cm = plt.get_cmap(cmap)
    alpha = result.get("alpha", 0.5)
    xlab = label(prof.columns.name) if prof.columns.name else "pseudotime group"
    step = max(1, int(np.ceil(len(x) / 8)))  # at most 8 tick labels, so 8-pt labels never collide
    for a, lab in zip(axes, labels):
        mem = result["membership"][lab]
        members = cl.index[cl["cluster"].astype(str) == str(lab)]
        for p in mem.loc[members].sort_values().index:
            a.plot(x, prof.loc[p].to_numpy(), color=cm(float(mem[p])), lw=1.6 if mem[p] > alpha else 0.8)
        a.plot(x, cen.loc[lab].to_numpy(), color="k", lw=2.2)
        n_core = int((cl.loc[members, "core"]).sum()) if "core" in cl else 0
        a.set_title(f"{cluster_name(lab)}: {len(members)} peaks, {n_core} core", fontsize=FONT + 1)
        a.set_xticks(x[::step])
        a.set_xticklabels([str(c) for c in prof.columns[::step]], fontsize=FONT)
        a.tick_params(axis="y", labelsize=FONT)
        a.set_xlabel(xlab, fontsize=FONT + 1)
        a.set_ylabel("standardised accessibility", fontsize=FONT + 1)
    if labels:
        axes[0].plot([], [], color="k", lw=2.2, label="centroid")
        axes[0].plot([], [], color=cm(0.9), lw=1.6, label=f"core (membership > {alpha:g})")
        axes[0].plot([], [], color=cm(0.3), lw=0.8, label="other member")
        axes[0].legend(fontsize=FONT, frameon=False, loc="lower left")
    if has_dmin:
        a = axes[len(labels)]
        d = result["dmin"]
        a.plot(d["c"], d["dmin"], "o-", color="0.3", ms=3)
        a.axvline(result["n_clusters"], color="red", ls="--", lw=1, label=f"chosen c = {result['n_clusters']}")
        a.set_xlabel("cluster number c")
        a.set_ylabel("min centroid distance")
        a.set_title("centroid distance (Dmin)", fontsize=FONT + 1)
        a.legend(fontsize=FONT, frameon=False)
    sm = plt.cm.ScalarMappable(cmap=cm, norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=axes[: len(labels)], shrink=0.6, label="membership")
    return finish(fig, created)


def cluster_cores(result: Mapping, *, clusters: Sequence[str] | None = None, max_named: int = 30,
                  ax=None) -> Figure:
    """Heatmap of the alpha-core peaks' standardised accessibility, peaks grouped by cluster (Fig. 4C).

    One heatmap (peaks x pseudotime groups) with a colour bar; clusters are separated by lines and named
    (with their number of peaks). Up to ``max_named`` peaks are named on the left and the clusters on the
    right; with more, only the clusters are named, and the figure stays at most 7 inches tall.

    Parameters
    ----------
    result
        Output of :func:`attune_lib.tl.peak_soft_clusters` (``profiles`` and ``clusters`` with a ``core``
        column).
    clusters
        Clusters to show (None: all).
    max_named
        Most peaks whose names are written.
    ax
        Axes to draw on (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_result(result, ("profiles", "clusters"))
    prof, cl = result["profiles"], result["clusters"]
    if "core" not in cl:
        raise AttuneInputError("result['clusters'] has no 'core' column (attune_lib.tl.peak_soft_clusters)")
    core = cl[cl["core"].astype(bool)]
    if clusters is not None:
        core = core[core["cluster"].astype(str).isin([str(c) for c in clusters])]
    if core.empty:
        raise AttuneInputError("no alpha-core peak to show" + (f" in clusters={list(clusters)}" if clusters else ""))
    cats = cl["cluster"].cat.categories if isinstance(cl["cluster"].dtype, pd.CategoricalDtype) else \
        pd.unique(cl["cluster"])
    blocks = [(lab, core.index[core["cluster"].astype(str) == str(lab)]) for lab in cats]
    blocks = [(lab, idx) for lab, idx in blocks if len(idx)]
    rows = [p for _, idx in blocks for p in idx]
    named = len(rows) <= max_named
    height = float(np.clip((0.17 if named else 0.05) * len(rows) + 1.6, 3.0, 7.0))
    fig, ax, created = single_axes(ax, figsize=(6.4, height))
    mesh = ax.pcolormesh(prof.loc[rows].to_numpy(dtype=float), cmap="RdBu_r", vmin=-2.5, vmax=2.5)
    ax.set_xlim(0, prof.shape[1])
    ax.set_ylim(len(rows), 0)
    ax.set_xticks(np.arange(prof.shape[1]) + 0.5)
    ax.set_xticklabels([str(c) for c in prof.columns], fontsize=FONT)
    ax.set_xlabel(label(prof.columns.name) if prof.columns.name else "pseudotime group")
    cb = fig.colorbar(mesh, ax=ax, shrink=0.8, pad=0.02, location="right")
    cb.set_label("standardised accessibility")
    start, centres, names = 0, [], []
    for i, (lab, idx) in enumerate(blocks):
        if i:
            ax.axhline(start, color="k", lw=1.2)
        centres.append(start + len(idx) / 2)
        names.append(f"{cluster_name(lab)} ({len(idx)})")
        start += len(idx)
    if named:
        ax.set_yticks(np.arange(len(rows)) + 0.5)
        ax.set_yticklabels(rows, fontsize=FONT)
        to_label = blended_transform_factory(ax.transAxes, ax.transData)
        for y, name in zip(centres, names):
            ax.text(1.02, y, name, transform=to_label, va="center", ha="left", fontsize=FONT)
        ax.set_ylabel("alpha-core peaks")
    else:
        ax.set_yticks(centres)
        ax.set_yticklabels(names, fontsize=FONT)
        ax.tick_params(axis="y", length=0)
        ax.set_ylabel(f"{len(rows)} alpha-core peaks")
    ax.set_title("alpha-core peaks: standardised pseudo-bulk accessibility", fontsize=FONT + 2)
    return finish(fig, created)


@renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
def peak_links(mdata, *, gene: str, peaks: pd.DataFrame, cluster_col: str = "cluster", rna_mod: str = "rna",
               atac_mod: str = "atac", score_col: str | None = "score", flank: int = 50_000,
               title: str | None = None, show_unassigned: bool = False, ax=None) -> Figure:
    """Link plot: arcs from the gene's TSS to its high-attention peaks on genomic coordinates (Fig. 4B).

    ``peaks`` is a DataFrame with a ``peak`` column (or peak names as index) and ``cluster_col``. Only the
    kept peaks are drawn: those with a cluster (unless ``show_unassigned``, which draws the others in grey).
    The legend names the clusters in order (1, 2, 3, ...), the TSS and the peaks; the axis is in kb or Mb;
    the title says how many of the given peaks are drawn. Arc height grows with ``score_col`` when given.

    Parameters
    ----------
    mdata
        MuData with gene (``rna.var``) and peak (``atac.var``) coordinates.
    gene
        Gene whose links are drawn.
    peaks
        Linked peaks (e.g. from :func:`attune_lib.tl.gene_peaks`): a ``peak`` column (or peak names as index)
        and ``cluster_col``.
    cluster_col
        Column of ``peaks`` colouring the arcs (peaks without a cluster are grey).
    rna_mod
        RNA modality name (formerly ``rna_key``).
    atac_mod
        ATAC modality name (formerly ``atac_key``).
    score_col
        Column of ``peaks`` setting the arc height (None: equal heights).
    flank
        Base pairs shown beyond the outermost peak or the TSS.
    title
        Axes title (None: 'high-attention peaks of <gene>'); a second line says how many peaks are drawn.
    show_unassigned
        Also draw the peaks without a cluster (grey).
    ax
        Axes to draw on (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    rna = get_modality(mdata, rna_mod, role="RNA")
    atac = get_modality(mdata, atac_mod, role="ATAC")
    for col in ("chrom", "tss"):
        if col not in rna.var:
            raise AttuneInputError(f"mdata[{rna_mod!r}].var[{col!r}] is missing (gene coordinates)")
    if gene not in rna.var_names:
        raise AttuneInputError(f"gene {gene!r} not in mdata[{rna_mod!r}].var_names")
    if not isinstance(peaks, pd.DataFrame) or peaks.empty:
        raise AttuneInputError("peaks must be a non-empty DataFrame of linked peaks")
    df = peaks.copy()
    if "peak" not in df:
        df = df.rename_axis("peak").reset_index()
    df["peak"] = df["peak"].astype(str)
    bad = ~df["peak"].isin(atac.var_names)
    if bad.any():
        raise AttuneInputError(f"peaks: {int(bad.sum())} peak(s) not in mdata[{atac_mod!r}].var_names")
    n_given = len(df)
    if cluster_col in df and not show_unassigned:
        df = df[df[cluster_col].notna() & (df[cluster_col].astype(str) != "")]
        if df.empty:
            raise AttuneInputError(f"peaks: no peak has a {cluster_col!r}; pass show_unassigned=True to draw them")
    var = atac.var.loc[df["peak"]]
    mid = (var["start"].to_numpy(dtype=float) + var["end"].to_numpy(dtype=float)) / 2
    tss = float(rna.var.loc[gene, "tss"])
    chrom = str(rna.var.loc[gene, "chrom"])
    lo, hi = min(mid.min(), tss) - flank, max(mid.max(), tss) + flank
    s = df[score_col].to_numpy(dtype=float) if score_col and score_col in df else np.ones(len(df))
    s = (s - s.min()) / (np.ptp(s) or 1.0)
    cats = sorted(pd.unique(df[cluster_col].dropna().astype(str)), key=natural_key) if cluster_col in df else []
    pal = dict(zip(cats, sns.color_palette("Set1", n_colors=max(len(cats), 1))))
    fig, ax, created = single_axes(ax, figsize=(9, 3.4))
    t = np.linspace(0, np.pi, 60)
    for i in range(len(df)):
        c = df[cluster_col].iloc[i] if cluster_col in df else np.nan
        color = pal.get(str(c), "0.7") if pd.notna(c) else "0.75"
        x0, x1 = sorted((tss, mid[i]))
        h = 0.3 + 0.7 * s[i]
        ax.plot(x0 + (x1 - x0) * (1 - np.cos(t)) / 2, h * np.sin(t), color=color, lw=1.4 if pd.notna(c) else 0.8)
    ax.scatter(mid, np.zeros(len(mid)), marker="|", s=120, color="k")
    ax.scatter([tss], [0], marker="^", s=80, color="k", zorder=5)
    if {"start", "end"} <= set(rna.var.columns):
        ax.hlines(-0.08, rna.var.loc[gene, "start"], rna.var.loc[gene, "end"], color="k", lw=5)
    ax.text(tss, -0.2, gene, ha="center", va="top", fontsize=FONT + 1, style="italic")
    for c, col in pal.items():
        ax.plot([], [], color=col, label=cluster_name(c))
    if cluster_col in df and df[cluster_col].isna().any():
        ax.plot([], [], color="0.75", label=f"no {label(cluster_col)}")
    ax.plot([], [], ls="", marker="^", color="k", label=f"{gene} TSS")
    ax.plot([], [], ls="", marker="|", color="k", markersize=10, label="peak")
    ax.legend(frameon=False, fontsize=FONT, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_xlim(lo, hi)
    ax.set_ylim(-0.35, 1.1)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    unit = genomic_axis(ax, lo, hi)
    ax.set_xlabel(f"{chrom} position ({unit})")
    head = title if title is not None else f"high-attention peaks of {gene}"
    drawn = f"{len(df)} of {n_given} linked peaks drawn" if len(df) < n_given else f"{len(df)} linked peaks"
    ax.set_title(f"{head}\n{drawn}", fontsize=FONT + 2)
    return finish(fig, created)


def transit_heatmap(data: pd.DataFrame, *, ax=None) -> Figure:
    """Shared transit pattern of each cluster's peaks and co-occurring genes (Fig. 4E), with a colour bar.

    Parameters
    ----------
    data
        Output of :func:`attune_lib.tl.transit_pattern`: standardised profiles (rows: peaks and genes per
        cluster, a three-level index ``cluster, kind, feature``; columns: pseudotime groups).
    ax
        Axes to draw on (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(data, pd.DataFrame) or not isinstance(data.index, pd.MultiIndex) or data.index.nlevels != 3:
        raise AttuneInputError("data must come from attune_lib.tl.transit_pattern (a 3-level row index)")
    fig, ax, created = single_axes(ax, figsize=(6.4, 0.2 * len(data) + 1.8))
    sns.heatmap(data.reset_index(drop=True), ax=ax, cmap="RdBu_r", center=0, vmin=-2.5, vmax=2.5,
                cbar_kws={"label": "standardised", "shrink": 0.5})
    ax.set_yticks(np.arange(len(data)) + 0.5)
    ax.set_yticklabels([f"[{c}] {k}: {f}" for c, k, f in data.index], fontsize=8, rotation=0)
    prev = None
    for i, (c, _, _) in enumerate(data.index):
        if prev is not None and c != prev:
            ax.axhline(i, color="k", lw=1.2)
        prev = c
    ax.set_xlabel(label(data.columns.name) if data.columns.name else "pseudotime group")
    ax.tick_params(axis="x", labelsize=FONT)
    ax.set_title("peaks and co-occurring genes along pseudotime", fontsize=FONT + 2)
    return finish(fig, created)
