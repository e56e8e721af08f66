"""Peak DNA sequences at their GC targets, with JASPAR 2022 motif instances planted in TF-regulated peaks."""

from __future__ import annotations

import functools
import warnings

import numpy as np

from ..._utils import AttuneInputError

__all__ = ["BASES", "jaspar_pfm", "simulate_sequences"]

BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


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
def jaspar_pfm(matrix_id: str) -> np.ndarray:
    """Position frequency matrix (4 x L, rows A, C, G, T; columns sum to 1) from JASPAR 2022.

    Parameters
    ----------
    matrix_id
        JASPAR matrix id, e.g. ``"MA0768.2"`` (LEF1).
    """
    db = _jaspar_db()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        motif = db.fetch_motif_by_id(matrix_id)
    if motif is None:  # pragma: no cover - ids are fixed in the presets
        raise AttuneInputError(f"JASPAR 2022 has no motif {matrix_id!r}")
    counts = np.array([motif.counts[b] for b in "ACGT"], dtype=float) + 0.25
    return counts / counts.sum(axis=0, keepdims=True)



def simulate_sequences(genome: dict, rng) -> tuple[np.ndarray, np.ndarray, dict]:
    """Random peak sequences at the target GC content, with one motif instance planted per
    TF-regulated peak. Returns sequences, their exact GC fraction, and motif positions.

    Parameters
    ----------
    genome
        The genome dict (peaks, ``peak_gc_target``, ``tf_of_peak``, TF motif ids).
    rng
        The sequence stream.
    """
    P = len(genome["peak_names"])
    lengths = (genome["p_end"] - genome["p_start"]).astype(int)
    L = int(lengths.max())
    gc = genome["peak_gc_target"].astype(np.float32)[:, None]
    u = rng.random((P, L), dtype=np.float32)
    # u < gc/2 -> G, < gc -> C, < gc + (1-gc)/2 -> A, else T
    code = np.where(u < gc / 2, 2, np.where(u < gc, 1, np.where(u < gc + (1 - gc) / 2, 0, 3)))
    arr = BASES[code]
    del u, code
    tf_of_peak = genome["tf_of_peak"]
    position = np.full(P, -1, dtype=np.int64)
    strand = np.full(P, ".", dtype=object)
    comp = np.frombuffer(b"TGCA", dtype=np.uint8)  # complement of A, C, G, T
    for j, tf in enumerate(genome["tf_names"]):
        peaks = np.flatnonzero(tf_of_peak == j)
        if len(peaks) == 0:
            continue
        pfm = jaspar_pfm(genome["tf_motif_ids"][tf])
        m = pfm.shape[1]
        # consensus-ish instances: sample from the sharpened PFM (p^3, renormalised)
        sharp = pfm**3
        sharp /= sharp.sum(axis=0, keepdims=True)
        cum = np.cumsum(sharp, axis=0)  # 4 x m
        r = rng.random((len(peaks), m))
        letters = (r[:, :, None] > cum.T[None, :, :]).sum(axis=2).clip(0, 3)  # n x m codes
        inst = BASES[letters]
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
