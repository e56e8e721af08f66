"""Neighbour graphs, UMAPs and QC metrics on MuData, thin wrappers over scanpy."""

from __future__ import annotations

import numpy as np
import scanpy as sc

from .._utils import AttuneInputError, get_modality, renamed_kwargs

__all__ = ["embed_umap", "qc_metrics"]


def _rep_holder(mdata, use_rep: str, modality: str | None):
    holder = mdata if modality is None else get_modality(mdata, modality)
    if use_rep not in holder.obsm:
        where = "mdata.obsm" if modality is None else f"mdata[{modality!r}].obsm"
        raise AttuneInputError(f"use_rep={use_rep!r} not found in {where}; available: {sorted(holder.obsm)}")
    return holder


@renamed_kwargs(random_state="seed")
def embed_umap(
    mdata,
    *,
    use_rep: str,
    modality: str | None = None,
    key_added: str | None = None,
    n_neighbors: int = 15,
    min_dist: float = 0.5,
    seed: int = 0,
) -> None:
    """Compute a kNN graph and a UMAP of an embedding and store the coordinates.

    Parameters
    ----------
    mdata
        MuData (or AnnData) holding the embedding in ``.obsm[use_rep]``.
    use_rep
        Key of the embedding in ``obsm``.
    modality
        Read the embedding from ``mdata[modality].obsm`` instead of ``mdata.obsm``.
    key_added
        Where to write the UMAP (default ``X_umap_<use_rep>``), in the same ``obsm`` as the embedding.
    n_neighbors, min_dist, seed
        Passed to :func:`scanpy.pp.neighbors` / :func:`scanpy.tl.umap`.
    """
    holder = _rep_holder(mdata, use_rep, modality)
    if n_neighbors < 2:
        raise AttuneInputError(f"n_neighbors must be >= 2, got {n_neighbors}")
    key_added = key_added or f"X_umap_{use_rep.removeprefix('X_')}"
    import anndata as ad

    # A throwaway AnnData keeps scanpy's neighbour/umap keys out of the user's object.
    tmp = ad.AnnData(obs=holder.obs[[]].copy(), obsm={"rep": np.asarray(holder.obsm[use_rep])})
    # Exact sklearn kNN: scanpy 1.11's default (pynndescent) path breaks with scipy >= 1.16 above 4,096
    # cells ('csr_array' has no 'getnnz'); exact search is fast enough at the sizes used here.
    sc.pp.neighbors(tmp, use_rep="rep", n_neighbors=min(n_neighbors, tmp.n_obs - 1), random_state=seed,
                    transformer="sklearn")
    sc.tl.umap(tmp, min_dist=min_dist, random_state=seed)
    holder.obsm[key_added] = tmp.obsm["X_umap"]


def qc_metrics(mdata, *, modalities: tuple[str, ...] = ("rna", "atac"), layer: str | None = None) -> None:
    """Per-modality QC (total counts, detected features) into ``mdata[mod].obs``.

    Writes ``total_counts`` and ``n_features`` to each modality's ``obs`` using
    :func:`scanpy.pp.calculate_qc_metrics`, reading ``layer`` (default: the raw ``counts`` layer when
    present, else ``.X``).

    Parameters
    ----------
    mdata
        MuData (raw counts in ``layers['counts']`` or ``.X``).
    modalities
        Modalities to compute the metrics for.
    layer
        Layer with the counts (None: ``counts`` when present, else ``.X``).
    """
    for mod in modalities:
        adata = get_modality(mdata, mod)
        use_layer = layer if layer is not None else ("counts" if "counts" in adata.layers else None)
        if use_layer is not None and use_layer not in adata.layers:
            raise AttuneInputError(f"layer={use_layer!r} not found in mdata[{mod!r}].layers")
        qc, _ = sc.pp.calculate_qc_metrics(adata, layer=use_layer, percent_top=None, inplace=False)
        adata.obs["total_counts"] = qc["total_counts"].to_numpy()
        adata.obs["n_features"] = qc["n_genes_by_counts"].to_numpy()
