"""RNA preprocessing and feature filters (the Attune paper's recipe).

Every public function takes an :class:`~anndata.AnnData` (or a :class:`~mudata.MuData`, in which
case the modality is chosen with ``mod``) first, keyword-only options after, and works in place.
All inputs are validated before anything is written, so a failing call leaves the object as it was.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._access import get_matrix, layer_matrix, matrix_state, record_layer_state, set_input_state
from .._utils import AttuneInputError, check_values, get_modality, renamed_kwargs

logger = logging.getLogger("attune_lib")

__all__ = [
    "ensure_input_state",
    "filter_features",
    "remove_sex_mito",
    "is_raw_counts",
    "normalize_log1p",
    "highly_variable_genes",
    "pca_rna",
    "preprocess_rna",
]

#: how input states read in summaries
STATE_TEXT = {"counts": "raw counts", "binary": "0/1 values", "normalised": "normalised values",
               "log-normalised": "log-normalised values"}
#: chromosome names treated as mitochondrial
MITO_CHROMS = frozenset({"chrM", "chrMT", "MT", "M", "chrm", "mt"})
#: gene-name prefixes treated as mitochondrial when the chromosome is unknown
MITO_PREFIXES = ("MT-", "mt-")
# "chr1:100-200", "chr1-100-200", "chr1_100_200" -> "chr1"
_PEAK_RE = re.compile(r"^([^:_\-]+)[:_\-](\d+)[_\-](\d+)$")


# --------------------------------------------------------------------------------------------
# small internal helpers
# --------------------------------------------------------------------------------------------
def is_mudata(data: Any) -> bool:
    return hasattr(data, "mod") and hasattr(data, "update")


def _modalities(data: Any, mod: str | Sequence[str] | None, *, default: str | None = None):
    """``[(name, adata), ...]`` for an AnnData (name ``None``) or the chosen MuData modalities."""
    if not is_mudata(data):
        if not hasattr(data, "obs") or not hasattr(data, "var"):
            raise AttuneInputError(
                f"expected an AnnData or MuData, got {type(data).__name__}"
            )
        return [(None, data)]
    if mod is None:
        mod = default
    if mod is None:
        names = list(data.mod)
    elif isinstance(mod, str):
        names = [mod]
    else:
        names = list(mod)
    return [(name, get_modality(data, name)) for name in names]


def update_mudata(mdata) -> None:
    """``mdata.update()`` without mudata 0.3's FutureWarning about pull_on_update."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="mudata")
        warnings.filterwarnings("ignore", message=".*pull_on_update.*")
        mdata.update()


def single_modality(data: Any, mod: str | None, default: str):
    """The one AnnData a single-modality step works on."""
    ((_, adata),) = _modalities(data, mod, default=default)
    return adata


def pp_matrix(adata, layer: str | None):
    return layer_matrix(adata, layer, where="adata")


def matrix_name(layer: str | None) -> str:
    return ".X" if layer is None else f".layers[{layer!r}]"


def check_fraction(value: float, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise AttuneInputError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not np.isfinite(value) or value < 0 or value > 1:
        raise AttuneInputError(f"{name} must be in [0, 1], got {value!r}")
    return value


def check_positive_int(value: Any, name: str, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise AttuneInputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_obs_key(adata, key: str | None, name: str) -> None:
    if key is not None and key not in adata.obs:
        raise AttuneInputError(
            f"{name}={key!r} is not a column of .obs; available: {list(adata.obs.columns)}"
        )


def _n_detected(X) -> np.ndarray:
    """Number of cells with a non-zero value, per feature."""
    if sp.issparse(X):
        X = sp.csc_matrix(X)
        X.eliminate_zeros()
        return np.diff(X.indptr)
    return np.count_nonzero(np.asarray(X), axis=0)


def filter_mask(X, min_fraction: float | None, min_cells: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(keep mask, detection fraction) for :func:`filter_features`: detected in >= both thresholds."""
    n_obs = X.shape[0]
    n_det = _n_detected(X)
    # integer threshold, robust to float rounding (0.05 * 20 cells must need exactly 1 cell)
    need = int(np.ceil((min_fraction or 0.0) * n_obs - 1e-9))
    need = max(need, int(min_cells or 0))
    return n_det >= need, n_det / n_obs


def _threshold_text(min_fraction: float | None, min_cells: int | None) -> str:
    parts = ([f"{min_fraction:.3g} of cells"] if min_fraction else []) + ([f"{min_cells} cells"] if min_cells else [])
    return " and ".join(parts) or "1 cell"


def _report_filter(name: str | None, what: str, n_before: int, n_after: int, min_fraction, min_cells,
                   param: str) -> None:
    """INFO line, or a WARNING with the numbers when a quality filter removes more than half the features."""
    label = f" [{name}]" if name else ""
    removed = n_before - n_after
    if n_before and removed > 0.5 * n_before:
        logger.warning(
            "filter_features%s: removed %d of %d %s (%.1f%%) detected in fewer than %s; sparse data? "
            "pass a lower %s to keep more", label, removed, n_before, what, 100.0 * removed / n_before,
            _threshold_text(min_fraction, min_cells), param)
    else:
        logger.info("filter_features%s: kept %d of %d %s detected in >= %s", label, n_after, n_before, what,
                    _threshold_text(min_fraction, min_cells))


def ensure_input_state(adata, *, name: str = "adata") -> str:
    """The input state of ``adata.X`` (recorded by :func:`attune_lib.datasets.read`).

    Detected and recorded when unknown.

    Parameters
    ----------
    adata
        AnnData of one modality.
    name
        Modality name for the WARNING given when the detected state is not raw counts.
    """
    rec = adata.uns.get("attune_input")
    if isinstance(rec, dict) and "state" in rec:
        return str(rec.get("matrices", {}).get("X", rec["state"]))
    return set_input_state(adata, None, name=name)


def record_step(adata, step: str, info: dict) -> None:
    rec = dict(adata.uns.get("attune_pp", {}))
    rec[step] = info
    adata.uns["attune_pp"] = rec


def _chrom_from_names(names: pd.Index) -> pd.Series:
    """Chromosome parsed from peak-style names (``chr1:100-200``); NaN where the name is not one."""
    out = [m.group(1) if (m := _PEAK_RE.match(str(n))) else np.nan for n in names]
    return pd.Series(out, index=names, dtype=object)


def sex_mito_keep(adata, *, chrom_key: str, sex: set, mito: bool, name: str) -> np.ndarray:
    """Keep mask for :func:`remove_sex_mito` (warns when ``chrom_key`` is missing)."""
    names = adata.var_names
    parsed = _chrom_from_names(names)
    if chrom_key in adata.var:
        chrom = adata.var[chrom_key].astype(object)
        chrom = chrom.where(chrom.notna(), parsed)
    else:
        warnings.warn(
            f"{name}.var has no column {chrom_key!r}; falling back on feature names "
            "(peak names like 'chrX:1-2', gene names starting 'MT-')",
            UserWarning,
            stacklevel=3,
        )
        chrom = parsed
    unknown = chrom.isna().to_numpy()
    chrom_str = chrom.astype(str).where(~unknown, "")
    drop = chrom_str.isin(sex).to_numpy()
    if mito:
        by_name = np.array([str(n).startswith(MITO_PREFIXES) for n in names], dtype=bool)
        drop |= chrom_str.isin(MITO_CHROMS).to_numpy() | (unknown & by_name)
    return ~drop


# --------------------------------------------------------------------------------------------
# feature filters
# --------------------------------------------------------------------------------------------
def filter_features(
    data,
    *,
    min_fraction: float | None = 0.05,
    min_cells: int | None = None,
    layer: str | None = None,
    mod: str | Sequence[str] | None = None,
) -> None:
    """Drop features detected (non-zero) in fewer than ``min_fraction`` of the cells or ``min_cells`` cells.

    A feature detected in exactly ``min_fraction`` of the cells is kept (the paper: "genes
    expressed in fewer than 5% of cells were filtered out"). The detection fraction of the kept
    features is written to ``.var["frac_cells"]``. When the filter removes more than half of a
    modality's features, a WARNING on the ``"attune_lib"`` logger gives the numbers; the counts
    before and after are recorded in ``.uns["attune_pp"]["filter_features"]``.

    Parameters
    ----------
    data
        AnnData, or MuData (then every modality in ``mod`` is filtered; all when ``mod`` is None).
    min_fraction
        Minimal fraction of cells in which a feature must be non-zero, in ``[0, 1]``; None: no
        fraction threshold.
    min_cells
        Minimal number of cells in which a feature must be non-zero; None: no count threshold.
    layer
        Matrix to look at; ``None`` means ``.X``.
    mod
        MuData modality name(s).
    """
    min_fraction = None if min_fraction is None else check_fraction(min_fraction, "min_fraction")
    min_cells = check_positive_int(min_cells, "min_cells", allow_none=True)
    targets = _modalities(data, mod)
    masks = []
    for name, adata in targets:  # validate everything first
        X = pp_matrix(adata, layer)
        check_values(X, name=f"{name or 'adata'}{matrix_name(layer)}")
        masks.append(filter_mask(X, min_fraction, min_cells))
    for (name, adata), (keep, frac) in zip(targets, masks, strict=True):
        n_before = adata.n_vars
        adata._inplace_subset_var(keep)
        adata.var["frac_cells"] = np.asarray(frac[keep], dtype=float)
        record_step(adata, "filter_features", {"min_fraction": -1.0 if min_fraction is None else min_fraction,
                                           "min_cells": int(min_cells or 0), "n_before": n_before,
                                           "n_after": int(keep.sum())})
        _report_filter(name, "features", n_before, int(keep.sum()), min_fraction, min_cells,
                       "min_fraction/min_cells")
    if is_mudata(data):
        update_mudata(data)


def remove_sex_mito(
    data,
    *,
    chrom_key: str = "chrom",
    sex_chroms: Sequence[str] = ("chrX", "chrY", "X", "Y"),
    mito: bool = True,
    mod: str | Sequence[str] | None = None,
) -> None:
    """Drop sex-chromosome and (optionally) mitochondrial features.

    The chromosome is read from ``.var[chrom_key]``. Where it is unknown (column missing, or NaN
    for a feature), it is parsed from peak-style names (``chr1:100-200``); gene names starting
    with ``MT-``/``mt-`` count as mitochondrial. A missing ``chrom_key`` column gives a warning.

    Parameters
    ----------
    data
        AnnData, or MuData (every modality in ``mod``; all when ``mod`` is None).
    chrom_key
        ``.var`` column with chromosome names.
    sex_chroms
        Chromosome names to drop.
    mito
        Also drop mitochondrial features (``chrM``/``MT`` or ``MT-`` gene names).
    mod
        MuData modality name(s).
    """
    if isinstance(sex_chroms, str):
        raise AttuneInputError("sex_chroms must be a sequence of chromosome names, not a string")
    sex = {str(c) for c in sex_chroms}
    targets = _modalities(data, mod)
    masks = [
        sex_mito_keep(adata, chrom_key=chrom_key, sex=sex, mito=mito, name=name or "adata")
        for name, adata in targets
    ]
    for (name, adata), keep in zip(targets, masks, strict=True):
        n_before = adata.n_vars
        adata._inplace_subset_var(keep)
        record_step(adata, "remove_sex_mito", {"sex_chroms": sorted(sex), "mito": bool(mito),
                                           "n_removed": int(n_before - keep.sum())})
        logger.info("remove_sex_mito%s: removed %d features", f" [{name}]" if name else "",
                    int(n_before - keep.sum()))
    if is_mudata(data):
        update_mudata(data)


# --------------------------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------------------------
def is_raw_counts(
    data, *, layer: str | None = None, n_cells: int = 1000, mod: str | None = None
) -> bool:
    """Whether a matrix holds raw counts rather than normalised / log-transformed values.

    Rule: look at up to ``n_cells`` evenly spaced cells (deterministic, no randomness); the matrix
    is raw counts iff every stored value there is finite, non-negative and an integer (within
    ``1e-6``). Normalised data (rows scaled to a library size) and log1p data have non-integer
    values almost surely; an all-zero sample counts as raw.

    Parameters
    ----------
    data
        AnnData, or MuData with ``mod`` (default ``"rna"``).
    layer
        Layer to test; ``None`` means ``.X``.
    n_cells
        Number of cells to look at.
    mod
        MuData modality.

    Returns
    -------
    bool
    """
    adata = single_modality(data, mod, "rna")
    n_cells = check_positive_int(n_cells, "n_cells")
    X = pp_matrix(adata, layer)
    if adata.n_obs == 0:
        raise AttuneInputError(f"{matrix_name(layer)} is empty (shape {X.shape})")
    from .._access import detect_input_state

    idx = np.unique(np.linspace(0, adata.n_obs - 1, min(n_cells, adata.n_obs)).round().astype(int))
    sub = X[idx]
    vals = sub.data if sp.issparse(sub) else np.asarray(sub).ravel()
    if vals.size and (not np.all(np.isfinite(vals)) or np.any(np.asarray(vals) < 0)):
        return False
    return detect_input_state(sub, n_cells=n_cells) in ("counts", "binary")


def normalize_log1p(
    data, *, target_sum: float = 1e4, mod: str | None = None
) -> None:
    """Library-size normalise to ``target_sum`` per cell and log1p ``.X`` (scanpy), as the input state allows.

    * raw counts (or 0/1 values): the counts are kept, unchanged, in ``.layers["counts"]``; ``.X``
      becomes ``log1p(normalize_total)``;
    * normalised values (CPM, size-factor or ambient-corrected counts): ``.X`` becomes
      ``log1p(normalize_total)`` too, but no ``counts`` layer is written (they are not counts);
    * log-normalised values: left as they are.

    The input state is the one recorded by :func:`attune_lib.datasets.read` (or
    :func:`attune_lib.pp.set_input_state`), else detected now (a WARNING when not raw counts).
    What was done is recorded in ``.uns["attune_pp"]["normalize_log1p"]``.

    Parameters
    ----------
    data
        AnnData, or MuData with ``mod`` (default ``"rna"``).
    target_sum
        Counts per cell after normalisation (10,000 in the paper).
    mod
        MuData modality.
    """
    import scanpy as sc

    adata = single_modality(data, mod, "rna")
    if not np.isfinite(target_sum) or target_sum <= 0:
        raise AttuneInputError(f"target_sum must be a positive number, got {target_sum!r}")
    check_values(adata.X, name=".X")
    state = ensure_input_state(adata, name=mod or "rna")
    if state == "log-normalised":
        logger.info("normalize_log1p: .X is already log-normalised; left as it is")
        record_step(adata, "normalize_log1p", {"detected": state, "skipped": True,
                                           "X": "log-normalised values as given"})
        return
    X = adata.X
    if state in ("counts", "binary"):
        adata.layers["counts"] = X.copy()
        record_layer_state(adata, "counts", state)
    if not np.issubdtype(X.dtype, np.floating):
        adata.X = X.astype(np.float32)
    sc.pp.normalize_total(adata, target_sum=target_sum)
    sc.pp.log1p(adata)
    record_layer_state(adata, None, "log-normalised")
    logger.info("normalize_log1p: .X held %s; normalised to %g per cell and log1p",
                {"counts": "raw counts", "binary": "0/1 values"}.get(state, f"{state} values"), target_sum)
    record_step(adata, "normalize_log1p", {"detected": state, "skipped": False, "target_sum": float(target_sum),
                                       "X": f"log1p(normalize_total {target_sum:g}) of {STATE_TEXT.get(state, state)}",
                                       "counts_layer": state in ("counts", "binary")})


def highly_variable_genes(
    data,
    *,
    n_top_genes: int = 2000,
    batch_key: str | None = None,
    subset: bool = True,
    mod: str | None = None,
) -> None:
    """Select highly variable genes with scanpy.

    Uses ``flavor="seurat_v3"`` on raw counts (``.layers["counts"]``, else ``.X`` when it still
    holds counts; needs ``scikit-misc``, else ``"seurat"`` with a warning), otherwise
    ``flavor="seurat"`` on the log-normalised ``.X``. ``n_top_genes`` is capped at ``n_vars``.

    Parameters
    ----------
    data
        AnnData, or MuData with ``mod`` (default ``"rna"``).
    n_top_genes
        Number of genes to keep.
    batch_key
        ``.obs`` column; when given, selection is batch-aware (scanpy's ``batch_key``).
    subset
        Subset to the selected genes; otherwise only ``.var["highly_variable"]`` is written.
    mod
        MuData modality.
    """
    import scanpy as sc

    adata = single_modality(data, mod, "rna")
    n_top_genes = check_positive_int(n_top_genes, "n_top_genes")
    _check_obs_key(adata, batch_key, "batch_key")
    n = min(n_top_genes, adata.n_vars)
    if "counts" in adata.layers and matrix_state(adata, "counts") == "counts":
        counts_src: str | None = "counts"
    elif matrix_state(adata, None) == "counts":
        counts_src = ".X"  # .X itself still holds the counts (not normalised yet)
    else:
        counts_src = None
    flavor = "seurat_v3" if counts_src else "seurat"
    if counts_src:
        try:
            import skmisc.loess  # noqa: F401
        except ImportError:
            if counts_src == ".X":
                raise AttuneInputError(
                    ".X holds raw counts and scikit-misc (needed by flavor 'seurat_v3') is not "
                    "installed; run normalize_log1p first or install scikit-misc"
                ) from None
            warnings.warn("scikit-misc is not installed; using flavor='seurat' instead of "
                          "'seurat_v3'", UserWarning, stacklevel=2)
            flavor = "seurat"
    layer = "counts" if counts_src == "counts" and flavor == "seurat_v3" else None
    check_values(pp_matrix(adata, layer), name=matrix_name(layer))
    if batch_key is not None and adata.obs[batch_key].isna().any():
        raise AttuneInputError(f".obs[{batch_key!r}] (batch_key) contains missing values")
    kwargs: dict[str, Any] = dict(n_top_genes=n, batch_key=batch_key, subset=False, flavor=flavor)
    if flavor == "seurat_v3":
        kwargs["layer"] = layer
    if n >= adata.n_vars:
        # nothing to choose; scanpy's loess can fail on tiny inputs, so do not call it
        adata.var["highly_variable"] = True
    else:
        sc.pp.highly_variable_genes(adata, **kwargs)
    record_step(adata, "highly_variable_genes", {"flavor": flavor, "n_top_genes": int(n),
                                             "batch_key": batch_key or "", "subset": bool(subset)})
    logger.info("highly_variable_genes: %d genes (flavor=%s%s)", n, flavor,
                f", batch_key={batch_key!r}" if batch_key else "")
    if subset:
        adata._inplace_subset_var(adata.var["highly_variable"].to_numpy(dtype=bool))
    if is_mudata(data):
        update_mudata(data)


@renamed_kwargs(random_state="seed")
def pca_rna(
    data,
    *,
    n_comps: int = 50,
    key_added: str = "X_pca",
    n_top_genes: int = 2000,
    seed: int = 0,
    mod: str | None = None,
) -> None:
    """GLUE's RNA reference representation, for the neighbour-conservation (NC) metric.

    On a copy: raw counts (``.layers["counts"]``, else ``.X`` if it holds counts) ->
    HVGs (existing ``.var["highly_variable"]``, else ``n_top_genes`` by seurat_v3) ->
    normalise total -> log1p -> scale (``max_value=10``) -> PCA ``n_comps``. When no raw counts
    exist, ``.X`` is taken as already log-normalised. Only ``.obsm[key_added]`` and
    ``.uns[key_added]`` are written to ``data``.

    Parameters
    ----------
    data
        AnnData, or MuData with ``mod`` (default ``"rna"``).
    n_comps
        Number of principal components (capped at ``min(n_obs, n_vars) - 1``).
    key_added
        ``.obsm`` key of the result.
    n_top_genes
        HVGs when none are marked yet.
    seed
        Seed of the PCA solver.
    mod
        MuData modality.
    """
    import anndata as ad
    import scanpy as sc

    adata = single_modality(data, mod, "rna")
    n_comps = check_positive_int(n_comps, "n_comps")
    n_top_genes = check_positive_int(n_top_genes, "n_top_genes")
    try:
        X, xname, _ = get_matrix(adata, "counts", where=mod or "rna", allow_binary=False)
        raw = True
    except AttuneInputError:
        X, xname, _ = get_matrix(adata, "log-normalised", where=mod or "rna")
        raw = False
        logger.info("pca_rna: no raw counts; using %s", xname)
    check_values(X, name=xname)
    tmp = ad.AnnData(X=X.copy().astype(np.float32), obs=pd.DataFrame(index=adata.obs_names),
                     var=pd.DataFrame(index=adata.var_names))
    if "highly_variable" in adata.var:
        hv = adata.var["highly_variable"].to_numpy(dtype=bool)
    elif n_top_genes < adata.n_vars:
        if raw:
            tmp.layers["counts"] = tmp.X.copy()
        sc.pp.highly_variable_genes(tmp, n_top_genes=n_top_genes,
                                    flavor="seurat_v3" if raw else "seurat",
                                    **({"layer": "counts"} if raw else {}))
        hv = tmp.var["highly_variable"].to_numpy(dtype=bool)
    else:
        hv = np.ones(adata.n_vars, dtype=bool)
    tmp = tmp[:, hv].copy()
    if raw:
        sc.pp.normalize_total(tmp, target_sum=1e4)
        sc.pp.log1p(tmp)
    if sp.issparse(tmp.X):  # scaling densifies anyway (HVG subset only)
        tmp.X = tmp.X.toarray()
    sc.pp.scale(tmp, max_value=10)
    n = min(n_comps, min(tmp.shape) - 1)
    if n < 1:
        raise AttuneInputError(f"too few cells/genes for PCA (shape {tmp.shape})")
    sc.pp.pca(tmp, n_comps=n, random_state=seed)
    adata.obsm[key_added] = np.asarray(tmp.obsm["X_pca"], dtype=np.float32)
    adata.uns[key_added] = {"n_comps": int(n), "n_genes": int(hv.sum()), "from_counts": raw,
                            "variance_ratio": np.asarray(tmp.uns["pca"]["variance_ratio"])}


# --------------------------------------------------------------------------------------------
# recipe
# --------------------------------------------------------------------------------------------
@renamed_kwargs(random_state="seed")
def preprocess_rna(
    data,
    *,
    min_fraction: float = 0.05,
    n_top_genes: int = 2000,
    batch_key: str | None = None,
    target_sum: float = 1e4,
    remove_sex: bool = True,
    n_comps: int | None = 50,
    seed: int = 0,
    mod: str | None = None,
) -> None:
    """The paper's RNA recipe, in place and atomic.

    filter genes detected in < ``min_fraction`` of cells -> drop sex-chromosome / mitochondrial
    genes -> keep raw counts in ``.layers["counts"]``, normalise to ``target_sum`` and log1p ``.X``
    (as the input state allows, see :func:`normalize_log1p`) -> subset to ``n_top_genes`` HVGs ->
    GLUE reference PCA in ``.obsm["X_pca"]`` (skipped when ``n_comps`` is None).

    The steps run on a copy, which replaces the data only when every step succeeded, so a
    failure leaves the input exactly as it was.

    Parameters
    ----------
    data
        AnnData, or MuData with ``mod`` (default ``"rna"``).
    min_fraction, n_top_genes, batch_key, target_sum
        See :func:`filter_features`, :func:`highly_variable_genes`, :func:`normalize_log1p`.
    remove_sex
        Run :func:`remove_sex_mito`.
    n_comps
        Components of :func:`pca_rna`; None skips it.
    seed
        Seed for the PCA.
    mod
        MuData modality.
    """
    adata = single_modality(data, mod, "rna")
    # validate everything before the first write
    min_fraction = check_fraction(min_fraction, "min_fraction")
    n_top_genes = check_positive_int(n_top_genes, "n_top_genes")
    n_comps = check_positive_int(n_comps, "n_comps", allow_none=True)
    _check_obs_key(adata, batch_key, "batch_key")
    if not np.isfinite(target_sum) or target_sum <= 0:
        raise AttuneInputError(f"target_sum must be a positive number, got {target_sum!r}")
    check_values(adata.X, name=".X")
    keep, _ = filter_mask(adata.X, min_fraction)
    if remove_sex:
        keep &= sex_mito_keep(adata, chrom_key="chrom", sex={"chrX", "chrY", "X", "Y"},
                               mito=True, name="rna")
    if not keep.any():
        raise AttuneInputError(
            f"no genes left after filtering with min_fraction={min_fraction}"
        )
    ensure_input_state(adata, name=mod or "rna")
    work = adata.copy()
    preprocess_rna_steps(work, min_fraction=min_fraction, remove_sex=remove_sex, target_sum=target_sum,
                          n_top_genes=n_top_genes, batch_key=batch_key, n_comps=n_comps,
                          seed=seed, name=mod or "rna")
    adata._init_as_actual(work)  # every step succeeded: replace the data in one go
    if is_mudata(data):
        update_mudata(data)


def preprocess_rna_steps(work, *, min_fraction, remove_sex, target_sum, n_top_genes, batch_key, n_comps,
                          seed, name) -> None:
    """The RNA recipe's steps, on a working copy."""
    n0 = work.n_vars
    filter_features(work, min_fraction=min_fraction)
    n1 = work.n_vars
    if remove_sex:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # already warned above
            remove_sex_mito(work)
    n2 = work.n_vars
    normalize_log1p(work, target_sum=target_sum)
    highly_variable_genes(work, n_top_genes=n_top_genes, batch_key=batch_key, subset=True)
    if n_comps is not None:
        pca_rna(work, n_comps=n_comps, seed=seed)
    record_step(work, "steps", {"input": work.uns["attune_pp"]["normalize_log1p"]["detected"],
                            "n_genes_input": int(n0), "after_filter": int(n1), "after_sex_mito": int(n2),
                            "after_hvg": int(work.n_vars)})
