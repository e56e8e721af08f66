"""Regulation on the genome: true peak -> gene links (promoter, distal, shared, Gli3-like groups), decoys,
each peak's drivers, basal accessibility and noise, and the TF -> peak (motif) assignment.
"""

from __future__ import annotations

import numpy as np

from ._scenarios import Scenario

__all__ = ["draw_links", "peak_regulation"]


def draw_links(genome: dict, rng) -> dict:
    """True links: ``link_p`` (peak), ``link_g`` (gene), ``link_w`` (weight), ``link_kind``, ``link_d`` (bp).

    Parameters
    ----------
    genome
        Output of ``_genome.simulate_genome``.
    rng
        The genome stream.
    """
    p_kind, p_gene, p_group, p_mid = genome["p_kind"], genome["p_gene"], genome["p_group"], genome["p_mid"]
    tss, chrom, p_chrom = genome["tss"], genome["chrom"], genome["p_chrom"]
    G = len(genome["genes"])
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
    return {"link_p": link_p, "link_g": link_g, "link_w": link_w, "link_kind": link_kind, "link_d": link_d}


def peak_regulation(spec: Scenario, genome: dict, link_noise: float, rng) -> dict:
    """Drivers of each peak (``d1`` own, ``d2`` random, mixed by ``eta``), basal accessibility, decoys,
    the Gli3-like peak groups and the TF whose motif each peak carries (``tf_of_peak``, -1 for none).

    Parameters
    ----------
    spec
        The scenario.
    genome
        Output of ``_genome.simulate_genome`` updated with :func:`draw_links`.
    link_noise
        Mean fraction of a peak's accessibility that follows an unrelated driver.
    rng
        The genome stream.
    """
    K = len(spec.programs)
    tf_names = list(spec.tfs)
    tf_col = {name: 1 + K + j for j, name in enumerate(tf_names)}
    genes, role, gene_driver = genome["genes"], genome["role"], genome["gene_driver"]
    p_kind, p_gene, p_group, p_mid = genome["p_kind"], genome["p_gene"], genome["p_group"], genome["p_mid"]
    tss, link_p, gli3_g = genome["tss"], genome["link_p"], genome["gli3_gene"]
    P = len(p_kind)
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
    return {
        "decoy_p": decoy_p,
        "decoy_g": p_gene[decoy_p],
        "decoy_d": np.abs(p_mid[decoy_p] - tss[p_gene[decoy_p]]),
        "d1": d1,
        "d2": d2,
        "eta": eta.astype(np.float32),
        "basal": basal.astype(np.float32),
        "tf_of_peak": tf_of_peak,
        "tf_names": tf_names,
        "gli3": gli3_info,
        "n_drivers": n_drv,
        "tf_motif_ids": {name: v[1] for name, v in spec.tfs.items()},
    }
