"""ATAC preprocessing (TF-IDF, LSI, peak selection) and the joint MuData recipe.

Conventions
-----------
* TF-IDF follows Signac's default (method 1) as also used by GLUE's LSI:
  ``tf = counts / cell total``, ``idf = n_cells / peak total``,
  ``tfidf = log1p(tf * idf * 1e4)``. Cells or peaks with a zero total get 0.
* TF-IDF needs counts, binary or normalised (scaled-count) values: the term frequency divides each
  cell by its total, so a per-cell scaling cancels there (the IDF then weighs peaks by their scaled
  totals). Log-normalised input (logs, or TF-IDF
  already applied) is never transformed again: LSI then uses the values as given, and the record in
  ``.uns`` says so.
* LSI is a truncated (randomised) SVD of the TF-IDF matrix. With ``standardize=True`` (default,
  GLUE's convention in ``scglue.data.lsi``) the embedding is the left singular vectors ``U``,
  each cell (row) then centred and divided by its standard deviation (ddof=1) across
  components; with ``standardize=False`` it is ``U * S`` (scikit-learn's ``TruncatedSVD``
  output), whose columns are orthogonal. The first component, which mostly tracks sequencing
  depth, is dropped only when ``drop_first=True``.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._access import get_matrix, matrix_state, record_layer_state
from .._utils import AttuneInputError, check_values, get_modality, renamed_kwargs
from ._basic import (
    STATE_TEXT,
    check_fraction,
    check_positive_int,
    ensure_input_state,
    filter_features,
    filter_mask,
    is_mudata,
    matrix_name,
    pp_matrix,
    preprocess_rna_steps,
    record_step,
    remove_sex_mito,
    sex_mito_keep,
    single_modality,
    update_mudata,
)

logger = logging.getLogger("attune_lib")

__all__ = ["tfidf", "lsi", "select_top_peaks", "preprocess_atac", "preprocess"]

_SEX = {"chrX", "chrY", "X", "Y"}


def tfidf_matrix(X, scale_factor: float = 1e4) -> sp.csr_matrix:
    """Signac/GLUE TF-IDF of a count matrix as float32 CSR (see module docstring)."""
    X = sp.csr_matrix(X, dtype=np.float64)
    n_cells = X.shape[0]
    row = np.asarray(X.sum(axis=1)).ravel()
    col = np.asarray(X.sum(axis=0)).ravel()
    inv_row = np.divide(1.0, row, out=np.zeros_like(row), where=row > 0)
    idf = np.divide(n_cells, col, out=np.zeros_like(col), where=col > 0)
    out = sp.diags(inv_row) @ X @ sp.diags(idf * scale_factor)
    out = sp.csr_matrix(out)
    np.log1p(out.data, out=out.data)
    out.eliminate_zeros()
    return out.astype(np.float32)


def tfidf(
    data,
    *,
    layer: str | None = None,
    key_added: str = "tfidf",
    scale_factor: float = 1e4,
    mod: str | None = None,
) -> None:
    """TF-IDF transform of ATAC counts into ``.layers[key_added]`` (sparse, float32).

    ``log1p(counts / cell_total * n_cells / peak_total * scale_factor)`` (Signac method 1, GLUE).

    Parameters
    ----------
    data
        AnnData, or MuData with ``mod`` (default ``"atac"``).
    layer
        Count matrix to transform; ``None`` means ``.X``.
    key_added
        Layer that receives the result.
    scale_factor
        Multiplier before the log (10,000).
    mod
        MuData modality.
    """
    adata = single_modality(data, mod, "atac")
    if not np.isfinite(scale_factor) or scale_factor <= 0:
        raise AttuneInputError(f"scale_factor must be a positive number, got {scale_factor!r}")
    X = pp_matrix(adata, layer)
    check_values(X, name=matrix_name(layer))
    state = matrix_state(adata, layer)
    if state == "log-normalised":
        raise AttuneInputError(
            f"tfidf: {matrix_name(layer)} holds log-normalised values; TF-IDF needs counts, binary or normalised "
            "values. Pass layer=<a layer with counts>, or use the values as given (lsi(..., tfidf_key=None))")
    adata.layers[key_added] = tfidf_matrix(X, scale_factor)


@renamed_kwargs(random_state="seed")
def lsi(
    data,
    *,
    n_comps: int = 50,
    key_added: str = "X_lsi",
    use_highly_variable: bool = False,
    tfidf_key: str | None = "tfidf",
    drop_first: bool = False,
    standardize: bool = True,
    n_iter: int = 15,
    seed: int = 0,
    mod: str | None = None,
) -> None:
    """Latent semantic indexing: randomised truncated SVD of the TF-IDF matrix.

    Uses ``.layers[tfidf_key]`` when present; otherwise TF-IDF is computed on the fly from
    ``.layers["counts"]`` (or ``.X``) without being stored. Writes ``.obsm[key_added]``
    (cells x ``n_comps``), ``.varm[key_added]`` (peak loadings, orthonormal columns; zero rows for
    peaks left out by ``use_highly_variable``) and ``.uns[key_added]`` (singular values, params).
    See the module docstring for ``standardize`` and ``drop_first``.

    Parameters
    ----------
    data
        AnnData, or MuData with ``mod`` (default ``"atac"``).
    n_comps
        Number of components kept (after dropping the first if asked); capped at
        ``min(n_obs, n_features) - 1`` (minus one more with ``drop_first``).
    key_added
        ``.obsm``/``.varm``/``.uns`` key.
    use_highly_variable
        Only use features with ``.var["highly_variable"]``.
    tfidf_key
        Layer holding TF-IDF values; when absent (or None), TF-IDF is computed from the counts
        (or normalised values), and log-normalised values are used as given.
    drop_first
        Drop the first component.
    standardize
        GLUE's per-cell standardisation of ``U`` (True) or plain ``U * S`` (False).
    n_iter
        Power iterations of :func:`sklearn.utils.extmath.randomized_svd` (GLUE uses 15).
    seed
        Seed of the randomised SVD.
    mod
        MuData modality.
    """
    from sklearn.utils.extmath import randomized_svd

    adata = single_modality(data, mod, "atac")
    n_comps = check_positive_int(n_comps, "n_comps")
    n_iter = check_positive_int(n_iter, "n_iter")
    if use_highly_variable:
        if "highly_variable" not in adata.var:
            raise AttuneInputError(
                "use_highly_variable=True but .var['highly_variable'] is missing"
            )
        mask = adata.var["highly_variable"].to_numpy(dtype=bool)
    else:
        mask = np.ones(adata.n_vars, dtype=bool)
    if tfidf_key is not None and tfidf_key in adata.layers:
        X = adata.layers[tfidf_key]
        check_values(X, name=f".layers[{tfidf_key!r}]")
        X = sp.csr_matrix(X)[:, mask]
        source = f"layers[{tfidf_key!r}]"
    else:
        X, source, state = _lsi_input(adata)
        X = sp.csr_matrix(X)[:, mask]
        if state != "log-normalised":
            X = tfidf_matrix(X)
            source = f"TF-IDF of {source}"
    max_comps = min(X.shape) - 1 - int(drop_first)
    if max_comps < 1:
        raise AttuneInputError(f"too few cells/features for LSI (shape {X.shape})")
    n = min(n_comps, max_comps)
    if standardize and n < 2:
        raise AttuneInputError("n_comps must be >= 2 with standardize=True")
    if n < n_comps:
        logger.info("lsi: n_comps capped at %d by the data shape %s", n, X.shape)
    U, S, Vt = randomized_svd(X.astype(np.float64), n_components=n + int(drop_first),
                              n_iter=n_iter, random_state=seed)
    if drop_first:
        U, S, Vt = U[:, 1:], S[1:], Vt[1:]
    if standardize:
        emb = U - U.mean(axis=1, keepdims=True)
        sd = emb.std(axis=1, ddof=1, keepdims=True)
        # Cells with no counts have an all-zero row: leave it at zero rather than dividing by 0.
        emb = np.divide(emb, sd, out=np.zeros_like(emb), where=sd > 1e-8)
    else:
        emb = U * S
    loadings = np.zeros((adata.n_vars, n), dtype=np.float32)
    loadings[mask] = Vt.T
    adata.obsm[key_added] = emb.astype(np.float32)
    adata.varm[key_added] = loadings
    adata.uns[key_added] = {
        "singular_values": S.astype(np.float64),
        "params": {
            "n_comps": int(n),
            "drop_first": bool(drop_first),
            "standardize": bool(standardize),
            "use_highly_variable": bool(use_highly_variable),
            "seed": int(seed),
            "input": source,
        },
    }


def _lsi_input(adata):
    """(matrix, name, state) LSI starts from: counts when there are any, else ``.X`` as its state allows."""
    try:
        X, name, state = get_matrix(adata, "counts", where="atac")
    except AttuneInputError:
        X, name, state = get_matrix(adata, "any", where="atac")
    check_values(X, name=name)
    return X, name, state


def select_top_peaks(
    data, *, n_peaks: int, layer: str | None = None, mod: str | None = None
) -> None:
    """Keep the ``n_peaks`` peaks with the highest total counts (Signac's ``FindTopFeatures``).

    Ties are broken by the original order. Capped at ``n_vars``.

    Parameters
    ----------
    data
        AnnData, or MuData with ``mod`` (default ``"atac"``).
    n_peaks
        Number of peaks to keep.
    layer
        Counts; ``None`` means ``.X``.
    mod
        MuData modality.
    """
    adata = single_modality(data, mod, "atac")
    n_peaks = check_positive_int(n_peaks, "n_peaks")
    X = pp_matrix(adata, layer)
    check_values(X, name=matrix_name(layer))
    keep = _top_peaks_mask(X, n_peaks)
    adata._inplace_subset_var(keep)
    if is_mudata(data):
        update_mudata(data)


def _top_peaks_mask(X, n_peaks: int) -> np.ndarray:
    total = np.asarray(X.sum(axis=0)).ravel()
    keep = np.zeros(total.size, dtype=bool)
    keep[np.argsort(-total, kind="stable")[: min(n_peaks, total.size)]] = True
    return keep


#: default minimal number of cells a peak must be detected in (Signac's ``min.cells``-style rule).
#: The paper's 5 %-of-cells rule (``peak_min_fraction=0.05``) keeps about a quarter of the peaks of
#: PBMC 10k and under 2 % of those of very sparse data, so it is available but not the default.
PEAK_MIN_CELLS = 10


@renamed_kwargs(random_state="seed")
def preprocess_atac(
    data,
    *,
    min_fraction: float | None = None,
    min_cells: int | None = PEAK_MIN_CELLS,
    n_peaks: int | None = None,
    remove_sex: bool = True,
    n_comps: int | None = 50,
    seed: int = 0,
    mod: str | None = None,
) -> None:
    """The paper's ATAC recipe, in place and atomic, using what the input state allows.

    filter peaks accessible in fewer than ``min_cells`` cells (and ``min_fraction`` of the cells
    when given) -> drop sex-chromosome (and chrM) peaks -> optionally keep the ``n_peaks`` most
    accessible -> for counts (or 0/1 values): ``.layers["counts"]`` = ``.X`` = the counts and
    ``.layers["tfidf"]``; for normalised values: ``.layers["tfidf"]`` (its term frequency ignores
    per-cell scaling) and no ``counts`` layer; for log-normalised values: no TF-IDF and no
    ``counts`` layer -> ``.obsm["X_lsi"]`` (GLUE's ATAC reference for NC; from the TF-IDF, or from
    the log-normalised values as given; skipped when ``n_comps`` is None).

    A WARNING gives the numbers when the filter removes more than half of the peaks. The steps run
    on a copy that replaces the data only when all succeeded.

    Parameters
    ----------
    data
        AnnData, or MuData with ``mod`` (default ``"atac"``).
    min_fraction
        Minimal fraction of cells; None (default) applies only ``min_cells``. The paper used 0.05.
    min_cells
        Minimal number of cells (default :data:`PEAK_MIN_CELLS`).
    n_peaks
        Peaks to keep after filtering (by total counts), or None for all.
    remove_sex
        Run :func:`attune_lib.pp.remove_sex_mito`.
    n_comps
        LSI components; None skips LSI.
    seed
        Seed of the randomised SVD.
    mod
        MuData modality.
    """
    adata = single_modality(data, mod, "atac")
    min_fraction = None if min_fraction is None else check_fraction(min_fraction, "min_fraction")
    min_cells = check_positive_int(min_cells, "min_cells", allow_none=True)
    n_peaks = check_positive_int(n_peaks, "n_peaks", allow_none=True)
    n_comps = check_positive_int(n_comps, "n_comps", allow_none=True)
    _validate_atac(adata, min_fraction, min_cells, remove_sex, name=mod or "atac")
    work = adata.copy()
    _preprocess_atac_steps(work, min_fraction=min_fraction, min_cells=min_cells, remove_sex=remove_sex,
                           n_peaks=n_peaks, n_comps=n_comps, seed=seed)
    adata._init_as_actual(work)
    if is_mudata(data):
        update_mudata(data)


def _preprocess_atac_steps(work, *, min_fraction, min_cells, remove_sex, n_peaks, n_comps, seed) -> None:
    """The ATAC recipe's steps, on a working copy."""
    state = matrix_state(work, None)
    n0 = work.n_vars
    filter_features(work, min_fraction=min_fraction, min_cells=min_cells)
    n1 = work.n_vars
    if remove_sex:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # warned in _validate_atac
            remove_sex_mito(work)
    n2 = work.n_vars
    if n_peaks is not None and n_peaks < work.n_vars:
        work._inplace_subset_var(_top_peaks_mask(work.X, n_peaks))
    has_counts = "counts" in work.layers and matrix_state(work, "counts") == "counts"
    if state in ("counts", "binary") and not has_counts:  # never replace real counts by 0/1 values
        work.layers["counts"] = work.X.copy()
        record_layer_state(work, "counts", state)
    if state != "log-normalised":
        tfidf(work)
        record_layer_state(work, "tfidf", "log-normalised")
        transform = f"TF-IDF of {STATE_TEXT.get(state, state)}"
    else:
        transform = "none: log-normalised values used as given (no TF-IDF)"
    if n_comps is not None:
        lsi(work, n_comps=n_comps, seed=seed, tfidf_key="tfidf" if "tfidf" in work.layers else None)
    record_step(
        work,
        "preprocess_atac",
        {
            "n_peaks": int(work.n_vars),
            "lsi": n_comps is not None,
            "input": state,
            "X": f"{STATE_TEXT.get(state, state)} as given",
            "transform": transform,
            "counts_layer": state in ("counts", "binary"),
        },
    )
    record_step(work, "steps", {"input": state, "n_peaks_input": int(n0), "after_filter": int(n1),
                            "after_sex_mito": int(n2), "after_top_n": int(work.n_vars)})


def _validate_atac(adata, min_fraction: float | None, min_cells: int | None, remove_sex: bool,
                   name: str = "atac") -> None:
    check_values(adata.X, name=f"{name} .X")
    ensure_input_state(adata, name=name)
    keep, _ = filter_mask(adata.X, min_fraction, min_cells)
    if remove_sex:
        keep &= sex_mito_keep(adata, chrom_key="chrom", sex=_SEX, mito=True, name=name)
    if not keep.any():
        raise AttuneInputError(
            f"no peaks left after filtering with min_fraction={min_fraction}, min_cells={min_cells}")


@renamed_kwargs(random_state="seed")
@renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
def preprocess(
    mdata,
    *,
    rna_mod: str = "rna",
    atac_mod: str = "atac",
    n_top_genes: int = 2000,
    min_fraction: float = 0.05,
    peak_min_fraction: float | None = None,
    peak_min_cells: int | None = PEAK_MIN_CELLS,
    batch_key: str | None = None,
    n_peaks: int | None = None,
    n_comps: int | None = 50,
    seed: int = 0,
) -> None:
    """Run the paper's recipe on both modalities of a paired MuData, in place and atomic.

    RNA: :func:`attune_lib.pp.preprocess_rna` (``.X`` log-normalised, ``.layers["counts"]`` raw
    when the input was counts, 2,000 HVGs, ``.obsm["X_pca"]``). ATAC: :func:`preprocess_atac`
    (counts kept, ``.layers["tfidf"]``, ``.obsm["X_lsi"]``, as the input state allows). Each
    modality's input state is the one recorded by :func:`attune_lib.datasets.read`, else detected
    now (a WARNING when not raw counts). Cells are never dropped, so the modalities stay paired.
    Both modalities are processed on copies and replaced only when everything succeeded; then
    ``mdata.update()`` is called and a summary of what was really done (input states, transforms,
    feature counts after each step) is written to ``mdata.uns["attune_pp"]``.

    Parameters
    ----------
    mdata
        MuData with paired ``rna_mod`` and ``atac_mod`` modalities (same cells).
    rna_mod, atac_mod
        Modality names.
    n_top_genes
        HVGs kept.
    min_fraction
        Minimal detection fraction for genes (0.05, the paper's).
    peak_min_fraction
        Minimal detection fraction for peaks; None (default) applies only ``peak_min_cells``.
        The paper's setting is 0.05, which drops most peaks of sparse data.
    peak_min_cells
        Minimal number of cells a peak is detected in (default 10).
    batch_key
        Column of ``rna.obs`` (or ``mdata.obs``) for batch-aware HVG selection.
    n_peaks
        Keep this many most accessible peaks after filtering (None: all).
    n_comps
        Components of the reference PCA (RNA) and LSI (ATAC); None skips both.
    seed
        Seed for PCA and LSI.
    """
    rna = get_modality(mdata, rna_mod, role="RNA")
    atac = get_modality(mdata, atac_mod, role="ATAC")
    # ---- validate everything before any write
    min_fraction = check_fraction(min_fraction, "min_fraction")
    peak_min_fraction = None if peak_min_fraction is None else check_fraction(peak_min_fraction,
                                                                                "peak_min_fraction")
    peak_min_cells = check_positive_int(peak_min_cells, "peak_min_cells", allow_none=True)
    n_top_genes = check_positive_int(n_top_genes, "n_top_genes")
    n_peaks = check_positive_int(n_peaks, "n_peaks", allow_none=True)
    n_comps = check_positive_int(n_comps, "n_comps", allow_none=True)
    if rna.n_obs != atac.n_obs or not np.array_equal(rna.obs_names, atac.obs_names):
        raise AttuneInputError(
            f"modalities {rna_mod!r} ({rna.n_obs} cells) and {atac_mod!r} ({atac.n_obs} cells) "
            "are not paired: obs_names must be the same cells in the same order"
        )
    batch_from_mdata = False
    if batch_key is not None and batch_key not in rna.obs:
        if batch_key in mdata.obs:
            batch_from_mdata = True
        else:
            raise AttuneInputError(
                f"batch_key={batch_key!r} is neither a column of {rna_mod}.obs nor of mdata.obs"
            )
    check_values(rna.X, name=f"{rna_mod} .X")
    keep, _ = filter_mask(rna.X, min_fraction)
    keep &= sex_mito_keep(rna, chrom_key="chrom", sex=_SEX, mito=True, name=rna_mod)
    if not keep.any():
        raise AttuneInputError(f"no genes left after filtering with min_fraction={min_fraction}")
    ensure_input_state(rna, name=rna_mod)
    _validate_atac(atac, peak_min_fraction, peak_min_cells, True, name=atac_mod)
    # ---- run on copies; nothing is written to mdata until both modalities succeeded
    rna_w, atac_w = rna.copy(), atac.copy()
    if batch_from_mdata:
        rna_w.obs[batch_key] = mdata.obs.loc[rna.obs_names, batch_key].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # chrom warnings were given above
        preprocess_rna_steps(rna_w, min_fraction=min_fraction, remove_sex=True, target_sum=1e4,
                              n_top_genes=n_top_genes, batch_key=batch_key, n_comps=n_comps,
                              seed=seed, name=rna_mod)
        _preprocess_atac_steps(atac_w, min_fraction=peak_min_fraction, min_cells=peak_min_cells,
                               remove_sex=True, n_peaks=n_peaks, n_comps=n_comps, seed=seed)
    rna._init_as_actual(rna_w)
    atac._init_as_actual(atac_w)
    update_mudata(mdata)
    rna_pp, atac_pp = rna.uns["attune_pp"], atac.uns["attune_pp"]
    record: dict[str, Any] = {
        "params": {"n_top_genes": int(n_top_genes), "min_fraction": float(min_fraction),
                   "peak_min_fraction": -1.0 if peak_min_fraction is None else float(peak_min_fraction),
                   "peak_min_cells": int(peak_min_cells or 0),
                   "batch_key": batch_key or "", "n_peaks": -1 if n_peaks is None else int(n_peaks),
                   "n_comps": -1 if n_comps is None else int(n_comps),
                   "seed": int(seed), "target_sum": 1e4},
        "rna": {"input": rna_pp["steps"]["input"], "n_genes": int(rna.n_vars),
                "X": rna_pp["normalize_log1p"]["X"], "steps": dict(rna_pp["steps"]),
                "layers": sorted(rna.layers), "obsm": sorted(rna.obsm)},
        "atac": {"input": atac_pp["steps"]["input"], "n_peaks": int(atac.n_vars),
                 "X": atac_pp["preprocess_atac"]["X"], "transform": atac_pp["preprocess_atac"]["transform"],
                 "steps": dict(atac_pp["steps"]), "layers": sorted(atac.layers), "obsm": sorted(atac.obsm)},
    }
    mdata.uns["attune_pp"] = record
    logger.info("preprocess: %d cells, %d genes (%s input), %d peaks (%s input)", mdata.n_obs, rna.n_vars,
                record["rna"]["input"], atac.n_vars, record["atac"]["input"])
