"""Assembly of the simulated counts, annotations and truth into a ``MuData`` (``rna`` and ``atac``)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from ._truth import truth_dict

__all__ = ["assemble_mudata"]


def assemble_mudata(
    spec,
    cells,
    genome,
    rna_X,
    atac_X,
    truth_mean,
    truth_prob,
    sequences,
    gc,
    tf_pos,
    pchic,
    *,
    params,
) -> Any:
    """``MuData`` with ``rna`` and ``atac`` (counts, obs, var, truth layers) and ``uns["truth"]``.

    Parameters
    ----------
    spec
        The scenario.
    cells, genome
        Outputs of the cell and genome simulation.
    rna_X, atac_X
        Count matrices (CSR).
    truth_mean, truth_prob
        Dense truth layers, or ``None``.
    sequences, gc, tf_pos
        Peak sequences (or ``None``), GC fractions and planted motif positions (or ``None``).
    pchic
        The PCHi-C-like table.
    params
        The call's parameters.
    """
    import anndata as ad
    import mudata as md

    n = cells["n"]
    width = max(5, len(str(n)))
    obs_names = pd.Index([f"cell{i + 1:0{width}d}" for i in range(n)])
    ctype_cat = pd.Categorical(cells["ctype"], categories=list(spec.cell_types))
    lineage_levels = spec.lineage_categories()
    n_batches = params["n_batches"]
    obs = pd.DataFrame(
        {
            "cell_type": ctype_cat,
            "pseudotime": cells["t"].astype(np.float64),
            "lineage": pd.Categorical(cells["lineage"], categories=lineage_levels),
            "batch": pd.Categorical(
                [f"batch{b + 1}" for b in cells["batch"]],
                categories=[f"batch{b + 1}" for b in range(n_batches)],
            ),
            "truth_boundary": cells["in_boundary"].astype(bool),
            "truth_rna_delay": cells["delay"].astype(np.float64),
        },
        index=obs_names,
    )
    genes = genome["genes"]
    rna_var = pd.DataFrame(
        {
            "chrom": genome["chrom"].astype(str),
            "start": genome["gstart"].astype(np.int64),
            "end": genome["gend"].astype(np.int64),
            "strand": genome["strand"].astype(str),
            "tss": genome["tss"].astype(np.int64),
        },
        index=pd.Index(genes.astype(str)),
    )
    atac_var = pd.DataFrame(
        {
            "chrom": genome["p_chrom"].astype(str),
            "start": genome["p_start"].astype(np.int64),
            "end": genome["p_end"].astype(np.int64),
            "gc": gc.astype(np.float64),
            "gc_bias": gc.astype(np.float64),
        },
        index=pd.Index(genome["peak_names"].astype(str)),
    )
    if sequences is not None:
        atac_var["sequence"] = sequences.astype(str)
    rna = ad.AnnData(X=rna_X, obs=obs.copy(), var=rna_var)
    atac = ad.AnnData(X=atac_X, obs=obs.copy(), var=atac_var)
    rna.layers["counts"] = rna_X.copy()
    atac.layers["counts"] = atac_X.copy()
    if truth_mean is not None:
        rna.layers["truth_mean"] = truth_mean
        atac.layers["truth_prob"] = truth_prob
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        with md.set_options(pull_on_update=False):
            mdata = md.MuData({"rna": rna, "atac": atac})
    for col in obs.columns:
        mdata.obs[col] = obs[col].values
    mdata.uns["truth"] = truth_dict(spec, cells, genome, tf_pos, pchic, obs_names, params)
    return mdata

