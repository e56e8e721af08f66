"""Genomic coordinates shared by the tools and the models: chromosome names, gene TSSs, peak
positions, and the candidate gene-peak pairs inside a window around each TSS.

This module sits low in the package (it needs only :mod:`attune_lib._utils`), so both
:mod:`attune_lib.models` (the regulatory transformer's attention pattern) and :mod:`attune_lib.tl`
(link scoring, PCHi-C truth) use it. :func:`gene_peak_pairs` is also available as
:func:`attune_lib.tl.gene_peak_pairs`.

Chromosome names are compared with a ``chr`` prefix (added when missing, as in the Javierre table).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ._utils import AttuneInputError, get_modality, renamed_kwargs

__all__ = ["chrom_with_prefix", "gene_coords", "gene_peak_pairs", "peak_coords", "reindex_var", "window_pairs"]


def chrom_with_prefix(values) -> np.ndarray:
    """Chromosome names with a ``chr`` prefix (added when missing; missing values stay None).

    Parameters
    ----------
    values
        Chromosome names (``"1"``, ``"chr1"``, ``"X"``, NaN, ...).
    """
    s = pd.Series(values, dtype="object")
    out = s.astype(str).str.strip()
    miss = s.isna().to_numpy()
    out = np.where(out.str.lower().str.startswith("chr"), out, "chr" + out)
    out = out.astype(object)
    out[miss] = None
    return out


def gene_coords(genes_var: pd.DataFrame, where: str = "rna.var") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(chrom with chr prefix, TSS (int, -1 when unknown), annotated mask)`` of a gene table.

    Parameters
    ----------
    genes_var
        Gene table with ``chrom`` and ``tss`` (or ``start``, ``end``, ``strand``); optional boolean
        ``annotated``.
    where
        Name of the table in error messages.
    """
    if "chrom" not in genes_var:
        raise AttuneInputError(f"{where} lacks the 'chrom' column (gene annotation); see annotate_genes()")
    if "tss" in genes_var:
        tss = pd.to_numeric(genes_var["tss"], errors="coerce").to_numpy(dtype=float)
    elif {"start", "end", "strand"} <= set(genes_var.columns):
        st = pd.to_numeric(genes_var["start"], errors="coerce").to_numpy(dtype=float)
        en = pd.to_numeric(genes_var["end"], errors="coerce").to_numpy(dtype=float)
        tss = np.where(genes_var["strand"].astype(str).to_numpy() == "-", en - 1, st)
    else:
        raise AttuneInputError(f"{where} lacks 'tss' (or 'start', 'end', 'strand') needed for gene positions")
    chrom = chrom_with_prefix(genes_var["chrom"].to_numpy())
    ok = np.array([c is not None for c in chrom]) & np.isfinite(tss)
    if "annotated" in genes_var:
        ann = genes_var["annotated"]
        ok &= ann.fillna(False).astype(bool).to_numpy()
    tss = np.where(ok, np.nan_to_num(tss, nan=-1), -1).astype(np.int64)
    return chrom, tss, ok


def peak_coords(peaks_var: pd.DataFrame, where: str = "atac.var") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(chrom with chr prefix, start, end)`` of a peak table (``var`` columns, or ``chr:start-end`` names).

    Parameters
    ----------
    peaks_var
        Peak table with ``chrom``, ``start``, ``end``, or indexed by ``chr:start-end`` names.
    where
        Name of the table in error messages.
    """
    if {"chrom", "start", "end"} <= set(peaks_var.columns):
        chrom = chrom_with_prefix(peaks_var["chrom"].to_numpy())
        start = pd.to_numeric(peaks_var["start"], errors="coerce").to_numpy(dtype=float)
        end = pd.to_numeric(peaks_var["end"], errors="coerce").to_numpy(dtype=float)
    else:
        parts = pd.Series(peaks_var.index.astype(str)).str.extract(r"^(.+?)[:_-](\d+)[-_](\d+)$")
        if parts.isna().any(axis=None):
            raise AttuneInputError(f"{where} lacks 'chrom', 'start', 'end' and its names are not 'chr:start-end'")
        chrom = chrom_with_prefix(parts[0].to_numpy())
        start, end = parts[1].astype(float).to_numpy(), parts[2].astype(float).to_numpy()
    bad = ~(np.isfinite(start) & np.isfinite(end))
    if bad.any():
        raise AttuneInputError(f"{where}: {int(bad.sum())} peak(s) without start/end coordinates")
    return chrom, start.astype(np.int64), end.astype(np.int64)


def window_pairs(genes_var: pd.DataFrame, peaks_var: pd.DataFrame, window_bp: float | None):
    """Gene-major (sorted) in-window pairs: ``gene_idx, peak_idx, distance`` arrays.

    Parameters
    ----------
    genes_var, peaks_var
        Gene and peak tables (see :func:`gene_coords`, :func:`peak_coords`).
    window_bp
        Largest distance between a peak midpoint and the TSS (None: whole chromosome).
    """
    g_chrom, tss, ok = gene_coords(genes_var)
    p_chrom, p_start, p_end = peak_coords(peaks_var)
    mid = (p_start + p_end) // 2
    w = np.inf if window_bp is None else float(window_bp)
    gi_all, pi_all = [], []
    for c in pd.unique(p_chrom[p_chrom != None]):  # noqa: E711 - elementwise on an object array
        pk = np.flatnonzero(p_chrom == c)
        pk = pk[np.argsort(mid[pk], kind="stable")]
        gs = np.flatnonzero(ok & (g_chrom == c))
        if not len(gs) or not len(pk):
            continue
        lo = np.searchsorted(mid[pk], tss[gs] - w, side="left")
        hi = np.searchsorted(mid[pk], tss[gs] + w, side="right")
        n = hi - lo
        gi = np.repeat(gs, n)
        off = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        pi_all.append(pk[np.repeat(lo, n) + off])
        gi_all.append(gi)
    if gi_all:
        gi, pi = np.concatenate(gi_all), np.concatenate(pi_all)
    else:
        gi = pi = np.zeros(0, dtype=np.int64)
    order = np.lexsort((pi, gi))
    gi, pi = gi[order], pi[order]
    return gi, pi, np.abs(mid[pi] - tss[gi])


@renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
def gene_peak_pairs(mdata, *, window_bp: float = 1_200_000, rna_mod: str = "rna", atac_mod: str = "atac",
                    genes: Sequence[str] | None = None, peaks: Sequence[str] | None = None) -> pd.DataFrame:
    """Candidate pairs: every annotated gene with every peak whose midpoint is within ``window_bp`` of its TSS.

    Parameters
    ----------
    mdata
        MuData with gene coordinates in ``rna.var`` (``chrom``, ``tss``; optional boolean ``annotated``)
        and peak coordinates in ``atac.var`` (``chrom``, ``start``, ``end``).
    window_bp
        Half-width of the window around the TSS (1.2 Mb in the paper).
    genes, peaks
        Feature order to index into (default: the modalities' ``var_names``).
    rna_mod
        RNA modality name.
    atac_mod
        ATAC modality name.

    Returns
    -------
    DataFrame ``gene, peak, distance, gene_idx, peak_idx`` (gene-major; indices into ``genes``/``peaks``).
    """
    rna = get_modality(mdata, rna_mod, role="RNA")
    atac = get_modality(mdata, atac_mod, role="ATAC")
    if window_bp is not None and not window_bp > 0:
        raise AttuneInputError(f"window_bp must be > 0, got {window_bp}")
    gvar = rna.var if genes is None else reindex_var(rna.var, genes, f"mdata[{rna_mod!r}].var")
    pvar = atac.var if peaks is None else reindex_var(atac.var, peaks, f"mdata[{atac_mod!r}].var")
    gi, pi, d = window_pairs(gvar, pvar, window_bp)
    return pd.DataFrame({"gene": gvar.index.to_numpy()[gi].astype(str), "peak": pvar.index.to_numpy()[pi].astype(str),
                         "distance": d.astype(np.int64), "gene_idx": gi, "peak_idx": pi})


def reindex_var(var: pd.DataFrame, names: Sequence[str], where: str) -> pd.DataFrame:
    """Rows of a feature table in the order of ``names`` (an error names the missing ones).

    Parameters
    ----------
    var
        Feature table indexed by name.
    names
        Requested names.
    where
        Name of the table in error messages.
    """
    names = pd.Index(names)
    missing = names.difference(var.index)
    if len(missing):
        raise AttuneInputError(f"{where} lacks {len(missing)} requested feature(s), e.g. {list(missing[:3])}")
    return var.loc[names]
