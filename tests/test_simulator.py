"""Tests of the multiome simulator: reproducibility, noise model, and that the planted truth is
visible in the simulated counts (so downstream notebooks/tests can rely on it)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from attune_lib._utils import AttuneInputError
from attune_lib.datasets._simulate import (
    PCHIC_CELL_TYPES,
    SIMULATOR_PRESETS,
    Program,
    jaspar_pfm,
    simulate_multiome,
    validate_scenario,
)

TINY = {"n_cells": 150, "n_genes": 150, "n_peaks": 800}


# ------------------------------------------------------------------ helpers
def _lognorm(X) -> np.ndarray:
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    return np.log1p(X / np.maximum(X.sum(1, keepdims=True), 1) * 1e4)


def _colcorr(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching columns of A and B."""
    A = A - A.mean(0)
    B = B - B.mean(0)
    return (A * B).sum(0) / np.sqrt((A**2).sum(0) * (B**2).sum(0) + 1e-12)


def _xcorr(acc: np.ndarray, ex: np.ndarray, max_shift: int) -> np.ndarray:
    """corr(acc[t], ex[t + k]) for k = -max_shift..max_shift (k > 0: accessibility leads)."""
    n = len(acc)
    out = []
    for k in range(-max_shift, max_shift + 1):
        x, y = (acc[: n - k], ex[k:]) if k >= 0 else (acc[-k:], ex[: n + k])
        out.append(np.corrcoef(x, y)[0, 1])
    return np.array(out)


def _lag_curves(mdata, genes, *, use_truth: bool = False, n_bins: int = 16, max_shift: int = 5):
    """Per gene: cross-correlation between its linked peaks' accessibility and its expression
    along pseudotime (pseudobulk bins within the lineage where the gene varies most)."""
    rna, atac, truth = mdata["rna"], mdata["atac"], mdata.uns["truth"]
    E = rna.layers["truth_mean"] if use_truth else _lognorm(rna.X)
    A = atac.layers["truth_prob"] if use_truth else atac.X.toarray()
    gi, pi = pd.Index(rna.var_names), pd.Index(atac.var_names)
    t = rna.obs["pseudotime"].to_numpy()
    bins = np.minimum((t * n_bins).astype(int), n_bins - 1)
    lineage = rna.obs["lineage"].to_numpy()
    links = truth["links"]
    curves = []
    for g in genes:
        acc_all = A[:, pi.get_indexer(links.loc[links.gene == g, "peak"])].sum(1)
        ex_all = E[:, gi.get_loc(g)]
        best = None
        for lin in np.unique(lineage):
            sel = lineage == lin
            if any((sel & (bins == b)).sum() == 0 for b in range(n_bins)):
                continue
            ex = np.array([ex_all[sel & (bins == b)].mean() for b in range(n_bins)])
            acc = np.array([acc_all[sel & (bins == b)].mean() for b in range(n_bins)])
            if best is None or np.ptp(ex) > best[0]:
                best = (np.ptp(ex), acc, ex)
        curves.append(_xcorr(best[1], best[2], max_shift))
    return np.array(curves)


def _half_max_lags(mdata, genes, window: int = 25) -> np.ndarray:
    """Noise-free estimate of each gene's RNA delay: pseudotime of half-maximal expression
    (``truth_mean``) minus that of half-maximal mean logit accessibility of its linked peaks
    (``truth_prob``), along the lineage where the gene varies most (rolling means of cells)."""
    rna, atac, truth = mdata["rna"], mdata["atac"], mdata.uns["truth"]
    E = rna.layers["truth_mean"]
    P = atac.layers["truth_prob"]
    gi, pi = pd.Index(rna.var_names), pd.Index(atac.var_names)
    t = rna.obs["pseudotime"].to_numpy()
    lineage = rna.obs["lineage"].to_numpy()
    links = truth["links"]
    kernel = np.ones(window) / window

    def t_half(tt, x):
        x = (x - x.min()) / (np.ptp(x) + 1e-12)
        k = max(len(x) // 5, 1)
        rising = x[-k:].mean() > x[:k].mean()
        return tt[np.argmax((x if rising else 1 - x) >= 0.5)]

    out = []
    for g in genes:
        p = P[:, pi.get_indexer(links.loc[links.gene == g, "peak"])]
        acc_all = np.log(p / (1 - p)).mean(1)
        ex_all = E[:, gi.get_loc(g)]
        best = None
        for lin in np.unique(lineage):
            sel = np.flatnonzero(lineage == lin)
            sel = sel[np.argsort(t[sel])]
            ex = np.convolve(ex_all[sel], kernel, "valid")
            if best is None or np.ptp(ex) > best[0]:
                acc = np.convolve(acc_all[sel], kernel, "valid")
                best = (np.ptp(ex), np.convolve(t[sel], kernel, "valid"), acc, ex)
        _, tt, acc, ex = best
        out.append(t_half(tt, ex) - t_half(tt, acc))
    return np.array(out)


def _pwm_max_scores(seqs, pfm: np.ndarray) -> np.ndarray:
    """Best log2-odds PWM score (both strands, uniform background) of each sequence."""
    lo = np.log2(pfm / 0.25)
    rc = lo[::-1, ::-1]
    m = lo.shape[1]
    lut = np.zeros(256, dtype=int)
    for i, c in enumerate(b"ACGT"):
        lut[c] = i
    out = np.empty(len(seqs))
    for i, s in enumerate(seqs):
        x = lut[np.frombuffer(s.encode("ascii"), dtype=np.uint8)]
        win = np.lib.stride_tricks.sliding_window_view(x, m)
        cols = np.arange(m)
        out[i] = max(lo[win, cols].sum(1).max(), rc[win, cols].sum(1).max())
    return out


# ------------------------------------------------------------------ structure
def test_structure_and_fields(sim_small):
    rna, atac = sim_small["rna"], sim_small["atac"]
    assert rna.shape == (600, 300) and atac.shape == (600, 3000)
    assert list(rna.obs_names) == list(atac.obs_names) == list(sim_small.obs_names)
    for ad_ in (rna, atac):
        assert sp.isspmatrix_csr(ad_.X) and ad_.X.dtype == np.float32
        assert (ad_.layers["counts"] != ad_.X).nnz == 0
        assert ad_.layers["counts"] is not ad_.X  # a copy: in-place normalisation keeps counts
        for col in ("cell_type", "pseudotime", "lineage", "batch", "truth_boundary"):
            assert col in ad_.obs
        assert isinstance(ad_.obs["cell_type"].dtype, pd.CategoricalDtype)
    assert set(rna.obs["cell_type"].cat.categories) == {
        "CD14 Mono",
        "CD16 Mono",
        "cDC",
        "pDC",
        "B naive",
        "CD4 T",
        "CD8 T",
        "NK",
    }
    assert rna.obs["pseudotime"].isna().all()  # pbmc has no trajectory
    assert {"cell_type", "batch", "lineage"} <= set(sim_small.obs.columns)
    # genome annotation
    for col in ("chrom", "start", "end", "strand", "tss"):
        assert col in rna.var
    assert set(rna.var["strand"]) == {"+", "-"}
    assert (rna.var["start"] <= rna.var["tss"]).all() and (rna.var["tss"] < rna.var["end"]).all()
    assert "chrX" in set(rna.var["chrom"]) and "chrX" in set(atac.var["chrom"])
    assert not any(c.startswith("chrM") for c in rna.var["chrom"])
    assert {"CD14", "MS4A1", "NKG7", "LYZ"} <= set(rna.var_names)
    for col in ("chrom", "start", "end", "gc", "gc_bias", "sequence"):
        assert col in atac.var
    width = atac.var["end"] - atac.var["start"]
    assert width.between(300, 500).all()
    pat = re.compile(r"^chr[0-9X]+:\d+-\d+$")
    assert all(pat.match(n) for n in atac.var_names)
    v = atac.var.iloc[5]
    assert atac.var_names[5] == f"{v.chrom}:{v.start}-{v.end}"
    # peaks do not overlap
    for _, grp in atac.var.groupby("chrom"):
        s = grp.sort_values("start")
        assert (s["start"].to_numpy()[1:] >= s["end"].to_numpy()[:-1]).all()


def test_sequences_match_gc(sim_small):
    var = sim_small["atac"].var
    seqs = var["sequence"]
    assert all(set(s) <= set("ACGT") for s in seqs.iloc[:200])
    assert (seqs.str.len() == var["end"] - var["start"]).all()
    gc = seqs.map(lambda s: (s.count("G") + s.count("C")) / len(s))
    np.testing.assert_allclose(gc.to_numpy(), var["gc"].to_numpy(), atol=1e-9)
    np.testing.assert_allclose(var["gc_bias"].to_numpy(), var["gc"].to_numpy())
    assert 0.3 < var["gc"].mean() < 0.6 and var["gc"].std() > 0.03


def test_genome_distances(sim_small):
    truth = sim_small.uns["truth"]
    links = truth["links"]
    assert truth["window_bp"] == 1_200_000
    prom = links[links.kind == "promoter"]
    assert (prom.distance < 1_000).all()
    distal = links[links.kind == "distal"]
    assert (distal.distance <= 1_500_000).all()
    assert (distal.distance < 1_200_000).mean() > 0.9  # most links inside the window...
    assert (distal.distance > 100_000).mean() > 0.1  # ...but not all close by
    # link weights decay with distance
    near, far = distal[distal.distance < 50_000], distal[distal.distance > 300_000]
    assert near.weight.mean() > far.weight.mean()


# ------------------------------------------------------------------ reproducibility
def test_reproducible_by_seed():
    a = simulate_multiome("skin", seed=3, motifs=False, **TINY)
    b = simulate_multiome("skin", seed=3, motifs=False, **TINY)
    c = simulate_multiome("skin", seed=4, motifs=False, **TINY)
    for mod in ("rna", "atac"):
        assert (a[mod].X != b[mod].X).nnz == 0
        assert (a[mod].X != c[mod].X).nnz > 0
    assert list(a["atac"].var_names) == list(b["atac"].var_names)
    pd.testing.assert_frame_equal(a.uns["truth"]["links"], b.uns["truth"]["links"])
    pd.testing.assert_frame_equal(a.uns["truth"]["pchic"], b.uns["truth"]["pchic"])


def test_motifs_flag_keeps_counts():
    a = simulate_multiome("pbmc", seed=1, motifs=False, **TINY)
    b = simulate_multiome("pbmc", seed=1, motifs=True, **TINY)
    assert "sequence" not in a["atac"].var and "sequence" in b["atac"].var
    for mod in ("rna", "atac"):
        assert (a[mod].X != b[mod].X).nnz == 0
    # the regulation truth does not depend on whether sequences were written
    pd.testing.assert_frame_equal(
        a.uns["truth"]["tf_peak"][["tf", "peak", "motif_id"]],
        b.uns["truth"]["tf_peak"][["tf", "peak", "motif_id"]],
    )


def test_size_and_overrides():
    m = simulate_multiome("cortex", size="small", n_cells=80, motifs=False)
    assert m["rna"].shape == (80, 300) and m["atac"].shape == (80, 3000)
    m = simulate_multiome("pbmc", n_cells=40, n_genes=120, n_peaks=500, motifs=False)
    assert m["rna"].shape == (40, 120) and m["atac"].shape == (40, 500)
    assert "truth_mean" in m["rna"].layers and "truth_prob" in m["atac"].layers
    m = simulate_multiome("pbmc", truth_layers=False, motifs=False, **TINY)
    assert "truth_mean" not in m["rna"].layers and "truth_prob" not in m["atac"].layers


# ------------------------------------------------------------------ noise model
@pytest.mark.parametrize("fixture", ["sim_small", "sim_skin_small", "sim_cortex_small"])
def test_atac_sparsity(fixture, request):
    atac = request.getfixturevalue(fixture)["atac"]
    frac = atac.X.nnz / (atac.n_obs * atac.n_vars)
    assert 0.02 <= frac <= 0.10
    assert set(np.unique(atac.X.data)) <= {1.0, 2.0}
    assert (atac.X.data == 1).mean() > 0.7  # mostly binary
    per_cell = np.asarray(atac.X.sum(1)).ravel()
    assert per_cell.min() > 0
    q5, q95 = np.quantile(per_cell, [0.05, 0.95])
    assert q95 / q5 > 2  # varying sequencing depth


def test_rna_library_sizes(sim_small):
    X = sim_small["rna"].X
    assert np.allclose(X.data, np.round(X.data)) and X.data.min() >= 1
    lib = np.asarray(X.sum(1)).ravel()
    q5, q50, q95 = np.quantile(lib, [0.05, 0.5, 0.95])
    assert q95 / q5 > 3
    assert 200 < q50 < 50_000
    # over-dispersion of a highly expressed housekeeping gene (negative binomial, not Poisson)
    gp = sim_small.uns["truth"]["gene_program"]
    hk = gp.loc[gp.role == "housekeeping", "gene"].to_numpy()
    rna = sim_small["rna"]
    x = rna[:, hk].X.toarray() / lib[:, None] * np.median(lib)
    assert np.median(x.var(0) / np.maximum(x.mean(0), 1e-9)) > 1.2


def test_truth_layers_consistent(sim_small):
    rna, atac = sim_small["rna"], sim_small["atac"]
    tp = atac.layers["truth_prob"]
    assert tp.shape == atac.shape and tp.dtype == np.float32
    assert 0 < tp.min() and tp.max() < 1
    # observed non-zero fraction per peak tracks the truth probability
    obs_frac = np.asarray((atac.X > 0).mean(0)).ravel()
    assert np.corrcoef(obs_frac, tp.mean(0))[0, 1] > 0.9
    tm = rna.layers["truth_mean"]
    assert tm.shape == rna.shape and np.isfinite(tm).all()
    np.testing.assert_allclose(np.expm1(tm).sum(1), 1e4, rtol=1e-3)
    assert np.corrcoef(_lognorm(rna.X).mean(0), tm.mean(0))[0, 1] > 0.9


def test_batches():
    m = simulate_multiome("pbmc", n_batches=3, seed=0, motifs=False, **TINY)
    batch = m["rna"].obs["batch"]
    assert list(batch.cat.categories) == ["batch1", "batch2", "batch3"]
    assert batch.value_counts().min() > 20
    # a modest but detectable per-gene batch effect
    E = _lognorm(m["rna"].X)
    b = batch.to_numpy()
    diff = np.abs(E[b == "batch1"].mean(0) - E[b == "batch2"].mean(0))
    one = simulate_multiome("pbmc", n_batches=1, seed=0, motifs=False, **TINY)
    assert (one["rna"].obs["batch"] == "batch1").all()
    assert 0.05 < np.median(diff) < 1.0


# ------------------------------------------------------------------ planted biology
def test_marker_specificity(sim_small, sim_skin_small, sim_cortex_small):
    for mdata, min_lfc in ((sim_small, 1.0), (sim_skin_small, 0.5), (sim_cortex_small, 0.5)):
        rna = mdata["rna"]
        E = _lognorm(rna.X)
        ct = rna.obs["cell_type"].to_numpy()
        markers = mdata.uns["truth"]["markers"]
        assert set(markers) == set(rna.obs["cell_type"].cat.categories)
        idx_all = pd.Index(rna.var_names)
        for t, genes in markers.items():
            assert len(genes) >= 3
            idx = idx_all.get_indexer(genes)
            lfc = E[ct == t][:, idx].mean() - E[ct != t][:, idx].mean()
            assert lfc > min_lfc, (t, lfc)
    assert {"CD14", "LYZ"} <= set(sim_small.uns["truth"]["markers"]["CD14 Mono"])


def test_linked_peaks_correlate_with_genes(sim_small):
    rna, atac, truth = sim_small["rna"], sim_small["atac"], sim_small.uns["truth"]
    E, A = _lognorm(rna.X), atac.X.toarray()
    links = truth["links"]
    gi, pi = pd.Index(rna.var_names), pd.Index(atac.var_names)
    c_link = _colcorr(E[:, gi.get_indexer(links.gene)], A[:, pi.get_indexer(links.peak)])
    rng = np.random.default_rng(0)
    rg = rng.integers(0, rna.n_vars, len(links))
    rp = rng.integers(0, atac.n_vars, len(links))
    c_rand = _colcorr(E[:, rg], A[:, rp])
    assert np.nanmean(c_link) > np.nanmean(c_rand) + 0.03
    assert abs(np.nanmean(c_rand)) < 0.02
    # confounding: unlinked peaks of the same program also correlate (correlation != link)
    gp = truth["gene_program"].set_index("gene")
    prog_genes = gp.index[gp.role.isin(["program", "marker"])]
    linked_pairs = set(zip(links.gene, links.peak))
    g_of_peak = links.drop_duplicates("peak").set_index("peak").gene
    pairs = []
    for g in prog_genes[:60]:
        mates = gp.index[(gp.program == gp.loc[g, "program"]) & (gp.index != g)]
        peaks = g_of_peak[g_of_peak.isin(mates)].index[:5]
        pairs += [(g, p) for p in peaks if (g, p) not in linked_pairs]
    pg, pp = zip(*pairs)
    c_conf = _colcorr(E[:, gi.get_indexer(pg)], A[:, pi.get_indexer(pp)])
    assert np.nanmean(c_conf) > np.nanmean(c_rand) + 0.02


@pytest.mark.parametrize("fixture", ["sim_skin_small", "sim_cortex_small"])
def test_lagging_genes_accessibility_leads(fixture, request):
    mdata = request.getfixturevalue(fixture)
    truth = mdata.uns["truth"]
    lag = truth["lagging_genes"]
    assert len(lag) >= 5 and (lag["lag"] > 0).all()
    assert truth["gli3_like"]["gene"] in set(lag["gene"])
    max_shift = 5
    curves = _lag_curves(mdata, lag["gene"], max_shift=max_shift)
    mean = np.nanmean(curves, 0)
    assert np.argmax(mean) - max_shift > 0  # accessibility leads expression
    asym = np.mean(mean[max_shift + 1 : max_shift + 4] - mean[max_shift - 3 : max_shift][::-1])
    assert asym > 0.05
    # noise-free truth: the delay between half-maximal accessibility and expression is the lag
    g3 = truth["gli3_like"]["gene"]
    mono = lag[lag.gene != g3]  # the Gli3-like gene is not monotone
    err = _half_max_lags(mdata, mono["gene"]) - mono["lag"].to_numpy()
    extra = truth["boundary_delay"]  # cortex: + the boundary delay where a transition crosses it
    assert -0.05 < np.median(err) < 0.04 + extra
    assert ((err > -0.06) & (err < 0.06 + extra)).mean() >= 0.75
    # control: non-lagging genes of the same programs are not delayed (beyond the boundary)
    gp = truth["gene_program"].set_index("gene")
    prog_of = gp.loc[mono["gene"], "program"].to_numpy()
    ctrl_all = gp[gp.program.isin(set(prog_of)) & ~gp.index.isin(lag["gene"])]
    ctrl = ctrl_all.groupby("program").head(6)
    est_c = pd.Series(_half_max_lags(mdata, ctrl.index), index=ctrl.index)
    assert -0.03 < est_c.median() < 0.03 + extra
    base = est_c.groupby(ctrl.program).median()
    excess = err + mono["lag"].to_numpy() - base.reindex(prog_of).to_numpy()
    assert np.nanmedian(excess) > 0.06
    ctrl = ctrl.index
    mean_c = np.nanmean(_lag_curves(mdata, ctrl, use_truth=True, max_shift=max_shift), 0)
    assert abs(np.argmax(mean_c) - max_shift) <= 1


@pytest.mark.parametrize("fixture", ["sim_skin_small", "sim_cortex_small"])
def test_gli3_like_early_and_late_peaks(fixture, request):
    mdata = request.getfixturevalue(fixture)
    g3 = mdata.uns["truth"]["gli3_like"]
    atac = mdata["atac"]
    assert g3["gene"] in mdata["rna"].var_names
    assert len(g3["early_peaks"]) >= 4 and len(g3["late_peaks"]) >= 4
    assert not set(g3["early_peaks"]) & set(g3["late_peaks"])
    assert g3["late_motif_id"].startswith("MA0768")  # LEF1
    links = mdata.uns["truth"]["links"]
    linked = set(links.loc[links.gene == g3["gene"], "peak"])
    assert set(g3["early_peaks"]) | set(g3["late_peaks"]) <= linked
    t = atac.obs["pseudotime"].to_numpy()
    bins = np.minimum((t * 10).astype(int), 9)

    def profile(peaks):
        x = np.asarray(atac[:, list(peaks)].X.sum(1)).ravel()
        return np.array([x[bins == b].mean() for b in range(10)])

    early, late = profile(g3["early_peaks"]), profile(g3["late_peaks"])
    centre = np.arange(10)
    com_e = (early * centre).sum() / early.sum()
    com_l = (late * centre).sum() / late.sum()
    assert com_l - com_e > 3  # the late group opens > 0.3 pseudotime units later
    assert early[:3].mean() > 2 * early[-3:].mean()
    assert late[-3:].mean() > 2 * late[:3].mean()
    # the late group carries the LEF1 motif (truth table)
    tf_peak = mdata.uns["truth"]["tf_peak"]
    late_motifs = tf_peak[tf_peak.peak.isin(g3["late_peaks"])]
    assert set(late_motifs.motif_id) == {g3["late_motif_id"]}
    assert len(late_motifs) == len(g3["late_peaks"])


def test_planted_motifs_scan_above_background(sim_skin_small):
    atac, truth = sim_skin_small["atac"], sim_skin_small.uns["truth"]
    tf_peak = truth["tf_peak"]
    seqs = atac.var["sequence"]
    assert set(tf_peak.motif_id) <= set(truth["tfs"].motif_id)
    assert (tf_peak.position >= 0).all() and set(tf_peak.strand) <= {"+", "-"}
    rng = np.random.default_rng(0)
    background = rng.choice(np.setdiff1d(atac.var_names, tf_peak.peak), 200, replace=False)
    bg_seqs = seqs.loc[background].tolist()
    for motif_id, grp in tf_peak.groupby("motif_id"):
        pfm = jaspar_pfm(motif_id)
        thr = 0.7 * np.log2(pfm / 0.25).max(0).sum()
        hits_t = (_pwm_max_scores(seqs.loc[grp.peak[:60]].tolist(), pfm) >= thr).mean()
        hits_b = (_pwm_max_scores(bg_seqs, pfm) >= thr).mean()
        assert hits_t > 0.95, motif_id
        assert hits_t > hits_b + 0.3, (motif_id, hits_t, hits_b)
    # the LEF1 motif really is JASPAR 2022 MA0768 (Lef1)
    pfm = jaspar_pfm("MA0768.2")
    assert pfm.shape[0] == 4 and np.allclose(pfm.sum(0), 1)


def test_tf_expression_drives_motif_peaks(sim_skin_small):
    rna, atac, truth = sim_skin_small["rna"], sim_skin_small["atac"], sim_skin_small.uns["truth"]
    E = _lognorm(rna.X)
    tf_peak = truth["tf_peak"]
    t = rna.obs["pseudotime"].to_numpy()
    bins = np.minimum((t * 10).astype(int), 9)
    lef1 = E[:, rna.var_names.get_loc("Lef1")]
    acc = np.asarray(atac[:, tf_peak.loc[tf_peak.tf == "Lef1", "peak"].tolist()].X.mean(1)).ravel()
    nfib_acc = np.asarray(
        atac[:, tf_peak.loc[tf_peak.tf == "Nfib", "peak"].tolist()].X.mean(1)
    ).ravel()
    def pb(x):
        return np.array([x[bins == b].mean() for b in range(10)])

    assert np.corrcoef(pb(lef1), pb(acc))[0, 1] > 0.8
    assert np.corrcoef(pb(lef1), pb(nfib_acc))[0, 1] < 0


def test_cortex_boundary(sim_cortex_small):
    mdata = sim_cortex_small
    truth = mdata.uns["truth"]
    lo, hi = truth["boundary"]
    obs = mdata["rna"].obs
    t = obs["pseudotime"].to_numpy()
    expected = (t >= lo) & (t <= hi)
    np.testing.assert_array_equal(obs["truth_boundary"].to_numpy(), expected)
    assert 0.05 < expected.mean() < 0.4
    assert obs.loc[obs.truth_boundary, "truth_rna_delay"].mean() > 0.05
    # RNA-vs-ATAC disagreement: in boundary cells ATAC looks more mature than RNA
    rna, atac = mdata["rna"], mdata["atac"]
    E, A = _lognorm(rna.X), atac.X.toarray()
    links = truth["links"]
    mat, imm = truth["markers"]["Neuron mature"], truth["markers"]["Neuron immature"]
    gi, pi = pd.Index(rna.var_names), pd.Index(atac.var_names)
    rna_score = E[:, gi.get_indexer(mat)].mean(1) - E[:, gi.get_indexer(imm)].mean(1)
    atac_score = A[:, pi.get_indexer(links[links.gene.isin(mat)].peak)].mean(1) - A[
        :, pi.get_indexer(links[links.gene.isin(imm)].peak)
    ].mean(1)
    def rank(x):
        return pd.Series(x).rank().to_numpy() / len(x)

    disagreement = rank(atac_score) - rank(rna_score)
    assert disagreement[expected].mean() > disagreement[~expected].mean() + 0.08
    # other presets have no boundary
    assert truth["preset"] == "cortex"


def test_trajectory_metadata(sim_skin_small, sim_cortex_small, sim_small):
    for mdata in (sim_skin_small, sim_cortex_small):
        obs = mdata["rna"].obs
        t = obs["pseudotime"]
        assert t.between(0, 1).all() and t.min() == 0 and t.max() == 1
        start = mdata.uns["truth"]["start_cell"]
        assert start in obs.index and obs.loc[start, "pseudotime"] == 0
        # cell types are ordered along pseudotime
        med = obs.groupby("cell_type", observed=True)["pseudotime"].median()
        first = obs["cell_type"].cat.categories[0]
        assert med.idxmin() == first
    skin = sim_skin_small["rna"].obs
    assert set(skin.cell_type.cat.categories) == {"TAC-1", "TAC-2", "IRS", "Medulla", "Hair Shaft"}
    assert set(skin.lineage.cat.categories) == {"IRS", "Medulla", "Hair Shaft"}
    assert {"Gli3", "Lef1", "Nfib", "Sox5", "Foxp1", "Dach1"} <= set(
        sim_skin_small["rna"].var_names
    )
    cortex = sim_cortex_small["rna"].obs
    assert list(cortex.cell_type.cat.categories) == [
        "RG",
        "IPC",
        "Neuron immature",
        "Neuron mature",
    ]
    assert sim_small.uns["truth"]["start_cell"] == ""
    assert np.isnan(sim_small.uns["truth"]["boundary"]).all()
    assert not sim_small["rna"].obs["truth_boundary"].any()


# ------------------------------------------------------------------ PCHi-C
def test_pchic_table(sim_small):
    rna, atac, truth = sim_small["rna"], sim_small["atac"], sim_small.uns["truth"]
    pc = truth["pchic"]
    cols = [
        "baitChr",
        "baitStart",
        "baitEnd",
        "baitID",
        "baitName",
        "oeChr",
        "oeStart",
        "oeEnd",
        "oeID",
        "oeName",
        "dist",
    ]
    assert list(pc.columns) == cols + list(PCHIC_CELL_TYPES)
    assert len(pc) > 100
    scores = pc[list(PCHIC_CELL_TYPES)].to_numpy()
    assert (scores.max(1) >= 5).all() and (scores < 5).mean() > 0.3
    assert not pc.baitChr.str.startswith("chr").any()  # as in the real file
    assert (pc.baitChr == pc.oeChr).all()
    assert not pc.duplicated(["baitID", "oeID"]).any()
    mid_b = (pc.baitStart + pc.baitEnd) // 2
    mid_o = (pc.oeStart + pc.oeEnd) // 2
    assert (pc.dist == mid_o - mid_b).all()
    # baits: fragments within 1 kb of the TSS of (one of) the named genes
    var = rna.var
    ok = []
    for row in pc.itertuples():
        tss = var.loc[row.baitName.split(";"), "tss"].to_numpy()
        ok.append(np.any((tss >= row.baitStart - 1000) & (tss <= row.baitEnd + 1000)))
    assert np.mean(ok) > 0.95
    # other ends: most overlap a truly linked peak of the bait gene (noise = 0.2)
    peaks = atac.var.assign(chrom_short=atac.var.chrom.str[3:])
    links = truth["links"]
    linked = set(zip(links.gene, links.peak))
    hit = []
    for row in pc.itertuples():
        cand = peaks[
            (peaks.chrom_short == row.oeChr)
            & (peaks.end >= row.oeStart - 1000)
            & (peaks.start <= row.oeEnd + 1000)
        ]
        genes = row.baitName.split(";")
        hit.append(any((g, p) in linked for g in genes for p in cand.index))
    assert 0.6 < np.mean(hit) < 0.98
    # monocyte genes interact in monocytes, T-cell genes in CD4 T cells
    gp = truth["gene_program"].set_index("gene")
    prog = pc.baitName.map(lambda n: gp.program.get(n.split(";")[0], ""))
    mono = pc[prog == "CD14 Mono"]
    tcell = pc[prog == "CD4 T"]
    assert (mono.Mon >= 5).mean() > (mono.tCD4 >= 5).mean()
    assert (tcell.tCD4 >= 5).mean() > (tcell.Mon >= 5).mean()


def test_pchic_noise_parameter():
    clean = simulate_multiome("pbmc", pchic_noise=0.0, motifs=False, **TINY)
    noisy = simulate_multiome("pbmc", pchic_noise=0.5, motifs=False, **TINY)

    def true_fraction(m):
        pc, links = m.uns["truth"]["pchic"], m.uns["truth"]["links"]
        atac = m["atac"].var
        linked = set(zip(links.gene, links.peak))
        hits = []
        for row in pc.itertuples():
            c = atac[
                (atac.chrom.str[3:] == row.oeChr)
                & (atac.end >= row.oeStart)
                & (atac.start <= row.oeEnd)
            ]
            hits.append(any((g, p) in linked for g in row.baitName.split(";") for p in c.index))
        return np.mean(hits)

    assert true_fraction(clean) == 1.0
    assert true_fraction(noisy) < 0.8


# ------------------------------------------------------------------ I/O and validation
def test_h5mu_roundtrip(sim_skin_small, tmp_path):
    import mudata as md

    path = tmp_path / "sim.h5mu"
    sim_skin_small.write_h5mu(path)
    back = md.read_h5mu(path)
    for mod in ("rna", "atac"):
        assert (back[mod].X != sim_skin_small[mod].X).nnz == 0
        pd.testing.assert_frame_equal(
            back[mod].var, sim_skin_small[mod].var, check_dtype=False, check_categorical=False
        )
        for col in ("cell_type", "pseudotime", "lineage", "batch", "truth_boundary"):
            assert (
                back[mod].obs[col].astype(str) == sim_skin_small[mod].obs[col].astype(str)
            ).all()
    np.testing.assert_allclose(
        back["atac"].layers["truth_prob"], sim_skin_small["atac"].layers["truth_prob"]
    )
    t0, t1 = sim_skin_small.uns["truth"], back.uns["truth"]
    assert set(t0) == set(t1)
    for key in ("links", "tf_peak", "tfs", "gene_program", "pchic", "lagging_genes"):
        pd.testing.assert_frame_equal(
            t1[key].reset_index(drop=True), t0[key].reset_index(drop=True), check_dtype=False
        )
    assert t1["gli3_like"]["gene"] == "Gli3"
    assert list(t1["gli3_like"]["late_peaks"]) == list(t0["gli3_like"]["late_peaks"])
    assert {k: list(v) for k, v in t1["markers"].items()} == {
        k: list(v) for k, v in t0["markers"].items()
    }
    assert t1["start_cell"] == t0["start_cell"] and t1["preset"] == "skin" and t1["seed"] == 0
    assert t1["params"]["n_cells"] == 600


def test_h5mu_roundtrip_pbmc_empty_fields(tmp_path):
    import mudata as md

    m = simulate_multiome("pbmc", motifs=False, **TINY)
    m.write_h5mu(tmp_path / "p.h5mu")
    back = md.read_h5mu(tmp_path / "p.h5mu")
    assert back.uns["truth"]["gli3_like"]["gene"] == ""
    assert len(back.uns["truth"]["lagging_genes"]) == 0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"preset": "liver"}, "preset"),
        ({"size": "huge"}, "size"),
        ({"n_cells": 0}, "n_cells"),
        ({"n_cells": -5}, "n_cells"),
        ({"n_cells": 2.5}, "n_cells"),
        ({"n_genes": 10}, "n_genes"),
        ({"n_peaks": 100}, "n_peaks"),
        ({"n_batches": 0}, "n_batches"),
        ({"seed": -1}, "seed"),
        ({"link_noise": 1.5}, "link_noise"),
        ({"pchic_noise": -0.1}, "pchic_noise"),
        ({"motifs": "yes"}, "motifs"),
    ],
)
def test_bad_parameters(kwargs, name):
    preset = kwargs.pop("preset", "pbmc")
    with pytest.raises(AttuneInputError, match=name):
        simulate_multiome(preset, size=kwargs.pop("size", "small"), **kwargs)


# ------------------------------------------------------------------ scenario tables
@pytest.mark.parametrize("name", sorted(SIMULATOR_PRESETS))
def test_scenarios_are_valid(name):
    scenario = SIMULATOR_PRESETS[name]
    assert validate_scenario(scenario) is scenario
    assert scenario.name == name
    props = scenario.fate_props if scenario.trajectory else scenario.type_props
    assert np.isclose(sum(props), 1.0)


@pytest.mark.parametrize(
    ("name", "change", "field"),
    [
        ("pbmc", {"type_props": (0.5, 0.5, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0)}, "type_props"),
        ("pbmc", {"type_props": (0.5, 0.5)}, "type_props"),
        ("skin", {"fate_props": (0.5, 0.3, 0.3)}, "fate_props"),
        ("pbmc", {"lineage_of": {"CD14 Mono": "myeloid"}}, "lineage_of"),
        ("skin", {"type_bounds": ((0.40, "TAC-2"), (0.15, "TAC-1"))}, "type_bounds"),
        ("skin", {"type_bounds": ((0.15, "TAC-0"), (0.40, "TAC-2"))}, "type_bounds"),
        ("cortex", {"type_bounds": ((0.25, "RG"), (0.45, "IPC"))}, "fates"),
        ("pbmc", {"named": {"CD14": "no such program"}}, "named"),
        ("skin", {"tfs": {"Lef1": ("late", "not-a-jaspar-id", "Lef1")}}, "tfs"),
        ("pbmc", {"marker_programs": {"Basophil": ("NK",)}}, "marker_programs"),
        ("skin", {"programs": (Program("IRS", "sig_up", fate="Outer sheath"),)}, "programs"),
        ("skin", {"programs": (Program("TAC-1", "wave"),)}, "programs"),
        ("cortex", {"lagging_programs": ("glial",)}, "lagging_programs"),
        ("cortex", {"gli3": {"gene": "GLI3", "early_tfs": ("SOX9",), "late_tf": "LEF1", "n_early": 6,
                             "n_late": 6, "lag": 0.1}}, "gli3"),
        ("pbmc", {"boundary": (0.6, 0.8)}, "boundary"),
        ("pbmc", {"pchic_map": {"Mon": ("Monocyte",)}}, "pchic_map"),
    ],
)
def test_scenario_validation_names_scenario_and_field(name, change, field):
    bad = dataclasses.replace(SIMULATOR_PRESETS[name], **change)
    with pytest.raises(AttuneInputError, match=rf"scenario {name!r}: field {field}\b"):
        validate_scenario(bad)
