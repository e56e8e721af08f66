"""Attune hyper-parameter sweeps scored like the benchmark (paper Fig. 2D features, 2E dimension, 2H
contrast designs), with registered baselines as fixed anchors.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from .._utils import AttuneInputError, progress
from ._integration_benchmark import check_scaling, check_seeds, finish_table, run_method
from ._integration_methods import METHOD_REGISTRY, benchmark_cell_types, prepare_benchmark_data, raw_copy

logger = logging.getLogger("attune_lib")

__all__ = [
    "sweep_features",
    "sweep_dimension",
    "sweep_contrast",
]


# ------------------------------------------------------------------------------------------------
# sweeps (Fig. 2D, 2E, contrast ablation)
# ------------------------------------------------------------------------------------------------
def _check_anchors(anchors: Sequence[str]) -> list[str]:
    anchors = [anchors] if isinstance(anchors, str) else list(anchors or ())
    unknown = [a for a in anchors if a not in METHOD_REGISTRY or a == "attune"]
    if unknown:
        raise AttuneInputError(f"anchors {unknown} must be registered methods other than 'attune'; "
                               f"registered: {sorted(METHOD_REGISTRY)}")
    return anchors


def _sweep(m, configs: list[dict], seeds: list[int], *, cell_type_key, rna_ref, atac_ref, max_epochs,
           progress_bar, desc, n_latent: int = 128, base_opts: dict | None = None, data_for=None,
           anchors: Sequence[str] = (), anchor_data=None, score_scaling: str = "fixed") -> pd.DataFrame:
    """Train Attune for every config x seed (a config may set ``n_latent`` and ``design``), run the
    ``anchors`` baselines once on ``anchor_data`` (default ``m``), score everything and add the summary
    scores (``score_scaling``, see :func:`summary_scores`)."""
    anchors = _check_anchors(anchors)
    check_scaling(score_scaling)
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
            row = run_method(data, "attune", seed, n_latent=n_lat, max_epochs=max_epochs, progress_bar=False,
                           opts=opts, cell_types=benchmark_cell_types(data, cell_type_key), rna_ref=rna_ref,
                           atac_ref=atac_ref, on_error="raise", metric_kwargs={}, keep=None, extra=extra)
        rows.append(row)
    adata = m if anchor_data is None else anchor_data
    for name in anchors:
        meth = METHOD_REGISTRY[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row = run_method(adata, name, seeds[0], n_latent=meth.n_latent, max_epochs=meth.max_epochs,
                           progress_bar=False, opts={}, cell_types=benchmark_cell_types(adata, cell_type_key),
                           rna_ref=rna_ref, atac_ref=atac_ref, on_error="record", metric_kwargs={}, keep=None)
        if data_for is not None:
            row["n_genes"] = int(adata.mod["rna"].n_vars)
            row["n_peaks"] = int(adata.mod["atac"].n_vars)
        rows.append(row)
    return finish_table(rows, score_scaling=score_scaling)


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
    score_scaling: str = "fixed",
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
    score_scaling
        How the summary scores are scaled: ``"fixed"`` (each metric on its own 0-1 range, so a run scores
        the same in every table) or ``"minmax"`` (GLUE's and the paper's min-max over this table's rows);
        see :func:`attune_lib.tl.summary_scores`.

    Returns
    -------
    DataFrame
        One row per setting x seed with ``n_genes_requested``/``n_peaks_requested`` (the asked
        values; ``n_peaks_requested`` NaN = all), ``n_genes``/``n_peaks`` (what the data had after
        filtering), the metrics and the summary scores (min-max over this table).
    """
    from .. import pp

    seeds = check_seeds(seeds)
    _check_anchors(anchors)
    n_genes = [int(g) for g in n_genes]
    n_peaks = [None if p is None else int(p) for p in n_peaks]
    if not n_genes or not n_peaks or any(g < 2 for g in n_genes) or any(p is not None and p < 2 for p in n_peaks):
        raise AttuneInputError(f"n_genes/n_peaks must be non-empty and >= 2, got {n_genes} / {n_peaks}")
    raw = raw_copy(mdata)
    benchmark_cell_types(raw, cell_type_key)
    ref = prepare_benchmark_data(raw, cell_type_key=cell_type_key, n_top_genes=2000, min_fraction=min_fraction)
    rna_ref, atac_ref = ref.mod["rna"].obsm["X_pca"], ref.mod["atac"].obsm["X_lsi"]

    def data_for(cfg):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = raw.copy()
            pp.preprocess(d, n_top_genes=cfg["n_genes_requested"], n_peaks=cfg["n_peaks_requested"],
                          min_fraction=min_fraction)
        return d

    configs = [{"n_genes_requested": g, "n_peaks_requested": p} for g in n_genes for p in n_peaks]
    return _sweep(raw, configs, seeds, score_scaling=score_scaling,
                  cell_type_key=cell_type_key, rna_ref=rna_ref, atac_ref=atac_ref,
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
    score_scaling: str = "fixed",
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
    score_scaling
        How the summary scores are scaled: ``"fixed"`` (each metric on its own 0-1 range, so a run scores
        the same in every table) or ``"minmax"`` (GLUE's and the paper's min-max over this table's rows);
        see :func:`attune_lib.tl.summary_scores`.

    Returns
    -------
    DataFrame
        One row per dimension x seed (column ``n_latent``) plus the anchor rows, metrics and summary
        scores (min-max over this table).
    """
    seeds = check_seeds(seeds)
    _check_anchors(anchors)
    dims = [int(d) for d in dims]
    if not dims or any(d < 2 for d in dims):
        raise AttuneInputError(f"dims must be integers >= 2, got {dims}")
    m = prepare_benchmark_data(mdata, cell_type_key=cell_type_key, n_top_genes=2000, min_fraction=0.05)
    configs = [{"n_latent": d} for d in dims]
    return _sweep(m, configs, seeds, score_scaling=score_scaling,
                  cell_type_key=cell_type_key, rna_ref=m.mod["rna"].obsm["X_pca"],
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
    score_scaling: str = "fixed",
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
    score_scaling
        How the summary scores are scaled: ``"fixed"`` (each metric on its own 0-1 range, so a run scores
        the same in every table) or ``"minmax"`` (GLUE's and the paper's min-max over this table's rows);
        see :func:`attune_lib.tl.summary_scores`.

    Returns
    -------
    DataFrame
        One row per design x seed (column ``design``) plus the anchor rows, metrics and summary scores.
    """
    seeds = check_seeds(seeds)
    _check_anchors(anchors)
    designs = [str(d) for d in designs]
    allowed = ("default", "intra", "cross")
    bad = [d for d in designs if d not in allowed]
    if not designs or bad:
        raise AttuneInputError(f"designs must be a non-empty subset of {allowed}, got {designs}")
    m = prepare_benchmark_data(mdata, cell_type_key=cell_type_key, n_top_genes=2000, min_fraction=0.05)
    configs = [{"design": d} for d in designs]
    return _sweep(m, configs, seeds, score_scaling=score_scaling,
                  cell_type_key=cell_type_key, rna_ref=m.mod["rna"].obsm["X_pca"],
                  atac_ref=m.mod["atac"].obsm["X_lsi"], max_epochs=max_epochs, progress_bar=progress_bar,
                  desc="contrast", n_latent=int(n_latent), base_opts=dict(attune_options or {}), anchors=anchors)
