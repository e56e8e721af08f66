"""Cross-modal prediction (RNA from ATAC): splits, metrics, fine-tuning, query alignment, harness, plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from plot_checks import assert_shows, content

import attune_lib as al
from attune_lib._utils import AttuneInputError
from attune_lib.models import Attune
from attune_lib.models._prediction import (
    RNAPredictor,
    align_peaks,
    predict_rna_from_atac,
)
from attune_lib.pl._prediction import (
    contrast_ablation_prediction,
    prediction_table,
    prediction_violins,
)
from attune_lib.pl._style import label
from attune_lib.tl._prediction import (
    LSITransform,
    evaluate_prediction,
    fit_lasso,
    fit_lsi_ridge,
    make_splits,
    paper_prediction_values,
    run_prediction_benchmark,
    summarize_prediction,
)

torch.set_num_threads(1)
SMALL = {"n_hidden": 32, "n_latent": 32}


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def prep(sim_small):
    mdata = sim_small.copy()
    al.pp.preprocess(mdata, n_comps=10)
    return mdata


@pytest.fixture(scope="module")
def split(prep):
    return make_splits(prep.n_obs, split="holdout", n_splits=1, seed=3)[0]


@pytest.fixture(scope="module")
def pretrained(prep, split):
    """Attune pretrained on the non-test cells only (returned with a snapshot of its ATAC student)."""
    train, val, _ = split
    fit = np.sort(np.concatenate([train, val]))
    ref = prep[prep.obs_names[fit]].copy()
    Attune.setup_mudata(ref, atac_layer="counts")
    model = Attune(ref, seed=0, **SMALL)
    model.train(max_epochs=8, lr=1e-3, lr_end=1e-5, progress_bar=False)
    snapshot = {k: v.clone() for k, v in model.module.atac_student.state_dict().items()}
    return model, snapshot


@pytest.fixture(scope="module")
def finetuned(prep, split, pretrained):
    model, _ = pretrained
    train, val, _ = split
    pred = RNAPredictor.from_attune(model, seed=0)
    pred.train(prep, train_indices=train, val_indices=val, max_epochs=12, patience=None, progress_bar=False)
    return pred


def _dense(X):
    return X.toarray() if sp.issparse(X) else np.asarray(X)


# -------------------------------------------------------------------------------------------- splits
@pytest.mark.parametrize("kind", ["holdout", "kfold"])
def test_split_hygiene(kind):
    n = 103
    splits = make_splits(n, split=kind, n_splits=4, validation_fraction=0.1, seed=5)
    assert len(splits) == 4
    for train, val, test in splits:
        for a, b in ((train, val), (train, test), (val, test)):
            assert np.intersect1d(a, b).size == 0
        assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(n))
        assert val.size == round(0.1 * (n - test.size))
        assert all(np.all(np.diff(a) > 0) for a in (train, val, test))
    tests = [t for _, _, t in splits]
    if kind == "kfold":  # folds are disjoint and cover every cell once
        assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(n))
    else:
        assert all(t.size == round(0.2 * n) for t in tests)
        assert not np.array_equal(tests[0], tests[1])
    again = make_splits(n, split=kind, n_splits=4, validation_fraction=0.1, seed=5)
    assert all(np.array_equal(a, b) for s1, s2 in zip(splits, again) for a, b in zip(s1, s2))


def test_split_errors():
    with pytest.raises(AttuneInputError, match="split"):
        make_splits(50, split="bootstrap")
    with pytest.raises(AttuneInputError, match="n_splits"):
        make_splits(50, split="kfold", n_splits=1)
    with pytest.raises(AttuneInputError, match="validation_fraction"):
        make_splits(50, validation_fraction=0.0)


# ------------------------------------------------------------------------------------------- metrics
def test_evaluate_prediction_hand_values():
    y_true = np.array([[1.0, 0.0, 2.0, 5.0], [2.0, 1.0, 2.0, 1.0], [3.0, 0.0, 2.0, 3.0], [4.0, 1.0, 2.0, 7.0]])
    y_pred = np.array([[3.0, 0.5, 1.0, 9.0], [5.0, 0.5, 2.0, 9.0], [7.0, 0.5, 3.0, 9.0], [9.0, 0.5, 4.0, 9.0]])
    summary, per_gene = evaluate_prediction(y_true, y_pred, gene_names=list("abcd"))
    # a: y_pred = 2 y_true + 1 -> 1; b: constant prediction -> 0 (not NaN); c: constant truth -> NaN;
    # d: constant prediction -> 0
    assert per_gene.loc["a", "pearson"] == pytest.approx(1.0)
    assert per_gene.loc["a", "spearman"] == pytest.approx(1.0)
    assert per_gene.loc["b", "pearson"] == 0.0 and per_gene.loc["d", "spearman"] == 0.0
    assert np.isnan(per_gene.loc["c", "pearson"])
    assert per_gene["constant_pred"].tolist() == [False, True, False, True]
    assert summary["pearson"] == pytest.approx((1 + 0 + 0) / 3)
    assert summary["n_genes_constant"] == 1 and summary["n_genes_constant_pred"] == 2
    # RMSE of gene a: residuals 2, 3, 4, 5
    assert per_gene.loc["a", "rmse"] == pytest.approx(np.sqrt((4 + 9 + 16 + 25) / 4))
    truth = np.array([[1.0, 0.2, 1.0, 4.0], [2.0, 0.4, 2.0, 2.0], [3.0, 0.2, 3.0, 3.0], [4.0, 0.4, 4.0, 5.0]])
    s2, pg2 = evaluate_prediction(y_true, y_pred, gene_names=list("abcd"), truth=truth)
    assert pg2.loc["a", "ceiling_pearson"] == pytest.approx(1.0)
    assert pg2.loc["c", "pearson_truth"] == pytest.approx(1.0)  # c: prediction 1..4 vs truth 1..4
    assert pg2.loc["b", "pearson_truth"] == 0.0
    assert pg2.loc["b", "ceiling_pearson"] == pytest.approx(1.0)
    assert s2["pearson_truth"] == pytest.approx((1 + 0 + 1 + 0) / 4)


def test_summarize_prediction_mean_sd():
    s = pd.DataFrame({"method": ["x", "x", "y", "y"], "pearson": [0.1, 0.3, 0.5, 0.5], "rmse": [1, 2, 3, 3]})
    out = summarize_prediction(s)
    assert list(out.index) == ["y", "x"]
    assert out.loc["x", "pearson_mean"] == pytest.approx(0.2)
    assert out.loc["x", "pearson_sd"] == pytest.approx(np.std([0.1, 0.3], ddof=1))
    assert out.loc["y", "n_splits"] == 2


def test_linear_baselines_fit_signal():
    rng = np.random.default_rng(0)
    n, p = 200, 60
    state = rng.integers(0, 3, n)
    prob = 0.05 + 0.5 * (np.arange(p)[None, :] % 3 == state[:, None])
    X = sp.csr_matrix((rng.random((n, p)) < prob).astype(np.float32))
    Y = np.stack([state == 0, state == 1, rng.random(n) < 0.5], axis=1).astype(float) * 2
    Y[:, :2] += rng.normal(0, 0.3, (n, 2))
    tr, te = np.arange(150), np.arange(150, n)
    for model in (fit_lsi_ridge(X[tr], Y[tr], n_components=10),
                  fit_lasso(X[tr], Y[tr], n_components=10, n_alphas=6, cv=3)):
        P = model.predict(X[te])
        assert P.shape == (te.size, 3)
        r = [np.corrcoef(P[:, g], Y[te, g])[0, 1] for g in range(2)]
        assert min(r) > 0.8
    lsi = LSITransform(5).fit(X[tr])
    Z = lsi.transform(X[tr])
    assert np.allclose(Z.mean(0), 0, atol=1e-8) and np.allclose(Z.std(0), 1)


# ---------------------------------------------------------------------------------------- fine-tuning
def test_finetune_lowers_val_loss_and_beats_mean(prep, split, finetuned, pretrained):
    pred = finetuned
    model, snapshot = pretrained
    hist = pred.history
    assert {"loss", "val_loss"} <= set(hist.columns)
    assert hist["val_loss"].min() < hist["val_loss"].iloc[0]
    train, _, test = split
    Y = _dense(prep["rna"].X)
    P = pred.predict(prep)[test]
    mse_model = float(((P - Y[test]) ** 2).mean())
    mse_mean = float(((Y[train].mean(0) - Y[test]) ** 2).mean())
    assert mse_model < mse_mean
    r = evaluate_prediction(Y[test], P)[0]["pearson"]
    assert r > 0.05
    # the pretrained Attune model is never modified by fine-tuning
    for k, v in model.module.atac_student.state_dict().items():
        assert torch.equal(v, snapshot[k]), k
    assert pred.module.encoder is not model.module.atac_student


def test_validation_split_chooses_the_epoch(prep, split, finetuned):
    pred = finetuned
    train, val, test = split
    hist = pred.history
    assert pred.best_epoch == int(hist["val_loss"].idxmin())
    # the kept weights are those of the best validation epoch
    Y = _dense(prep["rna"].X)
    P_val = pred.predict(prep)[val]
    assert float(((P_val - Y[val]) ** 2).mean()) == pytest.approx(hist["val_loss"].min(), rel=1e-4)
    # test cells were never read; train and validation cells were
    assert np.array_equal(pred.train_indices_, train) and np.array_equal(pred.val_indices_, val)
    assert np.intersect1d(pred.touched_indices_, test).size == 0
    assert np.array_equal(pred.touched_indices_, np.sort(np.concatenate([train, val])))


def test_early_stopping_and_denovo(prep, split):
    train, val, test = split
    pred = RNAPredictor.de_novo(prep, atac_layer="counts", seed=1, **SMALL)
    assert pred.origin == "mlp_denovo"
    pred.train(prep, train_indices=train, val_indices=val, max_epochs=25, lr=5e-3, patience=2, progress_bar=False)
    n = len(pred.history)
    assert pred.best_epoch == int(pred.history["val_loss"].idxmin())
    if pred.stopped_early:
        assert n - pred.best_epoch == 2 and n < 25
    else:
        assert n == 25
    assert np.intersect1d(pred.touched_indices_, test).size == 0


def test_default_validation_carved_from_training(prep):
    pred = RNAPredictor.de_novo(prep, atac_layer="counts", seed=0, n_hidden=8, n_latent=8, n_head=16)
    cells = np.arange(0, prep.n_obs, 2)
    pred.train(prep, train_indices=cells, validation_fraction=0.25, max_epochs=1, progress_bar=False)
    assert np.intersect1d(pred.train_indices_, pred.val_indices_).size == 0
    assert np.array_equal(np.sort(np.concatenate([pred.train_indices_, pred.val_indices_])), cells)
    assert pred.val_indices_.size == round(0.25 * cells.size)
    assert np.isin(pred.touched_indices_, cells).all()


# ------------------------------------------------------------------------------------------ queries
def test_predict_unseen_cells(prep, split, finetuned):
    pred = finetuned
    _, _, test = split
    query = prep[prep.obs_names[test]].copy()
    df = pred.predict(query, as_frame=True)
    assert df.shape == (test.size, prep["rna"].n_vars)
    assert list(df.index) == list(prep.obs_names[test])
    assert list(df.columns) == list(prep["rna"].var_names)
    # the layer follows the query's gene order
    rev = query["rna"].var_names[::-1]
    q2 = query.copy()
    q2.mod["rna"] = q2["rna"][:, rev].copy()
    pred.predict_to_layer(q2, layer="pred")
    np.testing.assert_allclose(q2["rna"].layers["pred"], df[rev].to_numpy(), rtol=1e-5, atol=1e-5)
    # without an RNA modality one is created holding only the prediction
    import mudata as md

    q3 = md.MuData({"atac": query["atac"].copy()})
    pred.predict_to_layer(q3, layer="attune_predicted")
    assert q3["rna"].shape == (test.size, prep["rna"].n_vars)
    np.testing.assert_allclose(q3["rna"].layers["attune_predicted"], df.to_numpy(), rtol=1e-5, atol=1e-5)


def test_query_peak_mismatch_and_align(prep, split, finetuned):
    pred = finetuned
    _, _, test = split
    query = prep[prep.obs_names[test]].copy()
    full = pred.predict(query)
    atac = query["atac"]
    drop = atac.var_names[[3, 10]]
    keep = [v for v in atac.var_names if v not in set(drop)][::-1]  # also reordered
    sub = atac[:, keep].copy()
    sub.var_names = [*sub.var_names[:-1], "chrZ:1-2"]  # one extra peak (renamed)
    import mudata as md

    q = md.MuData({"atac": sub})
    with pytest.raises(AttuneInputError, match=r"3 missing.*1 extra"):
        pred.predict(q)
    with pytest.warns(UserWarning, match="filled with zeros"):
        aligned = pred.predict(q, align="by_name")
    # reference: the full query with the missing peaks set to zero
    ref_atac = atac.copy()
    X = _dense(ref_atac.layers["counts"]).copy()
    lost = np.isin(ref_atac.var_names, [*drop, keep[-1]])
    X[:, lost] = 0
    ref_atac.layers["counts"] = sp.csr_matrix(X)
    expected = pred.predict(md.MuData({"atac": ref_atac}))
    np.testing.assert_allclose(aligned, expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(aligned, full)
    # the modality's gene set must match the predictor to write a layer
    bad = query.copy()
    bad.mod["rna"] = bad["rna"][:, bad["rna"].var_names[:-2]].copy()
    with pytest.raises(AttuneInputError, match="2 missing"):
        pred.predict_to_layer(bad)
    assert "attune_predicted" not in bad["rna"].layers


def test_align_peaks_by_hand():
    X = sp.csr_matrix(np.array([[1.0, 2.0, 3.0], [4.0, 0.0, 6.0]]))
    with pytest.warns(UserWarning, match="1 missing.*1 extra"):
        out = align_peaks(X, pd.Index(["b", "x", "a"]), pd.Index(["a", "b", "c"]), align="by_name")
    np.testing.assert_array_equal(out.toarray(), [[3.0, 1.0, 0.0], [6.0, 4.0, 0.0]])
    same = align_peaks(X, pd.Index(["c", "a", "b"]), pd.Index(["a", "b", "c"]))
    np.testing.assert_array_equal(same.toarray(), [[2.0, 3.0, 1.0], [0.0, 6.0, 4.0]])
    with pytest.raises(AttuneInputError, match="align"):
        align_peaks(X, pd.Index(["a", "b", "c"]), pd.Index(["a", "b", "c"]), align="loose")


def test_attune_entry_point_caches_and_never_mutates(prep, split, pretrained):
    model, snapshot = pretrained
    _, _, test = split
    query = prep[prep.obs_names[test]].copy()
    p1 = predict_rna_from_atac(model, query, max_epochs=2, progress_bar=False)
    assert query["rna"].layers["attune_predicted"].shape == (test.size, prep["rna"].n_vars)
    assert model.rna_predictor_ is p1 and p1.is_trained
    p2 = predict_rna_from_atac(model, query, layer="again")
    assert p2 is p1
    np.testing.assert_allclose(query["rna"].layers["again"], query["rna"].layers["attune_predicted"])
    with pytest.warns(UserWarning, match="ignored"):
        assert predict_rna_from_atac(model, query, layer="again", max_epochs=5) is p1
    # a query whose genes cannot take the layer fails before any fine-tuning
    bad = query.copy()
    bad.mod["rna"] = bad["rna"][:, bad["rna"].var_names[1:]].copy()
    with pytest.raises(AttuneInputError, match="1 missing"):
        predict_rna_from_atac(model, bad, refit=True, max_epochs=1, progress_bar=False)
    assert model.rna_predictor_ is p1
    for k, v in model.module.atac_student.state_dict().items():
        assert torch.equal(v, snapshot[k])
    # the cached predictor was trained on the model's (reference) cells only
    assert np.isin(p1.touched_indices_, np.arange(model.mdata.n_obs)).all()


def test_predictor_save_load(prep, split, finetuned, tmp_path):
    """A saved predictor predicts identically; Attune.save/load carries the cached one along."""
    pred = finetuned
    _, _, test = split
    query = prep[prep.obs_names[test]].copy()
    pred.save(tmp_path / "p")
    with pytest.raises(AttuneInputError, match="already exists"):
        pred.save(tmp_path / "p")
    back = RNAPredictor.load(tmp_path / "p", query)  # the query's peaks are checked
    np.testing.assert_array_equal(back.predict(query), pred.predict(query))
    pd.testing.assert_frame_equal(back.history, pred.history)
    assert back.best_epoch == pred.best_epoch and back.is_trained
    np.testing.assert_array_equal(back.val_indices_, pred.val_indices_)
    assert list(back.gene_names) == list(pred.gene_names) and back.setup == pred.setup
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(AttuneInputError, match="junk.pt: cannot read"):
        RNAPredictor.load(tmp_path / "junk.pt")
    with pytest.raises(AttuneInputError, match="no saved RNAPredictor"):
        RNAPredictor.load(tmp_path / "missing.pt")

    ref = prep.copy()
    Attune.setup_mudata(ref, atac_layer="counts")
    model = Attune(ref, seed=0, **SMALL)  # untrained weights are enough for persistence
    model.rna_predictor_ = pred
    model.save(tmp_path / "attune")
    assert (tmp_path / "attune" / "rna_predictor" / "model.pt").exists()
    loaded = Attune.load(tmp_path / "attune", ref)
    np.testing.assert_array_equal(loaded.rna_predictor_.predict(query), pred.predict(query))


# ------------------------------------------------------------------------------------ harness, plots
@pytest.fixture(scope="module")
def bench(prep):
    return run_prediction_benchmark(
        prep, settings=("attune_finetuned", "mlp_denovo", "lasso", "lsi_ridge", "lasso_peaks"),
        contrasts=("default", "intra"), split="kfold", n_splits=2, seed=0, pretrain_epochs=1, pretrain_lr=1e-3,
        finetune_epochs=2, attune_kwargs=SMALL, n_head=64, lsi_components=8, lasso_n_alphas=4, lasso_n_peaks=40,
        cv=2, progress_bar=False)


def test_benchmark_tables(prep, bench):
    summary, per_gene = bench
    methods = {"attune_finetuned", "attune_finetuned_intra", "mlp_denovo", "lasso", "lsi_ridge", "lasso_peaks",
               "noise_free"}
    assert set(summary["method"]) == methods
    assert summary.groupby("method").size().eq(2).all()
    assert (summary["n_train"] + summary["n_val"] + summary["n_test"]).loc[summary["method"] != "noise_free"].eq(
        prep.n_obs).all()
    for col in ("pearson", "spearman", "rmse", "pearson_truth", "ceiling_pearson"):
        assert np.isfinite(summary[col]).all(), col
    nf = summary[summary["method"] == "noise_free"]
    np.testing.assert_allclose(nf["pearson"], nf["ceiling_pearson"])
    np.testing.assert_allclose(nf["pearson_truth"], 1.0)
    assert len(per_gene) == len(summary) * prep["rna"].n_vars
    assert set(summary.loc[summary["setting"] == "attune_finetuned", "contrast"]) == {"default", "intra"}
    # kfold: the two test folds cover every cell
    assert summary.loc[summary["method"] == "lasso", "n_test"].sum() == prep.n_obs
    with pytest.raises(AttuneInputError, match="settings"):
        run_prediction_benchmark(prep, settings=("babel",))


def test_plots_return_figures(bench):
    summary, per_gene = bench
    methods = sorted(set(summary["method"]))
    figs = (prediction_violins(per_gene), prediction_table(summary),
            prediction_table(summary, paper=paper_prediction_values().iloc[:0]),
            contrast_ablation_prediction(per_gene), contrast_ablation_prediction(summary))
    assert_shows(figs[0], min_points=1)
    for fig in figs[1:3]:
        c = content(fig)
        assert any(label(m) in c["text"] for m in methods), c["text"][:300]  # methods by their display names
    for fig in figs[3:]:
        assert_shows(fig, texts=["default", "intra"])
    for fig in figs:
        plt.close(fig)
    with pytest.raises(AttuneInputError, match="lacks"):
        prediction_violins(summary.drop(columns="pearson"))
