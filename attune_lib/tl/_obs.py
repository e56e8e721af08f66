"""obs and grouping helpers shared by the tools and plots (chromatin potential, gene regulation,
modality distance): read and write per-cell columns on a MuData and its modalities, pseudotime, groups.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._utils import AttuneInputError

__all__ = ["group_codes", "group_labels", "group_matrix", "is_mudata", "obs_column", "obs_holders", "pseudotime_values",
           "write_obs"]


def is_mudata(data: Any) -> bool:
    """Whether ``data`` is a MuData (has modalities).

    Parameters
    ----------
    data
        AnnData or MuData.
    """
    return hasattr(data, "mod")


def obs_holders(data: Any) -> list:
    """Every object whose ``obs`` receives per-cell results: the MuData and its modalities, or the AnnData.

    Parameters
    ----------
    data
        AnnData or MuData.
    """
    if is_mudata(data):
        return [data, *data.mod.values()]
    if not hasattr(data, "obs"):
        raise AttuneInputError(f"expected an AnnData or MuData, got {type(data).__name__}")
    return [data]


def obs_column(data: Any, key: str, *, what: str = "key") -> pd.Series:
    """``obs[key]`` of a MuData (its own obs first, then the modalities) or of an AnnData.

    Parameters
    ----------
    data
        AnnData or MuData.
    key
        obs column.
    what
        Name of the argument holding ``key``, for the error message.
    """
    for holder in obs_holders(data):
        if key in holder.obs:
            s = holder.obs[key]
            if holder is not data and is_mudata(data) and not holder.obs_names.equals(data.obs_names):
                s = s.reindex(data.obs_names)
            return s
    raise AttuneInputError(f"{what}={key!r} is not an obs column of the data (looked in mdata.obs and each "
                           "modality's obs)")


def write_obs(data: Any, key: str, values, index: pd.Index | None = None) -> None:
    """Write a per-cell column to ``obs`` of the MuData and of every modality holding those cells.

    Parameters
    ----------
    data
        AnnData or MuData.
    key
        obs column to write.
    values
        Per-cell values (a Series is aligned by its index).
    index
        Cells of ``values`` (default: ``data.obs_names``).
    """
    index = data.obs_names if index is None else index
    s = pd.Series(values, index=index) if not isinstance(values, pd.Series) else values
    for holder in obs_holders(data):
        if holder.obs_names.equals(index):
            holder.obs[key] = s.to_numpy() if not isinstance(s.dtype, pd.CategoricalDtype) else s.values
        else:
            holder.obs[key] = s.reindex(holder.obs_names).values


def pseudotime_values(data: Any, key: str) -> np.ndarray:
    """Numeric pseudotime from ``obs[key]`` (an error when it is not numeric or has no finite value).

    Parameters
    ----------
    data
        AnnData or MuData.
    key
        obs column with the pseudotime.
    """
    pt = obs_column(data, key, what="pseudotime_key")
    try:
        pt = pd.to_numeric(pt).to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise AttuneInputError(f"pseudotime_key={key!r}: obs column is not numeric") from None
    if not np.isfinite(pt).any():
        raise AttuneInputError(f"pseudotime_key={key!r}: no finite pseudotime value")
    return pt


def group_codes(data, groupby: str) -> tuple[np.ndarray, list]:
    """Integer group code per cell (-1: missing) and the non-empty groups, in category order.

    Parameters
    ----------
    data
        AnnData or MuData.
    groupby
        obs column with the groups (at least two non-empty ones).
    """
    g = obs_column(data, groupby, what="groupby")
    cat = g if isinstance(g.dtype, pd.CategoricalDtype) else g.astype("category")
    cats = [c for c in cat.cat.categories if (cat == c).any()]
    codes = pd.Categorical(cat, categories=cats).codes
    if len(cats) < 2:
        raise AttuneInputError(f"groupby={groupby!r} has fewer than two non-empty groups")
    return np.asarray(codes), cats


def group_matrix(codes: np.ndarray, n_groups: int) -> sp.csr_matrix:
    """Sparse ``groups x cells`` indicator matrix of :func:`group_codes` (cells with code -1 are left out).

    Parameters
    ----------
    codes
        Group code per cell.
    n_groups
        Number of groups.
    """
    ok = codes >= 0
    return sp.csr_matrix((np.ones(int(ok.sum())), (codes[ok], np.flatnonzero(ok))), shape=(n_groups, len(codes)))


def group_labels(mdata, adata, groupby: str) -> pd.Series:
    """``groupby`` from ``adata.obs``, else from ``mdata.obs`` aligned to ``adata``'s cells; a named error otherwise."""
    if groupby in adata.obs:
        return adata.obs[groupby]
    if groupby in getattr(mdata, "obs", {}):
        return mdata.obs.loc[adata.obs_names, groupby]
    raise AttuneInputError(f"groupby {groupby!r} not found in the RNA obs nor mdata.obs")
