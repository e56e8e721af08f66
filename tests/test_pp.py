"""Tests of attune_lib.pp on small hand-made AnnData/MuData with known answers."""

from __future__ import annotations

import logging

import anndata as ad
import mudata as md
import numpy as np
import pytest
import scipy.sparse as sp

from attune_lib import pp
from attune_lib._utils import AttuneInputError


# ---------------------------------------------------------------------------- fixtures / helpers
@pytest.fixture
def attune_log(caplog):
    """caplog that also sees the 'attune_lib' logger (which does not propagate to root)."""
    logger = logging.getLogger("attune_lib")
    logger.addHandler(caplog.handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(old)


def _counts(n_obs=120, n_vars=200, seed=0, sparse=True):
    rng = np.random.default_rng(seed)
    # genes with different means and dispersions so that HVG selection has something to rank
    mu = rng.gamma(0.6, 3.0, size=n_vars)
    disp = rng.uniform(0.2, 5.0, size=n_vars)
    lam = rng.gamma(disp, mu / disp, size=(n_obs, n_vars))
    X = rng.poisson(lam).astype(np.float32)
    X[:, 0] += 1  # no all-zero cells
    a = ad.AnnData(sp.csr_matrix(X) if sparse else X)
    a.obs_names = [f"c{i}" for i in range(n_obs)]
    a.var_names = [f"g{i}" for i in range(n_vars)]
    a.var["chrom"] = "chr1"
    return a


def _atac(n_obs=120, n_vars=300, seed=1):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.4, size=n_vars)
    X = (rng.random((n_obs, n_vars)) < p).astype(np.float32) * rng.integers(1, 3, (n_obs, n_vars))
    X[:, 0] = 1
    a = ad.AnnData(sp.csr_matrix(X.astype(np.float32)))
    a.obs_names = [f"c{i}" for i in range(n_obs)]
    chroms = np.where(np.arange(n_vars) < 10, "chrX", "chr2")
    a.var_names = [f"{c}:{i * 1000}-{i * 1000 + 500}" for i, c in enumerate(chroms)]
    a.var["chrom"] = chroms
    return a


# ---------------------------------------------------------------------------- filter_features
def test_filter_features_boundary_exactly_5_percent():
    X = np.zeros((20, 4), dtype=np.float32)
    X[0, 0] = 1  # 1/20 = 5%: kept (only "< 5%" is dropped)
    X[:2, 1] = 3  # 10%: kept
    X[0, 3] = 0  # never detected: dropped
    X[:, 2] = 0
    a = ad.AnnData(X)
    a.var_names = ["at5", "at10", "none", "none2"]
    pp.filter_features(a, min_fraction=0.05)
    assert list(a.var_names) == ["at5", "at10"]
    np.testing.assert_allclose(a.var["frac_cells"], [0.05, 0.10])
    b = ad.AnnData(X.copy())
    b.var_names = ["at5", "at10", "none", "none2"]
    pp.filter_features(b, min_fraction=0.1)
    assert list(b.var_names) == ["at10"]


def test_filter_features_float_rounding_boundary():
    # 0.07 * 100 = 7.000000000000001 in floating point; 7 cells must still pass
    X = np.zeros((100, 2), dtype=np.float32)
    X[:7, 0] = 1
    X[:6, 1] = 1
    a = ad.AnnData(X)
    pp.filter_features(a, min_fraction=0.07)
    assert a.n_vars == 1 and a.var_names[0] == "0"


def test_filter_features_on_mudata_keeps_cells_paired():
    rna, atac = _counts(), _atac()
    m = md.MuData({"rna": rna, "atac": atac})
    pp.filter_features(m, min_fraction=0.2)
    assert m["rna"].n_obs == m["atac"].n_obs == 120
    for name in ("rna", "atac"):
        X = m[name].X
        assert ((X > 0).sum(axis=0) >= 24).all()
    assert m.n_vars == m["rna"].n_vars + m["atac"].n_vars


# ---------------------------------------------------------------------------- remove_sex_mito
def test_remove_sex_mito_with_chrom_column():
    a = ad.AnnData(np.ones((3, 7), dtype=np.float32))
    a.var_names = ["A", "XIST", "SRY", "MT-CO1", "MT-ND1", "B", "mt-Nd2"]
    a.var["chrom"] = ["chr1", "chrX", "Y", "chrM", np.nan, np.nan, "MT"]
    pp.remove_sex_mito(a)
    assert list(a.var_names) == ["A", "B"]


def test_remove_sex_mito_keep_mito_and_custom_sex():
    a = ad.AnnData(np.ones((3, 4), dtype=np.float32))
    a.var_names = ["A", "XIST", "MT-CO1", "W1"]
    a.var["chrom"] = ["chr1", "chrX", "chrM", "chrW"]
    pp.remove_sex_mito(a, mito=False, sex_chroms=("chrW",))
    assert list(a.var_names) == ["A", "XIST", "MT-CO1"]


def test_remove_sex_mito_missing_chrom_warns_and_uses_names():
    a = ad.AnnData(np.ones((2, 5), dtype=np.float32))
    a.var_names = ["chr1:1-100", "chrX:5-50", "chrY-1-9", "MT-ND1", "GAPDH"]
    with pytest.warns(UserWarning, match="chrom"):
        pp.remove_sex_mito(a)
    assert list(a.var_names) == ["chr1:1-100", "GAPDH"]


# ---------------------------------------------------------------------------- counts detection
def test_is_raw_counts_both_ways():
    a = _counts()
    assert pp.is_raw_counts(a)
    b = a.copy()
    b.X = b.X.multiply(1e4 / b.X.sum(axis=1)).tocsr()
    assert not pp.is_raw_counts(b)
    c = a.copy()
    c.X = c.X.log1p()
    assert not pp.is_raw_counts(c)
    assert pp.is_raw_counts(ad.AnnData(np.zeros((3, 2), dtype=np.float32)))
    assert not pp.is_raw_counts(ad.AnnData(-np.ones((3, 2), dtype=np.float32)))


def test_normalize_log1p_counts_layer_and_row_sums(attune_log):
    a = _counts()
    raw = a.X.copy()
    pp.normalize_log1p(a)
    assert "counts" in a.layers
    assert (a.layers["counts"] != raw).nnz == 0  # preserved exactly
    assert a.layers["counts"].dtype == raw.dtype
    np.testing.assert_allclose(np.expm1(a.X.toarray()).sum(axis=1), 1e4, rtol=1e-4)
    assert "raw counts" in attune_log.text


def test_normalize_log1p_dense_input():
    a = _counts(sparse=False)
    raw = a.X.copy()
    pp.normalize_log1p(a, target_sum=100)
    np.testing.assert_array_equal(a.layers["counts"], raw)
    np.testing.assert_allclose(np.expm1(a.X).sum(axis=1), 100, rtol=1e-4)


def test_normalize_log1p_skips_normalised_input(attune_log):
    a = _counts()
    pp.normalize_log1p(a)
    a2 = ad.AnnData(a.X.copy())
    before = a2.X.copy()
    pp.normalize_log1p(a2)
    assert (a2.X != before).nnz == 0
    assert "counts" not in a2.layers
    assert "already log-normalised" in attune_log.text
    assert a2.uns["attune_pp"]["normalize_log1p"]["detected"] == "log-normalised"


# ---------------------------------------------------------------------------- HVG
def test_hvg_seurat_v3_on_counts():
    pytest.importorskip("skmisc")
    a = _counts()
    pp.normalize_log1p(a)
    pp.highly_variable_genes(a, n_top_genes=50)
    assert a.n_vars == 50
    assert a.uns["attune_pp"]["highly_variable_genes"]["flavor"] == "seurat_v3"
    assert "counts" in a.layers and a.layers["counts"].shape == (120, 50)


def test_hvg_seurat_v3_on_raw_x():
    pytest.importorskip("skmisc")
    a = _counts()
    pp.highly_variable_genes(a, n_top_genes=25)
    assert a.n_vars == 25 and pp.is_raw_counts(a)
    assert a.uns["attune_pp"]["highly_variable_genes"]["flavor"] == "seurat_v3"


def test_hvg_seurat_on_lognormalised_without_counts():
    a = _counts()
    pp.normalize_log1p(a)
    del a.layers["counts"]
    pp.highly_variable_genes(a, n_top_genes=40, subset=False)
    assert a.n_vars == 200
    assert int(a.var["highly_variable"].sum()) == 40
    assert a.uns["attune_pp"]["highly_variable_genes"]["flavor"] == "seurat"


def test_hvg_batch_aware():
    a = _counts()
    a.obs["batch"] = np.repeat(["b1", "b2"], 60)
    pp.normalize_log1p(a)
    pp.highly_variable_genes(a, n_top_genes=30, batch_key="batch")
    assert a.n_vars == 30
    assert "highly_variable_nbatches" in a.var


def test_hvg_caps_n_top_genes():
    a = _counts(n_vars=20)
    pp.normalize_log1p(a)
    pp.highly_variable_genes(a, n_top_genes=2000)
    assert a.n_vars == 20


# ---------------------------------------------------------------------------- TF-IDF / LSI
def test_tfidf_hand_computed():
    X = np.array([[1, 0, 2, 1], [0, 3, 0, 1], [1, 1, 0, 0]], dtype=np.float32)
    a = ad.AnnData(sp.csr_matrix(X))
    pp.tfidf(a)
    T = a.layers["tfidf"].toarray()
    # cell totals 4, 4, 2; peak totals 2, 4, 2, 2; idf = 3 / total
    # (0,0): 1/4 * 3/2 * 1e4 = 3750;  (1,1): 3/4 * 3/4 * 1e4 = 5625;  (2,1): 1/2 * 3/4 * 1e4 = 3750
    # (0,2): 2/4 * 3/2 * 1e4 = 7500;  (1,3): 1/4 * 3/2 * 1e4 = 3750
    expected = np.zeros((3, 4))
    expected[0, 0] = np.log(3751)
    expected[0, 2] = np.log(7501)
    expected[0, 3] = np.log(3751)
    expected[1, 1] = np.log(5626)
    expected[1, 3] = np.log(3751)
    expected[2, 0] = np.log(7501)  # 1/2 * 3/2 * 1e4
    expected[2, 1] = np.log(3751)
    np.testing.assert_allclose(T, expected, rtol=1e-6)
    assert sp.issparse(a.layers["tfidf"])


def test_tfidf_zero_cell_and_peak():
    X = np.array([[0, 0, 0], [1, 0, 1]], dtype=np.float32)
    a = ad.AnnData(X)
    pp.tfidf(a, key_added="tf")
    T = a.layers["tf"].toarray()
    assert np.isfinite(T).all()
    assert (T[0] == 0).all() and (T[:, 1] == 0).all()


def test_lsi_shape_and_orthogonality():
    a = _atac()
    pp.tfidf(a)
    pp.lsi(a, n_comps=10, standardize=False, key_added="X_svd")
    Z = a.obsm["X_svd"].astype(np.float64)
    assert Z.shape == (120, 10)
    G = Z.T @ Z
    off = G - np.diag(np.diag(G))
    assert np.abs(off).max() < 1e-4 * np.abs(np.diag(G)).max()
    V = a.varm["X_svd"].astype(np.float64)
    np.testing.assert_allclose(V.T @ V, np.eye(10), atol=1e-5)
    S = a.uns["X_svd"]["singular_values"]
    assert np.all(np.diff(S) <= 1e-8)
    np.testing.assert_allclose(np.diag(G), S**2, rtol=1e-4)


def test_lsi_glue_standardisation_and_drop_first():
    a = _atac()
    pp.lsi(a, n_comps=8, drop_first=True)  # no tfidf layer: computed on the fly
    Z = a.obsm["X_lsi"]
    assert Z.shape == (120, 8)
    np.testing.assert_allclose(Z.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(Z.std(axis=1, ddof=1), 1, rtol=1e-4)
    assert "tfidf" not in a.layers
    b = _atac()
    pp.lsi(b, n_comps=9)
    # dropping the first component keeps the following ones (up to sign)
    Sa, Sb = a.uns["X_lsi"]["singular_values"], b.uns["X_lsi"]["singular_values"]
    np.testing.assert_allclose(Sa, Sb[1:], rtol=1e-3)


def test_lsi_use_highly_variable():
    a = _atac()
    a.var["highly_variable"] = np.arange(a.n_vars) % 2 == 0
    pp.lsi(a, n_comps=5, use_highly_variable=True)
    assert np.all(a.varm["X_lsi"][~a.var["highly_variable"].to_numpy()] == 0)
    with pytest.raises(AttuneInputError, match="highly_variable"):
        pp.lsi(_atac(), use_highly_variable=True)


# ---------------------------------------------------------------------------- PCA reference
def test_pca_rna_reference():
    a = _counts()
    pp.pca_rna(a, n_comps=20, n_top_genes=100)
    assert a.obsm["X_pca"].shape == (120, 20)
    assert a.n_vars == 200 and "counts" not in a.layers  # nothing else written
    assert a.uns["X_pca"]["n_genes"] == 100
    # after preprocessing, the HVG subset and counts layer are used
    b = _counts()
    pp.preprocess_rna(b, n_top_genes=60, n_comps=15)
    assert b.obsm["X_pca"].shape == (120, 15)
    assert b.uns["X_pca"]["from_counts"]


# ---------------------------------------------------------------------------- recipes
def test_preprocess_rna_recipe():
    a = _counts()
    a.var.loc[["g3", "g4"], "chrom"] = ["chrX", "chrY"]
    raw = a.copy()
    pp.preprocess_rna(a, n_top_genes=50, n_comps=10)
    assert a.n_vars == 50
    assert "g3" not in a.var_names and "g4" not in a.var_names
    np.testing.assert_array_equal(
        a.layers["counts"].toarray(), raw[:, a.var_names].X.toarray()
    )
    assert not pp.is_raw_counts(a)


def test_preprocess_mudata():
    rna, atac = _counts(), _atac()
    rna.obs["batch"] = np.repeat(["b1", "b2"], 60)
    atac_raw = atac.copy()
    m = md.MuData({"rna": rna, "atac": atac})
    pp.preprocess(m, n_top_genes=40, n_peaks=100, n_comps=10, batch_key="batch")
    r, at = m["rna"], m["atac"]
    assert r.n_vars == 40 and at.n_vars == 100
    assert list(r.obs_names) == list(at.obs_names) and m.n_obs == 120
    assert not any(str(v).startswith("chrX") for v in at.var_names)
    np.testing.assert_array_equal(at.X.toarray(), at.layers["counts"].toarray())
    np.testing.assert_array_equal(at.X.toarray(), atac_raw[:, at.var_names].X.toarray())
    assert at.obsm["X_lsi"].shape == (120, 10) and r.obsm["X_pca"].shape == (120, 10)
    assert "tfidf" in at.layers
    rec = m.uns["attune_pp"]
    assert rec["params"]["n_top_genes"] == 40 and rec["atac"]["n_peaks"] == 100
    # the n_peaks kept are the most accessible ones
    totals = np.asarray(atac_raw.X.sum(axis=0)).ravel()
    kept_tot = np.asarray(at.X.sum(axis=0)).ravel()
    assert kept_tot.min() >= np.sort(totals[10:])[::-1][99] - 1e-6


def test_preprocess_batch_key_from_mdata_obs():
    rna, atac = _counts(), _atac()
    m = md.MuData({"rna": rna, "atac": atac})
    m.obs["sample"] = np.repeat(["s1", "s2"], 60)
    pp.preprocess(m, n_top_genes=30, n_comps=None, batch_key="sample")
    assert m["rna"].n_vars == 30 and "X_lsi" not in m["atac"].obsm


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad", [-0.1, 1.5, np.nan, "x"])
def test_bad_min_fraction(bad):
    a = _counts()
    with pytest.raises(AttuneInputError, match="min_fraction"):
        pp.filter_features(a, min_fraction=bad)
    with pytest.raises(AttuneInputError, match="min_fraction"):
        pp.preprocess_rna(a, min_fraction=bad)
    assert a.n_vars == 200 and not a.layers


@pytest.mark.parametrize("bad", [0, -5, 2.5, None])
def test_bad_n_top_genes(bad):
    a = _counts()
    with pytest.raises(AttuneInputError, match="n_top_genes"):
        pp.highly_variable_genes(a, n_top_genes=bad)
    with pytest.raises(AttuneInputError, match="n_top_genes"):
        pp.preprocess_rna(a, n_top_genes=bad)
    assert a.n_vars == 200 and not a.layers and "highly_variable" not in a.var


def test_nan_and_negative_inputs_leave_data_unchanged():
    a = _counts(sparse=False)
    a.X[3, 5] = np.nan
    with pytest.raises(AttuneInputError, match="NaN"):
        pp.preprocess_rna(a)
    with pytest.raises(AttuneInputError, match="NaN"):
        pp.normalize_log1p(a)
    assert a.n_vars == 200 and not a.layers
    b = _counts(sparse=False)
    b.X[0, 0] = -1
    with pytest.raises(AttuneInputError, match="negative"):
        pp.filter_features(b)
    with pytest.raises(AttuneInputError, match="negative"):
        pp.tfidf(b)
    assert b.n_vars == 200 and not b.layers


def test_preprocess_rejects_unpaired_and_bad_keys():
    rna, atac = _counts(), _atac()
    atac.obs_names = [f"x{i}" for i in range(atac.n_obs)]
    m = md.MuData({"rna": rna, "atac": atac})
    n_before = m["rna"].n_vars
    with pytest.raises(AttuneInputError, match="paired"):
        pp.preprocess(m)
    assert m["rna"].n_vars == n_before and not m["rna"].layers
    m2 = md.MuData({"rna": _counts(), "atac": _atac()})
    with pytest.raises(AttuneInputError, match="batch_key"):
        pp.preprocess(m2, batch_key="nope")
    with pytest.raises(AttuneInputError, match="'protein'"):
        pp.preprocess(m2, atac_mod="protein")
    with pytest.raises(AttuneInputError, match="left after filtering"):
        pp.preprocess(m2, peak_min_cells=10_000)
    assert m2["rna"].n_vars == 200 and not m2["rna"].layers and not m2["atac"].layers


def test_missing_layer_named():
    a = _counts()
    with pytest.raises(AttuneInputError, match="'nope'"):
        pp.filter_features(a, layer="nope")
    with pytest.raises(AttuneInputError, match="'nope'"):
        pp.tfidf(a, layer="nope")


# ---------------------------------------------------------------------------- simulated data
def test_preprocess_simulated_multiome(sim_small):
    m = sim_small.copy()
    raw_rna = m["rna"].copy()
    pp.preprocess(m, n_top_genes=150, n_comps=20)
    rna, atac = m["rna"], m["atac"]
    assert rna.n_obs == atac.n_obs == sim_small.n_obs
    assert list(rna.obs_names) == list(atac.obs_names)
    assert rna.n_vars == 150
    assert not rna.var["chrom"].isin(["chrX", "chrY"]).any()
    assert not atac.var["chrom"].isin(["chrX", "chrY"]).any()
    np.testing.assert_array_equal(
        _dense(rna.layers["counts"]), _dense(raw_rna[:, rna.var_names].X)
    )
    assert pp.is_raw_counts(atac) and pp.is_raw_counts(atac, layer="counts")
    assert rna.obsm["X_pca"].shape == (rna.n_obs, 20)
    assert atac.obsm["X_lsi"].shape == (atac.n_obs, 20)
    assert set(m.uns["attune_pp"]) == {"params", "rna", "atac"}


def _dense(X):
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def test_lsi_cells_without_counts_stay_finite():
    import anndata as ad
    import numpy as np
    import scipy.sparse as sp

    from attune_lib.pp import lsi

    rng = np.random.default_rng(0)
    X = sp.random(60, 40, density=0.2, random_state=1, format="csr", dtype=np.float32)
    X.data[:] = rng.integers(1, 3, size=X.nnz)
    X = X.tolil()
    X[5, :] = 0  # a cell with no counts at all
    adata = ad.AnnData(sp.csr_matrix(X))
    lsi(adata, n_comps=5)
    emb = adata.obsm["X_lsi"]
    assert np.isfinite(emb).all()
    assert np.allclose(emb[5], 0)


def test_preprocess_is_atomic_when_a_late_step_fails():
    """A failure in the last step (PCA on one gene) leaves both modalities exactly as they were."""
    m = md.MuData({"rna": _counts(), "atac": _atac()})
    rna_before, atac_before = m["rna"].X.copy(), m["atac"].X.copy()
    n_genes, n_peaks = m["rna"].n_vars, m["atac"].n_vars
    with pytest.raises(AttuneInputError, match="too few cells/genes for PCA"):
        pp.preprocess(m, n_top_genes=1)
    assert m["rna"].n_vars == n_genes and m["atac"].n_vars == n_peaks
    assert not m["rna"].layers and not m["atac"].layers and "attune_pp" not in m.uns
    assert (m["rna"].X != rna_before).nnz == 0 and (m["atac"].X != atac_before).nnz == 0
    a = _counts()
    with pytest.raises(AttuneInputError, match="too few cells/genes for PCA"):
        pp.preprocess_rna(a, n_top_genes=1)
    assert a.n_vars == n_genes and not a.layers and "attune_pp" not in a.uns
