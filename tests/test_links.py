"""Pair-specific link read-out, its evaluation against distance, and the simulator's causal link model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import attune_lib as al
from attune_lib._utils import AttuneInputError
from attune_lib.datasets import simulate_multiome
from attune_lib.metrics import distance_matched_auroc, distance_strata
from attune_lib.tl._links import link_evaluation, link_features, link_readout


# ------------------------------------------------------------------ distance-matched AUROC
def test_distance_matched_auroc_hand_made():
    d = np.array([1, 2, 3, 4, 10, 11, 12, 13], dtype=float)
    y = np.array([1, 0, 1, 0, 1, 0, 0, 1], dtype=bool)
    # positives at 1, 3, 10, 13 -> one edge at their median 6.5 -> strata {1..4}, {10..13}
    np.testing.assert_array_equal(distance_strata(d, y, n_strata=2), [0, 0, 0, 0, 1, 1, 1, 1])
    s = np.array([0.9, 0.1, 0.2, 0.8, 0.5, 0.6, 0.4, 0.3])
    # stratum 0: positives {0.9, 0.2} vs negatives {0.1, 0.8}: 3 of 4 pairs ordered -> 0.75
    # stratum 1: positives {0.5, 0.3} vs negatives {0.6, 0.4}: 1 of 4 -> 0.25
    value, tab = distance_matched_auroc(y, s, d, n_strata=2, return_strata=True)
    assert tab["auroc"].tolist() == [0.75, 0.25]
    assert value == pytest.approx(0.5)
    assert distance_matched_auroc(y, s, d, n_strata=2, weights="positives") == pytest.approx(0.5)
    # proximity wins overall when positives are nearer, but not within matched strata
    d2 = np.r_[np.arange(10), np.arange(10)].astype(float) * 1000 + np.r_[np.zeros(10), np.full(10, 50)]
    y2 = np.r_[np.ones(10), np.zeros(10)].astype(bool)  # positives 50 bp nearer than their matched negatives
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y2, -d2) > 0.5
    assert distance_matched_auroc(y2, -d2, d2, n_strata=10) == pytest.approx(1.0)  # 1 pos, 1 neg per stratum
    rng = np.random.default_rng(0)
    noise = rng.random(20)
    assert distance_matched_auroc(y2, noise, d2, n_strata=1) == pytest.approx(roc_auc_score(y2, noise))
    with pytest.raises(AttuneInputError, match="n_strata"):
        distance_matched_auroc(y, s, d, n_strata=0)
    with pytest.raises(AttuneInputError, match="weights"):
        distance_matched_auroc(y, s, d, weights="mean")


# ------------------------------------------------------------------ the simulator's causal link model
def _within_state_corr(m, genes, peaks):
    """Correlation over cells of expression and accessibility after removing each cell type's mean."""
    rna, atac = m["rna"], m["atac"]
    X = rna.X.toarray()
    E = np.log1p(X / X.sum(1, keepdims=True) * 1e4)
    A = (atac.X > 0).toarray().astype(float)
    ct = rna.obs["cell_type"].to_numpy()
    for t in np.unique(ct):
        E[ct == t] -= E[ct == t].mean(0)
        A[ct == t] -= A[ct == t].mean(0)
    e = E[:, rna.var_names.get_indexer(genes)]
    a = A[:, atac.var_names.get_indexer(peaks)]
    e, a = e - e.mean(0), a - a.mean(0)
    den = np.sqrt((e * e).sum(0) * (a * a).sum(0))
    return np.divide((e * a).sum(0), den, out=np.full(den.shape, np.nan), where=den > 0)


@pytest.fixture(scope="module")
def causal_pair():
    kw = dict(n_cells=2000, n_genes=150, n_peaks=1500, seed=3, motifs=False, truth_layers=False)
    return simulate_multiome("pbmc", **kw), simulate_multiome("pbmc", link_strength=0.0, **kw)


def _link_minus_decoy(m):
    """Mean within-cell-type correlation of true distal links minus that of decoys, matched by distance bin."""
    truth = m.uns["truth"]
    links = truth["links"]
    dec = truth["decoys"]
    bins = [0, 30_000, 80_000, 150_000]
    links = links[(links["kind"] == "distal") & (links["distance"] < bins[-1])]
    dec = dec[dec["distance"] < bins[-1]]
    c_link = pd.Series(_within_state_corr(m, links["gene"], links["peak"])).groupby(
        pd.cut(links["distance"].to_numpy(), bins), observed=False).mean()
    c_dec = pd.Series(_within_state_corr(m, dec["gene"], dec["peak"])).groupby(
        pd.cut(dec["distance"].to_numpy(), bins), observed=False).mean()
    return float((c_link - c_dec).mean()), len(links), len(dec)


def test_causal_links_covary_more_than_decoys_at_matched_distance(causal_pair):
    causal, expected_only = causal_pair
    diff, n_link, n_dec = _link_minus_decoy(causal)
    assert n_link > 50 and n_dec > 50
    # within cell type, a true link co-varies more than a same-program decoy at the same distance ...
    diff0, _, _ = _link_minus_decoy(expected_only)
    assert diff > 0.01, diff
    # ... which it does not when genes follow only their peaks' expected accessibility (same cells, genome)
    assert diff > diff0 + 0.008, (diff, diff0)
    assert causal.uns["truth"]["params"]["link_strength"] == 1.0
    # the decoys share the gene's program: they correlate with it when the cell state is not removed
    dec = causal.uns["truth"]["decoys"]
    rna, atac = causal["rna"], causal["atac"]
    X = rna.X.toarray()
    E = np.log1p(X / X.sum(1, keepdims=True) * 1e4)
    e = E[:, rna.var_names.get_indexer(dec["gene"])]
    a = (atac.X > 0).toarray()[:, atac.var_names.get_indexer(dec["peak"])].astype(float)
    raw = [np.corrcoef(e[:, j], a[:, j])[0, 1] for j in range(e.shape[1]) if e[:, j].std() and a[:, j].std()]
    assert np.nanmean(raw) > 0.05


def test_link_strength_parameter_validated():
    with pytest.raises(AttuneInputError, match="link_strength"):
        simulate_multiome("pbmc", n_cells=20, n_genes=120, n_peaks=300, motifs=False, link_strength=1.5)


# ------------------------------------------------------------------ features, read-out, invariances
@pytest.fixture(scope="module")
def feats():
    m = simulate_multiome("pbmc", n_cells=500, n_genes=150, n_peaks=1200, seed=1, motifs=False)
    al.pp.preprocess(m, seed=0)
    m.obsm["X_state"] = np.asarray(m["rna"].obsm["X_pca"][:, :10])
    F = link_features(m, use_rep="X_state", key_added="lf")
    return m, F


def test_link_features_columns_and_errors(feats):
    m, F = feats
    assert m.uns["lf"] is not None and len(F) == len(al.tl.gene_peak_pairs(m))
    assert F["chrom"].str.startswith("chr").all()
    for col in ("log_distance", "contact", "activity", "abc", "covariation", "covariation_z",
                "covariation_rank", "state_spearman", "proximity_rank", "state_spearman_rank"):
        assert col in F and np.isfinite(F[col]).all()
    # ABC is normalised over each gene's window
    np.testing.assert_allclose(F.groupby("gene")["abc"].sum(), 1.0, rtol=1e-9)
    assert F["covariation"].abs().max() < 1
    with pytest.raises(AttuneInputError, match="use_rep"):
        link_features(m, use_rep="X_missing")
    with pytest.raises(AttuneInputError, match="n_neighbors"):
        link_features(m, use_rep="X_state", n_neighbors=0)


def test_score_changes_with_the_peak_not_with_an_unrelated_gene(feats):
    m, F = feats
    base = link_readout(F, None, key_added="s")
    chrom = F["chrom"].iloc[0]
    truth = m.uns["truth"]["links"]
    fit = link_readout(F, truth, test_chroms=[chrom], key_added="s")
    g0 = F["gene"].iloc[0]
    # an unrelated gene on the same (held-out) chromosome
    other = F.loc[(F["chrom"] == chrom) & (F["gene"] != g0), "gene"].iloc[0]
    m2 = m.copy()
    rna = m2["rna"]
    X = rna.X.toarray()
    j = rna.var_names.get_loc(other)
    X[:, j] = np.random.default_rng(5).permutation(X[:, j])
    rna.X = sp.csr_matrix(X)
    F2 = link_features(m2, use_rep="X_state", key_added=None)
    sel = (F["gene"] != other).to_numpy()
    pd.testing.assert_frame_equal(F.loc[sel].reset_index(drop=True), F2.loc[sel].reset_index(drop=True))
    assert not np.allclose(F.loc[~sel, "covariation"], F2.loc[~sel, "covariation"])
    fit2 = link_readout(F2, truth, test_chroms=[chrom], key_added="s")
    test_rows = sel & (F["chrom"] == chrom).to_numpy()
    np.testing.assert_allclose(fit.loc[test_rows, "s"], fit2.loc[test_rows, "s"])
    np.testing.assert_allclose(base.loc[sel, "s"], link_readout(F2, None, key_added="s").loc[sel, "s"])
    # change one peak's accessibility: its pairs' co-variation and scores move
    p0 = F.loc[F["chrom"] == chrom, "peak"].iloc[0]
    m3 = m.copy()
    atac = m3["atac"]
    A = atac.layers["counts"].toarray()
    k = atac.var_names.get_loc(p0)
    A[:, k] = np.random.default_rng(7).permutation(A[:, k])
    atac.layers["counts"] = sp.csr_matrix(A)
    F3 = link_features(m3, use_rep="X_state", key_added=None)
    rows = (F["peak"] == p0).to_numpy()
    assert not np.allclose(F.loc[rows, "covariation"], F3.loc[rows, "covariation"])
    fit3 = link_readout(F3, truth, test_chroms=[chrom], key_added="s")
    assert not np.allclose(fit.loc[rows, "s"], fit3.loc[rows, "s"])


def test_held_out_chromosome_protocol(feats):
    m, F = feats
    truth = m.uns["truth"]["links"]
    out = link_readout(F, truth, n_folds=3, key_added="s")
    coefs, folds = out.attrs["coefficients"], out.attrs["folds"]
    assert set(folds.values()) == {0, 1, 2} and np.isfinite(out["s"]).all()
    for j in range(3):
        test = {c for c, f in folds.items() if f == j}
        assert set(coefs.loc[coefs["fold"] == j, "test_chroms"].iloc[0].split(",")) == test
        assert coefs.loc[coefs["fold"] == j, "n_test"].iloc[0] == int(out["chrom"].isin(test).sum())
    # nothing fitted sees the test chromosomes: relabelling and rescaling a held-out group's pairs
    # changes no score on it
    test = [c for c, f in folds.items() if f == 0]
    on_test = out["chrom"].isin(test).to_numpy()
    F2 = F.copy()
    F2.loc[on_test, "covariation_z"] = -F2.loc[on_test, "covariation_z"]
    y = al.tl.label_links(F, truth)
    y2 = y.copy()
    y2[on_test] = ~y2[on_test]
    out2 = link_readout(F2, y2, n_folds=3, key_added="s")
    a, b = out.loc[on_test], out2.loc[on_test]
    np.testing.assert_allclose(F2.loc[on_test, "covariation_z"], -F.loc[on_test, "covariation_z"])
    # the test group's model is the same, applied to the changed features
    lr_cols = [c for c in coefs.columns if c not in ("fold", "test_chroms", "n_train", "n_test")]
    assert "log_distance covariation_z" in lr_cols  # degree 2: pairwise products
    assert out.attrs["coefficients"].loc[0, lr_cols].equals(out2.attrs["coefficients"].loc[0, lr_cols])
    assert not np.allclose(a["s"], b["s"])  # its scores follow its (changed) features only
    assert not out.attrs["coefficients"].loc[1, lr_cols].equals(out2.attrs["coefficients"].loc[1, lr_cols])
    # explicit test chromosomes: only they are scored
    one = link_readout(F, truth, test_chroms=[test[0]], key_added="s")
    assert one.loc[one["chrom"] == test[0], "s"].notna().all() and one.loc[one["chrom"] != test[0], "s"].isna().all()
    with pytest.raises(AttuneInputError, match="test_chroms"):
        link_readout(F, truth, test_chroms=["chrNone"])
    with pytest.raises(AttuneInputError, match="n_folds"):
        link_readout(F, truth, n_folds=1)


def test_link_evaluation_reports_matched_auroc(feats):
    m, F = feats
    F = F.assign(distance_only=-F["distance"])
    truth = m.uns["truth"]["links"]
    ev = link_evaluation(F, {"true": truth}, methods=["distance_only", "covariation"])
    assert list(ev.columns) == ["truth", "method", "auroc", "auprc", "auroc_distance_matched", "n_pairs", "n_pos"]
    e = ev.set_index("method")
    assert e.loc["distance_only", "auroc"] > 0.8
    assert e.loc["covariation", "auroc_distance_matched"] > e.loc["distance_only", "auroc_distance_matched"]
