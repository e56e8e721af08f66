"""Analysis tools (scanpy-style: AnnData/MuData first, results written under ``key_added``).

One file per capability: embedding and QC (``_embedding``); the integration benchmark (``_integration_methods``
registry and baselines, ``_integration_benchmark`` scoring, ``_sweeps``, ``_reference_mapping``); RNA prediction
(``_prediction``); gene-peak links (``_link_scores`` scoring and baselines, ``_links`` the read-out beyond
distance, ``_pchic`` truth, ``_metacells``); DPAGs and enrichment (``_dpag``); chromatin potential (``_potential``);
the regulation shift of one gene (``_regulation_shift``, ``_motifs``); modality embeddings
(``_modality_distance``); the peer methods (``_peers``).
"""

from .._genomics import gene_peak_pairs
from ._dpag import differential_genes, dpag_de_overlap, enrichment, find_dpags, simulated_gene_sets
from ._embedding import embed_umap, qc_metrics
from ._integration_benchmark import SCORE_SCALINGS, metric_winners, run_integration_benchmark, summary_scores
from ._integration_methods import MethodUnavailable, list_methods, register_method
from ._link_scores import (
    add_link_scores, attention_cutoffs, elbow_point, glue_feature_embeddings, label_links, link_baselines,
    link_heatmap_data, link_score_structure, score_links, select_links, window_sweep,
)
from ._links import LINK_FEATURES, link_evaluation, link_features, link_readout
from ._modality_distance import (
    add_release_embeddings, cross_modal_shift, cross_modal_similarity, high_distance_cells, high_distance_genes,
    modality_cosine,
)
from ._motifs import (
    background_peaks, co_occurrence, jaspar_motifs, motif_enrichment, motif_names, motif_regulon, peak_sequences,
    scan_motifs, top_cooccurring_genes,
)
from ._pchic import pchic_truth
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
from ._reference_mapping import nearest_reference_types, reference_mapping
from ._regulation_shift import fuzzy_cmeans, gene_peaks, mestimate, peak_soft_clusters, transit_pattern
from ._sweeps import sweep_contrast, sweep_dimension, sweep_features

__all__ = [name for name in dir() if not name.startswith("_")]
