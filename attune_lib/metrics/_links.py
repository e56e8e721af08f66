"""Link-ranking metrics that control for distance.

A peak-gene score can look good overall just because it prefers near peaks: true regulatory links are
closer to their genes than the other candidates are. :func:`distance_matched_auroc` removes that
advantage by comparing true and other pairs only within strata of similar distance.
"""

from __future__ import annotations

import numpy as np

from .._utils import AttuneInputError

__all__ = ["distance_matched_auroc", "distance_strata"]


def distance_strata(distance, labels, *, n_strata: int = 10) -> np.ndarray:
    """Stratum index of every candidate: strata hold equal numbers of true pairs, by distance.

    The edges are the quantiles of the true pairs' distances (so each stratum holds about
    ``len(true) / n_strata`` true pairs); the first stratum starts at 0 and the last extends to
    infinity, so every candidate falls in one stratum. Ties in the edges merge strata.

    Parameters
    ----------
    distance
        Distance of every candidate (bp), 1-D.
    labels
        Boolean (or 0/1) truth of every candidate.
    n_strata
        Number of strata (>= 1).

    Returns
    -------
    numpy.ndarray
        Integer stratum of each candidate (0 = nearest).
    """
    d = np.asarray(distance, dtype=float)
    y = np.asarray(labels).astype(bool)
    if d.ndim != 1 or y.shape != d.shape:
        raise AttuneInputError(f"distance and labels must be 1-D of equal length, got {d.shape} and {y.shape}")
    if not np.isfinite(d).all():
        raise AttuneInputError("distance has non-finite values")
    if isinstance(n_strata, bool) or not isinstance(n_strata, (int, np.integer)) or n_strata < 1:
        raise AttuneInputError(f"n_strata must be an integer >= 1, got {n_strata!r}")
    if not y.any():
        return np.zeros(len(d), dtype=int)
    inner = np.unique(np.quantile(d[y], np.linspace(0, 1, n_strata + 1)[1:-1]))
    return np.searchsorted(inner, d, side="right")


def distance_matched_auroc(labels, scores, distance, *, n_strata: int = 10, weights: str = "equal",
                           return_strata: bool = False):
    """AUROC within distance strata, averaged: how well a score ranks pairs *at equal distance*.

    Candidates are cut into ``n_strata`` distance strata holding equal numbers of true pairs
    (:func:`distance_strata`); within each stratum that has both true and other pairs the AUROC is
    computed (``sklearn.metrics.roc_auc_score``), and the strata's AUROCs are averaged. Distance alone
    scores close to 0.5 on this metric (it only ranks within a stratum), so it measures what a score
    adds to proximity.

    Parameters
    ----------
    labels
        Boolean truth of each candidate.
    scores
        Score of each candidate (higher = more likely a link). Non-finite scores count as the lowest.
    distance
        Distance of each candidate (bp).
    n_strata
        Number of strata.
    weights
        ``"equal"`` (mean over strata) or ``"positives"`` (weighted by each stratum's number of true pairs).
    return_strata
        Also return the per-stratum table.

    Returns
    -------
    float or (float, pandas.DataFrame)
        The matched AUROC (NaN when no stratum has both classes); with ``return_strata``, also a
        DataFrame ``stratum, d_min, d_max, n_pairs, n_pos, auroc``.
    """
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=float)
    if s.shape != y.shape:
        raise AttuneInputError(f"scores have shape {s.shape}, labels {y.shape}")
    if weights not in ("equal", "positives"):
        raise AttuneInputError(f"weights must be 'equal' or 'positives', got {weights!r}")
    bad = ~np.isfinite(s)
    if bad.any():
        s = s.copy()
        s[bad] = (s[~bad].min() - 1.0) if (~bad).any() else 0.0
    d = np.asarray(distance, dtype=float)
    k = distance_strata(d, y, n_strata=n_strata)
    rows = []
    for j in np.unique(k):
        sel = k == j
        yy = y[sel]
        au = float(roc_auc_score(yy, s[sel])) if 0 < yy.sum() < len(yy) else np.nan
        rows.append({"stratum": int(j), "d_min": float(d[sel].min()), "d_max": float(d[sel].max()),
                     "n_pairs": int(sel.sum()), "n_pos": int(yy.sum()), "auroc": au})
    tab = pd.DataFrame(rows, columns=["stratum", "d_min", "d_max", "n_pairs", "n_pos", "auroc"])
    ok = tab["auroc"].notna()
    if not ok.any():
        value = float("nan")
    elif weights == "equal":
        value = float(tab.loc[ok, "auroc"].mean())
    else:
        value = float(np.average(tab.loc[ok, "auroc"], weights=tab.loc[ok, "n_pos"]))
    return (value, tab) if return_strata else value
