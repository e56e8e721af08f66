"""Synthetic genome: gene names, programs, drivers and lags; chromosomes and gene placement; peaks; GC targets.

All draws come from the genome stream, in a fixed order: :func:`simulate_genome` (genes, chromosomes,
peaks), then ``_links.draw_links`` and ``_links.peak_regulation``, then :func:`peak_gc_targets`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import MAX_LINK_BP
from ._scenarios import Scenario

__all__ = ["peak_gc_targets", "simulate_genome"]


def simulate_genome(spec: Scenario, G: int, P: int, rng) -> dict:
    """Genes (names, program, role, driver column, lag, position, strand, body) and non-overlapping peaks.

    Parameters
    ----------
    spec
        The scenario.
    G, P
        Number of genes and of peaks.
    rng
        The genome stream.
    """
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
            rng.uniform(2_000, MAX_LINK_BP, size=n_dist),
        ),
    )
    d_abs = np.minimum(d_abs, MAX_LINK_BP - 1_000)
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
        "p_mid": p_mid,
        "p_kind": p_kind,
        "p_gene": p_gene,
        "p_group": p_group,
        "gli3_gene": gli3_g,
    }


def peak_gc_targets(genome: dict, rng) -> dict:
    """Target GC fraction of each peak (promoters GC-rich).

    Parameters
    ----------
    genome
        Output of :func:`simulate_genome`.
    rng
        The genome stream (after the links and the peak regulation).
    """
    p_kind = genome["p_kind"]
    P = len(p_kind)
    # ---- GC content targets: promoters GC-rich
    gc_target = np.where(p_kind == 0, rng.beta(12, 8, size=P), rng.beta(8, 11, size=P))
    return {"peak_gc_target": gc_target}
