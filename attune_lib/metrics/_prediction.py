"""Cross-modal prediction metrics (ATAC -> RNA): gene-wise correlations and RMSE.

Matrices are cells x genes; "gene-wise" means one value per column, computed over cells.
A gene whose observed or predicted values are constant across cells has an undefined
correlation: it gets NaN and is left out of the means (with a warning saying how many).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import pearsonr, rankdata

from .._utils import AttuneInputError, check_values

__all__ = ["genewise_pearson", "genewise_spearman", "rmse", "prediction_metrics"]


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    arrs = []
    for name, a in (("y_true", y_true), ("y_pred", y_pred)):
        a = a.toarray() if sp.issparse(a) else np.asarray(a)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise AttuneInputError(
                f"{name} must be a 2-D array (cells x genes), got shape {a.shape}"
            )
        check_values(a, name=name, allow_negative=True)
        arrs.append(a.astype(np.float64, copy=False))
    if arrs[0].shape != arrs[1].shape:
        raise AttuneInputError(
            f"y_true and y_pred must have the same shape, got {arrs[0].shape} and {arrs[1].shape}"
        )
    if arrs[0].shape[0] < 2:
        raise AttuneInputError("need at least 2 cells for gene-wise correlations")
    return arrs[0], arrs[1]


def _constant(a: np.ndarray) -> np.ndarray:
    return np.ptp(a, axis=0) == 0


def _columnwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.full(a.shape[1], np.nan)
    ok = ~(_constant(a) | _constant(b))
    if ok.any():
        out[ok] = pearsonr(a[:, ok], b[:, ok], axis=0).statistic
    return out


def genewise_pearson(y_true, y_pred) -> np.ndarray:
    """Pearson correlation between observed and predicted values of each gene.

    Parameters
    ----------
    y_true, y_pred
        Cells x genes (dense or sparse).

    Returns
    -------
    ndarray
        One value per gene; NaN where either side is constant.
    """
    a, b = _pair(y_true, y_pred)
    return _columnwise_pearson(a, b)


def genewise_spearman(y_true, y_pred) -> np.ndarray:
    """Spearman correlation per gene: Pearson of the ranks (average ranks for ties).

    Parameters
    ----------
    y_true, y_pred
        Cells x genes (dense or sparse).

    Returns
    -------
    ndarray
        One value per gene; NaN where either side is constant.
    """
    a, b = _pair(y_true, y_pred)
    return _columnwise_pearson(rankdata(a, axis=0), rankdata(b, axis=0))


def rmse(y_true, y_pred, *, per_gene: bool = False):
    """Root mean squared error over all entries (or per gene with ``per_gene=True``).

    Parameters
    ----------
    y_true, y_pred
        Cells x genes.
    per_gene
        Return one value per gene instead of the overall RMSE.

    Returns
    -------
    float or ndarray
    """
    a, b = _pair(y_true, y_pred)
    sq = (a - b) ** 2
    if per_gene:
        return np.sqrt(sq.mean(axis=0))
    return float(np.sqrt(sq.mean()))


def prediction_metrics(
    y_true, y_pred, *, gene_names: Sequence[str] | None = None
) -> tuple[dict[str, float], pd.DataFrame]:
    """Summary and per-gene table of prediction quality.

    Parameters
    ----------
    y_true, y_pred
        Observed and predicted (log-normalised) expression, cells x genes.
    gene_names
        Index of the per-gene table (default ``"0", "1", ...``).

    Returns
    -------
    summary : dict
        ``pearson`` and ``spearman`` (means over genes with defined correlations), ``rmse``
        (overall), ``n_genes``, ``n_genes_constant`` (genes left out of the correlation means).
    per_gene : DataFrame
        Columns ``pearson``, ``spearman``, ``rmse``, ``mean_true``, ``mean_pred``.
    """
    a, b = _pair(y_true, y_pred)
    n_genes = a.shape[1]
    if gene_names is None:
        index = pd.Index([str(i) for i in range(n_genes)], name="gene")
    else:
        index = pd.Index(list(gene_names), name="gene")
        if len(index) != n_genes:
            raise AttuneInputError(
                f"gene_names has {len(index)} entries but y_true has {n_genes} genes"
            )
    pear = _columnwise_pearson(a, b)
    spear = _columnwise_pearson(rankdata(a, axis=0), rankdata(b, axis=0))
    per_gene = pd.DataFrame(
        {"pearson": pear, "spearman": spear, "rmse": np.sqrt(((a - b) ** 2).mean(axis=0)),
         "mean_true": a.mean(axis=0), "mean_pred": b.mean(axis=0)},
        index=index,
    )
    n_const = int(np.isnan(pear).sum())
    if n_const:
        warnings.warn(
            f"{n_const} of {n_genes} gene(s) are constant in y_true or y_pred; their "
            "correlations are NaN and excluded from the means",
            UserWarning,
            stacklevel=2,
        )
    summary = {
        "pearson": float(np.nanmean(pear)) if n_const < n_genes else float("nan"),
        "spearman": float(np.nanmean(spear)) if n_const < n_genes else float("nan"),
        "rmse": float(np.sqrt(((a - b) ** 2).mean())),
        "n_genes": int(n_genes),
        "n_genes_constant": n_const,
    }
    return summary, per_gene
