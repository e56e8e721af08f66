"""The PCHi-C truth set for gene-peak links with GLUE's rules (paper Fig. 3C, Supp. Fig. S4a).

A peak-gene pair is a true link when the peak overlaps an other-end fragment of a promoter-capture Hi-C
interaction baited on the gene's promoter (:func:`pchic_truth`). See ``docs/regulatory.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .._genomics import chrom_with_prefix as _chr
from .._genomics import gene_coords as _gene_coords
from .._genomics import peak_coords as _peak_coords
from .._utils import AttuneInputError

logger = logging.getLogger("attune_lib")

__all__ = [
    "pchic_truth",
]


_PCHIC_COORDS = ("baitChr", "baitStart", "baitEnd", "baitID", "baitName", "oeChr", "oeStart", "oeEnd", "oeID",
                 "oeName", "dist")


# --------------------------------------------------------------------------------------------------
# PCHi-C truth
# --------------------------------------------------------------------------------------------------
def pchic_score_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in _PCHIC_COORDS and pd.api.types.is_numeric_dtype(table[c])]


def pchic_truth(pchic_table: pd.DataFrame, genes_var: pd.DataFrame, peaks_var: pd.DataFrame, *,
                cell_types: Sequence[str] | None = None, min_score: float = 5.0, promoter_bp: int = 1000,
                oe_bp: int = 1000, window_bp: float | None = 1_200_000) -> pd.DataFrame:
    """Gene-peak pairs supported by promoter-capture Hi-C (GLUE's rules, as in the paper).

    A pair (gene, peak) is true when some interaction row has: the gene's TSS within ``promoter_bp`` of the
    bait fragment, the peak (interval) within ``oe_bp`` of the other-end fragment, bait and other end on
    the same chromosome, and a CHiCAGO score >= ``min_score`` in at least one of ``cell_types``.

    Parameters
    ----------
    pchic_table
        Javierre et al. 2016 ``PCHiC_peak_matrix_cutoff5.tsv`` format (``baitChr, baitStart, baitEnd, oeChr,
        oeStart, oeEnd`` and one score column per cell type); chromosome names with or without ``chr``.
        The simulator's ``uns["truth"]["pchic"]`` has this format. The real table is hg19: lift it over to
        the peaks' assembly first.
    genes_var, peaks_var
        ``rna.var`` (``chrom``, ``tss``) and ``atac.var`` (``chrom``, ``start``, ``end``).
    cell_types
        Score columns to use (default: every numeric non-coordinate column). The paper used T, B and
        monocyte types (e.g. ``["Mon", "nCD4", "tCD4", "aCD4", "naCD4", "nCD8", "tCD8", "nB", "tB"]``).
    min_score
        CHiCAGO score cutoff (5).
    promoter_bp, oe_bp
        Proximity of the TSS to the bait and of the peak to the other end (1 kb each).
    window_bp
        Keep only pairs with TSS-to-peak-midpoint distance <= this (None: all).

    Returns
    -------
    DataFrame ``gene, peak, distance`` (unique pairs).
    """
    if not isinstance(pchic_table, pd.DataFrame):
        raise AttuneInputError(f"pchic_table must be a DataFrame, got {type(pchic_table).__name__}")
    need = ("baitChr", "baitStart", "baitEnd", "oeChr", "oeStart", "oeEnd")
    miss = [c for c in need if c not in pchic_table]
    if miss:
        raise AttuneInputError(f"pchic_table lacks column(s) {miss} (Javierre PCHiC_peak_matrix format)")
    avail = pchic_score_columns(pchic_table)
    cols = list(avail) if cell_types is None else list(cell_types)
    bad = [c for c in cols if c not in pchic_table]
    if bad:
        raise AttuneInputError(f"pchic_table has no score column(s) {bad}; available: {avail}")
    if not cols:
        raise AttuneInputError("pchic_table has no cell-type score columns")
    for v, name in ((promoter_bp, "promoter_bp"), (oe_bp, "oe_bp")):
        if v < 0:
            raise AttuneInputError(f"{name} must be >= 0, got {v}")
    empty = pd.DataFrame({"gene": pd.Series(dtype=str), "peak": pd.Series(dtype=str),
                          "distance": pd.Series(dtype=np.int64)})
    t = pchic_table
    scores = t[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    keep = np.nan_to_num(scores, nan=-np.inf).max(axis=1) >= min_score
    b_chr, o_chr = _chr(t["baitChr"].to_numpy()), _chr(t["oeChr"].to_numpy())
    keep &= b_chr == o_chr
    if not keep.any():
        return empty
    b_chr = b_chr[keep]
    bs, be = (t[c].to_numpy()[keep].astype(np.int64) for c in ("baitStart", "baitEnd"))
    os_, oe = (t[c].to_numpy()[keep].astype(np.int64) for c in ("oeStart", "oeEnd"))

    g_chrom, tss, ok = _gene_coords(genes_var, "genes_var")
    p_chrom, p_start, p_end = _peak_coords(peaks_var, "peaks_var")
    mid = (p_start + p_end) // 2
    max_len = int((p_end - p_start).max()) if len(p_end) else 0
    out_g, out_p = [], []
    for c in pd.unique(b_chr):
        rows = np.flatnonzero(b_chr == c)
        gs = np.flatnonzero(ok & (g_chrom == c))
        pk = np.flatnonzero(p_chrom == c)
        if not len(gs) or not len(pk):
            continue
        gs = gs[np.argsort(tss[gs], kind="stable")]
        pk = pk[np.argsort(p_start[pk], kind="stable")]
        g_lo = np.searchsorted(tss[gs], bs[rows] - promoter_bp, side="left")
        g_hi = np.searchsorted(tss[gs], be[rows] + promoter_bp, side="right")
        # peaks [s, e] with e >= oeStart - oe_bp and s <= oeEnd + oe_bp
        p_lo = np.searchsorted(p_start[pk], os_[rows] - oe_bp - max_len, side="left")
        p_hi = np.searchsorted(p_start[pk], oe[rows] + oe_bp, side="right")
        ng, np_ = np.maximum(g_hi - g_lo, 0), np.maximum(p_hi - p_lo, 0)
        sel = (ng > 0) & (np_ > 0)
        if not sel.any():
            continue
        r, ng, np_, g_lo, p_lo = rows[sel], ng[sel], np_[sel], g_lo[sel], p_lo[sel]
        n = ng * np_
        rid = np.repeat(np.arange(len(r)), n)
        k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        gi = gs[g_lo[rid] + k // np_[rid]]
        pi = pk[p_lo[rid] + k % np_[rid]]
        good = p_end[pi] >= os_[r[rid]] - oe_bp
        out_g.append(gi[good])
        out_p.append(pi[good])
    if not out_g:
        return empty
    gi, pi = np.concatenate(out_g), np.concatenate(out_p)
    key = np.unique(np.stack([gi, pi], axis=1), axis=0)
    gi, pi = key[:, 0], key[:, 1]
    d = np.abs(mid[pi] - tss[gi])
    if window_bp is not None:
        w = d <= window_bp
        gi, pi, d = gi[w], pi[w], d[w]
    return pd.DataFrame({"gene": genes_var.index.to_numpy()[gi].astype(str),
                         "peak": peaks_var.index.to_numpy()[pi].astype(str),
                         "distance": d.astype(np.int64)}).reset_index(drop=True)
