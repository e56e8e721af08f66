"""Integration benchmark (paper Fig. 2A-C).

The harness runs every registered method (:mod:`attune_lib.tl._integration_methods`) on the same paired
MuData for several seeds, scores each run with GLUE's integration metrics
(:func:`attune_lib.metrics.integration_metrics_from_embeddings`), adds trust columns and the summary scores
(:func:`summary_scores`: by default on fixed anchors, each metric on its own 0-1 range, so a run scores
the same in every table; ``score_scaling="minmax"`` gives GLUE's min-max over the rows of the table). A
method that cannot run here gets a ``"skipped: <reason>"`` row.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._utils import AttuneInputError, progress, set_seed
from ._integration_methods import (
    METHOD_REGISTRY,
    SKIP_ERRORS,
    benchmark_cell_types,
    prepare_benchmark_data,
)

logger = logging.getLogger("attune_lib")

__all__ = [
    "METRIC_COLUMNS",
    "SUMMARY_COLUMNS",
    "LOWER_IS_BETTER",
    "warn_flags",
    "run_integration_benchmark",
    "metric_winners",
    "summary_scores",
    "SCORE_SCALINGS",
]

#: how :func:`summary_scores` scales the metrics: on fixed anchors or min-max over the table (GLUE, paper)
SCORE_SCALINGS = ("fixed", "minmax")

#: fixed anchors (worst, best) of each summary metric: the metric's own range, so no table is needed
SCORE_ANCHORS = {"map": (0.0, 1.0), "asw": (0.0, 1.0), "nc": (0.0, 1.0), "sas": (0.0, 1.0),
                 "asw_batch": (0.0, 1.0), "gc": (0.0, 1.0)}


#: per-run metric columns of the results table (GLUE names, see :mod:`attune_lib.metrics`)
METRIC_COLUMNS = ("map", "asw", "nc", "sas", "asw_batch", "gc", "foscttm", "alignment", "uniformity")


#: summary columns added by :func:`attune_lib.metrics.summarize_scores`
SUMMARY_COLUMNS = ("bio_conservation", "omics_mixing", "overall")


#: metrics where lower is better
LOWER_IS_BETTER = ("foscttm", "alignment", "uniformity")


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
        integration_metrics_from_embeddings,
        mean_average_precision,
    )

    if emb["rna"] is not None and emb["atac"] is not None:
        return integration_metrics_from_embeddings(emb["rna"], emb["atac"], cell_types, rna_ref=rna_ref,
                                                   atac_ref=atac_ref, seed=seed, **metric_kwargs)
    # joint-only method: one embedding for both modalities, so only the biology metrics are defined
    # (FOSCTTM, alignment and the omics-mixing metrics would be trivially perfect and are left NaN)
    from ..metrics import neighbor_conservation

    z = emb["joint"]
    out = {c: float("nan") for c in METRIC_COLUMNS}
    out["map"] = mean_average_precision(z, cell_types)
    out["asw"] = avg_silhouette_width(z, cell_types)
    if rna_ref is not None and atac_ref is not None:
        from ..metrics._integration import pad_columns

        width = max(rna_ref.shape[1], atac_ref.shape[1])
        refs = np.vstack([pad_columns(np.asarray(rna_ref, float), width),
                          pad_columns(np.asarray(atac_ref, float), width)])
        batch = np.array(["rna"] * z.shape[0] + ["atac"] * z.shape[0])
        out["nc"] = neighbor_conservation(np.vstack([z, z]), refs, batch)
    return out


def _trust(emb: dict, cell_types: np.ndarray, rna_ref, atac_ref, *, label: str, seed: int) -> dict[str, Any]:
    """Trust diagnostics of one run (see :func:`attune_lib.metrics.integration_trust`); flags not warned here."""
    from ..metrics import integration_trust, label_structure

    refs = {"RNA PCA": rna_ref, "ATAC LSI": atac_ref} if rna_ref is not None and atac_ref is not None else None
    if emb["rna"] is not None and emb["atac"] is not None:
        t = integration_trust(emb["rna"], emb["atac"], cell_types, references=refs, name=label,
                              seed=seed, warn=False)
        lab = t["label"]
        return {"map_rna": lab.loc["rna", "map"], "map_atac": lab.loc["atac", "map"],
                "map_chance": lab.loc["joint", "map_shuffled"], "label_signal": lab.loc["joint", "label_signal"],
                "flag": t["flag"], "_data_flags": t["data_flags"]}
    ls = label_structure(emb["joint"], cell_types, seed=seed)
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
    unknown = [m for m in methods if m not in METHOD_REGISTRY]
    if unknown:
        raise AttuneInputError(
            f"unknown method(s) {unknown} in methods=; registered: {sorted(METHOD_REGISTRY)}"
        )
    return methods


def check_seeds(seeds) -> list[int]:
    if isinstance(seeds, (int, np.integer)):
        seeds = (int(seeds),)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise AttuneInputError("seeds is empty")
    return seeds


def run_method(m, name: str, seed: int, *, n_latent, max_epochs, progress_bar: bool, opts: dict,
             cell_types, rna_ref, atac_ref, on_error: str, metric_kwargs: dict, keep: dict | None,
             extra: dict | None = None) -> dict[str, Any]:
    method = METHOD_REGISTRY[name]
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
    except SKIP_ERRORS as exc:
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


def check_scaling(score_scaling: str) -> str:
    """``score_scaling`` when it is one of :data:`SCORE_SCALINGS`; a named error otherwise.

    Parameters
    ----------
    score_scaling
        ``"fixed"`` or ``"minmax"``.
    """
    if score_scaling not in SCORE_SCALINGS:
        raise AttuneInputError(f"score_scaling={score_scaling!r}: use one of {list(SCORE_SCALINGS)}")
    return score_scaling


def summary_scores(df: pd.DataFrame, *, score_scaling: str = "fixed") -> pd.DataFrame:
    """Biology conservation, omics mixing and overall score of each row of a results table.

    ``bio_conservation`` is the mean of the scaled MAP, cell-type ASW and NC; ``omics_mixing`` the mean of the
    scaled SAS, omics-layer ASW and GC; ``overall = 0.6 * bio + 0.4 * mixing`` (GLUE's weights). The
    scaling:

    * ``"fixed"`` (default): each metric on fixed anchors, its own range (:data:`SCORE_ANCHORS`: all six
      lie in [0, 1], so the scaled value is the metric itself, as in scIB's raw-score summaries). A run
      gets the same score in every table, and scores of different figures can be compared.
    * ``"minmax"``: GLUE's and the paper's scaling, ``(x - min) / (max - min)`` over the rows of ``df``
      (:func:`attune_lib.metrics.summarize_scores`). A run's score depends on the other rows, so the same
      baseline scores differently in tables with other methods or settings.

    Parameters
    ----------
    df
        Table with the columns ``map``, ``asw``, ``nc``, ``sas``, ``asw_batch``, ``gc``.
    score_scaling
        ``"fixed"`` or ``"minmax"``.

    Returns
    -------
    DataFrame
        A copy of ``df`` with ``bio_conservation``, ``omics_mixing`` and ``overall``;
        ``attrs["score_scaling"]`` says which scaling was used.
    """
    from ..metrics import summarize_scores

    check_scaling(score_scaling)
    out = summarize_scores(df, anchors=None if score_scaling == "minmax" else SCORE_ANCHORS)
    out.attrs["score_scaling"] = score_scaling
    return out


def finish_table(rows: list[dict], *, score_scaling: str = "fixed") -> pd.DataFrame:
    """The results table of ``rows`` with the summary scores of its ``ok`` rows (:func:`summary_scores`).

    Parameters
    ----------
    rows
        One dict per run.
    score_scaling
        ``"fixed"`` or ``"minmax"``.
    """
    df = pd.DataFrame(rows)
    df.attrs["score_scaling"] = check_scaling(score_scaling)
    ok = df["status"].str.startswith("ok")
    if ok.any():
        scored = summary_scores(df.loc[ok], score_scaling=score_scaling)
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
    score_scaling: str = "fixed",
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
        Passed to :func:`attune_lib.metrics.integration_metrics_from_embeddings`.
    score_scaling
        ``"fixed"`` (default: each metric on its own 0-1 range, so a method scores the same here as in
        any sweep table) or ``"minmax"`` (GLUE's and the paper's min-max over this table's ``ok`` rows);
        see :func:`summary_scores`.

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
        ``overall`` (``score_scaling``; ``df.attrs["score_scaling"]`` records it).
        ``df.attrs["data_flags"]`` lists flags about the
        data (a modality whose own reference keeps no label structure). With ``return_embeddings``:
        ``(df, embeddings)``.
    """
    methods = _check_methods(methods)
    seeds = check_seeds(seeds)
    check_scaling(score_scaling)
    if on_error not in ("raise", "record"):
        raise AttuneInputError(f"on_error must be 'raise' or 'record', got {on_error!r}")
    method_options = dict(method_options or {})
    bad = [k for k in method_options if k not in methods]
    if bad:
        raise AttuneInputError(f"method_options has key(s) {bad} that are not in methods={methods}")
    m = prepare_benchmark_data(mdata, cell_type_key=cell_type_key, n_top_genes=n_top_genes, min_fraction=min_fraction)
    ct = benchmark_cell_types(m, cell_type_key)
    rna_ref, atac_ref = m.mod["rna"].obsm["X_pca"], m.mod["atac"].obsm["X_lsi"]
    keep: dict | None = {} if return_embeddings else None
    rows = []
    runs = [(name, s) for name in methods for s in seeds]
    bar = progress(runs, enabled=progress_bar, desc="benchmark", unit="run")
    skipped: dict[str, str] = {}
    for name, seed in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{name} seed={seed}")
        meth = METHOD_REGISTRY[name]
        ep = _per_method(max_epochs, name, meth.max_epochs)
        nl = _per_method(n_latent, name, meth.n_latent)
        if name in skipped:  # an unavailable method is tried once
            rows.append({"method": name, "label": meth.label, "seed": seed,
                         **{c: float("nan") for c in METRIC_COLUMNS}, "n_latent": np.nan, "max_epochs": ep,
                         "runtime_s": np.nan, "status": skipped[name]})
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row = run_method(m, name, seed, n_latent=nl, max_epochs=ep, progress_bar=False,
                           opts=dict(method_options.get(name, {})), cell_types=ct, rna_ref=rna_ref,
                           atac_ref=atac_ref, on_error=on_error, metric_kwargs=dict(metric_kwargs or {}),
                           keep=keep)
        if row["status"].startswith("skipped"):
            skipped[name] = row["status"]
        rows.append(row)
    data_flags = sorted({f for r in rows for f in r.pop("_data_flags", [])})
    df = finish_table(rows, score_scaling=score_scaling)
    df.attrs["data_flags"] = data_flags
    warn_flags(df, what="integration benchmark")
    return (df, keep) if return_embeddings else df


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
