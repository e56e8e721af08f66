"""Analysis tools (scanpy-style: AnnData/MuData first, results written under ``key_added``)."""

from ._benchmark import (
    MethodUnavailable, list_methods, metric_winners, nearest_reference_types, reference_mapping,
    register_method, run_integration_benchmark, sweep_contrast, sweep_dimension, sweep_features,
)
from ._embedding import embed_umap, qc_metrics
from ._gene_regulation import (
    background_peaks, co_occurrence, fuzzy_cmeans, gene_peaks, jaspar_motifs, mestimate, motif_enrichment,
    motif_names, motif_regulon, peak_sequences, peak_soft_clusters, scan_motifs, top_cooccurring_genes,
    transit_pattern,
)
from ._links import LINK_FEATURES, link_evaluation, link_features, link_readout
from ._modality_distance import (
    add_release_embeddings, cross_modal_shift, cross_modal_similarity, high_distance_cells, high_distance_genes,
    modality_cosine,
)
from ._peers import PeerNotAvailable, glue_guidance_graph, peer_versions, run_glue, run_multivi
from ._potential import (
    cell_type_transition, cis_predicted_expression, lagging_gene_scores, pseudobulk, pseudobulk_composition,
    pseudobulk_groups, residual_trends, residuals, topic_pseudotime,
)
from ._prediction import (
    CONTRASTS, DEFAULT_SETTINGS, PREDICTION_SETTINGS, LSITransform, evaluate_prediction, fit_lasso,
    fit_lsi_ridge, make_splits, paper_prediction_values, run_contrast_ablation_prediction,
    run_prediction_benchmark, summarize_prediction,
)
from ._regulatory import (
    add_link_scores, attention_cutoffs, differential_genes, dpag_de_overlap, elbow_point, enrichment, find_dpags,
    gene_peak_pairs, glue_feature_embeddings, label_links, link_baselines, link_heatmap_data, link_score_structure,
    pchic_truth,
    score_links, select_links, simulated_gene_sets, window_sweep,
)

__all__ = [name for name in dir() if not name.startswith("_")]
