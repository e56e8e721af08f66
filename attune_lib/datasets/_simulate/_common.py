"""Constants and the logistic function shared by the simulator's modules (sizes, PCHi-C columns, windows)."""

from __future__ import annotations

import numpy as np

__all__ = [
    "CHUNK_ENTRIES", "MAX_LINK_BP", "PCHIC_CELL_TYPES", "SIZES", "TRUTH_LAYER_MAX_ENTRIES", "WINDOW_BP", "sigmoid",
]  # fmt: skip

#: ``size`` presets: (n_cells, n_genes, n_peaks).
SIZES: dict[str, tuple[int, int, int]] = {
    "small": (600, 300, 3000),
    "default": (3000, 1000, 10000),
    "large": (12000, 2000, 30000),
}

#: CHiCAGO score columns of Javierre et al. 2016 ``PCHiC_peak_matrix_cutoff5.tsv``.
PCHIC_CELL_TYPES = (
    "Mon", "Mac0", "Mac1", "Mac2", "Neu", "MK", "EP", "Ery", "FoeT",
    "nCD4", "tCD4", "aCD4", "naCD4", "nCD8", "tCD8", "nB", "tB",
)  # fmt: skip

WINDOW_BP = 1_200_000  # the paper's peak-gene window
MAX_LINK_BP = 1_500_000  # true links reach a little beyond the window
TRUTH_LAYER_MAX_ENTRIES = 100_000_000  # auto: dense truth layers only up to this many entries
CHUNK_ENTRIES = 8_000_000  # cells x peaks per simulation chunk (memory bound)


def sigmoid(x):
    """The logistic function ``1 / (1 + exp(-x))``, elementwise.

    Parameters
    ----------
    x
        Array or scalar.
    """
    return 1.0 / (1.0 + np.exp(-x))
