"""Cells: pseudotime, fate, cell type, per-cell state and jitter, library size and depth; the driver matrix.

:func:`simulate_cells` draws everything per cell (from the cell stream); :func:`drivers` evaluates the
programs and TF activities of a scenario for given cells at given pseudotimes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import sigmoid
from ._scenarios import Program, Scenario

__all__ = ["drivers", "program_profile", "rna_boundary_delay", "simulate_cells"]


def program_profile(prog: Program, t: np.ndarray, fate: np.ndarray, ctype: np.ndarray, state: np.ndarray):
    """Activity in [0, 1] of one program for cells at pseudotime ``t`` (vectorised).

    Parameters
    ----------
    prog
        The program.
    t, fate, ctype, state
        Per cell: pseudotime, fate, cell type and the program's per-cell state level.
    """
    if prog.kind == "types":
        return np.isin(ctype, prog.types).astype(np.float32)
    if prog.kind == "state":
        return state
    if prog.kind == "sig_up":
        out = sigmoid((t - prog.t0) / prog.w)
    elif prog.kind == "sig_down":
        out = 1.0 - sigmoid((t - prog.t0) / prog.w)
    elif prog.kind == "bump":
        out = sigmoid((t - prog.t0) / prog.w) * (1.0 - sigmoid((t - prog.t1) / prog.w))
    else:  # pragma: no cover - specs are internal
        raise ValueError(prog.kind)
    if prog.fate is not None:
        out = out * (fate == prog.fate)
    return out.astype(np.float32)


def rna_boundary_delay(t: np.ndarray, preset: Scenario) -> np.ndarray:
    """Extra RNA delay (pseudotime units) inside the planted maturation boundary, 0 elsewhere.

    Parameters
    ----------
    t
        Pseudotime per cell.
    preset
        The scenario (its ``boundary`` and ``boundary_delay``).
    """
    if preset.boundary is None or not preset.trajectory:
        return np.zeros_like(t)
    a, b = preset.boundary
    s = 0.03
    return preset.boundary_delay * sigmoid((t - a) / s) * (1.0 - sigmoid((t - b) / s))



def simulate_cells(
    spec: Scenario, n: int, n_batches: int, lib_median: float, rng: np.random.Generator
) -> dict:
    """Per-cell quantities of ``n`` cells of scenario ``spec``.

    A dict: ``n``, and per cell ``t`` (pseudotime; NaN for discrete scenarios), ``fate``, ``ctype``,
    ``lineage``, ``state`` (per-program state levels), ``jit_mult``/``jit_add`` (per-driver jitter),
    ``batch``, ``lib`` (library size), ``depth`` (ATAC depth), ``delay`` (extra RNA delay) and
    ``in_boundary``; ``tf_offset`` is per TF.

    Parameters
    ----------
    spec
        The scenario.
    n, n_batches
        Number of cells and of batches.
    lib_median
        Median RNA library size.
    rng
        The cell stream.
    """
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
    delay = rna_boundary_delay(np.nan_to_num(t), spec) if spec.trajectory else np.zeros(n)
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



def drivers(spec: Scenario, cells: dict, idx: np.ndarray, t: np.ndarray | None) -> np.ndarray:
    """Driver matrix (cells x (1 + programs + TFs)) for cells ``idx`` evaluated at pseudotime ``t``.

    Column 0 is a constant (housekeeping), then one column per program, then one per TF (the TF's
    activity, which is also its expression program). Per-cell jitter is the same at every ``t``.

    Parameters
    ----------
    spec
        The scenario.
    cells
        Output of :func:`simulate_cells`.
    idx
        Indices of the cells.
    t
        Their pseudotime (``None``: discrete scenario).
    """
    fate, ctype = cells["fate"][idx], cells["ctype"][idx]
    state = cells["state"][idx]
    tt = np.zeros(len(idx)) if t is None else t
    cols = [np.ones(len(idx), dtype=np.float32)]
    prog_index = {p.name: k for k, p in enumerate(spec.programs)}
    for k, prog in enumerate(spec.programs):
        cols.append(program_profile(prog, tt, fate, ctype, state[:, k]))
    for j, (prog_name, _, _) in enumerate(spec.tfs.values()):
        prog = spec.programs[prog_index[prog_name]]
        tj = tt + cells["tf_offset"][j] if spec.trajectory else tt
        cols.append(program_profile(prog, tj, fate, ctype, state[:, prog_index[prog_name]]))
    D = np.stack(cols, axis=1).astype(np.float32)
    D = D * cells["jit_mult"][idx] + cells["jit_add"][idx]
    D[:, 0] = 1.0
    return np.clip(D, 0.0, 1.0, out=D)
