"""Cross-modal prediction benchmark (paper Fig. 2F-H): RNA from ATAC, baselines and ablations.

Every setting is trained and scored on the same splits of the cells:

* ``attune_finetuned`` - Attune pretrained (contrastive, both modalities) on the non-test cells, then
  its ATAC student fine-tuned with the prediction head (:class:`attune_lib.models.RNAPredictor`);
* ``mlp_denovo`` - the same network trained from random weights;
* ``lasso`` - scikit-learn LASSO per gene (one alpha per gene chosen by K-fold CV on the non-test cells)
  on LSI components (default) or TF-IDF values of the most detected peaks;
* ``lsi_ridge`` - LSI components + :class:`sklearn.linear_model.RidgeCV` (one alpha per gene, efficient
  leave-one-out CV);
* ``lasso_peaks`` (optional, slow) - the same LASSO on the standardised TF-IDF of the most detected peaks.

Test cells are never read while fitting anything: the Attune pretraining, the TF-IDF idf, the LSI
projection, the standardisation and every cross-validation use the training (+ validation) cells
only. The MLPs choose their epoch on the validation cells (a fraction of the non-test cells).

Metrics are those of :mod:`attune_lib.metrics` (gene-wise Pearson and Spearman over the test cells,
RMSE). A gene whose *prediction* is constant (e.g. a LASSO fit with all coefficients zero) gets
correlation 0 (no information) instead of NaN, so every method is averaged over the same genes;
genes constant in the *observed* test cells are NaN for every method and left out of all means. On
the simulator, ``pearson_truth`` is the correlation of the prediction with the noise-free
expression (``rna.layers["truth_mean"]``) and the ``noise_free`` rows use the noise-free expression
as the prediction: their ``pearson`` (``corr(truth_mean, measured)``) is the ceiling any predictor
can reach on the measured values.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._utils import AttuneInputError, as_csr, check_values, get_modality, progress, renamed_kwargs
from ..metrics import genewise_pearson, prediction_metrics

logger = logging.getLogger("attune_lib")

__all__ = [
    "CONTRASTS",
    "DEFAULT_SETTINGS",
    "PREDICTION_SETTINGS",
    "LSITransform",
    "evaluate_prediction",
    "fit_lasso",
    "fit_lsi_ridge",
    "make_splits",
    "paper_prediction_values",
    "run_contrast_ablation_prediction",
    "run_prediction_benchmark",
    "summarize_prediction",
]

#: settings understood by :func:`run_prediction_benchmark`
PREDICTION_SETTINGS = ("attune_finetuned", "mlp_denovo", "lasso", "lsi_ridge", "lasso_peaks")
#: the settings run by default
DEFAULT_SETTINGS = ("attune_finetuned", "mlp_denovo", "lasso", "lsi_ridge")
#: Attune contrast designs (paper Fig. 2H; ``cross`` is the paper's RtAs_RsAt)
CONTRASTS = ("default", "intra", "cross")


# --------------------------------------------------------------------------------------------- splits
def make_splits(n_cells: int, *, split: str = "holdout", n_splits: int = 5, test_fraction: float = 0.2,
                validation_fraction: float = 0.1, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Train / validation / test cell indices for each repetition or fold.

    Parameters
    ----------
    n_cells
        Number of cells.
    split
        ``"holdout"``: ``n_splits`` independent random splits with ``test_fraction`` of the cells as test
        (the paper's 80/20 repeated 5 times). ``"kfold"``: ``n_splits``-fold cross-validation; the test
        folds are disjoint and together cover every cell once.
    n_splits
        Repetitions (holdout, >= 1) or folds (kfold, >= 2).
    test_fraction
        Test share for ``"holdout"`` (ignored by ``"kfold"``, where it is ``1 / n_splits``).
    validation_fraction
        Share of the non-test cells held out as validation (epoch choice, early stopping).
    seed
        Seeds every split (split ``i`` uses the stream ``(seed, i)``).

    Returns
    -------
    list of ``(train, val, test)``
        Sorted int64 arrays; in each tuple they are disjoint and their union is ``range(n_cells)``.
    """
    if isinstance(n_cells, bool) or not isinstance(n_cells, (int, np.integer)) or n_cells < 3:
        raise AttuneInputError(f"n_cells must be an integer >= 3, got {n_cells!r}")
    if split not in ("holdout", "kfold"):
        raise AttuneInputError(f"split must be 'holdout' or 'kfold', got {split!r}")
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 1:
        raise AttuneInputError(f"n_splits must be a positive integer, got {n_splits!r}")
    if split == "kfold" and not 2 <= n_splits <= n_cells:
        raise AttuneInputError(f"n_splits must be in [2, n_cells={n_cells}] for split='kfold', got {n_splits}")
    if not 0.0 < test_fraction < 1.0:
        raise AttuneInputError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if not 0.0 < validation_fraction < 1.0:
        raise AttuneInputError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    n = int(n_cells)
    if split == "kfold":
        perm = np.random.default_rng([seed, 0]).permutation(n)
        tests = np.array_split(perm, n_splits)
    else:
        n_test = min(max(1, round(test_fraction * n)), n - 2)
        tests = [np.random.default_rng([seed, i]).permutation(n)[:n_test] for i in range(n_splits)]
    out = []
    for i, test in enumerate(tests):
        rest = np.setdiff1d(np.arange(n), test)
        n_val = min(max(1, round(validation_fraction * rest.size)), rest.size - 2)
        if n_val < 1:
            raise AttuneInputError(f"too few cells ({n}) for a train/validation/test split")
        rest = np.random.default_rng([seed, i, 1]).permutation(rest)
        out.append((np.sort(rest[n_val:]).astype(np.int64), np.sort(rest[:n_val]).astype(np.int64),
                    np.sort(test).astype(np.int64)))
    return out


# ---------------------------------------------------------------------------------------- baselines
class LSITransform:
    """TF-IDF + truncated SVD fitted on training cells only, then applied to any cells.

    TF-IDF as :func:`attune_lib.pp.tfidf` (``log1p(tf * idf * 1e4)``) but with the idf of the training
    cells; the SVD components are the training cells' top right singular vectors; the output
    (``X V``, i.e. ``U S`` for training cells) is standardised with the training mean and sd.

    Parameters
    ----------
    n_components
        LSI components (capped at ``min(n_train, n_peaks) - 1``).
    seed
        Seed of the randomised SVD.
    tfidf
        Apply TF-IDF (counts, binary or normalised input); False uses the values as given, for
        log-normalised input, which must never be transformed as if it were counts.
    """

    def __init__(self, n_components: int = 50, *, seed: int = 0, tfidf: bool = True):
        if int(n_components) < 1:
            raise AttuneInputError(f"n_components must be >= 1, got {n_components}")
        self.n_components = int(n_components)
        self.seed = seed
        self.use_tfidf = bool(tfidf)

    @staticmethod
    def _tf(X: sp.csr_matrix) -> sp.csr_matrix:
        row = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
        inv = np.divide(1.0, row, out=np.zeros_like(row), where=row > 0)
        return sp.csr_matrix(sp.diags(inv) @ X)

    def tfidf(self, X) -> sp.csr_matrix:
        """TF-IDF with the fitted idf (the values as given when ``tfidf=False``)."""
        if not self.use_tfidf:
            return as_csr(X, np.float64)
        T = sp.csr_matrix(self._tf(as_csr(X, np.float64)) @ sp.diags(self.idf_ * 1e4))
        np.log1p(T.data, out=T.data)
        return T

    def fit(self, X) -> LSITransform:
        from sklearn.decomposition import TruncatedSVD

        X = as_csr(X, np.float64)
        col = np.asarray(X.sum(axis=0)).ravel()
        self.idf_ = np.divide(X.shape[0], col, out=np.zeros_like(col), where=col > 0)
        T = self.tfidf(X)
        k = max(1, min(self.n_components, min(T.shape) - 1))
        self.svd_ = TruncatedSVD(k, algorithm="randomized", n_iter=7, random_state=self.seed).fit(T)
        Z = self.svd_.transform(T)
        self.mean_ = Z.mean(axis=0)
        sd = Z.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        return self

    def transform(self, X) -> np.ndarray:
        return (self.svd_.transform(self.tfidf(X)) - self.mean_) / self.scale_


class _LinearPredictor:
    """``Y = (X - mean) / scale @ coef + intercept`` (one column per gene)."""

    def __init__(self, transform, coef: np.ndarray, intercept: np.ndarray, alpha: np.ndarray):
        self.transform = transform
        self.coef_ = coef
        self.intercept_ = intercept
        self.alpha_ = alpha

    def predict(self, X) -> np.ndarray:
        return (self.transform(X) @ self.coef_ + self.intercept_).astype(np.float32)


def _top_peak_transform(X_train, n_peaks: int, tfidf: bool = True):
    """TF-IDF (training idf) of the ``n_peaks`` peaks detected in most training cells, standardised."""
    X_train = as_csr(X_train, np.float64)
    det = np.diff(sp.csc_matrix(X_train).indptr)
    keep = np.sort(np.argsort(-det, kind="stable")[: min(int(n_peaks), X_train.shape[1])])
    lsi = LSITransform(1, tfidf=tfidf)
    col = np.asarray(X_train.sum(axis=0)).ravel()
    lsi.idf_ = np.divide(X_train.shape[0], col, out=np.zeros_like(col), where=col > 0)
    T = lsi.tfidf(X_train)[:, keep].toarray()
    mean, sd = T.mean(axis=0), T.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)

    def transform(X):
        return (lsi.tfidf(X)[:, keep].toarray() - mean) / sd

    return transform, keep


def fit_lasso(X_train, Y_train, *, input: str = "lsi", n_components: int = 50, n_peaks: int = 2000,
              n_alphas: int = 12, alpha_ratio: float = 1e-3, cv: int = 4, seed: int = 0,
              max_iter: int = 2000, tol: float = 1e-3, tfidf: bool = True) -> _LinearPredictor:
    """LASSO per gene with its alpha chosen by K-fold CV on the training cells.

    Parameters
    ----------
    X_train
        ATAC counts (or binary) of the training cells, cells x peaks.
    Y_train
        Log-normalised expression of the training cells, cells x genes.
    input
        ``"lsi"``: standardised LSI components (``n_components``) fitted on the training cells;
        ``"peaks"``: standardised TF-IDF of the ``n_peaks`` most detected peaks (slower).
    n_alphas, alpha_ratio
        Log-spaced grid from the smallest alpha zeroing every gene (``alpha_max``) down to
        ``alpha_ratio * alpha_max``.
    cv
        Folds of the cross-validation (over the training cells only).
    seed
        Seeds the fold assignment and the LSI.
    max_iter, tol
        Coordinate-descent settings of :class:`sklearn.linear_model.Lasso`.
    tfidf
        TF-IDF the ATAC input (False for log-normalised input, used as given).
    n_components
        LSI components for ``input="lsi"``.
    n_peaks
        Most detected peaks used for ``input="peaks"``.

    Returns
    -------
    Object with ``predict(X)`` (cells x genes), ``coef_``, ``intercept_`` and ``alpha_`` (per gene).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso
    from sklearn.model_selection import KFold

    if input not in ("lsi", "peaks"):
        raise AttuneInputError(f"lasso input must be 'lsi' or 'peaks', got {input!r}")
    if int(cv) < 2:
        raise AttuneInputError(f"cv must be >= 2, got {cv}")
    Y = np.asarray(Y_train.toarray() if sp.issparse(Y_train) else Y_train, dtype=np.float64)
    X_train = as_csr(X_train, np.float64)

    def make(Xtr):
        if input == "lsi":
            lsi = LSITransform(n_components, seed=seed, tfidf=tfidf).fit(Xtr)
            return lsi.transform
        return _top_peak_transform(Xtr, n_peaks, tfidf)[0]

    def path(Z, Yt, alphas):
        """Predictions for each alpha (warm-started from the largest)."""
        Zm, Ym = Z.mean(axis=0), Yt.mean(axis=0)
        model = Lasso(alpha=alphas[0], fit_intercept=False, warm_start=True, max_iter=max_iter, tol=tol,
                      selection="cyclic")
        coefs = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for a in alphas:
                model.set_params(alpha=a)
                model.fit(Z - Zm, Yt - Ym)
                coefs.append(np.atleast_2d(model.coef_).T.copy())  # features x genes
        return Zm, Ym, coefs

    tf_all = make(X_train)
    Z_all = tf_all(X_train)
    Zc, Yc = Z_all - Z_all.mean(axis=0), Y - Y.mean(axis=0)
    alpha_max = float(np.abs(Zc.T @ Yc).max() / Z_all.shape[0])
    if alpha_max <= 0:
        alpha_max = 1.0
    alphas = alpha_max * np.logspace(0, np.log10(alpha_ratio), int(n_alphas))
    errs = np.zeros((len(alphas), Y.shape[1]))
    folds = KFold(int(cv), shuffle=True, random_state=seed).split(np.arange(X_train.shape[0]))
    for tr, va in folds:
        tf = make(X_train[tr])
        Zm, Ym, coefs = path(tf(X_train[tr]), Y[tr], alphas)
        Zv = tf(X_train[va]) - Zm
        for i, B in enumerate(coefs):
            errs[i] += ((Zv @ B + Ym - Y[va]) ** 2).mean(axis=0)
    best = errs.argmin(axis=0)
    Zm, Ym, coefs = path(Z_all, Y, alphas)
    coef = np.stack([coefs[b][:, g] for g, b in enumerate(best)], axis=1)
    intercept = Ym - Zm @ coef
    return _LinearPredictor(tf_all, coef, intercept, alphas[best])


def fit_lsi_ridge(X_train, Y_train, *, n_components: int = 50, alphas: Sequence[float] | None = None,
                  seed: int = 0, tfidf: bool = True) -> _LinearPredictor:
    """LSI (fitted on the training cells) + ridge regression with one alpha per gene (efficient LOO CV).

    Parameters
    ----------
    X_train, Y_train
        ATAC counts and log-normalised expression of the training cells.
    n_components
        LSI components.
    alphas
        Ridge penalties tried (default ``logspace(-3, 5, 33)``).
    seed
        Seed of the LSI.
    tfidf
        TF-IDF the ATAC input (False for log-normalised input, used as given).
    """
    from sklearn.linear_model import RidgeCV

    lsi = LSITransform(n_components, seed=seed, tfidf=tfidf).fit(X_train)
    Y = np.asarray(Y_train.toarray() if sp.issparse(Y_train) else Y_train, dtype=np.float64)
    grid = np.logspace(-3, 5, 33) if alphas is None else np.asarray(alphas, dtype=float)
    ridge = RidgeCV(alphas=grid, alpha_per_target=True).fit(lsi.transform(X_train), Y)
    alpha = np.broadcast_to(np.asarray(ridge.alpha_, dtype=float), (Y.shape[1],)).copy()
    return _LinearPredictor(lsi.transform, np.atleast_2d(ridge.coef_).T, np.asarray(ridge.intercept_), alpha)


# ---------------------------------------------------------------------------------------- metrics
def evaluate_prediction(y_true, y_pred, *, gene_names: Sequence[str] | None = None,
                        truth=None) -> tuple[dict[str, float], pd.DataFrame]:
    """Gene-wise metrics of one prediction, with constant predictions scored as correlation 0.

    Wraps :func:`attune_lib.metrics.prediction_metrics`. Genes whose *prediction* is constant over the
    test cells (but whose observed values vary) get Pearson and Spearman 0 instead of NaN, so every
    method is averaged over the same genes; genes constant in ``y_true`` stay NaN and are left out.

    Parameters
    ----------
    y_true, y_pred
        Observed and predicted log-normalised expression, test cells x genes.
    gene_names
        Index of the per-gene table.
    truth
        Noise-free expression of the same cells (simulator): adds ``pearson_truth`` (prediction vs
        truth) and ``ceiling_pearson`` (truth vs observed) per gene and their means to the summary.

    Returns
    -------
    summary, per_gene
        As :func:`attune_lib.metrics.prediction_metrics`, plus ``n_genes_constant_pred`` and the
        per-gene column ``constant_pred``; means are recomputed after the filling.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*constant in y_true or y_pred.*")
        summary, per_gene = prediction_metrics(y_true, y_pred, gene_names=gene_names)
    yt = y_true.toarray() if sp.issparse(y_true) else np.asarray(y_true)
    yp = y_pred.toarray() if sp.issparse(y_pred) else np.asarray(y_pred)
    if yt.ndim == 1:
        yt, yp = yt[:, None], yp[:, None]
    const_true = np.ptp(yt, axis=0) == 0
    const_pred = (np.ptp(yp, axis=0) == 0) & ~const_true
    per_gene["constant_pred"] = const_pred
    per_gene.loc[const_pred, ["pearson", "spearman"]] = 0.0
    summary["pearson"] = float(np.nanmean(per_gene["pearson"])) if (~const_true).any() else float("nan")
    summary["spearman"] = float(np.nanmean(per_gene["spearman"])) if (~const_true).any() else float("nan")
    summary["n_genes_constant"] = int(const_true.sum())
    summary["n_genes_constant_pred"] = int(const_pred.sum())
    if truth is not None:
        tr = truth.toarray() if sp.issparse(truth) else np.asarray(truth)
        if tr.ndim == 1:
            tr = tr[:, None]
        if tr.shape != yt.shape:
            raise AttuneInputError(f"truth has shape {tr.shape}, expected {yt.shape}")
        const_truth = np.ptp(tr, axis=0) == 0
        pt = genewise_pearson(tr, yp) if not (const_truth.all() or (np.ptp(yp, axis=0) == 0).all()) \
            else np.full(yt.shape[1], np.nan)
        pt = np.where((np.ptp(yp, axis=0) == 0) & ~const_truth, 0.0, pt)
        ceiling = genewise_pearson(tr, yt) if not const_truth.all() else np.full(yt.shape[1], np.nan)
        per_gene["pearson_truth"] = pt
        per_gene["ceiling_pearson"] = ceiling
        summary["pearson_truth"] = float(np.nanmean(pt)) if np.isfinite(pt).any() else float("nan")
        summary["ceiling_pearson"] = float(np.nanmean(ceiling)) if np.isfinite(ceiling).any() else float("nan")
    return summary, per_gene


# ------------------------------------------------------------------------------------- benchmark
def _method_name(setting: str, contrast: str | None) -> str:
    if setting == "attune_finetuned" and contrast not in (None, "default"):
        return f"attune_finetuned_{contrast}"
    return setting


def _minimal_mudata(X_atac: sp.csr_matrix, Y: np.ndarray, obs_names, genes, peaks):
    import anndata as ad
    import mudata as md

    obs = pd.DataFrame(index=pd.Index(obs_names, dtype=str))
    rna = ad.AnnData(sp.csr_matrix(Y), obs=obs.copy(), var=pd.DataFrame(index=pd.Index(genes, dtype=str)))
    atac = ad.AnnData(X_atac, obs=obs.copy(), var=pd.DataFrame(index=pd.Index(peaks, dtype=str)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return md.MuData({"rna": rna, "atac": atac})


def _check_settings(settings, contrasts) -> tuple[list[str], list[str]]:
    if isinstance(settings, str):
        settings = [settings]
    settings = list(settings)
    bad = [s for s in settings if s not in PREDICTION_SETTINGS]
    if bad or not settings:
        raise AttuneInputError(f"settings must be a non-empty subset of {PREDICTION_SETTINGS}, got {bad or settings}")
    if isinstance(contrasts, str):
        contrasts = [contrasts]
    contrasts = list(contrasts)
    bad = [c for c in contrasts if c not in CONTRASTS]
    if bad or not contrasts:
        raise AttuneInputError(f"contrasts must be a non-empty subset of {CONTRASTS}, got {bad or contrasts}")
    return list(dict.fromkeys(settings)), list(dict.fromkeys(contrasts))


@renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
def run_prediction_benchmark(
    mdata,
    *,
    settings: Sequence[str] = DEFAULT_SETTINGS,
    contrasts: Sequence[str] = ("default",),
    split: str = "holdout",
    n_splits: int = 5,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.1,
    seed: int = 0,
    pretrain_epochs: int = 20,
    pretrain_lr: float = 1e-4,
    pretrain_lr_end: float = 1e-6,
    pretrain_batch_size: int = 128,
    attune_kwargs: dict | None = None,
    finetune_epochs: int = 40,
    finetune_lr: float = 1e-3,
    batch_size: int = 128,
    patience: int | None = 10,
    n_head: int = 1000,
    lsi_components: int = 50,
    lasso_input: str = "lsi",
    lasso_n_peaks: int = 2000,
    lasso_n_alphas: int = 12,
    cv: int = 4,
    rna_mod: str = "rna",
    atac_mod: str = "atac",
    rna_layer: str | None = None,
    atac_layer: str | None = "counts",
    truth_layer: str | None = "truth_mean",
    include_ceiling: bool = True,
    device: str = "auto",
    progress_bar: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compare ATAC -> RNA predictors on the same splits (paper Fig. 2F-H).

    Parameters
    ----------
    mdata
        Preprocessed paired MuData (:func:`attune_lib.pp.preprocess`): log-normalised RNA, ATAC counts.
    settings
        Subset of :data:`PREDICTION_SETTINGS`: ``attune_finetuned``, ``mlp_denovo``, ``lasso``, ``lsi_ridge``
        (the default) and ``lasso_peaks`` (LASSO on the ``lasso_n_peaks`` most detected peaks; slow).
    contrasts
        Attune contrast designs pretrained for ``attune_finetuned`` (``("default", "intra", "cross")`` for
        the Fig. 2H ablation); methods are named ``attune_finetuned`` (default) and
        ``attune_finetuned_<contrast>``.
    split, n_splits, test_fraction, validation_fraction, seed
        See :func:`make_splits`; ``seed`` also seeds every model (split ``i`` uses ``seed + i``).
    pretrain_epochs, pretrain_lr, pretrain_lr_end, pretrain_batch_size
        Attune contrastive pretraining (paper: 20 epochs, 1e-4 -> 1e-6, batch 128) on the non-test cells.
    attune_kwargs
        Extra :class:`~attune_lib.models.Attune` arguments (``n_hidden``, ``n_latent``, ``dropout``, ...);
        the de novo MLP uses the same encoder architecture.
    finetune_epochs, finetune_lr, batch_size, patience, n_head
        Prediction network training (paper: 40 epochs, Adam 1e-3, batch 128, 1,000 hidden units); the
        epoch kept is the best on the validation cells; ``patience`` stops early (None: never).
    lsi_components
        LSI components of ``lsi_ridge`` (and of ``lasso`` with ``lasso_input="lsi"``).
    lasso_input, lasso_n_peaks, lasso_n_alphas, cv
        Input of the ``lasso`` setting (``"lsi"`` or ``"peaks"``), peaks used by ``"peaks"`` and by the
        ``lasso_peaks`` setting, alpha grid size and CV folds; see :func:`fit_lasso`.
    rna_mod, atac_mod
        Modalities.
    rna_layer
        Log-normalised expression (target and Attune RNA input); None = ``.X``.
    atac_layer
        ATAC counts (input of every setting); None = ``.X``. Without a ``counts`` layer the ATAC
        values are used by their input state: TF-IDF for counts or normalised values, as given for
        log-normalised ones (never TF-IDF of logs).
    truth_layer
        Noise-free expression layer of the RNA modality (simulator); used when present.
    include_ceiling
        Add ``noise_free`` rows (prediction = ``truth_layer``) when the truth is present.
    device
        Torch device for Attune and the MLPs (``"auto"``: CUDA when available).
    progress_bar
        Progress bars (one over the runs, one per training).

    Returns
    -------
    summary
        One row per (method, split): ``method, setting, contrast, split, n_train, n_val, n_test, pearson,
        spearman, rmse, n_genes, n_genes_constant, n_genes_constant_pred, best_epoch, epochs_run,
        null_pearson_q95, flag, seconds`` (+ ``pearson_truth``, ``ceiling_pearson`` with a truth
        layer). ``null_pearson_q95`` is the 95th percentile of the mean Pearson with the test cells
        shuffled; ``flag`` says, in words, when predictions are at noise level or constant for many
        genes (see :func:`attune_lib.metrics.prediction_trust`), and each flagged method is also
        reported as a :class:`~attune_lib.metrics.TrustWarning`.
    per_gene
        One row per (method, split, gene) with ``pearson, spearman, rmse, mean_true, mean_pred,
        constant_pred`` (+ ``pearson_truth``, ``ceiling_pearson``).
    """
    from ..models import Attune  # torch loads here only
    from ..models._prediction import RNAPredictor

    settings, contrasts = _check_settings(settings, contrasts)
    for name, v in (("pretrain_epochs", pretrain_epochs), ("finetune_epochs", finetune_epochs)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise AttuneInputError(f"{name} must be a positive integer, got {v!r}")
    rna = get_modality(mdata, rna_mod, role="RNA")
    atac = get_modality(mdata, atac_mod, role="ATAC")
    if rna.n_obs != atac.n_obs or not rna.obs_names.equals(atac.obs_names):
        raise AttuneInputError(f"mdata[{rna_mod!r}] and mdata[{atac_mod!r}] must hold the same cells in the same order")
    from .._access import get_matrix, matrix_state

    if atac_layer == "counts" and "counts" not in atac.layers:
        atac_layer = None  # no counts layer (normalised input): the ATAC values as they are, by their state
    for key, adata, layer in ((rna_mod, rna, rna_layer), (atac_mod, atac, atac_layer)):
        if layer is not None and layer not in adata.layers:
            raise AttuneInputError(f"layer {layer!r} not found in mdata[{key!r}].layers; available: "
                                   f"{sorted(adata.layers)}")
    Y_raw, _, _ = get_matrix(rna, "log-normalised", layer=rna_layer, where=f"mdata[{rna_mod!r}]")
    X_raw = atac.X if atac_layer is None else atac.layers[atac_layer]
    atac_tfidf = matrix_state(atac, atac_layer) != "log-normalised"
    check_values(Y_raw, name=f"mdata[{rna_mod!r}]." + ("X" if rna_layer is None else f"layers[{rna_layer!r}]"),
                 allow_negative=True)
    check_values(X_raw, name=f"mdata[{atac_mod!r}]." + ("X" if atac_layer is None else f"layers[{atac_layer!r}]"))
    Y = np.ascontiguousarray(Y_raw.toarray() if sp.issparse(Y_raw) else np.asarray(Y_raw), dtype=np.float32)
    X = as_csr(X_raw)
    X.sort_indices()
    truth = None
    if truth_layer is not None and truth_layer in rna.layers:
        T = rna.layers[truth_layer]
        truth = np.asarray(T.toarray() if sp.issparse(T) else T, dtype=np.float32)
    genes, peaks = rna.var_names.astype(str), atac.var_names.astype(str)
    for what, names in (("genes", genes), ("peaks", peaks)):
        if not names.is_unique:
            raise AttuneInputError(f"{what} names are not unique; call var_names_make_unique()")
    splits = make_splits(rna.n_obs, split=split, n_splits=n_splits, test_fraction=test_fraction,
                         validation_fraction=validation_fraction, seed=seed)
    akw = dict(attune_kwargs or {})
    akw.pop("seed", None)
    akw.pop("contrast", None)

    runs = []
    for i in range(len(splits)):
        for s in settings:
            for c in (contrasts if s == "attune_finetuned" else [None]):
                runs.append((i, s, c))
    rows, genes_rows = [], []
    bar = progress(runs, enabled=progress_bar, desc="prediction benchmark", unit="run")
    for i, setting, contrast in bar:
        train, val, test = splits[i]
        fit = np.sort(np.concatenate([train, val]))
        run_seed = int(seed) + i
        method = _method_name(setting, contrast)
        bar.set_postfix(split=i, method=method, refresh=False)
        t0 = time.perf_counter()
        info: dict = {"best_epoch": np.nan, "epochs_run": np.nan}
        if setting in ("attune_finetuned", "mlp_denovo"):
            if setting == "attune_finetuned":
                sub = _minimal_mudata(X[fit], Y[fit], rna.obs_names[fit], genes, peaks)
                Attune.setup_mudata(sub)
                model = Attune(sub, contrast=contrast, seed=run_seed, **akw)
                model.train(max_epochs=pretrain_epochs, batch_size=pretrain_batch_size, lr=pretrain_lr,
                            lr_end=pretrain_lr_end, device=device, progress_bar=progress_bar)
                pred = RNAPredictor.from_attune(model, n_head=n_head, seed=run_seed)
                info["pretrain_loss"] = float(model.history["loss"].iloc[-1])
            else:
                arch = {k: akw[k] for k in ("n_hidden", "n_latent", "dropout") if k in akw}
                pred = RNAPredictor.de_novo(peak_names=peaks, gene_names=genes, n_head=n_head, seed=run_seed,
                                            **arch)
            pred.fit_matrices(X, Y, train_indices=train, val_indices=val, max_epochs=finetune_epochs,
                              batch_size=batch_size, lr=finetune_lr, patience=patience, device=device,
                              progress_bar=progress_bar, desc=f"{method} split {i}")
            if np.isin(pred.touched_indices_, test).any():  # pragma: no cover - guarded by construction
                raise RuntimeError("test cells were read during training")
            P = pred.predict_matrix(X[test])
            info.update(best_epoch=pred.best_epoch, epochs_run=len(pred.history))
        elif setting in ("lasso", "lasso_peaks"):
            lasso = fit_lasso(X[fit], Y[fit], input=lasso_input if setting == "lasso" else "peaks",
                              n_components=lsi_components, n_peaks=lasso_n_peaks, n_alphas=lasso_n_alphas, cv=cv,
                              seed=run_seed, tfidf=atac_tfidf)
            P = lasso.predict(X[test])
            info["alpha_median"] = float(np.median(lasso.alpha_))
        else:
            ridge = fit_lsi_ridge(X[fit], Y[fit], n_components=lsi_components, seed=run_seed, tfidf=atac_tfidf)
            P = ridge.predict(X[test])
            info["alpha_median"] = float(np.median(ridge.alpha_))
        seconds = time.perf_counter() - t0
        keys = {"method": method, "setting": setting, "contrast": contrast or "", "split": i,
                "n_train": train.size, "n_val": val.size, "n_test": test.size}
        _collect(rows, genes_rows, Y[test], P, None if truth is None else truth[test], genes, keys, info, seconds)
    if truth is not None and include_ceiling:
        for i, (_train, _val, test) in enumerate(splits):
            keys = {"method": "noise_free", "setting": "noise_free", "contrast": "", "split": i, "n_train": 0,
                    "n_val": 0, "n_test": test.size}
            _collect(rows, genes_rows, Y[test], truth[test], truth[test], genes, keys, {}, 0.0)
    per_gene = pd.concat(genes_rows, ignore_index=True)
    _constant_flags(rows, per_gene)
    summary = pd.DataFrame(rows)
    summary.attrs["splits"] = {"split": split, "n_splits": n_splits, "seed": seed}
    from ._integration_benchmark import warn_flags

    warn_flags(summary, what="prediction benchmark")
    return summary, per_gene


def _constant_flags(rows: list[dict], per_gene: pd.DataFrame) -> None:
    """Re-judge each run with the genes other methods predict above chance (r > 2 / sqrt(n_test)) as predictable.

    A constant prediction for a gene nobody can predict is the right answer (LASSO shrinking an
    unpredictable gene to its mean); only constants for genes another method does predict are a loss.
    The ``noise_free`` ceiling is not a method and is left out of the comparison.
    """
    from ..metrics import prediction_trust

    for row in rows:
        y_true, y_pred = row.pop("_y")
        others = per_gene[(per_gene["split"] == row["split"]) & (per_gene["method"] != row["method"])
                          & (per_gene["method"] != "noise_free")]
        if others.empty or row["method"] == "noise_free":
            continue
        best = others.groupby("gene", sort=False)["pearson"].max()
        genes = per_gene.loc[(per_gene["method"] == row["method"]) & (per_gene["split"] == row["split"]), "gene"]
        predictable = (best.reindex(genes.to_numpy()).fillna(0.0) > 2.0 / np.sqrt(max(row["n_test"], 1))).to_numpy()
        t = prediction_trust(y_true, y_pred, name=row["method"], predictable=predictable,
                             seed=int(row["split"]), warn=False)
        row["flag"] = t["flag"]


def _collect(rows, genes_rows, y_true, y_pred, truth, genes, keys: dict, info: dict, seconds: float) -> None:
    from ..metrics import prediction_trust

    s, pg = evaluate_prediction(y_true, y_pred, gene_names=genes, truth=truth)
    t = prediction_trust(y_true, y_pred, name=keys["method"], seed=int(keys.get("split", 0)), warn=False)
    trust = {"null_pearson_q95": t["null_q95"], "flag": t["flag"]}
    rows.append({**keys, **{k: v for k, v in s.items()}, **info, **trust, "seconds": seconds,
                 "_y": (y_true, y_pred)})
    pg = pg.reset_index()
    for k, v in reversed(list(keys.items())):
        if k in ("method", "setting", "contrast", "split"):
            pg.insert(0, k, v)
    genes_rows.append(pg)


def run_contrast_ablation_prediction(mdata, *, contrasts: Sequence[str] = CONTRASTS,
                                     **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fig. 2H: fine-tuned prediction after pretraining with each contrast design, same splits.

    Shorthand for :func:`run_prediction_benchmark` with ``settings=("attune_finetuned",)``; pass the same
    ``split``, ``n_splits`` and ``seed`` as the main benchmark to reuse its splits.

    Parameters
    ----------
    mdata
        Preprocessed paired MuData.
    contrasts
        Contrast designs pretrained and compared.
    **kwargs
        Passed to :func:`run_prediction_benchmark` (splits, epochs, seed, ...).
    """
    kwargs.pop("settings", None)
    kwargs.setdefault("include_ceiling", False)
    return run_prediction_benchmark(mdata, settings=("attune_finetuned",), contrasts=contrasts, **kwargs)


def summarize_prediction(summary: pd.DataFrame, *, by: str = "method",
                         metrics: Sequence[str] = ("pearson", "spearman", "rmse", "pearson_truth")) -> pd.DataFrame:
    """Mean and standard deviation over splits per method (columns ``<metric>_mean``, ``<metric>_sd``).

    Rows are ordered by decreasing mean Pearson; ``n_splits`` counts the splits.

    Parameters
    ----------
    summary
        Per-split summary table of :func:`run_prediction_benchmark`.
    by
        Column grouping the rows (the method).
    metrics
        Columns averaged.
    """
    if by not in summary:
        raise AttuneInputError(f"column {by!r} not in the summary table; available: {list(summary.columns)}")
    metrics = [m for m in metrics if m in summary]
    if not metrics:
        raise AttuneInputError("none of the metric columns are in the summary table")
    g = summary.groupby(by, sort=False)[metrics]
    out = pd.concat([g.mean().add_suffix("_mean"), g.std(ddof=1).add_suffix("_sd")], axis=1)
    out = out[[f"{m}_{s}" for m in metrics for s in ("mean", "sd")]]
    out.insert(0, "n_splits", summary.groupby(by, sort=False).size())
    if "pearson_mean" in out:
        out = out.sort_values("pearson_mean", ascending=False)
    return out


def paper_prediction_values() -> pd.DataFrame:
    """Prediction values reported for Attune on the real PBMC 10k multiome (not the simulator).

    ``paper``: Results text (random 80/20 split bootstrapped 5 times, Fig. 2F / Supp. Table S8).
    ``release``: the original release's PBMC 10k prediction (``docs/reference-notes``; its epoch was chosen
    on the test cells). No per-method values of BABEL, Polarbear, the NeurIPS 2021 winners or the
    Fig. 2H ablation are given in the text, so none are listed.
    """
    return pd.DataFrame(
        [
            {"source": "paper", "dataset": "PBMC 10k (real)", "method": "attune_finetuned",
             "pearson": 0.271, "spearman": 0.243, "rmse": 0.528},
            {"source": "release", "dataset": "PBMC 10k (real)", "method": "attune_finetuned",
             "pearson": 0.276, "spearman": 0.247, "rmse": 0.527},
        ]
    )
