"""Integration benchmark harness, sweeps, reference mapping and their plots (paper Fig. 2, Supp. Fig. S9)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from plot_checks import assert_shows

import attune_lib.pl as bpl
import attune_lib.tl._integration_methods as M
import attune_lib.tl._reference_mapping as RM
from attune_lib import tl as B
from attune_lib._utils import AttuneInputError
from attune_lib.tl._integration_benchmark import METRIC_COLUMNS

# Attune at CI budget: a higher lr and smaller batches than the paper so a few epochs suffice.
FAST_ATTUNE = {"batch_size": 32, "lr": 1e-3}


@pytest.fixture(scope="module")
def sim():
    from attune_lib.datasets import simulate_multiome

    return simulate_multiome(preset="pbmc", size="small", n_cells=300, n_genes=120, n_peaks=600, seed=0,
                             motifs=False)


@pytest.fixture(scope="module")
def bench(sim):
    keys_before = (set(sim.obsm), set(sim.uns), set(sim["rna"].layers), sim["rna"].n_vars)
    df, emb = B.run_integration_benchmark(
        sim, methods=("attune", "pca_lsi", "cca"), seeds=(0,), max_epochs={"attune": 3},
        method_options={"attune": FAST_ATTUNE}, progress_bar=False, return_embeddings=True,
    )
    keys_after = (set(sim.obsm), set(sim.uns), set(sim["rna"].layers), sim["rna"].n_vars)
    return df, emb, keys_before == keys_after


@pytest.fixture()
def registry():
    """Restore the method registry after a test registers its own methods."""
    saved = dict(M.METHOD_REGISTRY)
    yield M.METHOD_REGISTRY
    M.METHOD_REGISTRY.clear()
    M.METHOD_REGISTRY.update(saved)


# ----------------------------------------------------------------------------------------- harness
def test_tidy_table(bench, sim):
    df, emb, untouched = bench
    assert untouched, "the input MuData was modified"
    assert list(df["method"]) == ["attune", "pca_lsi", "cca"]
    assert (df["seed"] == 0).all()
    for col in (*METRIC_COLUMNS, "bio_conservation", "omics_mixing", "overall", "runtime_s", "status",
                "n_latent", "label"):
        assert col in df.columns, col
    assert (df["status"] == "ok").all()
    assert df[list(METRIC_COLUMNS)].notna().all().all()
    for col in ("bio_conservation", "omics_mixing", "overall"):
        assert df[col].between(0, 1).all(), col
    assert df.set_index("method")["n_latent"].to_dict() == {"attune": 128, "pca_lsi": 30, "cca": 30}
    assert (df["runtime_s"] >= 0).all()
    a = emb[("attune", 0)]
    assert a["rna"].shape == a["atac"].shape == (sim.n_obs, 128)
    assert a["joint"].shape == (sim.n_obs, 256)


def test_attune_beats_unintegrated_baseline_on_foscttm(bench):
    df = bench[0].set_index("method")
    # unaligned PCA vs LSI sits near chance; a few epochs of Attune already match pairs far better
    assert df.loc["pca_lsi", "foscttm"] > 0.4
    assert df.loc["attune", "foscttm"] < 0.3
    assert df.loc["attune", "foscttm"] < df.loc["pca_lsi", "foscttm"] - 0.15
    assert df.loc["attune", "alignment"] < df.loc["pca_lsi", "alignment"]
    # the CCA baseline uses the pairing, so its FOSCTTM is meaningful (well below chance)
    assert df.loc["cca", "foscttm"] < 0.1


def test_metric_winners(bench):
    w = B.metric_winners(bench[0])
    assert set(w["metric"]) >= {"foscttm", "overall", "map", "sas"}
    row = w.set_index("metric").loc["foscttm"]
    assert row["better"] == "lower"
    assert row["winner"] in {"Attune", "PCA/LSI+CCA"}
    assert bool(row["beats_baseline"]) is True


def test_unknown_method_named(sim):
    with pytest.raises(AttuneInputError, match="not_a_method"):
        B.run_integration_benchmark(sim, methods=("attune", "not_a_method"), seeds=(0,), progress_bar=False)
    with pytest.raises(AttuneInputError, match="glue"):
        B.run_integration_benchmark(sim, methods=("pca_lsi",), method_options={"glue": {}}, progress_bar=False)
    with pytest.raises(AttuneInputError, match="seeds"):
        B.run_integration_benchmark(sim, methods=("pca_lsi",), seeds=(), progress_bar=False)
    with pytest.raises(AttuneInputError, match="no_such_column"):
        B.run_integration_benchmark(sim, methods=("pca_lsi",), cell_type_key="no_such_column", progress_bar=False)


def test_absent_peers_are_skipped_rows(sim, monkeypatch):
    # sys.modules[name] = None makes importlib report the package as not installed
    monkeypatch.setitem(sys.modules, "scvi", None)
    monkeypatch.setitem(sys.modules, "scglue", None)
    df = B.run_integration_benchmark(sim, methods=("pca_lsi", "multivi", "glue"), seeds=(0, 1), progress_bar=False)
    assert len(df) == 6
    st = df.set_index(["method", "seed"])["status"]
    assert st[("pca_lsi", 0)] == "ok"
    for s in (0, 1):
        assert st[("multivi", s)].startswith("skipped: scvi-tools not installed")
        assert st[("glue", s)].startswith("skipped: scglue not installed")
    skipped = df[df["status"].str.startswith("skipped")]
    assert skipped[["foscttm", "overall"]].isna().all().all()
    # the summary is computed over the ok rows only
    assert df.loc[df["method"] == "pca_lsi", "overall"].notna().all()


def test_registry_plugs_in_joint_only_and_validates(sim, registry):
    rng = np.random.default_rng(0)

    def joint_only(mdata, *, seed, n_latent, max_epochs, progress_bar):
        return rng.normal(size=(mdata.n_obs, n_latent or 8))

    def broken(mdata, *, seed, n_latent, max_epochs, progress_bar):
        return np.zeros((3, 4)), np.zeros((3, 4))

    def unavailable(mdata, **kw):
        raise B.MethodUnavailable("needs a GPU")

    B.register_method("joint_demo", joint_only, n_latent=6, description="test")
    B.register_method("broken_demo", broken)
    B.register_method("gpu_demo", unavailable)
    with pytest.raises(AttuneInputError, match="already registered"):
        B.register_method("joint_demo", joint_only)
    assert "joint_demo" in set(B.list_methods()["method"])
    df = B.run_integration_benchmark(sim, methods=("joint_demo", "gpu_demo"), seeds=(0,), progress_bar=False)
    r = df.set_index("method")
    assert r.loc["joint_demo", "status"] == "ok (joint only)"
    assert r.loc["joint_demo", "n_latent"] == 6
    assert np.isfinite(r.loc["joint_demo", "map"]) and np.isnan(r.loc["joint_demo", "foscttm"])
    assert r.loc["gpu_demo", "status"] == "skipped: needs a GPU"
    with pytest.raises(AttuneInputError, match="broken_demo"):
        B.run_integration_benchmark(sim, methods=("broken_demo",), seeds=(0,), progress_bar=False)
    rec = B.run_integration_benchmark(sim, methods=("broken_demo",), seeds=(0,), progress_bar=False,
                                      on_error="record")
    assert rec["status"].iloc[0].startswith("failed: AttuneInputError")


def test_scmvp_registered_joint_only(sim):
    pytest.importorskip("attune_lib.models._scmvp")
    from attune_lib.models import ScMVP  # noqa: F401

    df = B.run_integration_benchmark(sim, methods=("scmvp",), seeds=(0,), max_epochs=1,
                                     method_options={"scmvp": {"pretrain_epochs": (1, 1), "warmup_epochs": 0}},
                                     progress_bar=False)
    row = df.iloc[0]
    assert row["status"] == "ok (joint only)"
    assert np.isfinite(row["map"]) and np.isfinite(row["nc"]) and np.isnan(row["sas"])


def test_cca_baseline_is_paired_linear_map():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(400, 3))
    X = z @ rng.normal(size=(3, 20)) + 0.1 * rng.normal(size=(400, 20))
    Y = z @ rng.normal(size=(3, 15)) + 0.1 * rng.normal(size=(400, 15))
    r, a = M.pca_lsi_cca(X, Y, n_components=3, reg=0.01)
    assert r.shape == a.shape == (400, 3)
    for j in range(3):
        assert np.corrcoef(r[:, j], a[:, j])[0, 1] > 0.95
    u_r, u_a = M.pca_lsi_unaligned(X, Y, n_components=5)
    assert u_r.shape == u_a.shape == (400, 5)
    assert np.allclose(u_r.std(0), 1, atol=1e-4)
    with pytest.raises(AttuneInputError, match="rows"):
        M.pca_lsi_cca(X, Y[:10])


# --------------------------------------------------------------------------------------------- peers
def test_multivi_wrapper(sim):
    pytest.importorskip("scvi")
    df = B.run_integration_benchmark(sim, methods=("multivi",), seeds=(0,), max_epochs=2, n_latent=8,
                                     progress_bar=False)
    row = df.iloc[0]
    assert row["status"] == "ok" and row["n_latent"] == 8
    # paired cells are matched better than by chance (an unpaired embedding gives 0.5 in expectation)
    assert row["foscttm"] < 0.5


@pytest.mark.slow
def test_glue_wrapper(sim):
    pytest.importorskip("scglue")
    from attune_lib.tl._peers import glue_guidance_graph

    m = M.prepare_benchmark_data(sim, cell_type_key="cell_type", n_top_genes=2000, min_fraction=0.05)
    g = glue_guidance_graph(m)
    assert all(g.has_edge(v, v) for v in list(m["rna"].var_names[:5]) + list(m["atac"].var_names[:5]))
    assert g.number_of_edges() > m["rna"].n_vars + m["atac"].n_vars  # some gene-peak links
    df = B.run_integration_benchmark(m, methods=("glue",), seeds=(0,), max_epochs=1, n_latent=8,
                                     progress_bar=False)
    assert df["status"].iloc[0] == "ok" and df["n_latent"].iloc[0] == 8


# ------------------------------------------------------------------------------------------- sweeps
@pytest.fixture(scope="module")
def sweeps(sim):
    kw = {"seeds": (0,), "max_epochs": 1, "progress_bar": False, "attune_options": FAST_ATTUNE}
    dim = B.sweep_dimension(sim, dims=(8, 16), **kw)
    con = B.sweep_contrast(sim, designs=("intra",), n_latent=8, anchors=("cca",), **kw)
    feat = B.sweep_features(sim, n_genes=(60,), n_peaks=(200, None), n_latent=8, anchors=(), **kw)
    return dim, con, feat


def test_sweeps_tidy(sweeps, sim):
    dim, con, feat = sweeps
    # default anchors: the two baselines run once and share the min-max scaling with Attune's rows
    assert list(dim["method"]) == ["attune", "attune", "pca_lsi", "cca"]
    assert list(dim["n_latent"]) == [8, 16, 30, 30]
    assert list(con["method"]) == ["attune", "cca"]
    assert con["design"].iloc[0] == "intra" and con["n_latent"].iloc[0] == 8
    assert (feat["method"] == "attune").all()
    assert set(feat["n_genes"]) == {60} and (feat["n_latent"] == 8).all()
    assert feat["n_peaks"].iloc[0] == 200 and feat["n_peaks"].iloc[1] > 200
    for df in (dim, con, feat):
        assert (df["status"] == "ok").all()
        assert df["overall"].between(0, 1).all()
        assert df[list(METRIC_COLUMNS)].notna().all().all()


def test_sweep_input_errors(sim):
    with pytest.raises(AttuneInputError, match="designs"):
        B.sweep_contrast(sim, designs=("teacher_only",), progress_bar=False)
    with pytest.raises(AttuneInputError, match="dims"):
        B.sweep_dimension(sim, dims=(0,), progress_bar=False)
    with pytest.raises(AttuneInputError, match="anchors"):
        B.sweep_dimension(sim, dims=(8,), anchors=("attune",), progress_bar=False)


# -------------------------------------------------------------------------------- reference mapping
@pytest.fixture(scope="module")
def refmap(sim):
    seen = {}
    orig = RM.train_attune

    def spy(mdata, **kw):
        seen["train_cells"] = mdata.obs_names.copy()
        seen["train_types"] = set(mdata.obs["cell_type"].astype(str))
        return orig(mdata, **kw)

    RM.train_attune = spy
    try:
        out = B.reference_mapping(sim, holdout_type="CD14 Mono", seed=0, max_epochs=2, n_latent=16,
                                  progress_bar=False, attune_options=FAST_ATTUNE)
    finally:
        RM.train_attune = orig
    return out, seen


def test_reference_mapping_holds_out_type(refmap, sim):
    out, seen = refmap
    held = set(sim.obs_names[sim.obs["cell_type"].astype(str) == "CD14 Mono"])
    assert held, "the simulation should contain CD14 Mono cells"
    assert "CD14 Mono" not in seen["train_types"]
    assert not held & set(seen["train_cells"])
    info = out.uns["reference_mapping"]
    assert not held & set(info["reference_obs_names"])
    assert info["n_reference"] == len(seen["train_cells"])
    assert info["n_reference"] + info["n_query"] == sim.n_obs
    q = (out.obs["ref_query"] == "query").to_numpy()
    assert q.sum() == info["n_query"] >= len(held)
    assert out.obsm["X_attune"][q].shape == (info["n_query"], 32)
    assert out.obsm["X_attune_rna"].shape == (sim.n_obs, 16)
    assert out.obs["held_out"].sum() == len(held)
    assert set(out.obs_names[out.obs["held_out"].to_numpy()]) == held
    near = info["nearest_reference_types"]
    assert "CD14 Mono" in near.index and "CD14 Mono" not in near.columns
    fr = near.drop(columns="n_cells")
    assert np.allclose(fr.sum(axis=1), 1.0)
    assert 0 <= info["seen_accuracy"] <= 1


def test_reference_mapping_errors(sim):
    with pytest.raises(AttuneInputError, match="Alien"):
        B.reference_mapping(sim, holdout_type="Alien", progress_bar=False)
    with pytest.raises(AttuneInputError, match="query_fraction"):
        B.reference_mapping(sim, holdout_type="NK", query_fraction=1.5, progress_bar=False)


# -------------------------------------------------------------------------------------------- plots
def test_plots_return_figures(bench, sweeps, refmap):
    import matplotlib.pyplot as plt

    df = bench[0]
    dim, con, feat = sweeps
    out = refmap[0].copy()
    out.obsm["X_umap_attune"] = out.obsm["X_attune"][:, :2]  # skip the UMAP itself in the test
    figs = [
        bpl.bio_vs_mixing(df),
        bpl.overall_and_foscttm(df),
        bpl.alignment_uniformity(df),
        bpl.feature_sweep(feat),
        bpl.dimension_sweep(dim),
        bpl.contrast_ablation(con),
        bpl.reference_mapping(out),
    ]
    labels = sorted(set(df["label"]))
    assert_shows(figs[0], texts=labels, min_points=len(df))  # one dot per method and seed (+ means)
    assert_shows(figs[1], texts=labels, min_data_axes=2)  # overall and FOSCTTM panels
    assert_shows(figs[2], min_points=len(df), legend=labels)
    assert_shows(figs[3], min_points=len(feat), legend=["60 genes", "200 peaks"])  # one dot per (genes, peaks)
    # one bar per Attune dimension (8, 16), the baselines as lines
    assert_shows(figs[4], texts=["8", "16", "embedding dimension"], n_bars=2)
    # a panel per metric, with the anchor methods as lines
    assert_shows(figs[5], min_data_axes=2, texts=["(intra)"], legend=["PCA/LSI+CCA"])
    assert_shows(figs[6], min_data_axes=3, min_points=out.n_obs)  # three UMAP panels of every cell
    for f in figs:
        plt.close(f)
    skipped = df.assign(status="skipped: x")
    with pytest.raises(AttuneInputError, match="no successful"):
        bpl.bio_vs_mixing(skipped)
    with pytest.raises(AttuneInputError, match="design"):
        bpl.contrast_ablation(pd.DataFrame({"status": ["ok"], "overall": [0.5]}))


# ------------------------------------------------------------------------------------------------
# summary scores on fixed anchors (comparable across figures) and GLUE's min-max (faithful mode)
# ------------------------------------------------------------------------------------------------
def _metric_rows(*rows):
    cols = ("map", "asw", "nc", "sas", "asw_batch", "gc")
    return pd.DataFrame([dict(zip(cols, r)) for r in rows])


def test_fixed_anchor_scores_are_the_metrics_combined_with_glue_weights():
    from attune_lib.tl import summary_scores

    out = summary_scores(_metric_rows((0.6, 0.5, 0.2, 0.9, 0.8, 0.7)))
    assert out["bio_conservation"].iloc[0] == pytest.approx((0.6 + 0.5 + 0.2) / 3)
    assert out["omics_mixing"].iloc[0] == pytest.approx(0.8)
    assert out["overall"].iloc[0] == pytest.approx(0.6 * 1.3 / 3 + 0.4 * 0.8)  # 0.58
    assert out.attrs["score_scaling"] == "fixed"


def test_a_baseline_scores_the_same_in_every_table_with_fixed_anchors():
    from attune_lib.tl import summary_scores

    baseline = (0.40, 0.52, 0.10, 0.55, 0.85, 0.60)
    table_2b = _metric_rows(baseline, (0.70, 0.60, 0.25, 0.80, 0.90, 0.90), (0.20, 0.45, 0.05, 0.30, 0.70, 0.40))
    table_2e = _metric_rows(baseline, (0.42, 0.53, 0.11, 0.56, 0.86, 0.62))
    fixed = [summary_scores(t)["overall"].iloc[0] for t in (table_2b, table_2e)]
    minmax = [summary_scores(t, score_scaling="minmax")["overall"].iloc[0] for t in (table_2b, table_2e)]
    assert fixed[0] == pytest.approx(fixed[1])  # one baseline, one score
    assert abs(minmax[0] - minmax[1]) > 0.3  # per-table min-max moves it (0.39 vs 0.0 here)
    assert minmax[1] == pytest.approx(0.0)  # the worst row of its table scores 0 whatever its metrics


def test_score_scaling_is_checked_and_recorded():
    from attune_lib.tl._integration_benchmark import finish_table

    rows = [{"status": "ok", "map": 0.5, "asw": 0.5, "nc": 0.5, "sas": 0.5, "asw_batch": 0.5, "gc": 0.5},
            {"status": "skipped: x", "map": np.nan, "asw": np.nan, "nc": np.nan, "sas": np.nan,
             "asw_batch": np.nan, "gc": np.nan}]
    df = finish_table(rows)
    assert df.attrs["score_scaling"] == "fixed" and df["overall"].iloc[0] == pytest.approx(0.5)
    assert np.isnan(df["overall"].iloc[1])
    assert finish_table(rows, score_scaling="minmax")["overall"].iloc[0] == pytest.approx(0.0)  # one ok row
    with pytest.raises(AttuneInputError, match="score_scaling='zscore'"):
        finish_table(rows, score_scaling="zscore")
    with pytest.raises(AttuneInputError, match="score_scaling"):
        B.run_integration_benchmark(None, score_scaling="zscore")
