"""Integration metrics (GLUE's definitions) and cross-modal prediction metrics."""

from ._integration import (
    BIO_METRICS,
    MIXING_METRICS,
    alignment,
    avg_silhouette_width,
    avg_silhouette_width_batch,
    compute_integration_metrics,
    foscttm,
    graph_connectivity,
    integration_metrics,
    integration_metrics_from_embeddings,
    mean_average_precision,
    neighbor_conservation,
    seurat_alignment_score,
    summarize_scores,
    uniformity,
)
from ._clustering import clustering_agreement, imputation_agreement
from ._prediction import genewise_pearson, genewise_spearman, prediction_metrics, rmse
from ._trust import TrustWarning, integration_trust, label_structure, prediction_trust
from ._links import distance_matched_auroc, distance_strata

__all__ = [
    "TrustWarning",
    "integration_trust",
    "label_structure",
    "prediction_trust",
    "clustering_agreement",
    "imputation_agreement",
    "mean_average_precision",
    "avg_silhouette_width",
    "neighbor_conservation",
    "graph_connectivity",
    "seurat_alignment_score",
    "avg_silhouette_width_batch",
    "foscttm",
    "alignment",
    "uniformity",
    "integration_metrics",
    "integration_metrics_from_embeddings",
    "compute_integration_metrics",
    "summarize_scores",
    "BIO_METRICS",
    "MIXING_METRICS",
    "genewise_pearson",
    "genewise_spearman",
    "rmse",
    "prediction_metrics",
    "distance_matched_auroc",
    "distance_strata",
]
