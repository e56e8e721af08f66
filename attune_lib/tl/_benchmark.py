"""Integration benchmark (paper Fig. 2A-E, 2H ablation, Supp. Fig. S9 reference mapping).

The harness runs every registered method on the same paired MuData for several seeds, scores each
run with GLUE's integration metrics (:func:`attune_lib.metrics.integration_metrics`) and adds the
summary scores (:func:`attune_lib.metrics.summarize_scores`, min-max over all rows of the table).

Methods live in a registry (:func:`register_method`); a method is a function
``fn(mdata, *, seed, n_latent, max_epochs, progress_bar, **opts)`` returning the per-modality
embeddings ``(rna_emb, atac_emb)`` (or a dict with ``"rna"``, ``"atac"`` and optionally
``"joint"``), or a single joint array when the method has no per-modality embeddings. A method
that cannot run here raises :class:`MethodUnavailable` (or
:class:`attune_lib.tl._peers.PeerNotAvailable`) and gets a ``"skipped: <reason>"`` row.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._utils import AttuneInputError, get_modality, progress, set_seed
from ._peers import PeerNotAvailable, run_glue, run_multivi

logger = logging.getLogger("attune_lib")

__all__ = [
    "LOWER_IS_BETTER",
    "METRIC_COLUMNS",
    "IntegrationMethod",
    "MethodUnavailable",
    "list_methods",
    "metric_winners",
    "nearest_reference_types",
    "pca_lsi_cca",
    "pca_lsi_unaligned",
    "reference_mapping",
    "register_method",
    "run_integration_benchmark",
    "sweep_contrast",
    "sweep_dimension",
    "sweep_features",
]

#: per-run metric columns of the results table (GLUE names, see :mod:`attune_lib.metrics`)
METRIC_COLUMNS = ("map", "asw", "nc", "sas", "asw_batch", "gc", "foscttm", "alignment", "uniformity")
#: summary columns added by :func:`attune_lib.metrics.summarize_scores`
SUMMARY_COLUMNS = ("bio_conservation", "omics_mixing", "overall")
#: metrics where lower is better
LOWER_IS_BETTER = ("foscttm", "alignment", "uniformity")


class MethodUnavailable(RuntimeError):
    """Raised by a registered method that cannot run here; the harness records ``"skipped: ..."``."""


_SKIP_ERRORS: tuple[type[BaseException], ...] = (MethodUnavailable, PeerNotAvailable)


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


_REGISTRY: dict[str, IntegrationMethod] = {}


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
        if name in _REGISTRY and not overwrite:
            raise AttuneInputError(f"method {name!r} is already registered (pass overwrite=True)")
        _REGISTRY[name] = IntegrationMethod(
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
            for m in _REGISTRY.values()
        ]
    )


# ------------------------------------------------------------------------------------------------
# data preparation
# ------------------------------------------------------------------------------------------------
def _cell_types(mdata, cell_type_key: str, rna_key: str = "rna") -> np.ndarray:
    rna = get_modality(mdata, rna_key, role="RNA")
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


def _prepare(mdata, *, cell_type_key: str, n_top_genes: int, min_fraction: float, seed: int = 0):
    """Copy ``mdata``, preprocess it (paper recipe) if it holds raw counts, and make sure the GLUE
    reference representations (``rna.obsm["X_pca"]``, ``atac.obsm["X_lsi"]``) exist."""
    from .. import pp

    rna = get_modality(mdata, "rna", role="RNA")
    atac = get_modality(mdata, "atac", role="ATAC")
    if rna.n_obs != atac.n_obs or not np.array_equal(rna.obs_names, atac.obs_names):
        raise AttuneInputError("mdata['rna'] and mdata['atac'] must hold the same cells in the same order")
    _cell_types(mdata, cell_type_key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mdata.copy()
    if not _is_preprocessed(m):
        pp.preprocess(m, n_top_genes=n_top_genes, min_fraction=min_fraction, random_state=seed)
    if "X_pca" not in m.mod["rna"].obsm:
        pp.pca_rna(m, n_comps=50, key_added="X_pca", mod="rna")
    if "X_lsi" not in m.mod["atac"].obsm:
        pp.lsi(m, n_comps=50, key_added="X_lsi", mod="atac")
    if cell_type_key not in m.obs:
        m.obs[cell_type_key] = m.mod["rna"].obs[cell_type_key].to_numpy()
    return m


def _raw_copy(mdata):
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


def _attune_class():
    try:
        from ..models import Attune
    except ImportError as exc:  # pragma: no cover - Attune is part of the package
        raise MethodUnavailable(f"attune_lib.models.Attune not importable ({exc})") from exc
    return Attune


def _train_attune(mdata, *, seed: int, n_latent: int | None, max_epochs: int | None, progress_bar: bool,
                  contrast: str = "default", batch_size: int = 128, lr: float | None = None,
                  train_kwargs: dict | None = None, model_kwargs: dict | None = None):
    Attune = _attune_class()
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


def _attune_embeddings(model, mdata) -> dict[str, np.ndarray]:
    out = {}
    for mod in ("rna", "atac", "joint"):
        out[mod] = np.asarray(model.get_latent_representation(mdata, modality=mod, key_added=None))
    return out


def _run_attune(mdata, *, seed: int = 0, n_latent: int | None = None, max_epochs: int | None = None,
                progress_bar: bool = True, contrast: str = "default", batch_size: int = 128,
                lr: float | None = None, train_kwargs: dict | None = None, model_kwargs: dict | None = None):
    model = _train_attune(mdata, seed=seed, n_latent=n_latent, max_epochs=max_epochs, progress_bar=progress_bar,
                          contrast=contrast, batch_size=batch_size, lr=lr, train_kwargs=train_kwargs,
                          model_kwargs=model_kwargs)
    return _attune_embeddings(model, mdata)


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


# ------------------------------------------------------------------------------------------------
# running and scoring
# ------------------------------------------------------------------------------------------------
def _as_embeddings(result, n_cells: int, name: str) -> dict[str, np.ndarray | None]:
    if isinstance(result, Mapping):
        out = {k: (None if result.get(k) is None else np.asarray(result[k], dtype=np.float64))
               for k in ("rna", "atac", "joint")}
    elif isinstance(result, tuple) and len(result) == 2:
        out = {"rna": np.asarray(result[0], dtype=np.float64), "atac": np.asarray(result[1], dtype=np.float64),
               "joint": None}
    else:
        out = {"rna": None, "atac": None, "joint": np.asarray(result, dtype=np.float64)}
    for k, v in out.items():
        if v is not None and (v.ndim != 2 or v.shape[0] != n_cells):
            raise AttuneInputError(f"method {name!r} returned a {k} embedding of shape {v.shape}; "
                                   f"expected ({n_cells}, d)")
    if out["rna"] is None and out["atac"] is None and out["joint"] is None:
        raise AttuneInputError(f"method {name!r} returned no embedding")
    return out


def _score(emb: dict, cell_types: np.ndarray, rna_ref, atac_ref, *, seed: int, **metric_kwargs) -> dict[str, float]:
    from ..metrics import (
        avg_silhouette_width,
        integration_metrics,
        mean_average_precision,
    )

    if emb["rna"] is not None and emb["atac"] is not None:
        return integration_metrics(emb["rna"], emb["atac"], cell_types, rna_ref=rna_ref, atac_ref=atac_ref,
                                   random_state=seed, **metric_kwargs)
    # joint-only method: one embedding for both modalities, so only the biology metrics are defined
    # (FOSCTTM, alignment and the omics-mixing metrics would be trivially perfect and are left NaN)
    from ..metrics import neighbor_conservation

    z = emb["joint"]
    out = {c: float("nan") for c in METRIC_COLUMNS}
    out["map"] = mean_average_precision(z, cell_types)
    out["asw"] = avg_silhouette_width(z, cell_types)
    if rna_ref is not None and atac_ref is not None:
        from ..metrics._integration import _pad

        width = max(rna_ref.shape[1], atac_ref.shape[1])
        refs = np.vstack([_pad(np.asarray(rna_ref, float), width), _pad(np.asarray(atac_ref, float), width)])
        batch = np.array(["rna"] * z.shape[0] + ["atac"] * z.shape[0])
        out["nc"] = neighbor_conservation(np.vstack([z, z]), refs, batch)
    return out


def _trust(emb: dict, cell_types: np.ndarray, rna_ref, atac_ref, *, label: str, seed: int) -> dict[str, Any]:
    """Trust diagnostics of one run (see :func:`attune_lib.metrics.integration_trust`); flags not warned here."""
    from ..metrics import integration_trust, label_structure

    refs = {"RNA PCA": rna_ref, "ATAC LSI": atac_ref} if rna_ref is not None and atac_ref is not None else None
    if emb["rna"] is not None and emb["atac"] is not None:
        t = integration_trust(emb["rna"], emb["atac"], cell_types, references=refs, name=label,
                              random_state=seed, warn=False)
        lab = t["label"]
        return {"map_rna": lab.loc["rna", "map"], "map_atac": lab.loc["atac", "map"],
                "map_chance": lab.loc["joint", "map_shuffled"], "label_signal": lab.loc["joint", "label_signal"],
                "flag": t["flag"], "_data_flags": t["data_flags"]}
    ls = label_structure(emb["joint"], cell_types, random_state=seed)
    flag = "" if ls["label_signal"] >= 0.15 else (
        f"{label} keeps no label structure (label MAP {ls['map']:.2f} vs {ls['map_shuffled']:.2f} for shuffled labels)")
    return {"map_rna": np.nan, "map_atac": np.nan, "map_chance": ls["map_shuffled"],
            "label_signal": ls["label_signal"], "flag": flag}


def warn_flags(df: pd.DataFrame, *, what: str = "benchmark") -> None:
    """Issue one :class:`~attune_lib.metrics.TrustWarning` per method whose rows carry a ``flag``.

    Parameters
    ----------
    df
        A benchmark table with ``method`` and ``flag`` columns.
    what
        Name of the table, for the message.
    """
    from ..metrics import TrustWarning

    if "flag" not in df or "method" not in df:
        return
    for f in df.attrs.get("data_flags", []):
        warnings.warn(f"{what}: {f}", TrustWarning, stacklevel=2)
    flagged = df[df["flag"].fillna("").astype(str).str.len() > 0]
    for method, rows in flagged.groupby("method", sort=False):
        n = len(rows)
        warnings.warn(f"{what}: {rows['flag'].iloc[0]}" + (f" (in {n} of {int((df['method'] == method).sum())} runs)"
                      if n > 1 else ""), TrustWarning, stacklevel=2)


def _per_method(value, name: str, default):
    """``value`` for all methods, or ``value[name]`` when it is a dict; ``default`` when unset."""
    if isinstance(value, Mapping):
        return value.get(name, default)
    return default if value is None else value


def _check_methods(methods: Sequence[str]) -> list[str]:
    if isinstance(methods, str):
        methods = (methods,)
    methods = list(methods)
    if not methods:
        raise AttuneInputError("methods is empty")
    unknown = [m for m in methods if m not in _REGISTRY]
    if unknown:
        raise AttuneInputError(
            f"unknown method(s) {unknown} in methods=; registered: {sorted(_REGISTRY)}"
        )
    return methods


def _check_seeds(seeds) -> list[int]:
    if isinstance(seeds, (int, np.integer)):
        seeds = (int(seeds),)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise AttuneInputError("seeds is empty")
    return seeds


def _run_one(m, name: str, seed: int, *, n_latent, max_epochs, progress_bar: bool, opts: dict,
             cell_types, rna_ref, atac_ref, on_error: str, metric_kwargs: dict, keep: dict | None,
             extra: dict | None = None) -> dict[str, Any]:
    method = _REGISTRY[name]
    row: dict[str, Any] = {"method": name, "label": method.label, "seed": seed, **(extra or {})}
    row.update({c: float("nan") for c in METRIC_COLUMNS})
    row.update({"n_latent": np.nan, "max_epochs": max_epochs, "runtime_s": np.nan, "status": "ok"})
    t0 = time.perf_counter()
    try:
        set_seed(seed)
        result = method.fn(m, seed=seed, n_latent=n_latent, max_epochs=max_epochs, progress_bar=progress_bar,
                           **{**method.options, **opts})
        row["runtime_s"] = time.perf_counter() - t0
        emb = _as_embeddings(result, m.n_obs, name)
    except _SKIP_ERRORS as exc:
        row["status"] = f"skipped: {exc}"
        logger.info("benchmark: %s skipped (%s)", name, exc)
        return row
    except Exception as exc:
        if on_error == "raise":
            raise
        row["runtime_s"] = time.perf_counter() - t0
        row["status"] = f"failed: {type(exc).__name__}: {exc}"
        logger.warning("benchmark: %s (seed %d) failed: %s", name, seed, exc)
        return row
    ref = emb["rna"] if emb["rna"] is not None else emb["joint"]
    row["n_latent"] = int(ref.shape[1])
    if emb["rna"] is None or emb["atac"] is None:
        row["status"] = "ok (joint only)"
    row.update(_score(emb, cell_types, rna_ref, atac_ref, seed=seed, **metric_kwargs))
    row.update(_trust(emb, cell_types, rna_ref, atac_ref, label=method.label, seed=seed))
    if keep is not None:
        keep[(name, seed, *(extra or {}).values())] = emb
    return row


def _finish(rows: list[dict]) -> pd.DataFrame:
    from ..metrics import summarize_scores

    df = pd.DataFrame(rows)
    ok = df["status"].str.startswith("ok")
    if ok.any():
        scored = summarize_scores(df.loc[ok])
        for c in SUMMARY_COLUMNS:
            df[c] = np.nan
            df.loc[ok, c] = scored[c]
    else:
        for c in SUMMARY_COLUMNS:
            df[c] = np.nan
    return df


def run_integration_benchmark(
    mdata,
    *,
    methods: Sequence[str] = ("attune", "pca_lsi", "cca", "multivi", "glue", "scmvp"),
    seeds: Iterable[int] = (0, 1, 2, 3, 4),
    cell_type_key: str = "cell_type",
    max_epochs: int | Mapping[str, int] | None = None,
    n_latent: int | Mapping[str, int] | None = None,
    method_options: Mapping[str, Mapping[str, Any]] | None = None,
    n_top_genes: int = 2000,
    min_fraction: float = 0.05,
    on_error: str = "raise",
    return_embeddings: bool = False,
    progress_bar: bool = True,
    metric_kwargs: Mapping[str, Any] | None = None,
):
    """Run and score integration methods on a paired RNA + ATAC MuData (paper Fig. 2A-C).

    Parameters
    ----------
    mdata
        Paired MuData (``"rna"``, ``"atac"``), raw counts or already preprocessed with
        :func:`attune_lib.pp.preprocess`. It is copied; raw input is preprocessed with the paper's
        recipe (``n_top_genes`` HVGs, ``min_fraction`` filters). The input is never modified.
    methods
        Registered method names (see :func:`list_methods`): ``"attune"``, ``"pca_lsi"`` (the
        unintegrated PCA/LSI floor), ``"cca"`` (regularised CCA between RNA PCA and ATAC LSI),
        ``"multivi"``, ``"glue"``, ``"scmvp"`` (joint latent only: biology metrics only).
    seeds
        One run per method and seed.
    cell_type_key
        ``obs`` column with cell types (``mdata.obs`` or ``mdata["rna"].obs``).
    max_epochs
        Epoch cap for all methods (int), per method (dict), or ``None`` for each method's cap
        (attune: its own ``schedule="auto"``, i.e. the paper's 20 epochs on large data and a step
        budget with early stopping on small data; multivi 50, glue 30, scmvp 15).
    n_latent
        Latent size for all methods (int), per method (dict), or ``None`` for each method's default.
    method_options
        Extra keyword options per method, e.g. ``{"attune": {"batch_size": 64}}``.
    n_top_genes, min_fraction
        Preprocessing of raw input.
    on_error
        ``"raise"`` (default) re-raises an error of a method; ``"record"`` writes a
        ``"failed: ..."`` row instead. Missing peers always give ``"skipped: ..."`` rows.
    return_embeddings
        Also return ``{(method, seed): {"rna", "atac", "joint"}}``.
    progress_bar
        A progress bar over the runs (the methods' own bars stay off).
    metric_kwargs
        Passed to :func:`attune_lib.metrics.integration_metrics`.

    Returns
    -------
    DataFrame
        One row per method x seed: ``method``, ``label``, ``seed``, the metrics ``map``, ``asw``,
        ``nc``, ``sas``, ``asw_batch``, ``gc``, ``foscttm``, ``alignment``, ``uniformity``,
        ``n_latent``, ``max_epochs``, ``runtime_s``, ``status`` (``"ok"``, ``"ok (joint only)"``,
        ``"skipped: ..."``, ``"failed: ..."``), the trust diagnostics ``map_rna``, ``map_atac``
        (label MAP of each modality's embedding), ``map_chance`` (MAP of shuffled labels),
        ``label_signal`` and ``flag`` (plain sentences, empty when nothing is wrong; each flag is
        also issued as a :class:`~attune_lib.metrics.TrustWarning`; see
        :func:`attune_lib.metrics.integration_trust`), and ``bio_conservation``, ``omics_mixing``,
        ``overall`` (min-max over the ``ok`` rows). ``df.attrs["data_flags"]`` lists flags about the
        data (a modality whose own reference keeps no label structure). With ``return_embeddings``:
        ``(df, embeddings)``.
    """
    methods = _check_methods(methods)
    seeds = _check_seeds(seeds)
    if on_error not in ("raise", "record"):
        raise AttuneInputError(f"on_error must be 'raise' or 'record', got {on_error!r}")
    method_options = dict(method_options or {})
    bad = [k for k in method_options if k not in methods]
    if bad:
        raise AttuneInputError(f"method_options has key(s) {bad} that are not in methods={methods}")
    m = _prepare(mdata, cell_type_key=cell_type_key, n_top_genes=n_top_genes, min_fraction=min_fraction)
    ct = _cell_types(m, cell_type_key)
    rna_ref, atac_ref = m.mod["rna"].obsm["X_pca"], m.mod["atac"].obsm["X_lsi"]
    keep: dict | None = {} if return_embeddings else None
    rows = []
    runs = [(name, s) for name in methods for s in seeds]
    bar = progress(runs, enabled=progress_bar, desc="benchmark", unit="run")
    skipped: dict[str, str] = {}
    for name, seed in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{name} seed={seed}")
        meth = _REGISTRY[name]
        ep = _per_method(max_epochs, name, meth.max_epochs)
        nl = _per_method(n_latent, name, meth.n_latent)
        if name in skipped:  # an unavailable method is tried once
            rows.append({"method": name, "label": meth.label, "seed": seed,
                         **{c: float("nan") for c in METRIC_COLUMNS}, "n_latent": np.nan, "max_epochs": ep,
                         "runtime_s": np.nan, "status": skipped[name]})
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row = _run_one(m, name, seed, n_latent=nl, max_epochs=ep, progress_bar=False,
                           opts=dict(method_options.get(name, {})), cell_types=ct, rna_ref=rna_ref,
                           atac_ref=atac_ref, on_error=on_error, metric_kwargs=dict(metric_kwargs or {}),
                           keep=keep)
        if row["status"].startswith("skipped"):
            skipped[name] = row["status"]
        rows.append(row)
    data_flags = sorted({f for r in rows for f in r.pop("_data_flags", [])})
    df = _finish(rows)
    df.attrs["data_flags"] = data_flags
    warn_flags(df, what="integration benchmark")
    return (df, keep) if return_embeddings else df


# ------------------------------------------------------------------------------------------------
# sweeps (Fig. 2D, 2E, contrast ablation)
# ------------------------------------------------------------------------------------------------
def _check_anchors(anchors: Sequence[str]) -> list[str]:
    anchors = [anchors] if isinstance(anchors, str) else list(anchors or ())
    unknown = [a for a in anchors if a not in _REGISTRY or a == "attune"]
    if unknown:
        raise AttuneInputError(f"anchors {unknown} must be registered methods other than 'attune'; "
                               f"registered: {sorted(_REGISTRY)}")
    return anchors


def _sweep(m, configs: list[dict], seeds: list[int], *, cell_type_key, rna_ref, atac_ref, max_epochs,
           progress_bar, desc, n_latent: int = 128, base_opts: dict | None = None, data_for=None,
           anchors: Sequence[str] = (), anchor_data=None) -> pd.DataFrame:
    """Train Attune for every config x seed (a config may set ``n_latent`` and ``design``), run the
    ``anchors`` baselines once on ``anchor_data`` (default ``m``), score everything and min-max the
    summary scores over the whole table."""
    anchors = _check_anchors(anchors)
    rows = []
    runs = [(cfg, s) for cfg in configs for s in seeds]
    bar = progress(runs, enabled=progress_bar, desc=desc, unit="run")
    cache: dict = {}
    for cfg, seed in bar:
        key = tuple(sorted(cfg.items()))
        if data_for is not None:
            if key not in cache:
                cache.clear()
                cache[key] = data_for(cfg)
            data = cache[key]
        else:
            data = m
        opts = dict(base_opts or {})
        n_lat = cfg.get("n_latent", n_latent)
        if "design" in cfg:
            opts["contrast"] = cfg["design"]
        extra = dict(cfg)
        if data_for is not None:
            extra["n_genes"] = int(data.mod["rna"].n_vars)
            extra["n_peaks"] = int(data.mod["atac"].n_vars)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row = _run_one(data, "attune", seed, n_latent=n_lat, max_epochs=max_epochs, progress_bar=False,
                           opts=opts, cell_types=_cell_types(data, cell_type_key), rna_ref=rna_ref,
                           atac_ref=atac_ref, on_error="raise", metric_kwargs={}, keep=None, extra=extra)
        rows.append(row)
    adata = m if anchor_data is None else anchor_data
    for name in anchors:
        meth = _REGISTRY[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row = _run_one(adata, name, seeds[0], n_latent=meth.n_latent, max_epochs=meth.max_epochs,
                           progress_bar=False, opts={}, cell_types=_cell_types(adata, cell_type_key),
                           rna_ref=rna_ref, atac_ref=atac_ref, on_error="record", metric_kwargs={}, keep=None)
        if data_for is not None:
            row["n_genes"] = int(adata.mod["rna"].n_vars)
            row["n_peaks"] = int(adata.mod["atac"].n_vars)
        rows.append(row)
    return _finish(rows)


def sweep_features(
    mdata,
    *,
    n_genes: Sequence[int] = (500, 1000, 2000, 3000),
    n_peaks: Sequence[int | None] = (5000, 10000, 20000, None),
    seeds: Iterable[int] = (0,),
    cell_type_key: str = "cell_type",
    max_epochs: int = 20,
    n_latent: int = 128,
    min_fraction: float = 0.05,
    anchors: Sequence[str] = ("pca_lsi", "cca"),
    progress_bar: bool = True,
    attune_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Attune's integration under different numbers of HVGs and peaks (paper Fig. 2D).

    For every ``(n_genes, n_peaks)`` the raw counts are preprocessed with
    :func:`attune_lib.pp.preprocess` (``n_top_genes=n_genes``, ``n_peaks`` most accessible peaks
    after the ``min_fraction`` filter; ``None`` keeps all) and Attune is trained. NC is always
    measured against the same references (PCA/LSI of the default 2,000-HVG / all-peak
    preprocessing), so the rows are comparable; the anchors run on that default preprocessing.

    Parameters
    ----------
    mdata
        Paired MuData with raw counts (``X`` or ``layers["counts"]``).
    n_genes, n_peaks
        The grid; every combination is run.
    seeds
        Attune seeds per setting.
    cell_type_key
        ``obs`` column with cell types.
    max_epochs, n_latent, attune_options
        Attune training (``attune_options``: ``batch_size``, ``lr``, ``train_kwargs``, ...).
    min_fraction
        Detection filter for genes and peaks.
    anchors
        Baseline methods run once (first seed) on the same data and added to the table, so the
        min-max summary scores have fixed reference points (default: the unintegrated PCA/LSI and
        the PCA/LSI+CCA baselines). Their rows have ``method`` != ``"attune"``; ``()`` for none.
    progress_bar
        Progress over runs.

    Returns
    -------
    DataFrame
        One row per setting x seed with ``n_genes_requested``/``n_peaks_requested`` (the asked
        values; ``n_peaks_requested`` NaN = all), ``n_genes``/``n_peaks`` (what the data had after
        filtering), the metrics and the summary scores (min-max over this table).
    """
    from .. import pp

    seeds = _check_seeds(seeds)
    _check_anchors(anchors)
    n_genes = [int(g) for g in n_genes]
    n_peaks = [None if p is None else int(p) for p in n_peaks]
    if not n_genes or not n_peaks or any(g < 2 for g in n_genes) or any(p is not None and p < 2 for p in n_peaks):
        raise AttuneInputError(f"n_genes/n_peaks must be non-empty and >= 2, got {n_genes} / {n_peaks}")
    raw = _raw_copy(mdata)
    _cell_types(raw, cell_type_key)
    ref = _prepare(raw, cell_type_key=cell_type_key, n_top_genes=2000, min_fraction=min_fraction)
    rna_ref, atac_ref = ref.mod["rna"].obsm["X_pca"], ref.mod["atac"].obsm["X_lsi"]

    def data_for(cfg):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = raw.copy()
            pp.preprocess(d, n_top_genes=cfg["n_genes_requested"], n_peaks=cfg["n_peaks_requested"],
                          min_fraction=min_fraction)
        return d

    configs = [{"n_genes_requested": g, "n_peaks_requested": p} for g in n_genes for p in n_peaks]
    return _sweep(raw, configs, seeds, cell_type_key=cell_type_key, rna_ref=rna_ref, atac_ref=atac_ref,
                  max_epochs=max_epochs, progress_bar=progress_bar, desc="features", n_latent=int(n_latent),
                  base_opts=dict(attune_options or {}), data_for=data_for, anchors=anchors, anchor_data=ref)


def sweep_dimension(
    mdata,
    *,
    dims: Sequence[int] = (32, 64, 128, 256),
    seeds: Iterable[int] = (0, 1, 2, 3, 4),
    cell_type_key: str = "cell_type",
    max_epochs: int = 20,
    anchors: Sequence[str] = ("pca_lsi", "cca"),
    progress_bar: bool = True,
    attune_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Attune's integration for different embedding dimensions (paper Fig. 2E).

    Parameters
    ----------
    mdata
        Paired MuData (raw or preprocessed; preprocessed on a copy if raw).
    dims
        Embedding dimensions (``n_latent``).
    seeds
        Attune seeds per dimension.
    cell_type_key
        ``obs`` column with cell types.
    max_epochs, attune_options
        Attune training.
    anchors
        Baseline methods run once (first seed) on the same data and added to the table, so the
        min-max summary scores have fixed reference points (default: the unintegrated PCA/LSI and
        the PCA/LSI+CCA baselines). Their rows have ``method`` != ``"attune"``; ``()`` for none.
    progress_bar
        Progress over runs.

    Returns
    -------
    DataFrame
        One row per dimension x seed (column ``n_latent``) plus the anchor rows, metrics and summary
        scores (min-max over this table).
    """
    seeds = _check_seeds(seeds)
    _check_anchors(anchors)
    dims = [int(d) for d in dims]
    if not dims or any(d < 2 for d in dims):
        raise AttuneInputError(f"dims must be integers >= 2, got {dims}")
    m = _prepare(mdata, cell_type_key=cell_type_key, n_top_genes=2000, min_fraction=0.05)
    configs = [{"n_latent": d} for d in dims]
    return _sweep(m, configs, seeds, cell_type_key=cell_type_key, rna_ref=m.mod["rna"].obsm["X_pca"],
                  atac_ref=m.mod["atac"].obsm["X_lsi"], max_epochs=max_epochs, progress_bar=progress_bar,
                  desc="dimension", base_opts=dict(attune_options or {}), anchors=anchors)


def sweep_contrast(
    mdata,
    *,
    designs: Sequence[str] = ("default", "intra", "cross"),
    seeds: Iterable[int] = (0, 1, 2, 3, 4),
    cell_type_key: str = "cell_type",
    max_epochs: int = 20,
    n_latent: int = 128,
    anchors: Sequence[str] = ("pca_lsi", "cca"),
    progress_bar: bool = True,
    attune_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Ablation of Attune's contrast design on integration (paper Supp. Table S7, Fig. 2H designs).

    ``"default"``: RNA-teacher vs ATAC-teacher and RNA-student vs ATAC-student (the paper's);
    ``"intra"``: teacher vs student within each modality; ``"cross"``: RNA-teacher vs
    ATAC-student and RNA-student vs ATAC-teacher (``RtAs_RsAt``).

    Parameters
    ----------
    mdata
        Paired MuData (raw or preprocessed; preprocessed on a copy if raw).
    designs
        Subset of ``("default", "intra", "cross")``.
    seeds
        Attune seeds per design.
    cell_type_key
        ``obs`` column with cell types.
    max_epochs, n_latent, attune_options
        Attune training.
    anchors
        Baseline methods run once (first seed) on the same data and added to the table, so the
        min-max summary scores have fixed reference points (default: the unintegrated PCA/LSI and
        the PCA/LSI+CCA baselines). Their rows have ``method`` != ``"attune"``; ``()`` for none.
    progress_bar
        Progress over runs.

    Returns
    -------
    DataFrame
        One row per design x seed (column ``design``) plus the anchor rows, metrics and summary scores.
    """
    seeds = _check_seeds(seeds)
    _check_anchors(anchors)
    designs = [str(d) for d in designs]
    allowed = ("default", "intra", "cross")
    bad = [d for d in designs if d not in allowed]
    if not designs or bad:
        raise AttuneInputError(f"designs must be a non-empty subset of {allowed}, got {designs}")
    m = _prepare(mdata, cell_type_key=cell_type_key, n_top_genes=2000, min_fraction=0.05)
    configs = [{"design": d} for d in designs]
    return _sweep(m, configs, seeds, cell_type_key=cell_type_key, rna_ref=m.mod["rna"].obsm["X_pca"],
                  atac_ref=m.mod["atac"].obsm["X_lsi"], max_epochs=max_epochs, progress_bar=progress_bar,
                  desc="contrast", n_latent=int(n_latent), base_opts=dict(attune_options or {}), anchors=anchors)


# ------------------------------------------------------------------------------------------------
# winners
# ------------------------------------------------------------------------------------------------
def metric_winners(df: pd.DataFrame, *, by: str = "label", baseline: str | None = "pca_lsi",
                   method: str = "attune") -> pd.DataFrame:
    """Which method wins each metric (mean over seeds of the ``ok`` rows).

    Parameters
    ----------
    df
        Results table of a benchmark run (``status``, ``method``, ``by`` and the metric columns).
    by
        Column naming the methods in the output.
    baseline
        Method compared against (None: no comparison).
    method
        Method whose mean is reported next to the winner's.

    Returns
    -------
    DataFrame
        One row per metric (and summary score): ``metric``, ``better`` (``"higher"``/``"lower"``),
        ``winner``, ``winner_mean``, the ``method``'s mean, the ``baseline``'s mean, and
        ``beats_baseline`` (whether ``method`` is better than ``baseline`` on that metric).
    """
    if not isinstance(df, pd.DataFrame) or "status" not in df or by not in df:
        raise AttuneInputError(f"df must be a results table with 'status' and {by!r} columns")
    ok = df[df["status"].astype(str).str.startswith("ok")]
    if ok.empty:
        raise AttuneInputError("the results table has no 'ok' rows")
    cols = [c for c in (*METRIC_COLUMNS, *SUMMARY_COLUMNS) if c in ok and ok[c].notna().any()]
    means = ok.groupby(by, observed=True)[cols].mean()
    name_of = dict(zip(ok["method"], ok[by]))
    rows = []
    for c in cols:
        lower = c in LOWER_IS_BETTER
        s = means[c].dropna()
        win = s.idxmin() if lower else s.idxmax()
        row = {"metric": c, "better": "lower" if lower else "higher", "winner": win, "winner_mean": s[win]}
        mv = s.get(name_of.get(method), np.nan)
        bv = s.get(name_of.get(baseline), np.nan) if baseline else np.nan
        row[f"{method}_mean"] = mv
        if baseline:
            row[f"{baseline}_mean"] = bv
            row["beats_baseline"] = bool((mv < bv) if lower else (mv > bv)) if np.isfinite(mv) and np.isfinite(bv) \
                else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------
# reference mapping (Supp. Fig. S9)
# ------------------------------------------------------------------------------------------------
def nearest_reference_types(
    mdata,
    *,
    use_rep: str = "X_attune",
    cell_type_key: str = "cell_type",
    split_key: str = "ref_query",
    n_neighbors: int = 15,
) -> pd.DataFrame:
    """Where query cells land: the kNN vote of their nearest reference cells' types.

    For each query cell, its ``n_neighbors`` nearest reference cells (Euclidean in
    ``mdata.obsm[use_rep]``) vote; the table gives, per query cell type, the fraction of votes for
    each reference type (rows sum to 1) and ``n_cells``.

    Parameters
    ----------
    mdata
        MuData of reference and query cells (e.g. from :func:`reference_mapping`).
    use_rep
        obsm key of the embedding the neighbours are found in.
    cell_type_key
        obs column with the cell types.
    split_key
        obs column marking ``"reference"`` and ``"query"`` cells.
    n_neighbors
        Reference neighbours voting for each query cell.
    """
    from sklearn.neighbors import NearestNeighbors

    for key, where in ((split_key, "obs"), (cell_type_key, "obs")):
        if key not in mdata.obs:
            raise AttuneInputError(f"{key!r} not found in mdata.{where}")
    if use_rep not in mdata.obsm:
        raise AttuneInputError(f"use_rep={use_rep!r} not found in mdata.obsm; available: {sorted(mdata.obsm)}")
    z = np.asarray(mdata.obsm[use_rep])
    split = mdata.obs[split_key].astype(str).to_numpy()
    ct = mdata.obs[cell_type_key].astype(str).to_numpy()
    ref, qry = split == "reference", split == "query"
    if not ref.any() or not qry.any():
        raise AttuneInputError(f"obs[{split_key!r}] needs both 'reference' and 'query' cells")
    k = int(min(n_neighbors, ref.sum()))
    nn = NearestNeighbors(n_neighbors=k).fit(z[ref])
    idx = nn.kneighbors(z[qry], return_distance=False)
    votes = ct[ref][idx]
    ref_types = sorted(np.unique(ct[ref]))
    frac = np.stack([(votes == t).mean(axis=1) for t in ref_types], axis=1)
    table = pd.DataFrame(frac, columns=ref_types)
    table["query_type"] = ct[qry]
    out = table.groupby("query_type").mean()
    out["n_cells"] = table.groupby("query_type").size()
    return out


def reference_mapping(
    mdata,
    *,
    holdout_type: str | Sequence[str],
    cell_type_key: str = "cell_type",
    query_fraction: float = 0.2,
    seed: int = 0,
    max_epochs: int = 20,
    n_latent: int = 128,
    n_neighbors: int = 15,
    progress_bar: bool = True,
    attune_options: Mapping[str, Any] | None = None,
):
    """Reference building and query mapping with an unseen cell type (paper Supp. Fig. S9).

    All cells of ``holdout_type`` plus a random ``query_fraction`` of the other cells form the
    query; Attune is trained on the remaining (reference) cells only. The query is then embedded
    with the frozen weights (:meth:`attune_lib.models.Attune.map_query`) and both are concatenated.

    Parameters
    ----------
    mdata
        Paired MuData (raw or preprocessed; preprocessed on a copy if raw).
    holdout_type
        Cell type(s) left out of the reference.
    cell_type_key
        ``obs`` column with cell types.
    query_fraction
        Fraction of the non-held-out cells also put in the query (the paper's 80/20 split).
    seed
        Seed of the split and of training.
    max_epochs, n_latent
        Attune training.
    n_neighbors
        kNN size for :func:`nearest_reference_types` and the label transfer of seen types.
    attune_options
        Extra keyword options for Attune (``batch_size``, ``train_kwargs``, ``model_kwargs``).
    progress_bar
        Show training progress bars.

    Returns
    -------
    MuData
        Reference then query cells with ``obsm["X_attune"]`` (joint), ``obsm["X_attune_rna"]``,
        ``obsm["X_attune_atac"]``, ``obs["ref_query"]`` (``"reference"``/``"query"``),
        ``obs["held_out"]`` (bool), and ``uns["reference_mapping"]`` with ``holdout_type``,
        ``nearest_reference_types`` (DataFrame, see :func:`nearest_reference_types`),
        ``seen_accuracy`` (kNN label transfer accuracy on query cells of seen types) and
        ``n_reference``/``n_query``.
    """
    import mudata as md

    holdouts = [holdout_type] if isinstance(holdout_type, str) else [str(h) for h in holdout_type]
    if not (0 <= query_fraction < 1):
        raise AttuneInputError(f"query_fraction must be in [0, 1), got {query_fraction}")
    m = _prepare(mdata, cell_type_key=cell_type_key, n_top_genes=2000, min_fraction=0.05)
    ct = _cell_types(m, cell_type_key)
    missing = [h for h in holdouts if h not in set(ct)]
    if missing:
        raise AttuneInputError(
            f"holdout_type {missing} not found in obs[{cell_type_key!r}]; available: {sorted(set(ct))}"
        )
    held = np.isin(ct, holdouts)
    if held.all():
        raise AttuneInputError("holdout_type covers every cell; nothing is left for the reference")
    rng = np.random.default_rng(seed)
    extra_q = (~held) & (rng.random(m.n_obs) < query_fraction)
    is_query = held | extra_q
    Attune = _attune_class()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = m[~is_query].copy()
        qry = m[is_query].copy()
    opts = dict(attune_options or {})
    model = _train_attune(ref, seed=seed, n_latent=n_latent, max_epochs=max_epochs, progress_bar=progress_bar,
                          batch_size=opts.pop("batch_size", 128), **opts)
    ref_emb = _attune_embeddings(model, ref)
    qry_emb = _map_query(model, qry, Attune)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = md.concat([ref, qry], label=None) if hasattr(md, "concat") else None
    if out is None:  # pragma: no cover - mudata >= 0.3 has concat
        raise AttuneInputError("mudata.concat is required")
    for mod, key in (("joint", "X_attune"), ("rna", "X_attune_rna"), ("atac", "X_attune_atac")):
        out.obsm[key] = np.vstack([ref_emb[mod], qry_emb[mod]])
    out.obs["ref_query"] = pd.Categorical(["reference"] * ref.n_obs + ["query"] * qry.n_obs,
                                          categories=["reference", "query"])
    out.obs["held_out"] = np.concatenate([np.zeros(ref.n_obs, bool), held[is_query]])
    out.obs[cell_type_key] = pd.Categorical(np.concatenate([ct[~is_query], ct[is_query]]))
    near = nearest_reference_types(out, use_rep="X_attune", cell_type_key=cell_type_key, n_neighbors=n_neighbors)
    seen = near.drop(index=[h for h in holdouts if h in near.index])
    if len(seen):
        acc = float(np.average([seen.loc[t, t] if t in seen.columns else 0.0 for t in seen.index],
                               weights=seen["n_cells"]))
    else:
        acc = float("nan")
    out.uns["reference_mapping"] = {
        "holdout_type": holdouts,
        "nearest_reference_types": near,
        "seen_accuracy": acc,
        "n_reference": int(ref.n_obs),
        "n_query": int(qry.n_obs),
        "reference_obs_names": np.asarray(ref.obs_names),
    }
    return out


def _map_query(model, qry, Attune) -> dict[str, np.ndarray]:
    """Embed query cells with the frozen reference model (:meth:`Attune.map_query`)."""
    model.map_query(qry, key_added="X_attune")
    return {"rna": np.asarray(qry.obsm["X_attune_rna"]), "atac": np.asarray(qry.obsm["X_attune_atac"]),
            "joint": np.asarray(qry.obsm["X_attune"])}
