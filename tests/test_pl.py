"""Every public plot of ``attune_lib.pl``: what it draws, that it draws into the caller's axes, and its layout.

Each plot is rendered on small hand-made tables shaped like what its ``tl`` function returns (or on a
slice of ``sim_skin_small``), twice: on a figure of its own and on axes the test hands it. Both times
the test checks what is drawn: points, bars, lines, images, titles, axis labels, legends and colour bars.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from plot_checks import (
    assert_axes,
    assert_shows,
    assert_style,
    axes_content,
    content,
    has_data,
    is_colorbar,
    style_problems,
)

import attune_lib as al
from attune_lib._utils import AttuneInputError
from attune_lib.pl._style import CONTRAST_LABELS, HIGHLIGHT

PKG = Path(al.__file__).resolve().parent
HELPER_MODULES = {"_style"}
#: plots whose leading data arguments are more than one (the rest are keyword-only)
N_DATA_ARGS = {"dpag_dotplot": 3}


# ----------------------------------------------------------------------------------------------- layout
def test_every_pl_file_mirrors_a_tl_file():
    pl_files = {p.stem for p in (PKG / "pl").glob("_*.py") if p.stem != "__init__"}
    tl_files = {p.stem for p in (PKG / "tl").glob("_*.py")}
    assert HELPER_MODULES <= pl_files
    orphans = sorted(pl_files - HELPER_MODULES - tl_files)
    assert not orphans, f"pl files without a tl counterpart: {orphans} (shared helpers go in pl/_style.py)"


def test_each_plot_lives_in_the_file_of_its_tl_results():
    for name in al.pl.__all__:
        mod = getattr(al.pl, name).__module__.rsplit(".", 1)[-1]
        if name == "savefig":
            assert mod == "_style"
        else:
            assert mod not in HELPER_MODULES and (PKG / "tl" / f"{mod}.py").exists(), f"{name} is in pl/{mod}.py"


@pytest.mark.parametrize("name", [n for n in al.pl.__all__ if n != "savefig"])
def test_signature_data_first_options_keyword_only_with_ax(name):
    params = list(inspect.signature(getattr(al.pl, name)).parameters.values())
    n_data = N_DATA_ARGS.get(name, 1)
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params[:n_data]), params[:n_data]
    assert all(p.kind is p.KEYWORD_ONLY for p in params[n_data:]), f"{name}: options after the data are keyword-only"
    ax = {p.name: p for p in params}.get("ax")
    assert ax is not None and ax.kind is ax.KEYWORD_ONLY and ax.default is None, f"{name} lacks ax=None"
    assert getattr(al.pl, name).__doc__.count("\n    ax\n") == 1, f"{name}: document ax"


# ----------------------------------------------------------------------------------------------- inputs
@pytest.fixture(scope="module")
def rna(sim_skin_small):
    """80 RNA cells of the skin simulation with prediction/residual layers, a 2-D basis and residual trends."""
    a = sim_skin_small["rna"][:80].copy()
    rng = np.random.default_rng(0)
    a.layers["pred"] = rng.normal(size=a.shape)
    a.layers["residual"] = rng.normal(size=a.shape)
    a.obsm["X_umap"] = rng.normal(size=(a.n_obs, 2))
    grid = pd.Index(np.linspace(0, 1, 20), name="pseudotime")
    genes = list(a.var_names[:5])
    curves = pd.DataFrame(np.sin(np.outer(grid, np.arange(1, 6))), index=grid, columns=genes)
    table = pd.DataFrame({"t_max": curves.idxmax().to_numpy(), "pattern": ["peak-early"] * 5,
                          "snr": np.arange(5, 0, -1.0)}, index=genes)
    a.uns["residual_trends"] = {"table": table, "curves": curves}
    return a


def _bench():
    rows = []
    for i, m in enumerate(["attune", "pca_lsi", "glue"]):
        for seed in (0, 1):
            rows.append({"method": m, "label": m, "seed": seed, "status": "ok", "bio_conservation": 0.5 + 0.1 * i,
                         "omics_mixing": 0.4 + 0.05 * seed, "overall": 0.6 - 0.1 * i + 0.01 * seed,
                         "foscttm": np.nan if m == "glue" else 0.1 + 0.02 * i, "alignment": 0.3 + i,
                         "uniformity": -2.0 + i})
    rows.append({**rows[0], "seed": 2, "status": "skipped: no GPU", "overall": np.nan})
    return pd.DataFrame(rows)


def _feature_sweep():
    rows = [{"method": "attune", "n_genes_requested": g, "n_peaks": p, "seed": s, "status": "ok",
             "bio_conservation": 0.5 + g / 1e4, "omics_mixing": 0.4 + p / 1e5, "overall": 0.5}
            for g in (500, 1000) for p in (2000, 4000) for s in (0, 1)]
    rows += [{"method": "pca_lsi", "label": "pca_lsi", "n_genes_requested": 1000, "n_peaks": 4000, "seed": s,
              "status": "ok", "bio_conservation": 0.3, "omics_mixing": 0.3, "overall": 0.3} for s in (0, 1)]
    return pd.DataFrame(rows)


def _dimension_sweep():
    rows = [{"method": "attune", "n_latent": d, "seed": s, "status": "ok", "overall": 0.5 + d / 100}
            for d in (8, 16, 32) for s in (0, 1)]
    rows += [{"method": "pca_lsi", "label": "pca_lsi", "n_latent": 30, "seed": 0, "status": "ok", "overall": 0.4}]
    return pd.DataFrame(rows)


def _contrast_sweep():
    rows = [{"method": "attune", "design": d, "seed": s, "status": "ok", "overall": 0.5 + 0.1 * i,
             "foscttm": 0.2 - i / 50} for i, d in enumerate(("default", "intra", "cross")) for s in (0, 1)]
    rows += [{"method": "pca_lsi", "label": "pca_lsi", "design": "none", "seed": 0, "status": "ok", "overall": 0.3,
              "foscttm": 0.3}]
    return pd.DataFrame(rows)


def _refmap():
    n = 90
    rng = np.random.default_rng(1)
    ct = np.repeat(["A", "B", "C"], n // 3)
    query = np.arange(n) % 3 == 0
    out = ad.AnnData(obs=pd.DataFrame({"cell_type": pd.Categorical(ct), "ref_query": np.where(query, "query",
                                                                                           "reference"),
                                       "held_out": query & (ct == "C")}, index=[f"c{i}" for i in range(n)]))
    out.obsm["X_umap_attune"] = rng.normal(size=(n, 2))
    near = pd.DataFrame({"A": [0.7], "B": [0.3], "n_cells": [10]}, index=["C"])
    out.uns["reference_mapping"] = {"holdout_type": "C", "nearest_reference_types": near}
    return out


def _per_gene(contrasts=False):
    rng = np.random.default_rng(2)
    rows = []
    for m in ("attune_finetuned", "lasso") if not contrasts else ("default", "intra"):
        for split in (0, 1):
            for g in range(10):
                rows.append({"method": m if not contrasts else "attune_finetuned", "setting": "attune_finetuned",
                             "contrast": m if contrasts else "default", "split": split, "gene": f"g{g}",
                             "pearson": rng.uniform(0.2, 0.8), "spearman": rng.uniform(0.2, 0.8),
                             "rmse": rng.uniform(0.5, 1.0)})
    return pd.DataFrame(rows)


def _summary(contrasts=False):
    d = _per_gene(contrasts)
    keys = ["method", "setting", "contrast", "split"]
    return d.groupby(keys, as_index=False)[["pearson", "spearman", "rmse"]].mean()


def _pchic():
    i = np.arange(40)
    return pd.DataFrame({"baitChr": "chr1", "baitStart": i * 10_000, "baitEnd": i * 10_000 + 1000,
                         "oeChr": np.where(i < 2, "chr2", "chr1"), "oeStart": i * 10_000 + 50_000 * i,
                         "oeEnd": i * 10_000 + 50_000 * i + 2000, "Mon": np.where(i < 30, 8.0, 1.0),
                         "Neu": 0.0})


def _scores():
    rows = [{"method": m, "bin": b, "auroc": a, "auprc": a / 4, "n_pairs": 1000, "n_pos": 50, "pos_rate": 0.05}
            for b in ("all", "0-100kb") for m, a in (("A", 0.8), ("B", 0.6), ("C", 0.55))]
    return pd.DataFrame(rows)


def _links():
    rng = np.random.default_rng(3)
    return pd.DataFrame({"score": np.sort(rng.exponential(size=200))[::-1], "distance": rng.uniform(0, 1e6, 200)})


def _heat():
    idx = [f"G{i}-chr1:{i}00-{i}50" for i in range(12)]
    cols = ["t1", "t2", "t3", "t4"]
    rng = np.random.default_rng(4)
    return {"rna": pd.DataFrame(rng.normal(size=(12, 4)), index=idx, columns=cols),
            "atac": pd.DataFrame(rng.normal(size=(12, 4)), index=idx, columns=cols)}


def _window():
    return pd.DataFrame([{"method": m, "window_kb": w, "auroc": 0.5 + w / 1e4} for m in ("A", "B")
                         for w in (300, 600, 1200)])


def _enrichment():
    return pd.DataFrame({"term": [f"term {i}" for i in range(5)], "padj": [1e-5, 1e-3, 0.01, 0.2, 0.5],
                         "n_overlap": [3, 4, 5, 1, 1], "n_set": [20, 30, 40, 50, 60]})


def _evaluation():
    return pd.DataFrame([{"truth": t, "method": m, "auroc": 0.6 + 0.1 * i, "auprc": 0.1 + 0.05 * i,
                          "auroc_distance_matched": 0.5 + 0.05 * i}
                         for t in ("T1", "T2") for i, m in enumerate(("Distance", "X", "Y"))])


def _composition():
    return pd.DataFrame(np.full((5, 3), 1 / 3), index=pd.Index([f"pt{i}" for i in range(5)], name="pt_group"),
                        columns=["TAC", "IRS", "Hair Shaft"])


def _lagging():
    return pd.DataFrame({"score": np.linspace(2, 0.1, 12)}, index=[f"gene{i}" for i in range(12)])


@pytest.fixture(scope="module")
def soft():
    rng = np.random.default_rng(5)
    up, down = np.linspace(-1, 1, 5), np.linspace(1, -1, 5)
    prof = pd.DataFrame(np.vstack([up + rng.normal(0, 0.1, (6, 5)), down + rng.normal(0, 0.1, (6, 5))]),
                        index=[f"chr1:{i}000-{i}100" for i in range(12)], columns=[f"pt{i}" for i in range(5)])
    res = al.tl.fuzzy_cmeans(prof, n_clusters=2, seed=0)
    res["dmin"] = pd.DataFrame({"c": [2, 3, 4], "dmin": [1.0, 0.5, 0.4]})
    return res


def _transit():
    idx = pd.MultiIndex.from_tuples([("1", "peak", "p1"), ("1", "peak", "p2"), ("1", "gene", "G1"),
                                     ("2", "peak", "p3"), ("2", "gene", "G2"), ("2", "gene", "G3")],
                                    names=["cluster", "kind", "feature"])
    return pd.DataFrame(np.random.default_rng(6).normal(size=(6, 5)), index=idx, columns=[f"pt{i}" for i in range(5)])


def _cooccurring():
    # cluster labels as the notebook passes them ("cluster 1"): a title must not say "cluster cluster 1"
    rows = [{"cluster": f"cluster {k}", "gene": f"G{k}{g}", "pval": 10.0 ** -(6 - i), "mean_r": 0.5}
            for k, n in ((1, 6), (2, 4)) for i, g in enumerate("abcdef"[:n])]
    return pd.DataFrame(rows)


def _motifs():
    return pd.DataFrame({"motif_id": [f"MA{i:04d}.1" for i in range(12)], "motif_name": [f"TF{i}" for i in range(12)],
                         "pval": np.logspace(-8, -1, 12), "k_fg": 3, "n_fg": 10, "frac_bg": 0.05})


def _regulon():
    return pd.DataFrame({"target": [f"T{i}" for i in range(8)], "r": [0.8, -0.6, 0.5, -0.4, 0.3, 0.2, -0.1, 0.05]})


def _similarity():
    S = pd.DataFrame(np.random.default_rng(7).uniform(size=(20, 20)))
    S.attrs["groups"] = ["a"] * 10 + ["b"] * 10
    return S


def _distances():
    rng = np.random.default_rng(8)
    return ad.AnnData(obs=pd.DataFrame({"rna_atac_cosine_distance": rng.uniform(0, 0.3, 60),
                                        "cell_type": pd.Categorical(np.repeat(["a", "b", "c"], 20))},
                                       index=[f"c{i}" for i in range(60)]))


def _peak_links_inputs(mdata):
    rna, atac = mdata["rna"], mdata["atac"]
    mids = (atac.var["start"] + atac.var["end"]) / 2
    for gene in rna.var_names:
        v = rna.var.loc[gene]
        near = atac.var_names[(atac.var["chrom"] == v["chrom"]).to_numpy() & (np.abs(mids - v["tss"]) < 300_000)]
        if len(near) >= 4:
            peaks = pd.DataFrame({"peak": near[:4], "cluster": ["1", "1", "2", None], "score": [1.0, 2.0, 3.0, 0.5]})
            return gene, peaks
    raise AssertionError("no gene with 4 peaks within 300 kb in the simulation")


# ----------------------------------------------------------------------------------------------- cases
@dataclass
class Case:
    """How to call one plot (``call(inputs, ax)``), how many panels it draws, and what each must show."""

    call: Callable
    n_axes: int
    check: Callable  # check(fig, panels, inputs)


def _titles(panels):
    return [p.get_title() for p in panels]


def _child_ticklabels(ax) -> list[str]:
    """Tick labels of the secondary axes of ``ax`` (peak/cluster names written on the right)."""
    return [t.get_text() for ch in ax.child_axes for t in (*ch.get_yticklabels(), *ch.get_xticklabels())]


def _check_bio_vs_mixing(fig, p, _):
    assert_axes(p[0], xlabel="omics mixing", ylabel="biology conservation", n_points=6 + 3,
                legend=["Attune", "PCA/LSI", "GLUE"], title="biology conservation")


def _check_overall(fig, p, _):
    assert_axes(p[0], n_bars=3, n_points=6, ylabel="overall score", ticklabels=["Attune", "PCA/LSI", "GLUE"],
                title="Overall integration score")
    c = assert_axes(p[1], n_bars=2, n_points=4, ylabel="FOSCTTM", ticklabels=["Attune", "PCA/LSI"])
    assert "GLUE" not in c["xticklabels"]  # no FOSCTTM for glue: no bar
    assert c["bars"][0][1] == pytest.approx(0.1)  # attune's mean FOSCTTM


def _check_alignment(fig, p, _):
    assert_axes(p[0], xlabel="uniform", ylabel="align", n_points=6, legend=["Attune", "PCA/LSI", "GLUE"])


def _check_feature_sweep(fig, p, _):
    assert_axes(p[0], n_points=4 + 1, xlabel="omics mixing",  # 4 (genes, peaks) means + 1 anchor star
                legend=["500 genes", "1000 genes", "2000 peaks", "4000 peaks", "PCA/LSI"])


def _check_dimension_sweep(fig, p, _):
    c = assert_axes(p[0], n_bars=3, n_points=6, ticklabels=["8", "16", "32"], xlabel="embedding dimension",
                    legend=["PCA/LSI"])
    assert [h for _, h in c["bars"]] == pytest.approx([0.58, 0.66, 0.82])


def _check_contrast(fig, p, _):
    for ax, met in zip(p, ("overall score (higher", "FOSCTTM (lower")):
        assert_axes(ax, n_bars=3, title=met, ticklabels=[CONTRAST_LABELS[d] for d in ("default", "intra", "cross")],
                    legend=["PCA/LSI"])


def _check_refmap(fig, p, _):
    assert_axes(p[0], n_points=90, legend=["reference (60)", "query (30)"], xlabel="UMAP1", ylabel="UMAP2")
    assert_axes(p[1], n_points=90, legend=["A", "B", "C"])
    assert_axes(p[2], n_points=60 + 10, legend=["held-out query"], title="unseen type: C")
    assert "nearest reference: A 70%, B 30%" in p[2].get_title()


def _check_violins(fig, p, _):
    for ax, lab in zip(p, ("gene-wise Pearson", "gene-wise Spearman", "RMSE")):
        c = assert_axes(ax, ylabel=lab, n_points=2, ticklabels=["Attune (fine-tuned)", "Lasso"])
        assert c["n_polys"] == 2  # one violin per method
    assert p[0].get_legend() is not None
    assert "RNA predicted from ATAC" in content(fig)["text"]


def _check_pred_table(fig, p, _):
    c = assert_axes(p[0], image_shape=(2, 3), title="mean ± sd", ticklabels=["gene-wise Pearson"])
    assert len(c["texts"]) == 2 * 3
    assert any(t.startswith("Attune (fine-tuned) (this run, n=2)") for t in c["yticklabels"])


def _check_ablation_pred(fig, p, _):
    for ax in p:
        c = assert_axes(ax, n_points=2, ticklabels=[CONTRAST_LABELS["default"], CONTRAST_LABELS["intra"]])
        assert c["n_polys"] == 2 and len(c["texts"]) == 2  # violins and their mean labels
    assert "Contrast design" in content(fig)["text"]


def _check_pchic(fig, p, _):
    c = assert_axes(p[0], n_bars=10, xlabel="distance (kb)", ylabel="interactions", title="n=28,")
    assert sum(h for _, h in c["bars"]) == 28  # 30 above the score, 2 across chromosomes
    twins = [a for a in fig.axes if a is not p[0] and a.get_ylabel() == "cumulative fraction"]
    assert len(twins) == 1 and axes_content(twins[0])["line_lengths"] == [28]


def _check_link_auroc(fig, p, _):
    c = assert_axes(p[0], n_bars=3, xlabel="AUROC", ticklabels=["A", "B", "C"], texts=[" 0.800"])
    assert c["bar_colors"][0] == to_rgba(HIGHLIGHT)  # the highlighted method
    assert_axes(p[1], n_bars=3, xlabel="AUPRC")
    assert "PCHi-C-supported pairs: 50 of 1,000 candidates" in content(fig)["text"]


def _check_elbow(fig, p, _):
    c = assert_axes(p[0], n_lines=3, n_points=1, xlabel="ranked by attention", ylabel="score")
    assert 200 in c["line_lengths"]
    assert any(t.startswith("top 10%: 20 pairs") for t in c["legend"]) and any("elbow" in t for t in c["legend"])


def _check_link_heatmap(fig, p, _):
    assert_axes(p[0], image_shape=(12, 4), title="expression", ticklabels=["t1", "G0-chr1:000-050"])
    assert_axes(p[1], image_shape=(12, 4), title="accessibility")
    assert_shows(fig, n_colorbars=1, texts=["z-score across groups"])


def _check_window(fig, p, _):
    c = assert_axes(p[0], n_lines=3, legend=["A", "B"], xlabel="window (kb)", ylabel="AUROC")
    assert sorted(c["line_lengths"]) == [2, 3, 3]


def _check_dpag(fig, p, inputs):
    genes = inputs["dpag_genes"]
    c0 = assert_axes(p[0], n_bars=2, title="8 DPAGs", ticklabels=["DE", "not DE"])
    assert [h for _, h in c0["bars"]] == [3, 5]
    n_groups = inputs["skin"]["rna"].obs["cell_type"].nunique()
    c1 = assert_axes(p[1], n_points=8 * n_groups, ticklabels=[f"{genes[0]} *"])
    assert_shows(fig, legend=["25%", "50%", "100%"])  # the dot sizes
    assert f"{genes[5]} *" not in c1["yticklabels"]  # only the DE genes are starred
    assert_shows(fig, n_colorbars=1, texts=["mean expression (z)"])


def _check_enrichment(fig, p, _):
    c = assert_axes(p[0], n_bars=5, xlabel="-log10 adjusted p", legend=["adjusted p < 0.05", "not significant"],
                    texts=[" 3/20"], ticklabels=["term 0"])
    assert sum(col == to_rgba(HIGHLIGHT) for col in c["bar_colors"]) == 3


def _check_link_comparison(fig, p, _):
    for ax, lab in zip(p, ("AUROC", "AUPRC", "distance-matched AUROC")):
        assert_axes(ax, n_bars=3, xlabel=lab)
    assert_axes(p[0], ticklabels=["Distance", "X", "Y"])  # the other panels share its y axis
    assert "links vs T1 (dashed: Distance)" in content(fig)["text"]


def _check_residual_embedding(fig, p, inputs):
    g = inputs["rna"].var_names[0]
    for ax, what in zip(p, ("predicted", "measured", "residual")):
        assert_axes(ax, n_points=80, title=f"{g}: {what}")
    assert_shows(fig, n_colorbars=3)


def _check_residual_trend(fig, p, inputs):
    genes = list(inputs["rna"].var_names[:2])
    for ax, g in zip(p, genes):
        assert_axes(ax, title=g, xlabel="pseudotime", ylabel="residual", n_points=80 + 1, n_lines=3)
    cats = [str(c) for c in inputs["rna"].obs["cell_type"].astype("category").cat.categories]
    assert_axes(p[0], legend=[*cats, "max residual", "transition"])


def _check_trend_heatmap(fig, p, inputs):
    genes = list(inputs["rna"].var_names[:5])
    c = assert_axes(p[0], image_shape=(5, 20), xlabel="pseudotime", title="GAM trends")
    assert f"{genes[0]} *" in c["yticklabels"] and genes[1] in c["yticklabels"]
    assert_shows(fig, n_colorbars=1, texts=["residual trend"])
    assert "peak-early" in _child_ticklabels(p[0])  # the trend patterns, on the right


def _check_composition(fig, p, _):
    assert_axes(p[0], n_bars=15, legend=["TAC", "IRS", "Hair Shaft"], ticklabels=["pt0", "pt4"],
                xlabel="pseudotime group",
                ylabel="fraction of cells")


def _check_lagging(fig, p, _):
    # gene11 (planted, rank 12) is drawn after the top 10, with its rank
    c = assert_axes(p[0], n_bars=11, ticklabels=["gene0", "gene9", "gene11 (#12)"], title="AUROC vs planted 0.90",
                    ylabel="lagging score", legend=["planted lagging gene", "other gene"])
    assert sum(col == to_rgba(HIGHLIGHT) for col in c["bar_colors"]) == 3
    assert "gene10" not in c["xticklabels"]


def _check_soft(fig, p, inputs):
    res = inputs["soft"]
    for ax, lab in zip(p, res["centers"].index):
        n_members = int((res["clusters"]["cluster"].astype(str) == str(lab)).sum())
        assert_axes(ax, n_lines=n_members + 1, title=f"cluster {lab}: {n_members} peaks")
    assert_axes(p[2], n_lines=2, legend=["chosen c = 2"], xlabel="cluster number c")
    assert_shows(fig, n_colorbars=1, texts=["membership"])


def _check_cores(fig, p, inputs):
    n_core = int(inputs["soft"]["clusters"]["core"].sum())
    assert_axes(p[0], image_shape=(n_core, 5), ylabel="alpha-core peaks")
    names = axes_content(p[0])["texts"]
    assert any(t.startswith("cluster 1 (") for t in names) and any(t.startswith("cluster 2 (") for t in names)
    assert_shows(fig, n_colorbars=1, texts=["standardised accessibility"])


def _check_peak_links(fig, p, inputs):
    gene = inputs["peak_links"][0]
    # the peak without a cluster is not drawn: 3 peaks + the TSS, one arc per kept peak
    c = assert_axes(p[0], n_points=3 + 1, texts=[gene], legend=["cluster 1", "cluster 2"], xlabel="position (kb)",
                    title=f"high-attention peaks of {gene}\n3 of 4 linked peaks drawn")
    assert c["line_lengths"].count(60) == 3
    assert not p[0].xaxis.get_offset_text().get_text()  # no "1e6" offset


def _check_transit(fig, p, _):
    c = assert_axes(p[0], image_shape=(6, 5), ticklabels=["[1] peak: p1", "[2] gene: G3"], n_lines=1)
    assert c["title"].startswith("peaks and co-occurring genes")
    assert_shows(fig, n_colorbars=1, texts=["standardised"])


def _check_cooccurring(fig, p, _):
    for ax, cl in zip(p, ("cluster 1", "cluster 2")):
        c = assert_axes(ax, n_bars=3, xlabel="-log10 p", texts=["r=0.50, p=1.0e-06"])
        assert c["title"] == cl
    assert sum(col == to_rgba(HIGHLIGHT) for col in axes_content(p[0])["bar_colors"]) == 1
    assert_shows(fig, legend=["co-occurring gene", "highlighted gene"])  # red is explained


def _check_motifs(fig, p, _):
    c = assert_axes(p[0], n_bars=10, ticklabels=["MA0000.1 TF0", "MA0009.1 TF9"], texts=["3/10 vs 5%"],
                    title="motif enrichment")
    assert "MA0011.1 TF11" not in c["yticklabels"]


def _check_regulon(fig, p, _):
    c = assert_axes(p[0], n_bars=8, xlabel="Spearman r with Lef1", legend=["true target", "positive r", "negative r"],
                    ticklabels=["T0", "T7"])
    assert sum(col == to_rgba("tab:red") for col in c["bar_colors"]) == 2


def _check_cross_modal(fig, p, _):
    assert_axes(p[0], image_shape=(20, 20), xlabel="ATAC embedding", ylabel="RNA embedding")
    bars = p[0].child_axes
    assert sorted(axes_content(b)["images"][0] for b in bars) == [(1, 20, 3), (20, 1, 3)]
    assert any(b.get_legend() is not None and [t.get_text() for t in b.get_legend().get_texts()] == ["a", "b"]
               for b in bars)
    assert_shows(fig, n_colorbars=1, texts=["cosine similarity"])


def _check_distance(fig, p, _):
    c = assert_axes(p[0], min_points=60, ticklabels=["a", "b", "c"], ylabel="RNA-ATAC cosine distance")
    assert c["n_polys"] == 3 and len([t for t in c["texts"] if t.endswith("%")]) == 3
    assert 0.1 in [ln.get_ydata()[0] for ln in p[0].lines if len(ln.get_ydata()) == 2]  # the threshold


def _check_qc(fig, p, inputs):
    cats = sorted(inputs["qc_mdata"]["rna"].obs["cell_type"].astype(str).unique())
    titles = ["RNA: total counts", "RNA: detected features", "ATAC: total counts", "ATAC: detected features"]
    for ax, t in zip(p, titles):
        c = assert_axes(ax, title=t, ticklabels=cats)
        assert c["n_polys"] == len(cats)  # one violin per cell type


def _check_embedding(fig, p, inputs):
    g = inputs["rna"].var_names[0]
    cats = [str(c) for c in inputs["rna"].obs["cell_type"].astype("category").cat.categories]
    assert_axes(p[0], n_points=80, legend=cats, title="UMAP: cell type")
    assert_axes(p[1], n_points=80, title=f"UMAP: {g}")
    assert p[1].get_legend() is None
    assert_shows(fig, n_colorbars=1)


CASES = {
    "bio_vs_mixing": Case(lambda d, ax: al.pl.bio_vs_mixing(d["bench"], ax=ax), 1, _check_bio_vs_mixing),
    "overall_and_foscttm": Case(lambda d, ax: al.pl.overall_and_foscttm(d["bench"], ax=ax), 2, _check_overall),
    "alignment_uniformity": Case(lambda d, ax: al.pl.alignment_uniformity(d["bench"], ax=ax), 1, _check_alignment),
    "feature_sweep": Case(lambda d, ax: al.pl.feature_sweep(_feature_sweep(), ax=ax), 1, _check_feature_sweep),
    "dimension_sweep": Case(lambda d, ax: al.pl.dimension_sweep(_dimension_sweep(), ax=ax), 1, _check_dimension_sweep),
    "contrast_ablation": Case(lambda d, ax: al.pl.contrast_ablation(_contrast_sweep(), ax=ax), 2, _check_contrast),
    "reference_mapping": Case(lambda d, ax: al.pl.reference_mapping(_refmap(), ax=ax), 3, _check_refmap),
    "prediction_violins": Case(lambda d, ax: al.pl.prediction_violins(_per_gene(), ax=ax), 3, _check_violins),
    "prediction_table": Case(lambda d, ax: al.pl.prediction_table(_summary(), paper=pd.DataFrame(), ax=ax), 1,
                             _check_pred_table),
    "contrast_ablation_prediction": Case(lambda d, ax: al.pl.contrast_ablation_prediction(_per_gene(True), ax=ax), 3,
                                         _check_ablation_pred),
    "pchic_distances": Case(lambda d, ax: al.pl.pchic_distances(_pchic(), bins=10, ax=ax), 1, _check_pchic),
    "link_auroc": Case(lambda d, ax: al.pl.link_auroc(_scores(), highlight="A", ax=ax), 2, _check_link_auroc),
    "attention_elbow": Case(lambda d, ax: al.pl.attention_elbow(_links(), ax=ax), 1, _check_elbow),
    "link_heatmap": Case(lambda d, ax: al.pl.link_heatmap(_heat(), ax=ax), 2, _check_link_heatmap),
    "window_sweep": Case(lambda d, ax: al.pl.window_sweep(_window(), highlight="A", ax=ax), 1, _check_window),
    "dpag_dotplot": Case(lambda d, ax: al.pl.dpag_dotplot(
        d["skin"], pd.DataFrame({"gene": [*d["dpag_genes"], "not_a_gene"]}),
        pd.DataFrame({"gene": d["dpag_genes"][:3]}), ax=ax), 2, _check_dpag),
    "enrichment_bars": Case(lambda d, ax: al.pl.enrichment_bars(_enrichment(), ax=ax), 1, _check_enrichment),
    "link_comparison": Case(lambda d, ax: al.pl.link_comparison(_evaluation(), ax=ax), 3, _check_link_comparison),
    "residual_embedding": Case(lambda d, ax: al.pl.residual_embedding(
        d["rna"], gene=d["rna"].var_names[0], basis="X_umap", predicted_layer="pred", ax=ax), 3,
        _check_residual_embedding),
    "residual_trend": Case(lambda d, ax: al.pl.residual_trend(d["rna"], genes=list(d["rna"].var_names[:2]),
                                                              transition=0.5, ax=ax), 2, _check_residual_trend),
    "trend_heatmap": Case(lambda d, ax: al.pl.trend_heatmap(d["rna"], highlight=[d["rna"].var_names[0]], ax=ax), 1,
                          _check_trend_heatmap),
    "pseudobulk_composition": Case(lambda d, ax: al.pl.pseudobulk_composition(_composition(), ax=ax), 1,
                                   _check_composition),
    "lagging_ranking": Case(lambda d, ax: al.pl.lagging_ranking(_lagging(), truth=["gene1", "gene4", "gene11"], n=10,
                                                                auroc=0.9, ax=ax), 1, _check_lagging),
    "soft_clusters": Case(lambda d, ax: al.pl.soft_clusters(d["soft"], ax=ax), 3, _check_soft),
    "cluster_cores": Case(lambda d, ax: al.pl.cluster_cores(d["soft"], ax=ax), 1, _check_cores),
    "peak_links": Case(lambda d, ax: al.pl.peak_links(d["skin"], gene=d["peak_links"][0], peaks=d["peak_links"][1],
                                                      ax=ax), 1, _check_peak_links),
    "transit_heatmap": Case(lambda d, ax: al.pl.transit_heatmap(_transit(), ax=ax), 1, _check_transit),
    "cooccurring_genes": Case(lambda d, ax: al.pl.cooccurring_genes(_cooccurring(), n=3, highlight=["G1a"], ax=ax),
                              2, _check_cooccurring),
    "motif_enrichment": Case(lambda d, ax: al.pl.motif_enrichment(_motifs(), ax=ax), 1, _check_motifs),
    "regulon": Case(lambda d, ax: al.pl.regulon(_regulon(), tf="Lef1", truth=["T0", "T3"], ax=ax), 1, _check_regulon),
    "cross_modal_heatmap": Case(lambda d, ax: al.pl.cross_modal_heatmap(_similarity(), ax=ax), 1, _check_cross_modal),
    "distance_by_group": Case(lambda d, ax: al.pl.distance_by_group(_distances(), ax=ax), 1, _check_distance),
    "qc": Case(lambda d, ax: al.pl.qc(d["qc_mdata"], groupby="cell_type", ax=ax), 4, _check_qc),
    "embedding": Case(lambda d, ax: al.pl.embedding(d["rna"], basis="X_umap",
                                                    color=["cell_type", d["rna"].var_names[0]], ax=ax), 2,
                      _check_embedding),
}


@pytest.fixture(scope="module")
def inputs(sim_skin_small, rna, soft):
    qc_mdata = sim_skin_small[:60].copy()
    al.tl.qc_metrics(qc_mdata)
    return {"bench": _bench(), "skin": sim_skin_small, "rna": rna, "soft": soft, "qc_mdata": qc_mdata,
            "dpag_genes": list(sim_skin_small["rna"].var_names[:8]), "peak_links": _peak_links_inputs(sim_skin_small)}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_the_cases_cover_every_plot():
    assert set(CASES) == set(al.pl.__all__) - {"savefig"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_plot_on_its_own_figure(name, inputs):
    case = CASES[name]
    before = set(plt.get_fignums())
    fig = case.call(inputs, None)
    assert isinstance(fig, Figure) and fig.number not in before
    panels = [a for a in fig.axes if not is_colorbar(a) and a.get_visible()][: case.n_axes]
    assert all(has_data(axes_content(a)) for a in panels), [axes_content(a) for a in panels]
    case.check(fig, panels, inputs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_plot_follows_the_style_guide(name, inputs):
    """Titles, axis labels, legends/colour bars present; fonts >= 8 pt; no internal keys; no overlapping panels."""
    assert_style(CASES[name].call(inputs, None))


def test_the_style_check_catches_the_defects_it_names():
    """A figure with each defect the style guide forbids is reported, one problem per defect."""
    fig, axes = plt.subplots(1, 2, figsize=(4, 2))  # no layout: the right panel's label runs into the left one
    a, b = axes
    a.plot([7.0e6, 7.5e6, 8.0e6], [0, 1, 2])  # a 1e6 offset on the x axis
    a.set_title("cluster cluster 1")
    a.set_ylabel("X_umap_attune: topic_pseudotime")
    b.scatter([0, 1, 2], [0, 1, 2], s=[5, 50, 500], c=[0.1, 0.5, 0.9])  # sizes and colours, no legend or bar
    b.set_ylabel("a long label that reaches into the left panel", fontsize=6)
    b.yaxis.set_label_coords(-0.6, 0.5)
    problems = " | ".join(style_problems(fig))
    for want in ("internal key in text 'X_umap_attune: topic_pseudotime'", "internal key in text 'cluster cluster 1'",
                 "font 6.0 pt", "no title", "numeric x axis without a label", "offset text", "without a colour bar",
                 "dot sizes vary", "overlaps panel"):
        assert want in problems, f"{want!r} not reported: {problems}"
    good, ax = plt.subplots(layout="constrained")
    ax.plot([0, 1], [0, 1])
    ax.set(title="a title", xlabel="pseudotime", ylabel="residual")
    assert style_problems(good) == []


def test_cell_types_keep_their_colour_in_every_figure(sim_small):
    from attune_lib.pl._style import CELL_TYPE_COLORS, cell_type_palette

    # the same label gets the same colour whatever the other labels and their order
    one = cell_type_palette(["CD14 Mono", "B naive", "NK"])
    two = cell_type_palette(["NK", "pDC", "CD14 Mono", "CD4 T", "CD8 T"])
    assert one["CD14 Mono"] == two["CD14 Mono"] == CELL_TYPE_COLORS["CD14 Mono"] and one["NK"] == two["NK"]
    # unknown labels: stable, distinct within a plot
    u1, u2 = cell_type_palette(["alpha", "beta", "gamma"]), cell_type_palette(["gamma", "alpha"])
    assert u1["alpha"] == u2["alpha"] and len(set(u1.values())) == 3
    # the data's own uns["cell_type_colors"] wins
    rna = sim_small["rna"][:50].copy()
    rna.obs["cell_type"] = rna.obs["cell_type"].astype("category")
    cats = list(rna.obs["cell_type"].cat.categories)
    rna.uns["cell_type_colors"] = ["#000000"] * len(cats)
    assert set(cell_type_palette(cats, adata=rna, key="cell_type").values()) == {"#000000"}
    # two plots of different notebooks draw CD14 Mono in one colour
    rna = sim_small["rna"].copy()
    rna.obsm["X_umap"] = np.random.default_rng(0).normal(size=(rna.n_obs, 2))
    rna.obs["pt_group"] = pd.Categorical(np.where(np.arange(rna.n_obs) % 2, "g1", "g2"))
    f1 = al.pl.embedding(rna, basis="X_umap", color="cell_type")
    comp = pd.crosstab(rna.obs["pt_group"], rna.obs["cell_type"], normalize="index")
    f2 = al.pl.pseudobulk_composition(comp)

    def colour_of(fig, name):
        leg = fig.axes[0].get_legend()
        for h, t in zip(leg.legend_handles, leg.get_texts()):
            if t.get_text() == name:
                return to_rgba(h.get_facecolor()[0] if hasattr(h.get_facecolor(), "__len__")
                               and np.ndim(h.get_facecolor()) == 2 else h.get_facecolor())
        raise AssertionError(f"{name} not in the legend")

    assert colour_of(f1, "CD14 Mono") == colour_of(f2, "CD14 Mono") == to_rgba(CELL_TYPE_COLORS["CD14 Mono"])


def test_labels_are_words():
    from attune_lib.pl._style import label

    assert label("X_umap_attune") == "UMAP (Attune)"
    assert label("topic_pseudotime") == "pseudotime (topics)"
    assert label("lsi_ridge") == "LSI + ridge"
    assert label("some_new_key") == "some new key"
    assert label("CD14 Mono") == "CD14 Mono" and label(3) == "3"


@pytest.mark.parametrize("name", sorted(CASES))
def test_plot_draws_into_the_given_axes(name, inputs, monkeypatch):
    case = CASES[name]
    fig, axes = plt.subplots(1, case.n_axes, squeeze=False, figsize=(4 * case.n_axes, 4))
    fig.suptitle("caller's title")
    given = axes[0, 0] if case.n_axes == 1 else axes  # one Axes, or the array plt.subplots returns

    def refuse(*_a, **_k):
        raise AssertionError("a plot given ax= must not create, show or save a figure")

    for where, attr in ((plt, "figure"), (plt, "subplots"), (plt, "show"), (Figure, "savefig")):
        monkeypatch.setattr(where, attr, refuse)
    before = set(plt.get_fignums())
    out = case.call(inputs, given)
    monkeypatch.undo()
    assert out is fig and set(plt.get_fignums()) == before
    assert fig._suptitle.get_text() == "caller's title"
    panels = list(axes.flat)
    assert all(has_data(axes_content(a)) for a in panels), [axes_content(a) for a in panels]
    case.check(fig, panels, inputs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_wrong_number_of_axes_is_named(name, inputs):
    case = CASES[name]
    _, axes = plt.subplots(1, case.n_axes + 1)
    with pytest.raises(AttuneInputError, match=rf"ax: this plot draws {case.n_axes} panel\(s\).*got {case.n_axes + 1}"):
        case.call(inputs, list(axes))
    with pytest.raises(AttuneInputError, match="ax must be a matplotlib Axes"):
        case.call(inputs, "axes")


# ----------------------------------------------------------------------------------------------- details
def _error_bars(ax):
    """(low, high) of each vertical error bar drawn on ``ax``."""
    from matplotlib.collections import LineCollection

    out = []
    for c in ax.collections:
        if isinstance(c, LineCollection):
            for seg in c.get_segments():
                if len(seg) == 2 and seg[0][0] == seg[1][0]:
                    out.append((min(seg[0][1], seg[1][1]), max(seg[0][1], seg[1][1])))
    return out


def test_seed_interval_stays_inside_the_score_range():
    from scipy import stats

    from attune_lib.pl._style import seed_interval

    # a 0-1 score over 3 seeds with one bad seed: the t-interval leaves [0, 1], the bootstrap one does not
    v = np.array([0.05, 0.90, 0.95])
    half = stats.t.ppf(0.975, 2) * v.std(ddof=1) / np.sqrt(3)
    assert v.mean() - half < 0 and v.mean() + half > 1  # what the old 95% t-interval drew
    lo, hi = seed_interval(v)
    assert 0.05 <= lo < v.mean() < hi <= 0.95
    assert seed_interval(v) == (lo, hi)  # a fixed resampling seed: the same figure every run
    assert seed_interval([0.4, 0.4, 0.4]) is None and seed_interval([0.4]) is None  # deterministic, one seed
    tight = seed_interval([0.50, 0.51, 0.52, 0.49, 0.50])
    assert 0.49 <= tight[0] < 0.504 < tight[1] <= 0.52


def test_overall_bars_show_bootstrap_intervals_and_deterministic_baselines():
    rows = [{"method": "attune", "label": "Attune", "seed": s, "status": "ok", "overall": v, "foscttm": 0.1 + v / 10}
            for s, v in enumerate([0.05, 0.90, 0.95])]
    rows += [{"method": "pca_lsi", "label": "PCA/LSI", "seed": s, "status": "ok", "overall": 0.32, "foscttm": 0.3}
             for s in range(3)]
    df = pd.DataFrame(rows)
    df.attrs["score_scaling"] = "fixed"
    fig = al.pl.overall_and_foscttm(df)
    ax = fig.axes[0]
    bars = _error_bars(ax)
    assert len(bars) == 1  # only Attune varies over seeds
    lo, hi = bars[0]
    assert 0.05 <= lo and hi <= 0.95
    c = axes_content(ax)
    assert "deterministic" in c["texts"] and "fixed 0-1 anchors" in c["ylabel"]
    assert "bootstrap" in c["title"]
    df.attrs["score_scaling"] = "minmax"
    assert "min-max within this table" in axes_content(al.pl.overall_and_foscttm(df).axes[0])["ylabel"]


def test_cluster_cores_of_many_peaks_stays_readable():
    # 112 core peaks (the full-size 4C): a bounded figure that names the clusters, not each peak
    rng = np.random.default_rng(0)
    peaks = [f"chr1:{i * 1000}-{i * 1000 + 500}" for i in range(112)]
    prof = pd.DataFrame(rng.normal(size=(112, 10)), index=peaks, columns=pd.Index([f"t{i}" for i in range(1, 11)],
                                                                                  name="pt_group"))
    cl = pd.DataFrame({"cluster": pd.Categorical(np.repeat(["1", "2", "3", "4"], 28)), "core": True}, index=peaks)
    fig = al.pl.cluster_cores({"profiles": prof, "clusters": cl})
    assert fig.get_size_inches()[1] <= 7.0
    c = assert_shows(fig, n_colorbars=1, texts=["standardised accessibility", "cluster 1 (28)", "112 alpha-core peaks"])
    assert not any(t.startswith("chr1:") for t in c["texts"])
    assert_style(fig)


def test_overall_and_foscttm_without_foscttm_switches_the_panel_off():
    fig = al.pl.overall_and_foscttm(_bench().drop(columns="foscttm"))
    assert fig.axes[0].get_visible() and not fig.axes[1].axison
    assert len(axes_content(fig.axes[0])["bars"]) == 3


def test_benchmark_plots_draw_only_ok_rows():
    with pytest.raises(AttuneInputError, match="no successful"):
        al.pl.bio_vs_mixing(_bench().assign(status="skipped: x"))
    c = axes_content(al.pl.bio_vs_mixing(_bench()).axes[0])
    assert c["n_points"] == 9  # the skipped seed-2 row is not drawn


def test_contrast_ablation_prediction_of_a_summary_draws_bars():
    fig = al.pl.contrast_ablation_prediction(_summary(True))
    for ax in fig.axes:
        assert_axes(ax, n_bars=2, n_points=4)  # a bar per design, a dot per split


def test_prediction_table_lists_the_paper_rows():
    paper = al.tl.paper_prediction_values()
    c = axes_content(al.pl.prediction_table(_summary()).axes[0])
    assert c["images"] == [(2 + len(paper), 3)]


def test_enrichment_without_terms_says_so():
    fig = al.pl.enrichment_bars(_enrichment().iloc[:0])
    assert axes_content(fig.axes[0])["texts"] == ["no terms"]


def test_soft_clusters_without_the_dmin_curve(soft):
    fig = al.pl.soft_clusters({**soft, "dmin": soft["dmin"].iloc[:0]})
    assert len([a for a in fig.axes if not is_colorbar(a) and a.get_visible()]) == 2
    _, axes = plt.subplots(1, 3)
    with pytest.raises(AttuneInputError, match="one per cluster"):
        al.pl.soft_clusters({**soft, "dmin": soft["dmin"].iloc[:0]}, ax=axes)


def test_embedding_accepts_one_axes_for_one_panel(rna):
    fig, ax = plt.subplots()
    assert al.pl.embedding(rna, basis="X_umap", color="cell_type", ax=ax) is fig
    assert axes_content(ax)["n_points"] == rna.n_obs


def test_errors_name_the_parameter(inputs):
    with pytest.raises(AttuneInputError, match="dimension_sweep: results table lacks column"):
        al.pl.dimension_sweep(_dimension_sweep().drop(columns="n_latent"))
    with pytest.raises(AttuneInputError, match="bin='5kb'"):
        al.pl.link_auroc(_scores(), bin="5kb")
    with pytest.raises(AttuneInputError, match="truth='T9'"):
        al.pl.link_comparison(_evaluation(), truth="T9")
    with pytest.raises(AttuneInputError, match="trends_key='nope'"):
        al.pl.trend_heatmap(inputs["rna"], trends_key="nope")
    with pytest.raises(AttuneInputError, match="distance_key='nope'"):
        al.pl.distance_by_group(_distances(), distance_key="nope")
    with pytest.raises(AttuneInputError, match="order: groups"):
        al.pl.distance_by_group(_distances(), order=["a", "z"])
    with pytest.raises(AttuneInputError, match="layer='nope'"):
        al.pl.dpag_dotplot(inputs["skin"], inputs["dpag_genes"], layer="nope")
    with pytest.raises(AttuneInputError, match="peaks: 1 peak"):
        al.pl.peak_links(inputs["skin"], gene=inputs["peak_links"][0], peaks=pd.DataFrame({"peak": ["chr1:1-2"]}))
    with pytest.raises(AttuneInputError, match="basis='X_nope'"):
        al.pl.embedding(inputs["rna"], basis="X_nope", color="cell_type")
    with pytest.raises(AttuneInputError, match="qc_metrics"):
        al.pl.qc(inputs["skin"])


@pytest.mark.parametrize("call,old", [
    (lambda: al.pl.reference_mapping(_refmap(), random_state=0), "random_state= was renamed to seed="),
    (lambda d: al.pl.residual_embedding(d["rna"], gene=d["rna"].var_names[0], basis="X_umap", predicted_layer="pred",
                                        rna_key="rna"), "rna_key= was renamed to rna_mod="),
    (lambda d: al.pl.peak_links(d["skin"], gene=d["peak_links"][0], peaks=d["peak_links"][1], atac_key="atac"),
     "atac_key= was renamed to atac_mod="),
    (lambda d: al.pl.dpag_dotplot(d["skin"], d["dpag_genes"], rna_key="rna"), "rna_key= was renamed to rna_mod="),
])
def test_old_keyword_names_still_work_with_a_warning(call, old, inputs):
    with pytest.warns(FutureWarning, match=old):
        fig = call() if not inspect.signature(call).parameters else call(inputs)
    assert content(fig)["data_axes"] >= 1


def test_new_keyword_names_do_not_warn(inputs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        al.pl.reference_mapping(_refmap(), seed=0)
        al.pl.trend_heatmap(inputs["rna"], rna_mod="rna")


def test_savefig_writes_a_png(tmp_path):
    fig = al.pl.lagging_ranking(_lagging())
    path = al.pl.savefig(fig, "ranking", figures_dir=tmp_path / "figs")
    assert path == tmp_path / "figs" / "ranking.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "figs").glob(".*tmp*"))
    with pytest.raises(AttuneInputError, match="plain file stem"):
        al.pl.savefig(fig, "a/b", figures_dir=tmp_path)
    with pytest.raises(AttuneInputError, match="fig must be a matplotlib Figure"):
        al.pl.savefig(fig.axes[0], "x", figures_dir=tmp_path)
