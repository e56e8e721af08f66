"""The registry of integration methods compared in the benchmark, and the built-in ones.

A method is a function ``fn(mdata, *, seed, n_latent, max_epochs, progress_bar, **opts)`` returning the
per-modality embeddings ``(rna_emb, atac_emb)`` (or a dict with ``"rna"``, ``"atac"`` and optionally
``"joint"``), or a single joint array when the method has no per-modality embeddings. A method that
cannot run here raises :class:`MethodUnavailable` (or :class:`attune_lib.tl.PeerNotAvailable`).
Built in: Attune, PCA/LSI, PCA/LSI+CCA, MultiVI, GLUE and scMVP (:func:`list_methods`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._utils import AttuneInputError, get_modality, renamed_kwargs
from ._peers import PeerNotAvailable, run_glue, run_multivi

logger = logging.getLogger("attune_lib")

__all__ = [
    "MethodUnavailable",
    "IntegrationMethod",
    "register_method",
    "list_methods",
    "pca_lsi_cca",
    "pca_lsi_unaligned",
]


class MethodUnavailable(RuntimeError):
    """Raised by a registered method that cannot run here; the harness records ``"skipped: ..."``."""


SKIP_ERRORS: tuple[type[BaseException], ...] = (MethodUnavailable, PeerNotAvailable)


@dataclass(frozen=True)
class IntegrationMethod:
    """A registered integration method (see :func:`register_method`)."""

    name: str
    fn: Callable[..., Any]
    label: str
    max_epochs: int | None = None
    n_latent: int | None = None
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)


METHOD_REGISTRY: dict[str, IntegrationMethod] = {}


def register_method(
    name: str,
    fn: Callable[..., Any] | None = None,
    *,
    label: str | None = None,
    max_epochs: int | None = None,
    n_latent: int | None = None,
    description: str = "",
    options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
):
    """Register an integration method for :func:`run_integration_benchmark`.

    Usable directly (``register_method("x", fn)``) or as a decorator (``@register_method("x")``).

    Parameters
    ----------
    name
        Key used in ``methods=``.
    fn
        ``fn(mdata, *, seed, n_latent, max_epochs, progress_bar, **opts)`` returning
        ``(rna_emb, atac_emb)``, a dict with ``"rna"``/``"atac"`` (and optionally ``"joint"``), or a
        single joint array. ``n_latent``/``max_epochs`` may be ``None`` (use the method's default).
        Raise :class:`MethodUnavailable` when the method cannot run here.
    label
        Display name in tables and plots (default: ``name``).
    max_epochs
        The method's default epoch cap in the benchmark.
    n_latent
        The method's default latent size in the benchmark (``None``: the method's own default).
    description
        One line for :func:`list_methods` and the docs.
    options
        Default keyword options passed to ``fn``.
    overwrite
        Replace an existing registration.
    """
    if not isinstance(name, str) or not name:
        raise AttuneInputError(f"method name must be a non-empty string, got {name!r}")

    def _register(f):
        if name in METHOD_REGISTRY and not overwrite:
            raise AttuneInputError(f"method {name!r} is already registered (pass overwrite=True)")
        METHOD_REGISTRY[name] = IntegrationMethod(
            name=name, fn=f, label=label or name, max_epochs=max_epochs, n_latent=n_latent,
            description=description, options=dict(options or {}),
        )
        return f

    return _register(fn) if fn is not None else _register


def list_methods() -> pd.DataFrame:
    """The registered methods with their labels, default epoch caps, latent sizes and descriptions."""
    return pd.DataFrame(
        [
            {"method": m.name, "label": m.label, "max_epochs": m.max_epochs, "n_latent": m.n_latent,
             "description": m.description}
            for m in METHOD_REGISTRY.values()
        ]
    )


# ------------------------------------------------------------------------------------------------
# data preparation
# ------------------------------------------------------------------------------------------------
@renamed_kwargs(rna_key="rna_mod")
def benchmark_cell_types(mdata, cell_type_key: str, rna_mod: str = "rna") -> np.ndarray:
    rna = get_modality(mdata, rna_mod, role="RNA")
    if cell_type_key in mdata.obs:
        ct = mdata.obs[cell_type_key]
    elif cell_type_key in rna.obs:
        ct = rna.obs[cell_type_key]
    else:
        raise AttuneInputError(f"cell_type_key={cell_type_key!r} not found in mdata.obs nor in mdata['rna'].obs")
    if ct.isna().any():
        raise AttuneInputError(f"obs[{cell_type_key!r}] has {int(ct.isna().sum())} missing value(s)")
    return ct.astype(str).to_numpy()


def _is_preprocessed(mdata) -> bool:
    rna = mdata.mod["rna"]
    return "attune_pp" in mdata.uns or ("counts" in rna.layers and "X_pca" in rna.obsm)


def prepare_benchmark_data(mdata, *, cell_type_key: str, n_top_genes: int, min_fraction: float, seed: int = 0):
    """Copy ``mdata``, preprocess it (paper recipe) if it holds raw counts, and make sure the GLUE
    reference representations (``rna.obsm["X_pca"]``, ``atac.obsm["X_lsi"]``) exist."""
    from .. import pp

    rna = get_modality(mdata, "rna", role="RNA")
    atac = get_modality(mdata, "atac", role="ATAC")
    if rna.n_obs != atac.n_obs or not np.array_equal(rna.obs_names, atac.obs_names):
        raise AttuneInputError("mdata['rna'] and mdata['atac'] must hold the same cells in the same order")
    benchmark_cell_types(mdata, cell_type_key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mdata.copy()
    if not _is_preprocessed(m):
        pp.preprocess(m, n_top_genes=n_top_genes, min_fraction=min_fraction, seed=seed)
    if "X_pca" not in m.mod["rna"].obsm:
        pp.pca_rna(m, n_comps=50, key_added="X_pca", mod="rna")
    if "X_lsi" not in m.mod["atac"].obsm:
        pp.lsi(m, n_comps=50, key_added="X_lsi", mod="atac")
    if cell_type_key not in m.obs:
        m.obs[cell_type_key] = m.mod["rna"].obs[cell_type_key].to_numpy()
    return m


def raw_copy(mdata):
    """A raw-count MuData (``X`` = counts) from raw or ``pp``-preprocessed input."""
    import anndata as ad
    import mudata as md

    mods = {}
    for key in ("rna", "atac"):
        a = get_modality(mdata, key)
        X = a.layers.get("counts", a.X)
        mods[key] = ad.AnnData(X=X.copy(), obs=a.obs.copy(), var=a.var.copy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = md.MuData(mods)
    for c in mdata.obs.columns:
        if c not in out.obs:
            out.obs[c] = mdata.obs[c].to_numpy()
    if "truth" in mdata.uns:
        out.uns["truth"] = mdata.uns["truth"]
    return out


# ------------------------------------------------------------------------------------------------
# built-in methods
# ------------------------------------------------------------------------------------------------
def pca_lsi_cca(
    rna_rep: np.ndarray,
    atac_rep: np.ndarray,
    *,
    n_components: int = 30,
    reg: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Regularised CCA between an RNA PCA and an ATAC LSI (the linear paired baseline).

    Both inputs are centred; each covariance gets a ridge ``reg * trace(C) / dim`` before
    whitening. With ``W = Cxx^-1/2 Cxy Cyy^-1/2 = U S V^T`` the embeddings are the canonical
    variates ``X Cxx^-1/2 U`` and ``Y Cyy^-1/2 V`` (unit variance) scaled by the canonical
    correlations ``S``, so both modalities land in one space where paired cells are close.

    Returns
    -------
    ``(rna_emb, atac_emb)``, each cells x ``n_components``.
    """
    X = np.asarray(rna_rep, dtype=np.float64)
    Y = np.asarray(atac_rep, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise AttuneInputError(f"rna_rep and atac_rep must be 2-D with the same rows, got {X.shape} and {Y.shape}")
    if reg < 0:
        raise AttuneInputError(f"reg must be >= 0, got {reg}")
    k = int(min(n_components, X.shape[1], Y.shape[1]))
    if k < 1:
        raise AttuneInputError(f"n_components must be >= 1, got {n_components}")
    X = X - X.mean(0)
    Y = Y - Y.mean(0)
    n = X.shape[0] - 1

    def inv_sqrt(C):
        C = C + reg * np.trace(C) / C.shape[0] * np.eye(C.shape[0])
        w, v = np.linalg.eigh(C)
        w = np.clip(w, 1e-12, None)
        return (v / np.sqrt(w)) @ v.T

    Wx = inv_sqrt(X.T @ X / n)
    Wy = inv_sqrt(Y.T @ Y / n)
    U, S, Vt = np.linalg.svd(Wx @ (X.T @ Y / n) @ Wy)
    rna_emb = X @ Wx @ U[:, :k] * S[:k]
    atac_emb = Y @ Wy @ Vt.T[:, :k] * S[:k]
    return rna_emb.astype(np.float32), atac_emb.astype(np.float32)


def _reps(mdata, rna_rep: str, atac_rep: str, what: str):
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    for ad_, key, mod in ((rna, rna_rep, "rna"), (atac, atac_rep, "atac")):
        if key not in ad_.obsm:
            raise AttuneInputError(f"{what}: mdata[{mod!r}].obsm[{key!r}] missing (run attune_lib.pp.preprocess)")
    return np.asarray(rna.obsm[rna_rep], dtype=np.float64), np.asarray(atac.obsm[atac_rep], dtype=np.float64)


def pca_lsi_unaligned(rna_rep: np.ndarray, atac_rep: np.ndarray, *, n_components: int = 30):
    """The unintegrated baseline: the first ``n_components`` of the RNA PCA and of the ATAC LSI.

    Each column is z-scored within its modality so both have the same scale. Nothing maps one
    space onto the other, so FOSCTTM sits near chance (0.5) and omics mixing near its floor: the
    reference point "no integration at all".
    """
    X = np.asarray(rna_rep, dtype=np.float64)
    Y = np.asarray(atac_rep, dtype=np.float64)
    k = int(min(n_components, X.shape[1], Y.shape[1]))
    if k < 1:
        raise AttuneInputError(f"n_components must be >= 1, got {n_components}")

    def z(a):
        sd = a.std(0)
        return (a - a.mean(0)) / np.where(sd > 0, sd, 1.0)

    return z(X[:, :k]).astype(np.float32), z(Y[:, :k]).astype(np.float32)


def _run_pca_lsi(mdata, *, seed: int = 0, n_latent: int | None = None, max_epochs=None, progress_bar=True,
                 rna_rep: str = "X_pca", atac_rep: str = "X_lsi"):
    X, Y = _reps(mdata, rna_rep, atac_rep, "pca_lsi")
    return pca_lsi_unaligned(X, Y, n_components=n_latent or 30)


def _run_cca(mdata, *, seed: int = 0, n_latent: int | None = None, max_epochs=None, progress_bar=True,
             reg: float = 0.1, rna_rep: str = "X_pca", atac_rep: str = "X_lsi"):
    X, Y = _reps(mdata, rna_rep, atac_rep, "cca")
    return pca_lsi_cca(X, Y, n_components=n_latent or 30, reg=reg)


def attune_class():
    try:
        from ..models import Attune
    except ImportError as exc:  # pragma: no cover - Attune is part of the package
        raise MethodUnavailable(f"attune_lib.models.Attune not importable ({exc})") from exc
    return Attune


def train_attune(mdata, *, seed: int, n_latent: int | None, max_epochs: int | None, progress_bar: bool,
                  contrast: str = "default", batch_size: int = 128, lr: float | None = None,
                  train_kwargs: dict | None = None, model_kwargs: dict | None = None):
    Attune = attune_class()
    Attune.setup_mudata(mdata)
    kwargs = dict(model_kwargs or {})
    if n_latent is not None:
        kwargs["n_latent"] = int(n_latent)
    model = Attune(mdata, contrast=contrast, seed=seed, **kwargs)
    tkw = dict(train_kwargs or {})
    tkw.setdefault("batch_size", batch_size)
    if lr is not None:
        tkw["lr"] = float(lr)
    if max_epochs is not None:
        tkw["max_epochs"] = int(max_epochs)
    tkw.setdefault("progress_bar", progress_bar)
    model.train(**tkw)
    return model


def attune_embeddings(model, mdata) -> dict[str, np.ndarray]:
    out = {}
    for mod in ("rna", "atac", "joint"):
        out[mod] = np.asarray(model.get_latent_representation(mdata, modality=mod, key_added=None))
    return out


def _run_attune(mdata, *, seed: int = 0, n_latent: int | None = None, max_epochs: int | None = None,
                progress_bar: bool = True, contrast: str = "default", batch_size: int = 128,
                lr: float | None = None, train_kwargs: dict | None = None, model_kwargs: dict | None = None):
    model = train_attune(mdata, seed=seed, n_latent=n_latent, max_epochs=max_epochs, progress_bar=progress_bar,
                          contrast=contrast, batch_size=batch_size, lr=lr, train_kwargs=train_kwargs,
                          model_kwargs=model_kwargs)
    return attune_embeddings(model, mdata)


def _run_multivi(mdata, *, seed=0, n_latent=None, max_epochs=None, progress_bar=True, **opts):
    return run_multivi(mdata, seed=seed, n_latent=n_latent, max_epochs=max_epochs or 50,
                       progress_bar=progress_bar, **opts)


def _run_glue(mdata, *, seed=0, n_latent=None, max_epochs=None, progress_bar=True, **opts):
    return run_glue(mdata, seed=seed, n_latent=n_latent or 50, max_epochs=max_epochs or 30,
                    progress_bar=progress_bar, **opts)


def _run_scmvp(mdata, *, seed=0, n_latent=None, max_epochs=None, progress_bar=True, batch_size: int = 64,
               lr: float = 1e-3, pretrain_epochs: tuple[int, int] | None = None, warmup_epochs: int | None = None,
               model_kwargs: dict | None = None, train_kwargs: dict | None = None):
    """scMVP (joint latent only). With a ``max_epochs`` cap below scMVP's 15 joint epochs, the
    pretraining epochs (RNA 10, ATAC 15) and the warm-up (5) are capped to match."""
    try:
        from ..models import ScMVP
    except ImportError as exc:
        raise MethodUnavailable("attune_lib.models.ScMVP not available in this version") from exc
    ep = int(max_epochs or 15)
    ScMVP.setup_mudata(mdata)
    kwargs = dict(model_kwargs or {})
    if n_latent is not None:
        kwargs["n_latent"] = int(n_latent)
    model = ScMVP(mdata, seed=seed, **kwargs)
    tkw = {"max_epochs": ep, "batch_size": batch_size, "lr": lr, "progress_bar": progress_bar,
               "pretrain_epochs": pretrain_epochs or (min(10, ep), min(15, ep)),
               "warmup_epochs": min(5, max(ep // 3, 1)) if warmup_epochs is None else warmup_epochs}
    tkw.update(train_kwargs or {})
    model.train(**tkw)
    return np.asarray(model.get_latent_representation(mdata, key_added=None))


# max_epochs=None: Attune.train's schedule="auto" (the paper's 20 epochs when they give >= 1,000 steps,
# else a step budget with early stopping), so small real datasets are not under-trained
register_method("attune", _run_attune, label="Attune", max_epochs=None, n_latent=128,
                description="Attune: cross-modal contrastive teacher-student networks (this package)")


register_method("pca_lsi", _run_pca_lsi, label="PCA/LSI", max_epochs=None, n_latent=30,
                description="unintegrated baseline: RNA PCA and ATAC LSI, first 30 components each, z-scored")


register_method("cca", _run_cca, label="PCA/LSI+CCA", max_epochs=None, n_latent=30,
                description="linear paired baseline: regularised CCA between RNA PCA (50) and ATAC LSI (50)")


register_method("multivi", _run_multivi, label="MultiVI", max_epochs=50, n_latent=20,
                description="scvi-tools MULTIVI (per-modality encoder latents); n_latent 20 because its own "
                            "default, sqrt(sqrt(n_peaks)), is about 3 on the simulator")


register_method("glue", _run_glue, label="GLUE", max_epochs=30, n_latent=50,
                description="scglue PairedSCGLUEModel with a promoter/gene-body guidance graph")


register_method("scmvp", _run_scmvp, label="scMVP", max_epochs=15, n_latent=None,
                description="scMVP multi-view VAE (attune_lib.models.ScMVP); joint latent only")
