"""Co-occurrence, motifs and regulons of a gene's peak clusters (paper Fig. 4D, 4E; Methods "Co-occurrence",
"Motif and regulon").

* :func:`background_peaks` - GC- and coverage-matched background peaks (chromVAR / pychromvar definition).
* :func:`co_occurrence`, :func:`top_cooccurring_genes` - Spearman correlation of each cluster's peaks with all
  genes, tested against the background peaks' correlations (Wilcoxon rank-sum, BH), and the top genes per cluster.
* :func:`jaspar_motifs`, :func:`peak_sequences`, :func:`scan_motifs`, :func:`motif_enrichment` -
  JASPAR 2022 CORE vertebrates (841 matrices, pyjaspar), MOODS scanning at p < 5e-5
  (``pychromvar.match_motif``), Fisher enrichment of a peak group against a background.
* :func:`motif_regulon` - a light, motif-supported co-expression regulon (a stand-in for SCENIC).

See ``docs/chromatin_potential.md``.
"""

from __future__ import annotations

import functools
import gzip
import logging
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._access import counts_matrix as _counts_layer
from .._utils import AttuneInputError, as_csr, get_modality, renamed_kwargs
from ._obs import is_mudata as _is_mudata
from ._potential import (
    pseudobulk,
)
from ._regulation_shift import check_score_table, rna_group_profiles

logger = logging.getLogger("attune_lib")

__all__ = [
    "background_peaks",
    "co_occurrence",
    "top_cooccurring_genes",
    "jaspar_motifs",
    "motif_names",
    "peak_sequences",
    "scan_motifs",
    "motif_enrichment",
    "motif_regulon",
]


# --------------------------------------------------------------------------------------------------
# background peaks and co-occurrence
# --------------------------------------------------------------------------------------------------
@renamed_kwargs(atac_key="atac_mod")
def background_peaks(
    mdata,
    *,
    n_background: int = 50,
    atac_mod: str = "atac",
    layer: str | None = None,
    gc_key: str = "gc_bias",
    method: str = "exact",
    seed: int = 0,
    key_added: str = "bg_peaks",
) -> None:
    """Background peaks matched on GC content and coverage (chromVAR ``getBackgroundPeaks``, pychromvar).

    As ``pychromvar.get_bg_peaks``: each peak is a point ``(log10 total counts, GC)``, the two coordinates
    are whitened with the Cholesky factor of their covariance, and a peak's background peaks are its
    nearest neighbours in that space (itself excluded). Peaks without counts have no background (row of -1).

    ``method="exact"`` (default) finds the neighbours exactly with a KD-tree. ``method="pychromvar"`` calls
    ``pychromvar.get_bg_peaks`` (approximate NNDescent). Measured here: pychromvar's first call in a
    process costs ~75 s of numba compilation (0.7 s afterwards) for 3,000 peaks on 2 cores, longer than the
    whole analysis, while the exact 2-D search takes well under a second at 100k peaks; hence the default.

    Parameters
    ----------
    n_background
        Background peaks per peak (50 in the paper).
    layer
        ATAC counts (None: ``counts`` layer when present, else ``.X``).
    gc_key
        ``atac.var`` column with the GC fraction (the simulator sets ``gc_bias``; for real data compute
        it from the peak sequences, e.g. with :func:`peak_sequences`).
    seed
        Seeds pychromvar's NNDescent (``method="pychromvar"``); the exact search is deterministic.
    key_added
        ``atac.varm`` key of the (n_peaks x n_background) int64 index matrix.
    mdata
        MuData with the ATAC modality.
    atac_mod
        ATAC modality name.
    method
        ``"exact"`` (KD-tree) or ``"pychromvar"`` (its NNDescent search).
    """
    atac = get_modality(mdata, atac_mod, role="ATAC") if _is_mudata(mdata) else mdata
    where = f"mdata[{atac_mod!r}]" if _is_mudata(mdata) else "adata"
    if gc_key not in atac.var:
        raise AttuneInputError(f"{where}.var[{gc_key!r}] (GC fraction of each peak) is missing; set it from the peak "
                               "sequences (pychromvar.add_gc_bias or attune_lib.tl.peak_sequences)")
    if method not in ("exact", "pychromvar"):
        raise AttuneInputError(f"method must be 'exact' or 'pychromvar', got {method!r}")
    gc = atac.var[gc_key].to_numpy(dtype=float)
    if not np.isfinite(gc).all():
        raise AttuneInputError(f"{where}.var[{gc_key!r}] has missing values")
    X, _ = _counts_layer(atac, layer, where, kind="scaled", step="background peaks (reads per peak)")
    reads = np.asarray(X.sum(axis=0)).ravel().astype(float)
    ok = np.flatnonzero(reads > 0)
    if len(ok) <= n_background + 1:
        raise AttuneInputError(f"n_background={n_background} needs more than {n_background + 1} peaks with counts, "
                               f"{where} has {len(ok)}")
    k = int(n_background) + 1
    if method == "exact":
        from sklearn.neighbors import NearestNeighbors

        mat = np.vstack([np.log10(reads[ok]), gc[ok]])
        chol = np.linalg.cholesky(np.cov(mat))
        pts = np.linalg.solve(chol, mat).T
        _, nn = NearestNeighbors(n_neighbors=k, algorithm="kd_tree").fit(pts).kneighbors(pts)
    else:
        import anndata as ad
        import pychromvar

        tmp = ad.AnnData(X=as_csr(X)[:, ok], var=pd.DataFrame({"gc_bias": gc[ok]}, index=atac.var_names[ok]))
        state = np.random.get_state()
        try:
            np.random.seed(seed)
            pychromvar.get_bg_peaks(tmp, niterations=k, n_jobs=1)
        finally:
            np.random.set_state(state)
        nn = np.asarray(tmp.varm["bg_peaks"])
    out = np.full((atac.n_vars, int(n_background)), -1, dtype=np.int64)
    for r, row in enumerate(nn):
        others = row[row != r][: int(n_background)]
        out[ok[r], : len(others)] = ok[others]
    atac.varm[key_added] = out


def _rank_standardise(M: np.ndarray) -> np.ndarray:
    """Column-wise ranks (average ties), centred and scaled to unit norm; constant columns -> NaN."""
    from scipy.stats import rankdata

    R = rankdata(M, axis=0)
    R -= R.mean(axis=0)
    norm = np.sqrt((R ** 2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, R / np.where(norm > 0, norm, 1.0), np.nan)


@renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
def co_occurrence(mdata, *, peak_groups: Mapping[str, Sequence[str]], groupby: str = "pt_group",
                  genes: Sequence[str] | None = None, n_background: int = 50, bg_key: str = "bg_peaks",
                  alternative: str = "greater", rna_mod: str = "rna", atac_mod: str = "atac",
                  rna_layer: str | None = None, atac_layer: str | None = None,
                  key_added: str | None = "co_occurrence") -> pd.DataFrame:
    """Genes co-occurring with each peak cluster, tested against GC/coverage-matched background peaks.

    Pseudo-bulk profiles per group of ``groupby`` (ATAC: counts per million; RNA: mean log-normalised
    expression; counts are log-normalised first). For each cluster ``k`` with peaks ``P_k``:

    1. Spearman correlation over groups between every peak of ``P_k`` and every gene, averaged per gene
       (``mean_r``);
    2. the same for the background peaks of each peak of ``P_k`` (``n_background`` each, from
       ``atac.varm[bg_key]``, computed by :func:`background_peaks` when missing) -> ``bg_mean_r``;
    3. per gene, Wilcoxon rank-sum (Mann-Whitney U, ``alternative``) of the cluster peaks' correlations
       against the background peaks' correlations -> ``pval``; Benjamini-Hochberg over genes, per cluster
       -> ``pval_adj``.

    The paper computed Spearman's correlation on the pseudo-bulk samples used for soft clustering; with
    only 10 groups the correlations are coarse, so a finer grouping (e.g. 30-50 pseudotime groups from
    :func:`attune_lib.tl.pseudobulk_groups`, ``key_added="pt_bin"``) is a sensible choice.

    Parameters
    ----------
    peak_groups
        ``{cluster name: peak names}`` (e.g. the alpha cores of :func:`peak_soft_clusters`).
    genes
        Genes to test (default all of ``mdata[rna_mod]``).
    alternative
        ``"greater"`` (cluster peaks correlate more positively than background; the paper's co-occurrence),
        ``"less"`` or ``"two-sided"``.
    key_added
        Store the table in ``mdata.uns[key_added]`` (None: only return).
    mdata
        MuData with the modalities and ``obs[groupby]``.
    groupby
        obs column with the pseudo-bulk groups.
    n_background
        Background peaks per peak used.
    bg_key
        ``atac.varm`` key of :func:`background_peaks`.
    rna_mod
        RNA modality name.
    atac_mod
        ATAC modality name.
    rna_layer
        RNA layer with log-normalised expression (None: ``.X``).
    atac_layer
        ATAC counts (None: ``counts`` when present, else ``.X``).

    Returns
    -------
    DataFrame ``cluster, gene, mean_r, bg_mean_r, n_peaks, n_background, statistic, pval, pval_adj``
    sorted by cluster and p-value.
    """
    from scipy.stats import mannwhitneyu
    from statsmodels.stats.multitest import multipletests

    if alternative not in ("greater", "less", "two-sided"):
        raise AttuneInputError(f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")
    if not isinstance(peak_groups, Mapping) or not peak_groups:
        raise AttuneInputError("peak_groups must be a non-empty mapping {cluster: [peak names]}")
    rna = get_modality(mdata, rna_mod, role="RNA")
    atac = get_modality(mdata, atac_mod, role="ATAC")
    groups_idx = {}
    for name, pks in peak_groups.items():
        idx = atac.var_names.get_indexer([str(p) for p in pks])
        if len(idx) == 0 or (idx < 0).any():
            bad = [p for p, i in zip(pks, idx) if i < 0]
            raise AttuneInputError(f"peak_groups[{name!r}]: {len(bad)} peak(s) not in mdata[{atac_mod!r}].var_names "
                                   f"(e.g. {bad[:3]}) or the group is empty")
        groups_idx[str(name)] = idx
    gidx = np.arange(rna.n_vars)
    if genes is not None:
        gidx = rna.var_names.get_indexer([str(g) for g in genes])
        if (gidx < 0).any():
            raise AttuneInputError(f"{int((gidx < 0).sum())} gene(s) not in mdata[{rna_mod!r}].var_names")
    if bg_key not in atac.varm:
        background_peaks(mdata, n_background=n_background, atac_mod=atac_mod, layer=atac_layer, key_added=bg_key)
    bg = np.asarray(atac.varm[bg_key])[:, :n_background]
    need = np.unique(np.concatenate([np.concatenate([i, bg[i].ravel()]) for i in groups_idx.values()]))
    need = need[need >= 0]
    A = pseudobulk(mdata, groupby=groupby, modality=atac_mod, layer=atac_layer, features=atac.var_names[need],
                   standardize=False).to_numpy(dtype=float).T  # groups x needed peaks
    Rg = rna_group_profiles(mdata, groupby=groupby, rna_mod=rna_mod, rna_layer=rna_layer, genes=rna.var_names[gidx])
    if A.shape[0] < 4:
        raise AttuneInputError(f"groupby={groupby!r} has {A.shape[0]} groups; correlations need at least 4")
    Za = _rank_standardise(A)
    Zg = _rank_standardise(Rg.to_numpy(dtype=float).T)
    C = Za.T @ Zg  # needed peaks x genes, Spearman
    pos = {p: i for i, p in enumerate(need)}
    gene_names = rna.var_names[gidx].astype(str)
    out = []
    for name, idx in groups_idx.items():
        fg = C[[pos[i] for i in idx]]
        b = bg[idx].ravel()
        b = b[b >= 0]
        bgc = C[[pos[i] for i in b]]
        fg_ok, bg_ok = fg[np.isfinite(fg).all(axis=1)], bgc[np.isfinite(bgc).all(axis=1)]
        valid = np.isfinite(Zg).all(axis=0)
        stat = np.full(len(gidx), np.nan)
        pval = np.full(len(gidx), np.nan)
        if len(fg_ok) and len(bg_ok) and valid.any():
            res = mannwhitneyu(fg_ok[:, valid], bg_ok[:, valid], alternative=alternative, axis=0)
            stat[valid], pval[valid] = res.statistic, res.pvalue
        padj = np.full(len(gidx), np.nan)
        fin = np.isfinite(pval)
        if fin.any():
            padj[fin] = multipletests(pval[fin], method="fdr_bh")[1]
        out.append(
            pd.DataFrame(
                {
                    "cluster": name,
                    "gene": gene_names,
                    "mean_r": np.nanmean(fg, axis=0) if len(fg_ok) else np.nan,
                    "bg_mean_r": np.nanmean(bgc, axis=0) if len(bg_ok) else np.nan,
                    "n_peaks": len(fg_ok),
                    "n_background": len(bg_ok),
                    "statistic": stat,
                    "pval": pval,
                    "pval_adj": padj,
                }
            )
        )
    table = pd.concat(out, ignore_index=True).sort_values(["cluster", "pval"], kind="stable").reset_index(drop=True)
    if key_added is not None:
        mdata.uns[key_added] = table
    return table



def top_cooccurring_genes(table: pd.DataFrame, *, n: int = 5, max_pval: float | None = None,
                          positive_only: bool = True) -> pd.DataFrame:
    """The ``n`` genes with the smallest p-value per cluster (Fig. 4D), optionally only positive ``mean_r``.

    Parameters
    ----------
    table
        Output of :func:`co_occurrence`.
    n
        Genes kept per cluster.
    max_pval
        Largest p-value kept (None: no limit).
    positive_only
        Keep only genes with a positive ``mean_r``.
    """
    check_score_table(table, ("cluster", "gene", "pval", "mean_r"), "table")
    df = table[np.isfinite(table["pval"].to_numpy(dtype=float))]
    if positive_only:
        df = df[df["mean_r"] > df["bg_mean_r"]] if "bg_mean_r" in df else df[df["mean_r"] > 0]
    if max_pval is not None:
        df = df[df["pval"] <= max_pval]
    df = df.sort_values(["cluster", "pval"], kind="stable")
    return df.groupby("cluster", sort=False, observed=True).head(n).reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# motifs
# --------------------------------------------------------------------------------------------------
@functools.cache
def _jaspar(release: str, collection: str, tax_group: str) -> tuple:
    from pyjaspar import jaspardb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        db = jaspardb(release=release)
        motifs = db.fetch_motifs(collection=collection, tax_group=[tax_group])
    return tuple(motifs)


def jaspar_motifs(*, release: str = "JASPAR2022", collection: str = "CORE", tax_group: str = "vertebrates",
                  ids: Sequence[str] | None = None) -> list:
    """JASPAR position frequency matrices via pyjaspar (offline; 2022 CORE vertebrates: 841 matrices).

    Parameters
    ----------
    ids
        Keep only these matrix ids (e.g. ``["MA0768.2"]``); unknown ids raise an error.
    release
        JASPAR release known to pyjaspar.
    collection
        JASPAR collection.
    tax_group
        Taxonomic group.

    Returns
    -------
    list of ``Bio.motifs.jaspar.Motif`` (``.matrix_id``, ``.name``, ``.counts``).
    """
    motifs = list(_jaspar(release, collection, tax_group))
    if ids is None:
        return motifs
    by_id = {m.matrix_id: m for m in motifs}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise AttuneInputError(f"{len(missing)} motif id(s) not in {release} {collection} {tax_group}: {missing[:5]}")
    return [by_id[i] for i in ids]


def motif_names(ids: Sequence[str] | None = None, *, release: str = "JASPAR2022") -> pd.Series:
    """JASPAR matrix id -> TF name (2022 CORE vertebrates).

    Parameters
    ----------
    ids
        Matrix ids (None: all of the release).
    release
        JASPAR release known to pyjaspar.
    """
    s = pd.Series({m.matrix_id: m.name for m in _jaspar(release, "CORE", "vertebrates")}, name="motif_name")
    return s if ids is None else s.reindex(list(ids))


def _read_fasta_regions(fasta: str | os.PathLike, regions: pd.DataFrame) -> list[str | None]:
    """Sequences of ``regions`` (``chrom, start, end``; 0-based half-open) from a plain or gzipped FASTA.

    Streams the file one chromosome at a time (memory: the largest needed chromosome), no index needed.
    """
    path = Path(fasta)
    if not path.is_file():
        raise AttuneInputError(f"fasta={str(path)!r}: file not found")
    want: dict[str, list[int]] = {}
    for i, c in enumerate(regions["chrom"].astype(str)):
        want.setdefault(c, []).append(i)
    out: list[str | None] = [None] * len(regions)
    starts = regions["start"].to_numpy(dtype=np.int64)
    ends = regions["end"].to_numpy(dtype=np.int64)

    def flush(name, chunks):
        if name is None or name not in want:
            return
        seq = b"".join(chunks)
        for i in want[name]:
            out[i] = seq[starts[i]:ends[i]].decode("ascii").upper()

    opener = gzip.open if path.suffix == ".gz" else open
    name, chunks = None, []
    with opener(path, "rb") as fh:
        for line in fh:
            if line.startswith(b">"):
                flush(name, chunks)
                name = line[1:].split()[0].decode()
                chunks = []
            elif name in want:
                chunks.append(line.strip())
        flush(name, chunks)
    return out


@renamed_kwargs(atac_key="atac_mod")
def peak_sequences(mdata, *, atac_mod: str = "atac", fasta: str | os.PathLike | None = None,
                   sequence_key: str = "sequence", add_gc: bool = True) -> pd.Series:
    """DNA sequence of every peak: ``atac.var[sequence_key]`` (the simulator), else read from ``fasta``.

    With ``fasta`` (plain or ``.gz`` genome FASTA, e.g. mm10/hg38 named in a data manifest), the
    sequences are cut at ``atac.var`` ``chrom, start, end`` (0-based, BED-like) and written to
    ``atac.var[sequence_key]``; with ``add_gc`` the GC fraction goes to ``atac.var["gc_bias"]`` (what
    :func:`background_peaks` needs). Peaks on chromosomes absent from the FASTA raise an error.

    Parameters
    ----------
    mdata
        MuData with peak coordinates in ``atac.var``.
    atac_mod
        ATAC modality name.
    fasta
        Genome FASTA (``.fa`` or ``.fa.gz``), read when the sequences are not in ``var``.
    sequence_key
        ``atac.var`` column holding (or receiving) the sequences.
    add_gc
        Also write the GC fraction to ``atac.var['gc']``.
    """
    atac = get_modality(mdata, atac_mod, role="ATAC") if _is_mudata(mdata) else mdata
    where = f"mdata[{atac_mod!r}]" if _is_mudata(mdata) else "adata"
    if sequence_key in atac.var and fasta is None:
        return atac.var[sequence_key].astype(str)
    if "peak_seq" in atac.uns and fasta is None and len(atac.uns["peak_seq"]) == atac.n_vars:
        return pd.Series(list(atac.uns["peak_seq"]), index=atac.var_names, name=sequence_key)
    if fasta is None:
        raise AttuneInputError(f"{where}.var[{sequence_key!r}] is missing; pass fasta= (a genome FASTA) to read "
                               "the peak sequences")
    for col in ("chrom", "start", "end"):
        if col not in atac.var:
            raise AttuneInputError(f"{where}.var[{col!r}] is missing (peak coordinates needed to cut sequences)")
    seqs = _read_fasta_regions(fasta, atac.var[["chrom", "start", "end"]])
    missing = [p for p, s in zip(atac.var_names, seqs) if s is None]
    if missing:
        raise AttuneInputError(f"{len(missing)} peak(s) on chromosomes absent from {fasta} (e.g. {missing[:3]})")
    s = pd.Series(seqs, index=atac.var_names, name=sequence_key)
    atac.var[sequence_key] = s.to_numpy()
    if add_gc:
        atac.var["gc_bias"] = [(q.count("G") + q.count("C")) / max(len(q), 1) for q in seqs]
    return s


@renamed_kwargs(atac_key="atac_mod")
def scan_motifs(mdata, *, peaks: Sequence[str] | None = None, motifs: Sequence | None = None, p_value: float = 5e-5,
                background: str = "even", atac_mod: str = "atac", fasta: str | os.PathLike | None = None,
                key_added: str | None = "motif_match") -> pd.DataFrame:
    """Motif occurrences in peak sequences (MOODS via ``pychromvar.match_motif``, p < ``p_value``).

    Parameters
    ----------
    peaks
        Peaks to scan (default all).
    motifs
        JASPAR motifs (default: all 841 of :func:`jaspar_motifs`).
    p_value
        MOODS p-value threshold (5e-5 in the paper).
    background
        Nucleotide background of the log-odds scores: ``"even"`` (0.25 each, pychromvar's default) or
        ``"subject"`` (base frequencies of the scanned sequences).
    fasta
        Genome FASTA when the sequences are not in ``atac.var["sequence"]`` (see :func:`peak_sequences`).
    key_added
        Store the table in ``mdata[atac_mod].uns[key_added]`` (None: only return).
    mdata
        MuData with the ATAC modality.
    atac_mod
        ATAC modality name.

    Returns
    -------
    DataFrame peaks x motif ids (uint8, 1 = at least one hit on either strand).
    """
    import anndata as ad

    atac = get_modality(mdata, atac_mod, role="ATAC") if _is_mudata(mdata) else mdata
    if not 0 < p_value < 1:
        raise AttuneInputError(f"p_value must be in (0, 1), got {p_value}")
    if background not in ("even", "subject"):
        raise AttuneInputError(f"background must be 'even' or 'subject', got {background!r}")
    seqs = peak_sequences(mdata, atac_mod=atac_mod, fasta=fasta)
    if peaks is not None:
        peaks = [str(p) for p in peaks]
        bad = [p for p in peaks if p not in seqs.index]
        if bad:
            raise AttuneInputError(f"{len(bad)} peak(s) not in mdata[{atac_mod!r}].var_names, e.g. {bad[:3]}")
        seqs = seqs.loc[peaks]
    motifs = jaspar_motifs() if motifs is None else list(motifs)
    if not motifs:
        raise AttuneInputError("no motifs given")
    import pychromvar

    tmp = ad.AnnData(X=sp.csr_matrix((1, len(seqs)), dtype=np.float32), var=pd.DataFrame(index=seqs.index))
    tmp.uns["peak_seq"] = [s.upper() for s in seqs.tolist()]
    module = sys.modules[pychromvar.match_motif.__module__]
    bar = getattr(module, "tqdm", None)
    module.tqdm = lambda it, *a, **k: it  # silence pychromvar's per-peak progress bar
    try:
        pychromvar.match_motif(tmp, motifs=motifs, p_value=p_value, background=background)
    finally:
        if bar is not None:
            module.tqdm = bar
    ids = [m.matrix_id for m in motifs]
    out = pd.DataFrame(np.asarray(tmp.varm["motif_match"], dtype=np.uint8), index=seqs.index,
                       columns=pd.Index(ids, name="motif_id"))
    if key_added is not None:
        atac.uns[key_added] = out
    return out


def motif_enrichment(match: pd.DataFrame, *, foreground: Sequence[str], background: Sequence[str] | None = None,
                     min_hits: int = 1) -> pd.DataFrame:
    """Enrichment of motifs in a peak group against a background (one-sided Fisher exact test, BH).

    Parameters
    ----------
    match
        Peaks x motifs 0/1 table from :func:`scan_motifs`.
    foreground
        Peaks of the group (e.g. a soft cluster's core).
    background
        Background peaks (default: every other scanned peak; foreground peaks are removed from it).
    min_hits
        Test only motifs with at least this many foreground hits (others get p = 1).

    Returns
    -------
    DataFrame ``motif_id, motif_name, k_fg, n_fg, k_bg, n_bg, frac_fg, frac_bg, odds_ratio, pval, pval_adj``,
    sorted by p-value.
    """
    from scipy.stats import fisher_exact
    from statsmodels.stats.multitest import multipletests

    fg = pd.Index([str(p) for p in foreground])
    bad = fg.difference(match.index)
    if len(bad):
        raise AttuneInputError(f"{len(bad)} foreground peak(s) were not scanned, e.g. {list(bad[:3])}")
    bgi = match.index.difference(fg) if background is None else pd.Index([str(p) for p in background]).difference(fg)
    bad = bgi.difference(match.index)
    if len(bad):
        raise AttuneInputError(f"{len(bad)} background peak(s) were not scanned, e.g. {list(bad[:3])}")
    if len(fg) == 0 or len(bgi) == 0:
        raise AttuneInputError("foreground and background must be non-empty")
    F = match.loc[fg].to_numpy() > 0
    B = match.loc[bgi].to_numpy() > 0
    k_fg, k_bg = F.sum(axis=0), B.sum(axis=0)
    n_fg, n_bg = len(fg), len(bgi)
    pvals, odds = np.ones(match.shape[1]), np.full(match.shape[1], np.nan)
    for j in range(match.shape[1]):
        table = [[k_fg[j], n_fg - k_fg[j]], [k_bg[j], n_bg - k_bg[j]]]
        odds[j] = ((k_fg[j] + 0.5) * (n_bg - k_bg[j] + 0.5)) / ((n_fg - k_fg[j] + 0.5) * (k_bg[j] + 0.5))
        if k_fg[j] >= min_hits:
            pvals[j] = fisher_exact(table, alternative="greater").pvalue
    ids = [str(c) for c in match.columns]
    try:
        names = motif_names(ids).to_numpy()
    except ImportError:  # pragma: no cover - pyjaspar missing
        names = np.array([""] * len(ids))
    out = pd.DataFrame({"motif_id": ids, "motif_name": names, "k_fg": k_fg, "n_fg": n_fg, "k_bg": k_bg, "n_bg": n_bg,
                        "frac_fg": k_fg / n_fg, "frac_bg": k_bg / n_bg, "odds_ratio": odds, "pval": pvals,
                        "pval_adj": multipletests(pvals, method="fdr_bh")[1]})
    return out.sort_values(["pval", "odds_ratio"], ascending=[True, False], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# regulon
# --------------------------------------------------------------------------------------------------
@renamed_kwargs(rna_key="rna_mod")
def motif_regulon(mdata, *, tf: str, motif_id: str, links: pd.DataFrame, match: pd.DataFrame,
                  groupby: str = "pt_group", min_abs_r: float = 0.5, sign: str = "both",
                  rna_mod: str = "rna", rna_layer: str | None = None) -> pd.DataFrame:
    """A motif-supported co-expression regulon of ``tf``: a light stand-in for SCENIC.

    Targets are genes whose pseudo-bulk expression (groups of ``groupby``) correlates with the TF's
    (Spearman ``|r| >= min_abs_r``; ``sign`` ``"positive"``, ``"negative"`` or ``"both"``, the paper kept
    negative modules for the repressor Gli3) **and** that have at least one linked peak (``links``, e.g.
    the high-attention links) carrying the TF's motif (``match[motif_id]``). SCENIC instead ranks
    co-expression with GRNBoost2 importances, prunes modules by RcisTarget motif enrichment around the TSS
    (genome-wide motif rankings) and scores cells with AUCell; here co-expression is a correlation, motif
    support comes from the gene's own linked peaks and no per-cell score is computed.

    Parameters
    ----------
    mdata
        MuData with the modalities and ``obs[groupby]``.
    tf
        Transcription factor (a gene of the RNA modality).
    motif_id
        JASPAR id of the TF's motif.
    links
        Gene-peak links (``gene``, ``peak``).
    match
        Peaks x motifs boolean table of :func:`scan_motifs`.
    groupby
        obs column with the pseudo-bulk groups.
    min_abs_r
        Smallest absolute Spearman correlation with the TF.
    sign
        ``"both"``, ``"positive"`` or ``"negative"`` correlations.
    rna_mod
        RNA modality name.
    rna_layer
        RNA layer with log-normalised expression (None: ``.X``).

    Returns
    -------
    DataFrame ``target, r, n_linked_peaks, n_motif_peaks, motif_peaks, importance`` (importance =
    ``|r| x n_motif_peaks / n_linked_peaks``), sorted by decreasing importance.
    """
    check_score_table(links, ("gene", "peak"), "links")
    if motif_id not in match.columns:
        raise AttuneInputError(f"motif {motif_id!r} is not a column of the motif match table")
    if sign not in ("both", "positive", "negative"):
        raise AttuneInputError(f"sign must be 'both', 'positive' or 'negative', got {sign!r}")
    rna = get_modality(mdata, rna_mod, role="RNA")
    if tf not in rna.var_names:
        raise AttuneInputError(f"tf {tf!r} not in mdata[{rna_mod!r}].var_names")
    prof = rna_group_profiles(mdata, groupby=groupby, rna_mod=rna_mod, rna_layer=rna_layer)
    Z = _rank_standardise(prof.to_numpy(dtype=float).T)
    r = pd.Series(Z.T @ Z[:, prof.index.get_loc(tf)], index=prof.index)
    lk = links[links["peak"].astype(str).isin(match.index)]
    hits = match[motif_id]
    rows = []
    for gene, sub in lk.groupby(lk["gene"].astype(str), sort=False):
        if gene == tf or gene not in r.index or not np.isfinite(r[gene]):
            continue
        pk = sub["peak"].astype(str).unique()
        mp = [p for p in pk if hits.get(p, 0) > 0]
        rr = float(r[gene])
        ok_sign = {"both": abs(rr) >= min_abs_r, "positive": rr >= min_abs_r, "negative": rr <= -min_abs_r}[sign]
        if mp and ok_sign:
            rows.append({"target": gene, "r": rr, "n_linked_peaks": len(pk), "n_motif_peaks": len(mp),
                         "motif_peaks": ";".join(mp), "importance": abs(rr) * len(mp) / len(pk)})
    cols = ["target", "r", "n_linked_peaks", "n_motif_peaks", "motif_peaks", "importance"]
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
