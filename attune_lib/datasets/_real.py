"""Convenience loaders for the real datasets: fetch (cache / pooch) + readers + annotation.

All loaders accept ``offline`` (``None`` reads ``$ATTUNE_OFFLINE``) and raise
:class:`~attune_lib.datasets.DataNotAvailableError` naming the file, URL and target path when a
file is neither cached nor downloadable. With ``ATTUNE_DATA_DIR=../shared/data`` they all work
offline.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._utils import AttuneInputError
from ._fetch import fetch
from ._readers import (
    annotate_genes,
    read_gene_annotation,
    read_h5ad_pair,
    read_h5mu,
    read_mtx_multiome,
)

__all__ = [
    "attune_release",
    "cortex",
    "load_cortex_metadata",
    "load_gene_annotation",
    "load_go_bp",
    "load_share_tac_metadata",
    "pbmc1k",
    "pbmc10k",
    "pbmc300",
    "read_gmt",
    "share_tac",
]

_GENOMES = {
    "hg38": ("hg38_annotation", "hg38_genes_orghs_2022-09.tsv"),
    "grch38": ("hg38_annotation", "hg38_genes_orghs_2022-09.tsv"),
    "mm10": ("mm10_annotation", "mm10_protein_coding_genes_ncbi_2016-02.tsv"),
    "grcm38": ("mm10_annotation", "mm10_protein_coding_genes_ncbi_2016-02.tsv"),
}
_SHARE_TAC_ORDER = ["TAC-1", "TAC-2", "IRS", "Medulla", "Hair Shaft-cuticle.cortex"]


def _set_attune_uns(mdata, **info) -> None:
    cur = mdata.uns.get("attune")
    cur = dict(cur) if isinstance(cur, dict) else {}
    cur.update(info)
    mdata.uns["attune"] = cur


def load_gene_annotation(
    genome: str = "hg38", *, offline: bool | None = None
) -> pd.DataFrame:
    """Gene annotation table for ``"hg38"`` (org.Hs.eg.db 3.16) or ``"mm10"`` (NCBI protein-coding).

    Parameters
    ----------
    genome
        ``"hg38"`` (or ``"GRCh38"``) or ``"mm10"`` (or ``"GRCm38"``).
    offline
        Refuse to download (None: ``$ATTUNE_OFFLINE``); a missing file then raises an error naming its path
        and URL.

    Returns
    -------
    pandas.DataFrame
        Columns ``symbol, chrom, start, end, strand, tss`` plus ``entrez_id`` (and ``ensembl_id``
        for hg38; ``';'``-separated when a gene has several).
    """
    key = str(genome).lower()
    if key not in _GENOMES:
        raise AttuneInputError(f"genome: expected 'hg38' or 'mm10', got {genome!r}")
    dataset, fname = _GENOMES[key]
    path = fetch(dataset, offline=offline)[fname]
    return read_gene_annotation(path)


_FASTA = {"hg38": ("hg38_genome", "hg38.fa.gz"), "grch38": ("hg38_genome", "hg38.fa.gz"),
          "mm10": ("mm10_genome", "mm10.fa.gz"), "grcm38": ("mm10_genome", "mm10.fa.gz")}


def genome_fasta(genome: str = "hg38", *, offline: bool | None = None) -> Path:
    """Path of the UCSC genome FASTA (``.fa.gz``) of ``"hg38"``/``"GRCh38"`` or ``"mm10"``/``"GRCm38"``.

    Resolved through the ``hg38_genome`` / ``mm10_genome`` manifests (about 0.9 GB, downloaded once
    into the data cache). Offline and not cached, the error names the file, its URL and where to put
    it. Pass the path to :func:`attune_lib.tl.peak_sequences` or ``scan_motifs(fasta=...)``.

    Parameters
    ----------
    genome
        ``"hg38"``/``"GRCh38"`` or ``"mm10"``/``"GRCm38"``.
    offline
        Refuse to download (None: ``$ATTUNE_OFFLINE``); a missing file then raises an error naming its path
        and URL.
    """
    key = str(genome).lower()
    if key not in _FASTA:
        raise AttuneInputError(f"genome: expected 'hg38'/'GRCh38' or 'mm10'/'GRCm38', got {genome!r}")
    dataset, fname = _FASTA[key]
    return fetch(dataset, offline=offline)[fname]


def pbmc1k(*, annotate: bool = True, offline: bool | None = None):
    """Real 10x Multiome PBMC subset: 1,000 cells, 45 genes, 174 peaks, raw counts (muon test data).

    Parameters
    ----------
    annotate
        Add hg38 gene coordinates to ``mdata["rna"].var`` (see
        :func:`~attune_lib.datasets.annotate_genes`). Peak coordinates are always parsed into
        ``mdata["atac"].var``.
    offline
        Never download (``None`` reads ``$ATTUNE_OFFLINE``).
    """
    path = fetch("pbmc1k_muon", offline=offline)["test_rna_atac.h5mu"]
    mdata = read_h5mu(path)
    if annotate:
        annotate_genes(mdata["rna"], load_gene_annotation("hg38", offline=offline))
    _set_attune_uns(
        mdata, dataset="pbmc1k_muon", genome="GRCh38", normalised_input=False
    )
    return mdata


def pbmc300(*, annotate: bool = True, offline: bool | None = None):
    """300 cells of the PBMC 10k Multiome (scPOEM example): 300 genes, 3,630 peaks.

    The values are already normalised (not counts): ``uns["attune"]["normalised_input"]`` is True,
    so preprocessing should skip count normalisation.

    Parameters
    ----------
    annotate
        Add gene coordinates to ``rna.var`` from the genome's annotation
        (:func:`attune_lib.datasets.annotate_genes`).
    offline
        Refuse to download (None: ``$ATTUNE_OFFLINE``); a missing file then raises an error naming its path
        and URL.
    """
    p = fetch("pbmc300_scpoem", offline=offline)
    mdata = read_mtx_multiome(
        p["Y.mtx"],
        p["X.mtx"],
        p["cell_data.csv"],
        p["gene_data.csv"],
        p["peak_data.csv"],
        transpose=False,
    )
    if annotate:
        annotate_genes(mdata["rna"], load_gene_annotation("hg38", offline=offline))
    _set_attune_uns(
        mdata, dataset="pbmc300_scpoem", genome="GRCh38", normalised_input=True
    )
    return mdata


def _add_metadata(mdata, meta: pd.DataFrame, *, what: str) -> None:
    """Copy metadata columns onto both modalities' ``obs`` for the cells they share."""
    import warnings

    cells = mdata["rna"].obs_names
    hit = cells.isin(meta.index)
    if not hit.any():
        warnings.warn(
            f"{what}: no cell of the data matches the metadata barcodes "
            f"(data e.g. {list(cells[:2])}, metadata e.g. {list(meta.index[:2])}); metadata not added",
            stacklevel=3,
        )
        return
    if not hit.all():
        warnings.warn(
            f"{what}: {int((~hit).sum())} of {len(cells)} cells have no metadata (left NaN)",
            stacklevel=3,
        )
    sub = meta.reindex(cells)
    for key in ("rna", "atac"):
        for col in sub.columns:
            mdata[key].obs[col] = sub[col].values
    if {"umap_1", "umap_2"}.issubset(sub.columns):
        for key in ("rna", "atac"):
            mdata[key].obsm["X_umap_original"] = sub[["umap_1", "umap_2"]].to_numpy(
                dtype=float
            )


def pbmc10k(
    *,
    source: str = "attune",
    annotate: bool = True,
    intersect: bool = False,
    offline: bool | None = None,
):
    """The full PBMC 10k Multiome: ``source="attune"`` (figshare files of the original Attune) or
    ``"glue"`` (GLUE-preprocessed, with ``cell_type`` labels).

    Large downloads (hundreds of MB); offline and uncached, the error names each file, its URL and
    where to place it.

    Parameters
    ----------
    source
        ``"attune"`` or ``"glue"`` (see above).
    annotate
        Add gene coordinates to ``rna.var`` from the genome's annotation
        (:func:`attune_lib.datasets.annotate_genes`).
    intersect
        Keep only the cells present in both modalities (otherwise differing cells raise an error).
    offline
        Refuse to download (None: ``$ATTUNE_OFFLINE``); a missing file then raises an error naming its path
        and URL.
    """
    choices = {
        "attune": ("pbmc10k_attune", "ad_rna.h5ad", "ad_atac.h5ad"),
        "glue": (
            "pbmc10k_glue",
            "10x-Multiome-Pbmc10k-RNA.h5ad",
            "10x-Multiome-Pbmc10k-ATAC.h5ad",
        ),
    }
    if source not in choices:
        raise AttuneInputError(f"source: expected 'attune' or 'glue', got {source!r}")
    name, rna_f, atac_f = choices[source]
    p = fetch(name, offline=offline)
    mdata = read_h5ad_pair(p[rna_f], p[atac_f], intersect=intersect)
    if annotate:
        annotate_genes(mdata["rna"], load_gene_annotation("hg38", offline=offline))
    _set_attune_uns(mdata, dataset=name, genome="GRCh38")
    return mdata


def share_tac(
    *,
    annotate: bool = True,
    metadata: bool = True,
    intersect: bool = False,
    offline: bool | None = None,
):
    """SHARE-seq mouse skin TAC subset (mm10) with cell types, pseudotime and UMAP in ``obs``.

    Parameters
    ----------
    annotate
        Add gene coordinates to ``rna.var`` from the genome's annotation
        (:func:`attune_lib.datasets.annotate_genes`).
    metadata
        Add the released cell metadata (cell types, pseudotime, UMAP) to ``obs``.
    intersect
        Keep only the cells present in both modalities (otherwise differing cells raise an error).
    offline
        Refuse to download (None: ``$ATTUNE_OFFLINE``); a missing file then raises an error naming its path
        and URL.
    """
    return _released_pair(
        "share_tac", "adata_rna_SHARE_TAC.h5ad", "adata_atac_SHARE_TAC.h5ad", assembly="mm10",
        genome="mm10", metadata=load_share_tac_metadata if metadata else None, annotate=annotate,
        intersect=intersect, offline=offline)


def cortex(
    *,
    annotate: bool = True,
    metadata: bool = True,
    intersect: bool = False,
    offline: bool | None = None,
):
    """Fetal human cortex multiome (Trevino et al. 2021) with clusters and pseudotime in ``obs``.

    Parameters
    ----------
    annotate
        Add gene coordinates to ``rna.var`` from the genome's annotation
        (:func:`attune_lib.datasets.annotate_genes`).
    metadata
        Add the released cell metadata (cell types, pseudotime, UMAP) to ``obs``.
    intersect
        Keep only the cells present in both modalities (otherwise differing cells raise an error).
    offline
        Refuse to download (None: ``$ATTUNE_OFFLINE``); a missing file then raises an error naming its path
        and URL.
    """
    return _released_pair(
        "cortex_trevino", "greenleaf-final-RNA_wox_filter_hvg_rm_dc1r3_r1.h5ad",
        "greenleaf-final-ATAC_filter_rm_dc1r3_r1.h5ad", assembly="hg38", genome="GRCh38",
        metadata=load_cortex_metadata if metadata else None, annotate=annotate, intersect=intersect,
        offline=offline)


def _released_pair(name, rna_file, atac_file, *, assembly, genome, metadata, annotate, intersect, offline):
    """Read a dataset released as an RNA + ATAC ``.h5ad`` pair, annotate genes and add its metadata."""
    p = fetch(name, offline=offline)
    mdata = read_h5ad_pair(p[rna_file], p[atac_file], intersect=intersect)
    if annotate:
        annotate_genes(mdata["rna"], load_gene_annotation(assembly, offline=offline))
    if metadata is not None:
        _add_metadata(mdata, metadata(offline=offline), what=name)
    _set_attune_uns(mdata, dataset=name, genome=genome)
    return mdata


def _read_list(path: Path) -> list[str]:
    return [
        line.strip() for line in Path(path).read_text().splitlines() if line.strip()
    ]


def load_share_tac_metadata(*, offline: bool | None = None) -> pd.DataFrame:
    """Cell metadata of the SHARE-seq TAC subset released with the original Attune (6,436 cells).

    Parameters
    ----------
    offline
        Refuse to download (None: ``$ATTUNE_OFFLINE``); a missing file then raises an error naming its path
        and URL.

    Returns
    -------
    pandas.DataFrame
        Indexed by barcode: ``cell_type`` (categorical, TAC-1 -> TAC-2 -> IRS / Medulla / Hair
        Shaft), ``pseudotime`` (Palantir), ``umap_1``, ``umap_2``.
    """
    files = [
        "share_tac/celltype.csv",
        "share_tac/pseudotime_palantir.csv",
        "share_tac/umap.csv",
    ]
    p = fetch("attune_release", files, offline=offline)
    ct = pd.read_csv(p[files[0]], dtype={"barcode": str}).set_index("barcode")
    pt = pd.read_csv(
        p[files[1]],
        header=None,
        names=["barcode", "pseudotime"],
        dtype={"barcode": str},
    )
    pt = pt.set_index("barcode")
    um = pd.read_csv(p[files[2]], dtype={"barcode": str}).set_index("barcode")
    for f, df in zip(files, (ct, pt, um)):
        if df.index.duplicated().any() or set(df.index) != set(ct.index):
            raise AttuneInputError(f"{p[f]}: barcodes do not match {p[files[0]]}")
    cats = [c for c in _SHARE_TAC_ORDER if c in set(ct["celltype"])]
    cats += sorted(set(ct["celltype"]) - set(cats))
    out = pd.DataFrame(index=ct.index)
    out["cell_type"] = pd.Categorical(ct["celltype"], categories=cats)
    out["pseudotime"] = pt.loc[out.index, "pseudotime"].astype(float).to_numpy()
    out["umap_1"] = um.loc[out.index, "X"].astype(float).to_numpy()
    out["umap_2"] = um.loc[out.index, "Y"].astype(float).to_numpy()
    return out


def load_cortex_metadata(*, offline: bool | None = None) -> pd.DataFrame:
    """Cell metadata of the fetal cortex dataset released with the original Attune (4,693 cells).

    Parameters
    ----------
    offline
        Refuse to download (None: ``$ATTUNE_OFFLINE``); a missing file then raises an error naming its path
        and URL.

    Returns
    -------
    pandas.DataFrame
        Indexed by cell: ``cell_type`` (categorical, from ``cluster``), ``batch`` (categorical),
        ``pseudotime`` (scVelo ``velo_s_norm_pseudotime``), ``latent_time``, ``n_counts``, the
        remaining original columns, and ``umap_1``, ``umap_2``.
    """
    files = ["cortex/pseudotime.txt", "cortex/umap.txt"]
    p = fetch("attune_release", files, offline=offline)
    meta = pd.read_csv(p[files[0]], sep="\t", index_col=0)
    um = pd.read_csv(p[files[1]], sep="\t", index_col=0)
    if not meta.index.equals(um.index):
        raise AttuneInputError(f"{p[files[1]]}: cells do not match {p[files[0]]}")
    need = ["cluster", "batch", "velo_s_norm_pseudotime", "latent_time"]
    missing = [c for c in need if c not in meta.columns]
    if missing:
        raise AttuneInputError(f"{p[files[0]]}: missing column(s) {missing}")
    out = pd.DataFrame(index=meta.index.astype(str))
    out["cell_type"] = pd.Categorical(meta["cluster"].astype(str).to_numpy())
    out["batch"] = pd.Categorical(meta["batch"].astype(str).to_numpy())
    out["pseudotime"] = meta["velo_s_norm_pseudotime"].astype(float).to_numpy()
    out["latent_time"] = meta["latent_time"].astype(float).to_numpy()
    for col in meta.columns:
        if col not in need and col not in out.columns:
            out[col] = meta[col].to_numpy()
    out["umap_1"] = um.iloc[:, 0].astype(float).to_numpy()
    out["umap_2"] = um.iloc[:, 1].astype(float).to_numpy()
    return out


def attune_release(
    dataset: str = "pbmc10k", *, offline: bool | None = None
) -> dict[str, Any]:
    """Results released with the original Attune (melobio/Attune at a fixed commit).

    Parameters
    ----------
    dataset
        ``"pbmc10k"``, ``"share_tac"`` or ``"cortex"``.
    offline
        Refuse to download (None: ``$ATTUNE_OFFLINE``); a missing file then raises an error naming its path
        and URL.

    Returns
    -------
    dict
        ``pbmc10k``: ``rna_embedding``, ``atac_embedding`` (float32, 11,904 x 128, L2-normalised;
        note 6 RNA rows and 1 ATAC row are all-zero vectors in the released file),
        ``cell_ids`` (barcodes), ``metrics`` (DataFrame per epoch; epoch-20 FOSCTTM 0.0082088),
        ``genes`` (1,996), ``peaks`` (28,548), ``window`` (CSR genes x peaks, 1 inside 1.2 Mb),
        ``cross_attention`` (DataFrame ``gene, peak, score``).
        ``share_tac``: ``genes`` (2,000), ``peaks``, ``metadata`` (see
        :func:`load_share_tac_metadata`).
        ``cortex``: ``rna_embedding``, ``atac_embedding``, ``rna_shared``, ``atac_shared``
        (4,352 x 128), ``row_ids`` (int; numeric row ids, not barcodes), ``metadata`` (see
        :func:`load_cortex_metadata`).
    """
    import scipy.io
    import scipy.sparse as sp

    if dataset == "pbmc10k":
        files = [
            "pbmc10k/embeddings_epoch20.npz",
            "pbmc10k/pretrain_metrics_by_epoch.csv",
            "pbmc10k/pbmc_gene.list",
            "pbmc10k/pbmc_peak.list",
            "pbmc10k/pbmc_window.mtx",
            "pbmc10k/cross_attention.csv",
        ]
        p = fetch("attune_release", files, offline=offline)
        with np.load(p[files[0]], allow_pickle=False) as z:
            emb = {k: z[k] for k in z.files}
        genes, peaks = _read_list(p[files[2]]), _read_list(p[files[3]])
        window = sp.csr_matrix(scipy.io.mmread(str(p[files[4]])), dtype=np.float32)
        if window.shape != (len(genes), len(peaks)):
            raise AttuneInputError(
                f"{p[files[4]]}: shape {window.shape} does not match {len(genes)} genes x {len(peaks)} peaks"
            )
        attn = pd.read_csv(p[files[5]]).rename(
            columns={"variable": "peak", "value": "score"}
        )
        return {
            "rna_embedding": emb["cell_embed_RNA"],
            "atac_embedding": emb["cell_embed_ATAC"],
            "cell_ids": emb["RNA_id"].astype(str),
            "metrics": pd.read_csv(p[files[1]], index_col=0),
            "genes": genes,
            "peaks": peaks,
            "window": window,
            "cross_attention": attn,
        }
    if dataset == "share_tac":
        files = ["share_tac/share_gene.list", "share_tac/share_peak.list"]
        p = fetch("attune_release", files, offline=offline)
        return {
            "genes": _read_list(p[files[0]]),
            "peaks": _read_list(p[files[1]]),
            "metadata": load_share_tac_metadata(offline=offline),
        }
    if dataset == "cortex":
        f = "cortex/embeddings_epoch20.npz"
        p = fetch("attune_release", [f], offline=offline)
        with np.load(p[f], allow_pickle=False) as z:
            emb = {k: z[k] for k in z.files}
        return {
            "rna_embedding": emb["cell_embed_RNA"],
            "atac_embedding": emb["cell_embed_ATAC"],
            "rna_shared": emb.get("shared_RNA"),
            "atac_shared": emb.get("shared_ATAC"),
            "row_ids": emb["RNA_id"].astype(np.int64),
            "metadata": load_cortex_metadata(offline=offline),
        }
    raise AttuneInputError(
        f"dataset: expected 'pbmc10k', 'share_tac' or 'cortex', got {dataset!r}"
    )


def read_gmt(
    path: str | os.PathLike,
    *,
    min_size: int | None = None,
    max_size: int | None = None,
    with_descriptions: bool = False,
):
    """Read a GMT gene-set file (``name<TAB>description<TAB>gene...``).

    Parameters
    ----------
    path
        The ``.gmt`` file.
    min_size, max_size
        Keep only sets with at least / at most this many (unique) genes.
    with_descriptions
        Also return ``{set name: description}`` (the second column, e.g. the GO id).

    Returns
    -------
    dict or tuple of dict
        ``{set name: [genes]}`` in file order (genes de-duplicated), and the descriptions when
        ``with_descriptions``.
    """
    path = Path(path)
    if not path.is_file():
        raise AttuneInputError(f"{path}: GMT file not found")
    sets: dict[str, list[str]] = {}
    descriptions: dict[str, str] = {}
    seen: set[str] = set()
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 3:
                raise AttuneInputError(
                    f"{path}: line {lineno}: expected 'name<TAB>description<TAB>genes...', "
                    f"got {len(fields)} field(s)"
                )
            name = fields[0].strip()
            if name in descriptions or name in seen:
                raise AttuneInputError(
                    f"{path}: line {lineno}: duplicated gene set name {name!r}"
                )
            seen.add(name)
            genes = list(dict.fromkeys(g.strip() for g in fields[2:] if g.strip()))
            if min_size is not None and len(genes) < min_size:
                continue
            if max_size is not None and len(genes) > max_size:
                continue
            sets[name] = genes
            descriptions[name] = fields[1].strip()
    if not sets:
        raise AttuneInputError(
            f"{path}: no gene sets (after size filters {min_size}-{max_size})"
        )
    return (sets, descriptions) if with_descriptions else sets


def load_go_bp(
    *,
    source: str = "orghs",
    min_size: int | None = None,
    max_size: int | None = None,
    offline: bool | None = None,
) -> dict[str, list[str]]:
    """GO Biological Process gene sets (human symbols) as ``{name: [genes]}``.

    Parameters
    ----------
    source
        ``"orghs"``: 5,233 sets derived from org.Hs.eg.db 3.16 / GO 2022-07 (shipped in the shared
        cache); ``"msigdb"``: MSigDB C5 GO:BP v2023.1 (downloaded; needs network).
    min_size, max_size
        Size filters, see :func:`read_gmt`.
    offline
        Refuse to download (None: ``$ATTUNE_OFFLINE``); a missing file then raises an error naming its path
        and URL.
    """
    names = {
        "orghs": "go_bp_hs_2022-07.gmt",
        "msigdb": "c5.go.bp.v2023.1.Hs.symbols.gmt",
    }
    if source not in names:
        raise AttuneInputError(f"source: expected 'orghs' or 'msigdb', got {source!r}")
    path = fetch("go_bp", [names[source]], offline=offline)[names[source]]
    return read_gmt(path, min_size=min_size, max_size=max_size)
