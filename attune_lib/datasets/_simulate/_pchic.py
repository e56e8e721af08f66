"""The PCHi-C-like table: restriction fragments, detected true links, false positives and CHiCAGO-like
scores per Javierre 2016 cell type, in the format of ``PCHiC_peak_matrix_cutoff5.tsv``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import PCHIC_CELL_TYPES
from ._scenarios import Scenario

__all__ = ["simulate_pchic"]


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



def simulate_pchic(spec: Scenario, genome: dict, noise: float, rng) -> pd.DataFrame:
    """PCHi-C-like interactions of the genome's genes (one row per bait and other end).

    Parameters
    ----------
    spec
        The scenario (``pchic_map``, ``programs``).
    genome
        The genome dict (genes, peaks, links, programs).
    noise
        ``pchic_noise``: false-negative probability and false-positive fraction.
    rng
        The PCHi-C stream.
    """
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
