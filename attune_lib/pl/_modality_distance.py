"""Plots of :mod:`attune_lib.tl._modality_distance`: RNA vs ATAC embeddings of the same cells (Fig. 5B, S8c-d)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .._utils import AttuneInputError
from ._style import categorical_palette, finish, label, single_axes

__all__ = ["cross_modal_heatmap", "distance_by_group"]


def cross_modal_heatmap(similarity: pd.DataFrame, *, palette: str = "tab10", vmin: float | None = None,
                        ax=None) -> Figure:
    """Cell x cell RNA-vs-ATAC cosine similarity, cells in group / pseudotime order (Fig. 5B).

    A colour bar gives the similarity; with group labels, bars above and left of the heatmap colour the
    cells by group (legend above).

    Parameters
    ----------
    similarity
        Cell x cell similarity of :func:`attune_lib.tl.cross_modal_similarity` (group labels in
        ``attrs['groups']``).
    palette
        Palette of the group bars.
    vmin
        Lower end of the colour scale (None: the data minimum).
    ax
        Axes to draw the heatmap on (None: a new figure); the group bars are insets of it.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(similarity, pd.DataFrame) or similarity.empty:
        raise AttuneInputError("similarity must be a non-empty cell x cell DataFrame "
                               "(attune_lib.tl.cross_modal_similarity)")
    S = similarity.to_numpy(dtype=float)
    groups = similarity.attrs.get("groups")
    if groups is not None and len(groups) != S.shape[1]:
        raise AttuneInputError(f"similarity.attrs['groups'] has {len(groups)} labels for {S.shape[1]} cells")
    fig, ax, created = single_axes(ax, figsize=(6.4, 5.6))
    im = ax.imshow(S, cmap="magma", aspect="auto", interpolation="nearest", vmin=vmin)
    ax.set_title("RNA-ATAC cosine similarity of cells", fontsize=10)
    ax.set_xlabel("cells (ATAC embedding)")
    ax.set_ylabel("cells (RNA embedding)", labelpad=14 if groups is not None else 4)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, label="cosine similarity", shrink=0.8)
    if groups is not None:
        pal = categorical_palette(groups, palette)
        colors = np.array([pal[g] for g in groups])[None, :, :]
        top = ax.inset_axes((0.0, 1.01, 1.0, 0.04))
        top.imshow(colors, aspect="auto")
        top.set_axis_off()
        left = ax.inset_axes((-0.04, 0.0, 0.03, 1.0))
        left.imshow(colors.transpose(1, 0, 2), aspect="auto")
        left.set_axis_off()
        top.legend(handles=[Patch(color=c, label=str(g)) for g, c in pal.items()], ncol=min(len(pal), 4), fontsize=8,
                   frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return finish(fig, created)


def distance_by_group(mdata, *, distance_key: str = "rna_atac_cosine_distance", groupby: str = "cell_type",
                      threshold: float | None = 0.1, order: Sequence[str] | None = None, ax=None) -> Figure:
    """RNA-ATAC cosine distance per group (Supp. Fig. S8c-d), with the high-distance threshold.

    Violins with the cells as dots; with ``threshold``, the line and the percentage of cells above it
    written over each group.

    Parameters
    ----------
    mdata
        MuData (or AnnData) with the distance in ``obs``.
    distance_key
        obs column with the RNA-ATAC cosine distance (:func:`attune_lib.tl.modality_cosine`).
    groupby
        obs column with the groups.
    threshold
        High-distance threshold drawn as a line (None: none).
    order
        Group order (None: the category order, else by median distance).
    ax
        Axes to draw on (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..tl._obs import obs_column

    dist = pd.to_numeric(obs_column(mdata, distance_key, what="distance_key"))
    grp = obs_column(mdata, groupby, what="groupby")
    df = pd.DataFrame({"distance": dist.to_numpy(), "group": grp.astype(str).to_numpy()}).dropna()
    if df.empty:
        raise AttuneInputError(f"distance_key={distance_key!r}: no cell has a distance")
    present = set(df["group"])
    if order is None:
        if isinstance(grp.dtype, pd.CategoricalDtype):
            order = [str(c) for c in grp.cat.categories if str(c) in present]
        else:
            order = list(df.groupby("group")["distance"].median().sort_values().index)
    else:
        order = [str(o) for o in order]
        unknown = [o for o in order if o not in present]
        if unknown:
            raise AttuneInputError(f"order: groups {unknown} not in obs[{groupby!r}]")
    fig, ax, created = single_axes(ax, figsize=(0.7 * len(order) + 2.5, 3.4))
    sns.violinplot(data=df, x="group", y="distance", order=order, ax=ax, cut=0, density_norm="width", linewidth=0.6,
                   color="0.85")
    sns.stripplot(data=df, x="group", y="distance", order=order, ax=ax, size=1.5, color="tab:blue", alpha=0.4)
    if threshold is not None:
        ax.axhline(threshold, color="red", ls="--", lw=1)
        frac = df.groupby("group")["distance"].apply(lambda v: float((v > threshold).mean()))
        for i, g in enumerate(order):
            ax.text(i, ax.get_ylim()[1], f"{100 * frac.get(g, 0):.0f}%", ha="center", va="bottom", fontsize=8)
    ax.tick_params(axis="x", rotation=45)
    ax.set_xlabel(label(groupby) if isinstance(groupby, str) else "")
    ax.set_ylabel("RNA-ATAC cosine distance")
    ax.set_title("RNA-ATAC cosine distance per group", fontsize=10)
    return finish(fig, created)
