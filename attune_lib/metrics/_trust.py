"""Trust diagnostics: flags that say when an integration or a prediction is not to be trusted.

Good pairing is not good biology. A contrastive model can match every RNA profile to its own ATAC
profile (FOSCTTM near 0) while its embedding keeps no cell-type structure at all, and a predictor
can report a mean gene-wise Pearson of 0.01 that is a hair above zero and means nothing. These
functions put each headline number next to the level it must beat, and raise plain flags:

* integration: label structure (GLUE's MAP of known labels) of each modality's own embedding, of
  the joint one and of the modality's own reference (PCA of RNA, LSI of ATAC), each next to the
  MAP of *shuffled* labels on the same neighbours (the chance level). The label signal is
  ``(MAP - chance) / (1 - chance)``: 0 at chance, 1 when every neighbour shares the label.
* prediction: the mean gene-wise Pearson next to a permutation null (the same predictions scored
  against cells in shuffled order), and the number of genes predicted as a constant.

Flags are returned, written into benchmark tables and given as :class:`TrustWarning`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .._utils import AttuneInputError, renamed_kwargs
from ._integration import as_embedding, as_labels, check_frac, foscttm, knn_indices, map_from_knn, n_neighbors_for

__all__ = [
    "TrustWarning",
    "LABEL_SIGNAL_MIN",
    "label_structure",
    "integration_trust",
    "prediction_trust",
]

#: below this label signal an embedding is said to keep (almost) no label structure
LABEL_SIGNAL_MIN = 0.15
#: pairing at or below this FOSCTTM is "good" (a random embedding gives 0.5)
GOOD_PAIRING = 0.1
#: a joint embedding keeping less than this share of its best reference's label signal "loses structure"
RELATIVE_MIN = 0.5
#: mean gene-wise Pearson below which a prediction is at noise level whatever its p-value
MIN_PEARSON = 0.05
#: share of genes predicted as a constant above which a predictor is flagged
MAX_CONSTANT_FRACTION = 0.10


class TrustWarning(UserWarning):
    """A result is not to be trusted (e.g. pairing without biology, predictions at noise level)."""


@renamed_kwargs(random_state="seed")
def label_structure(x, labels, *, n_shuffles: int = 10, neighbor_frac: float = 0.01,
                    seed: int = 0) -> dict[str, float]:
    """Label MAP of an embedding next to its chance level (MAP of shuffled labels, same neighbours).

    Parameters
    ----------
    x
        Embedding, cells x dims.
    labels
        One label per cell (e.g. cell types).
    n_shuffles
        Label permutations averaged for the chance level.
    neighbor_frac
        Neighbourhood size as a fraction of the cells (GLUE's MAP).
    seed
        Seed of the permutations.

    Returns
    -------
    dict
        ``map``, ``map_shuffled`` (mean), ``map_shuffled_sd`` and ``label_signal``
        = ``(map - map_shuffled) / (1 - map_shuffled)``.
    """
    x = as_embedding(x, "x")
    y = as_labels(labels, x.shape[0], "labels")
    if int(n_shuffles) < 1:
        raise AttuneInputError(f"n_shuffles must be >= 1, got {n_shuffles!r}")
    nni = knn_indices(x, n_neighbors_for(x.shape[0], check_frac(neighbor_frac)))
    rng = np.random.default_rng(seed)
    observed = map_from_knn(nni, y)
    null = np.array([map_from_knn(nni, rng.permutation(y)) for _ in range(int(n_shuffles))])
    chance = float(null.mean())
    signal = (observed - chance) / max(1.0 - chance, 1e-12)
    return {"map": observed, "map_shuffled": chance, "map_shuffled_sd": float(null.std()),
            "label_signal": float(signal)}


def _warn(flags: list[str], where: str, warn: bool) -> None:
    if warn:
        for f in flags:
            warnings.warn(f"{where}: {f}", TrustWarning, stacklevel=3)


@renamed_kwargs(random_state="seed")
def integration_trust(rna, atac, labels, *, references: Mapping[str, np.ndarray] | None = None,
                      name: str = "embedding", n_shuffles: int = 10, neighbor_frac: float = 0.01,
                      seed: int = 0, warn: bool = True) -> dict:
    """Is this integration to be trusted? Pairing next to the label structure it keeps, with flags.

    Parameters
    ----------
    rna, atac
        The method's RNA and ATAC cell embeddings (same cells, same order). The joint embedding
        is their concatenation after scaling each to unit mean norm.
    labels
        Known labels (cell types), one per cell. Without annotations, clusters of one modality's
        reference (e.g. k-means of the RNA PCA) can stand in; then say so when reporting.
    references
        Each modality's own embedding, e.g. ``{"RNA PCA": X_pca, "ATAC LSI": X_lsi}``: the label
        structure that is there to be kept.
    name
        Name of the method, for the flags and warnings.
    n_shuffles, neighbor_frac, seed
        See :func:`label_structure`.
    warn
        Issue each flag as a :class:`TrustWarning`.

    Returns
    -------
    dict
        ``foscttm``; ``label`` (DataFrame, one row per embedding: ``rna``, ``atac``, ``joint`` and
        each reference, with ``map``, ``map_shuffled``, ``label_signal``); ``flags`` (list of
        plain sentences about the method, empty when nothing is wrong), ``flag`` (them joined by
        "; ") and ``data_flags`` (sentences about the data: a reference without label structure).

    Notes
    -----
    Flags: "pairs cells but keeps no label structure" (FOSCTTM <= 0.1 and joint label signal
    < 0.15); "keeps no label structure" (joint signal < 0.15 without good pairing); "keeps less
    label structure than <reference>" (joint signal below half the best reference's, when that
    reference has signal >= 0.15). Data flag: "<reference> alone carries no label structure"
    (that modality has no label information to add, so aligning to it cannot help biology).
    """
    rna = as_embedding(rna, "rna")
    atac = as_embedding(atac, "atac")
    if rna.shape[0] != atac.shape[0]:
        raise AttuneInputError(f"rna ({rna.shape[0]} cells) and atac ({atac.shape[0]} cells) must hold the same cells")
    y = as_labels(labels, rna.shape[0], "labels")

    def unit(z):
        return z / max(float(np.linalg.norm(z, axis=1).mean()), 1e-12)

    embs = {"rna": rna, "atac": atac, "joint": np.hstack([unit(rna), unit(atac)])}
    for key, ref in (references or {}).items():
        embs[str(key)] = as_embedding(ref, f"references[{key!r}]")
    rows = {k: label_structure(v, y, n_shuffles=n_shuffles, neighbor_frac=neighbor_frac,
                               seed=seed) for k, v in embs.items()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "embedding"
    fos = foscttm(rna, atac) if rna.shape[1] == atac.shape[1] else float("nan")
    joint = rows["joint"]["label_signal"]
    flags = []
    if joint < LABEL_SIGNAL_MIN:
        if np.isfinite(fos) and fos <= GOOD_PAIRING:
            flags.append(f"{name} pairs cells (FOSCTTM {fos:.3f}) but keeps no label structure "
                         f"(label MAP {rows['joint']['map']:.2f} vs {rows['joint']['map_shuffled']:.2f} "
                         "for shuffled labels)")
        else:
            flags.append(f"{name} keeps no label structure (label MAP {rows['joint']['map']:.2f} vs "
                         f"{rows['joint']['map_shuffled']:.2f} for shuffled labels)")
    refs = {k: rows[k]["label_signal"] for k in (references or {})}
    if refs:
        best = max(refs, key=refs.get)
        if refs[best] >= LABEL_SIGNAL_MIN and joint < RELATIVE_MIN * refs[best]:
            flags.append(f"{name} keeps less label structure than {best} alone (label signal {joint:.2f} vs "
                         f"{refs[best]:.2f})")
    data_flags = [f"{k} alone carries no label structure (label signal {v:.2f})"
                  for k, v in refs.items() if v < LABEL_SIGNAL_MIN]
    _warn(flags, name, warn)
    _warn(data_flags, "data", warn)
    return {"foscttm": fos, "label": table, "flags": flags, "flag": "; ".join(flags), "data_flags": data_flags}


def _genewise_pearson(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson per column; constant columns give 0 (a constant prediction explains nothing)."""
    a = y_true - y_true.mean(axis=0)
    b = y_pred - y_pred.mean(axis=0)
    den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    return np.divide((a * b).sum(axis=0), den, out=np.zeros(a.shape[1]), where=den > 0)


@renamed_kwargs(random_state="seed")
def prediction_trust(y_true, y_pred, *, name: str = "prediction", predictable=None, n_permutations: int = 20,
                     seed: int = 0, warn: bool = True) -> dict:
    """Is this RNA prediction to be trusted? Its gene-wise Pearson against a permutation null, with flags.

    Parameters
    ----------
    y_true, y_pred
        Observed and predicted expression, cells x genes (test cells only).
    name
        Name of the method, for the flags and warnings.
    predictable
        Boolean mask of the genes (columns) known to be predictable, e.g. those another method predicts
        above chance. A constant prediction for an unpredictable gene is the right answer, so only
        constants among these genes are flagged. None: every gene counts.
    n_permutations
        Times the cells of the prediction are shuffled to build the null.
    seed
        Seed of the permutations.
    warn
        Issue each flag as a :class:`TrustWarning`.

    Returns
    -------
    dict
        ``mean_pearson`` (constant predictions count as 0), ``null_mean``, ``null_q95`` (95th
        percentile of the permuted means), ``n_constant`` (genes predicted as a constant while
        observed values vary), ``n_constant_predictable`` (of those, genes in ``predictable``),
        ``frac_constant`` (of the genes counted), ``noise`` (bool), ``flags`` and ``flag``.

    Notes
    -----
    Flags: "predictions at noise level" when the mean Pearson does not exceed the null's 95th
    percentile or is below 0.05 (under 0.25 % of variance explained per gene: useless whatever
    the p-value); "predicts a constant for N of M genes" when more than 5 % of the (predictable)
    genes are.
    """
    yt = np.asarray(y_true.toarray() if hasattr(y_true, "toarray") else y_true, dtype=np.float64)
    yp = np.asarray(y_pred.toarray() if hasattr(y_pred, "toarray") else y_pred, dtype=np.float64)
    if yt.shape != yp.shape or yt.ndim != 2:
        raise AttuneInputError(f"y_true {yt.shape} and y_pred {yp.shape} must be matching 2-D arrays")
    if yt.shape[0] < 3:
        raise AttuneInputError(f"need at least 3 cells to judge a prediction, got {yt.shape[0]}")
    varies = yt.std(axis=0) > 0
    if predictable is not None:
        predictable = np.asarray(predictable, dtype=bool)
        if predictable.shape != (yt.shape[1],):
            raise AttuneInputError(f"predictable must be a boolean mask of {yt.shape[1]} genes, "
                                   f"got shape {predictable.shape}")
        predictable = predictable[varies]
    yt, yp = yt[:, varies], yp[:, varies]
    r = _genewise_pearson(yt, yp)
    rng = np.random.default_rng(seed)
    null = np.array([_genewise_pearson(yt, yp[rng.permutation(yp.shape[0])]).mean()
                     for _ in range(int(n_permutations))])
    sd = yp.std(axis=0)
    constant = sd <= 1e-7 * np.maximum(np.abs(yp).mean(axis=0), 1e-12)
    counted = constant if predictable is None else constant & predictable
    n_counted = int(r.size if predictable is None else predictable.sum())
    out = {"mean_pearson": float(r.mean()) if r.size else float("nan"), "null_mean": float(null.mean()),
           "null_q95": float(np.quantile(null, 0.95)), "n_genes": int(r.size), "n_constant": int(constant.sum()),
           "n_constant_predictable": int(counted.sum()),
           "frac_constant": float(counted.sum() / n_counted) if n_counted else 0.0}
    out["noise"] = not out["mean_pearson"] > max(out["null_q95"], MIN_PEARSON)
    flags = []
    if out["noise"]:
        flags.append(f"{name} predictions at noise level (mean gene-wise Pearson {out['mean_pearson']:.3f}; "
                     f"permuted cells {out['null_mean']:.3f}, 95th percentile {out['null_q95']:.3f})")
    if out["frac_constant"] > MAX_CONSTANT_FRACTION:
        which = "genes" if predictable is None else "genes that another method predicts above chance"
        flags.append(f"{name} predicts a constant for {int(counted.sum())} of {n_counted} {which}")
    _warn(flags, name, warn)
    out.update(flags=flags, flag="; ".join(flags))
    return out
