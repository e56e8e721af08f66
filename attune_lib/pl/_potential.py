"""Plots of :mod:`attune_lib.tl._potential`: chromatin potential along pseudotime (paper Fig. 3G-I, Supp. S7).

Every function returns the matplotlib Figure (save it with :func:`attune_lib.pl.savefig`); the panels go
on the caller's ``ax`` when given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from .._utils import AttuneInputError, get_modality, renamed_kwargs
from ._style import FONT, HIGHLIGHT, cell_type_palette, finish, label, panel_axes, single_axes
from ._style import point_size as default_point_size

__all__ = ["lagging_ranking", "pseudobulk_composition", "residual_embedding", "residual_trend", "trend_heatmap"]


def _rna(mdata, rna_mod: str):
    return get_modality(mdata, rna_mod, role="RNA") if hasattr(mdata, "mod") else mdata


def _gene_vector(adata, gene: str, layer: str | None) -> np.ndarray:
    if gene not in adata.var_names:
        raise AttuneInputError(f"gene {gene!r} not in var_names")
    if layer is not None and layer not in adata.layers:
        raise AttuneInputError(f"layer {layer!r} not found; available: {sorted(adata.layers)}")
    X = adata.X if layer is None else adata.layers[layer]
    x = X[:, adata.var_names.get_loc(gene)]
    x = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
    return np.asarray(x, dtype=float).ravel()


def _obs(mdata, key: str, what: str) -> pd.Series:
    from ..tl._obs import obs_column

    return obs_column(mdata, key, what=what)


def _trends(rna, trends_key: str, rna_mod: str) -> dict:
    if trends_key not in rna.uns:
        raise AttuneInputError(f"trends_key={trends_key!r}: mdata[{rna_mod!r}].uns has no such entry; run "
                               "attune_lib.tl.residual_trends first")
    trends = rna.uns[trends_key]
    missing = [k for k in ("table", "curves") if k not in trends]
    if missing:
        raise AttuneInputError(f"mdata[{rna_mod!r}].uns[{trends_key!r}] lacks {missing} "
                               "(attune_lib.tl.residual_trends)")
    return trends


@renamed_kwargs(rna_key="rna_mod")
def residual_embedding(
    mdata,
    *,
    gene: str,
    basis: str,
    predicted_layer: str,
    residual_layer: str = "residual",
    measured_layer: str | None = None,
    rna_mod: str = "rna",
    point_size: float | None = None,
    ax=None,
) -> Figure:
    """Predicted, measured and residual expression of ``gene`` on a 2-D embedding (Fig. 3G).

    ``basis`` is an ``obsm`` key of the MuData or of the RNA modality. Measured values are log-normalised
    on the fly when the layer holds counts. Each panel has a colour bar; the residual uses a diverging
    colour map centred at 0.

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
    rna_mod
        RNA modality name (formerly ``rna_key``).
    point_size
        Marker size (None: chosen from the number of cells).
    ax
        Three Axes to draw on: predicted, measured, residual (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .._access import log_expression

    rna = _rna(mdata, rna_mod)
    holder = mdata if basis in getattr(mdata, "obsm", {}) else rna
    if basis not in holder.obsm:
        raise AttuneInputError(f"basis={basis!r} not found in obsm")
    if gene not in rna.var_names:
        raise AttuneInputError(f"gene {gene!r} not in mdata[{rna_mod!r}].var_names")
    xy = np.asarray(holder.obsm[basis])[:, :2]
    pred = _gene_vector(rna, gene, predicted_layer)
    res = _gene_vector(rna, gene, residual_layer)
    meas = log_expression(rna[:, [gene]], measured_layer, f"mdata[{rna_mod!r}]").ravel()
    size = point_size or default_point_size(rna.n_obs)
    fig, axes, created = panel_axes(ax, 3, what="predicted, measured, residual", figsize=(12.5, 3.8))
    lim = np.nanmax(np.abs(res)) or 1.0
    for a, v, title, cmap, vr in ((axes[0], pred, f"{gene}: predicted (ATAC)", "viridis", None),
                                  (axes[1], meas, f"{gene}: measured", "viridis", None),
                                  (axes[2], res, f"{gene}: residual (pred - meas)", "RdBu_r", (-lim, lim))):
        order = np.argsort(np.abs(v - np.nanmedian(v)))
        kw = {"vmin": vr[0], "vmax": vr[1]} if vr else {}
        sca = a.scatter(xy[order, 0], xy[order, 1], c=v[order], s=size, cmap=cmap, linewidths=0, rasterized=True, **kw)
        fig.colorbar(sca, ax=a, shrink=0.7)
        a.set_title(title, fontsize=9)
        a.set_xticks([])
        a.set_yticks([])
    return finish(fig, created)


@renamed_kwargs(rna_key="rna_mod")
def residual_trend(mdata, *, genes: str | Sequence[str], pseudotime_key: str = "pseudotime", layer: str = "residual",
                   trends_key: str = "residual_trends", groupby: str | None = "cell_type", rna_mod: str = "rna",
                   transition: float | None = None, ncols: int = 3, ax=None) -> Figure:
    """Residuals of genes along pseudotime with their GAM trend and maximum (Fig. 3H).

    Needs :func:`attune_lib.tl.residual_trends` (curves in ``mdata[rna_mod].uns[trends_key]``). The legend
    (first panel) names the groups, the maximum and the transition.

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
        ``mdata[rna_mod].uns`` key holding the fitted trends.
    groupby
        obs column colouring the cells (None: one colour).
    rna_mod
        RNA modality name (formerly ``rna_key``).
    transition
        Pseudotime of the cell-type transition, drawn as a vertical line (None: none).
    ncols
        Panels per row of a new figure.
    ax
        ``len(genes)`` Axes to draw on, one per gene (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    rna = _rna(mdata, rna_mod)
    curves = _trends(rna, trends_key, rna_mod)["curves"]
    genes = [genes] if isinstance(genes, str) else list(dict.fromkeys(genes))
    if not genes:
        raise AttuneInputError("genes: pass at least one gene")
    values = {g: _gene_vector(rna, g, layer) for g in genes}
    pt = pd.to_numeric(_obs(mdata, pseudotime_key, "pseudotime_key")).reindex(rna.obs_names).to_numpy(dtype=float)
    groups = _obs(mdata, groupby, "groupby").reindex(rna.obs_names) if groupby else None
    ncols = min(ncols, len(genes))
    nrows = int(np.ceil(len(genes) / ncols))
    fig, axes, created = panel_axes(ax, len(genes), what="one per gene", ncols=ncols,
                                    figsize=(4.6 * ncols, 3.4 * nrows))
    for a, gene in zip(axes, genes):
        r = values[gene]
        if groups is not None:
            cats = pd.Categorical(groups)
            pal = cell_type_palette(cats.categories, adata=rna, key=groupby)
            for c in cats.categories:
                sel = np.asarray(cats == c)
                a.scatter(pt[sel], r[sel], s=4, color=pal[c], alpha=0.5, linewidths=0, label=str(c), rasterized=True)
        else:
            a.scatter(pt, r, s=4, color="0.6", alpha=0.5, linewidths=0, rasterized=True)
        if gene in curves.columns:
            f = curves[gene]
            a.plot(f.index, f.to_numpy(), color="k", lw=2)
            i = int(np.argmax(f.to_numpy()))
            a.scatter([f.index[i]], [f.iloc[i]], s=60, color="red", zorder=5)
            a.plot([], [], "o", color="red", ms=4, label="max residual")
            lim = max(np.nanquantile(np.abs(r), 0.99), abs(f).max())
            a.set_ylim(-1.3 * lim, 1.3 * lim)
        a.axhline(0, color="0.3", lw=0.6, ls=":")
        if transition is not None:
            a.axvline(transition, color="0.3", lw=1, ls="--", label="transition")
        a.set_title(gene, fontsize=10)
        a.set_xlabel(label(pseudotime_key))
        a.set_ylabel("residual")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=FONT, markerscale=2, frameon=False, loc="upper left")
    return finish(fig, created)


@renamed_kwargs(rna_key="rna_mod")
def trend_heatmap(mdata, *, trends_key: str = "residual_trends", genes: Sequence[str] | None = None, n_genes: int = 40,
                  score: str = "snr", rna_mod: str = "rna", highlight: Sequence[str] = (),
                  highlight_label: str = "planted lagging genes", ax=None) -> Figure:
    """Heatmap of residual GAM trends (genes x pseudotime), genes ordered by the time of their maximum (S7a-b).

    Without ``genes`` the ``n_genes`` genes with the highest ``score`` are shown. ``highlight`` genes (e.g.
    the simulator's planted lagging genes) are always drawn, added below the top genes when they are not
    among them, and marked in red with ``*``; the title says how many are drawn. The trend pattern of each
    gene is written on the right; a colour bar gives the residual scale.

    Parameters
    ----------
    mdata
        MuData with the residual trends of :func:`attune_lib.tl.residual_trends`.
    trends_key
        ``mdata[rna_mod].uns`` key holding the fitted trends.
    genes
        Genes to show (None: the ``n_genes`` best by ``score``).
    n_genes
        Number of genes shown when ``genes`` is None.
    score
        Column of the trend table ranking the genes.
    rna_mod
        RNA modality name (formerly ``rna_key``).
    highlight
        Genes always drawn and marked in red with ``*``.
    highlight_label
        What the highlighted genes are, for the title.
    ax
        Axes to draw on (None: a new figure); the patterns go on a secondary axis of it.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rna = _rna(mdata, rna_mod)
    trends = _trends(rna, trends_key, rna_mod)
    table, curves = trends["table"], trends["curves"]
    if genes is None:
        if score not in table:
            raise AttuneInputError(f"score={score!r} is not a column of the trend table; available: {list(table)}")
        genes = table.sort_values(score, ascending=False).index[:n_genes]
    hl = [g for g in dict.fromkeys(highlight) if g in curves.columns]
    genes = [g for g in genes if g in curves.columns]
    added = [g for g in hl if g not in genes]
    genes = genes + added  # the highlighted genes are always drawn
    if not genes:
        raise AttuneInputError("genes: none of the genes has a fitted trend")
    C = curves[genes].T
    C = C.loc[table.loc[genes, "t_max"].sort_values(kind="stable").index]
    hl = set(hl)
    fig, ax, created = single_axes(ax, figsize=(7.0, max(3.2, 0.16 * len(C) + 1.6)))
    lim = np.abs(C.to_numpy()).max() or 1.0
    im = ax.imshow(C.to_numpy(), aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim,
                   extent=(C.columns.min(), C.columns.max(), len(C) - 0.5, -0.5))
    ax.set_yticks(np.arange(len(C)))
    ax.set_yticklabels([f"{g} *" if g in hl else g for g in C.index], fontsize=FONT)
    for tick, g in zip(ax.get_yticklabels(), C.index):
        if g in hl:
            tick.set_color(HIGHLIGHT)
            tick.set_fontweight("bold")
    patt = table.loc[C.index, "pattern"].astype(str).to_numpy() if "pattern" in table else None
    if patt is not None:
        right = ax.secondary_yaxis("right")
        right.set_yticks(np.arange(len(C)))
        right.set_yticklabels(patt, fontsize=FONT)
        right.set_ylabel("trend pattern")
    ax.set_xlabel(label(curves.index.name or "pseudotime"))
    cb = fig.colorbar(im, ax=ax, shrink=0.6, pad=0.02, location="right")
    cb.set_label("residual trend")
    title = "GAM trends of residuals (genes ordered by peak time)"
    if highlight:
        n_missing = len([g for g in dict.fromkeys(highlight) if g not in curves.columns])
        title += f"\nred *: {highlight_label} ({len(hl)} drawn"
        title += f", {len(added)} beyond the top {len(genes) - len(added)}" if added else ""
        title += f", {n_missing} without a fitted trend)" if n_missing else ")"
    ax.set_title(title, fontsize=FONT + 2)
    return finish(fig, created)


def pseudobulk_composition(composition: pd.DataFrame, *, palette: str | None = None, ax=None) -> Figure:
    """Stacked bars of the cell-type composition of each pseudo-bulk group (Fig. 3I); the legend names the types.

    Parameters
    ----------
    composition
        Groups x cell types fractions, from :func:`attune_lib.tl.pseudobulk_composition`.
    palette
        Seaborn/matplotlib palette of the cell types (None: the shared cell-type colours,
        :func:`attune_lib.pl._style.cell_type_palette`).
    ax
        Axes to draw on (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(composition, pd.DataFrame) or composition.empty:
        raise AttuneInputError("composition must be a non-empty DataFrame (groups x cell types)")
    fig, ax, created = single_axes(ax, figsize=(0.45 * len(composition) + 2.8, 3.4))
    bottom = np.zeros(len(composition))
    pal = cell_type_palette(composition.columns) if palette is None else \
        dict(zip(composition.columns, sns.color_palette(palette, n_colors=composition.shape[1])))
    for col in composition.columns:
        v = composition[col].to_numpy(dtype=float)
        ax.bar(np.arange(len(composition)), v, bottom=bottom, color=pal[col], label=str(col), width=0.85)
        bottom += v
    ax.set_xticks(np.arange(len(composition)))
    ax.set_xticklabels([str(i) for i in composition.index])
    ax.set_ylabel("fraction of cells")
    ax.set_xlabel(label(composition.index.name or "pseudo-bulk group"))
    ax.set_xticklabels([str(i) for i in composition.index], rotation=90 if len(composition) > 12 else 0)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=FONT, title=label(
        composition.columns.name or "cell_type"), title_fontsize=FONT)
    ax.set_title("cell-type composition of pseudo-bulk groups", fontsize=FONT + 2)
    return finish(fig, created)


def lagging_ranking(
    scores: pd.DataFrame, *, truth: Sequence[str] = (), n: int = 30, auroc: float | None = None, ax=None
) -> Figure:
    """Top genes by lagging score (bars), planted/known lagging genes in red (legend).

    Planted genes outside the top ``n`` are drawn after a dotted line, labelled with their rank, so every
    planted gene that was scored is on the figure.

    Parameters
    ----------
    scores
        Table of :func:`attune_lib.tl.lagging_gene_scores` (a ``score`` column, genes as index).
    truth
        Known (or planted) lagging genes, drawn in red (always drawn when scored).
    n
        Number of top genes shown.
    auroc
        AUROC of the scores against ``truth``, shown in the title when given.
    ax
        Axes to draw on (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(scores, pd.DataFrame) or "score" not in scores:
        raise AttuneInputError("scores needs a 'score' column (attune_lib.tl.lagging_gene_scores)")
    truth = list(dict.fromkeys(truth))
    rank = pd.Series(np.arange(1, len(scores) + 1), index=scores.index)
    top = scores.iloc[:n]
    beyond = [g for g in truth if g in rank.index and g not in top.index]
    shown = scores.loc[list(top.index) + beyond]  # planted genes are drawn even when ranked low
    tset = set(truth)
    fig, ax, created = single_axes(ax, figsize=(max(7.5, 0.2 * len(shown) + 1.5), 3.6))
    colors = [HIGHLIGHT if g in tset else "0.6" for g in shown.index]
    x = np.arange(len(top)).tolist() + [len(top) + 0.8 + i for i in range(len(beyond))]
    ax.bar(x, shown["score"].to_numpy(), color=colors)
    ax.set_xticks(x)
    ax.set_xticklabels([g if g in top.index else f"{g} (#{rank[g]})" for g in shown.index], rotation=90,
                       fontsize=FONT)
    if beyond:
        ax.axvline(len(top) - 0.1, color="0.3", ls=":", lw=1)
    ax.set_ylabel("lagging score")
    ax.set_xlabel(f"top {len(top)} genes" + (", then planted genes beyond them (rank #)" if beyond else ""))
    if tset:
        from matplotlib.patches import Patch

        missing = len([g for g in truth if g not in rank.index])
        lab_t = "planted lagging gene" + (f" ({missing} not scored)" if missing else "")
        ax.legend(handles=[Patch(color=HIGHLIGHT, label=lab_t), Patch(color="0.6", label="other gene")],
                  fontsize=FONT, frameon=False, loc="upper right")
    title = "genes ranked by residual-trend strength"
    if auroc is not None:
        title += f"; AUROC vs planted {auroc:.2f}" if tset else f"; AUROC {auroc:.2f}"
    ax.set_title(title, fontsize=FONT + 2)
    return finish(fig, created)
