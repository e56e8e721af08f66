"""The simulator's scenarios (presets) as data: cell types, proportions, programs, lineages, named genes.

Each scenario is one frozen :class:`Scenario` table; the generative code reads only its fields, so
recalibrating or adding a scenario means editing or adding a table here (then registering it in
:data:`SIMULATOR_PRESETS`), never adding a code path. :func:`validate_scenario` checks a table's
internal consistency before a simulation uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from ..._utils import AttuneInputError
from ._common import PCHIC_CELL_TYPES

__all__ = ["PROGRAM_KINDS", "SIMULATOR_PRESETS", "Program", "Scenario", "get_scenario", "validate_scenario"]

#: kinds of expression program (see :class:`Program`).
PROGRAM_KINDS = ("types", "sig_up", "sig_down", "bump", "state")


@dataclass(frozen=True)
class Program:
    """A gene-expression program: its activity as a function of cell state.

    Parameters
    ----------
    name
        Program name (unique within a scenario).
    kind
        ``"types"`` (1 in member cell types), ``"sig_up"``/``"sig_down"`` (sigmoid along pseudotime at
        ``t0`` with width ``w``), ``"bump"`` (on at ``t0``, off at ``t1``), ``"state"`` (per-cell random
        level, independent of pseudotime).
    types
        Member cell types of a ``"types"`` program.
    t0, t1, w
        Onset, offset and width (pseudotime units) of trajectory programs.
    fate
        Restricts a trajectory program to one branch (fate); ``None`` for all cells.
    weight
        Relative share of the synthetic genes assigned to this program.
    """

    name: str
    kind: str
    types: tuple[str, ...] = ()
    t0: float = 0.0
    t1: float = 1.0
    w: float = 0.05
    fate: str | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class Scenario:
    """One simulator scenario (preset) as a table of biology.

    Parameters
    ----------
    name
        Scenario name (``simulate_multiome(preset=name)``).
    cell_types
        Cell types, in the order of the ``cell_type`` categories.
    programs
        Expression programs (:class:`Program`).
    tfs
        TFs with a JASPAR 2022 motif: gene -> (program, matrix id, JASPAR name).
    named
        Other named genes: gene -> program (``""`` = housekeeping).
    marker_programs
        Cell type -> programs whose genes are the type's markers.
    lineage_of
        Discrete scenarios: cell type -> lineage (``obs["lineage"]``; categories in first-seen order).
    type_props
        Discrete scenarios: proportion of each cell type (sums to 1).
    trajectory
        Cells lie on a pseudotime trajectory (``pseudotime`` in [0, 1]) instead of discrete types.
    fates, fate_props
        Trajectory scenarios: the branches (also cell types and lineages) and their proportions.
    branch_t
        Pseudotime of the branch point.
    type_bounds
        ``(upper t, cell type)`` pairs, increasing: the cell type before the branch; later cells take
        their fate's name.
    lagging_named
        Named genes whose expression lags their peaks: gene -> lag (pseudotime units).
    n_lagging_synthetic, lagging_programs, lag_values
        Number of synthetic lagging genes, the programs they are drawn from, and the lags drawn.
    gli3
        The Gli3-like gene (``gene``, ``early_tfs``, ``late_tf``, ``n_early``, ``n_late``, ``lag``), or
        ``None``.
    boundary, boundary_delay
        Pseudotime interval in which RNA lags ATAC, and its typical extra delay; ``None`` / 0 for none.
    pchic_map
        PCHi-C (Javierre 2016) cell-type column -> simulated cell types whose active genes it reflects.
    """

    name: str
    cell_types: tuple[str, ...]
    programs: tuple[Program, ...]
    tfs: dict[str, tuple[str, str, str]]
    named: dict[str, str]
    marker_programs: dict[str, tuple[str, ...]]
    lineage_of: dict[str, str] = field(default_factory=dict)
    type_props: tuple[float, ...] = ()
    trajectory: bool = False
    fates: tuple[str, ...] = ()
    fate_props: tuple[float, ...] = ()
    branch_t: float = 1.0
    type_bounds: tuple[tuple[float, str], ...] = ()
    lagging_named: dict[str, float] = field(default_factory=dict)
    n_lagging_synthetic: int = 0
    lagging_programs: tuple[str, ...] = ()
    lag_values: tuple[float, ...] = (0.1, 0.15)
    gli3: dict[str, Any] | None = None
    boundary: tuple[float, float] | None = None
    boundary_delay: float = 0.0
    pchic_map: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def program_index(self) -> dict[str, int]:
        """Program name -> its index in :attr:`programs`."""
        return {p.name: k for k, p in enumerate(self.programs)}

    def lineage_categories(self) -> list[str]:
        """Categories of ``obs["lineage"]``: the fates (trajectory) or the lineages in first-seen order."""
        if self.trajectory:
            return list(self.fates)
        return list(dict.fromkeys(self.lineage_of[t] for t in self.cell_types))


# --------------------------------------------------------------------------------------------
# pbmc: 8 discrete PBMC cell types
# --------------------------------------------------------------------------------------------
_PBMC_TYPES = ("CD14 Mono", "CD16 Mono", "cDC", "pDC", "B naive", "CD4 T", "CD8 T", "NK")

PBMC = Scenario(
    name="pbmc",
    cell_types=_PBMC_TYPES,
    programs=(
        Program("CD14 Mono", "types", ("CD14 Mono",)),
        Program("CD16 Mono", "types", ("CD16 Mono",)),
        Program("cDC", "types", ("cDC",)),
        Program("pDC", "types", ("pDC",)),
        Program("B naive", "types", ("B naive",)),
        Program("CD4 T", "types", ("CD4 T",)),
        Program("CD8 T", "types", ("CD8 T",)),
        Program("NK", "types", ("NK",)),
        Program("myeloid", "types", ("CD14 Mono", "CD16 Mono", "cDC")),
        Program("monocyte", "types", ("CD14 Mono", "CD16 Mono")),
        Program("T", "types", ("CD4 T", "CD8 T")),
        Program("cytotoxic", "types", ("CD8 T", "NK")),
        Program("lymphoid", "types", ("B naive", "CD4 T", "CD8 T", "NK")),
        Program("antigen presentation", "types", ("CD14 Mono", "CD16 Mono", "cDC", "pDC", "B naive")),
        Program("interferon", "state", weight=0.5),
        Program("activation", "state", weight=0.5),
    ),
    tfs={
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
    },
    named={
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
    },  # fmt: skip
    marker_programs={t: (t,) for t in _PBMC_TYPES},
    lineage_of={
        "CD14 Mono": "myeloid", "CD16 Mono": "myeloid", "cDC": "myeloid", "pDC": "myeloid",
        "B naive": "lymphoid", "CD4 T": "lymphoid", "CD8 T": "lymphoid", "NK": "lymphoid",
    },  # fmt: skip
    type_props=(0.25, 0.07, 0.04, 0.04, 0.12, 0.26, 0.13, 0.09),
    pchic_map={
        "Mon": ("CD14 Mono", "CD16 Mono"), "Mac0": ("CD14 Mono",), "Mac1": ("CD14 Mono",),
        "Mac2": ("CD14 Mono",), "Neu": ("CD14 Mono",), "nCD4": ("CD4 T",), "tCD4": ("CD4 T",),
        "aCD4": ("CD4 T",), "naCD4": ("CD4 T",), "nCD8": ("CD8 T",), "tCD8": ("CD8 T",),
        "nB": ("B naive",), "tB": ("B naive",),
    },  # fmt: skip
)

# --------------------------------------------------------------------------------------------
# skin: SHARE-seq hair follicle, TAC-1 -> TAC-2 -> IRS / Medulla / Hair Shaft
# --------------------------------------------------------------------------------------------
_SKIN_FATES = ("IRS", "Medulla", "Hair Shaft")

SKIN = Scenario(
    name="skin",
    cell_types=("TAC-1", "TAC-2", *_SKIN_FATES),
    programs=(
        Program("TAC-1", "sig_down", t0=0.16, w=0.035),
        Program("TAC-2", "bump", t0=0.12, t1=0.40, w=0.03),
        Program("early", "sig_down", t0=0.45, w=0.05),
        Program("late", "sig_up", t0=0.62, w=0.05),
        Program("IRS", "sig_up", t0=0.42, w=0.04, fate="IRS"),
        Program("Medulla", "sig_up", t0=0.42, w=0.04, fate="Medulla"),
        Program("Hair Shaft", "sig_up", t0=0.42, w=0.04, fate="Hair Shaft"),
        Program("IRS late", "sig_up", t0=0.72, w=0.05, fate="IRS", weight=0.5),
        Program("Medulla late", "sig_up", t0=0.72, w=0.05, fate="Medulla", weight=0.5),
        Program("Hair Shaft late", "sig_up", t0=0.72, w=0.05, fate="Hair Shaft", weight=0.5),
        Program("stress", "state", weight=0.5),
    ),
    tfs={
        "Nfib": ("early", "MA1643.1", "NFIB"),
        "Sox5": ("early", "MA0087.2", "Sox5"),
        "Lef1": ("late", "MA0768.2", "Lef1"),
        "Foxp1": ("late", "MA0481.3", "FOXP1"),
        "Gata3": ("IRS", "MA0037.4", "Gata3"),
        "Msx2": ("Medulla", "MA0708.2", "MSX2"),
        "Hoxc13": ("Hair Shaft", "MA0907.1", "HOXC13"),
    },
    named={
        "Mki67": "TAC-1", "Top2a": "TAC-1", "Ccnb1": "TAC-1",
        "Shh": "TAC-2", "Basp1": "TAC-2", "Sema4a": "TAC-2", "Myh14": "TAC-2",
        "Eda": "early", "Ntn1": "early", "Tspan18": "early",
        "Dach1": "late", "Prr5l": "late", "Bmper": "late", "Chd3": "late",
        "Krt71": "IRS", "Krt25": "IRS", "Hexb": "IRS", "Arl15": "IRS late",
        "Krt81": "Medulla", "Styx": "Medulla late",
        "Krt35": "Hair Shaft", "Krt31": "Hair Shaft", "Atp8b1": "Hair Shaft late",
        "Actb": "", "Gapdh": "",
    },  # fmt: skip
    marker_programs={
        "TAC-1": ("TAC-1",),
        "TAC-2": ("TAC-2",),
        "IRS": ("IRS", "IRS late"),
        "Medulla": ("Medulla", "Medulla late"),
        "Hair Shaft": ("Hair Shaft", "Hair Shaft late"),
    },
    trajectory=True,
    fates=_SKIN_FATES,
    fate_props=(0.35, 0.30, 0.35),
    branch_t=0.40,
    type_bounds=((0.15, "TAC-1"), (0.40, "TAC-2")),
    lagging_named={"Gli3": 0.12},
    n_lagging_synthetic=8,
    lagging_programs=("early", "late", "IRS", "Medulla", "Hair Shaft"),
    gli3={"gene": "Gli3", "early_tfs": ("Nfib", "Sox5"), "late_tf": "Lef1", "n_early": 6, "n_late": 6, "lag": 0.12},
)

# --------------------------------------------------------------------------------------------
# cortex: RG -> IPC -> Neuron immature -> Neuron mature, with a maturation boundary
# --------------------------------------------------------------------------------------------
CORTEX = Scenario(
    name="cortex",
    cell_types=("RG", "IPC", "Neuron immature", "Neuron mature"),
    programs=(
        Program("RG", "sig_down", t0=0.27, w=0.04),
        Program("IPC", "bump", t0=0.20, t1=0.47, w=0.03),
        Program("Neuron immature", "bump", t0=0.42, t1=0.78, w=0.03),
        Program("neuronal", "sig_up", t0=0.45, w=0.05),
        Program("Neuron mature", "sig_up", t0=0.71, w=0.03),
        Program("cycling", "state", weight=0.5),
    ),
    tfs={
        "PAX6": ("RG", "MA0069.1", "PAX6"),
        "SOX2": ("RG", "MA0143.4", "SOX2"),
        "HES1": ("RG", "MA1099.2", "HES1"),
        "EOMES": ("IPC", "MA0800.1", "EOMES"),
        "NEUROG2": ("IPC", "MA0669.1", "NEUROG2"),
        "NEUROD2": ("Neuron immature", "MA0668.2", "Neurod2"),
        "MEF2C": ("neuronal", "MA0497.1", "MEF2C"),
        "TBR1": ("Neuron mature", "MA0802.1", "TBR1"),
        "LEF1": ("Neuron mature", "MA0768.2", "Lef1"),
    },
    named={
        "VIM": "RG", "FABP7": "RG", "SLC1A3": "RG",
        "PPP1R17": "IPC", "NHLH1": "IPC",
        "NEUROD6": "Neuron immature", "DCX": "Neuron immature", "STMN2": "Neuron immature",
        "CNTNAP2": "neuronal", "DCC": "neuronal", "SLIT2": "neuronal", "KCND2": "neuronal",
        "NRXN1": "neuronal",
        "SATB2": "Neuron mature", "SLC17A7": "Neuron mature", "KCNH8": "Neuron mature",
        "SLC24A2": "Neuron mature",
        "MKI67": "cycling", "TOP2A": "cycling",
        "ACTB": "", "GAPDH": "",
    },  # fmt: skip
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
    type_bounds=((0.25, "RG"), (0.45, "IPC"), (0.70, "Neuron immature"), (1.01, "Neuron mature")),
    lagging_named={"GLI3": 0.10, "CNTNAP2": 0.10, "DCC": 0.10, "SLIT2": 0.15, "KCND2": 0.15},
    n_lagging_synthetic=4,
    lagging_programs=("neuronal", "Neuron mature"),
    gli3={"gene": "GLI3", "early_tfs": ("SOX2", "PAX6"), "late_tf": "LEF1", "n_early": 6, "n_late": 6, "lag": 0.10},
    boundary=(0.62, 0.80),
    boundary_delay=0.15,
)

#: The simulator's scenarios by name (``simulate_multiome(preset=...)``); read-only.
SIMULATOR_PRESETS: MappingProxyType[str, Scenario] = MappingProxyType({"pbmc": PBMC, "skin": SKIN, "cortex": CORTEX})


def _fail(scenario: Scenario, field_name: str, message: str) -> None:
    raise AttuneInputError(f"simulator scenario {scenario.name!r}: field {field_name} {message}")


def validate_scenario(scenario: Scenario) -> Scenario:
    """Check that a scenario table is self-consistent; return it unchanged.

    Parameters
    ----------
    scenario
        The :class:`Scenario` to check.

    Returns
    -------
    Scenario
        ``scenario`` itself.

    Raises
    ------
    AttuneInputError
        Naming the scenario and the field: proportions that do not match the cell types / fates or do
        not sum to 1, an unknown program kind, a reference to an undefined program, cell type, fate,
        TF, gene or PCHi-C column, or unordered type bounds.
    """
    s = scenario
    if not isinstance(s, Scenario):
        raise AttuneInputError(f"a simulator scenario must be a Scenario, got {type(s).__name__}")
    types, progs = set(s.cell_types), s.program_index()
    if len(types) != len(s.cell_types) or not s.cell_types:
        _fail(s, "cell_types", f"must list distinct cell types, got {s.cell_types!r}")
    if len(progs) != len(s.programs):
        _fail(s, "programs", "has duplicate program names")
    for p in s.programs:
        if p.kind not in PROGRAM_KINDS:
            _fail(s, "programs", f"program {p.name!r} has kind {p.kind!r}, not one of {PROGRAM_KINDS}")
        if p.kind == "types" and (not p.types or set(p.types) - types):
            _fail(s, "programs", f"program {p.name!r} names unknown cell types {sorted(set(p.types) - types)}")
        if p.fate is not None and p.fate not in s.fates:
            _fail(s, "programs", f"program {p.name!r} is restricted to unknown fate {p.fate!r}")
        if not p.weight > 0:
            _fail(s, "programs", f"program {p.name!r} must have a positive weight, got {p.weight}")

    def check_props(name: str, props: tuple[float, ...], levels: tuple[str, ...]) -> None:
        if len(props) != len(levels):
            _fail(s, name, f"has {len(props)} proportions for {len(levels)} levels {list(levels)}")
        arr = np.asarray(props, dtype=float)
        if (arr < 0).any() or not np.isclose(arr.sum(), 1.0, atol=1e-6):
            _fail(s, name, f"must be non-negative and sum to 1, got {tuple(props)} (sum {arr.sum():g})")

    if s.trajectory:
        if not s.fates or len(set(s.fates)) != len(s.fates):
            _fail(s, "fates", f"must list distinct fates (lineages), got {s.fates!r}")
        check_props("fate_props", s.fate_props, s.fates)
        uppers = [u for u, _ in s.type_bounds]
        if uppers != sorted(uppers) or {t for _, t in s.type_bounds} - types:
            _fail(s, "type_bounds", f"must be increasing (upper t, cell type) pairs, got {s.type_bounds!r}")
        # cells past the last bound take their fate's name as cell type
        fate_types = set(s.fates) if not uppers or uppers[-1] <= 1.0 else set()
        if fate_types - types:
            _fail(s, "fates", f"name cell types of late cells, but {sorted(fate_types - types)} are not in cell_types")
        reached = {t for _, t in s.type_bounds} | fate_types
        if types - reached:
            _fail(s, "cell_types", f"lists types that no cell can take: {sorted(types - reached)}")
    else:
        check_props("type_props", s.type_props, s.cell_types)
        if set(s.lineage_of) != types:
            missing = sorted(types ^ set(s.lineage_of))
            _fail(s, "lineage_of", f"must give a lineage for exactly the cell types; mismatched: {missing}")
    for tf, (prog, motif_id, _) in s.tfs.items():
        if prog not in progs:
            _fail(s, "tfs", f"TF {tf!r} names unknown program {prog!r}")
        if not isinstance(motif_id, str) or not motif_id.startswith("MA"):
            _fail(s, "tfs", f"TF {tf!r} needs a JASPAR matrix id (MA...), got {motif_id!r}")
    for gene, prog in s.named.items():
        if prog and prog not in progs:
            _fail(s, "named", f"gene {gene!r} names unknown program {prog!r}")
        if gene in s.tfs:
            _fail(s, "named", f"gene {gene!r} is also a TF")
    for ct, mprogs in s.marker_programs.items():
        if ct not in types:
            _fail(s, "marker_programs", f"names unknown cell type {ct!r}")
        if set(mprogs) - set(progs):
            _fail(s, "marker_programs", f"cell type {ct!r} names unknown programs {sorted(set(mprogs) - set(progs))}")
    if set(s.lagging_programs) - set(progs):
        _fail(s, "lagging_programs", f"names unknown programs {sorted(set(s.lagging_programs) - set(progs))}")
    gli3_gene = s.gli3["gene"] if s.gli3 else None
    genes = set(s.tfs) | set(s.named) | ({gli3_gene} if gli3_gene else set())
    if set(s.lagging_named) - genes:
        unknown = sorted(set(s.lagging_named) - genes)
        _fail(s, "lagging_named", f"names genes that are not named in the scenario: {unknown}")
    if s.gli3 is not None:
        missing = {"gene", "early_tfs", "late_tf", "n_early", "n_late", "lag"} - set(s.gli3)
        if missing:
            _fail(s, "gli3", f"lacks keys {sorted(missing)}")
        if gli3_gene in s.tfs or gli3_gene in s.named:
            _fail(s, "gli3", f"gene {gli3_gene!r} is also a TF or named gene")
        bad_tfs = [t for t in (*s.gli3["early_tfs"], s.gli3["late_tf"]) if t not in s.tfs]
        if bad_tfs or not s.gli3["early_tfs"]:
            _fail(s, "gli3", f"needs early and late TFs of the scenario; unknown: {bad_tfs}")
    if s.boundary is not None and not (s.trajectory and 0.0 <= s.boundary[0] < s.boundary[1] <= 1.0):
        _fail(s, "boundary", f"must be an interval [a, b] of pseudotime in a trajectory scenario, got {s.boundary!r}")
    if set(s.pchic_map) - set(PCHIC_CELL_TYPES):
        _fail(s, "pchic_map", f"names unknown PCHi-C columns {sorted(set(s.pchic_map) - set(PCHIC_CELL_TYPES))}")
    for col, cts in s.pchic_map.items():
        if set(cts) - types:
            _fail(s, "pchic_map", f"column {col!r} names unknown cell types {sorted(set(cts) - types)}")
    return s


def get_scenario(preset: str) -> Scenario:
    """The validated scenario registered as ``preset`` in :data:`SIMULATOR_PRESETS`.

    Parameters
    ----------
    preset
        A key of :data:`SIMULATOR_PRESETS`.

    Returns
    -------
    Scenario
        The validated scenario.

    Raises
    ------
    AttuneInputError
        For an unknown ``preset`` (naming the parameter) or an inconsistent scenario table.
    """
    if not isinstance(preset, str) or preset not in SIMULATOR_PRESETS:
        raise AttuneInputError(f"parameter preset must be one of {sorted(SIMULATOR_PRESETS)}, got {preset!r}")
    return validate_scenario(SIMULATOR_PRESETS[preset])
