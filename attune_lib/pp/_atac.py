"""ATAC preprocessing (TF-IDF, LSI, peak selection) and the joint MuData recipe.

Conventions
-----------
* TF-IDF follows Signac's default (method 1) as also used by GLUE's LSI:
  ``tf = counts / cell total``, ``idf = n_cells / peak total``,
  ``tfidf = log1p(tf * idf * 1e4)``. Cells or peaks with a zero total get 0.
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

from .._utils import AttuneInputError, check_values, get_modality
from ._basic import (
    _check_fraction,
    _check_positive_int,
    _filter_mask,
    _get_matrix,
    _is_mudata,
    _record,
    _sex_mito_keep,
    _single,
    _update,
    _xname,
    filter_features,
    is_raw_counts,
    preprocess_rna,
    remove_sex_mito,
)

logger = logging.getLogger("attune_lib")

__all__ = ["tfidf", "lsi", "select_top_peaks", "preprocess_atac", "preprocess"]

_SEX = {"chrX", "chrY", "X", "Y"}


def _tfidf_matrix(X, scale_factor: float = 1e4) -> sp.csr_matrix:
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
    adata = _single(data, mod, "atac")
    if not np.isfinite(scale_factor) or scale_factor <= 0:
        raise AttuneInputError(f"scale_factor must be a positive number, got {scale_factor!r}")
    X = _get_matrix(adata, layer)
    check_values(X, name=_xname(layer))
    adata.layers[key_added] = _tfidf_matrix(X, scale_factor)


def lsi(
    data,
    *,
    n_comps: int = 50,
    key_added: str = "X_lsi",
    use_highly_variable: bool = False,
    tfidf_key: str = "tfidf",
    drop_first: bool = False,
    standardize: bool = True,
    n_iter: int = 15,
    random_state: int = 0,
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
        Layer holding TF-IDF values.
    drop_first
        Drop the first component.
    standardize
        GLUE's per-cell standardisation of ``U`` (True) or plain ``U * S`` (False).
    n_iter
        Power iterations of :func:`sklearn.utils.extmath.randomized_svd` (GLUE uses 15).
    random_state
        Seed of the randomised SVD.
    mod
        MuData modality.
    """
    from sklearn.utils.extmath import randomized_svd

    adata = _single(data, mod, "atac")
    n_comps = _check_positive_int(n_comps, "n_comps")
    n_iter = _check_positive_int(n_iter, "n_iter")
    if use_highly_variable:
        if "highly_variable" not in adata.var:
            raise AttuneInputError(
                "use_highly_variable=True but .var['highly_variable'] is missing"
            )
        mask = adata.var["highly_variable"].to_numpy(dtype=bool)
    else:
        mask = np.ones(adata.n_vars, dtype=bool)
    if tfidf_key in adata.layers:
        X = adata.layers[tfidf_key]
        check_values(X, name=f".layers[{tfidf_key!r}]")
        X = sp.csr_matrix(X)[:, mask]
    else:
        counts = adata.layers["counts"] if "counts" in adata.layers else adata.X
        check_values(counts, name=".layers['counts']" if "counts" in adata.layers else ".X")
        X = _tfidf_matrix(sp.csr_matrix(counts)[:, mask])
    max_comps = min(X.shape) - 1 - int(drop_first)
    if max_comps < 1:
        raise AttuneInputError(f"too few cells/features for LSI (shape {X.shape})")
    n = min(n_comps, max_comps)
    if standardize and n < 2:
        raise AttuneInputError("n_comps must be >= 2 with standardize=True")
    if n < n_comps:
        logger.info("lsi: n_comps capped at %d by the data shape %s", n, X.shape)
    U, S, Vt = randomized_svd(X.astype(np.float64), n_components=n + int(drop_first),
                              n_iter=n_iter, random_state=random_state)
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
            "random_state": int(random_state),
        },
    }


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
    adata = _single(data, mod, "atac")
    n_peaks = _check_positive_int(n_peaks, "n_peaks")
    X = _get_matrix(adata, layer)
    check_values(X, name=_xname(layer))
    keep = _top_peaks_mask(X, n_peaks)
    adata._inplace_subset_var(keep)
    if _is_mudata(data):
        _update(data)


def _top_peaks_mask(X, n_peaks: int) -> np.ndarray:
    total = np.asarray(X.sum(axis=0)).ravel()
    keep = np.zeros(total.size, dtype=bool)
    keep[np.argsort(-total, kind="stable")[: min(n_peaks, total.size)]] = True
    return keep


def preprocess_atac(
    data,
    *,
    min_fraction: float = 0.05,
    n_peaks: int | None = None,
    remove_sex: bool = True,
    n_comps: int | None = 50,
    random_state: int = 0,
    mod: str | None = None,
) -> None:
    """The paper's ATAC recipe, in place.

    filter peaks accessible in < ``min_fraction`` of cells -> drop sex-chromosome (and chrM)
    peaks -> optionally keep the ``n_peaks`` most accessible -> ``.layers["counts"]`` = raw
    counts, ``.X`` stays the raw counts (the model chooses its own input transform) ->
    ``.layers["tfidf"]`` -> ``.obsm["X_lsi"]`` (GLUE's ATAC reference for NC; skipped when
    ``n_comps`` is None).

    Parameters
    ----------
    data
        AnnData, or MuData with ``mod`` (default ``"atac"``).
    min_fraction
        See :func:`attune_lib.pp.filter_features`.
    n_peaks
        Peaks to keep after filtering (by total counts), or None for all.
    remove_sex
        Run :func:`attune_lib.pp.remove_sex_mito`.
    n_comps
        LSI components; None skips LSI.
    random_state
        Seed of the randomised SVD.
    mod
        MuData modality.
    """
    adata = _single(data, mod, "atac")
    min_fraction = _check_fraction(min_fraction, "min_fraction")
    n_peaks = _check_positive_int(n_peaks, "n_peaks", allow_none=True)
    n_comps = _check_positive_int(n_comps, "n_comps", allow_none=True)
    _validate_atac(adata, min_fraction, remove_sex)
    filter_features(adata, min_fraction=min_fraction)
    if remove_sex:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # warned in _validate_atac
            remove_sex_mito(adata)
    if n_peaks is not None and n_peaks < adata.n_vars:
        adata._inplace_subset_var(_top_peaks_mask(adata.X, n_peaks))
    adata.layers["counts"] = adata.X.copy()
    tfidf(adata)
    if n_comps is not None:
        lsi(adata, n_comps=n_comps, random_state=random_state)
    _record(adata, "preprocess_atac", {"n_peaks": int(adata.n_vars), "lsi": n_comps is not None})
    if _is_mudata(data):
        _update(data)


def _validate_atac(adata, min_fraction: float, remove_sex: bool) -> None:
    check_values(adata.X, name="atac .X")
    if not is_raw_counts(adata):
        logger.warning("preprocess_atac: .X does not look like raw counts (non-integer values)")
    keep, _ = _filter_mask(adata.X, min_fraction)
    if remove_sex:
        keep &= _sex_mito_keep(adata, chrom_key="chrom", sex=_SEX, mito=True, name="atac")
    if not keep.any():
        raise AttuneInputError(f"no peaks left after filtering with min_fraction={min_fraction}")


def preprocess(
    mdata,
    *,
    rna_key: str = "rna",
    atac_key: str = "atac",
    n_top_genes: int = 2000,
    min_fraction: float = 0.05,
    batch_key: str | None = None,
    n_peaks: int | None = None,
    n_comps: int | None = 50,
    random_state: int = 0,
) -> None:
    """Run the paper's recipe on both modalities of a paired MuData, in place.

    RNA: :func:`attune_lib.pp.preprocess_rna` (``.X`` log-normalised, ``.layers["counts"]`` raw,
    2,000 HVGs, ``.obsm["X_pca"]``). ATAC: :func:`preprocess_atac` (``.X`` and
    ``.layers["counts"]`` raw, ``.layers["tfidf"]``, ``.obsm["X_lsi"]``). Cells are never dropped,
    so the modalities stay paired; ``mdata.update()`` is called at the end and a summary is
    written to ``mdata.uns["attune_pp"]``.

    Parameters
    ----------
    mdata
        MuData with paired ``rna_key`` and ``atac_key`` modalities (same cells).
    rna_key, atac_key
        Modality names.
    n_top_genes
        HVGs kept.
    min_fraction
        Minimal detection fraction for genes and peaks.
    batch_key
        Column of ``rna.obs`` (or ``mdata.obs``) for batch-aware HVG selection.
    n_peaks
        Keep this many most accessible peaks after filtering (None: all).
    n_comps
        Components of the reference PCA (RNA) and LSI (ATAC); None skips both.
    random_state
        Seed for PCA and LSI.
    """
    rna = get_modality(mdata, rna_key, role="RNA")
    atac = get_modality(mdata, atac_key, role="ATAC")
    # ---- validate everything before any write
    min_fraction = _check_fraction(min_fraction, "min_fraction")
    n_top_genes = _check_positive_int(n_top_genes, "n_top_genes")
    n_peaks = _check_positive_int(n_peaks, "n_peaks", allow_none=True)
    n_comps = _check_positive_int(n_comps, "n_comps", allow_none=True)
    if rna.n_obs != atac.n_obs or not np.array_equal(rna.obs_names, atac.obs_names):
        raise AttuneInputError(
            f"modalities {rna_key!r} ({rna.n_obs} cells) and {atac_key!r} ({atac.n_obs} cells) "
            "are not paired: obs_names must be the same cells in the same order"
        )
    batch_from_mdata = False
    if batch_key is not None and batch_key not in rna.obs:
        if batch_key in mdata.obs:
            batch_from_mdata = True
        else:
            raise AttuneInputError(
                f"batch_key={batch_key!r} is neither a column of {rna_key}.obs nor of mdata.obs"
            )
    check_values(rna.X, name=f"{rna_key} .X")
    keep, _ = _filter_mask(rna.X, min_fraction)
    keep &= _sex_mito_keep(rna, chrom_key="chrom", sex=_SEX, mito=True, name=rna_key)
    if not keep.any():
        raise AttuneInputError(f"no genes left after filtering with min_fraction={min_fraction}")
    _validate_atac(atac, min_fraction, True)
    # ---- run
    if batch_from_mdata:
        rna.obs[batch_key] = mdata.obs.loc[rna.obs_names, batch_key].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # chrom warnings were given above
        preprocess_rna(rna, min_fraction=min_fraction, n_top_genes=n_top_genes,
                       batch_key=batch_key, n_comps=n_comps, random_state=random_state)
        preprocess_atac(atac, min_fraction=min_fraction, n_peaks=n_peaks, n_comps=n_comps,
                        random_state=random_state)
    _update(mdata)
    record: dict[str, Any] = {
        "params": {"n_top_genes": int(n_top_genes), "min_fraction": float(min_fraction),
                   "batch_key": batch_key or "", "n_peaks": -1 if n_peaks is None else int(n_peaks),
                   "n_comps": -1 if n_comps is None else int(n_comps),
                   "random_state": int(random_state), "target_sum": 1e4},
        "rna": {"n_genes": int(rna.n_vars), "X": "log1p(normalize_total 1e4)",
                "layers": sorted(rna.layers), "obsm": sorted(rna.obsm)},
        "atac": {"n_peaks": int(atac.n_vars), "X": "raw counts",
                 "layers": sorted(atac.layers), "obsm": sorted(atac.obsm)},
    }
    mdata.uns["attune_pp"] = record
    logger.info("preprocess: %d cells, %d genes, %d peaks", mdata.n_obs, rna.n_vars, atac.n_vars)
