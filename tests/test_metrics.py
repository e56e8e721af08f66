"""Tests of attune_lib.metrics: hand-computed toy examples, library cross-checks, release values."""

from __future__ import annotations

import warnings

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
from scipy.spatial import distance_matrix
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import average_precision_score, silhouette_samples, silhouette_score
from sklearn.neighbors import NearestNeighbors

from attune_lib import metrics as M
from attune_lib._utils import AttuneInputError


def _col(v):
    return np.asarray(v, dtype=float).reshape(-1, 1)


def _blobs(n_per=40, n_types=3, dim=8, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(n_types, dim))
    ct = np.repeat(np.arange(n_types), n_per)
    rna = centers[ct] + rng.normal(scale=noise, size=(ct.size, dim))
    atac = rna + rng.normal(scale=noise / 3, size=rna.shape)
    return rna, atac, np.array([f"t{c}" for c in ct])


# ---------------------------------------------------------------------------- FOSCTTM
def test_foscttm_three_points_by_hand():
    x = _col([0, 1, 3])
    y = _col([2, 1, 0])
    # x-side: x0 -> {y1, y2} closer than y0 (2/3); x1 -> none; x2 -> {y0, y1} (2/3)
    # y-side: y0 -> {x1, x2} (2/3); y1 -> none; y2 -> {x1, x2} (2/3)
    fx, fy = M.foscttm(x, y, reduce="none")
    np.testing.assert_allclose(fx, [2 / 3, 0, 2 / 3])
    np.testing.assert_allclose(fy, [2 / 3, 0, 2 / 3])
    assert M.foscttm(x, y) == pytest.approx(4 / 9)


def test_foscttm_perfect_random_and_chunking():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    assert M.foscttm(x, x.copy()) == 0.0
    y = rng.normal(size=(300, 5))
    assert M.foscttm(x, y) == pytest.approx(0.5, abs=0.05)
    # same as the naive full-matrix definition, whatever the chunk size
    d = distance_matrix(x, y)
    ref_x = (d < np.diag(d)[:, None]).mean(axis=1)
    ref_y = (d < np.diag(d)[None, :]).mean(axis=0)
    for chunk in (1, 7, 1000):
        fx, fy = M.foscttm(x, y, reduce="none", chunk_size=chunk)
        np.testing.assert_allclose(fx, ref_x)
        np.testing.assert_allclose(fy, ref_y)


def test_foscttm_bad_input():
    with pytest.raises(AttuneInputError, match="same shape"):
        M.foscttm(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(AttuneInputError, match="reduce"):
        M.foscttm(np.zeros((3, 2)), np.zeros((3, 2)), reduce="sum")
    with pytest.raises(AttuneInputError, match="NaN"):
        M.foscttm(np.full((3, 2), np.nan), np.zeros((3, 2)))


def test_foscttm_released_embeddings(shared_data_dir):
    path = shared_data_dir / "attune_release" / "pbmc10k" / "embeddings_epoch20.npz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    d = np.load(path)
    value = M.foscttm(d["cell_embed_RNA"], d["cell_embed_ATAC"])
    assert value == pytest.approx(0.0082088, abs=1e-6)
    csv = pd.read_csv(path.parent / "pretrain_metrics_by_epoch.csv", index_col=0)
    assert value == pytest.approx(csv.loc[csv["epoch"] == 20, "foscttm"].item(), abs=1e-9)


# ---------------------------------------------------------------------------- MAP
def test_map_by_hand():
    x = _col([0, 1, 3.4, 6, 10])
    y = np.array(["a", "b", "a", "a", "b"])
    # k = round(5 * 0.4) = 2 neighbours (self excluded):
    # 0: [1(b), 3.4(a)] -> AP 1/2; 1: [0(a), 3.4(a)] -> 0; 3.4: [1(b), 6(a)] -> 1/2;
    # 6: [3.4(a), 10(b)] -> 1;     10: [6(a), 3.4(a)] -> 0          => MAP = 2/5
    assert M.mean_average_precision(x, y, neighbor_frac=0.4) == pytest.approx(0.4)
    # k = 3 for cell 0: [1(b), 3.4(a), 6(a)] -> (1/2 + 2/3) / 2
    x2 = _col([0, 1, 3.4, 6])
    y2 = np.array(["a", "b", "a", "a"])
    # 1: [0(a), 3.4(a), 6(a)] -> 0;  3.4: [1(b)... ] distances 3.4, 2.4, 2.6 -> [1(b), 6(a), 0(a)]
    #   -> (1/2 + 2/3)/2;  6: [3.4(a), 1(b), 0(a)] -> (1 + 2/3)/2
    expected = ((1 / 2 + 2 / 3) / 2 + 0 + (1 / 2 + 2 / 3) / 2 + (1 + 2 / 3) / 2) / 4
    assert M.mean_average_precision(x2, y2, neighbor_frac=0.75) == pytest.approx(expected)


def test_map_equals_sklearn_average_precision():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 4))
    y = rng.integers(0, 3, size=200)
    frac = 0.05
    k = max(round(200 * frac), 1)
    nni = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(return_distance=False)
    aps = []
    for i in range(200):
        match = y[nni[i]] == y[i]
        if match.any():
            aps.append(average_precision_score(match, -np.arange(k)))
        else:
            aps.append(0.0)  # GLUE: no hit -> 0
    assert M.mean_average_precision(x, y, neighbor_frac=frac) == pytest.approx(np.mean(aps))


# ---------------------------------------------------------------------------- ASW
def test_asw_by_hand_and_sklearn():
    x = _col([0, 1, 10, 11])
    y = np.array(["a", "a", "b", "b"])
    s = 1 - (1 / 10.5 + 1 / 9.5) / 2
    assert M.avg_silhouette_width(x, y) == pytest.approx((s + 1) / 2)
    rx, _, ct = _blobs()
    assert M.avg_silhouette_width(rx, ct) == pytest.approx((silhouette_score(rx, ct) + 1) / 2)
    with pytest.raises(AttuneInputError, match="distinct labels"):
        M.avg_silhouette_width(x, np.array(["a"] * 4))


def test_omics_layer_asw_by_hand():
    x = _col([0, 1, 10, 11, 50, 51])
    batch = np.array(["rna", "rna", "atac", "atac", "rna", "rna"])
    ct = np.array(["A", "A", "A", "A", "B", "B"])
    # type A: silhouettes 1 - 1/10.5, 1 - 1/9.5 (twice): mean(1 - |s|) = (1/10.5 + 1/9.5) / 2
    # type B: one modality only -> silhouette undefined -> 1 (GLUE)
    expected = ((1 / 10.5 + 1 / 9.5) / 2 + 1) / 2
    assert M.avg_silhouette_width_batch(x, batch, ct) == pytest.approx(expected)


def test_omics_layer_asw_matches_sklearn_samples():
    rna, atac, ct = _blobs()
    x = np.vstack([rna, atac])
    batch = np.repeat(["rna", "atac"], rna.shape[0])
    ct2 = np.concatenate([ct, ct])
    ref = np.mean([
        (1 - np.abs(silhouette_samples(x[ct2 == t], batch[ct2 == t]))).mean()
        for t in np.unique(ct2)
    ])
    assert M.avg_silhouette_width_batch(x, batch, ct2) == pytest.approx(ref)


# ---------------------------------------------------------------------------- NC
def test_nc_by_hand():
    # one batch, k = round(8 * 0.125) = 1
    x = _col([0, 1, 3, 7, 100, 101, 103, 107])
    y = _col([0, 1, 5, 2.8, 100, 101, 103, 107])
    batch = np.array(["rna"] * 4 + ["atac"] * 4)
    # rna: nn_x = [1, 0, 1, 3->2], nn_y = [1, 0, 3, 1] -> Jaccard 1, 1, 0, 0 -> 0.5; atac: same -> 1
    assert M.neighbor_conservation(x, y, batch, neighbor_frac=0.125) == pytest.approx(0.75)
    assert M.neighbor_conservation(x, x, batch, neighbor_frac=0.125) == pytest.approx(1.0)


def _brute_nc(x, y, batch, k):
    vals = []
    for b in np.unique(batch):
        m = batch == b
        xs, ys = x[m], y[m]
        dx, dy = distance_matrix(xs, xs), distance_matrix(ys, ys)
        np.fill_diagonal(dx, np.inf)
        np.fill_diagonal(dy, np.inf)
        kx, ky = np.argsort(dx, axis=1)[:, :k], np.argsort(dy, axis=1)[:, :k]
        jac = [len(set(a) & set(c)) / len(set(a) | set(c)) for a, c in zip(kx, ky, strict=True)]
        vals.append(np.mean(jac))
    return np.mean(vals)


def test_nc_uses_k_from_total_n():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 3))
    y = x + rng.normal(scale=0.5, size=x.shape)
    batch = np.repeat(["rna", "atac"], 60)
    k_total = round(120 * 0.05)  # 6, not round(60 * 0.05) = 3
    got = M.neighbor_conservation(x, y, batch, neighbor_frac=0.05)
    assert got == pytest.approx(_brute_nc(x, y, batch, k_total))
    assert got != pytest.approx(_brute_nc(x, y, batch, 3))


# ---------------------------------------------------------------------------- GC
def test_gc_disconnected_type():
    line10 = np.arange(10, dtype=float)
    a1 = np.c_[line10, np.zeros(10)]
    a2 = np.c_[line10 + 1000, np.zeros(10)]
    b = np.c_[np.arange(20, dtype=float), np.full(20, 500.0)]
    x = np.vstack([a1, a2, b])
    y = np.array(["A"] * 20 + ["B"] * 20)
    # A splits into two components of 10 (10/20), B is one chain (20/20)
    assert M.graph_connectivity(x, y, n_neighbors=5) == pytest.approx(0.75)
    rna, _, ct = _blobs(noise=0.1)
    assert M.graph_connectivity(rna, ct) == pytest.approx(1.0)


# ---------------------------------------------------------------------------- SAS
def test_sas_by_hand():
    # k = round(8 * 0.125) = 1; same-modality nearest neighbours:
    # rna 0 -> atac 0.4, rna 1 -> atac 0.4, rna 100 <-> rna 101 (2), atac 0.4 -> rna 0,
    # atac 500 -> atac 450, atac 300 -> atac 450, atac 450 -> atac 500  => x̄ = 5/8
    x = _col([0, 1, 100, 101, 0.4, 500, 300, 450])
    mod = np.array(["rna"] * 4 + ["atac"] * 4)
    expected = (1 - 5 / 8) * 2 / (1 * (2 - 1))
    for seed in (0, 1):
        assert M.seurat_alignment_score(x, mod, neighbor_frac=0.125, seed=seed) == (
            pytest.approx(expected)
        )


def test_sas_mixed_vs_separated():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 5))
    mod = np.repeat(["rna", "atac"], 200)
    # identical embeddings: every cell's nearest neighbour is its twin -> capped at 1
    assert M.seurat_alignment_score(np.vstack([z, z]), mod, neighbor_frac=0.0025) == 1.0
    # randomly interleaved: close to 1
    mixed = rng.normal(size=(400, 5))
    assert M.seurat_alignment_score(mixed, mod) > 0.8
    # far apart: every neighbour from the same modality -> 0
    sep = np.vstack([z, z + 100])
    assert M.seurat_alignment_score(sep, mod) == pytest.approx(0.0)
    # unbalanced modality sizes are subsampled to the smaller one
    assert M.seurat_alignment_score(np.vstack([z, z[:50] + 100]),
                                    np.array(["rna"] * 200 + ["atac"] * 50)) == pytest.approx(0.0)


# ------------------------------------------------------------------------ alignment / uniformity
def test_alignment_closed_forms():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6))
    assert M.alignment(x, 3 * x) == pytest.approx(0.0, abs=1e-12)
    assert M.alignment(x, -x) == pytest.approx(4.0)
    e = np.eye(2)
    assert M.alignment(e, e[::-1]) == pytest.approx(2.0)
    # zero rows stay zero after normalisation (as torch's F.normalize): distance 1 to a unit vector
    assert M.alignment(np.array([[0.0, 0.0]]), np.array([[2.0, 0.0]])) == pytest.approx(1.0)


def test_uniformity_closed_forms():
    assert M.uniformity(np.array([[1.0, 0], [-3.0, 0]])) == pytest.approx(-8.0)
    z = np.array([[1.0, 0], [0, 1.0], [-1.0, 0]])
    expected = np.log((2 * np.exp(-2 * 2) + np.exp(-2 * 4)) / 3)
    assert M.uniformity(z) == pytest.approx(expected)
    assert M.uniformity(z, t=1.0) == pytest.approx(np.log((2 * np.exp(-2) + np.exp(-4)) / 3))
    # chunking and pair subsampling
    rng = np.random.default_rng(1)
    big = rng.normal(size=(400, 4))
    exact = M.uniformity(big)
    assert M.uniformity(big, chunk_size=33) == pytest.approx(exact)
    assert M.uniformity(big, max_pairs=60_000, seed=0) == pytest.approx(exact, abs=0.03)
    # collapsed embeddings are maximally non-uniform (0)
    assert M.uniformity(np.ones((5, 3))) == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------------------- all together
def test_integration_metrics_keys_and_ranges():
    rna, atac, ct = _blobs()
    rng = np.random.default_rng(0)
    out = M.integration_metrics_from_embeddings(rna, atac, ct, rna_ref=rna + rng.normal(size=rna.shape),
                                atac_ref=atac[:, :5], neighbor_frac=0.05)
    assert set(out) == {"map", "asw", "nc", "sas", "asw_batch", "gc", "foscttm", "alignment",
                        "uniformity"}
    for key in ("map", "asw", "nc", "sas", "asw_batch", "gc"):
        assert 0 <= out[key] <= 1, key
    assert out["map"] > 0.95 and out["gc"] == pytest.approx(1.0)
    assert out["foscttm"] < 0.3
    # per-row labels (2N) give the same numbers
    out2 = M.integration_metrics_from_embeddings(rna, atac, np.concatenate([ct, ct]),
                                 rna_ref=rna + rng.normal(size=rna.shape), atac_ref=atac[:, :5],
                                 neighbor_frac=0.05)
    assert out2["map"] == out["map"] and out2["asw"] == out["asw"]
    no_ref = M.integration_metrics_from_embeddings(rna, atac, ct)
    assert np.isnan(no_ref["nc"])
    with pytest.raises(AttuneInputError, match="rna_ref"):
        M.integration_metrics_from_embeddings(rna, atac, ct, rna_ref=rna)
    with pytest.raises(AttuneInputError, match="cell_type"):
        M.integration_metrics_from_embeddings(rna, atac, ct[:5])
    with pytest.raises(AttuneInputError, match="same width"):
        M.integration_metrics_from_embeddings(rna, atac[:, :3], ct)


def test_integration_metrics_old_names_still_work():
    """The array form under the old name and compute_integration_metrics answer the same, with a FutureWarning."""
    rng = np.random.default_rng(0)
    rna, atac = rng.normal(size=(40, 5)), rng.normal(size=(40, 5))
    ct = np.repeat(["a", "b"], 20)
    new = M.integration_metrics_from_embeddings(rna, atac, ct)
    with pytest.warns(FutureWarning, match="integration_metrics_from_embeddings"):
        old = M.integration_metrics(rna, atac, ct)
    assert old == pytest.approx(new, nan_ok=True)
    with pytest.raises(AttuneInputError, match="MuData first"):
        M.integration_metrics(rna)


def test_integration_metrics_mudata():
    rna_e, atac_e, ct = _blobs(n_per=20)
    n = ct.size
    names = [f"c{i}" for i in range(n)]
    rna = ad.AnnData(np.zeros((n, 2), dtype=np.float32), obs=pd.DataFrame(index=names),
                     var=pd.DataFrame(index=["g1", "g2"]))
    atac = ad.AnnData(np.zeros((n, 3), dtype=np.float32), obs=pd.DataFrame(index=names),
                      var=pd.DataFrame(index=["p1", "p2", "p3"]))
    rna.obsm["X_attune_rna"], atac.obsm["X_attune_atac"] = rna_e, atac_e
    rna.obsm["X_pca"], atac.obsm["X_lsi"] = rna_e[:, :4], atac_e[:, :6]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        m = md.MuData({"rna": rna, "atac": atac})
    m.obs["cell_type"] = pd.Categorical(ct)
    out = M.integration_metrics(m, neighbor_frac=0.05)
    ref = M.integration_metrics_from_embeddings(rna_e, atac_e, ct, rna_ref=rna_e[:, :4], atac_ref=atac_e[:, :6],
                                                neighbor_frac=0.05)
    assert out == pytest.approx(ref)
    with pytest.raises(AttuneInputError, match="'X_missing'"):
        M.integration_metrics(m, rna_key="X_missing")
    with pytest.raises(AttuneInputError, match="'celltype'"):
        M.integration_metrics(m, cell_type_key="celltype")
    assert np.isnan(M.integration_metrics(m, rna_ref_key="nope")["nc"])


def test_summarize_scores_arithmetic():
    df = pd.DataFrame(
        {"map": [0.2, 0.6, 0.4], "asw": [0.5, 0.5, 0.5], "nc": [0.1, 0.3, 0.2],
         "sas": [1.0, 0.0, 0.5], "asw_batch": [0.9, 0.8, 0.7], "gc": [0.6, 0.9, 0.9]},
        index=["m1", "m2", "m3"],
    )
    out = M.summarize_scores(df)
    # scaled: map [0, 1, .5]; asw constant -> [0, 0, 0]; nc [0, 1, .5]
    np.testing.assert_allclose(out["bio_conservation"], [0, 2 / 3, 1 / 3])
    # scaled: sas [1, 0, .5]; asw_batch [1, .5, 0]; gc [0, 1, 1]
    np.testing.assert_allclose(out["omics_mixing"], [2 / 3, 1.5 / 3, 1.5 / 3])
    np.testing.assert_allclose(
        out["overall"], 0.6 * out["bio_conservation"] + 0.4 * out["omics_mixing"]
    )
    assert list(df.columns) == ["map", "asw", "nc", "sas", "asw_batch", "gc"]  # input untouched
    with pytest.raises(AttuneInputError, match="gc"):
        M.summarize_scores(df.drop(columns="gc"))


def test_summarize_scores_reproduces_released_table(shared_data_dir):
    path = shared_data_dir / "attune_release" / "pbmc10k" / "pretrain_metrics_by_epoch.csv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    csv = pd.read_csv(path, index_col=0)
    out = M.summarize_scores(csv)
    np.testing.assert_allclose(out["bio_conservation"], csv["biology conservation"], atol=1e-12)
    np.testing.assert_allclose(out["omics_mixing"], csv["omics mixing"], atol=1e-12)
    np.testing.assert_allclose(out["overall"], csv["Overall integration score"], atol=1e-12)


# ---------------------------------------------------------------------------- prediction
def test_prediction_metrics_against_scipy():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(60, 7))
    p = y + rng.normal(scale=0.8, size=y.shape)
    p[:5, 2] = p[5, 2]  # ties
    pear = M.genewise_pearson(y, p)
    spear = M.genewise_spearman(y, p)
    for j in range(7):
        assert pear[j] == pytest.approx(pearsonr(y[:, j], p[:, j]).statistic)
        assert spear[j] == pytest.approx(spearmanr(y[:, j], p[:, j]).statistic)
    assert M.rmse(y, p) == pytest.approx(np.sqrt(np.mean((y - p) ** 2)))
    np.testing.assert_allclose(M.rmse(y, p, per_gene=True), np.sqrt(((y - p) ** 2).mean(axis=0)))
    summary, per_gene = M.prediction_metrics(y, p, gene_names=list("ABCDEFG"))
    assert summary["pearson"] == pytest.approx(pear.mean())
    assert summary["spearman"] == pytest.approx(spear.mean())
    assert summary["n_genes"] == 7 and summary["n_genes_constant"] == 0
    assert list(per_gene.index) == list("ABCDEFG")


def test_prediction_metrics_constant_genes():
    y = np.array([[1.0, 2.0, 5.0], [2.0, 2.0, 1.0], [3.0, 2.0, 0.0], [4.0, 2.0, 3.0]])
    p = np.array([[1.0, 1.0, 7.0], [2.5, 2.0, 7.0], [2.9, 3.0, 7.0], [4.2, 4.0, 7.0]])
    with pytest.warns(UserWarning, match="2 of 3 gene"):
        summary, per_gene = M.prediction_metrics(y, p)
    assert per_gene["pearson"].isna().tolist() == [False, True, True]
    assert summary["n_genes_constant"] == 2
    assert summary["pearson"] == pytest.approx(pearsonr(y[:, 0], p[:, 0]).statistic)
    assert summary["spearman"] == pytest.approx(1.0)
    assert summary["rmse"] == pytest.approx(np.sqrt(np.mean((y - p) ** 2)))
    with pytest.raises(AttuneInputError, match="same shape"):
        M.prediction_metrics(y, p[:, :2])
    with pytest.raises(AttuneInputError, match="gene_names"):
        M.prediction_metrics(y, p, gene_names=["a"])


# ---------------------------------------------------------------------------- peer implementation
def test_matches_scglue_metrics():
    scglue_metrics = pytest.importorskip("scglue.metrics")
    rna, atac, ct = _blobs(noise=1.0)
    x = np.vstack([rna, atac])
    ct2 = np.concatenate([ct, ct])
    mod = np.repeat(["rna", "atac"], rna.shape[0])
    assert M.mean_average_precision(x, ct2) == pytest.approx(
        scglue_metrics.mean_average_precision(x, ct2))
    assert M.avg_silhouette_width(x, ct2) == pytest.approx(
        scglue_metrics.avg_silhouette_width(x, ct2))
    assert M.avg_silhouette_width_batch(x, mod, ct2) == pytest.approx(
        scglue_metrics.avg_silhouette_width_batch(x, mod, ct2))
    assert M.graph_connectivity(x, ct2) == pytest.approx(scglue_metrics.graph_connectivity(x, ct2))
    fx, fy = scglue_metrics.foscttm(rna, atac)
    assert M.foscttm(rna, atac) == pytest.approx((fx.mean() + fy.mean()) / 2)
    # equal modality sizes: the subsample is every cell, so the RNGs do not matter
    assert M.seurat_alignment_score(x, mod, neighbor_frac=0.05) == pytest.approx(
        scglue_metrics.seurat_alignment_score(x, mod, neighbor_frac=0.05, seed=0))
    ref = np.vstack([rna, atac]) + 0.5
    assert M.neighbor_conservation(x, ref, mod) == pytest.approx(
        scglue_metrics.neighbor_conservation(x, ref, mod))


# ---------------------------------------------------------------------------- simulated data
def test_metrics_on_preprocessed_simulation(sim_small):
    from attune_lib import pp

    m = sim_small.copy()
    pp.preprocess(m, n_top_genes=150, n_comps=20)
    rna, atac = m["rna"], m["atac"]
    rna.obsm["X_attune_rna"] = rna.obsm["X_pca"]
    atac.obsm["X_attune_atac"] = atac.obsm["X_lsi"]
    out = M.integration_metrics(m)
    for key in ("map", "asw", "nc", "sas", "asw_batch", "gc"):
        assert 0 <= out[key] <= 1, key
    # the references are the embeddings themselves: neighbourhoods fully conserved
    assert out["nc"] == pytest.approx(1.0)
    # separately computed PCA and LSI are not aligned
    assert out["foscttm"] > 0.2
    table = M.summarize_scores(pd.DataFrame([out, {**out, "map": out["map"] / 2}]))
    assert table["bio_conservation"].iloc[0] > table["bio_conservation"].iloc[1]


def test_clustering_agreement_hand_values():
    from attune_lib.metrics import clustering_agreement

    perfect = clustering_agreement(["a", "a", "b", "b"], [1, 1, 0, 0])
    assert perfect == {"ari": 1.0, "nmi": 1.0}
    # a 2x2 contingency table with all cells = 1 gives ARI -0.5 (hand-computed from the pair counts)
    anti = clustering_agreement(["a", "a", "b", "b"], [0, 1, 0, 1])
    assert anti["ari"] == pytest.approx(-0.5)
    assert anti["nmi"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(AttuneInputError, match="equal length"):
        clustering_agreement([0, 1], [0, 1, 2])


def test_imputation_agreement_recovers_truth_scale():
    from attune_lib.metrics import imputation_agreement

    rng = np.random.default_rng(0)
    means = rng.gamma(2.0, 1.0, size=(50, 8))
    truth = np.log1p(means / means.sum(1, keepdims=True) * 1e4)
    exact = imputation_agreement(truth, means * 3.0)  # a per-cell scale factor cancels out
    assert exact["mean_pearson"] == pytest.approx(1.0)
    noisy = imputation_agreement(truth, rng.poisson(means))
    assert noisy["mean_pearson"] < exact["mean_pearson"]
    assert noisy["per_gene"].shape == (8,)
