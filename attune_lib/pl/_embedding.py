"""Plots of :mod:`attune_lib.tl._embedding`: QC violins (``qc_metrics``) and embedding panels (``embed_umap``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from .._utils import AttuneInputError, get_modality
from ._style import FONT, categorical_palette, cell_type_palette, finish, is_cell_type_key, label, panel_axes
from ._style import point_size as default_point_size

__all__ = ["embedding", "qc"]


def qc(mdata, *, modalities: tuple[str, ...] = ("rna", "atac"), groupby: str | None = None, ax=None) -> Figure:
    """Violin plots of total counts and detected features per modality.

    Requires :func:`attune_lib.tl.qc_metrics` to have been run. With ``groupby``, one violin per
    category of ``mdata[mod].obs[groupby]``.

    Parameters
    ----------
    mdata
        MuData whose modalities hold ``total_counts`` and ``n_features`` in ``obs`` (from
        :func:`attune_lib.tl.qc_metrics`).
    modalities
        Modalities to show, two panels each (total counts, detected features).
    groupby
        obs column splitting the violins (None: one violin).
    ax
        ``2 * len(modalities)`` Axes to draw on, in the order ``mod1 total_counts, mod1 n_features, mod2 ...``
        (None: a new figure with one row of panels).

    Returns
    -------
    matplotlib.figure.Figure
    """
    obs_of, obs_holder = {}, {}
    for mod in modalities:
        obs_holder[mod] = get_modality(mdata, mod)
        obs = obs_holder[mod].obs
        for col in ("total_counts", "n_features"):
            if col not in obs:
                raise AttuneInputError(f"mdata[{mod!r}].obs[{col!r}] missing; run attune_lib.tl.qc_metrics first")
        if groupby is not None and groupby not in obs:
            raise AttuneInputError(f"groupby={groupby!r} not in mdata[{mod!r}].obs")
        obs_of[mod] = obs
    n = 2 * len(modalities)
    fig, axes, created = panel_axes(ax, n, what="total counts and detected features per modality",
                                    figsize=(3.2 * n, 3.2))
    for i, mod in enumerate(modalities):
        obs = obs_of[mod]
        for j, col in enumerate(("total_counts", "n_features")):
            a = axes[2 * i + j]
            if groupby is not None:
                levels = obs[groupby].cat.categories if isinstance(obs[groupby].dtype, pd.CategoricalDtype) else \
                    sorted(obs[groupby].dropna().unique())
                pal = cell_type_palette(levels, adata=obs_holder[mod], key=groupby) if is_cell_type_key(groupby) \
                    else None
                sns.violinplot(data=obs, x=groupby, y=col, ax=a, cut=0, density_norm="width", linewidth=0.5,
                               hue=groupby if pal else None, palette=pal, legend=False)
                a.tick_params(axis="x", rotation=90)
            else:
                sns.violinplot(y=obs[col], ax=a, cut=0, linewidth=0.5)
            a.set_title(f"{label(mod)}: {label(col)}", fontsize=FONT + 2)
            a.set_ylabel(label(col))
            a.set_xlabel(label(groupby) if groupby is not None else "")
    return finish(fig, created)


def embedding(
    mdata,
    *,
    basis: str | list[str],
    color: str | list[str],
    modality: str | None = None,
    titles: list[str] | None = None,
    point_size: float | None = None,
    ncols: int = 3,
    cmap: str = "viridis",
    ax=None,
) -> Figure:
    """Scatter panels of one or more 2-D embeddings coloured by obs columns or features.

    One panel per (basis, colour) pair, bases outermost. A categorical colour gets a legend, a numeric
    one a colour bar. Cell types (a colour whose name says ``cell_type``) get the shared cell-type colours
    (:func:`attune_lib.pl._style.cell_type_palette`), the same in every figure.

    Parameters
    ----------
    mdata
        MuData (or AnnData). Coordinates are read from ``.obsm[basis]`` (or ``mdata[modality].obsm``).
    basis
        One or several ``obsm`` keys; each basis is drawn for each colour.
    color
        ``obs`` column(s) (categorical or numeric) or feature names of ``mdata[modality]``.
    modality
        Modality to read ``basis`` and features from (None: the MuData itself).
    titles
        Panel titles (None: ``<basis>: <color>`` in words, e.g. "UMAP (Attune): cell type").
    point_size
        Marker size (None: chosen from the number of cells).
    ncols
        Panels per row of a new figure.
    cmap
        Colour map of numeric colours.
    ax
        Axes to draw on: one Axes for a single panel, else a sequence of ``len(basis) * len(color)`` Axes
        (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    holder = mdata if modality is None else get_modality(mdata, modality)
    bases = [basis] if isinstance(basis, str) else list(basis)
    colors = [color] if isinstance(color, str) else list(color)
    if not bases or not colors:
        raise AttuneInputError("basis and color each need at least one entry")
    for b in bases:
        if b not in holder.obsm:
            raise AttuneInputError(f"basis={b!r} not found in obsm; available: {sorted(holder.obsm)}")
    panels = [(b, c) for b in bases for c in colors]
    values = {c: _color_values(mdata, holder, c) for c in colors}
    ncols = min(ncols, len(panels))
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes, created = panel_axes(ax, len(panels), what="one per basis and colour", ncols=ncols,
                                    figsize=(4.2 * ncols, 3.8 * nrows))
    size = point_size or default_point_size(holder.n_obs)
    for k, (b, c) in enumerate(panels):
        a = axes[k]
        xy = np.asarray(holder.obsm[b])[:, :2]
        v = values[c]
        if isinstance(v.dtype, pd.CategoricalDtype) or v.dtype == object:
            cats = pd.Categorical(v)
            pal = cell_type_palette(cats.categories, adata=_holder_of(mdata, holder, c), key=c) \
                if is_cell_type_key(c) else categorical_palette(cats.categories, "tab20")
            for cat in cats.categories:
                m = np.asarray(cats == cat)
                a.scatter(xy[m, 0], xy[m, 1], s=size, color=pal[cat], label=str(cat), linewidths=0, rasterized=True)
            a.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=FONT, markerscale=2,
                     title=label(c), title_fontsize=FONT)
        else:
            x = np.asarray(v, dtype=float)
            order = np.argsort(np.nan_to_num(x, nan=-np.inf))
            sca = a.scatter(xy[order, 0], xy[order, 1], c=x[order], s=size, cmap=cmap, linewidths=0, rasterized=True)
            cb = fig.colorbar(sca, ax=a, shrink=0.7)
            cb.set_label(label(c))
        a.set_xticks([])
        a.set_yticks([])
        a.set_title(titles[k] if titles and k < len(titles) else f"{label(b)}: {label(c)}", fontsize=FONT + 2)
        a.set_xlabel(f"{label(b)} 1", fontsize=FONT)
        a.set_ylabel(f"{label(b)} 2", fontsize=FONT)
    return finish(fig, created)


def _holder_of(mdata, holder, key: str):
    """The AnnData/MuData whose obs holds ``key`` (for its ``uns[f"{key}_colors"]``)."""
    if key in getattr(holder, "obs", {}):
        return holder
    for ad in getattr(mdata, "mod", {}).values():
        if key in ad.obs:
            return ad
    return holder


def _color_values(mdata, holder, key: str) -> pd.Series:
    if key in holder.obs:
        return holder.obs[key]
    if hasattr(holder, "var_names") and key in holder.var_names:
        x = holder[:, key].X
        x = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
        return pd.Series(x.ravel(), index=holder.obs_names)
    mods = getattr(mdata, "mod", {})
    for ad in mods.values():
        if key in ad.obs:
            return ad.obs[key]
        if key in ad.var_names:
            x = ad[:, key].X
            x = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
            return pd.Series(x.ravel(), index=ad.obs_names)
    raise AttuneInputError(f"color={key!r} is neither an obs column nor a feature name")
