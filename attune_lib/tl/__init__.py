"""Analysis tools (scanpy-style: AnnData/MuData first, results written under ``key_added``)."""

from ._embedding import embed_umap, qc_metrics

__all__ = ["embed_umap", "qc_metrics"]
