"""Plot of :func:`attune_lib.tl.reference_mapping`: reference and mapped query cells on a UMAP (Supp. Fig. S9)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .._utils import AttuneInputError, renamed_kwargs
from ._style import categorical_palette, finish, panel_axes, point_size

__all__ = ["reference_mapping"]


@renamed_kwargs(random_state="seed")
def reference_mapping(
    mdata,
    *,
    cell_type_key: str = "cell_type",
    use_rep: str = "X_attune",
    basis: str | None = None,
    seed: int = 0,
    ax=None,
) -> Figure:
    """UMAP of reference and mapped query cells (Supp. Fig. S9).

    Three panels: reference vs query; cell types (reference cells faint, query cells outlined); the
    held-out type's query cells over the reference. The UMAP is computed from ``obsm[use_rep]`` and
    stored as ``basis`` (default ``X_umap_<use_rep>``) unless it already exists.

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
    seed
        Seed of the UMAP (formerly ``random_state``).
    ax
        Three Axes to draw on: reference vs query, cell types, held-out type (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..tl import embed_umap

    for key in ("ref_query", cell_type_key):
        if key not in mdata.obs:
            raise AttuneInputError(f"obs[{key!r}] missing; run attune_lib.tl.reference_mapping first")
    basis = basis or f"X_umap_{use_rep.removeprefix('X_')}"
    fig, axes, created = panel_axes(ax, 3, what="reference vs query, cell types, held-out type",
                                    figsize=(15, 4.4))
    if basis not in mdata.obsm:
        embed_umap(mdata, use_rep=use_rep, key_added=basis, seed=seed)
    xy = np.asarray(mdata.obsm[basis])[:, :2]
    split = mdata.obs["ref_query"].astype(str).to_numpy()
    ct = mdata.obs[cell_type_key].astype(str).to_numpy()
    held = mdata.obs["held_out"].to_numpy(bool) if "held_out" in mdata.obs else np.zeros(len(ct), bool)
    info = mdata.uns.get("reference_mapping", {})
    types = sorted(np.unique(ct))
    pal = categorical_palette(types, "tab10" if len(types) <= 10 else "husl")
    size = point_size(len(ct))
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
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8, markerscale=2)
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
                top = near.loc[h].drop("n_cells", errors="ignore").sort_values(ascending=False).head(2)
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
    return finish(fig, created)
