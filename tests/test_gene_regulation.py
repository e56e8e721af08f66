"""Regulation shift of one gene (Fig. 4): attention peaks, fuzzy clustering, co-occurrence with matched
background peaks, motif scanning/enrichment and the motif-supported regulon (attune_lib.tl._regulation_shift
and attune_lib.tl._motifs)."""

from __future__ import annotations

import gzip
import warnings

import anndata as ad
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from plot_checks import assert_shows

from attune_lib import pl as ppl
from attune_lib import tl as gr
from attune_lib._utils import AttuneInputError
from attune_lib.tl import _potential as pot

LEF1 = "MA0768.2"


def _copy(mdata) -> md.MuData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mdata.copy()


# --------------------------------------------------------------------------------------------------
# peaks kept by attention
# --------------------------------------------------------------------------------------------------
def test_gene_peaks_scopes():
    scores = pd.DataFrame({"gene": ["G"] * 5 + ["H"] * 5, "peak": [f"p{i}" for i in range(10)],
                           "score": [10, 9, 1, 0.5, 0.1, 8, 7, 6, 5, 4]})
    top = gr.gene_peaks(scores, gene="G", top_fraction=0.2)  # global top 2 of 10 pairs: p0, p1
    assert list(top["peak"]) == ["p0", "p1"] and list(top["rank"]) == [1, 2]
    assert list(gr.gene_peaks(scores, gene="H", top_fraction=0.2)["peak"]) == []
    assert list(gr.gene_peaks(scores, gene="H", top_fraction=0.4, scope="gene")["peak"]) == ["p5", "p6"]
    with pytest.raises(AttuneInputError, match="no row"):
        gr.gene_peaks(scores, gene="Z")
    with pytest.raises(AttuneInputError, match="score"):
        gr.gene_peaks(scores.drop(columns="score"), gene="G")


# --------------------------------------------------------------------------------------------------
# fuzzy clustering
# --------------------------------------------------------------------------------------------------
def _two_patterns(seed=0, n_each=15, n_noise=6):
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, 10)
    down = 1 / (1 + np.exp((x - 0.45) / 0.08))
    up = 1 / (1 + np.exp(-(x - 0.6) / 0.08))
    rows = [down + rng.normal(0, 0.08, 10) for _ in range(n_each)]
    rows += [up + rng.normal(0, 0.08, 10) for _ in range(n_each)]
    rows += [rng.normal(0, 1, 10) for _ in range(n_noise)]
    P = np.array(rows)
    P = (P - P.mean(1, keepdims=True)) / P.std(1, ddof=1, keepdims=True)
    idx = (
        [f"down{i}" for i in range(n_each)] + [f"up{i}" for i in range(n_each)] + [f"noise{i}" for i in range(n_noise)]
    )
    return pd.DataFrame(P, index=idx, columns=[f"t{i + 1}" for i in range(10)])


def test_mestimate_formula():
    assert gr.mestimate(1000, 10) == pytest.approx(1 + (1418 / 1000 + 22.05) / 100
                                                   + (12.33 / 1000 + 0.243) * 10 ** (-0.0406 * np.log(1000) - 0.1134))
    assert 1.5 < gr.mestimate(49, 10) < 2.5


def test_fuzzy_cmeans_two_patterns_and_alpha_cores():
    prof = _two_patterns()
    res = gr.fuzzy_cmeans(prof, seed=0)
    assert 2 <= res["n_clusters"] <= 4
    d = res["dmin"]
    assert list(d["c"]) == list(range(2, min(20, len(prof) - 1) + 1))
    cl = res["clusters"]
    down, up = cl.loc[cl.index.str.startswith("down")], cl.loc[cl.index.str.startswith("up")]
    # each pattern is one cluster, the two differ, and cluster "1" (earliest peak) is the closing one
    assert down["cluster"].nunique() == 1 and up["cluster"].nunique() == 1
    assert down["cluster"].iloc[0] == "1" and up["cluster"].iloc[0] != "1"
    assert down["core"].all() and up["core"].all()
    cores = cl[cl["core"]]
    assert not cores.index.str.startswith("noise").all()
    np.testing.assert_allclose(res["membership"].sum(axis=1), 1.0, atol=1e-6)
    # a fixed cluster number and a stricter alpha
    res3 = gr.fuzzy_cmeans(prof, n_clusters=3, alpha=0.9, seed=1)
    assert res3["n_clusters"] == 3 and res3["dmin"].empty
    assert res3["clusters"]["core"].sum() <= cl["core"].sum()
    with pytest.raises(AttuneInputError, match="n_clusters"):
        gr.fuzzy_cmeans(prof, n_clusters=len(prof))
    with pytest.raises(AttuneInputError, match="NaN"):
        gr.fuzzy_cmeans(prof.assign(t1=np.nan))


# --------------------------------------------------------------------------------------------------
# background peaks and co-occurrence
# --------------------------------------------------------------------------------------------------
def _cooccurrence_data(seed=0):
    """Cells along a trajectory; peaks 0-9 follow gene 'planted'; other genes/peaks are random programs."""
    rng = np.random.default_rng(seed)
    n, n_peaks, n_genes = 400, 300, 30
    t = np.sort(rng.random(n))
    prog = np.sin(np.pi * t) ** 2
    drivers = np.column_stack([rng.random(n) for _ in range(6)])
    peak_drv = np.column_stack([prog] * 10 + [drivers[:, rng.integers(6)] for _ in range(n_peaks - 10)])
    A = sp.csr_matrix(rng.random((n, n_peaks)) < 0.05 + 0.4 * peak_drv, dtype=np.float32)
    gene_drv = np.column_stack([prog] + [drivers[:, rng.integers(6)] for _ in range(n_genes - 1)])
    Y = sp.csr_matrix(rng.poisson(2 + 20 * gene_drv).astype(np.float32))
    obs = pd.DataFrame({"pseudotime": t}, index=[f"c{i}" for i in range(n)])
    genes = ["planted"] + [f"g{i}" for i in range(1, n_genes)]
    atac = ad.AnnData(
        X=A,
        obs=obs.copy(),
        var=pd.DataFrame(
            {"gc_bias": rng.uniform(0.3, 0.6, n_peaks)},
            index=[f"chr1:{1000 * i}-{1000 * i + 400}" for i in range(n_peaks)],
        ),
    )
    rna = ad.AnnData(X=Y, obs=obs.copy(), var=pd.DataFrame(index=genes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mdata = md.MuData({"rna": rna, "atac": atac})
    mdata.obs["pseudotime"] = t
    return mdata


def test_background_peaks_matched():
    mdata = _cooccurrence_data()
    gr.background_peaks(mdata, n_background=20)
    bg = mdata["atac"].varm["bg_peaks"]
    assert bg.shape == (300, 20) and bg.min() >= 0
    assert not (bg == np.arange(300)[:, None]).any()  # a peak is never its own background
    gc = mdata["atac"].var["gc_bias"].to_numpy()
    reads = np.log10(np.asarray(mdata["atac"].X.sum(0)).ravel())
    matched = np.abs(gc[bg] - gc[:, None]).mean()
    rng = np.random.default_rng(0)
    rand = rng.integers(0, 300, size=bg.shape)
    assert matched < 0.5 * np.abs(gc[rand] - gc[:, None]).mean()
    assert np.abs(reads[bg] - reads[:, None]).mean() < np.abs(reads[rand] - reads[:, None]).mean()
    mdata["atac"].var = mdata["atac"].var.drop(columns="gc_bias")
    with pytest.raises(AttuneInputError, match="gc_bias"):
        gr.background_peaks(mdata)


def test_co_occurrence_planted_gene_smallest_p():
    mdata = _cooccurrence_data()
    pot.pseudobulk_groups(mdata, n_groups=30, key_added="pt_bin")
    peaks = list(mdata["atac"].var_names[:10])
    table = gr.co_occurrence(mdata, peak_groups={"A": peaks}, groupby="pt_bin", n_background=20)
    assert set(table.columns) >= {"cluster", "gene", "mean_r", "bg_mean_r", "pval", "pval_adj"}
    top = table.sort_values("pval").iloc[0]
    assert top["gene"] == "planted" and top["pval_adj"] < 0.01 and top["mean_r"] > 0.5
    assert (table["pval_adj"] >= table["pval"] - 1e-12).all()
    assert "co_occurrence" in mdata.uns
    best = gr.top_cooccurring_genes(table, n=3)
    assert best["gene"].iloc[0] == "planted" and len(best) <= 3
    tp = gr.transit_pattern(mdata, peak_groups={"A": peaks[:3]}, gene_groups={"A": ["planted"]}, groupby="pt_bin")
    assert tp.shape == (4, 30) and tp.index.nlevels == 3
    fig = ppl.cooccurring_genes(table, n=3, highlight=["planted"])
    assert_shows(fig, texts=["planted"], n_bars=len(best))
    plt.close(fig)
    fig = ppl.transit_heatmap(tp)
    assert_shows(fig, image_shape=tp.shape)
    plt.close(fig)
    with pytest.raises(AttuneInputError, match="not in"):
        gr.co_occurrence(mdata, peak_groups={"A": ["chrZ:1-2"]}, groupby="pt_bin")


# --------------------------------------------------------------------------------------------------
# motifs
# --------------------------------------------------------------------------------------------------
def _consensus(motif) -> str:
    return "".join(max("ACGT", key=lambda b, i=i: motif.counts[b][i]) for i in range(motif.length))


def test_scan_planted_motif_and_enrichment():
    motifs = gr.jaspar_motifs()
    assert len(motifs) == 841
    lef1 = gr.jaspar_motifs(ids=[LEF1])[0]
    others = [m for m in motifs if m.matrix_id != LEF1][::40]
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), size=300)) for _ in range(60)]
    cons = _consensus(lef1)
    for i in range(10):  # plant LEF1 in the first 10 sequences
        seqs[i] = seqs[i][:100] + cons + seqs[i][100 + len(cons):]
    names = [f"chr1:{1000 * i}-{1000 * i + 300}" for i in range(60)]
    atac = ad.AnnData(X=sp.csr_matrix((2, 60), dtype=np.float32), var=pd.DataFrame({"sequence": seqs}, index=names))
    match = gr.scan_motifs(atac, motifs=[lef1, *others])
    assert match.shape == (60, 1 + len(others)) and LEF1 in match.columns
    assert match.loc[names[:10], LEF1].all()
    assert atac.uns["motif_match"] is not None
    enr = gr.motif_enrichment(match, foreground=names[:10])
    assert enr.iloc[0]["motif_id"] == LEF1 and enr.iloc[0]["pval_adj"] < 0.01
    assert enr.iloc[0]["motif_name"].upper() == "LEF1"
    fig = ppl.motif_enrichment(enr, highlight=[LEF1])
    assert_shows(fig, texts=[LEF1], n_bars=min(10, len(enr)))
    plt.close(fig)
    with pytest.raises(AttuneInputError, match="not scanned"):
        gr.motif_enrichment(match, foreground=["chrX:1-2"])
    with pytest.raises(AttuneInputError, match="MA9999"):
        gr.jaspar_motifs(ids=["MA9999.9"])


def test_peak_sequences_from_fasta(tmp_path):
    genome = {"chr1": "ACGT" * 50, "chr2": "GGGGCCCCAA" * 20}
    plain = tmp_path / "g.fa"
    text = "".join(f">{c} description\n" + "\n".join(s[i:i + 60] for i in range(0, len(s), 60)) + "\n"
                   for c, s in genome.items())
    plain.write_text(text)
    gz = tmp_path / "g.fa.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(text.lower())
    var = pd.DataFrame({"chrom": ["chr1", "chr2", "chr1"], "start": [0, 5, 10], "end": [8, 15, 14]},
                       index=["chr1:0-8", "chr2:5-15", "chr1:10-14"])
    for path in (plain, gz):
        a = ad.AnnData(X=sp.csr_matrix((1, 3)), var=var.copy())
        s = gr.peak_sequences(a, fasta=path)
        assert list(s) == ["ACGTACGT", "CCCAAGGGGC", "GTAC"]
        np.testing.assert_allclose(a.var["gc_bias"], [0.5, 0.8, 0.5])
    a = ad.AnnData(X=sp.csr_matrix((1, 3)), var=var.assign(chrom=["chr1", "chr3", "chr1"]))
    with pytest.raises(AttuneInputError, match="absent"):
        gr.peak_sequences(a, fasta=plain)
    with pytest.raises(AttuneInputError, match="fasta"):
        gr.peak_sequences(ad.AnnData(X=sp.csr_matrix((1, 3)), var=var.copy()))


# --------------------------------------------------------------------------------------------------
# truth recovery on the simulator (skin preset)
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def skin_gli3(sim_skin_small):
    """Gli3's linked peaks (the truth links stand in for the attention table) soft-clustered on 10 groups."""
    mdata = _copy(sim_skin_small)
    truth = mdata.uns["truth"]
    scores = truth["links"].rename(columns={"weight": "score"})
    peaks = gr.gene_peaks(scores, gene="Gli3", top_fraction=1.0, scope="gene")
    pot.pseudobulk_groups(mdata, n_groups=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = gr.peak_soft_clusters(mdata, peaks=peaks["peak"], seed=0)
    return mdata, peaks, res


def test_gli3_early_and_late_peaks_separate(skin_gli3):
    mdata, peaks, res = skin_gli3
    g3 = mdata.uns["truth"]["gli3_like"]
    cl = res["clusters"]
    early = cl.loc[cl.index.isin(g3["early_peaks"]), "cluster"]
    late = cl.loc[cl.index.isin(g3["late_peaks"]), "cluster"]
    e_mode, l_mode = early.mode().iloc[0], late.mode().iloc[0]
    print(f"Gli3: c = {res['n_clusters']}; early peaks -> {early.value_counts().to_dict()}, "
          f"late peaks -> {late.value_counts().to_dict()}")
    assert e_mode != l_mode
    assert (early == e_mode).mean() >= 0.8 and (late == l_mode).mean() >= 0.8
    cores = cl[cl["core"]]
    # the alpha cores of the two clusters are dominated by the planted groups
    assert cores.index.isin(g3["late_peaks"]).sum() >= 4 and cores.index.isin(g3["early_peaks"]).sum() >= 4
    # early (closing) cluster peaks earlier than the late (opening) one
    cen = res["centers"]
    assert np.argmax(cen.loc[e_mode].to_numpy()) < np.argmax(cen.loc[l_mode].to_numpy())
    assert "peak_clusters" in mdata["atac"].uns
    figs = [ppl.soft_clusters(res), ppl.cluster_cores(res),
            ppl.peak_links(mdata, gene="Gli3", peaks=cl.reset_index(names="peak").merge(peaks[["peak", "score"]]))]
    n_clusters = cl["cluster"].nunique()
    assert_shows(figs[0], min_data_axes=n_clusters + 1, n_colorbars=1)  # one panel per cluster + the Dmin curve
    assert_shows(figs[1], image_shape=(len(cores), res["profiles"].shape[1]), n_colorbars=1,
                 texts=[f"cluster {c}" for c in cores["cluster"].unique()])  # every core peak, grouped by cluster
    assert_shows(figs[2], texts=["Gli3"], legend=[f"cluster {c}" for c in cl["cluster"].unique()])
    for fig in figs:
        plt.close(fig)


def test_lef1_motif_enriched_in_late_cluster(skin_gli3):
    mdata, peaks, res = skin_gli3
    g3 = mdata.uns["truth"]["gli3_like"]
    cl = res["clusters"]
    late_cluster = cl.loc[cl.index.isin(g3["late_peaks"]), "cluster"].mode().iloc[0]
    fg = list(cl.index[(cl["cluster"] == late_cluster) & cl["core"]])
    rng = np.random.default_rng(0)
    others = [p for p in mdata["atac"].var_names if p not in set(peaks["peak"])]
    bg = list(rng.choice(others, size=400, replace=False))
    motifs = gr.jaspar_motifs()
    subset = [m for m in motifs if m.matrix_id == LEF1] + motifs[::20]
    match = gr.scan_motifs(mdata, peaks=fg + bg, motifs=subset)
    enr = gr.motif_enrichment(match, foreground=fg, background=bg)
    top = enr.iloc[0]
    print(f"late cluster {late_cluster}: {len(fg)} core peaks; top motif {top['motif_id']} {top['motif_name']} "
          f"({top['k_fg']}/{top['n_fg']} vs {100 * top['frac_bg']:.1f}%), p_adj {top['pval_adj']:.2g}")
    # LEF1 is among the top motifs (its TCF/LEF relatives, e.g. TCF7L2, match the planted sites as well)
    head = enr.head(3).set_index("motif_id")
    assert LEF1 in head.index and head.loc[LEF1, "pval_adj"] < 0.05


def test_motif_regulon_lef1(sim_skin_small):
    mdata = _copy(sim_skin_small)
    truth = mdata.uns["truth"]
    pot.pseudobulk_groups(mdata, n_groups=30, key_added="pt_bin")
    links = truth["links"]
    match = gr.scan_motifs(mdata, peaks=links["peak"].unique(), motifs=gr.jaspar_motifs(ids=[LEF1]))
    reg = gr.motif_regulon(mdata, tf="Lef1", motif_id=LEF1, links=links, match=match, groupby="pt_bin",
                           min_abs_r=0.5, sign="positive")
    gp = truth["gene_program"].set_index("gene")
    true_targets = set(gp.index[gp["regulator"] == "Lef1"])
    hit = reg["target"].isin(true_targets)
    top10 = hit.iloc[:10].mean()
    print(f"Lef1 regulon: {len(reg)} targets, {int(hit.sum())} planted Lef1 targets "
          f"(of {len(true_targets)}); precision {hit.mean():.2f} overall, {top10:.2f} in the top 10")
    assert len(reg) >= 5 and top10 >= 0.6 and hit.mean() > len(true_targets) / mdata["rna"].n_vars
    assert (reg["r"] >= 0.5).all() and (reg["n_motif_peaks"] >= 1).all()
    fig = ppl.regulon(reg, tf="Lef1", truth=true_targets)
    assert_shows(fig, texts=["Lef1", reg["target"].iloc[0]], n_bars=min(20, len(reg)))
    plt.close(fig)
