"""Plots for chromatin potential, regulation shift and RNA-ATAC embedding distances (Fig. 3G-I, 4, 5B-C).

Every function returns the matplotlib Figure (save it with :func:`attune_lib.pl.savefig`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from .._utils import AttuneInputError, get_modality

__all__ = [
    "cluster_cores",
    "cooccurring_genes",
    "cross_modal_heatmap",
    "distance_by_group",
    "lagging_ranking",
    "motif_enrichment",
    "peak_links",
    "pseudobulk_composition",
    "regulon",
    "residual_embedding",
    "residual_trend",
    "soft_clusters",
    "transit_heatmap",
    "trend_heatmap",
]


def _rna(mdata, rna_key: str):
    return get_modality(mdata, rna_key, role="RNA") if hasattr(mdata, "mod") else mdata


def _gene_vector(adata, gene: str, layer: str | None) -> np.ndarray:
    if gene not in adata.var_names:
        raise AttuneInputError(f"gene {gene!r} not in var_names")
    if layer is not None and layer not in adata.layers:
        raise AttuneInputError(f"layer {layer!r} not found; available: {sorted(adata.layers)}")
    X = adata.X if layer is None else adata.layers[layer]
    x = X[:, adata.var_names.get_loc(gene)]
    x = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
    return np.asarray(x, dtype=float).ravel()


def _obs(mdata, key: str) -> pd.Series:
    from ..tl._obs import obs_column

    return obs_column(mdata, key)


# --------------------------------------------------------------------------------------------------
# Fig. 3G-I, S7
# --------------------------------------------------------------------------------------------------
def residual_embedding(
    mdata,
    *,
    gene: str,
    basis: str,
    predicted_layer: str,
    residual_layer: str = "residual",
    measured_layer: str | None = None,
    rna_key: str = "rna",
    point_size: float | None = None,
) -> Figure:
    """Predicted, measured and residual expression of ``gene`` on a 2-D embedding (Fig. 3G).

    ``basis`` is an ``obsm`` key of the MuData or of the RNA modality. Measured values are log-normalised
    on the fly when the layer holds counts. The residual uses a diverging colour map centred at 0.

    Parameters
    ----------
    mdata
        MuData with the RNA modality and the embedding.
    gene
        Gene to show.
    basis
        ``obsm`` key (of the MuData or the RNA modality) with 2-D coordinates.
    predicted_layer
        RNA layer with the expression predicted from ATAC.
    residual_layer
        RNA layer with the residuals (measured minus predicted).
    measured_layer
        RNA layer with the measured expression (None: ``.X``); counts are log-normalised on the fly.
    rna_key
        RNA modality name.
    point_size
        Marker size (None: chosen from the number of cells).
    """
    from .._access import log_expression as _log_expression

    rna = _rna(mdata, rna_key)
    holder = mdata if basis in getattr(mdata, "obsm", {}) else rna
    if basis not in holder.obsm:
        raise AttuneInputError(f"basis={basis!r} not found in obsm")
    xy = np.asarray(holder.obsm[basis])[:, :2]
    j = rna.var_names.get_loc(gene) if gene in rna.var_names else None
    if j is None:
        raise AttuneInputError(f"gene {gene!r} not in mdata[{rna_key!r}].var_names")
    pred = _gene_vector(rna, gene, predicted_layer)
    meas = _log_expression(rna[:, [gene]], measured_layer, f"mdata[{rna_key!r}]").ravel()
    res = _gene_vector(rna, gene, residual_layer)
    size = point_size or max(120000 / max(rna.n_obs, 1), 2) ** 0.5
    fig, axes = plt.subplots(1, 3, figsize=(12.5, 3.8))
    lim = np.nanmax(np.abs(res)) or 1.0
    for ax, v, title, cmap, vr in ((axes[0], pred, f"{gene}: predicted (ATAC)", "viridis", None),
                                   (axes[1], meas, f"{gene}: measured", "viridis", None),
                                   (axes[2], res, f"{gene}: residual (pred - meas)", "RdBu_r", (-lim, lim))):
        order = np.argsort(np.abs(v - np.nanmedian(v)))
        kw = {"vmin": vr[0], "vmax": vr[1]} if vr else {}
        sca = ax.scatter(xy[order, 0], xy[order, 1], c=v[order], s=size, cmap=cmap, linewidths=0, rasterized=True, **kw)
        fig.colorbar(sca, ax=ax, shrink=0.7)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def residual_trend(mdata, *, genes: str | Sequence[str], pseudotime_key: str = "pseudotime", layer: str = "residual",
                   trends_key: str = "residual_trends", groupby: str | None = "cell_type", rna_key: str = "rna",
                   transition: float | None = None, ncols: int = 3) -> Figure:
    """Residuals of genes along pseudotime with their GAM trend and maximum (Fig. 3H).

    Needs :func:`attune_lib.tl.residual_trends` (curves in ``mdata[rna_key].uns[trends_key]``).

    Parameters
    ----------
    mdata
        MuData with the residual trends of :func:`attune_lib.tl.residual_trends`.
    genes
        Gene or genes, one panel each.
    pseudotime_key
        obs column with the pseudotime.
    layer
        RNA layer with the residuals.
    trends_key
        ``mdata[rna_key].uns`` key holding the fitted trends.
    groupby
        obs column colouring the cells (None: one colour).
    rna_key
        RNA modality name.
    transition
        Pseudotime of the cell-type transition, drawn as a vertical line (None: none).
    ncols
        Panels per row.
    """
    rna = _rna(mdata, rna_key)
    if trends_key not in rna.uns:
        raise AttuneInputError(f"mdata[{rna_key!r}].uns[{trends_key!r}] missing; run attune_lib.tl.residual_trends")
    curves = rna.uns[trends_key]["curves"]
    genes = [genes] if isinstance(genes, str) else list(dict.fromkeys(genes))
    pt = pd.to_numeric(_obs(mdata, pseudotime_key)).reindex(rna.obs_names).to_numpy(dtype=float)
    groups = _obs(mdata, groupby).reindex(rna.obs_names) if groupby else None
    ncols = min(ncols, len(genes))
    nrows = int(np.ceil(len(genes) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows), squeeze=False)
    for k, gene in enumerate(genes):
        ax = axes.flat[k]
        r = _gene_vector(rna, gene, layer)
        if groups is not None:
            cats = pd.Categorical(groups)
            pal = sns.color_palette("tab10", n_colors=max(len(cats.categories), 1))
            for ci, c in enumerate(cats.categories):
                sel = np.asarray(cats == c)
                ax.scatter(pt[sel], r[sel], s=4, color=pal[ci % 10], alpha=0.5, linewidths=0, label=str(c),
                           rasterized=True)
        else:
            ax.scatter(pt, r, s=4, color="0.6", alpha=0.5, linewidths=0, rasterized=True)
        if gene in curves.columns:
            f = curves[gene]
            ax.plot(f.index, f.to_numpy(), color="k", lw=2)
            i = int(np.argmax(f.to_numpy()))
            ax.scatter([f.index[i]], [f.iloc[i]], s=60, color="red", zorder=5)
            ax.plot([], [], "o", color="red", ms=4, label="max residual")
            lim = np.nanquantile(np.abs(r), 0.99)
            ax.set_ylim(-1.3 * max(lim, abs(f).max()), 1.3 * max(lim, abs(f).max()))
        ax.axhline(0, color="0.3", lw=0.6, ls=":")
        if transition is not None:
            ax.axvline(transition, color="0.3", lw=1, ls="--", label="transition")
        ax.set_title(gene, fontsize=10)
        ax.set_xlabel(pseudotime_key)
        ax.set_ylabel("residual")
    axes.flat[0].legend(fontsize=6, markerscale=2, frameon=False, loc="upper left")
    for ax in axes.flat[len(genes):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def trend_heatmap(mdata, *, trends_key: str = "residual_trends", genes: Sequence[str] | None = None, n_genes: int = 40,
                  score: str = "snr", rna_key: str = "rna", highlight: Sequence[str] = ()) -> Figure:
    """Heatmap of residual GAM trends (genes x pseudotime), genes ordered by the time of their maximum (S7a-b).

    Without ``genes`` the ``n_genes`` genes with the highest ``score`` are shown. ``highlight`` names are
    marked with ``*`` (e.g. the simulator's planted lagging genes).

    Parameters
    ----------
    mdata
        MuData with the residual trends of :func:`attune_lib.tl.residual_trends`.
    trends_key
        ``mdata[rna_key].uns`` key holding the fitted trends.
    genes
        Genes to show (None: the ``n_genes`` best by ``score``).
    n_genes
        Number of genes shown when ``genes`` is None.
    score
        Column of the trend table ranking the genes.
    rna_key
        RNA modality name.
    highlight
        Genes marked with ``*``.
    """
    rna = _rna(mdata, rna_key)
    if trends_key not in rna.uns:
        raise AttuneInputError(f"mdata[{rna_key!r}].uns[{trends_key!r}] missing; run attune_lib.tl.residual_trends")
    table, curves = rna.uns[trends_key]["table"], rna.uns[trends_key]["curves"]
    if genes is None:
        genes = table.sort_values(score, ascending=False).index[:n_genes]
    genes = [g for g in genes if g in curves.columns]
    C = curves[genes].T
    C = C.loc[table.loc[genes, "t_max"].sort_values(kind="stable").index]
    hl = set(highlight)
    labels = [f"{g} *" if g in hl else g for g in C.index]
    fig, ax = plt.subplots(figsize=(6.5, max(3.0, 0.17 * len(C) + 1.2)))
    lim = np.abs(C.to_numpy()).max() or 1.0
    im = ax.imshow(C.to_numpy(), aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim,
                   extent=(C.columns.min(), C.columns.max(), len(C) - 0.5, -0.5))
    ax.set_yticks(np.arange(len(C)))
    ax.set_yticklabels(labels, fontsize=6)
    patt = table.loc[C.index, "pattern"].astype(str).to_numpy()
    ax2 = ax.twinx()
    ax2.set_ylim(ax.get_ylim())
    ax2.set_yticks(np.arange(len(C)))
    ax2.set_yticklabels(patt, fontsize=5)
    ax.set_xlabel(curves.index.name or "pseudotime")
    fig.colorbar(im, ax=ax2, shrink=0.5, pad=0.15, label="residual trend")
    ax.set_title("GAM trends of residuals (genes ordered by peak time)", fontsize=9)
    fig.tight_layout()
    return fig


def pseudobulk_composition(composition: pd.DataFrame, *, palette: str = "tab10") -> Figure:
    """Stacked bars of the cell-type composition of each pseudo-bulk group (Fig. 3I).

    Parameters
    ----------
    composition
        Groups x cell types fractions, from :func:`attune_lib.tl.pseudobulk_composition`.
    palette
        Matplotlib colour map of the cell types.
    """
    if not isinstance(composition, pd.DataFrame) or composition.empty:
        raise AttuneInputError("composition must be a non-empty DataFrame (groups x cell types)")
    fig, ax = plt.subplots(figsize=(0.45 * len(composition) + 2.8, 3.4))
    bottom = np.zeros(len(composition))
    pal = sns.color_palette(palette, n_colors=composition.shape[1])
    for j, col in enumerate(composition.columns):
        v = composition[col].to_numpy(dtype=float)
        ax.bar(np.arange(len(composition)), v, bottom=bottom, color=pal[j], label=str(col), width=0.85)
        bottom += v
    ax.set_xticks(np.arange(len(composition)))
    ax.set_xticklabels([str(i) for i in composition.index])
    ax.set_ylabel("fraction of cells")
    ax.set_xlabel(composition.index.name or "group")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7)
    ax.set_title("cell-type composition of pseudo-bulk groups", fontsize=9)
    fig.tight_layout()
    return fig


def lagging_ranking(
    scores: pd.DataFrame, *, truth: Sequence[str] = (), n: int = 30, auroc: float | None = None
) -> Figure:
    """Top genes by lagging score (bars), planted/known lagging genes highlighted.

    Parameters
    ----------
    scores
        Table of :func:`attune_lib.tl.lagging_gene_scores` (a ``score`` column, genes as index).
    truth
        Known (or planted) lagging genes, drawn in red.
    n
        Number of top genes shown.
    auroc
        AUROC of the scores against ``truth``, shown in the title when given.
    """
    if "score" not in scores:
        raise AttuneInputError("scores needs a 'score' column (attune_lib.tl.lagging_gene_scores)")
    top = scores.iloc[:n]
    truth = set(truth)
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    colors = ["tab:red" if g in truth else "0.6" for g in top.index]
    ax.bar(np.arange(len(top)), top["score"].to_numpy(), color=colors)
    ax.set_xticks(np.arange(len(top)))
    ax.set_xticklabels(top.index, rotation=90, fontsize=6)
    ax.set_ylabel("lagging score")
    title = "genes ranked by residual-trend strength"
    if truth:
        title += " (red: planted lagging genes)"
    if auroc is not None:
        title += f"; AUROC {auroc:.2f}"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# Fig. 4
# --------------------------------------------------------------------------------------------------
def soft_clusters(result: Mapping, *, ncols: int = 4, cmap: str = "viridis") -> Figure:
    """Fuzzy clusters of peak profiles (Mfuzz style, Fig. 4A) and the centroid-distance curve.

    One panel per cluster: member profiles coloured by membership (alpha cores drawn on top), the
    centroid in black; a last panel shows ``Dmin`` against ``c`` with the chosen ``c``.

    Parameters
    ----------
    result
        Output of :func:`attune_lib.tl.peak_soft_clusters` (``profiles``, ``clusters``, ``dmin``, ``c``).
    ncols
        Panels per row.
    cmap
        Colour map of the membership.
    """
    for k in ("clusters", "membership", "centers", "profiles"):
        if k not in result:
            raise AttuneInputError(f"result has no {k!r}; pass the output of attune_lib.tl.fuzzy_cmeans")
    prof, cl, cen = result["profiles"], result["clusters"], result["centers"]
    labels = list(cen.index)
    n_panels = len(labels) + (1 if len(result.get("dmin", [])) else 0)
    ncols = min(ncols, n_panels)
    nrows = int(np.ceil(n_panels / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.9 * nrows), squeeze=False)
    x = np.arange(prof.shape[1])
    cm = plt.get_cmap(cmap)
    for k, lab in enumerate(labels):
        ax = axes.flat[k]
        mem = result["membership"][lab]
        members = cl.index[cl["cluster"].astype(str) == str(lab)]
        for p in mem.loc[members].sort_values().index:
            ax.plot(
                x, prof.loc[p].to_numpy(), color=cm(float(mem[p])), lw=1.6 if mem[p] > result.get("alpha", 0.5) else 0.8
            )
        ax.plot(x, cen.loc[lab].to_numpy(), color="k", lw=2.2)
        n_core = int((cl.loc[members, "core"]).sum())
        ax.set_title(f"cluster {lab}: {len(members)} peaks, {n_core} core", fontsize=8)
        ax.set_xticks(x)
        ax.set_xticklabels([str(c) for c in prof.columns], fontsize=6, rotation=90)
        ax.set_ylabel("standardised accessibility", fontsize=7)
    if len(result.get("dmin", [])):
        ax = axes.flat[len(labels)]
        d = result["dmin"]
        ax.plot(d["c"], d["dmin"], "o-", color="0.3", ms=3)
        ax.axvline(result["n_clusters"], color="red", ls="--", lw=1)
        ax.set_xlabel("cluster number c")
        ax.set_ylabel("min centroid distance")
        ax.set_title(f"centroid distance: c = {result['n_clusters']}", fontsize=8)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    sm = plt.cm.ScalarMappable(cmap=cm, norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=axes.ravel().tolist(), shrink=0.6, label="membership")
    return fig


def cluster_cores(result: Mapping, *, clusters: Sequence[str] | None = None) -> Figure:
    """Heatmap of the alpha-core peaks' standardised accessibility per cluster (Fig. 4C).

    Parameters
    ----------
    result
        Output of :func:`attune_lib.tl.peak_soft_clusters` (``profiles`` and ``clusters`` with a ``core``
        column).
    clusters
        Clusters to show (None: all).
    """
    prof, cl = result["profiles"], result["clusters"]
    core = cl[cl["core"]]
    if clusters is not None:
        core = core[core["cluster"].astype(str).isin([str(c) for c in clusters])]
    if core.empty:
        raise AttuneInputError("no alpha-core peak to show")
    blocks = [(lab, core.index[core["cluster"].astype(str) == str(lab)]) for lab in cl["cluster"].cat.categories]
    blocks = [(lab, idx) for lab, idx in blocks if len(idx)]
    fig, axes = plt.subplots(len(blocks), 1, figsize=(5.5, 0.28 * len(core) + 1.0 * len(blocks)), squeeze=False,
                             gridspec_kw={"height_ratios": [max(len(i), 1) for _, i in blocks]})
    for ax, (lab, idx) in zip(axes[:, 0], blocks):
        sns.heatmap(prof.loc[idx], ax=ax, cmap="RdBu_r", center=0, vmin=-2.5, vmax=2.5, cbar=False,
                    yticklabels=True, xticklabels=ax is axes[-1, 0])
        ax.set_ylabel(f"cluster {lab}", fontsize=8)
        ax.tick_params(axis="y", labelsize=6)
    axes[0, 0].set_title("alpha-core peaks: standardised pseudo-bulk accessibility", fontsize=9)
    fig.tight_layout()
    return fig


def peak_links(mdata, *, gene: str, peaks: pd.DataFrame, cluster_col: str = "cluster", rna_key: str = "rna",
               atac_key: str = "atac", score_col: str | None = "score", flank: int = 50_000,
               title: str | None = None) -> Figure:
    """Link plot: arcs from the gene's TSS to its high-attention peaks on genomic coordinates (Fig. 4B).

    ``peaks`` is a DataFrame with a ``peak`` column (or peak names as index) and ``cluster_col`` (peaks
    without a cluster are grey); arc height grows with ``score_col`` when given. ``title`` defaults to
    "high-attention peaks of <gene>".

    Parameters
    ----------
    mdata
        MuData with gene (``rna.var``) and peak (``atac.var``) coordinates.
    gene
        Gene whose links are drawn.
    peaks
        Linked peaks: a ``peak`` column (or peak names as index) and ``cluster_col``.
    cluster_col
        Column of ``peaks`` colouring the arcs (peaks without a cluster are grey).
    rna_key
        RNA modality name.
    atac_key
        ATAC modality name.
    score_col
        Column of ``peaks`` setting the arc height (None: equal heights).
    flank
        Base pairs shown beyond the outermost peak or the TSS.
    title
        Figure title (None: 'high-attention peaks of <gene>').
    """
    rna = get_modality(mdata, rna_key, role="RNA")
    atac = get_modality(mdata, atac_key, role="ATAC")
    for col in ("chrom", "tss"):
        if col not in rna.var:
            raise AttuneInputError(f"mdata[{rna_key!r}].var[{col!r}] is missing (gene coordinates)")
    if gene not in rna.var_names:
        raise AttuneInputError(f"gene {gene!r} not in mdata[{rna_key!r}].var_names")
    df = peaks.copy()
    if "peak" not in df:
        df = df.rename_axis("peak").reset_index()
    df["peak"] = df["peak"].astype(str)
    bad = ~df["peak"].isin(atac.var_names)
    if bad.any():
        raise AttuneInputError(f"{int(bad.sum())} peak(s) not in mdata[{atac_key!r}].var_names")
    var = atac.var.loc[df["peak"]]
    mid = ((var["start"].to_numpy(dtype=float) + var["end"].to_numpy(dtype=float)) / 2)
    tss = float(rna.var.loc[gene, "tss"])
    chrom = str(rna.var.loc[gene, "chrom"])
    lo, hi = min(mid.min(), tss) - flank, max(mid.max(), tss) + flank
    s = df[score_col].to_numpy(dtype=float) if score_col and score_col in df else np.ones(len(df))
    s = (s - s.min()) / (np.ptp(s) or 1.0)
    cats = [c for c in pd.unique(df[cluster_col].dropna().astype(str))] if cluster_col in df else []
    pal = dict(zip(cats, sns.color_palette("Set1", n_colors=max(len(cats), 1))))
    fig, ax = plt.subplots(figsize=(9, 3.2))
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
    fig.tight_layout()
    return fig


def cooccurring_genes(table: pd.DataFrame, *, n: int = 5, highlight: Sequence[str] = ()) -> Figure:
    """Top co-occurring genes per peak cluster: -log10 p of the background-matched test (Fig. 4D).

    Parameters
    ----------
    table
        Output of :func:`attune_lib.tl.top_cooccurring_genes` (``cluster``, ``gene``, ``pval``, ``mean_r``).
    n
        Genes shown per cluster.
    highlight
        Genes drawn in red.
    """
    from ..tl._motifs import top_cooccurring_genes

    top = top_cooccurring_genes(table, n=n)
    clusters = list(pd.unique(top["cluster"]))
    if not clusters:
        raise AttuneInputError("no co-occurring gene to show")
    fig, axes = plt.subplots(1, len(clusters), figsize=(3.3 * len(clusters), 0.32 * n + 1.6), squeeze=False)
    hl = set(highlight)
    for ax, c in zip(axes[0], clusters):
        sub = top[top["cluster"] == c].iloc[::-1]
        colors = ["tab:red" if g in hl else "tab:blue" for g in sub["gene"]]
        ax.barh(sub["gene"], -np.log10(sub["pval"].to_numpy(dtype=float)), color=colors)
        for y, (r, p) in enumerate(zip(sub["mean_r"], sub["pval"])):
            ax.text(0.02, y, f"r={r:.2f}, p={p:.1e}", va="center", fontsize=6, color="w",
                    transform=ax.get_yaxis_transform())
        ax.set_xlabel("-log10 p (vs background peaks)")
        ax.set_title(f"cluster {c}", fontsize=9)
    fig.tight_layout()
    return fig


def transit_heatmap(data: pd.DataFrame) -> Figure:
    """Shared transit pattern of each cluster's peaks and co-occurring genes (Fig. 4E).

    Parameters
    ----------
    data
        Output of :func:`attune_lib.tl.transit_pattern`: standardised profiles (rows: peaks and genes per
        cluster, columns: pseudotime groups).
    """
    if not isinstance(data.index, pd.MultiIndex) or data.index.nlevels != 3:
        raise AttuneInputError("data must come from attune_lib.tl.transit_pattern")
    fig, ax = plt.subplots(figsize=(6.2, 0.2 * len(data) + 1.4))
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
    fig.tight_layout()
    return fig


def motif_enrichment(table: pd.DataFrame, *, n: int = 10, highlight: Sequence[str] = (), title: str = "") -> Figure:
    """Top enriched motifs (-log10 p, Fisher) of a peak group.

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
        Figure title.
    """
    top = table.iloc[:n].iloc[::-1]
    hl = set(highlight)
    fig, ax = plt.subplots(figsize=(5.2, 0.3 * len(top) + 1.2))
    labels = [f"{i} {nm}" for i, nm in zip(top["motif_id"], top["motif_name"])]
    colors = ["tab:red" if i in hl else "tab:blue" for i in top["motif_id"]]
    ax.barh(labels, -np.log10(top["pval"].to_numpy(dtype=float)), color=colors)
    for y, (k, nn, fb) in enumerate(zip(top["k_fg"], top["n_fg"], top["frac_bg"])):
        ax.text(0.01, y, f"{k}/{nn} vs {100 * fb:.0f}%", va="center", fontsize=6, color="w",
                transform=ax.get_yaxis_transform())
    ax.set_xlabel("-log10 p (Fisher, vs background)")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(title or "motif enrichment", fontsize=9)
    fig.tight_layout()
    return fig


def regulon(table: pd.DataFrame, *, tf: str, n: int = 20, truth: Sequence[str] = ()) -> Figure:
    """Targets of a motif-supported co-expression regulon: correlation with the TF (bars).

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
    """
    top = table.iloc[:n].iloc[::-1]
    if top.empty:
        raise AttuneInputError(f"the regulon of {tf} has no target")
    hl = set(truth)
    fig, ax = plt.subplots(figsize=(5.0, 0.25 * len(top) + 1.3))
    colors = [
        "tab:red" if g in hl else ("tab:green" if r > 0 else "tab:purple") for g, r in zip(top["target"], top["r"])
    ]
    ax.barh(top["target"], top["r"], color=colors)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel(f"Spearman r with {tf} (pseudo-bulk)")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(f"{tf} regulon (motif in linked peaks)" + ("; red: true targets" if hl else ""), fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# Fig. 5
# --------------------------------------------------------------------------------------------------
def cross_modal_heatmap(similarity: pd.DataFrame, *, palette: str = "tab10", vmin: float | None = None) -> Figure:
    """Cell x cell RNA-vs-ATAC cosine similarity, cells in group / pseudotime order (Fig. 5B).

    Parameters
    ----------
    similarity
        Cell x cell similarity of :func:`attune_lib.tl.cross_modal_similarity` (group labels in
        ``attrs['groups']``).
    palette
        Colour map of the group bar.
    vmin
        Lower end of the colour scale (None: the data minimum).
    """
    S = similarity.to_numpy(dtype=float)
    groups = similarity.attrs.get("groups")
    fig = plt.figure(figsize=(6.4, 5.6))
    ax = fig.add_axes((0.16, 0.1, 0.66, 0.74))
    im = ax.imshow(S, cmap="magma", aspect="auto", interpolation="nearest", vmin=vmin)
    ax.set_xlabel("cells (ATAC embedding)")
    fig.text(0.09, 0.47, "cells (RNA embedding)", rotation=90, va="center", ha="center")
    ax.set_xticks([])
    ax.set_yticks([])
    cax = fig.add_axes((0.85, 0.1, 0.03, 0.74))
    fig.colorbar(im, cax=cax, label="cosine similarity")
    if groups is not None:
        cats = list(dict.fromkeys(groups))
        pal = dict(zip(cats, sns.color_palette(palette, n_colors=len(cats))))
        colors = np.array([pal[g] for g in groups])[None, :, :]
        top = fig.add_axes((0.16, 0.855, 0.66, 0.03))
        top.imshow(colors, aspect="auto")
        top.set_axis_off()
        left = fig.add_axes((0.125, 0.1, 0.02, 0.74))
        left.imshow(colors.transpose(1, 0, 2), aspect="auto")
        left.set_axis_off()
        for g, c in pal.items():
            top.plot([], [], color=c, lw=6, label=g)
        top.legend(ncol=min(len(cats), 4), fontsize=6, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return fig


def distance_by_group(mdata, *, distance_key: str = "rna_atac_cosine_distance", groupby: str = "cell_type",
                      threshold: float | None = 0.1, order: Sequence[str] | None = None) -> Figure:
    """RNA-ATAC cosine distance per group (Supp. Fig. S8c-d), with the high-distance threshold.

    Parameters
    ----------
    mdata
        MuData with the distance in ``obs``.
    distance_key
        obs column with the RNA-ATAC cosine distance (:func:`attune_lib.tl.modality_cosine`).
    groupby
        obs column with the groups.
    threshold
        High-distance threshold drawn as a line (None: none).
    order
        Group order (None: the category order).
    """
    d = pd.to_numeric(_obs(mdata, distance_key))
    g = _obs(mdata, groupby).astype(str)
    df = pd.DataFrame({"distance": d.to_numpy(), "group": g.to_numpy()}).dropna()
    if order is None:
        order = list(df.groupby("group")["distance"].median().sort_values().index) if not isinstance(
            _obs(mdata, groupby).dtype, pd.CategoricalDtype) else [str(c) for c in _obs(mdata, groupby).cat.categories
                                                                   if str(c) in set(df["group"])]
    fig, ax = plt.subplots(figsize=(0.7 * len(order) + 2.5, 3.4))
    sns.violinplot(data=df, x="group", y="distance", order=order, ax=ax, cut=0, density_norm="width", linewidth=0.6,
                   color="0.85")
    sns.stripplot(data=df, x="group", y="distance", order=order, ax=ax, size=1.5, color="tab:blue", alpha=0.4)
    if threshold is not None:
        ax.axhline(threshold, color="red", ls="--", lw=1)
        frac = df.groupby("group")["distance"].apply(lambda v: float((v > threshold).mean()))
        for i, grp in enumerate(order):
            ax.text(i, ax.get_ylim()[1], f"{100 * frac.get(grp, 0):.0f}%", ha="center", va="bottom", fontsize=6)
    ax.tick_params(axis="x", rotation=45)
    ax.set_xlabel("")
    ax.set_ylabel("RNA-ATAC cosine distance")
    fig.tight_layout()
    return fig
