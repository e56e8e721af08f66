"""A paired RNA + ATAC (multiome) simulator with known ground truth.

The simulator is the project's embedded default dataset: every notebook and test runs on it when no
real data is available. It plants the regulatory structure that the Attune paper analyses
(peak-gene links within 1.2 Mb, TF motifs in regulatory peaks, chromatin potential of lagging
genes, a Gli3-like gene with early and late peak groups, a cortical maturation boundary where RNA
lags ATAC) and records it in ``mdata.uns["truth"]``. The generative model is described in
``docs/simulator.md``.

One job per module: ``_scenarios`` (the presets as data), ``_common`` (sizes and constants),
``_cells`` (cells and drivers), ``_genome`` (genes, chromosomes, peaks, GC targets), ``_links``
(peak-gene links, decoys, peak drivers, TF peaks), ``_counts`` (RNA and ATAC counts, truth layers),
``_sequences`` (sequences, JASPAR motifs), ``_pchic`` (PCHi-C-like table), ``_truth``
(``uns["truth"]``), ``_mudata`` (the MuData), ``_core`` (``simulate_multiome``).
"""

from ._common import PCHIC_CELL_TYPES, SIZES
from ._core import simulate_multiome
from ._scenarios import SIMULATOR_PRESETS, Program, Scenario, get_scenario, validate_scenario
from ._sequences import jaspar_pfm

__all__ = [
    "PCHIC_CELL_TYPES", "SIMULATOR_PRESETS", "SIZES", "Program", "Scenario", "get_scenario", "jaspar_pfm",
    "simulate_multiome", "validate_scenario",
]  # fmt: skip
