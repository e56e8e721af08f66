"""Reference building and query mapping with a cell type unseen in the reference (paper Supp. Fig. S9).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._utils import AttuneInputError
from ._integration_methods import (
    attune_class,
    attune_embeddings,
    benchmark_cell_types,
    prepare_benchmark_data,
    train_attune,
)

logger = logging.getLogger("attune_lib")

__all__ = [
    "nearest_reference_types",
    "reference_mapping",
]


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
    m = prepare_benchmark_data(mdata, cell_type_key=cell_type_key, n_top_genes=2000, min_fraction=0.05)
    ct = benchmark_cell_types(m, cell_type_key)
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
    Attune = attune_class()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = m[~is_query].copy()
        qry = m[is_query].copy()
    opts = dict(attune_options or {})
    model = train_attune(ref, seed=seed, n_latent=n_latent, max_epochs=max_epochs, progress_bar=progress_bar,
                          batch_size=opts.pop("batch_size", 128), **opts)
    ref_emb = attune_embeddings(model, ref)
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
