"""Preprocessing following the Attune paper (RNA: filter, sex/mito removal, normalise, log1p, HVG;
ATAC: filter, sex removal, TF-IDF, LSI), plus GLUE's reference representations for metrics."""

from .._access import detect_input_state, set_input_state
from ._atac import PEAK_MIN_CELLS, lsi, preprocess, preprocess_atac, select_top_peaks, tfidf
from ._basic import (
    ensure_input_state,
    filter_features,
    highly_variable_genes,
    is_raw_counts,
    normalize_log1p,
    pca_rna,
    preprocess_rna,
    remove_sex_mito,
)

__all__ = [
    "PEAK_MIN_CELLS",
    "detect_input_state",
    "set_input_state",
    "ensure_input_state",
    "filter_features",
    "remove_sex_mito",
    "is_raw_counts",
    "normalize_log1p",
    "highly_variable_genes",
    "pca_rna",
    "preprocess_rna",
    "tfidf",
    "lsi",
    "select_top_peaks",
    "preprocess_atac",
    "preprocess",
]
