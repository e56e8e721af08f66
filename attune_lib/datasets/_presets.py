"""Dataset presets: the cell and feature filters the scMVP paper applied to each co-assay dataset.

=============  ==========================================================================
preset         filters (applied in this order, each once)
=============  ==========================================================================
``sci-car``    co-assayed cells only; cells with < 200 genes or < 200 peaks removed;
               genes and peaks detected in < 10 cells removed
``paired-seq`` as ``sci-car``, plus peaks detected in > 336 cells removed
``snare-seq``  as ``sci-car``
=============  ==========================================================================

"Detected" means a non-zero value. Cell filters are computed on the co-assayed cells; feature
filters on the cells that pass the cell filters (a single pass, as in ``scanpy.pp.filter_cells``
followed by ``scanpy.pp.filter_genes``; removing features does not re-trigger the cell filter).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .._utils import AttuneInputError, check_values, get_modality, renamed_kwargs

logger = logging.getLogger("attune_lib")

__all__ = ["FILTER_PRESETS", "PresetFilter", "apply_preset"]


@dataclass(frozen=True)
class PresetFilter:
    """Thresholds of one dataset preset (``None`` disables a filter)."""

    min_genes_per_cell: int = 200
    min_peaks_per_cell: int = 200
    min_cells_per_gene: int = 10
    min_cells_per_peak: int = 10
    max_cells_per_peak: int | None = None
    coassay_only: bool = True


FILTER_PRESETS: dict[str, PresetFilter] = {
    "sci-car": PresetFilter(),
    "paired-seq": PresetFilter(max_cells_per_peak=336),
    "snare-seq": PresetFilter(),
}

_ALIASES = {
    "scicar": "sci-car", "sci_car": "sci-car", "sci-car": "sci-car",
    "pairedseq": "paired-seq", "paired_seq": "paired-seq", "paired-seq": "paired-seq",
    "snareseq": "snare-seq", "snare_seq": "snare-seq", "snare-seq": "snare-seq",
}


def _resolve_preset(preset: str) -> str:
    if not isinstance(preset, str):
        raise AttuneInputError(f"preset must be a string, one of {sorted(FILTER_PRESETS)}; got {preset!r}")
    key = _ALIASES.get(preset.strip().lower())
    if key is None:
        raise AttuneInputError(f"unknown preset {preset!r}; available presets: {sorted(FILTER_PRESETS)}")
    return key


def _matrix(adata, layer, *, modality: str):
    """``layer="auto"``: ``.layers["counts"]`` when present, else ``.X``; ``None``: ``.X``."""
    if layer == "auto":
        layer = "counts" if "counts" in adata.layers else None
    if layer is None:
        return adata.X, f"mdata[{modality!r}].X"
    if layer not in adata.layers:
        raise AttuneInputError(
            f"layer {layer!r} not found in modality {modality!r} (.layers[{layer!r}]); "
            f"available layers: {sorted(adata.layers)}"
        )
    return adata.layers[layer], f"mdata[{modality!r}].layers[{layer!r}]"


def _detected_per_row(X) -> np.ndarray:
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        return np.asarray((X > 0).sum(axis=1)).ravel()
    return (np.asarray(X) > 0).sum(axis=1)


def _detected_per_col(X) -> np.ndarray:
    if sp.issparse(X):
        X = sp.csc_matrix(X)
        return np.asarray((X > 0).sum(axis=0)).ravel()
    return (np.asarray(X) > 0).sum(axis=0)


@renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
def apply_preset(
    mdata,
    preset: str,
    *,
    rna_mod: str = "rna",
    atac_mod: str = "atac",
    rna_layer: str | None = "auto",
    atac_layer: str | None = "auto",
) -> dict[str, int | str]:
    """Apply a dataset preset's filters in place, keeping the two modalities paired.

    Afterwards both modalities hold the same cells in the same order (the RNA order) and
    ``mdata`` is updated (global ``obs``/``obsm`` rows of removed cells are dropped).

    Parameters
    ----------
    mdata
        MuData with an RNA and an ATAC modality (cells may be missing from one of them).
    preset
        ``"sci-car"``, ``"paired-seq"`` or ``"snare-seq"`` (see the module docstring; ``_`` and
        case variants such as ``"sciCAR"`` or ``"paired_seq"`` are accepted).
    rna_mod, atac_mod
        Modality names.
    rna_layer, atac_layer
        Matrices used to count detected features/cells: ``"auto"`` (``.layers["counts"]`` when
        present, else ``.X``), ``None`` (``.X``) or a layer name.

    Returns
    -------
    dict
        What was removed and what is left: ``preset``, ``cells_not_coassayed`` (cells present in
        only one modality), ``cells_low_genes``, ``cells_low_peaks`` (co-assayed cells failing
        each threshold; a cell can fail both), ``cells_removed`` (all cells removed from the union),
        ``genes_low_cells``, ``peaks_low_cells``, ``peaks_high_cells``, ``genes_removed``,
        ``peaks_removed``, ``n_cells``, ``n_genes``, ``n_peaks``.
    """
    name = _resolve_preset(preset)
    cfg = FILTER_PRESETS[name]
    rna = get_modality(mdata, rna_mod, role="RNA")
    atac = get_modality(mdata, atac_mod, role="ATAC")
    X, x_name = _matrix(rna, rna_layer, modality=rna_mod)
    Y, y_name = _matrix(atac, atac_layer, modality=atac_mod)
    check_values(X, name=x_name)
    check_values(Y, name=y_name)
    for ad_, key in ((rna, rna_mod), (atac, atac_mod)):
        if not ad_.obs_names.is_unique:
            raise AttuneInputError(f"mdata[{key!r}].obs_names has duplicated cell names")

    n_union = len(rna.obs_names.union(atac.obs_names))
    common = rna.obs_names[rna.obs_names.isin(atac.obs_names)] if cfg.coassay_only else rna.obs_names
    if not cfg.coassay_only and not rna.obs_names.equals(atac.obs_names):  # pragma: no cover - all presets co-assay
        raise AttuneInputError("modalities are not paired")
    r_idx = rna.obs_names.get_indexer(common)
    a_idx = atac.obs_names.get_indexer(common)
    Xc = X[r_idx] if sp.issparse(X) else np.asarray(X)[r_idx]
    Yc = Y[a_idx] if sp.issparse(Y) else np.asarray(Y)[a_idx]

    genes_per_cell = _detected_per_row(Xc)
    peaks_per_cell = _detected_per_row(Yc)
    low_genes = genes_per_cell < cfg.min_genes_per_cell
    low_peaks = peaks_per_cell < cfg.min_peaks_per_cell
    keep_cells = ~(low_genes | low_peaks)
    if not keep_cells.any():
        raise AttuneInputError(
            f"preset {name!r} removes every cell ({len(common)} co-assayed cells; thresholds: "
            f">= {cfg.min_genes_per_cell} genes and >= {cfg.min_peaks_per_cell} peaks per cell)"
        )

    Xk = Xc[np.flatnonzero(keep_cells)]
    Yk = Yc[np.flatnonzero(keep_cells)]
    cells_per_gene = _detected_per_col(Xk)
    cells_per_peak = _detected_per_col(Yk)
    genes_low = cells_per_gene < cfg.min_cells_per_gene
    peaks_low = cells_per_peak < cfg.min_cells_per_peak
    peaks_high = (
        cells_per_peak > cfg.max_cells_per_peak if cfg.max_cells_per_peak is not None else np.zeros_like(peaks_low)
    )
    keep_genes = ~genes_low
    keep_peaks = ~(peaks_low | peaks_high)
    if not keep_genes.any() or not keep_peaks.any():
        raise AttuneInputError(
            f"preset {name!r} removes every {'gene' if not keep_genes.any() else 'peak'} of the kept cells"
        )

    cells = common[keep_cells]
    new_rna = rna[rna.obs_names.get_indexer(cells)][:, np.flatnonzero(keep_genes)].copy()
    new_atac = atac[atac.obs_names.get_indexer(cells)][:, np.flatnonzero(keep_peaks)].copy()
    mdata.mod[rna_mod] = new_rna
    mdata.mod[atac_mod] = new_atac
    mdata.update()

    report: dict[str, int | str] = {
        "preset": name,
        "cells_not_coassayed": int(n_union - len(common)),
        "cells_low_genes": int(low_genes.sum()),
        "cells_low_peaks": int(low_peaks.sum()),
        "cells_removed": int(n_union - len(cells)),
        "genes_low_cells": int(genes_low.sum()),
        "peaks_low_cells": int(peaks_low.sum()),
        "peaks_high_cells": int(np.sum(peaks_high & ~peaks_low)),
        "genes_removed": int((~keep_genes).sum()),
        "peaks_removed": int((~keep_peaks).sum()),
        "n_cells": len(cells),
        "n_genes": int(keep_genes.sum()),
        "n_peaks": int(keep_peaks.sum()),
    }
    logger.info(
        "apply_preset(%s): kept %d cells, %d genes, %d peaks (removed %d cells, %d genes, %d peaks)",
        name, report["n_cells"], report["n_genes"], report["n_peaks"],
        report["cells_removed"], report["genes_removed"], report["peaks_removed"],
    )
    return report
