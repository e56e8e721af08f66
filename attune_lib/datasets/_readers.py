"""Readers that turn paired RNA + ATAC files into a validated :class:`mudata.MuData`.

Every reader ends in :func:`build_mudata`, which checks everything (same cells, unique names,
finite non-negative values, parsable peak coordinates) before returning anything. Writers go
through :func:`atomic_write_path`, so a failed write never leaves a half-written file.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._utils import AttuneInputError, as_csr, check_values, examples

__all__ = [
    "annotate_genes",
    "atomic_write_path",
    "build_mudata",
    "parse_peak_names",
    "read_10x_multiome_h5",
    "read_gene_annotation",
    "read_h5ad_pair",
    "read_h5mu",
    "read_mtx_multiome",
    "read_names",
    "write_h5mu",
]

_PEAK_RE = re.compile(r"^(?P<chrom>[^\s:]+?)[:\-_](?P<start>\d+)[\-_](?P<end>\d+)$")
_N_EXAMPLES = 5
_ANNOTATION_ALIASES = {
    "symbol": ("symbol", "gene_symbol", "gene_name", "name", "gene"),
    "chrom": ("chrom", "chr", "chromosome", "seqnames", "seqname"),
    "start": ("start", "chromstart", "txstart", "gene_start"),
    "end": ("end", "chromend", "txend", "gene_end"),
    "strand": ("strand",),
    "tss": ("tss",),
    "ensembl_id": ("ensembl_id", "ensembl", "gene_id", "gene_ids"),
}


def _examples(values, k: int = _N_EXAMPLES) -> str:
    return examples(values, k)


def _label(mod: str, sources: dict[str, str] | None) -> str:
    src = (sources or {}).get(mod)
    return f"modality {mod!r}" + (f" (from {src})" if src else "")


# --------------------------------------------------------------------------------------------
# atomic writing


@contextmanager
def atomic_write_path(
    path: str | os.PathLike, *, overwrite: bool = True
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    On any exception the temporary file is removed and ``path`` is left untouched, so no
    half-written output ever exists under the final name.

    Parameters
    ----------
    path
        Final destination.
    overwrite
        Whether an existing ``path`` may be replaced.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise AttuneInputError(
            f"{path}: file exists; pass overwrite=True to replace it"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp)
    try:
        tmp.unlink()  # writers (h5py, anndata) create the file themselves
        yield tmp
        if not tmp.exists():
            raise AttuneInputError(f"{path}: the writer produced no file")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_h5mu(mdata, path: str | os.PathLike, *, overwrite: bool = True) -> None:
    """Validate ``mdata`` and write it to ``path`` atomically (temporary file, then rename).

    Parameters
    ----------
    mdata
        MuData with modalities ``"rna"`` and ``"atac"`` on the same cells in the same order.
    path
        Destination ``.h5mu`` file.
    overwrite
        Whether an existing file may be replaced.
    """
    mods = getattr(mdata, "mod", None)
    if mods is None:
        raise AttuneInputError(f"mdata: expected a MuData, got {type(mdata).__name__}")
    for key in ("rna", "atac"):
        if key not in mods:
            raise AttuneInputError(
                f"mdata: modality {key!r} missing; available: {sorted(mods)}"
            )
        check_values(mods[key].X, name=f"modality {key!r}")
    if not mods["rna"].obs_names.equals(mods["atac"].obs_names):
        raise AttuneInputError(
            "mdata: modalities 'rna' and 'atac' must have the same cells in the same order"
        )
    with atomic_write_path(path, overwrite=overwrite) as tmp:
        mdata.write(str(tmp))


# --------------------------------------------------------------------------------------------
# peaks


def parse_peak_names(names: Sequence[str]) -> pd.DataFrame:
    """Parse peak names ``chr1:100-200``, ``chr1-100-200`` or ``chr1_100_200`` into coordinates.

    Parameters
    ----------
    names
        Peak names.

    Returns
    -------
    pandas.DataFrame
        Indexed by the names, with columns ``chrom`` (str), ``start`` and ``end`` (int64).

    Raises
    ------
    AttuneInputError
        Listing the number and examples of unparsable names, or of peaks with ``end < start``.
    """
    names = pd.Index(np.asarray(names, dtype=object).astype(str))
    extracted = names.to_series().str.extract(_PEAK_RE)
    bad = extracted["chrom"].isna().to_numpy()
    if bad.any():
        raise AttuneInputError(
            f"peak names: {int(bad.sum())} of {len(names)} could not be parsed as "
            f"'chrom:start-end', 'chrom-start-end' or 'chrom_start_end', e.g. {_examples(names[bad])}"
        )
    start = extracted["start"].astype(np.int64).to_numpy()
    end = extracted["end"].astype(np.int64).to_numpy()
    inverted = end < start
    if inverted.any():
        raise AttuneInputError(
            f"peak names: {int(inverted.sum())} peak(s) end before they start, "
            f"e.g. {_examples(names[inverted])}"
        )
    return pd.DataFrame(
        {
            "chrom": extracted["chrom"].astype(str).to_numpy(),
            "start": start,
            "end": end,
        },
        index=names,
    )


# --------------------------------------------------------------------------------------------
# the common validation step


def build_mudata(
    rna,
    atac,
    *,
    intersect: bool = False,
    parse_peaks: bool = True,
    rename_peaks: bool = True,
    sources: dict[str, str] | None = None,
):
    """Validate two AnnData objects and pair them into a MuData with ``"rna"`` and ``"atac"``.

    All checks run before anything is built; the inputs are not modified.

    Parameters
    ----------
    rna, atac
        AnnData objects, cells x features.
    intersect
        Keep only the cells present in both modalities (in ``rna``'s order) instead of raising
        when the cell sets differ.
    parse_peaks
        Parse ``atac.var_names`` into ``atac.var[["chrom", "start", "end"]]`` (unless those columns
        already exist); unparsable names raise.
    rename_peaks
        Rename peaks to the canonical ``chrom:start-end`` (original names kept in
        ``atac.var["original_name"]`` when they differ).
    sources
        ``{"rna": file, "atac": file}`` used in error messages.

    Returns
    -------
    mudata.MuData

    Raises
    ------
    AttuneInputError
        Empty matrices, NaN/inf/negative values, duplicated cell or feature names, different cells
        (reporting both counts and the overlap), unparsable peak names; each naming the modality
        and its file.
    """
    import anndata as ad
    import mudata as md

    mods = {"rna": rna, "atac": atac}
    for key, adata in mods.items():
        if not isinstance(adata, ad.AnnData):
            raise AttuneInputError(
                f"{_label(key, sources)}: expected an AnnData, got {type(adata).__name__}"
            )
    # values and names
    for key, adata in mods.items():
        label = _label(key, sources)
        check_values(adata.X, name=label)
        for axis, index in (("cell", adata.obs_names), ("feature", adata.var_names)):
            dup = index[index.duplicated()]
            if len(dup):
                raise AttuneInputError(
                    f"{label}: {len(dup)} duplicated {axis} name(s), e.g. {_examples(dup.unique())}"
                )
    # cells
    rna_cells, atac_cells = rna.obs_names, atac.obs_names
    if rna_cells.equals(atac_cells):
        cells = rna_cells
    else:
        shared = rna_cells[rna_cells.isin(atac_cells)]
        same_set = len(shared) == len(rna_cells) == len(atac_cells)
        if not same_set and not intersect:
            only_rna = rna_cells[~rna_cells.isin(atac_cells)]
            only_atac = atac_cells[~atac_cells.isin(rna_cells)]
            raise AttuneInputError(
                f"cells differ between modalities: {_label('rna', sources)} has {len(rna_cells)} cells, "
                f"{_label('atac', sources)} has {len(atac_cells)}, {len(shared)} are shared "
                f"(only in rna e.g. {_examples(only_rna, 3) or 'none'}; only in atac e.g. "
                f"{_examples(only_atac, 3) or 'none'}). Pass intersect=True to keep the "
                f"{len(shared)} shared cells."
            )
        if len(shared) == 0:
            raise AttuneInputError(
                f"cells differ between modalities: rna has {len(rna_cells)} cells, atac has "
                f"{len(atac_cells)} and none are shared; check that both files use the same barcodes"
            )
        cells = shared
    # peaks
    atac_var = atac.var.copy()
    new_names = None
    if parse_peaks and not {"chrom", "start", "end"}.issubset(atac_var.columns):
        try:
            coords = parse_peak_names(atac.var_names)
        except AttuneInputError as exc:
            raise AttuneInputError(f"{_label('atac', sources)}: {exc}") from None
        atac_var["chrom"] = coords["chrom"].to_numpy()
        atac_var["start"] = coords["start"].to_numpy()
        atac_var["end"] = coords["end"].to_numpy()
        if rename_peaks:
            canon = pd.Index(
                coords["chrom"]
                + ":"
                + coords["start"].astype(str)
                + "-"
                + coords["end"].astype(str)
            )
            if not canon.equals(pd.Index(atac.var_names.astype(str))):
                dup = canon[canon.duplicated()]
                if len(dup):
                    raise AttuneInputError(
                        f"{_label('atac', sources)}: {len(dup)} peak(s) have the same coordinates "
                        f"under different names, e.g. {_examples(dup.unique())}"
                    )
                atac_var["original_name"] = np.asarray(atac.var_names, dtype=str)
                new_names = canon
    # all checks passed: build (copies; the inputs stay untouched)
    out = {}
    for key, adata in mods.items():
        sub = adata if adata.obs_names.equals(cells) else adata[cells]
        sub = sub.copy()
        sub.X = as_csr(sub.X)
        out[key] = sub
    out["atac"].var = atac_var
    if new_names is not None:
        out["atac"].var_names = new_names
    with md.set_options(pull_on_update=False):
        mdata = md.MuData(out)
    return mdata


# --------------------------------------------------------------------------------------------
# readers


def _require_file(path, what: str = "file") -> Path:
    path = Path(path)
    if not path.is_file():
        raise AttuneInputError(f"{path}: {what} not found")
    return path


def read_h5mu(
    path: str | os.PathLike,
    *,
    rna: str = "rna",
    atac: str = "atac",
    intersect: bool = False,
):
    """Read a ``.h5mu`` file and validate its RNA and ATAC modalities.

    Parameters
    ----------
    path
        The ``.h5mu`` file.
    rna, atac
        Names of the RNA and ATAC modalities in the file (renamed to ``"rna"``/``"atac"``).
    intersect
        Keep only shared cells if the modalities' cells differ.

    Returns
    -------
    mudata.MuData
        With ``mdata["rna"]`` and ``mdata["atac"]``; ``uns`` of the file is kept.
    """
    import mudata as md

    path = _require_file(path, "h5mu file")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not created by muon/mudata.*")
        warnings.filterwarnings("ignore", category=FutureWarning, module="mudata")
        warnings.filterwarnings("ignore", message=".*without encoding metadata.*")
        try:
            mdata = md.read_h5mu(str(path))
        except Exception as exc:  # noqa: BLE001 - h5py/anndata errors on broken files
            raise AttuneInputError(
                f"{path}: could not be read as h5mu ({type(exc).__name__}: {exc})"
            ) from None
    for role, key in (("rna", rna), ("atac", atac)):
        if key not in mdata.mod:
            raise AttuneInputError(
                f"{path}: modality {key!r} ({role}) not found; available: {sorted(mdata.mod)}"
            )
    out = build_mudata(
        mdata.mod[rna],
        mdata.mod[atac],
        intersect=intersect,
        sources={"rna": f"{path}:{rna}", "atac": f"{path}:{atac}"},
    )
    out.uns.update(dict(mdata.uns))
    return out


def read_h5ad_pair(
    rna_path: str | os.PathLike,
    atac_path: str | os.PathLike,
    *,
    intersect: bool = False,
):
    """Read an RNA and an ATAC ``.h5ad`` file of the same cells into one MuData.

    Parameters
    ----------
    rna_path, atac_path
        The two AnnData files (cells x genes, cells x peaks).
    intersect
        Keep only the cells present in both files instead of raising when they differ.
    """
    import anndata as ad

    paths = {
        "rna": _require_file(rna_path, "RNA h5ad file"),
        "atac": _require_file(atac_path, "ATAC h5ad file"),
    }
    adatas = {}
    for key, p in paths.items():
        try:
            adatas[key] = ad.read_h5ad(str(p))
        except Exception as exc:  # noqa: BLE001 - any reader error becomes a message naming the file
            raise AttuneInputError(
                f"{p}: could not be read as h5ad ({type(exc).__name__}: {exc})"
            ) from None
    return build_mudata(
        adatas["rna"],
        adatas["atac"],
        intersect=intersect,
        sources={k: str(v) for k, v in paths.items()},
    )


def _h5_strings(values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind in ("S", "O"):
        return np.array(
            [v.decode() if isinstance(v, bytes) else str(v) for v in arr], dtype=object
        )
    return arr.astype(str).astype(object)


def read_10x_multiome_h5(path: str | os.PathLike, *, make_unique: bool = True):
    """Read a 10x Cell Ranger ARC ``filtered_feature_bc_matrix.h5`` into a MuData.

    Features with ``feature_type`` ``"Gene Expression"`` go to ``"rna"`` (named by gene symbol,
    Ensembl ids in ``var["gene_ids"]``) and ``"Peaks"`` to ``"atac"`` (named by interval).

    Parameters
    ----------
    path
        The HDF5 matrix file (group ``matrix`` with ``data``, ``indices``, ``indptr``, ``shape``,
        ``barcodes`` and ``features/{id,name,feature_type}``).
    make_unique
        Gene symbols are not unique in 10x references; append ``-1``, ``-2``... to repeated
        symbols (with a warning) instead of raising.
    """
    import anndata as ad
    import h5py

    path = _require_file(path, "10x h5 file")
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise AttuneInputError(f"{path}: not an HDF5 file ({exc})") from None
    with fh:
        if "matrix" not in fh:
            raise AttuneInputError(
                f"{path}: group 'matrix' not found; not a Cell Ranger (ARC) h5 file"
            )
        g = fh["matrix"]
        needed = [
            "data",
            "indices",
            "indptr",
            "shape",
            "barcodes",
            "features/id",
            "features/name",
            "features/feature_type",
        ]
        missing = [k for k in needed if k not in g]
        if missing:
            raise AttuneInputError(
                f"{path}: matrix/{missing[0]} not found (missing {missing})"
            )
        n_features, n_cells = (int(x) for x in g["shape"][()])
        try:
            X = sp.csr_matrix(
                (g["data"][()], g["indices"][()], g["indptr"][()]),
                shape=(n_cells, n_features),
            )
        except ValueError as exc:
            raise AttuneInputError(
                f"{path}: inconsistent sparse matrix in 'matrix' ({exc})"
            ) from None
        barcodes = _h5_strings(g["barcodes"][()])
        ids = _h5_strings(g["features/id"][()])
        names = _h5_strings(g["features/name"][()])
        ftype = _h5_strings(g["features/feature_type"][()])
        genome = (
            _h5_strings(g["features/genome"][()]) if "features/genome" in g else None
        )
        interval = (
            _h5_strings(g["features/interval"][()])
            if "features/interval" in g
            else None
        )
    if len(barcodes) != n_cells or len(ids) != n_features:
        raise AttuneInputError(
            f"{path}: matrix shape {n_features} features x {n_cells} cells does not match "
            f"{len(ids)} feature ids and {len(barcodes)} barcodes"
        )
    is_rna = ftype == "Gene Expression"
    is_atac = ftype == "Peaks"
    if not is_rna.any() or not is_atac.any():
        raise AttuneInputError(
            f"{path}: features/feature_type must contain both 'Gene Expression' and 'Peaks'; "
            f"found {sorted(set(ftype))}"
        )
    other = sorted(set(ftype[~(is_rna | is_atac)]))
    if other:
        warnings.warn(f"{path}: ignoring features of type {other}", stacklevel=2)

    def _var(mask, index):
        var = pd.DataFrame(
            {"gene_ids": ids[mask], "feature_types": ftype[mask]},
            index=pd.Index(index, dtype=object),
        )
        if genome is not None:
            var["genome"] = genome[mask]
        if interval is not None:
            var["interval"] = interval[mask]
        return var

    obs = pd.DataFrame(index=pd.Index(barcodes, dtype=object))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*names are not unique.*")
        rna = ad.AnnData(
            X=X[:, np.flatnonzero(is_rna)],
            obs=obs.copy(),
            var=_var(is_rna, names[is_rna]),
        )
        atac = ad.AnnData(
            X=X[:, np.flatnonzero(is_atac)],
            obs=obs.copy(),
            var=_var(is_atac, ids[is_atac]),
        )
    if make_unique and rna.var_names.duplicated().any():
        n = int(rna.var_names.duplicated().sum())
        warnings.warn(
            f"{path}: {n} repeated gene symbol(s) made unique by suffixes, "
            f"e.g. {_examples(rna.var_names[rna.var_names.duplicated()].unique())}",
            stacklevel=2,
        )
        rna.var_names_make_unique()
    return build_mudata(rna, atac, sources={"rna": str(path), "atac": str(path)})


def read_names(source, *, what: str = "names") -> pd.Index:
    """Read a list of names from a file or take them from a sequence.

    Files: ``.csv`` (R-style ``"","x"`` tables use the column after the row numbers; otherwise
    column ``x``, ``name`` or the first column) or plain/tab-separated text (first column, no
    header). ``.gz`` is handled.

    Parameters
    ----------
    source
        Path, or a sequence / :class:`pandas.Index` of names.
    what
        What the names are, for error messages.
    """
    if isinstance(source, (str, os.PathLike)):
        path = _require_file(source, f"{what} file")
        name = path.name.lower().removesuffix(".gz")
        try:
            if name.endswith(".csv"):
                df = pd.read_csv(path, dtype=str, keep_default_na=False)
                cols = list(df.columns)
                if len(cols) >= 2 and (
                    cols[0] == "" or cols[0].startswith("Unnamed: 0")
                ):
                    col = cols[1]
                elif "x" in cols:
                    col = "x"
                elif "name" in cols:
                    col = "name"
                else:
                    col = cols[0]
                values = df[col].to_numpy()
            else:
                df = pd.read_csv(
                    path, sep="\t", header=None, dtype=str, keep_default_na=False
                )
                values = df.iloc[:, 0].to_numpy()
        except pd.errors.EmptyDataError:
            raise AttuneInputError(f"{path}: {what} file is empty") from None
        if len(values) == 0:
            raise AttuneInputError(f"{path}: {what} file is empty")
        return pd.Index(values.astype(str), dtype=object)
    values = np.asarray(list(source), dtype=object).astype(str)
    if len(values) == 0:
        raise AttuneInputError(f"{what}: empty list")
    return pd.Index(values, dtype=object)


def read_mtx_files(path) -> sp.csr_matrix:
    import scipy.io

    path = _require_file(path, "MatrixMarket file")
    try:
        M = scipy.io.mmread(str(path))
    except Exception as exc:  # noqa: BLE001 - any parse error becomes a message naming the file
        raise AttuneInputError(
            f"{path}: could not be read as MatrixMarket ({type(exc).__name__}: {exc})"
        ) from None
    return sp.csr_matrix(M)


def read_mtx_multiome(
    rna_mtx: str | os.PathLike,
    atac_mtx: str | os.PathLike,
    barcodes,
    genes,
    peaks,
    *,
    transpose: bool | str = "auto",
):
    """Read paired MatrixMarket matrices with cell, gene and peak name tables into a MuData.

    Parameters
    ----------
    rna_mtx, atac_mtx
        MatrixMarket files of RNA (genes) and ATAC (peaks) values.
    barcodes, genes, peaks
        Name tables (see :func:`read_names`) or sequences of names.
    transpose
        ``False``: matrices are cells x features (e.g. scPOEM); ``True``: features x cells
        (e.g. 10x). ``"auto"`` infers it from the shapes; a square matrix takes the orientation of
        the other one, and an error is raised when it cannot be told.

    Example
    -------
    The scPOEM PBMC example (``X.mtx`` cells x peaks, ``Y.mtx`` cells x genes)::

        read_mtx_multiome("Y.mtx", "X.mtx", "cell_data.csv", "gene_data.csv", "peak_data.csv",
                          transpose=False)
    """
    cells = read_names(barcodes, what="cell barcodes")
    feats = {
        "rna": read_names(genes, what="gene names"),
        "atac": read_names(peaks, what="peak names"),
    }
    files = {"rna": Path(rna_mtx), "atac": Path(atac_mtx)}
    mats = {k: read_mtx_files(p) for k, p in files.items()}
    n = len(cells)

    def orientation(key):
        shape, m = mats[key].shape, len(feats[key])
        fits = {False: shape == (n, m), True: shape == (m, n)}
        return [t for t, ok in fits.items() if ok]

    opts = {k: orientation(k) for k in mats}
    for key, o in opts.items():
        if not o:
            raise AttuneInputError(
                f"{files[key]}: matrix shape {mats[key].shape} matches neither cells x features "
                f"({n}, {len(feats[key])}) nor features x cells ({len(feats[key])}, {n})"
            )
    chosen: dict[str, bool] = {}
    if transpose == "auto":
        decided = {k: o[0] for k, o in opts.items() if len(o) == 1}
        for key, o in opts.items():
            if len(o) == 1:
                chosen[key] = o[0]
            elif decided:
                chosen[key] = next(iter(decided.values()))
            else:
                raise AttuneInputError(
                    f"transpose: cannot tell the orientation of {files['rna']} and {files['atac']} "
                    f"(both square); pass transpose=False (cells x features) or True"
                )
    elif isinstance(transpose, bool):
        for key, o in opts.items():
            if transpose not in o:
                want = "features x cells" if transpose else "cells x features"
                raise AttuneInputError(
                    f"{files[key]}: transpose={transpose} expects {want} but the matrix has shape "
                    f"{mats[key].shape} for {n} cells and {len(feats[key])} features"
                )
            chosen[key] = transpose
    else:
        raise AttuneInputError(
            f"transpose: expected True, False or 'auto', got {transpose!r}"
        )

    import anndata as ad

    adatas = {}
    for key in ("rna", "atac"):
        X = mats[key].T.tocsr() if chosen[key] else mats[key]
        adatas[key] = ad.AnnData(
            X=X,
            obs=pd.DataFrame(index=cells.copy()),
            var=pd.DataFrame(index=feats[key].copy()),
        )
    return build_mudata(
        adatas["rna"], adatas["atac"], sources={k: str(v) for k, v in files.items()}
    )


# --------------------------------------------------------------------------------------------
# gene annotation


def read_gene_annotation(annotation, *, source: str | None = None) -> pd.DataFrame:
    """Load and normalise a gene annotation table.

    Parameters
    ----------
    annotation
        Path to a tab- (or comma-, for ``.csv``) separated table, or a DataFrame, with columns
        ``symbol, chrom, start, end, strand`` and optionally ``tss`` and ``ensembl_id`` (common
        aliases such as ``gene_name``, ``chr``, ``gene_id`` are accepted). ``tss`` is derived from
        the strand when absent.
    source
        Name used in error messages (defaults to the path).

    Returns
    -------
    pandas.DataFrame
        Columns ``symbol, chrom, start, end, strand, tss`` (+ ``ensembl_id`` and any other columns).
    """
    if isinstance(annotation, pd.DataFrame):
        df = annotation.copy()
        source = source or annotation.attrs.get("source") or "annotation DataFrame"
    else:
        path = _require_file(annotation, "gene annotation file")
        source = source or str(path)
        sep = "," if path.name.lower().removesuffix(".gz").endswith(".csv") else "\t"
        df = pd.read_csv(path, sep=sep)
    lower = {str(c).lower(): c for c in df.columns}
    rename = {}
    for canon, aliases in _ANNOTATION_ALIASES.items():
        if canon in df.columns:
            continue
        for alias in aliases:
            if alias in lower and lower[alias] not in rename:
                rename[lower[alias]] = canon
                break
    df = df.rename(columns=rename)
    missing = [
        c for c in ("symbol", "chrom", "start", "end", "strand") if c not in df.columns
    ]
    if missing:
        raise AttuneInputError(
            f"{source}: missing column(s) {missing}; expected symbol, chrom, start, end, strand[, tss]; "
            f"found {list(df.columns)}"
        )
    strand = (
        df["strand"]
        .astype(str)
        .str.strip()
        .replace({"1": "+", "-1": "-", "1.0": "+", "-1.0": "-"})
    )
    bad = ~strand.isin(["+", "-"])
    if bad.any():
        raise AttuneInputError(
            f"{source}: column 'strand' must be '+' or '-'; {int(bad.sum())} bad value(s), "
            f"e.g. {_examples(df.loc[bad, 'strand'].unique())}"
        )
    df["strand"] = strand
    for col in ("start", "end") + (("tss",) if "tss" in df.columns else ()):
        vals = pd.to_numeric(df[col], errors="coerce")
        if vals.isna().any():
            raise AttuneInputError(
                f"{source}: column {col!r} has {int(vals.isna().sum())} missing/non-numeric value(s)"
            )
        df[col] = vals.astype(np.int64)
    if "tss" not in df.columns:
        df["tss"] = np.where(df["strand"] == "+", df["start"], df["end"]).astype(
            np.int64
        )
    df["symbol"] = df["symbol"].astype(str)
    df["chrom"] = df["chrom"].astype(str)
    df.attrs["source"] = source
    return df


def _strip_version(ids: pd.Series) -> pd.Series:
    return ids.astype(str).str.replace(r"\.\d+$", "", regex=True)


def annotate_genes(
    adata,
    annotation,
    *,
    symbol_key: str | None = None,
    id_key: str = "gene_ids",
    copy: bool = False,
):
    """Add genomic coordinates of genes to ``adata.var`` from an annotation table.

    Genes are matched by Ensembl id first (when ``var[id_key]`` holds ``ENS...`` ids and the
    annotation has ``ensembl_id``), then by symbol. Writes ``chrom``, ``start``, ``end``, ``strand``,
    ``tss`` and ``annotated`` into ``var``. Unannotated genes get ``chrom``/``strand`` NaN,
    ``start``/``end``/``tss`` = -1 and ``annotated`` False, so windowed analyses leave them out;
    a warning reports their number and examples.

    Parameters
    ----------
    adata
        AnnData of the RNA modality (cells x genes).
    annotation
        Path or DataFrame, see :func:`read_gene_annotation`.
    symbol_key
        Column of ``var`` holding gene symbols; ``None`` uses ``var_names``.
    id_key
        Column of ``var`` holding Ensembl gene ids, used when present.
    copy
        Return an annotated copy instead of modifying ``adata``.
    """
    ann = read_gene_annotation(annotation)
    source = ann.attrs.get("source", "annotation")
    if symbol_key is not None and symbol_key not in adata.var.columns:
        raise AttuneInputError(
            f"symbol_key: column {symbol_key!r} not in var; available: {list(adata.var.columns)}"
        )
    if adata.n_vars == 0:
        raise AttuneInputError("adata: has no genes to annotate")
    # one row per symbol / id, preferring primary-assembly chromosomes
    ann = ann.assign(_alt=ann["chrom"].str.contains("_")).sort_values(
        "_alt", kind="stable"
    )
    by_symbol = ann.drop_duplicates("symbol").set_index("symbol")
    symbols = pd.Series(
        np.asarray(adata.var[symbol_key] if symbol_key else adata.var_names, dtype=str),
        index=adata.var_names,
    )
    row_pos = pd.Series(-1, index=adata.var_names, dtype=np.int64)
    cols = ["chrom", "start", "end", "strand", "tss"]
    table = by_symbol[cols].reset_index(drop=True)
    # Ensembl ids
    n_by_id = 0
    if "ensembl_id" in ann.columns and id_key in adata.var.columns:
        var_ids = _strip_version(adata.var[id_key])
        if var_ids.str.startswith("ENS").any():
            ids = ann[["ensembl_id"] + cols].dropna(subset=["ensembl_id"]).copy()
            ids["ensembl_id"] = ids["ensembl_id"].astype(str).str.split(";")
            ids = ids.explode("ensembl_id")
            ids["ensembl_id"] = _strip_version(ids["ensembl_id"].str.strip())
            ids = ids.drop_duplicates("ensembl_id").set_index("ensembl_id")
            offset = len(table)
            table = pd.concat(
                [table, ids[cols].reset_index(drop=True)], ignore_index=True
            )
            pos = pd.Series(np.arange(len(ids)) + offset, index=ids.index)
            hit = var_ids.map(pos)
            mask = hit.notna().to_numpy()
            row_pos[mask] = hit[mask].astype(np.int64).to_numpy()
            n_by_id = int(mask.sum())
    sym_pos = pd.Series(np.arange(len(by_symbol)), index=by_symbol.index)
    need = row_pos.to_numpy() < 0
    hit = symbols[need].map(sym_pos)
    idx = np.flatnonzero(need)
    ok = hit.notna().to_numpy()
    row_pos.iloc[idx[ok]] = hit[ok].astype(np.int64).to_numpy()

    annotated = row_pos.to_numpy() >= 0
    rows = table.iloc[np.where(annotated, row_pos.to_numpy(), 0)].reset_index(drop=True)
    new = pd.DataFrame(index=adata.var_names)
    new["chrom"] = pd.Series(
        np.where(annotated, rows["chrom"].to_numpy(dtype=object), np.nan),
        index=adata.var_names,
        dtype=object,
    )
    for col in ("start", "end", "tss"):
        new[col] = np.where(annotated, rows[col].to_numpy(np.int64), -1).astype(
            np.int64
        )
    new["strand"] = pd.Series(
        np.where(annotated, rows["strand"].to_numpy(dtype=object), np.nan),
        index=adata.var_names,
        dtype=object,
    )
    new["annotated"] = annotated
    # validated: now write
    target = adata.copy() if copy else adata
    for col in new.columns:
        target.var[col] = new[col].to_numpy()
    n_missing = int((~annotated).sum())
    if n_missing:
        warnings.warn(
            f"{n_missing} of {adata.n_vars} genes have no annotation in {source} "
            f"(e.g. {_examples(symbols[~annotated])}); they are marked var['annotated']=False "
            f"(chrom NaN) and left out of windowed analyses",
            UserWarning,
            stacklevel=2,
        )
    target.uns.setdefault("attune", {})
    if isinstance(target.uns["attune"], dict):
        target.uns["attune"]["gene_annotation"] = {
            "source": str(source),
            "n_annotated": int(annotated.sum()),
            "n_by_ensembl_id": n_by_id,
        }
    return target if copy else None
