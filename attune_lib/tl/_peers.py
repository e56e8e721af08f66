"""Wrappers that run the peer integration methods (MultiVI, GLUE) on a paired RNA + ATAC MuData.

Both peers are optional (``pip install attune-companion[peers]``). Each wrapper raises
:class:`PeerNotAvailable` with a one-line reason when its package is missing, which the benchmark
harness (:func:`attune_lib.tl.run_integration_benchmark`) records as a ``"skipped: ..."`` row.

Every wrapper returns a dict of embeddings with the cells in the order of ``mdata``:
``{"rna": (n_cells, d), "atac": (n_cells, d), "joint": (n_cells, d') or None}``.
The per-modality embeddings are what the GLUE metrics (FOSCTTM, SAS, omics-layer ASW, ...) compare.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import tempfile
import warnings
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._access import get_matrix
from .._utils import AttuneInputError, as_csr, get_modality, renamed_kwargs

__all__ = [
    "PeerNotAvailable",
    "glue_guidance_graph",
    "peer_versions",
    "run_glue",
    "run_multivi",
]

logger = logging.getLogger("attune_lib")


class PeerNotAvailable(RuntimeError):
    """A peer method cannot run here (package not installed, or not implemented yet)."""


def _require(module: str, pip_name: str) -> Any:
    """Import ``module`` or raise :class:`PeerNotAvailable` naming the package to install."""
    if importlib.util.find_spec(module) is None:
        raise PeerNotAvailable(f"{pip_name} not installed (pip install 'attune-companion[peers]')")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except Exception as exc:  # a broken install is reported, not raised
        raise PeerNotAvailable(f"{pip_name} failed to import: {type(exc).__name__}: {exc}") from exc


def peer_versions() -> dict[str, str | None]:
    """Installed versions of the optional peers (``None`` when absent)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("scvi-tools", "scglue"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def _counts(adata, layer: str | None, *, name: str) -> sp.csr_matrix:
    """Raw counts of a modality (see :func:`attune_lib._access.get_matrix`); peers' likelihoods model counts."""
    X, _, _ = get_matrix(adata, "counts", layer=layer, where=f"mdata[{name!r}]",
                         step="this peer's count likelihood", param=f"{'rna' if name == 'rna' else 'atac'}_layer")
    return as_csr(X)


def paired_modalities(mdata, rna_mod: str, atac_mod: str):
    rna = get_modality(mdata, rna_mod, role="RNA")
    atac = get_modality(mdata, atac_mod, role="ATAC")
    if rna.n_obs != atac.n_obs or not np.array_equal(rna.obs_names, atac.obs_names):
        raise AttuneInputError(
            f"mdata[{rna_mod!r}] and mdata[{atac_mod!r}] must hold the same cells in the same order"
        )
    return rna, atac


# --------------------------------------------------------------------------------------- MultiVI


@renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
def run_multivi(
    mdata,
    *,
    seed: int = 0,
    n_latent: int | None = None,
    max_epochs: int = 50,
    batch_size: int = 128,
    lr: float = 1e-4,
    rna_mod: str = "rna",
    atac_mod: str = "atac",
    rna_layer: str | None = None,
    atac_layer: str | None = None,
    batch_key: str | None = None,
    early_stopping: bool = True,
    progress_bar: bool = True,
    model_kwargs: dict | None = None,
    train_kwargs: dict | None = None,
) -> dict[str, np.ndarray]:
    """Train scvi-tools' MULTIVI on the paired cells and return its embeddings.

    MultiVI encodes each modality with its own encoder and aligns the two posteriors (Jeffreys
    penalty + adversarial mixing); the joint latent is their average. The per-modality latents
    (``get_latent_representation(modality="expression" / "accessibility")``) are returned as
    ``"rna"`` / ``"atac"``, so FOSCTTM measures how well MultiVI's two encoders agree.

    Parameters
    ----------
    mdata
        MuData with raw counts (``layers["counts"]`` or ``X``) in ``mdata[rna_mod]`` and ``mdata[atac_mod]``.
    seed
        ``scvi.settings.seed``.
    n_latent
        Latent size; ``None`` uses MultiVI's default (``sqrt(n_regions)``).
    max_epochs
        Cap on the epochs (MultiVI's default of 500 is far too slow on CPU); early stopping still applies.
    batch_size, lr
        Passed to ``MULTIVI.train``.
    rna_layer, atac_layer
        Count layers; default ``"counts"`` when present, else ``X``.
    batch_key
        Optional ``obs`` column of ``mdata[rna_mod]`` with batches.
    progress_bar
        Lightning progress bar.
    model_kwargs, train_kwargs
        Extra arguments for ``MULTIVI(...)`` and ``MULTIVI.train(...)``.
    rna_mod
        RNA modality name.
    atac_mod
        ATAC modality name.
    early_stopping
        Stop on MultiVI's validation loss (scvi-tools' early stopping).

    Returns
    -------
    dict with ``"rna"``, ``"atac"`` and ``"joint"`` arrays (cells in ``mdata`` order).
    """
    scvi = _require("scvi", "scvi-tools")
    import anndata as ad
    import mudata as md

    rna, atac = paired_modalities(mdata, rna_mod, atac_mod)
    if max_epochs < 1:
        raise AttuneInputError(f"max_epochs must be >= 1, got {max_epochs}")
    obs = pd.DataFrame(index=rna.obs_names.astype(str))
    if batch_key is not None:
        if batch_key not in rna.obs:
            raise AttuneInputError(f"batch_key={batch_key!r} not in mdata[{rna_mod!r}].obs")
        obs[batch_key] = rna.obs[batch_key].astype(str).to_numpy()
    r = ad.AnnData(X=_counts(rna, rna_layer, name=rna_mod), obs=obs.copy(),
                   var=pd.DataFrame(index=rna.var_names.astype(str)))
    a = ad.AnnData(X=_counts(atac, atac_layer, name=atac_mod), obs=obs.copy(),
                   var=pd.DataFrame(index=atac.var_names.astype(str)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tmp = md.MuData({"rna": r, "atac": a})
    modalities = {"rna_layer": "rna", "atac_layer": "atac"}
    if batch_key is not None:
        modalities["batch_key"] = "rna"
    _quiet_lightning(not progress_bar)
    scvi.settings.seed = int(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scvi.model.MULTIVI.setup_mudata(tmp, batch_key=batch_key, modalities=modalities)
        kwargs = dict(model_kwargs or {})
        if n_latent is not None:
            kwargs["n_latent"] = int(n_latent)
        model = scvi.model.MULTIVI(tmp, n_genes=r.n_vars, n_regions=a.n_vars, **kwargs)
        tkw = {
            "max_epochs": int(max_epochs),
            "lr": lr,
            "batch_size": batch_size,
            "early_stopping": early_stopping,
            "n_epochs_kl_warmup": min(50, int(max_epochs)),
            "accelerator": "auto",
            "enable_progress_bar": progress_bar,
        }
        tkw.update(train_kwargs or {})
        model.train(**tkw)
        out = {
            "rna": np.asarray(model.get_latent_representation(modality="expression")),
            "atac": np.asarray(model.get_latent_representation(modality="accessibility")),
            "joint": np.asarray(model.get_latent_representation(modality="joint")),
        }
    return out


def _quiet_lightning(quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.INFO
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "scvi", "lightning.fabric"):
        logging.getLogger(name).setLevel(level if name != "scvi" else max(level, logging.WARNING))


# ------------------------------------------------------------------------------------------ GLUE


@renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
def glue_guidance_graph(
    mdata,
    *,
    rna_mod: str = "rna",
    atac_mod: str = "atac",
    promoter_len: int = 2000,
):
    """GLUE's RNA-anchored guidance graph, built from ``var`` coordinates without bedtools.

    Like ``scglue.genomics.rna_anchored_guidance_graph`` with its defaults: a gene is linked to every
    peak overlapping its gene body extended by ``promoter_len`` bp upstream of the TSS (strand
    aware), with ``weight=1`` and ``sign=1``, in both directions; every feature gets a self-loop.
    Genes without coordinates (``chrom`` NaN) only get their self-loop.

    Parameters
    ----------
    mdata
        MuData with gene (``rna.var``) and peak (``atac.var``) coordinates.
    rna_mod
        RNA modality name.
    atac_mod
        ATAC modality name.
    promoter_len
        Length of the promoter upstream of the TSS linked to overlapping peaks (bp).

    Returns
    -------
    ``networkx.MultiDiGraph`` whose nodes are the RNA and ATAC ``var_names``.
    """
    import networkx as nx

    rna, atac = paired_modalities(mdata, rna_mod, atac_mod)
    for col in ("chrom", "start", "end"):
        if col not in atac.var:
            raise AttuneInputError(f"mdata[{atac_mod!r}].var lacks {col!r} (needed for GLUE's guidance graph)")
        if col not in rna.var:
            raise AttuneInputError(f"mdata[{rna_mod!r}].var lacks {col!r} (needed for GLUE's guidance graph)")
    gv = rna.var
    strand = gv["strand"].astype(str).to_numpy() if "strand" in gv else np.full(rna.n_vars, "+")
    g_ok = gv["chrom"].notna().to_numpy() & gv["start"].notna().to_numpy() & gv["end"].notna().to_numpy()
    g_start = pd.to_numeric(gv["start"], errors="coerce").to_numpy(dtype=float)
    g_end = pd.to_numeric(gv["end"], errors="coerce").to_numpy(dtype=float)
    lo = np.where(strand == "-", g_start, g_start - promoter_len)
    hi = np.where(strand == "-", g_end + promoter_len, g_end)

    pv = atac.var
    p_chrom = pv["chrom"].astype(str).to_numpy()
    p_start = pd.to_numeric(pv["start"], errors="coerce").to_numpy(dtype=float)
    p_end = pd.to_numeric(pv["end"], errors="coerce").to_numpy(dtype=float)
    by_chrom: dict[str, np.ndarray] = {}
    for c in np.unique(p_chrom):
        idx = np.flatnonzero(p_chrom == c)
        by_chrom[c] = idx[np.argsort(p_start[idx])]

    graph = nx.MultiDiGraph()
    genes = rna.var_names.astype(str).to_numpy()
    peaks = atac.var_names.astype(str).to_numpy()
    graph.add_nodes_from(genes)
    graph.add_nodes_from(peaks)
    g_chrom = gv["chrom"].astype(str).to_numpy()
    for gi in np.flatnonzero(g_ok):
        idx = by_chrom.get(g_chrom[gi])
        if idx is None:
            continue
        hit = idx[(p_start[idx] < hi[gi]) & (p_end[idx] > lo[gi])]
        for pi in hit:
            graph.add_edge(genes[gi], peaks[pi], weight=1.0, sign=1)
            graph.add_edge(peaks[pi], genes[gi], weight=1.0, sign=1)
    for node in list(graph.nodes):
        graph.add_edge(node, node, weight=1.0, sign=1)
    return graph


@renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
def run_glue(
    mdata,
    *,
    seed: int = 0,
    n_latent: int = 50,
    max_epochs: int = 30,
    batch_size: int = 128,
    n_comps: int = 50,
    rna_mod: str = "rna",
    atac_mod: str = "atac",
    rna_layer: str | None = None,
    atac_layer: str | None = None,
    promoter_len: int = 2000,
    align_burnin: int | None = None,
    progress_bar: bool = True,
    compile_kwargs: dict | None = None,
    return_features: bool = False,
) -> dict:
    """Train scglue's ``PairedSCGLUEModel`` (GLUE for paired cells) and return the cell embeddings.

    Follows the scglue tutorial: negative-binomial decoders on raw counts; the RNA encoder reads a
    PCA of the log-normalised, scaled counts and the ATAC encoder an LSI of the TF-IDF counts
    (both ``n_comps``); the guidance graph comes from :func:`glue_guidance_graph` (no bedtools).
    Cells are paired through their shared ``obs_names`` (``use_obs_names=True``).
    ``fit_SCGLUE`` runs a pretraining and a fine-tuning stage, each capped at ``max_epochs``
    (GLUE's ``"AUTO"`` budget can run to hundreds of epochs on CPU). The cell-type balancing step
    between the two stages is skipped: with paired cells both modalities have the same composition
    by construction (and the step divides by zero when short training leaves clusters unmatched).

    GLUE's automatic ``align_burnin`` is 1/6 of its automatic epoch budget (hundreds to thousands
    of epochs on small data), so with a cap it would never start the adversarial alignment; the
    default here keeps GLUE's ratio, ``max(1, max_epochs // 6)``.

    Parameters
    ----------
    mdata
        MuData with raw counts in both modalities.
    seed
        Seed of scglue.
    n_latent
        Embedding dimension.
    max_epochs
        Cap on the epochs of each stage (pretraining, fine-tuning).
    batch_size
        Cells per batch.
    n_comps
        PCA / LSI components fed to the encoders.
    rna_mod
        RNA modality name.
    atac_mod
        ATAC modality name.
    rna_layer
        RNA count layer (None: ``counts`` when present, else ``.X``).
    atac_layer
        ATAC count layer (None: ``counts`` when present, else ``.X``).
    promoter_len
        Promoter length of the guidance graph (bp).
    align_burnin
        Epochs before the adversarial alignment starts (None: ``max(1, max_epochs // 6)``).
    progress_bar
        Show scglue's progress output.
    compile_kwargs
        Extra arguments of ``PairedSCGLUEModel.compile``.
    return_features
        Also return the feature embeddings.

    Returns
    -------
    dict with ``"rna"`` and ``"atac"`` embeddings (``encode_data``) and ``"joint"`` = their mean;
    with ``return_features=True`` also ``"features"``: the feature embeddings (``encode_graph``) as a
    DataFrame indexed by gene and peak names.
    """
    scglue = _require("scglue", "scglue")
    import anndata as ad
    import scanpy as sc

    from ..pp import lsi as _lsi

    rna, atac = paired_modalities(mdata, rna_mod, atac_mod)
    if max_epochs < 1:
        raise AttuneInputError(f"max_epochs must be >= 1, got {max_epochs}")
    graph = glue_guidance_graph(mdata, rna_mod=rna_mod, atac_mod=atac_mod, promoter_len=promoter_len)
    names = rna.obs_names.astype(str)
    r = ad.AnnData(X=_counts(rna, rna_layer, name=rna_mod), obs=pd.DataFrame(index=names),
                   var=pd.DataFrame(index=rna.var_names.astype(str)))
    a = ad.AnnData(X=_counts(atac, atac_layer, name=atac_mod), obs=pd.DataFrame(index=names),
                   var=pd.DataFrame(index=atac.var_names.astype(str)))
    r.var["highly_variable"] = True
    a.var["highly_variable"] = True
    k_r = int(min(n_comps, r.n_vars - 1, r.n_obs - 1))
    k_a = int(min(n_comps, a.n_vars - 1, a.n_obs - 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tmp = r.copy()
        sc.pp.normalize_total(tmp, target_sum=1e4)
        sc.pp.log1p(tmp)
        sc.pp.scale(tmp, max_value=10)
        sc.tl.pca(tmp, n_comps=k_r, svd_solver="arpack", random_state=seed)
        r.obsm["X_pca"] = tmp.obsm["X_pca"]
        del tmp
        _lsi(a, n_comps=k_a, key_added="X_lsi", random_state=seed)
    _quiet_glue(not progress_bar)
    scglue.models.configure_dataset(r, "NB", use_highly_variable=True, use_rep="X_pca", use_obs_names=True)
    scglue.models.configure_dataset(a, "NB", use_highly_variable=True, use_rep="X_lsi", use_obs_names=True)
    scglue.config.CPU_ONLY = not _cuda()
    # scglue shuffles the guidance graph in a separate worker process by default
    # (GRAPH_SHUFFLE_NUM_WORKERS=1). Forked from a Jupyter/papermill kernel, that worker could
    # deadlock and hang training; shuffling in-process avoids it at a small cost per epoch.
    graph_workers = scglue.config.GRAPH_SHUFFLE_NUM_WORKERS
    scglue.config.GRAPH_SHUFFLE_NUM_WORKERS = 0
    adatas = {"rna": r, "atac": a}
    try:
        with tempfile.TemporaryDirectory(prefix="attune_glue_") as tdir, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = scglue.models.fit_SCGLUE(
                adatas,
                graph,
                model=scglue.models.PairedSCGLUEModel,
                skip_balance=True,  # paired cells: both modalities have the same composition by construction
                init_kws={"latent_dim": int(n_latent), "random_seed": int(seed)},
                compile_kws=dict(compile_kwargs or {}),
                fit_kws={"max_epochs": int(max_epochs), "data_batch_size": int(batch_size), "directory": tdir,
                         "align_burnin": int(align_burnin if align_burnin is not None else max(1, max_epochs // 6))},
            )
            emb_r = np.asarray(model.encode_data("rna", r))
            emb_a = np.asarray(model.encode_data("atac", a))
            features = None
            if return_features:
                features = pd.DataFrame(np.asarray(model.encode_graph(graph)),
                                        index=pd.Index(list(model.vertices), dtype=str))
    finally:
        scglue.config.GRAPH_SHUFFLE_NUM_WORKERS = graph_workers
    if not (np.isfinite(emb_r).all() and np.isfinite(emb_a).all()):
        raise RuntimeError("GLUE training diverged (non-finite embeddings); try more epochs or a lower lr")
    out = {"rna": emb_r, "atac": emb_a, "joint": (emb_r + emb_a) / 2.0}
    if return_features:
        out["features"] = features
    return out


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover
        return False


def _quiet_glue(quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.INFO
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("scglue", "SCGLUE", "Paired", "fit_SCGLUE")) or "GLUE" in name:
            logging.getLogger(name).setLevel(level)
