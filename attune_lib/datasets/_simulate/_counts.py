"""Counts: per-gene / per-peak model parameters, peak opening probabilities, and the RNA negative-binomial
and ATAC 0/1/2 counts with the noise-free truth layers (causal link model, see ``docs/simulator.md``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..._utils import as_csr, progress
from ._cells import drivers
from ._common import CHUNK_ENTRIES, sigmoid
from ._scenarios import Scenario

__all__ = ["model_parameters", "peak_state", "simulate_counts"]


def model_parameters(spec: Scenario, genome: dict, n_batches: int, rng) -> dict:
    """Expression (``b``, ``beta``, ``theta``), link weights ``W``, ATAC detection and batch effects.

    Parameters
    ----------
    spec
        The scenario.
    genome
        The genome dict (genes, peaks, links, GC targets).
    n_batches
        Number of batches.
    rng
        The model stream.
    """
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
    q1 = sigmoid(lo + gc_effect + amp - 0.45)
    q0 = sigmoid(lo + gc_effect - 0.45)
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



def peak_state(D: np.ndarray, genome: dict, peaks: slice | np.ndarray) -> np.ndarray:
    """Accessibility state in [0, 1] of ``peaks`` given drivers ``D`` (cells x drivers).

    Parameters
    ----------
    D
        Driver matrix (:func:`_cells.drivers`).
    genome
        The genome dict (``d1``, ``d2``, ``eta``, ``basal``).
    peaks
        The peaks to evaluate.
    """
    d1, d2 = genome["d1"][peaks], genome["d2"][peaks]
    eta, basal = genome["eta"][peaks], genome["basal"][peaks]
    S = D[:, d1] * (1.0 - eta)
    S += D[:, d2] * eta
    S *= 1.0 - basal
    S += basal
    return S


def simulate_counts(
    spec: Scenario, cells: dict, genome: dict, model: dict, truth_layers: bool, rng, link_strength: float = 1.0
):
    """Counts of both modalities and the noise-free layers.

    Causal link model: every peak of every cell is *open* or *closed*. A persistent uniform draw
    ``U[c, p]`` (the same at every pseudotime) decides it: open at time ``t`` when ``U < S(t)``, where
    ``S`` is the peak's cell-state opening probability (:func:`peak_state`). ATAC reads the open state
    now (detection ``q1`` when open, background ``q0`` when closed); a gene reads the open states of
    its linked peaks at its RNA time (lags), mixed with their expected state by ``link_strength``.
    Decoy peaks share ``S`` with the gene's linked peaks but have their own ``U``, so only true links
    carry the cell-to-cell open/closed trace into expression.

    Parameters
    ----------
    spec
        The scenario.
    cells
        Output of ``_cells.simulate_cells``.
    genome
        The genome dict.
    model
        Output of :func:`model_parameters`.
    truth_layers
        Also return the dense noise-free layers.
    rng
        The count stream.
    link_strength
        Mix of the sampled open states (1) and their expectation (0) in a gene's drive.
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
    chunk = int(max(64, CHUNK_ENTRIES // max(P, 1)))
    starts = range(0, n, chunk)
    rna_blocks, atac_blocks = [], []
    for s0 in progress(starts, enabled=len(starts) > 4, desc="simulate_multiome"):
        idx = np.arange(s0, min(s0 + chunk, n))
        t = cells["t"][idx] if spec.trajectory else None
        D = drivers(spec, cells, idx, t)
        S = peak_state(D, genome, slice(None))
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
            p_obs = sigmoid(logit).astype(np.float32)
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
                Dg = D if same else drivers(spec, cells, idx, t_rna)
                Sg = S[:, rows] if Dg is D else peak_state(Dg, genome, rows)
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
