"""``simulate_multiome``: parameter validation, the random streams, and the order of the simulation steps."""

from __future__ import annotations

import numpy as np

from ..._utils import AttuneInputError
from ._cells import simulate_cells
from ._common import SIZES, TRUTH_LAYER_MAX_ENTRIES
from ._counts import model_parameters, simulate_counts
from ._genome import peak_gc_targets, simulate_genome
from ._links import draw_links, peak_regulation
from ._mudata import assemble_mudata
from ._pchic import simulate_pchic
from ._scenarios import get_scenario
from ._sequences import jaspar_pfm, simulate_sequences

__all__ = ["simulate_multiome"]


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
    spec = get_scenario(preset)  # names the parameter for an unknown preset; checks the scenario table
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
    n_named = len(spec.named) + len(spec.tfs) + (1 if spec.gli3 else 0)
    if n_genes < n_named + 50:
        raise AttuneInputError(
            f"parameter n_genes must be at least {n_named + 50} for preset {preset!r}, got {n_genes}"
        )
    if motifs:
        for _, motif_id, _ in spec.tfs.values():
            jaspar_pfm(motif_id)  # fails early with a clear ImportError
    if truth_layers is None:
        truth_layers = n_cells * n_peaks <= TRUTH_LAYER_MAX_ENTRIES

    streams = np.random.SeedSequence(seed).spawn(6)
    rng_cells, rng_genome, rng_counts, rng_seq, rng_pchic, rng_model = (
        np.random.default_rng(s) for s in streams
    )

    # median RNA library ~2 UMIs per simulated gene (like counts restricted to ~HVGs)
    cells = simulate_cells(spec, n_cells, n_batches, 2.0 * n_genes, rng_cells)
    # the genome stream, in this order: genes/chromosomes/peaks, links, peak regulation, GC targets
    genome = simulate_genome(spec, n_genes, n_peaks, rng_genome)
    genome.update(draw_links(genome, rng_genome))
    genome.update(peak_regulation(spec, genome, link_noise, rng_genome))
    genome.update(peak_gc_targets(genome, rng_genome))
    model = model_parameters(spec, genome, n_batches, rng_model)
    rna_counts, atac_counts, truth_mean, truth_prob = simulate_counts(
        spec, cells, genome, model, truth_layers, rng_counts, link_strength
    )
    if motifs:
        sequences, gc, tf_pos = simulate_sequences(genome, rng_seq)
    else:
        sequences, gc = None, genome["peak_gc_target"].copy()
        tf_pos = None
    pchic = simulate_pchic(spec, genome, pchic_noise, rng_pchic)
    return assemble_mudata(
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
