"""Agreement of clusters with known labels, and of imputed profiles with noise-free truth."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from .._utils import AttuneInputError
from ._prediction import genewise_pearson

__all__ = ["clustering_agreement", "imputation_agreement"]


def clustering_agreement(labels_true, labels_pred) -> dict[str, float]:
    """Adjusted Rand index and normalised mutual information (scikit-learn) of two labelings.

    Parameters
    ----------
    labels_true
        Reference labels, one per cell.
    labels_pred
        Predicted labels (e.g. clusters), same cells.
    """
    a = np.asarray(labels_true)
    b = np.asarray(labels_pred)
    if a.shape != b.shape or a.ndim != 1:
        raise AttuneInputError(f"labels_true and labels_pred must be 1-D of equal length, got {a.shape} and {b.shape}")
    return {"ari": float(adjusted_rand_score(a, b)), "nmi": float(normalized_mutual_info_score(a, b))}


def imputation_agreement(truth, imputed, *, normalize: bool = True, target_sum: float = 1e4) -> dict:
    """Gene-wise Pearson correlation between imputed values and the noise-free truth.

    Parameters
    ----------
    truth
        Noise-free expression, cells x genes, on the log-normalised scale (the simulator's
        ``rna.layers["truth_mean"]``).
    imputed
        Imputed means (e.g. scMVP's negative-binomial means), cells x genes.
    normalize
        Bring ``imputed`` to the truth's scale first: per cell to ``target_sum``, then ``log1p``.
    target_sum
        Total per cell the rows are scaled to when ``normalize`` (before log1p).

    Returns
    -------
    ``{"mean_pearson": float, "median_pearson": float, "per_gene": ndarray}``.
    """
    t = truth.toarray() if sp.issparse(truth) else np.asarray(truth, dtype=float)
    x = imputed.toarray() if sp.issparse(imputed) else np.asarray(imputed, dtype=float)
    if t.shape != x.shape:
        raise AttuneInputError(f"truth {t.shape} and imputed {x.shape} differ in shape")
    if normalize:
        totals = x.sum(axis=1, keepdims=True)
        x = np.log1p(np.divide(x * target_sum, totals, out=np.zeros_like(x), where=totals > 0))
    r = genewise_pearson(t, x)
    return {"mean_pearson": float(np.nanmean(r)), "median_pearson": float(np.nanmedian(r)), "per_gene": r}
