"""Datasets: manifests resolved through pooch, readers returning MuData, and the multiome simulator."""

from ._calibration import CALIBRATION_REFERENCES, CALIBRATION_STATISTICS, calibration_report, calibration_stats, calibration_targets, measure_calibration_targets  # noqa: E501
from ._fetch import ChecksumMismatchError, DataNotAvailableError, cache_dir, fetch, is_offline
from ._ondisk import write_multiome_h5ad
from ._manifest import get_manifest, load_manifest, manifest_dir
from ._readers import (
    annotate_genes,
    build_mudata,
    parse_peak_names,
    read_10x_multiome_h5,
    read_gene_annotation,
    read_h5ad_pair,
    read_h5mu,
    read_mtx_multiome,
    write_h5mu,
)
from ._real import (
    attune_release,
    cortex,
    genome_fasta,
    load_cortex_metadata,
    load_gene_annotation,
    load_go_bp,
    load_share_tac_metadata,
    pbmc1k,
    pbmc10k,
    pbmc300,
    read_gmt,
    share_tac,
)
from ._presets import FILTER_PRESETS, apply_preset
from ._read import check_genome_fit, describe, normalize_chrom_names, normalize_genome, read, read_10x_mtx_folder
from ._registry import available_datasets, list_datasets, load_dataset
from ._simulate import SIMULATOR_PRESETS, simulate_multiome

__all__ = [
    "FILTER_PRESETS",
    "CALIBRATION_REFERENCES",
    "CALIBRATION_STATISTICS",
    "calibration_report",
    "calibration_stats",
    "calibration_targets",
    "measure_calibration_targets",
    "SIMULATOR_PRESETS",
    "apply_preset",
    "ChecksumMismatchError",
    "DataNotAvailableError",
    "annotate_genes",
    "attune_release",
    "available_datasets",
    "build_mudata",
    "cache_dir",
    "cortex",
    "fetch",
    "genome_fasta",
    "get_manifest",
    "is_offline",
    "list_datasets",
    "load_cortex_metadata",
    "load_dataset",
    "load_gene_annotation",
    "load_go_bp",
    "load_manifest",
    "load_share_tac_metadata",
    "manifest_dir",
    "parse_peak_names",
    "pbmc10k",
    "pbmc1k",
    "pbmc300",
    "read",
    "describe",
    "read_10x_multiome_h5",
    "read_10x_mtx_folder",
    "check_genome_fit",
    "normalize_genome",
    "normalize_chrom_names",
    "read_gene_annotation",
    "read_gmt",
    "read_h5ad_pair",
    "read_h5mu",
    "read_mtx_multiome",
    "share_tac",
    "simulate_multiome",
    "write_h5mu",
    "write_multiome_h5ad",
]


def __getattr__(name):
    # Old names kept for one release.
    if name == "PRESETS":
        import warnings

        warnings.warn("attune_lib.datasets.PRESETS was renamed FILTER_PRESETS (the scMVP paper's cell and feature "
                      "filters; the simulator's presets are attune_lib.datasets.SIMULATOR_PRESETS)", FutureWarning,
                      stacklevel=2)
        return FILTER_PRESETS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
