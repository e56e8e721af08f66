"""A paired RNA + ATAC (multiome) simulator with known ground truth.

The simulator is the project's embedded default dataset: every notebook and test runs on it when no
real data is available. It plants the regulatory structure that the Attune paper analyses
(peak-gene links within 1.2 Mb, TF motifs in regulatory peaks, chromatin potential of lagging
genes, a Gli3-like gene with early and late peak groups, a cortical maturation boundary where RNA
lags ATAC) and records it in ``mdata.uns["truth"]``. The generative model is described in
``docs/simulator.md``.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._utils import AttuneInputError, as_csr, progress

__all__ = ["PCHIC_CELL_TYPES", "PRESETS", "SIZES", "simulate_multiome"]

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

_WINDOW_BP = 1_200_000  # the paper's peak-gene window
_MAX_LINK_BP = 1_500_000  # true links reach a little beyond the window
_TRUTH_LAYER_MAX_ENTRIES = 100_000_000  # auto: dense truth layers only up to this many entries
_CHUNK_ENTRIES = 8_000_000  # cells x peaks per simulation chunk (memory bound)


# --------------------------------------------------------------------------------------------
# Preset specifications
# --------------------------------------------------------------------------------------------
@dataclass
class _Program:
    """A gene-expression program: its activity as a function of cell state.

    kind: ``types`` (1 in member cell types), ``sig_up``/``sig_down`` (sigmoid along pseudotime at
    ``t0`` with width ``w``), ``bump`` (on at ``t0``, off at ``t1``), ``state`` (per-cell random
    level, independent of pseudotime). ``fate`` restricts a trajectory program to one branch.
    """

    name: str
    kind: str
    types: tuple[str, ...] = ()
    t0: float = 0.0
    t1: float = 1.0
    w: float = 0.05
    fate: str | None = None
    weight: float = 1.0  # relative share of synthetic genes


@dataclass
class _Preset:
    name: str
    cell_types: tuple[str, ...]
    programs: list[_Program]
    # TFs with a JASPAR 2022 motif: gene -> (program, matrix id, JASPAR name)
    tfs: dict[str, tuple[str, str, str]]
    # other named genes: gene -> program ("" = housekeeping)
    named: dict[str, str]
    # cell type -> programs whose genes are the type's markers
    marker_programs: dict[str, tuple[str, ...]]
    lineage_of: dict[str, str] = field(default_factory=dict)
    type_props: tuple[float, ...] = ()
    trajectory: bool = False
    fates: tuple[str, ...] = ()
    fate_props: tuple[float, ...] = ()
    branch_t: float = 1.0
    type_bounds: tuple[tuple[float, str], ...] = ()  # (upper t, type) before the branch
    lagging_named: dict[str, float] = field(default_factory=dict)
    n_lagging_synthetic: int = 0
    lagging_programs: tuple[str, ...] = ()
    lag_values: tuple[float, ...] = (0.1, 0.15)
    gli3: dict[str, Any] | None = None
    boundary: tuple[float, float] | None = None  # RNA lags ATAC inside this pseudotime interval
    boundary_delay: float = 0.0
    pchic_map: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _pbmc() -> _Preset:
    types = ("CD14 Mono", "CD16 Mono", "cDC", "pDC", "B naive", "CD4 T", "CD8 T", "NK")
    P = _Program
    programs = [
        P("CD14 Mono", "types", ("CD14 Mono",)),
        P("CD16 Mono", "types", ("CD16 Mono",)),
        P("cDC", "types", ("cDC",)),
        P("pDC", "types", ("pDC",)),
        P("B naive", "types", ("B naive",)),
        P("CD4 T", "types", ("CD4 T",)),
        P("CD8 T", "types", ("CD8 T",)),
        P("NK", "types", ("NK",)),
        P("myeloid", "types", ("CD14 Mono", "CD16 Mono", "cDC")),
        P("monocyte", "types", ("CD14 Mono", "CD16 Mono")),
        P("T", "types", ("CD4 T", "CD8 T")),
        P("cytotoxic", "types", ("CD8 T", "NK")),
        P("lymphoid", "types", ("B naive", "CD4 T", "CD8 T", "NK")),
        P("antigen presentation", "types", ("CD14 Mono", "CD16 Mono", "cDC", "pDC", "B naive")),
        P("interferon", "state", weight=0.5),
        P("activation", "state", weight=0.5),
    ]
    tfs = {
        "CEBPA": ("CD14 Mono", "MA0102.4", "CEBPA"),
        "KLF4": ("monocyte", "MA0039.4", "KLF4"),
        "SPI1": ("myeloid", "MA0080.6", "Spi1"),
        "IRF8": ("pDC", "MA0652.1", "IRF8"),
        "TCF4": ("pDC", "MA0830.2", "TCF4"),
        "EBF1": ("B naive", "MA0154.4", "EBF1"),
        "PAX5": ("B naive", "MA0014.3", "PAX5"),
        "GATA3": ("CD4 T", "MA0037.4", "Gata3"),
        "TCF7": ("T", "MA0769.2", "TCF7"),
        "LEF1": ("T", "MA0768.2", "Lef1"),
        "EOMES": ("cytotoxic", "MA0800.1", "EOMES"),
        "TBX21": ("NK", "MA0690.2", "TBX21"),
        "RUNX3": ("lymphoid", "MA0684.2", "RUNX3"),
        "STAT1": ("interferon", "MA0137.3", "STAT1"),
    }
    named = {
        "CD14": "CD14 Mono", "LYZ": "CD14 Mono", "S100A8": "CD14 Mono", "S100A9": "CD14 Mono",
        "VCAN": "CD14 Mono",
        "FCGR3A": "CD16 Mono", "MS4A7": "CD16 Mono", "CDKN1C": "CD16 Mono",
        "FCER1A": "cDC", "CLEC10A": "cDC", "CD1C": "cDC",
        "LILRA4": "pDC", "IL3RA": "pDC", "CLEC4C": "pDC", "ZFAT": "pDC", "BCL11A": "pDC",
        "MS4A1": "B naive", "CD79A": "B naive", "BANK1": "B naive", "TCL1A": "B naive",
        "IL7R": "CD4 T", "CD4": "CD4 T", "MAL": "CD4 T",
        "CD8A": "CD8 T", "CD8B": "CD8 T",
        "NKG7": "NK", "GNLY": "NK", "KLRD1": "NK", "PRF1": "NK",
        "CST3": "myeloid", "TYROBP": "myeloid", "FCN1": "monocyte",
        "CD3E": "T", "CD3D": "T", "GZMA": "cytotoxic", "CCL5": "cytotoxic",
        "HLA-DRA": "antigen presentation", "CD74": "antigen presentation",
        "ISG15": "interferon", "IFI6": "interferon", "CD69": "activation",
        "ACTB": "", "GAPDH": "", "MALAT1": "",
    }  # fmt: skip
    lineage = {t: ("myeloid" if t in types[:4] else "lymphoid") for t in types}
    pchic_map = {
        "Mon": ("CD14 Mono", "CD16 Mono"), "Mac0": ("CD14 Mono",), "Mac1": ("CD14 Mono",),
        "Mac2": ("CD14 Mono",), "Neu": ("CD14 Mono",), "nCD4": ("CD4 T",), "tCD4": ("CD4 T",),
        "aCD4": ("CD4 T",), "naCD4": ("CD4 T",), "nCD8": ("CD8 T",), "tCD8": ("CD8 T",),
        "nB": ("B naive",), "tB": ("B naive",),
    }  # fmt: skip
    return _Preset(
        name="pbmc",
        cell_types=types,
        programs=programs,
        tfs=tfs,
        named=named,
        marker_programs={t: (t,) for t in types},
        lineage_of=lineage,
        type_props=(0.25, 0.07, 0.04, 0.04, 0.12, 0.26, 0.13, 0.09),
        pchic_map=pchic_map,
    )


def _skin() -> _Preset:
    P = _Program
    fates = ("IRS", "Medulla", "Hair Shaft")
    programs = [
        P("TAC-1", "sig_down", t0=0.16, w=0.035),
        P("TAC-2", "bump", t0=0.12, t1=0.40, w=0.03),
        P("early", "sig_down", t0=0.45, w=0.05),
        P("late", "sig_up", t0=0.62, w=0.05),
        P("IRS", "sig_up", t0=0.42, w=0.04, fate="IRS"),
        P("Medulla", "sig_up", t0=0.42, w=0.04, fate="Medulla"),
        P("Hair Shaft", "sig_up", t0=0.42, w=0.04, fate="Hair Shaft"),
        P("IRS late", "sig_up", t0=0.72, w=0.05, fate="IRS", weight=0.5),
        P("Medulla late", "sig_up", t0=0.72, w=0.05, fate="Medulla", weight=0.5),
        P("Hair Shaft late", "sig_up", t0=0.72, w=0.05, fate="Hair Shaft", weight=0.5),
        P("stress", "state", weight=0.5),
    ]
    tfs = {
        "Nfib": ("early", "MA1643.1", "NFIB"),
        "Sox5": ("early", "MA0087.2", "Sox5"),
        "Lef1": ("late", "MA0768.2", "Lef1"),
        "Foxp1": ("late", "MA0481.3", "FOXP1"),
        "Gata3": ("IRS", "MA0037.4", "Gata3"),
        "Msx2": ("Medulla", "MA0708.2", "MSX2"),
        "Hoxc13": ("Hair Shaft", "MA0907.1", "HOXC13"),
    }
    named = {
        "Mki67": "TAC-1", "Top2a": "TAC-1", "Ccnb1": "TAC-1",
        "Shh": "TAC-2", "Basp1": "TAC-2", "Sema4a": "TAC-2", "Myh14": "TAC-2",
        "Eda": "early", "Ntn1": "early", "Tspan18": "early",
        "Dach1": "late", "Prr5l": "late", "Bmper": "late", "Chd3": "late",
        "Krt71": "IRS", "Krt25": "IRS", "Hexb": "IRS", "Arl15": "IRS late",
        "Krt81": "Medulla", "Styx": "Medulla late",
        "Krt35": "Hair Shaft", "Krt31": "Hair Shaft", "Atp8b1": "Hair Shaft late",
        "Actb": "", "Gapdh": "",
    }  # fmt: skip
    return _Preset(
        name="skin",
        cell_types=("TAC-1", "TAC-2", *fates),
        programs=programs,
        tfs=tfs,
        named=named,
        marker_programs={
            "TAC-1": ("TAC-1",),
            "TAC-2": ("TAC-2",),
            "IRS": ("IRS", "IRS late"),
            "Medulla": ("Medulla", "Medulla late"),
            "Hair Shaft": ("Hair Shaft", "Hair Shaft late"),
        },
        trajectory=True,
        fates=fates,
        fate_props=(0.35, 0.30, 0.35),
        branch_t=0.40,
        type_bounds=((0.15, "TAC-1"), (0.40, "TAC-2")),
        lagging_named={"Gli3": 0.12},
        n_lagging_synthetic=8,
        lagging_programs=("early", "late", "IRS", "Medulla", "Hair Shaft"),
        gli3={
            "gene": "Gli3",
            "early_tfs": ("Nfib", "Sox5"),
            "late_tf": "Lef1",
            "n_early": 6,
            "n_late": 6,
            "lag": 0.12,
        },
    )


def _cortex() -> _Preset:
    P = _Program
    programs = [
        P("RG", "sig_down", t0=0.27, w=0.04),
        P("IPC", "bump", t0=0.20, t1=0.47, w=0.03),
        P("Neuron immature", "bump", t0=0.42, t1=0.78, w=0.03),
        P("neuronal", "sig_up", t0=0.45, w=0.05),
        P("Neuron mature", "sig_up", t0=0.71, w=0.03),
        P("cycling", "state", weight=0.5),
    ]
    tfs = {
        "PAX6": ("RG", "MA0069.1", "PAX6"),
        "SOX2": ("RG", "MA0143.4", "SOX2"),
        "HES1": ("RG", "MA1099.2", "HES1"),
        "EOMES": ("IPC", "MA0800.1", "EOMES"),
        "NEUROG2": ("IPC", "MA0669.1", "NEUROG2"),
        "NEUROD2": ("Neuron immature", "MA0668.2", "Neurod2"),
        "MEF2C": ("neuronal", "MA0497.1", "MEF2C"),
        "TBR1": ("Neuron mature", "MA0802.1", "TBR1"),
        "LEF1": ("Neuron mature", "MA0768.2", "Lef1"),
    }
    named = {
        "VIM": "RG", "FABP7": "RG", "SLC1A3": "RG",
        "PPP1R17": "IPC", "NHLH1": "IPC",
        "NEUROD6": "Neuron immature", "DCX": "Neuron immature", "STMN2": "Neuron immature",
        "CNTNAP2": "neuronal", "DCC": "neuronal", "SLIT2": "neuronal", "KCND2": "neuronal",
        "NRXN1": "neuronal",
        "SATB2": "Neuron mature", "SLC17A7": "Neuron mature", "KCNH8": "Neuron mature",
        "SLC24A2": "Neuron mature",
        "MKI67": "cycling", "TOP2A": "cycling",
        "ACTB": "", "GAPDH": "",
    }  # fmt: skip
    return _Preset(
        name="cortex",
        cell_types=("RG", "IPC", "Neuron immature", "Neuron mature"),
        programs=programs,
        tfs=tfs,
        named=named,
        marker_programs={
            "RG": ("RG",),
            "IPC": ("IPC",),
            "Neuron immature": ("Neuron immature",),
            "Neuron mature": ("Neuron mature",),
        },
        trajectory=True,
        fates=("neuronal",),
        fate_props=(1.0,),
        branch_t=1.01,
        type_bounds=(
            (0.25, "RG"),
            (0.45, "IPC"),
            (0.70, "Neuron immature"),
            (1.01, "Neuron mature"),
        ),
        lagging_named={"GLI3": 0.10, "CNTNAP2": 0.10, "DCC": 0.10, "SLIT2": 0.15, "KCND2": 0.15},
        n_lagging_synthetic=4,
        lagging_programs=("neuronal", "Neuron mature"),
        gli3={
            "gene": "GLI3",
            "early_tfs": ("SOX2", "PAX6"),
            "late_tf": "LEF1",
            "n_early": 6,
            "n_late": 6,
            "lag": 0.10,
        },
        boundary=(0.62, 0.80),
        boundary_delay=0.15,
    )


PRESETS = {"pbmc": _pbmc, "skin": _skin, "cortex": _cortex}


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------
def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _profile(prog: _Program, t: np.ndarray, fate: np.ndarray, ctype: np.ndarray, state: np.ndarray):
    """Activity in [0, 1] of one program for cells at pseudotime ``t`` (vectorised)."""
    if prog.kind == "types":
        return np.isin(ctype, prog.types).astype(np.float32)
    if prog.kind == "state":
        return state
    if prog.kind == "sig_up":
        out = _sigmoid((t - prog.t0) / prog.w)
    elif prog.kind == "sig_down":
        out = 1.0 - _sigmoid((t - prog.t0) / prog.w)
    elif prog.kind == "bump":
        out = _sigmoid((t - prog.t0) / prog.w) * (1.0 - _sigmoid((t - prog.t1) / prog.w))
    else:  # pragma: no cover - specs are internal
        raise ValueError(prog.kind)
    if prog.fate is not None:
        out = out * (fate == prog.fate)
    return out.astype(np.float32)


def _boundary_delay(t: np.ndarray, preset: _Preset) -> np.ndarray:
    """Extra RNA delay (pseudotime units) inside the planted maturation boundary, 0 elsewhere."""
    if preset.boundary is None or not preset.trajectory:
        return np.zeros_like(t)
    a, b = preset.boundary
    s = 0.03
    return preset.boundary_delay * _sigmoid((t - a) / s) * (1.0 - _sigmoid((t - b) / s))


@functools.cache
def _jaspar_db():
    try:
        from pyjaspar import jaspardb
    except ImportError as err:  # pragma: no cover - pyjaspar is a dependency
        raise ImportError(
            "simulate_multiome(motifs=True) needs the 'pyjaspar' package (JASPAR 2022 motifs, "
            "works offline); install it with `pip install pyjaspar` or pass motifs=False"
        ) from err
    return jaspardb(release="JASPAR2022")


@functools.cache
def _jaspar_pfm(matrix_id: str) -> np.ndarray:
    """Position frequency matrix (4 x L, rows A, C, G, T; columns sum to 1) from JASPAR 2022."""
    db = _jaspar_db()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        motif = db.fetch_motif_by_id(matrix_id)
    if motif is None:  # pragma: no cover - ids are fixed in the presets
        raise AttuneInputError(f"JASPAR 2022 has no motif {matrix_id!r}")
    counts = np.array([motif.counts[b] for b in "ACGT"], dtype=float) + 0.25
    return counts / counts.sum(axis=0, keepdims=True)


def _check_int(value, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise AttuneInputError(f"parameter {name} must be an integer, got {value!r}")
    if value < minimum:
        raise AttuneInputError(f"parameter {name} must be >= {minimum}, got {value}")
    return int(value)


def _check_fraction(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise AttuneInputError(f"parameter {name} must be a number in [0, 1), got {value!r}")
    if not (0.0 <= float(value) < 1.0):
        raise AttuneInputError(f"parameter {name} must be in [0, 1), got {value}")
    return float(value)


# --------------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------------
def simulate_multiome(
    preset: str = "pbmc",
    *,
    size: str = "default",
    n_cells: int | None = None,
    n_genes: int | None = None,
    n_peaks: int | None = None,
    n_batches: int = 1,
    seed: int = 0,
    link_noise: float = 0.2,
    link_strength: float = 1.0,
    pchic_noise: float = 0.2,
    motifs: bool = True,
    truth_layers: bool | None = None,
):
    """Simulate paired scRNA-seq + scATAC-seq counts with a known regulatory ground truth.

    Cells follow a preset biology; a synthetic genome places genes and peaks on chromosomes
    ``chr1..chrN`` plus a small ``chrX``. Peak accessibility is driven by expression programs and
    by TF activity through planted JASPAR 2022 motifs; gene expression is driven by the linked
    peaks (with a delay for "lagging" genes, i.e. chromatin potential). Counts are drawn with
    realistic noise. See ``docs/simulator.md`` for the generative model.

    Parameters
    ----------
    preset
        ``"pbmc"`` (8 discrete PBMC-like cell types with markers), ``"skin"`` (SHARE-seq-like hair
        follicle: ``TAC-1`` -> ``TAC-2`` branching into ``IRS``, ``Medulla``, ``Hair Shaft`` along
        pseudotime, with a Gli3-like gene ``"Gli3"``) or ``"cortex"`` (``RG`` -> ``IPC`` ->
        ``Neuron immature`` -> ``Neuron mature``, with a Gli3-like ``"GLI3"`` and a planted
        maturation boundary where RNA lags ATAC).
    size
        ``"small"`` (600 cells, 300 genes, 3,000 peaks; for CI), ``"default"`` (3,000 x 1,000 x
        10,000; for figures) or ``"large"`` (12,000 x 2,000 x 30,000; benchmarks).
    n_cells, n_genes, n_peaks
        Override the numbers given by ``size``. ``n_genes`` must be at least 100 (and fit the
        preset's named genes); ``n_peaks`` at least twice ``n_genes``.
    n_batches
        Number of batches (``obs["batch"]``), each with a modest technical effect on both
        modalities (per-feature log-scale shifts, library size / depth shifts).
    seed
        Non-negative integer seed. Equal seeds and parameters give identical data. Cells,
        genome, counts, sequences and the PCHi-C table use independent random streams, so e.g.
        ``motifs=False`` gives the same counts as ``motifs=True``.
    link_noise
        Mean fraction (in [0, 1)) of each peak's accessibility that follows an unrelated driver
        program instead of its own; higher values weaken peak-gene correlations of true links.
    link_strength
        In [0, 1]: how much of a gene's drive comes from the *sampled* open/closed state of its linked
        peaks in that cell (1, default: fully causal, so a link leaves a pair-specific trace in the
        cell-to-cell co-variation of the two modalities) rather than from their cell-state opening
        probability (0: the gene follows its peaks' expected accessibility only, and true links and
        same-program decoys co-vary alike). See ``docs/simulator.md`` ("Links").
    pchic_noise
        Noise of the PCHi-C-like table (in [0, 1)): each detectable true link is dropped with this
        probability (false negatives) and ``pchic_noise x n_detected`` random false-positive
        interactions are added.
    motifs
        Generate per-peak DNA sequences with planted JASPAR 2022 motifs (needs ``pyjaspar``,
        offline). ``False`` skips sequences (``atac.var["sequence"]`` is absent; ``gc`` is then the
        sampled target GC content); the counts are unchanged.
    truth_layers
        Store the dense noise-free ``rna.layers["truth_mean"]`` and ``atac.layers["truth_prob"]``
        (float32). ``None`` (default) stores them when ``n_cells x n_peaks`` <= 1e8, i.e. for the
        small and default sizes but not at the 12k-cell benchmark scale.

    Returns
    -------
    mudata.MuData
        ``mdata["rna"]`` and ``mdata["atac"]`` with the same cells in the same order.

        - ``.X`` and ``.layers["counts"]``: raw counts, CSR float32 (RNA: negative binomial with
          log-normal library sizes; ATAC: 0/1/2, about 2-10% non-zero).
        - ``obs`` (both modalities and ``mdata.obs``): ``cell_type`` (categorical), ``pseudotime``
          (in [0, 1]; NaN for ``pbmc``), ``lineage``, ``batch``, ``truth_boundary`` (bool; cells in
          the cortex maturation boundary), ``truth_rna_delay`` (extra RNA delay in pseudotime).
        - ``rna.var``: ``chrom``, ``start``, ``end``, ``strand``, ``tss`` (0-based, BED-like).
        - ``atac.var``: ``chrom``, ``start``, ``end``, ``gc``, ``gc_bias``, ``sequence``; names
          ``chrN:start-end``.
        - ``rna.layers["truth_mean"]``: expected expression normalised to 1e4 per cell, log1p,
          without batch effects. ``atac.layers["truth_prob"]``: probability of a non-zero count
          for a cell of median depth, without batch effects.
        - ``mdata.uns["truth"]`` (dict):

          ``links`` (DataFrame ``gene, peak, weight, distance, kind``): true peak->gene links;
          ``weight`` is the unnormalised effect (promoter ~1, decaying with distance).
          ``tf_peak`` (``tf, peak, motif_id, motif_name, position, strand``): TF activity drives
          the peak, and (if ``motifs``) the motif is planted at ``position`` (0-based in the peak).
          ``tfs`` (``tf, motif_id, motif_name, program``). ``gene_program`` (``gene, program,
          regulator, role``). ``pchic``: PCHi-C-like table in the format of Javierre et al. 2016
          ``PCHiC_peak_matrix_cutoff5.tsv`` (``baitChr, baitStart, baitEnd, baitID, baitName,
          oeChr, oeStart, oeEnd, oeID, oeName, dist`` and CHiCAGO score columns ``Mon ... tB``;
          chromosomes without the ``chr`` prefix, as in the real file). ``lagging_genes``
          (``gene, lag``): expression follows the linked peaks' accessibility ``lag`` pseudotime
          units later. ``gli3_like`` (dict: ``gene``, ``early_peaks``, ``late_peaks``,
          ``early_tfs``, ``late_tf``, ``late_motif_id``, ``lag``; empty gene for pbmc).
          ``markers`` (cell type -> gene names). ``start_cell`` (obs name of the pseudotime root;
          ``""`` for pbmc). ``boundary`` (``[start, end]`` pseudotime of the cortex maturation
          boundary; NaN otherwise) and ``boundary_delay`` (typical extra RNA delay inside it;
          the per-cell value is ``obs["truth_rna_delay"]``). ``window_bp`` (1.2e6). ``preset``, ``seed``, ``size``,
          ``params``.

    Raises
    ------
    AttuneInputError
        For an unknown ``preset``/``size`` or invalid numbers; the message names the parameter.
    ImportError
        If ``motifs=True`` and ``pyjaspar`` is not installed.

    Examples
    --------
    >>> from attune_lib.datasets import simulate_multiome
    >>> mdata = simulate_multiome("skin", size="small", seed=0)
    >>> mdata.uns["truth"]["gli3_like"]["gene"]
    'Gli3'
    """
    # ---------------- validation (before anything is built) ----------------
    if not isinstance(preset, str) or preset not in PRESETS:
        raise AttuneInputError(f"parameter preset must be one of {sorted(PRESETS)}, got {preset!r}")
    if not isinstance(size, str) or size not in SIZES:
        raise AttuneInputError(f"parameter size must be one of {sorted(SIZES)}, got {size!r}")
    d_cells, d_genes, d_peaks = SIZES[size]
    n_cells = _check_int(d_cells if n_cells is None else n_cells, "n_cells", minimum=1)
    n_genes = _check_int(d_genes if n_genes is None else n_genes, "n_genes", minimum=100)
    n_peaks = _check_int(d_peaks if n_peaks is None else n_peaks, "n_peaks", minimum=1)
    if n_peaks < 2 * n_genes:
        raise AttuneInputError(
            f"parameter n_peaks must be at least 2 x n_genes ({2 * n_genes}), got {n_peaks}"
        )
    n_batches = _check_int(n_batches, "n_batches", minimum=1)
    seed = _check_int(seed, "seed", minimum=0)
    link_noise = _check_fraction(link_noise, "link_noise")
    if isinstance(link_strength, bool) or not isinstance(link_strength, (int, float, np.floating, np.integer)) \
            or not 0.0 <= float(link_strength) <= 1.0:
        raise AttuneInputError(f"parameter link_strength must be a number in [0, 1], got {link_strength!r}")
    link_strength = float(link_strength)
    pchic_noise = _check_fraction(pchic_noise, "pchic_noise")
    if not isinstance(motifs, (bool, np.bool_)):
        raise AttuneInputError(f"parameter motifs must be True or False, got {motifs!r}")
    if truth_layers is not None and not isinstance(truth_layers, (bool, np.bool_)):
        raise AttuneInputError(
            f"parameter truth_layers must be True, False or None, got {truth_layers!r}"
        )
    spec = PRESETS[preset]()
    n_named = len(spec.named) + len(spec.tfs) + (1 if spec.gli3 else 0)
    if n_genes < n_named + 50:
        raise AttuneInputError(
            f"parameter n_genes must be at least {n_named + 50} for preset {preset!r}, got {n_genes}"
        )
    if motifs:
        for _, motif_id, _ in spec.tfs.values():
            _jaspar_pfm(motif_id)  # fails early with a clear ImportError
    if truth_layers is None:
        truth_layers = n_cells * n_peaks <= _TRUTH_LAYER_MAX_ENTRIES

    streams = np.random.SeedSequence(seed).spawn(6)
    rng_cells, rng_genome, rng_counts, rng_seq, rng_pchic, rng_model = (
        np.random.default_rng(s) for s in streams
    )

    # median RNA library ~2 UMIs per simulated gene (like counts restricted to ~HVGs)
    cells = _simulate_cells(spec, n_cells, n_batches, 2.0 * n_genes, rng_cells)
    genome = _simulate_genome(spec, n_genes, n_peaks, link_noise, rng_genome)
    model = _model_parameters(spec, genome, n_batches, rng_model)
    rna_counts, atac_counts, truth_mean, truth_prob = _simulate_counts(
        spec, cells, genome, model, truth_layers, rng_counts, link_strength
    )
    if motifs:
        sequences, gc, tf_pos = _simulate_sequences(genome, rng_seq)
    else:
        sequences, gc = None, genome["peak_gc_target"].copy()
        tf_pos = None
    pchic = _simulate_pchic(spec, genome, pchic_noise, rng_pchic)
    return _assemble(
        spec,
        cells,
        genome,
        rna_counts,
        atac_counts,
        truth_mean,
        truth_prob,
        sequences,
        gc,
        tf_pos,
        pchic,
        params={
            "preset": preset,
            "size": size,
            "seed": seed,
            "n_cells": n_cells,
            "n_genes": n_genes,
            "n_peaks": n_peaks,
            "n_batches": n_batches,
            "link_noise": link_noise,
            "link_strength": link_strength,
            "pchic_noise": pchic_noise,
            "motifs": bool(motifs),
            "truth_layers": bool(truth_layers),
        },
    )


# --------------------------------------------------------------------------------------------
# Cells
# --------------------------------------------------------------------------------------------
def _simulate_cells(
    spec: _Preset, n: int, n_batches: int, lib_median: float, rng: np.random.Generator
) -> dict:
    K = len(spec.programs)
    n_tf = len(spec.tfs)
    if spec.trajectory:
        t = rng.random(n)
        if n > 1:
            t = (t - t.min()) / max(t.max() - t.min(), 1e-12)
        else:
            t[:] = 0.0
        fate = rng.choice(np.array(spec.fates, dtype=object), size=n, p=np.asarray(spec.fate_props))
        ctype = np.empty(n, dtype=object)
        ctype[:] = fate
        for upper, name in reversed(spec.type_bounds):
            ctype[t < upper] = name
        lineage = fate.copy()  # the branch a cell belongs to or will commit to (ground truth)
    else:
        t = np.full(n, np.nan)
        ctype = rng.choice(
            np.array(spec.cell_types, dtype=object), size=n, p=np.asarray(spec.type_props)
        )
        fate = ctype.copy()
        lineage = np.array([spec.lineage_of[c] for c in spec.cell_types], dtype=object)[
            pd.Categorical(ctype, categories=spec.cell_types).codes
        ]
    # per-cell "state" programs (time independent) and per-cell jitter of every driver
    state = rng.beta(0.7, 2.5, size=(n, K)).astype(np.float32)
    n_drivers = 1 + K + n_tf
    jit_mult = np.exp(rng.normal(0.0, 0.2, size=(n, n_drivers))).astype(np.float32)
    jit_add = rng.normal(0.0, 0.03, size=(n, n_drivers)).astype(np.float32)
    tf_offset = rng.uniform(-0.03, 0.03, size=n_tf)
    batch = rng.integers(0, n_batches, size=n)
    lib = np.exp(rng.normal(np.log(lib_median), 0.5, size=n))
    depth = np.exp(rng.normal(0.0, 0.45, size=n))
    delay = _boundary_delay(np.nan_to_num(t), spec) if spec.trajectory else np.zeros(n)
    delay = delay * rng.uniform(0.4, 1.6, size=n)  # asynchronous: the RNA delay varies per cell
    if spec.boundary is not None:
        in_boundary = (t >= spec.boundary[0]) & (t <= spec.boundary[1])
    else:
        in_boundary = np.zeros(n, dtype=bool)
    return {
        "n": n,
        "t": t,
        "fate": fate,
        "ctype": ctype,
        "lineage": lineage,
        "state": state,
        "jit_mult": jit_mult,
        "jit_add": jit_add,
        "tf_offset": tf_offset,
        "batch": batch,
        "lib": lib,
        "depth": depth,
        "delay": delay,
        "in_boundary": in_boundary,
    }


def _drivers(spec: _Preset, cells: dict, idx: np.ndarray, t: np.ndarray | None) -> np.ndarray:
    """Driver matrix (cells x (1 + programs + TFs)) for cells ``idx`` evaluated at pseudotime ``t``.

    Column 0 is a constant (housekeeping), then one column per program, then one per TF (the TF's
    activity, which is also its expression program). Per-cell jitter is the same at every ``t``.
    """
    fate, ctype = cells["fate"][idx], cells["ctype"][idx]
    state = cells["state"][idx]
    tt = np.zeros(len(idx)) if t is None else t
    cols = [np.ones(len(idx), dtype=np.float32)]
    prog_index = {p.name: k for k, p in enumerate(spec.programs)}
    for k, prog in enumerate(spec.programs):
        cols.append(_profile(prog, tt, fate, ctype, state[:, k]))
    for j, (prog_name, _, _) in enumerate(spec.tfs.values()):
        prog = spec.programs[prog_index[prog_name]]
        tj = tt + cells["tf_offset"][j] if spec.trajectory else tt
        cols.append(_profile(prog, tj, fate, ctype, state[:, prog_index[prog_name]]))
    D = np.stack(cols, axis=1).astype(np.float32)
    D = D * cells["jit_mult"][idx] + cells["jit_add"][idx]
    D[:, 0] = 1.0
    return np.clip(D, 0.0, 1.0, out=D)


# --------------------------------------------------------------------------------------------
# Genome, links and regulation
# --------------------------------------------------------------------------------------------
def _simulate_genome(spec: _Preset, G: int, P: int, link_noise: float, rng) -> dict:
    K = len(spec.programs)
    prog_index = {p.name: k for k, p in enumerate(spec.programs)}
    tf_names = list(spec.tfs)
    tf_col = {name: 1 + K + j for j, name in enumerate(tf_names)}
    # ---- genes: names, programs, drivers
    named = list(spec.tfs) + list(spec.named) + ([spec.gli3["gene"]] if spec.gli3 else [])
    width = max(4, len(str(G)))
    synthetic = [f"Gene{i + 1:0{width}d}" for i in range(G - len(named))]
    genes = np.array(named + synthetic, dtype=object)
    program = np.full(G, -1)  # -1: housekeeping
    role = np.empty(G, dtype=object)
    for g, name in enumerate(named):
        if name in spec.tfs:
            program[g] = prog_index[spec.tfs[name][0]]
            role[g] = "tf"
        elif spec.gli3 and name == spec.gli3["gene"]:
            program[g] = -2  # special, drivers set per peak group
            role[g] = "gli3_like"
        else:
            pname = spec.named[name]
            program[g] = prog_index[pname] if pname else -1
            role[g] = "marker" if pname else "housekeeping"
    n_syn = len(synthetic)
    weights = np.array([p.weight for p in spec.programs], dtype=float)
    syn_prog = rng.choice(K, size=n_syn, p=weights / weights.sum())
    housekeeping = rng.random(n_syn) < 0.3
    syn_prog[housekeeping] = -1
    program[len(named) :] = syn_prog
    role[len(named) :] = np.where(housekeeping, "housekeeping", "program")
    # driver column of each gene: TF genes -> own TF column; program genes -> a TF of the program
    # (75%, motif-mediated) or the program column; housekeeping -> constant column 0.
    prog_tfs = {
        k: [tf_col[n] for n, v in spec.tfs.items() if prog_index[v[0]] == k] for k in range(K)
    }
    gene_driver = np.zeros(G, dtype=int)
    u = rng.random(G)
    pick = rng.integers(0, 1 << 30, size=G)
    for g in range(G):  # loop over genes (not cells): small
        k = program[g]
        if role[g] == "tf":
            gene_driver[g] = tf_col[genes[g]]
        elif k >= 0:
            opts = prog_tfs[k]
            gene_driver[g] = opts[pick[g] % len(opts)] if (opts and u[g] < 0.75) else 1 + k
        else:
            gene_driver[g] = 0
    # ---- lagging genes
    lag = np.zeros(G)
    for name, value in spec.lagging_named.items():
        lag[np.flatnonzero(genes == name)] = value
    if spec.n_lagging_synthetic:
        cand = np.flatnonzero(
            np.isin(program, [prog_index[p] for p in spec.lagging_programs]) & (role == "program")
        )
        chosen = rng.choice(cand, size=min(spec.n_lagging_synthetic, len(cand)), replace=False)
        lag[chosen] = rng.choice(np.asarray(spec.lag_values), size=len(chosen))
    # ---- chromosomes and gene placement
    n_x = max(2, round(0.04 * G))
    x_genes = rng.choice(np.arange(len(named), G), size=n_x, replace=False)
    is_x = np.zeros(G, dtype=bool)
    is_x[x_genes] = True
    n_auto = int(np.clip(G // 100, 3, 12))
    # order: random, with 30% of program genes placed next to another gene of their program
    key = rng.random(G)
    order_prog = rng.random(G) < 0.3
    for g in np.flatnonzero(order_prog & (program >= 0)):
        mates = np.flatnonzero((program == program[g]) & (is_x == is_x[g]))
        key[g] = key[mates[rng.integers(len(mates))]] + 1e-6 * rng.random()
    chrom = np.empty(G, dtype=object)
    tss = np.zeros(G, dtype=np.int64)
    chrom_len: dict[str, int] = {}
    auto = np.flatnonzero(~is_x)
    auto = auto[np.argsort(key[auto])]
    # chromosome sizes decrease like real ones; split the ordered autosomal genes accordingly
    share = 1.0 / (np.arange(n_auto) + 4.0)
    cuts = np.round(np.cumsum(share / share.sum()) * len(auto)).astype(int)
    groups = np.split(auto, cuts[:-1])
    xs = np.flatnonzero(is_x)
    groups.append(xs[np.argsort(key[xs])])
    names = [f"chr{i + 1}" for i in range(n_auto)] + ["chrX"]
    for cname, members in zip(names, groups):
        gaps = 20_000 + rng.exponential(130_000, size=len(members))
        pos = 1_000_000 + np.cumsum(gaps).astype(np.int64)
        chrom[members] = cname
        tss[members] = pos
        chrom_len[cname] = int(pos[-1] + 2_000_000) if len(pos) else 3_000_000
    strand = np.where(rng.random(G) < 0.5, "+", "-").astype(object)
    glen = np.clip(np.exp(rng.normal(np.log(20_000), 1.0, size=G)), 2_000, 500_000).astype(np.int64)
    gstart = np.where(strand == "+", tss, tss + 1 - glen)
    gend = np.where(strand == "+", tss + glen, tss + 1)
    # ---- peaks
    has_prom = (rng.random(G) < 0.92) | (role != "program")
    prom_genes = np.flatnonzero(has_prom)
    n_prom = len(prom_genes)
    gli3_g = int(np.flatnonzero(genes == spec.gli3["gene"])[0]) if spec.gli3 else -1
    n_gli3 = (spec.gli3["n_early"] + spec.gli3["n_late"]) if spec.gli3 else 0
    n_bg = round(0.15 * P)
    n_dist = P - n_prom - n_bg - n_gli3
    if n_dist < 0:  # pragma: no cover - prevented by n_peaks >= 2 n_genes
        n_bg, n_dist = max(P - n_prom - n_gli3, 0), 0
    gw = np.where(role == "housekeeping", 0.6, 1.5) * rng.gamma(2.0, 1.0, size=G)
    gw[lag > 0] = 3.0 * gw[lag > 0].clip(1.5, None)  # lagging genes: several linked peaks
    per_gene = rng.multinomial(n_dist, gw / gw.sum())
    dist_gene = np.repeat(np.arange(G), per_gene)
    comp = rng.random(n_dist)
    d_abs = np.where(
        comp < 0.6,
        2_000 + rng.exponential(60_000, size=n_dist),
        np.where(
            comp < 0.9,
            2_000 + rng.exponential(250_000, size=n_dist),
            rng.uniform(2_000, _MAX_LINK_BP, size=n_dist),
        ),
    )
    d_abs = np.minimum(d_abs, _MAX_LINK_BP - 1_000)
    sign = np.where(rng.random(n_dist) < 0.5, -1, 1)
    dist_center = tss[dist_gene] + sign * d_abs.astype(np.int64)
    # gli3-like peak groups: within 500 kb of the TSS
    if spec.gli3:
        gd = rng.uniform(15_000, 500_000, size=n_gli3) * np.where(rng.random(n_gli3) < 0.5, -1, 1)
        gli3_center = tss[gli3_g] + gd.astype(np.int64)
    else:
        gli3_center = np.zeros(0, dtype=np.int64)
    # background peaks anywhere (chromosome chosen by length)
    clen = np.array([chrom_len[c] for c in names], dtype=float)
    bg_chrom = np.array(names, dtype=object)[rng.choice(len(names), size=n_bg, p=clen / clen.sum())]
    bg_center = (rng.random(n_bg) * np.array([chrom_len[c] for c in bg_chrom])).astype(np.int64)
    # assemble all peaks: kind 0 promoter, 1 distal, 2 gli3 group, 3 background
    p_chrom = np.concatenate(
        [
            chrom[prom_genes],
            chrom[dist_gene],
            np.full(n_gli3, chrom[gli3_g] if spec.gli3 else "", dtype=object),
            bg_chrom,
        ]
    )
    p_center = np.concatenate(
        [
            tss[prom_genes] + rng.integers(-100, 101, size=n_prom),
            dist_center,
            gli3_center,
            bg_center,
        ]
    )
    p_kind = np.concatenate(
        [np.zeros(n_prom, int), np.ones(n_dist, int), np.full(n_gli3, 2), np.full(n_bg, 3)]
    )
    p_gene = np.concatenate([prom_genes, dist_gene, np.full(n_gli3, gli3_g), np.full(n_bg, -1)])
    p_group = np.concatenate(
        [
            np.zeros(n_prom + n_dist, int),
            np.repeat([1, 2], [spec.gli3["n_early"], spec.gli3["n_late"]])
            if spec.gli3
            else np.zeros(0, int),
            np.zeros(n_bg, int),
        ]
    )
    p_width = rng.integers(300, 501, size=len(p_center))  # peak widths 300-500 bp
    # clip to chromosome bounds, then resolve overlaps per chromosome (sorted, shift right)
    p_len_chr = np.array([chrom_len[c] for c in p_chrom])
    p_start = np.clip(p_center - p_width // 2, 10_000, p_len_chr - 20_000).astype(np.int64)
    order = np.lexsort((p_start, pd.Categorical(p_chrom, categories=names).codes))
    p_chrom, p_start, p_width = p_chrom[order], p_start[order], p_width[order]
    p_kind, p_gene, p_group = p_kind[order], p_gene[order], p_group[order]
    for cname in names:
        sel = np.flatnonzero(p_chrom == cname)
        if len(sel) == 0:
            continue
        s, w = p_start[sel], p_width[sel] + 50
        C = np.concatenate([[0], np.cumsum(w)[:-1]])
        p_start[sel] = C + np.maximum.accumulate(s - C)
        chrom_len[cname] = max(chrom_len[cname], int(p_start[sel][-1] + p_width[sel][-1] + 10_000))
    p_end = p_start + p_width
    peak_names = np.array(
        [f"{c}:{s}-{e}" for c, s, e in zip(p_chrom, p_start, p_end)], dtype=object
    )
    p_mid = (p_start + p_end) // 2
    # ---- true links (peak -> gene)
    link_p, link_g, link_w, link_kind = [], [], [], []
    prom = np.flatnonzero(p_kind == 0)
    link_p.append(prom)
    link_g.append(p_gene[prom])
    link_w.append(rng.uniform(0.8, 1.2, size=len(prom)))
    link_kind.append(np.full(len(prom), "promoter", dtype=object))
    dist = np.flatnonzero(p_kind == 1)
    dd = np.abs(p_mid[dist] - tss[p_gene[dist]])
    linked = rng.random(len(dist)) < 0.9 * np.exp(-dd / 300_000) + 0.05
    dl = dist[linked]
    ddl = dd[linked]
    link_p.append(dl)
    link_g.append(p_gene[dl])
    link_w.append(np.exp(-ddl / 150_000) * rng.uniform(0.5, 1.0, size=len(dl)) + 0.1)
    link_kind.append(np.full(len(dl), "distal", dtype=object))
    # shared enhancers: 5% of linked distal peaks also regulate the nearest other gene (<500 kb)
    shared = dl[rng.random(len(dl)) < 0.05]
    sh_p, sh_g = [], []
    for p in shared:  # few peaks
        same = np.flatnonzero((chrom == p_chrom[p]) & (np.arange(G) != p_gene[p]))
        if len(same) == 0:
            continue
        dists = np.abs(tss[same] - p_mid[p])
        j = same[np.argmin(dists)]
        if dists.min() < 500_000:
            sh_p.append(p)
            sh_g.append(j)
    if sh_p:
        sh_p, sh_g = np.array(sh_p), np.array(sh_g)
        dsh = np.abs(p_mid[sh_p] - tss[sh_g])
        link_p.append(sh_p)
        link_g.append(sh_g)
        link_w.append(0.5 * (np.exp(-dsh / 150_000) * rng.uniform(0.5, 1.0, size=len(sh_p)) + 0.1))
        link_kind.append(np.full(len(sh_p), "distal", dtype=object))
    gl = np.flatnonzero(p_kind == 2)
    if len(gl):
        link_p.append(gl)
        link_g.append(p_gene[gl])
        link_w.append(np.where(p_group[gl] == 2, 1.0, 0.8) * rng.uniform(0.9, 1.1, size=len(gl)))
        link_kind.append(np.full(len(gl), "distal", dtype=object))
    link_p = np.concatenate(link_p)
    link_g = np.concatenate(link_g)
    link_w = np.concatenate(link_w)
    link_kind = np.concatenate(link_kind)
    link_d = np.abs(p_mid[link_p] - tss[link_g])
    # ---- peak drivers
    n_drv = 1 + K + len(tf_names)
    d1 = np.zeros(P, dtype=int)
    is_linked = np.zeros(P, dtype=bool)
    is_linked[link_p] = True
    own = p_gene >= 0
    d1[own] = gene_driver[np.maximum(p_gene[own], 0)]
    # unlinked peaks near a gene: 50% co-accessible decoys (same driver), else a random driver
    unl = np.flatnonzero(~is_linked & (p_kind == 1))
    rand_drv = rng.integers(0, n_drv, size=P)
    keep = rng.random(len(unl)) < 0.5
    d1[unl[~keep]] = rand_drv[unl[~keep]]
    decoy_p = unl[keep]
    bg = np.flatnonzero(p_kind == 3)
    d1[bg] = np.where(rng.random(len(bg)) < 0.5, 0, rand_drv[bg])
    gli3_info = None
    if spec.gli3:
        early_cols = [tf_col[n] for n in spec.gli3["early_tfs"]]
        early = np.flatnonzero(p_group == 1)
        late = np.flatnonzero(p_group == 2)
        d1[early] = np.array(early_cols)[np.arange(len(early)) % len(early_cols)]
        d1[late] = tf_col[spec.gli3["late_tf"]]
        # the gli3-like promoter follows the early program weakly (basal accessibility)
        gp = np.flatnonzero((p_kind == 0) & (p_gene == gli3_g))
        d1[gp] = early_cols[0]
        gli3_info = {"gene": gli3_g, "early": early, "late": late}
    basal = np.where(p_kind == 0, rng.uniform(0.3, 0.6, size=P), rng.uniform(0.0, 0.1, size=P))
    d2 = rng.integers(1, n_drv, size=P)
    eta = np.clip(link_noise * 2.0 * rng.beta(2.0, 2.0, size=P), 0.0, 0.95)
    # ---- TF -> peak regulation (motif planted where the driver is a TF column);
    # a TF's own regulatory peaks are driven by its activity but carry no self-motif
    tf_of_peak = np.where(d1 > K, d1 - 1 - K, -1)
    self_peak = (
        (tf_of_peak >= 0)
        & own
        & (role[np.maximum(p_gene, 0)] == "tf")
        & (np.array(tf_names + [""], dtype=object)[tf_of_peak] == genes[np.maximum(p_gene, 0)])
    )
    tf_of_peak[self_peak] = -1
    # ---- GC content targets: promoters GC-rich
    gc_target = np.where(p_kind == 0, rng.beta(12, 8, size=P), rng.beta(8, 11, size=P))
    return {
        "genes": genes,
        "program": program,
        "role": role,
        "gene_driver": gene_driver,
        "lag": lag,
        "chrom": chrom,
        "tss": tss,
        "strand": strand,
        "gstart": gstart,
        "gend": gend,
        "chrom_names": names,
        "chrom_len": chrom_len,
        "peak_names": peak_names,
        "p_chrom": p_chrom,
        "p_start": p_start,
        "p_end": p_end,
        "p_kind": p_kind,
        "p_gene": p_gene,
        "link_p": link_p,
        "link_g": link_g,
        "link_w": link_w,
        "link_kind": link_kind,
        "link_d": link_d,
        "decoy_p": decoy_p,
        "decoy_g": p_gene[decoy_p],
        "decoy_d": np.abs(p_mid[decoy_p] - tss[p_gene[decoy_p]]),
        "d1": d1,
        "d2": d2,
        "eta": eta.astype(np.float32),
        "basal": basal.astype(np.float32),
        "tf_of_peak": tf_of_peak,
        "tf_names": tf_names,
        "peak_gc_target": gc_target,
        "gli3": gli3_info,
        "n_drivers": n_drv,
        "tf_motif_ids": {name: v[1] for name, v in spec.tfs.items()},
    }


def _model_parameters(spec: _Preset, genome: dict, n_batches: int, rng) -> dict:
    G, P = len(genome["genes"]), len(genome["peak_names"])
    role = genome["role"]
    b = rng.normal(-0.5, 1.0, size=G)
    beta = rng.uniform(1.5, 3.0, size=G)
    strong = (role == "marker") | (role == "tf") | (role == "gli3_like") | (genome["lag"] > 0)
    b[strong] = rng.normal(0.8, 0.4, size=strong.sum())
    beta[strong] = rng.uniform(2.5, 3.5, size=strong.sum())
    hk = role == "housekeeping"
    beta[hk] = rng.uniform(0.3, 1.0, size=hk.sum())
    b[hk] += 0.5
    theta = np.exp(rng.normal(np.log(3.0), 0.5, size=G))
    # link weights normalised per gene -> R_g = weighted mean of linked peak states
    W = sp.csr_matrix(
        (genome["link_w"], (genome["link_p"], genome["link_g"])), shape=(P, G), dtype=np.float64
    )
    colsum = np.asarray(W.sum(axis=0)).ravel()
    W = W @ sp.diags(1.0 / np.maximum(colsum, 1e-12))
    W = W.tocsc().astype(np.float32)
    # ATAC: logit of the non-zero probability at median depth, closed -> open
    lo = rng.normal(-5.0, 0.4, size=P)
    amp = rng.uniform(2.8, 4.2, size=P)
    gc_effect = 2.0 * (genome["peak_gc_target"] - 0.45)
    # detection probability of an open (q1) and of a closed (q0) peak at median depth
    # (-0.45 on the logit keeps 2-10 % of entries non-zero, as with the former sigmoid(lo + amp S) read-out)
    q1 = _sigmoid(lo + gc_effect + amp - 0.45)
    q0 = _sigmoid(lo + gc_effect - 0.45)
    rna_batch = rng.normal(0.0, 0.25, size=(n_batches, G)) if n_batches > 1 else np.zeros((1, G))
    atac_batch = rng.normal(0.0, 0.25, size=(n_batches, P)) if n_batches > 1 else np.zeros((1, P))
    lib_batch = np.exp(rng.normal(0.0, 0.2, size=n_batches)) if n_batches > 1 else np.ones(1)
    depth_batch = np.exp(rng.normal(0.0, 0.2, size=n_batches)) if n_batches > 1 else np.ones(1)
    return {
        "b": b.astype(np.float32),
        "beta": beta.astype(np.float32),
        "theta": theta,
        "W": W,
        "lo": (lo + gc_effect).astype(np.float32),
        "amp": amp.astype(np.float32),
        "q0": q0.astype(np.float32),
        "q1": q1.astype(np.float32),
        "rna_batch": rna_batch.astype(np.float32),
        "atac_batch": atac_batch.astype(np.float32),
        "lib_batch": lib_batch,
        "depth_batch": depth_batch,
    }


def _peak_state(D: np.ndarray, genome: dict, peaks: slice | np.ndarray) -> np.ndarray:
    """Accessibility state in [0, 1] of ``peaks`` given drivers ``D`` (cells x drivers)."""
    d1, d2 = genome["d1"][peaks], genome["d2"][peaks]
    eta, basal = genome["eta"][peaks], genome["basal"][peaks]
    S = D[:, d1] * (1.0 - eta)
    S += D[:, d2] * eta
    S *= 1.0 - basal
    S += basal
    return S


def _simulate_counts(
    spec: _Preset, cells: dict, genome: dict, model: dict, truth_layers: bool, rng, link_strength: float = 1.0
):
    """Counts of both modalities and the noise-free layers.

    Causal link model: every peak of every cell is *open* or *closed*. A persistent uniform draw
    ``U[c, p]`` (the same at every pseudotime) decides it: open at time ``t`` when ``U < S(t)``, where
    ``S`` is the peak's cell-state opening probability (:func:`_peak_state`). ATAC reads the open state
    now (detection ``q1`` when open, background ``q0`` when closed); a gene reads the open states of
    its linked peaks at its RNA time (lags), mixed with their expected state by ``link_strength``.
    Decoy peaks share ``S`` with the gene's linked peaks but have their own ``U``, so only true links
    carry the cell-to-cell open/closed trace into expression.
    """
    n, G, P = cells["n"], len(genome["genes"]), len(genome["peak_names"])
    W = model["W"]
    lag = genome["lag"]
    # genes grouped by their RNA delay; each group reads the peaks at its own shifted pseudotime
    groups = []
    for value in np.unique(lag):
        g_idx = np.flatnonzero(lag == value)
        Wg = W[:, g_idx].tocsr()
        rows = np.flatnonzero(np.diff(Wg.indptr) > 0)
        groups.append((float(value), g_idx, rows, Wg[rows]))
    shifted = spec.trajectory and (spec.boundary is not None or len(groups) > 1)
    truth_mean = np.empty((n, G), dtype=np.float32) if truth_layers else None
    truth_prob = np.empty((n, P), dtype=np.float32) if truth_layers else None
    chunk = int(max(64, _CHUNK_ENTRIES // max(P, 1)))
    starts = range(0, n, chunk)
    rna_blocks, atac_blocks = [], []
    for s0 in progress(starts, enabled=len(starts) > 4, desc="simulate_multiome"):
        idx = np.arange(s0, min(s0 + chunk, n))
        t = cells["t"][idx] if spec.trajectory else None
        D = _drivers(spec, cells, idx, t)
        S = _peak_state(D, genome, slice(None))
        U = rng.random(S.shape, dtype=np.float32)  # persistent open/closed draw of each cell's peaks
        # ---- ATAC: detection q1 when open, q0 when closed; the truth is the expectation over U
        q0, q1 = model["q0"], model["q1"]
        if truth_prob is not None:
            truth_prob[idx] = q0 + (q1 - q0) * S
        p_obs = np.where(U < S, q1, q0)
        b_idx = cells["batch"][idx]
        depth = (cells["depth"][idx] * model["depth_batch"][b_idx]).astype(np.float32)
        if model["atac_batch"].shape[0] > 1:
            logit = np.log(p_obs) - np.log1p(-p_obs) + model["atac_batch"][b_idx]
            p_obs = _sigmoid(logit).astype(np.float32)
            del logit
        p_obs = np.minimum(p_obs * depth[:, None], 0.95)
        hit = rng.random(p_obs.shape, dtype=np.float32) < p_obs
        del p_obs
        A = sp.csr_matrix(hit, dtype=np.float32)
        A.data += (rng.random(A.nnz) < 0.15).astype(np.float32)
        atac_blocks.append(A)
        del hit
        # ---- RNA: R = weighted mean of the linked peaks' open states at the gene's RNA time
        # (mixed with their expected state by link_strength); R_mean (its expectation) gives the truth
        R = np.empty((len(idx), G), dtype=np.float32)
        R_mean = np.empty((len(idx), G), dtype=np.float32)
        for value, g_idx, rows, Wr in groups:
            if shifted:
                t_rna = t - cells["delay"][idx] - value
                same = value == 0 and not cells["delay"][idx].any()
                Dg = D if same else _drivers(spec, cells, idx, t_rna)
                Sg = S[:, rows] if Dg is D else _peak_state(Dg, genome, rows)
            else:
                Sg = S[:, rows]
            R_mean[:, g_idx] = np.asarray(Sg @ Wr)
            if link_strength > 0:
                Og = (U[:, rows] < Sg).astype(np.float32)
                Og = Og * link_strength + Sg * (1.0 - link_strength) if link_strength < 1 else Og
                R[:, g_idx] = np.asarray(Og @ Wr)
            else:
                R[:, g_idx] = R_mean[:, g_idx]
        del S, U
        if truth_mean is not None:
            eta_mean = model["b"] + model["beta"] * R_mean
            eta_mean -= eta_mean.max(axis=1, keepdims=True)
            rate_mean = np.exp(eta_mean)
            truth_mean[idx] = np.log1p(rate_mean / rate_mean.sum(axis=1, keepdims=True) * 1e4)
            del eta_mean, rate_mean
        del R_mean
        eta_log = model["b"] + model["beta"] * R
        eta_log -= eta_log.max(axis=1, keepdims=True)
        rate = np.exp(eta_log)
        rel = rate / rate.sum(axis=1, keepdims=True)
        if model["rna_batch"].shape[0] > 1:
            rate_b = rate * np.exp(model["rna_batch"][b_idx])
            rel = rate_b / rate_b.sum(axis=1, keepdims=True)
        lib = cells["lib"][idx] * model["lib_batch"][b_idx]
        mu = rel * lib[:, None]
        theta = model["theta"]
        lam = mu * rng.gamma(theta, 1.0 / theta, size=mu.shape)
        counts = rng.poisson(lam).astype(np.float32)
        rna_blocks.append(sp.csr_matrix(counts))
        del R, rate, rel, mu, lam, counts
    rna = as_csr(sp.vstack(rna_blocks, format="csr"))
    atac = as_csr(sp.vstack(atac_blocks, format="csr"))
    return rna, atac, truth_mean, truth_prob


# --------------------------------------------------------------------------------------------
# Sequences and motifs
# --------------------------------------------------------------------------------------------
_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


def _simulate_sequences(genome: dict, rng) -> tuple[np.ndarray, np.ndarray, dict]:
    """Random peak sequences at the target GC content, with one motif instance planted per
    TF-regulated peak. Returns sequences, their exact GC fraction, and motif positions."""
    P = len(genome["peak_names"])
    lengths = (genome["p_end"] - genome["p_start"]).astype(int)
    L = int(lengths.max())
    gc = genome["peak_gc_target"].astype(np.float32)[:, None]
    u = rng.random((P, L), dtype=np.float32)
    # u < gc/2 -> G, < gc -> C, < gc + (1-gc)/2 -> A, else T
    code = np.where(u < gc / 2, 2, np.where(u < gc, 1, np.where(u < gc + (1 - gc) / 2, 0, 3)))
    arr = _BASES[code]
    del u, code
    tf_of_peak = genome["tf_of_peak"]
    position = np.full(P, -1, dtype=np.int64)
    strand = np.full(P, ".", dtype=object)
    comp = np.frombuffer(b"TGCA", dtype=np.uint8)  # complement of A, C, G, T
    for j, tf in enumerate(genome["tf_names"]):
        peaks = np.flatnonzero(tf_of_peak == j)
        if len(peaks) == 0:
            continue
        pfm = _jaspar_pfm(genome["tf_motif_ids"][tf])
        m = pfm.shape[1]
        # consensus-ish instances: sample from the sharpened PFM (p^3, renormalised)
        sharp = pfm**3
        sharp /= sharp.sum(axis=0, keepdims=True)
        cum = np.cumsum(sharp, axis=0)  # 4 x m
        r = rng.random((len(peaks), m))
        letters = (r[:, :, None] > cum.T[None, :, :]).sum(axis=2).clip(0, 3)  # n x m codes
        inst = _BASES[letters]
        rev = rng.random(len(peaks)) < 0.5
        inst[rev] = comp[letters[rev]][:, ::-1]
        pos = (rng.random(len(peaks)) * (lengths[peaks] - m + 1)).astype(np.int64)
        arr[peaks[:, None], pos[:, None] + np.arange(m)[None, :]] = inst
        position[peaks] = pos
        strand[peaks] = np.where(rev, "-", "+")
    mask = np.arange(L)[None, :] < lengths[:, None]
    is_gc = ((arr == ord("G")) | (arr == ord("C"))) & mask
    gc_exact = is_gc.sum(axis=1) / lengths
    seqs = np.array(
        [arr[i, : lengths[i]].tobytes().decode("ascii") for i in range(P)], dtype=object
    )
    return seqs, gc_exact.astype(np.float64), {"position": position, "strand": strand}


# --------------------------------------------------------------------------------------------
# PCHi-C-like table
# --------------------------------------------------------------------------------------------
def _fragments(genome: dict, rng) -> dict[str, np.ndarray]:
    """HindIII-like restriction fragments tiling each chromosome (boundaries, ~4 kb)."""
    out = {}
    for cname in genome["chrom_names"]:
        length = genome["chrom_len"][cname]
        n_est = int(length / 4_000 * 1.3) + 10
        sizes = np.maximum(np.exp(rng.normal(np.log(3_500), 0.6, size=n_est)), 300).astype(np.int64)
        bounds = np.concatenate([[1], 1 + np.cumsum(sizes)])
        bounds = bounds[bounds < length]
        out[cname] = np.append(bounds, length)
    return out


def _simulate_pchic(spec: _Preset, genome: dict, noise: float, rng) -> pd.DataFrame:
    frags = _fragments(genome, rng)
    offsets, off = {}, 0
    for cname in genome["chrom_names"]:
        offsets[cname] = off
        off += len(frags[cname]) - 1

    def locate(chroms, positions):
        fid = np.zeros(len(positions), dtype=np.int64)
        fs = np.zeros(len(positions), dtype=np.int64)
        fe = np.zeros(len(positions), dtype=np.int64)
        for cname in np.unique(chroms):
            sel = np.flatnonzero(chroms == cname)
            b = frags[cname]
            k = np.clip(np.searchsorted(b, positions[sel], side="right") - 1, 0, len(b) - 2)
            fid[sel] = offsets[cname] + k + 1
            fs[sel], fe[sel] = b[k], b[k + 1] - 1
        return fid, fs, fe

    genes, tss, gchrom = genome["genes"], genome["tss"], genome["chrom"]
    p_mid = (genome["p_start"] + genome["p_end"]) // 2
    bait_id, bait_s, bait_e = locate(gchrom, tss)
    # true, detectable interactions: distal links whose peak lies in another fragment >= 10 kb away
    lp, lg, lw = genome["link_p"], genome["link_g"], genome["link_w"]
    oe_id, oe_s, oe_e = locate(genome["p_chrom"][lp], p_mid[lp])
    detectable = (oe_id != bait_id[lg]) & (genome["link_d"] >= 10_000)
    keep = detectable & (rng.random(len(lp)) >= noise)
    t_g, t_oe, t_s, t_e, t_w = lg[keep], oe_id[keep], oe_s[keep], oe_e[keep], lw[keep]
    # false positives: random baits, other ends at PCHi-C-like distances (half on unlinked peaks)
    n_fp = round(noise * keep.sum())
    f_g = rng.integers(0, len(genes), size=n_fp)
    f_pos = tss[f_g] + (
        np.where(rng.random(n_fp) < 0.5, -1, 1) * (10_000 + rng.exponential(250_000, size=n_fp))
    ).astype(np.int64)
    on_peak = rng.random(n_fp) < 0.5
    if on_peak.any():
        # move to the nearest peak on the same chromosome
        for cname in np.unique(gchrom[f_g[on_peak]]):
            sel = np.flatnonzero(on_peak & (gchrom[f_g] == cname))
            pk = np.flatnonzero(genome["p_chrom"] == cname)
            if len(pk) == 0:
                continue
            mids = p_mid[pk]
            k = np.clip(np.searchsorted(mids, f_pos[sel]), 0, len(mids) - 1)
            f_pos[sel] = mids[k]
    clen = np.array([genome["chrom_len"][c] for c in gchrom[f_g]])
    f_pos = np.clip(f_pos, 2, clen - 2)
    f_oe, f_s, f_e = locate(gchrom[f_g], f_pos)
    ok = f_oe != bait_id[f_g]
    f_g, f_oe, f_s, f_e = f_g[ok], f_oe[ok], f_s[ok], f_e[ok]
    g_all = np.concatenate([t_g, f_g])
    oe_all = np.concatenate([t_oe, f_oe])
    oes_all = np.concatenate([t_s, f_s])
    oee_all = np.concatenate([t_e, f_e])
    is_true = np.concatenate([np.ones(len(t_g), bool), np.zeros(len(f_g), bool)])
    strength = np.concatenate(
        [
            np.exp(rng.normal(np.log(7.0), 0.35, size=len(t_g)))
            * (0.8 + 0.4 * np.minimum(t_w, 1.0)),
            np.exp(rng.normal(np.log(6.0), 0.3, size=len(f_g))),
        ]
    )
    # activity of each interaction per PCHi-C cell type
    cols = list(PCHIC_CELL_TYPES)
    active = rng.random((len(g_all), len(cols))) < 0.35  # unmapped columns / trajectory presets
    if spec.pchic_map:
        prog = genome["program"][g_all]
        # gene activity per simulated cell type, from its program (or its TF's program)
        for c_i, col in enumerate(cols):
            types = spec.pchic_map.get(col)
            if not types:
                continue
            act = np.zeros(len(g_all), dtype=bool)
            for k, p in enumerate(spec.programs):
                if p.kind == "types" and set(types) & set(p.types) or p.kind == "state":
                    act |= prog == k
            act |= prog == -1  # housekeeping
            act |= prog == -2
            active[:, c_i] = np.where(is_true, act, active[:, c_i])
    fp_cols = rng.random((len(g_all), len(cols))) < 0.15
    active = np.where(is_true[:, None], active, fp_cols)
    scores = np.where(
        active,
        strength[:, None] * rng.uniform(0.8, 1.25, size=active.shape),
        rng.uniform(0.0, 4.0, size=active.shape),
    )
    low = scores.max(axis=1) < 5.0
    if low.any():
        c = rng.integers(0, len(cols), size=low.sum())
        scores[np.flatnonzero(low), c] = 5.0 + rng.uniform(0.0, 2.0, size=low.sum())
    # one row per (bait, other end), strongest kept
    df = pd.DataFrame(
        {
            "baitChr": [c[3:] for c in gchrom[g_all]],
            "baitStart": bait_s[g_all],
            "baitEnd": bait_e[g_all],
            "baitID": bait_id[g_all],
            "baitName": genes[g_all],
            "oeChr": [c[3:] for c in gchrom[g_all]],
            "oeStart": oes_all,
            "oeEnd": oee_all,
            "oeID": oe_all,
        }
    )
    # baitName: all genes whose TSS lies in the bait fragment (";"-joined, as in the real file)
    frag_genes = pd.Series(genes).groupby(bait_id).agg(lambda x: ";".join(sorted(x)))
    df["baitName"] = frag_genes.reindex(df["baitID"].to_numpy()).to_numpy()
    df["oeName"] = frag_genes.reindex(df["oeID"].to_numpy()).fillna(".").to_numpy()
    df["dist"] = (
        (df["oeStart"] + df["oeEnd"]) // 2 - (df["baitStart"] + df["baitEnd"]) // 2
    ).astype(np.int64)
    for c_i, col in enumerate(cols):
        df[col] = np.round(scores[:, c_i], 2)
    df["_max"] = scores.max(axis=1)
    df = df.sort_values("_max", ascending=False).drop_duplicates(["baitID", "oeID"])
    chr_order = {c[3:]: i for i, c in enumerate(genome["chrom_names"])}
    df["_chr"] = df["baitChr"].map(chr_order)
    df = df.sort_values(["_chr", "baitStart", "oeStart"]).drop(columns=["_max", "_chr"])
    for c in ("baitStart", "baitEnd", "baitID", "oeStart", "oeEnd", "oeID", "dist"):
        df[c] = df[c].astype(np.int64)
    return df.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Assembly into MuData
# --------------------------------------------------------------------------------------------
def _assemble(
    spec,
    cells,
    genome,
    rna_X,
    atac_X,
    truth_mean,
    truth_prob,
    sequences,
    gc,
    tf_pos,
    pchic,
    *,
    params,
) -> Any:
    import anndata as ad
    import mudata as md

    n = cells["n"]
    width = max(5, len(str(n)))
    obs_names = pd.Index([f"cell{i + 1:0{width}d}" for i in range(n)])
    ctype_cat = pd.Categorical(cells["ctype"], categories=list(spec.cell_types))
    lineage_levels = list(dict.fromkeys(cells["lineage"].tolist()))
    if spec.name == "pbmc":
        lineage_levels = ["myeloid", "lymphoid"]
    else:
        lineage_levels = list(spec.fates)
    n_batches = params["n_batches"]
    obs = pd.DataFrame(
        {
            "cell_type": ctype_cat,
            "pseudotime": cells["t"].astype(np.float64),
            "lineage": pd.Categorical(cells["lineage"], categories=lineage_levels),
            "batch": pd.Categorical(
                [f"batch{b + 1}" for b in cells["batch"]],
                categories=[f"batch{b + 1}" for b in range(n_batches)],
            ),
            "truth_boundary": cells["in_boundary"].astype(bool),
            "truth_rna_delay": cells["delay"].astype(np.float64),
        },
        index=obs_names,
    )
    genes = genome["genes"]
    rna_var = pd.DataFrame(
        {
            "chrom": genome["chrom"].astype(str),
            "start": genome["gstart"].astype(np.int64),
            "end": genome["gend"].astype(np.int64),
            "strand": genome["strand"].astype(str),
            "tss": genome["tss"].astype(np.int64),
        },
        index=pd.Index(genes.astype(str)),
    )
    atac_var = pd.DataFrame(
        {
            "chrom": genome["p_chrom"].astype(str),
            "start": genome["p_start"].astype(np.int64),
            "end": genome["p_end"].astype(np.int64),
            "gc": gc.astype(np.float64),
            "gc_bias": gc.astype(np.float64),
        },
        index=pd.Index(genome["peak_names"].astype(str)),
    )
    if sequences is not None:
        atac_var["sequence"] = sequences.astype(str)
    rna = ad.AnnData(X=rna_X, obs=obs.copy(), var=rna_var)
    atac = ad.AnnData(X=atac_X, obs=obs.copy(), var=atac_var)
    rna.layers["counts"] = rna_X.copy()
    atac.layers["counts"] = atac_X.copy()
    if truth_mean is not None:
        rna.layers["truth_mean"] = truth_mean
        atac.layers["truth_prob"] = truth_prob
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        with md.set_options(pull_on_update=False):
            mdata = md.MuData({"rna": rna, "atac": atac})
    for col in obs.columns:
        mdata.obs[col] = obs[col].values
    mdata.uns["truth"] = _truth_dict(spec, cells, genome, tf_pos, pchic, obs_names, params)
    return mdata


def _truth_dict(spec, cells, genome, tf_pos, pchic, obs_names, params) -> dict:
    genes, peaks = genome["genes"].astype(str), genome["peak_names"].astype(str)
    K = len(spec.programs)
    links = pd.DataFrame(
        {
            "gene": genes[genome["link_g"]],
            "peak": peaks[genome["link_p"]],
            "weight": genome["link_w"].astype(np.float64),
            "distance": genome["link_d"].astype(np.int64),
            "kind": genome["link_kind"].astype(str),
        }
    )
    links = links.sort_values(["gene", "distance"]).reset_index(drop=True)
    decoys = pd.DataFrame(
        {
            "gene": genes[genome["decoy_g"]],
            "peak": peaks[genome["decoy_p"]],
            "distance": genome["decoy_d"].astype(np.int64),
        }
    ).sort_values(["gene", "distance"]).reset_index(drop=True)
    motif_ids = genome["tf_motif_ids"]
    tf_peaks = np.flatnonzero(genome["tf_of_peak"] >= 0)
    tf_idx = genome["tf_of_peak"][tf_peaks]
    tf_names = np.array(genome["tf_names"], dtype=object)[tf_idx].astype(str)
    tf_peak = pd.DataFrame(
        {
            "tf": tf_names,
            "peak": peaks[tf_peaks],
            "motif_id": [motif_ids[t] for t in tf_names],
            "motif_name": [spec.tfs[t][2] for t in tf_names],
            "position": tf_pos["position"][tf_peaks] if tf_pos else np.full(len(tf_peaks), -1),
            "strand": tf_pos["strand"][tf_peaks].astype(str)
            if tf_pos
            else np.full(len(tf_peaks), "."),
        }
    )
    tfs = pd.DataFrame(
        {
            "tf": list(spec.tfs),
            "motif_id": [v[1] for v in spec.tfs.values()],
            "motif_name": [v[2] for v in spec.tfs.values()],
            "program": [v[0] for v in spec.tfs.values()],
        }
    )
    prog_names = np.array(
        [p.name for p in spec.programs] + ["gli3_like", "housekeeping"], dtype=object
    )
    program = genome["program"]
    drv = genome["gene_driver"]
    regulator = np.where(
        drv > K, np.array([""] + [""] * K + genome["tf_names"], dtype=object)[drv], ""
    )
    gene_program = pd.DataFrame(
        {
            "gene": genes,
            "program": prog_names[
                np.where(program >= 0, program, np.where(program == -2, K, K + 1))
            ].astype(str),
            "regulator": np.where(genome["role"] == "tf", "", regulator).astype(str),
            "role": genome["role"].astype(str),
        }
    )
    lag = genome["lag"]
    lagging = pd.DataFrame({"gene": genes[lag > 0], "lag": lag[lag > 0].astype(np.float64)})
    if spec.gli3:
        g3 = genome["gli3"]
        gli3_like = {
            "gene": str(genes[g3["gene"]]),
            "early_peaks": peaks[g3["early"]],
            "late_peaks": peaks[g3["late"]],
            "early_tfs": np.array(spec.gli3["early_tfs"], dtype=str),
            "late_tf": spec.gli3["late_tf"],
            "late_motif_id": spec.tfs[spec.gli3["late_tf"]][1],
            "early_motif_ids": np.array(
                [spec.tfs[t][1] for t in spec.gli3["early_tfs"]], dtype=str
            ),
            "lag": float(spec.gli3["lag"]),
        }
    else:
        gli3_like = {
            "gene": "",
            "early_peaks": np.array([], dtype=str),
            "late_peaks": np.array([], dtype=str),
            "early_tfs": np.array([], dtype=str),
            "late_tf": "",
            "late_motif_id": "",
            "early_motif_ids": np.array([], dtype=str),
            "lag": 0.0,
        }
    prog_index = {p.name: k for k, p in enumerate(spec.programs)}
    markers = {}
    role = genome["role"]
    for ct, progs in spec.marker_programs.items():
        ks = [prog_index[p] for p in progs]
        sel = np.isin(program, ks) & (role != "housekeeping")
        ordered = np.concatenate(
            [np.flatnonzero(sel & (role != "program")), np.flatnonzero(sel & (role == "program"))]
        )
        markers[ct] = genes[ordered]
    if spec.trajectory:
        start_cell = str(obs_names[int(np.argmin(cells["t"]))])
    else:
        start_cell = ""
    boundary = np.array(spec.boundary if spec.boundary else (np.nan, np.nan), dtype=np.float64)
    return {
        "preset": spec.name,
        "seed": int(params["seed"]),
        "size": params["size"],
        "params": dict(params),
        "window_bp": int(_WINDOW_BP),
        "links": links,
        "decoys": decoys,
        "tf_peak": tf_peak.reset_index(drop=True),
        "tfs": tfs,
        "gene_program": gene_program,
        "pchic": pchic,
        "lagging_genes": lagging,
        "gli3_like": gli3_like,
        "markers": markers,
        "start_cell": start_cell,
        "boundary": boundary,
        "boundary_delay": float(spec.boundary_delay if spec.boundary else 0.0),
    }
