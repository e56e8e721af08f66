"""One reader entry point, :func:`read`, for every layout users hold; genome builds and input states.

Layouts recognised (in this order):

1. a ``.h5mu`` file;
2. a 10x Cell Ranger (ARC) ``.h5`` matrix file;
3. a 10x matrix folder: ``matrix.mtx[.gz]``, ``barcodes.tsv[.gz]`` and ``features.tsv[.gz]``
   (or ``genes.tsv``), whose third column is ``feature_type`` ("Gene Expression" / "Peaks") and
   whose 4th-6th columns, when present, give the peak coordinates; a Cell Ranger ``outs/`` folder
   holding ``filtered_feature_bc_matrix/`` (or its ``.h5``) works too;
4. a pair of ``.h5ad`` files (a sequence of two paths, or a folder holding exactly one RNA and one
   ATAC ``.h5ad``);
5. a MatrixMarket pair: a folder with two ``.mtx`` files plus tables of cell, gene and peak names
   (e.g. scPOEM's ``X.mtx``, ``Y.mtx``, ``cell_data.csv``, ``gene_data.csv``, ``peak_data.csv``).

Everything ends in :func:`~attune_lib.datasets.build_mudata`, so the same validation applies to all.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._access import set_input_state
from .._utils import AttuneInputError, examples
from ._readers import (
    build_mudata,
    read_10x_multiome_h5,
    read_h5ad_pair,
    read_h5mu,
    read_mtx_files,
    read_mtx_multiome,
)

logger = logging.getLogger("attune_lib")

__all__ = ["read", "describe", "read_10x_mtx_folder", "normalize_genome", "normalize_chrom_names",
           "check_genome_fit"]

#: accepted genome names -> canonical UCSC name
GENOME_ALIASES = {
    "hg38": "hg38", "grch38": "hg38", "hg19": "hg19", "grch37": "hg19",
    "mm10": "mm10", "grcm38": "mm10", "mm39": "mm39", "grcm39": "mm39", "mm9": "mm9", "ncbim37": "mm9",
}
_SPECIES = {"hg38": "human", "hg19": "human", "mm10": "mouse", "mm39": "mouse", "mm9": "mouse"}
# builds with a gene annotation table among the manifests
_ANNOTATED = ("hg38", "mm10")
_BARE_CHROM = re.compile(r"^(\d{1,2}|X|Y|M|MT)$", re.IGNORECASE)
_GZ = (".gz",)


def normalize_genome(genome: str | None) -> str | None:
    """Canonical UCSC name of a genome build (``"GRCh38"`` -> ``"hg38"``); None stays None.

    Parameters
    ----------
    genome
        A build name such as ``"hg38"``, ``"GRCh38"``, ``"hg19"``, ``"GRCh37"``, ``"mm10"``.
    """
    if genome is None:
        return None
    key = str(genome).strip().lower()
    if key not in GENOME_ALIASES:
        raise AttuneInputError(
            f"genome={genome!r} is not a known build; choose one of {sorted(set(GENOME_ALIASES.values()))} "
            "(Ensembl names such as 'GRCh38' are accepted)")
    return GENOME_ALIASES[key]


def normalize_chrom_names(chroms) -> np.ndarray:
    """UCSC chromosome names, as in the gene annotation tables: ``"1"`` -> ``"chr1"``, ``"MT"`` -> ``"chrM"``.

    Names that already start with ``chr`` and unplaced contigs (``"GL000219.1"``) are left as they are.

    Parameters
    ----------
    chroms
        Chromosome names.
    """
    out = []
    for c in np.asarray(chroms, dtype=object).astype(str):
        if _BARE_CHROM.match(c):
            c = c.upper()
            c = "chrM" if c in ("M", "MT") else f"chr{c}"
        elif c == "chrMT":
            c = "chrM"
        out.append(c)
    return np.asarray(out, dtype=object)


# --------------------------------------------------------------------------------------------
# 10x matrix folder


def _find(folder: Path, stems: Sequence[str]) -> Path | None:
    for stem in stems:
        for suffix in ("", ".gz"):
            p = folder / f"{stem}{suffix}"
            if p.is_file():
                return p
    return None


def _read_table(path: Path, what: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False,
                         compression="gzip" if path.name.endswith(".gz") else None)
    except pd.errors.EmptyDataError:
        raise AttuneInputError(f"{path}: {what} file is empty") from None
    except (OSError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise AttuneInputError(f"{path}: could not be read as a tab-separated {what} table ({exc})") from None
    if df.empty:
        raise AttuneInputError(f"{path}: {what} file is empty")
    return df


def read_10x_mtx_folder(path: str | os.PathLike, *, make_unique: bool = True):
    """Read a 10x Cell Ranger ARC ``filtered_feature_bc_matrix/`` folder into a MuData.

    Parameters
    ----------
    path
        Folder with ``matrix.mtx[.gz]`` (features x cells), ``barcodes.tsv[.gz]`` and
        ``features.tsv[.gz]``. The features table has the columns ``id, name, feature_type`` and,
        in ARC output, ``chrom, start, end``. ``"Gene Expression"`` features become ``"rna"``
        (named by symbol, ids in ``var["gene_ids"]``), ``"Peaks"`` become ``"atac"``, with
        coordinates from the columns when present, else parsed from the names.
    make_unique
        Append ``-1``, ``-2``... to repeated gene symbols (with a warning) instead of raising.

    Returns
    -------
    mudata.MuData
    """
    import anndata as ad

    folder = Path(path)
    if not folder.is_dir():
        raise AttuneInputError(f"{folder}: 10x matrix folder not found")
    files = {
        "matrix": _find(folder, ["matrix.mtx"]),
        "barcodes": _find(folder, ["barcodes.tsv"]),
        "features": _find(folder, ["features.tsv", "genes.tsv"]),
    }
    missing = [k for k, v in files.items() if v is None]
    if missing:
        names = [f"{m}.tsv[.gz]" if m != "matrix" else "matrix.mtx[.gz]" for m in missing]
        raise AttuneInputError(f"{folder}: not a 10x matrix folder; missing {', '.join(names)}")
    feats = _read_table(files["features"], "features")
    barcodes = _read_table(files["barcodes"], "barcodes").iloc[:, 0].to_numpy(dtype=object)
    if feats.shape[1] < 3:
        raise AttuneInputError(
            f"{files['features']}: expected the columns id, name, feature_type (found {feats.shape[1]} column(s)); "
            "a gene-expression-only folder has no peaks")
    M = read_mtx_files(files["matrix"])
    n_feat, n_cells = len(feats), len(barcodes)
    if M.shape == (n_feat, n_cells):
        X = sp.csr_matrix(M.T)
    elif M.shape == (n_cells, n_feat):
        X = M
    else:
        raise AttuneInputError(
            f"{files['matrix']}: shape {M.shape} does not match {n_feat} features "
            f"({files['features'].name}) x {n_cells} barcodes ({files['barcodes'].name})")
    ids, names, ftype = (feats.iloc[:, i].to_numpy(dtype=object) for i in range(3))
    is_rna, is_atac = ftype == "Gene Expression", ftype == "Peaks"
    if not is_rna.any() or not is_atac.any():
        raise AttuneInputError(
            f"{files['features']}: column 3 (feature_type) must contain both 'Gene Expression' and 'Peaks'; "
            f"found {sorted(set(ftype))[:5]}")
    other = sorted(set(ftype[~(is_rna | is_atac)]))
    if other:
        warnings.warn(f"{files['features']}: ignoring features of type {other}", stacklevel=2)
    obs = pd.DataFrame(index=pd.Index(barcodes, dtype=object))
    rna_var = pd.DataFrame({"gene_ids": ids[is_rna], "feature_types": ftype[is_rna]},
                           index=pd.Index(names[is_rna], dtype=object))
    atac_var = pd.DataFrame({"feature_types": ftype[is_atac]}, index=pd.Index(ids[is_atac], dtype=object))
    if feats.shape[1] >= 6:
        coords = feats.loc[is_atac, [3, 4, 5]]
        start = pd.to_numeric(coords[4], errors="coerce")
        end = pd.to_numeric(coords[5], errors="coerce")
        bad = start.isna().to_numpy() | end.isna().to_numpy() | (coords[3] == "").to_numpy()
        if bad.any():
            raise AttuneInputError(
                f"{files['features']}: {int(bad.sum())} peak row(s) have no valid chrom/start/end in columns 4-6, "
                f"e.g. {examples(ids[is_atac][bad])}")
        atac_var["chrom"] = coords[3].to_numpy(dtype=object)
        atac_var["start"] = start.to_numpy(np.int64)
        atac_var["end"] = end.to_numpy(np.int64)
        canon = pd.Index(atac_var["chrom"].astype(str) + ":" + atac_var["start"].astype(str) + "-"
                         + atac_var["end"].astype(str), dtype=object)
        if not canon.equals(atac_var.index):
            atac_var["original_name"] = np.asarray(atac_var.index, dtype=object)
            atac_var.index = canon
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*names are not unique.*")
        rna = ad.AnnData(X=X[:, np.flatnonzero(is_rna)], obs=obs.copy(), var=rna_var)
        atac = ad.AnnData(X=X[:, np.flatnonzero(is_atac)], obs=obs.copy(), var=atac_var)
    if make_unique and rna.var_names.duplicated().any():
        n = int(rna.var_names.duplicated().sum())
        warnings.warn(f"{files['features']}: {n} repeated gene symbol(s) made unique by suffixes, "
                      f"e.g. {examples(rna.var_names[rna.var_names.duplicated()].unique())}", stacklevel=2)
        rna.var_names_make_unique()
    src = str(files["matrix"])
    return build_mudata(rna, atac, sources={"rna": src, "atac": src})


# --------------------------------------------------------------------------------------------
# layout detection


def _listing(folder: Path, k: int = 12) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return (", ".join(names[:k]) + (f", ... ({len(names)} entries)" if len(names) > k else "")) or "nothing"


def _h5ad_pair_in(folder: Path) -> tuple[Path, Path] | None:
    files = sorted(folder.glob("*.h5ad"))
    if len(files) != 2:
        return None
    rna = [f for f in files if re.search(r"rna|gex|expression", f.name, re.I)]
    atac = [f for f in files if re.search(r"atac|peak|chromatin|mod2", f.name, re.I)]
    if len(rna) == 1 and len(atac) == 1 and rna[0] != atac[0]:
        return rna[0], atac[0]
    return None


def _mtx_pair_in(folder: Path) -> dict[str, Path] | None:
    mtx = sorted(p for p in folder.iterdir() if p.name.endswith((".mtx", ".mtx.gz")))
    tables = [p for p in folder.iterdir() if re.search(r"\.(csv|tsv|txt)(\.gz)?$", p.name)]

    def pick(pattern):
        hits = [p for p in tables if re.search(pattern, p.name, re.I)]
        return hits[0] if len(hits) == 1 else None

    cells, genes, peaks = pick(r"cell|barcode"), pick(r"gene"), pick(r"peak|region")
    if len(mtx) != 2 or not (cells and genes and peaks):
        return None
    return {"mtx": mtx, "cells": cells, "genes": genes, "peaks": peaks}


def _read_mtx_pair(found: dict[str, Path]):
    """Assign the two matrices to RNA and ATAC by which name table their shape fits."""
    from ._readers import read_names

    n_cells = len(read_names(found["cells"], what="cell barcodes"))
    n_genes = len(read_names(found["genes"], what="gene names"))
    n_peaks = len(read_names(found["peaks"], what="peak names"))
    shapes = {p: read_mtx_files(p).shape for p in found["mtx"]}
    rna = [p for p, s in shapes.items() if s in ((n_cells, n_genes), (n_genes, n_cells))]
    atac = [p for p, s in shapes.items() if s in ((n_cells, n_peaks), (n_peaks, n_cells))]
    if len(rna) != 1 or len(atac) != 1 or rna[0] == atac[0]:
        raise AttuneInputError(
            f"MatrixMarket pair: cannot tell which of {[p.name for p in shapes]} (shapes {list(shapes.values())}) "
            f"holds the {n_genes} genes of {found['genes'].name} and which the {n_peaks} peaks of "
            f"{found['peaks'].name}; call read_mtx_multiome(...) with the files named")
    return read_mtx_multiome(rna[0], atac[0], found["cells"], found["genes"], found["peaks"])


def _dispatch(path, intersect: bool):
    """(MuData, layout name) for any supported layout, or an error listing what was tried."""
    tried = ["a .h5mu file", "a 10x .h5 matrix file", "a 10x matrix folder (matrix.mtx[.gz], barcodes.tsv[.gz], "
             "features.tsv[.gz])", "a Cell Ranger outs/ folder", "a pair of .h5ad files (two paths, or a folder "
             "with one RNA and one ATAC .h5ad)", "a MatrixMarket pair (two .mtx + cell/gene/peak name tables)"]
    if isinstance(path, (list, tuple)):
        if len(path) != 2:
            raise AttuneInputError(f"path: a sequence must hold two .h5ad files (RNA, ATAC), got {len(path)} items")
        return read_h5ad_pair(path[0], path[1], intersect=intersect), "h5ad pair"
    p = Path(path).expanduser()
    if not p.exists():
        raise AttuneInputError(f"{p}: no such file or folder")
    if p.is_file():
        name = p.name.lower()
        if name.endswith(".h5mu"):
            return read_h5mu(p, intersect=intersect), "h5mu"
        if name.endswith(".h5"):
            return read_10x_multiome_h5(p), "10x h5"
        raise AttuneInputError(
            f"{p}: file type not recognised. Tried: {'; '.join(tried)}. For a single .h5ad, pass the RNA and "
            "ATAC files together: read([rna_path, atac_path])")
    # folders
    if _find(p, ["matrix.mtx"]) is not None:
        return read_10x_mtx_folder(p), "10x matrix folder"
    for sub in ("filtered_feature_bc_matrix", "raw_feature_bc_matrix"):
        if (p / sub).is_dir() and _find(p / sub, ["matrix.mtx"]) is not None:
            return read_10x_mtx_folder(p / sub), "10x matrix folder"
        if (p / f"{sub}.h5").is_file():
            return read_10x_multiome_h5(p / f"{sub}.h5"), "10x h5"
    h5mu = sorted(p.glob("*.h5mu"))
    if len(h5mu) == 1:
        return read_h5mu(h5mu[0], intersect=intersect), "h5mu"
    pair = _h5ad_pair_in(p)
    if pair is not None:
        return read_h5ad_pair(*pair, intersect=intersect), "h5ad pair"
    found = _mtx_pair_in(p)
    if found is not None:
        return _read_mtx_pair(found), "MatrixMarket pair"
    raise AttuneInputError(
        f"{p}: no multiome layout recognised. Tried: {'; '.join(tried)}. Found: {_listing(p)}")


# --------------------------------------------------------------------------------------------
# genome


def _tss_fraction(chrom: np.ndarray, start: np.ndarray, end: np.ndarray, ann: pd.DataFrame,
                  shift: int = 0, flank: int = 1000) -> float:
    """Fraction of peaks within ``flank`` bp of an annotated TSS (peaks shifted by ``shift`` bp)."""
    hit = np.zeros(len(chrom), dtype=bool)
    for c, tss in ann.groupby("chrom")["tss"]:
        sel = np.flatnonzero(chrom == c)
        if not sel.size:
            continue
        t = np.sort(tss.to_numpy(np.int64))
        lo, hi = start[sel] + shift - flank, end[sel] + shift + flank
        hit[sel] = np.searchsorted(t, hi, side="right") > np.searchsorted(t, lo, side="left")
    return float(hit.mean()) if len(hit) else 0.0


def check_genome_fit(mdata, genome: str | None = None, *, atac_mod: str = "atac", annotation=None,
                     min_enrichment: float = 2.0) -> dict:
    """Check that the peaks fit a build's gene annotation, and name the likely build when they do not.

    Open chromatin is strongly enriched at promoters, so the fraction of peaks within 1 kb of an
    annotated TSS is far above the same fraction for the peaks shifted by 100 kb (a background
    that keeps the peaks' number, widths and chromosomes). When the enrichment is below
    ``min_enrichment``, a WARNING names the likely build: the one of the locally available
    annotations that fits best, or another build of the species told by the chromosome names.

    Parameters
    ----------
    mdata
        MuData whose ``mdata[atac_mod].var`` has ``chrom``, ``start``, ``end``.
    genome
        Build the peaks are claimed to be on (default: ``mdata.uns["attune"]["genome"]``).
    atac_mod
        ATAC modality name.
    annotation
        Annotation table of ``genome`` (default: :func:`load_gene_annotation`, offline; the check
        is skipped, with an INFO line, when none is available).
    min_enrichment
        Promoter enrichment below which the fit is called poor.

    Returns
    -------
    dict
        ``genome``, ``tss_fraction``, ``background``, ``enrichment``, ``fits`` (bool or None when
        not checked), ``likely`` (the likely build, or "") and ``message``.
    """
    from ._real import load_gene_annotation

    atac = mdata[atac_mod]
    genome = normalize_genome(genome or dict(mdata.uns.get("attune", {})).get("genome"))
    out = {"genome": genome or "", "tss_fraction": np.nan, "background": np.nan, "enrichment": np.nan,
           "fits": None, "likely": "", "message": ""}
    if not {"chrom", "start", "end"}.issubset(atac.var.columns):
        out["message"] = "peaks have no coordinates; genome fit not checked"
        return out
    chrom = atac.var["chrom"].astype(str).to_numpy()
    start = atac.var["start"].to_numpy(np.int64)
    end = atac.var["end"].to_numpy(np.int64)

    def load(build):
        try:
            return load_gene_annotation(build, offline=True)
        except AttuneInputError:
            return None

    def enrichment(ann):
        f = _tss_fraction(chrom, start, end, ann)
        bg = np.mean([_tss_fraction(chrom, start, end, ann, shift=s) for s in (-100_000, 100_000)])
        return f, bg, f / max(bg, 1.0 / max(len(chrom), 1))

    ann = annotation if annotation is not None else (load(genome) if genome in _ANNOTATED else None)
    if ann is None:
        out["message"] = (f"no gene annotation of {genome or 'an unknown build'} available offline; "
                          "genome fit not checked")
        logger.info("check_genome_fit: %s", out["message"])
        return out
    f, bg, enr = enrichment(ann)
    out.update(tss_fraction=f, background=bg, enrichment=enr, fits=bool(enr >= min_enrichment))
    if out["fits"]:
        out["message"] = f"{f:.1%} of peaks lie within 1 kb of a {genome} TSS ({enr:.1f}x background)"
        return out
    scores = {}
    for other in _ANNOTATED:
        if other != genome and (a := load(other)) is not None:
            scores[other] = enrichment(a)[2]
    best = max(scores, key=scores.get) if scores else None
    human = bool(np.isin(chrom, ["chr20", "chr21", "chr22", "20", "21", "22"]).any())
    if best is not None and scores[best] >= min_enrichment:
        likely = best
    else:
        species = "human" if human else _SPECIES.get(genome or "", "")
        alts = [b for b, s in _SPECIES.items() if s == species and b != genome] if species else []
        likely = " or ".join(alts) if alts else "another build"
    out["likely"] = likely
    out["message"] = (
        f"peaks fit the {genome} gene annotation poorly: {f:.1%} lie within 1 kb of a TSS, against "
        f"{bg:.1%} for shifted peaks ({enr:.1f}x; real peaks are usually several-fold enriched). The peaks are "
        f"likely on {likely}; pass genome= with the right build (and a matching annotation) before any "
        "windowed analysis")
    logger.warning("check_genome_fit: %s", out["message"])
    return out


# --------------------------------------------------------------------------------------------
# entry point


def read(
    path,
    *,
    genome: str | None = None,
    input_state: str | Mapping[str, str] | None = None,
    intersect: bool = False,
    annotate: bool = True,
    check_genome: bool = True,
):
    """Read paired RNA + ATAC data from any supported layout into a validated MuData.

    The modalities are ``mdata["rna"]`` and ``mdata["atac"]`` on the same cells. The input state
    of each modality (raw counts, binary, normalised, log-normalised) is detected or taken from
    ``input_state``, recorded in ``mdata[mod].uns["attune_input"]`` and reported in one WARNING
    line when it is not raw counts; every later step uses only what that state allows. Peak
    chromosome names are made UCSC-style (``chr1``), and the genome build is recorded in
    ``mdata.uns["attune"]["genome"]``.

    Parameters
    ----------
    path
        A ``.h5mu`` file, a 10x ``.h5``, a 10x matrix folder (or a Cell Ranger ``outs/`` folder), a
        folder holding one RNA and one ATAC ``.h5ad``, a MatrixMarket pair folder, or a sequence
        ``(rna.h5ad, atac.h5ad)``. See the module docstring for the exact layouts.
    genome
        Genome build of the peaks (``"hg38"``, ``"hg19"``, ``"mm10"``, ...; Ensembl names such as
        ``"GRCh38"`` are accepted). None takes it from the file when it says (10x ``genome``
        column), else records ``"unknown"`` with a WARNING.
    input_state
        Override detection: one state for both modalities, or ``{"rna": ..., "atac": ...}``.
        States: ``"counts"``, ``"binary"``, ``"normalised"``, ``"log-normalised"``.
    intersect
        Keep only cells present in both modalities when they differ.
    annotate
        Add gene coordinates (``chrom``, ``start``, ``end``, ``strand``, ``tss``) to
        ``mdata["rna"].var`` when an annotation of the build is available offline.
    check_genome
        Check that the peaks fit the build's annotation (:func:`check_genome_fit`).

    Returns
    -------
    mudata.MuData

    Examples
    --------
    >>> import attune_lib as al
    >>> mdata = al.datasets.read("outs/filtered_feature_bc_matrix", genome="hg38")
    >>> al.pp.preprocess(mdata)
    """
    from ._readers import annotate_genes
    from ._real import load_gene_annotation

    genome = normalize_genome(genome)
    if isinstance(input_state, Mapping):
        unknown = set(input_state) - {"rna", "atac"}
        if unknown:
            raise AttuneInputError(f"input_state: keys must be 'rna' and/or 'atac', got {sorted(unknown)}")
        states = {m: input_state.get(m) for m in ("rna", "atac")}
    else:
        states = {"rna": input_state, "atac": input_state}
    from .._access import canonical_state

    for m, s in states.items():  # validate before reading anything
        if s is not None:
            states[m] = canonical_state(s, name=f"input_state[{m!r}]")
    mdata, layout = _dispatch(path, intersect)
    rna, atac = mdata["rna"], mdata["atac"]
    if genome is None:
        file_genome = {str(g) for g in rna.var.get("genome", pd.Series(dtype=str)).unique() if str(g)}
        if len(file_genome) == 1:
            try:
                genome = normalize_genome(file_genome.pop())
            except AttuneInputError:
                genome = None
    if genome is None:
        logger.warning("read: genome build not given and not stated in %s; recorded as 'unknown'. Pass genome= "
                       "('hg38', 'hg19', 'mm10', ...) so peaks are matched to the right gene annotation", path)
    import mudata as md

    info_before = dict(mdata.uns)
    if "chrom" in atac.var:
        atac.var["chrom"] = normalize_chrom_names(atac.var["chrom"])
        canon = pd.Index(atac.var["chrom"].astype(str) + ":" + atac.var["start"].astype(str) + "-"
                         + atac.var["end"].astype(str), dtype=object)
        if not canon.equals(atac.var_names):
            if "original_name" not in atac.var:
                atac.var["original_name"] = np.asarray(atac.var_names, dtype=object)
            atac.var_names = canon
            with md.set_options(pull_on_update=False), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                mdata = md.MuData(dict(mdata.mod))  # re-created: renaming and update() do not mix
                mdata.uns.update(info_before)
            rna, atac = mdata["rna"], mdata["atac"]
    for m, ad_ in (("rna", rna), ("atac", atac)):
        set_input_state(ad_, states[m], name=f"read: mdata[{m!r}] ({path})")
    info = dict(mdata.uns.get("attune", {})) if isinstance(mdata.uns.get("attune"), dict) else {}
    info.update(source=str(path), layout=layout, genome=genome or "unknown",
                input_state={m: mdata[m].uns["attune_input"]["state"] for m in ("rna", "atac")})
    mdata.uns["attune"] = info
    if annotate and genome in _ANNOTATED and "tss" not in rna.var:
        try:
            ann = load_gene_annotation(genome, offline=True)
        except AttuneInputError as exc:
            logger.warning("read: gene annotation of %s not available offline, genes left unannotated (%s)",
                           genome, str(exc).splitlines()[0])
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                annotate_genes(rna, ann)
            n_ann = int(rna.var["annotated"].sum())
            if n_ann < 0.5 * rna.n_vars:
                logger.warning("read: only %d of %d genes found in the %s annotation; check genome=",
                               n_ann, rna.n_vars, genome)
    if check_genome and genome is not None:
        fit = check_genome_fit(mdata, genome)
        info["genome_fit"] = {k: (float(v) if isinstance(v, (float, np.floating)) else v)
                              for k, v in fit.items() if k != "message" and v is not None}
        mdata.uns["attune"] = info
    return mdata


def describe(mdata) -> str:
    """A plain-text summary of a paired MuData: shape, layout, genome build and its fit, input states and,
    once preprocessed, what each step kept.

    Parameters
    ----------
    mdata
        MuData from :func:`read` (or any paired MuData; unknown facts are left out).

    Returns
    -------
    str
        Several lines, ready to print.
    """
    info = dict(mdata.uns.get("attune", {})) if isinstance(mdata.uns.get("attune"), Mapping) else {}
    lines = [f"{mdata.n_obs:,} cells; " + ", ".join(
        f"{m}: {mdata[m].n_vars:,} {'genes' if m == 'rna' else 'peaks' if m == 'atac' else 'features'}"
        for m in mdata.mod)]
    if "layout" in info:
        lines.append(f"read from {info.get('source', '?')} ({info['layout']})")
    if "genome" in info:
        fit = info.get("genome_fit", {})
        text = f"genome build: {info['genome']}"
        if fit.get("fits") is not None:
            text += (f"; {fit['tss_fraction']:.1%} of peaks within 1 kb of a TSS "
                     f"({fit['enrichment']:.1f}x background)" + ("" if fit["fits"] else
                                                                  f", poor fit: likely {fit.get('likely', '?')}"))
        lines.append(text)
    for m in mdata.mod:
        rec = mdata[m].uns.get("attune_input")
        if isinstance(rec, Mapping) and "state" in rec:
            lines.append(f"{m} input: {rec['state']} ({rec.get('source', 'detected')})")
    pp = mdata.uns.get("attune_pp")
    if isinstance(pp, Mapping):
        for m in ("rna", "atac"):
            if isinstance(pp.get(m), Mapping) and isinstance(pp[m].get("steps"), Mapping):
                steps = {k: v for k, v in pp[m]["steps"].items() if k != "input"}
                lines.append(f"{m} preprocessing: " + " -> ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in
                                                                   steps.items())
                             + (f"; {pp[m]['transform']}" if "transform" in pp[m] else f"; .X = {pp[m].get('X', '?')}"))
    return "\n".join(lines)
