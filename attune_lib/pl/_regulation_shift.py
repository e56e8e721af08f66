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
from ._style import finish, panel_axes, single_axes

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
    fig, axes, created = panel_axes(ax, n_panels, what=what, ncols=ncols, figsize=(3.4 * ncols, 2.9 * nrows))
    x = np.arange(prof.shape[1])
    cm = plt.get_cmap(cmap)
    alpha = result.get("alpha", 0.5)
    for a, lab in zip(axes, labels):
        mem = result["membership"][lab]
        members = cl.index[cl["cluster"].astype(str) == str(lab)]
        for p in mem.loc[members].sort_values().index:
            a.plot(x, prof.loc[p].to_numpy(), color=cm(float(mem[p])), lw=1.6 if mem[p] > alpha else 0.8)
        a.plot(x, cen.loc[lab].to_numpy(), color="k", lw=2.2)
        n_core = int((cl.loc[members, "core"]).sum()) if "core" in cl else 0
        a.set_title(f"cluster {lab}: {len(members)} peaks, {n_core} core", fontsize=8)
        a.set_xticks(x)
        a.set_xticklabels([str(c) for c in prof.columns], fontsize=6, rotation=90)
        a.set_ylabel("standardised accessibility", fontsize=7)
    if has_dmin:
        a = axes[len(labels)]
        d = result["dmin"]
        a.plot(d["c"], d["dmin"], "o-", color="0.3", ms=3)
        a.axvline(result["n_clusters"], color="red", ls="--", lw=1)
        a.set_xlabel("cluster number c")
        a.set_ylabel("min centroid distance")
        a.set_title(f"centroid distance: c = {result['n_clusters']}", fontsize=8)
    sm = plt.cm.ScalarMappable(cmap=cm, norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=axes[: len(labels)], shrink=0.6, label="membership")
    return fig


def cluster_cores(result: Mapping, *, clusters: Sequence[str] | None = None, ax=None) -> Figure:
    """Heatmap of the alpha-core peaks' standardised accessibility, peaks grouped by cluster (Fig. 4C).

    One heatmap (peaks x pseudotime groups) with a colour bar; clusters are separated by lines and named
    on the right.

    Parameters
    ----------
    result
        Output of :func:`attune_lib.tl.peak_soft_clusters` (``profiles`` and ``clusters`` with a ``core``
        column).
    clusters
        Clusters to show (None: all).
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
    fig, ax, created = single_axes(ax, figsize=(5.8, 0.28 * len(rows) + 1.4))
    sns.heatmap(prof.loc[rows], ax=ax, cmap="RdBu_r", center=0, vmin=-2.5, vmax=2.5, yticklabels=True,
                cbar_kws={"label": "standardised accessibility", "shrink": 0.6})
    ax.tick_params(axis="y", labelsize=6)
    to_label = blended_transform_factory(ax.transAxes, ax.transData)
    start = 0
    for i, (lab, idx) in enumerate(blocks):
        if i:
            ax.axhline(start, color="k", lw=1.2)
        ax.text(1.01, start + len(idx) / 2, f"cluster {lab}", transform=to_label, va="center", ha="left", fontsize=8)
        start += len(idx)
    ax.set_ylabel("alpha-core peaks")
    ax.set_title("alpha-core peaks: standardised pseudo-bulk accessibility", fontsize=9)
    return finish(fig, created)


@renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
def peak_links(mdata, *, gene: str, peaks: pd.DataFrame, cluster_col: str = "cluster", rna_mod: str = "rna",
               atac_mod: str = "atac", score_col: str | None = "score", flank: int = 50_000,
               title: str | None = None, ax=None) -> Figure:
    """Link plot: arcs from the gene's TSS to its high-attention peaks on genomic coordinates (Fig. 4B).

    ``peaks`` is a DataFrame with a ``peak`` column (or peak names as index) and ``cluster_col`` (peaks
    without a cluster are grey; the legend names the clusters); arc height grows with ``score_col`` when
    given.

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
        Axes title (None: 'high-attention peaks of <gene>').
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
    var = atac.var.loc[df["peak"]]
    mid = (var["start"].to_numpy(dtype=float) + var["end"].to_numpy(dtype=float)) / 2
    tss = float(rna.var.loc[gene, "tss"])
    chrom = str(rna.var.loc[gene, "chrom"])
    lo, hi = min(mid.min(), tss) - flank, max(mid.max(), tss) + flank
    s = df[score_col].to_numpy(dtype=float) if score_col and score_col in df else np.ones(len(df))
    s = (s - s.min()) / (np.ptp(s) or 1.0)
    cats = list(pd.unique(df[cluster_col].dropna().astype(str))) if cluster_col in df else []
    pal = dict(zip(cats, sns.color_palette("Set1", n_colors=max(len(cats), 1))))
    fig, ax, created = single_axes(ax, figsize=(9, 3.2))
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
    ax.text(tss, -0.2, gene, ha="center", va="top", fontsize=9, style="italic")
    for c, col in pal.items():
        ax.plot([], [], color=col, label=f"cluster {c}")
    if pal:
        ax.legend(frameon=False, fontsize=7, loc="upper right")
    ax.set_xlim(lo, hi)
    ax.set_ylim(-0.35, 1.1)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel(f"{chrom} position (bp)")
    ax.set_title(title if title is not None else f"high-attention peaks of {gene}", fontsize=9)
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
    fig, ax, created = single_axes(ax, figsize=(6.2, 0.2 * len(data) + 1.4))
    sns.heatmap(data.reset_index(drop=True), ax=ax, cmap="RdBu_r", center=0, vmin=-2.5, vmax=2.5,
                cbar_kws={"label": "standardised", "shrink": 0.5})
    ax.set_yticks(np.arange(len(data)) + 0.5)
    ax.set_yticklabels([f"[{c}] {k}: {f}" for c, k, f in data.index], fontsize=6, rotation=0)
    prev = None
    for i, (c, _, _) in enumerate(data.index):
        if prev is not None and c != prev:
            ax.axhline(i, color="k", lw=1.2)
        prev = c
    ax.set_title("peaks and co-occurring genes along pseudotime", fontsize=9)
    return finish(fig, created)
