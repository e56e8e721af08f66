"""Plots, scanpy-style; every function returns the matplotlib Figure."""

from ._basic import embedding, qc, savefig
from ._benchmark import (
    alignment_uniformity, bio_vs_mixing, contrast_ablation, dimension_sweep, feature_sweep, overall_and_foscttm,
    reference_mapping,
)
from ._potential import (
    cluster_cores, cooccurring_genes, cross_modal_heatmap, distance_by_group, lagging_ranking, motif_enrichment,
    peak_links, pseudobulk_composition, regulon, residual_embedding, residual_trend, soft_clusters,
    transit_heatmap, trend_heatmap,
)
from ._prediction import contrast_ablation_prediction, prediction_table, prediction_violins
from ._regulatory import (
    attention_elbow, dpag_dotplot, enrichment_bars, link_auroc, link_comparison, link_heatmap, pchic_distances,
    window_sweep,
)

__all__ = [name for name in dir() if not name.startswith("_")]
