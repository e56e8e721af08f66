"""Basic plots: QC violins, embedding scatter panels, and saving figures."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from .._utils import AttuneInputError, get_modality

__all__ = ["savefig", "qc", "embedding"]


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
    if not name or "/" in name or "\\" in name:
        raise AttuneInputError(f"figure name must be a plain file stem, got {name!r}")
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    tmp = out / f".{name}.tmp.png"
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def qc(mdata, *, modalities: tuple[str, ...] = ("rna", "atac"), groupby: str | None = None) -> Figure:
    """Violin plots of total counts and detected features per modality.

    Requires :func:`attune_lib.tl.qc_metrics` to have been run. With ``groupby``, one violin per
    category of ``mdata[mod].obs[groupby]``.

    Parameters
    ----------
    mdata
        MuData whose modalities hold ``total_counts`` and ``n_features`` in ``obs`` (from
        :func:`attune_lib.tl.qc_metrics`).
    modalities
        Modalities to show, one row each.
    groupby
        obs column splitting the violins (None: one violin).
    """
    fig, axes = plt.subplots(1, 2 * len(modalities), figsize=(3.2 * 2 * len(modalities), 3.2))
    axes = np.atleast_1d(axes)
    for i, mod in enumerate(modalities):
        obs = get_modality(mdata, mod).obs
        for j, col in enumerate(("total_counts", "n_features")):
            if col not in obs:
                raise AttuneInputError(
                    f"mdata[{mod!r}].obs[{col!r}] missing; run attune_lib.tl.qc_metrics first"
                )
            ax = axes[2 * i + j]
            if groupby is not None:
                if groupby not in obs:
                    raise AttuneInputError(f"groupby={groupby!r} not in mdata[{mod!r}].obs")
                sns.violinplot(data=obs, x=groupby, y=col, ax=ax, cut=0, density_norm="width", linewidth=0.5)
                ax.tick_params(axis="x", rotation=90)
            else:
                sns.violinplot(y=obs[col], ax=ax, cut=0, linewidth=0.5)
            ax.set_title(f"{mod}: {col}")
            ax.set_ylabel("")
    fig.tight_layout()
    return fig


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
) -> Figure:
    """Scatter panels of one or more 2-D embeddings coloured by obs columns or features.

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
        Panel titles (None: ``<basis>: <color>``).
    point_size
        Marker size (None: chosen from the number of cells).
    ncols
        Panels per row.
    cmap
        Colour map of numeric colours.
    """
    holder = mdata if modality is None else get_modality(mdata, modality)
    bases = [basis] if isinstance(basis, str) else list(basis)
    colors = [color] if isinstance(color, str) else list(color)
    panels = [(b, c) for b in bases for c in colors]
    for b in bases:
        if b not in holder.obsm:
            raise AttuneInputError(f"basis={b!r} not found in obsm; available: {sorted(holder.obsm)}")
    ncols = min(ncols, len(panels))
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.8 * nrows), squeeze=False)
    size = point_size or max(120000 / max(holder.n_obs, 1), 2) ** 0.5
    for k, (b, c) in enumerate(panels):
        ax = axes.flat[k]
        xy = np.asarray(holder.obsm[b])[:, :2]
        values = _color_values(mdata, holder, c)
        if isinstance(values.dtype, pd.CategoricalDtype) or values.dtype == object:
            cats = pd.Categorical(values)
            palette = sns.color_palette("tab20", n_colors=max(len(cats.categories), 1))
            for ci, cat in enumerate(cats.categories):
                m = np.asarray(cats == cat)
                ax.scatter(xy[m, 0], xy[m, 1], s=size, color=palette[ci % len(palette)], label=str(cat),
                           linewidths=0, rasterized=True)
            ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7, markerscale=2)
        else:
            v = np.asarray(values, dtype=float)
            order = np.argsort(np.nan_to_num(v, nan=-np.inf))
            sca = ax.scatter(xy[order, 0], xy[order, 1], c=v[order], s=size, cmap=cmap, linewidths=0,
                             rasterized=True)
            fig.colorbar(sca, ax=ax, shrink=0.7)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(titles[k] if titles and k < len(titles) else f"{b}: {c}", fontsize=9)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


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
