"""Plots of :mod:`attune_lib.tl._dpag`: DPAG expression across groups and gene-set enrichment (paper Fig. 3D-E)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .._utils import AttuneInputError, get_modality, renamed_kwargs
from ._style import FONT, HIGHLIGHT, OTHER, finish, label, need_columns, panel_axes, single_axes

#: p-value columns as a figure names them
VALUE_LABELS = {"padj": "adjusted p", "pval": "p", "pval_adj": "adjusted p", "qval": "q"}

__all__ = ["dpag_dotplot", "enrichment_bars"]


@renamed_kwargs(rna_key="rna_mod")
def dpag_dotplot(mdata, dpags: Sequence[str] | pd.DataFrame, degs: pd.DataFrame | None = None, *,
                 groupby: str = "cell_type", rna_mod: str = "rna", layer: str | None = None,
                 n_genes: int = 30, ax=None) -> Figure:
    """DPAG expression across groups (Fig. 3D): mean z-scored expression (colour), fraction expressing (size).

    With ``degs`` (:func:`attune_lib.tl.differential_genes`), DE DPAGs are listed first and starred. The
    left panel counts DE vs non-DE DPAGs; the right one has a colour bar (z-score) and a size legend
    (fraction of cells expressing).

    Parameters
    ----------
    mdata
        MuData with the RNA modality and the groups in ``obs``.
    dpags
        DPAG names, or the table of :func:`attune_lib.tl.find_dpags` (a ``gene`` column).
    degs
        Table of :func:`attune_lib.tl.differential_genes` (None: no DE marks).
    groupby
        obs column with the groups.
    rna_mod
        RNA modality name (formerly ``rna_key``).
    layer
        RNA layer with log-normalised expression (None: ``.X``).
    n_genes
        Most DPAGs shown.
    ax
        Two Axes to draw on: DE counts, dot plot (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..tl._obs import group_labels

    rna = get_modality(mdata, rna_mod, role="RNA")
    if isinstance(dpags, pd.DataFrame):
        need_columns(dpags, ["gene"], "dpags")
    genes = list(dpags["gene"] if isinstance(dpags, pd.DataFrame) else dpags)
    genes = [g for g in genes if g in rna.var_names]
    if not genes:
        raise AttuneInputError(f"dpags: none of the DPAGs is in mdata[{rna_mod!r}].var_names")
    if layer is not None and layer not in rna.layers:
        raise AttuneInputError(f"layer={layer!r} not in mdata[{rna_mod!r}].layers; available: {sorted(rna.layers)}")
    if degs is not None and len(degs):
        need_columns(degs, ["gene"], "degs")
    de = set(degs["gene"].astype(str)) if degs is not None and len(degs) else set()
    ordered = [g for g in genes if g in de] + [g for g in genes if g not in de]
    show = ordered[:n_genes]
    lab = group_labels(mdata, rna, groupby)
    groups = list(lab.cat.categories) if isinstance(lab.dtype, pd.CategoricalDtype) else sorted(lab.unique())
    lab = lab.astype(str).to_numpy()
    groups = [str(g) for g in groups if (lab == str(g)).any()]
    X = rna.X if layer is None else rna.layers[layer]
    X = X[:, rna.var_names.get_indexer(show)]
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    mean = np.stack([X[lab == g].mean(0) for g in groups], axis=1)
    frac = np.stack([(X[lab == g] > 0).mean(0) for g in groups], axis=1)
    sd = mean.std(1, keepdims=True)
    z = np.divide(mean - mean.mean(1, keepdims=True), sd, out=np.zeros_like(mean), where=sd > 0)
    h = max(3.0, 0.22 * len(show) + 1.2)
    fig, (ax0, ax), created = panel_axes(
        ax, 2, what="DE counts, dot plot", figsize=(1.6 + 0.45 * len(groups) + 3.6, h),
        gridspec_kw={"width_ratios": [1.2, max(2.0, 0.45 * len(groups))]})
    n_de = sum(g in de for g in genes)
    ax0.bar(["DE", "not DE"], [n_de, len(genes) - n_de], color=[HIGHLIGHT, OTHER])
    ax0.set_xlabel(f"DE in {label(groupby)}" if degs is not None else "")
    ax0.set_title(f"{len(genes)} DPAGs", fontsize=10)
    ax0.set_ylabel("genes")
    yy, xx = np.meshgrid(np.arange(len(show)), np.arange(len(groups)), indexing="ij")

    def size(f):
        return 10 + 140 * np.asarray(f)

    scat = ax.scatter(xx.ravel(), yy.ravel(), c=z.ravel(), s=size(frac.ravel()), cmap="RdBu_r", vmin=-2, vmax=2,
                      edgecolors="none")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(show)))
    ax.set_yticklabels([f"{g} *" if g in de else g for g in show], fontsize=FONT)
    ax.set_xlabel(label(groupby))
    ax.invert_yaxis()
    ax.set_xlim(-0.6, len(groups) - 0.4)
    handles = [Line2D([], [], marker="o", ls="", color="0.4", markersize=float(np.sqrt(size(f))),
                      label=f"{100 * f:.0f}%") for f in (0.25, 0.5, 1.0)]
    cb = fig.colorbar(scat, ax=ax, fraction=0.04, pad=0.02, shrink=min(1.0, 6.0 / h), location="right")
    cb.set_label("mean expression (z)", fontsize=FONT + 1)
    leg = fig.legend(handles=handles, title="dot size:\n% cells\nexpressing", fontsize=FONT, title_fontsize=FONT,
                     frameon=False, loc="outside right upper") if created else \
        ax.legend(handles=handles, title="dot size: % cells expressing", fontsize=FONT, title_fontsize=FONT,
                  frameon=False, loc="upper left", bbox_to_anchor=(1.3, 1.0))
    leg.set_in_layout(True)
    ax.set_title("DPAG expression (* = DE)", fontsize=10)
    return finish(fig, created)


def enrichment_bars(enr: pd.DataFrame, *, n_terms: int = 10, value: str = "padj", alpha: float = 0.05,
                    title: str | None = None, ax=None) -> Figure:
    """Top over-represented terms as bars of ``-log10(value)`` (Fig. 3E), from :func:`attune_lib.tl.enrichment`.

    Significant terms (``value < alpha``) are coloured (legend); each bar is labelled with overlap/set size.
    A table without terms gives an empty panel saying so. The panel has a title.

    Parameters
    ----------
    enr
        Output of :func:`attune_lib.tl.enrichment`.
    n_terms
        Number of terms shown.
    value
        Column of p-values plotted as ``-log10``.
    alpha
        Significance level marked with a line.
    title
        Axes title (None: "gene-set enrichment (top <n> terms)").
    ax
        Axes to draw on (None: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    need_columns(enr, ["term", value, "n_overlap", "n_set"], "enr")
    d = enr.sort_values(value).head(n_terms)
    fig, ax, created = single_axes(ax, figsize=(6.0, max(2.4, 0.32 * max(len(d), 1) + 1.0)))
    head = title if title is not None else f"gene-set enrichment (top {n_terms} terms)"
    if d.empty:
        ax.text(0.5, 0.5, "no terms", ha="center", va="center")
        ax.set_title(head, fontsize=FONT + 2)
        ax.set_axis_off()
        return fig
    v = -np.log10(np.maximum(d[value].to_numpy(dtype=float), 1e-300))
    colors = [HIGHLIGHT if p < alpha else OTHER for p in d[value]]
    labels = [t if len(t) <= 45 else t[:42] + "..." for t in d["term"].astype(str)]
    ax.barh(labels, v, color=colors)
    ax.invert_yaxis()
    for y, (vv, k, n) in enumerate(zip(v, d["n_overlap"], d["n_set"])):
        ax.text(vv, y, f" {k}/{n}", va="center", fontsize=8)
    ax.axvline(-np.log10(alpha), color="k", ls=":", lw=1)
    ax.set_xlabel(f"-log10 {VALUE_LABELS.get(value, label(value))}")
    ax.set_title(head, fontsize=FONT + 2)
    ax.set_xlim(0, max(v.max() * 1.2, -np.log10(alpha) * 1.2))
    ax.tick_params(axis="y", labelsize=8)
    vlab = VALUE_LABELS.get(value, label(value))
    handles = [Patch(color=HIGHLIGHT, label=f"{vlab} < {alpha:g}"), Patch(color=OTHER, label="not significant")]
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="lower right")
    return finish(fig, created)
