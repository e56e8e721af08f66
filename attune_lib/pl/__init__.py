"""Plots, scanpy-style: each ``pl/_x.py`` draws the results of ``tl/_x.py``.

Every plot takes the data object or result table first and keyword-only options after, accepts ``ax=``
(one Axes, or a sequence of Axes for a plot of several panels) and returns the Figure it drew on. Save it
with :func:`savefig`.
"""

from ._dpag import dpag_dotplot, enrichment_bars
from ._embedding import embedding, qc
from ._integration_benchmark import alignment_uniformity, bio_vs_mixing, overall_and_foscttm
from ._link_scores import attention_elbow, link_auroc, link_heatmap, window_sweep
from ._links import link_comparison
from ._modality_distance import cross_modal_heatmap, distance_by_group
from ._motifs import cooccurring_genes, motif_enrichment, regulon
from ._pchic import pchic_distances
from ._potential import lagging_ranking, pseudobulk_composition, residual_embedding, residual_trend, trend_heatmap
from ._prediction import contrast_ablation_prediction, prediction_table, prediction_violins
from ._reference_mapping import reference_mapping
from ._regulation_shift import cluster_cores, peak_links, soft_clusters, transit_heatmap
from ._style import savefig
from ._sweeps import contrast_ablation, dimension_sweep, feature_sweep

__all__ = [name for name in dir() if not name.startswith("_")]
