"""scMVP (PyTorch re-implementation): likelihoods, KL, layers, training, save/load, presets, input errors."""

from __future__ import annotations

import math
import warnings

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from scipy import stats

from attune_lib._utils import AttuneInputError
from attune_lib.datasets._presets import apply_preset
from attune_lib.models._scmvp import ScMVP
from attune_lib.models._scmvp_distributions import (
    gmm_log_joint,
    kl_gmm_vade,
    kl_normal_standard,
    log_nb_positive,
    log_zip_positive,
    log_zip_positive_rowsum,
)
from attune_lib.models._scmvp_module import ScMVPModule
from attune_lib.models._scmvp_nn import HiddenSelfAttention

torch.set_num_threads(1)


# ------------------------------------------------------------------------------ helpers
def _mudata(rna: ad.AnnData, atac: ad.AnnData) -> md.MuData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return md.MuData({"rna": rna, "atac": atac})


def make_paired(n_cells=300, n_genes=100, n_peaks=500, n_types=3, seed=0):
    """Paired NB RNA counts + binary ATAC with ``n_types`` clusters (marker genes and marker peaks)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_types, n_cells)
    prof = np.tile(rng.normal(0, 0.5, n_genes), (n_types, 1))
    for t in range(n_types):
        prof[t, rng.choice(n_genes, min(15, n_genes // 2), replace=False)] += 1.5
    p = np.exp(prof)
    p /= p.sum(1, keepdims=True)
    lib = rng.lognormal(np.log(800), 0.3, n_cells)
    mu = p[labels] * lib[:, None]
    rna = rng.poisson(rng.gamma(5.0, mu / 5.0)).astype(np.float32)
    acc = np.full((n_types, n_peaks), 0.04)
    for t in range(n_types):
        acc[t, rng.choice(n_peaks, min(60, n_peaks // 2), replace=False)] = 0.35
    depth = rng.lognormal(0, 0.3, n_cells)[:, None]
    atac = rng.binomial(1, np.clip(acc[labels] * depth, 0, 1)).astype(np.float32)
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(n_cells)])
    r = ad.AnnData(sp.csr_matrix(rna), obs=obs.copy(), var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]))
    r.layers["counts"] = r.X.copy()
    a = ad.AnnData(
        sp.csr_matrix(atac), obs=obs.copy(),
        var=pd.DataFrame(index=[f"chr1:{i * 1000}-{i * 1000 + 500}" for i in range(n_peaks)]),
    )
    m = _mudata(r, a)
    m.obs["cell_type"] = pd.Categorical(labels.astype(str))
    return m, labels


@pytest.fixture(scope="module")
def trained():
    """A small model trained once on 300 x 100 x 500 cells with three clusters."""
    m, labels = make_paired(seed=0)
    ScMVP.setup_mudata(m)
    model = ScMVP(m, n_latent=10, n_components=3, seed=0)
    model.train(max_epochs=8, warmup_epochs=3, pretrain_epochs=(3, 3), progress_bar=False)
    return model, m, labels


# --------------------------------------------------------------------- likelihoods / KL
def test_nb_log_likelihood_matches_scipy():
    x = torch.tensor([0.0, 1.0, 3.0, 10.0, 57.0, 0.0], dtype=torch.float64)
    mu = torch.tensor([0.5, 2.0, 3.0, 12.5, 40.0, 7.0], dtype=torch.float64)
    theta = torch.tensor([1.0, 0.3, 5.0, 2.0, 100.0, 0.7], dtype=torch.float64)
    got = log_nb_positive(x, mu, theta, eps=0.0).numpy()
    n, p = theta.numpy(), (theta / (theta + mu)).numpy()
    np.testing.assert_allclose(got, stats.nbinom.logpmf(x.numpy(), n, p), rtol=1e-10, atol=1e-10)
    # hand value: NB(0; mu=1, theta=1) = (1 / 2)^1
    assert log_nb_positive(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(1.0), eps=0.0).item() == pytest.approx(
        math.log(0.5)
    )
    # mean and variance of the parameterisation
    assert stats.nbinom.mean(n, p) == pytest.approx(mu.numpy())
    assert stats.nbinom.var(n, p) == pytest.approx((mu + mu**2 / theta).numpy())


def test_zip_log_likelihood_matches_mixture():
    x = torch.tensor([0.0, 0.0, 1.0, 2.0, 5.0, 0.0], dtype=torch.float64)
    mu = torch.tensor([0.3, 4.0, 1.0, 2.5, 3.0, 30.0], dtype=torch.float64)
    logits = torch.tensor([0.0, -2.0, 1.5, -0.5, 3.0, -20.0], dtype=torch.float64)
    got = log_zip_positive(x, mu, logits, eps=0.0).numpy()
    pi = 1.0 / (1.0 + np.exp(-logits.numpy()))
    pois = stats.poisson.pmf(x.numpy(), mu.numpy())
    expected = np.log(pi * (x.numpy() == 0) + (1 - pi) * pois)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # hand value: x=0, mu=ln 2, pi=1/2 -> 1/2 + 1/2 * 1/2 = 3/4
    v = log_zip_positive(torch.tensor(0.0), torch.tensor(math.log(2.0)), torch.tensor(0.0), eps=0.0)
    assert v.item() == pytest.approx(math.log(0.75))
    # non-integer values: continuous relaxation of the Poisson term
    v = log_zip_positive(torch.tensor(2.5), torch.tensor(2.0), torch.tensor(0.0), eps=0.0)
    assert v.item() == pytest.approx(math.log(0.5) + 2.5 * math.log(2.0) - 2.0 - math.lgamma(3.5))


def test_zip_rowsum_fast_path_matches_elementwise():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(7, 50, generator=g, dtype=torch.float64) * 4
    x = torch.where(torch.rand(7, 50, generator=g, dtype=torch.float64) < 0.8, torch.zeros_like(x), x)
    x[3] = 0.0  # an all-zero row
    mu = (torch.rand(7, 50, generator=g, dtype=torch.float64) * 5).requires_grad_()
    logits = (torch.randn(7, 50, generator=g, dtype=torch.float64) * 3).requires_grad_()
    slow = log_zip_positive(x, mu, logits).sum(-1)
    fast = log_zip_positive_rowsum(x, mu, logits)
    torch.testing.assert_close(fast, slow)
    g_slow = torch.autograd.grad(slow.sum(), (mu, logits))
    g_fast = torch.autograd.grad(fast.sum(), (mu, logits))
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b)
    # extreme logits stay finite
    v = log_zip_positive_rowsum(torch.tensor([[0.0, 2.0]]), torch.tensor([[1e-3, 50.0]]), torch.tensor([[60.0, -60.0]]))
    assert torch.isfinite(v).all()


def test_kl_gmm_zero_when_component_equals_posterior():
    torch.manual_seed(0)
    m = torch.randn(4, 6, dtype=torch.float64)
    v = torch.rand(4, 6, dtype=torch.float64) + 0.1
    for i in range(4):  # one cell at a time: single component equal to that cell's posterior
        kl = kl_gmm_vade(m[i : i + 1], v[i : i + 1], torch.ones(1, 1, dtype=torch.float64),
                         torch.zeros(1, dtype=torch.float64), m[i : i + 1], v[i : i + 1])
        assert abs(kl.item()) < 1e-9
    # a shifted component gives the Gaussian KL in closed form
    kl = kl_gmm_vade(m[:1], v[:1], torch.ones(1, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64),
                     m[:1] + 1.0, v[:1])
    assert kl.item() == pytest.approx(0.5 * (1.0 / v[0]).sum().item(), rel=1e-9)
    # standard-normal KL
    assert kl_normal_standard(torch.zeros(2, 3), torch.ones(2, 3)).abs().max().item() < 1e-7


def test_kl_gmm_matches_monte_carlo():
    """KL(q(z)q(c) || p(z|c)p(c)) with fixed responsibilities equals its Monte-Carlo estimate."""
    g = torch.Generator().manual_seed(1)
    d, K = 3, 4
    qm = torch.randn(1, d, generator=g, dtype=torch.float64)
    qv = torch.rand(1, d, generator=g, dtype=torch.float64) + 0.2
    gamma = torch.softmax(torch.randn(1, K, generator=g, dtype=torch.float64), -1)
    log_pi = torch.log_softmax(torch.randn(K, generator=g, dtype=torch.float64), -1)
    mu_c = torch.randn(K, d, generator=g, dtype=torch.float64)
    var_c = torch.rand(K, d, generator=g, dtype=torch.float64) + 0.3
    exact = kl_gmm_vade(qm, qv, gamma, log_pi, mu_c, var_c).item()
    z = qm + qv.sqrt() * torch.randn(200_000, d, generator=g, dtype=torch.float64)
    log_q = -0.5 * (math.log(2 * math.pi) + qv.log() + (z - qm) ** 2 / qv).sum(-1)
    log_joint = gmm_log_joint(z, log_pi, mu_c, var_c)  # log p(c) + log p(z|c)
    mc = (log_q - (gamma * log_joint).sum(-1)).mean().item() + (gamma * gamma.log()).sum().item()
    assert exact == pytest.approx(mc, abs=0.02)


# ---------------------------------------------------------------------------- layers
def test_module_output_shapes_and_anomaly_step():
    torch.manual_seed(0)
    n, G, P, d, K = 16, 30, 80, 5, 4
    module = ScMVPModule(G, P, n_latent=d, n_hidden=32, n_components=K, n_heads=8)
    x = torch.poisson(torch.full((n, G), 2.0))
    y = torch.rand(n, P) * (torch.rand(n, P) < 0.2)
    enc = module.encode(x, y)
    for key in ("qz_m", "qz_v", "z", "qz_rna_m", "qz_rna_v", "z_rna", "qz_atac_m", "qz_atac_v", "z_atac"):
        assert enc[key].shape == (n, d), key
    assert (enc["qz_v"] > 0).all()
    gamma = module.responsibilities(enc["z"])
    assert gamma.shape == (n, K)
    torch.testing.assert_close(gamma.sum(1), torch.ones(n))
    lib_r, lib_a = module.libraries(x, y)
    dec = module.decode(enc["z"], lib_r, lib_a, gamma)
    assert dec["rna_mu"].shape == (n, G) and dec["theta"].shape == (G,)
    assert dec["atac_mu"].shape == (n, P) and dec["zi_logits"].shape == (n, P)
    torch.testing.assert_close(dec["rna_mu"].sum(1, keepdim=True), lib_r)  # library = observed
    attn_out, attn = HiddenSelfAttention(32, 8)(torch.randn(n, 32), return_attention=True)
    assert attn_out.shape == (n, 32) and attn.shape == (n, 8, 4, 4)  # 8 heads x 4 units each
    torch.testing.assert_close(attn.sum(-1), torch.ones(n, 8, 4))

    # one optimisation step per phase in anomaly mode (catches in-place ops that break autograd)
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    with torch.autograd.set_detect_anomaly(True):
        for phase in ("rna", "atac", "warmup", "joint"):
            out = module.loss(x, y, phase=phase)
            assert set(out) == {"loss", "reconst_rna", "reconst_atac", "kl", "cycle"}
            assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
    assert out["cycle"].item() > 0
    grads = [p.grad for p in (module.mu_c, module.pi_logits, module.cluster_attention.linear.weight)]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    with pytest.raises(ValueError, match="phase"):
        module.loss(x, y, phase="bogus")


def test_cycle_pass_leaves_batchnorm_stats():
    torch.manual_seed(0)
    module = ScMVPModule(20, 40, n_latent=4, n_hidden=16, n_components=3)
    x = torch.poisson(torch.full((8, 20), 3.0))
    y = torch.rand(8, 40)
    enc = module.encode(x, y)
    before = module.rna_encoder.batch_norm.running_mean.clone()
    module.cycle_loss(enc["qz_m"], x + 1.0, y + 1.0)
    torch.testing.assert_close(module.rna_encoder.batch_norm.running_mean, before)


# --------------------------------------------------------------------------- training
def test_training_lowers_loss_and_recovers_clusters(trained):
    from sklearn.metrics import adjusted_rand_score

    model, m, labels = trained
    h = model.history
    assert set(h) >= {"phase", "loss", "reconst_rna", "reconst_atac", "kl", "cycle", "lr", "step", "time_s"}
    assert list(h.index) == list(range(1, 15)) and h.index.name == "epoch"
    assert list(h["phase"]) == ["rna"] * 3 + ["atac"] * 3 + ["warmup"] * 3 + ["joint"] * 5
    phases = np.array(h["phase"])
    loss = np.array(h["loss"])
    for phase in ("rna", "atac", "warmup", "joint"):
        assert loss[phases == phase][-1] < loss[phases == phase][0], phase
    assert np.all(np.array(h["cycle"])[phases == "joint"] > 0)
    clusters = model.get_cluster_assignments()
    # observed ARI 0.97-1.0 over data seeds 0..4 x model seeds 0..2 with this schedule (chance: 0)
    assert adjusted_rand_score(labels, clusters) > 0.8
    assert m.obs["scmvp_cluster"].dtype == "category"


def test_output_shapes_and_layers(trained):
    model, m, _ = trained
    z = model.get_latent_representation()
    assert z.shape == (300, 10) and np.isfinite(z).all()
    np.testing.assert_array_equal(m.obsm["X_scmvp"], z)
    labels, probs = model.get_cluster_assignments(key_added=None, return_probabilities=True)
    assert labels.shape == (300,) and probs.shape == (300, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    rna, atac = model.get_imputed()
    assert rna.shape == (300, 100) and atac.shape == (300, 500)
    assert m["rna"].layers["scmvp_imputed"].shape == (300, 100)
    assert m["atac"].layers["scmvp_imputed"].shape == (300, 500)
    assert (rna >= 0).all() and (atac >= 0).all()
    # NB means use the observed library size
    np.testing.assert_allclose(rna.sum(1), np.asarray(m["rna"].layers["counts"].sum(1)).ravel(), rtol=1e-4)
    # a second MuData with the same features gives the same latent
    z2 = model.get_latent_representation(m.copy(), key_added=None)
    np.testing.assert_allclose(z2, z, rtol=1e-5, atol=1e-6)


def test_save_load_identical_latent(trained, tmp_path):
    model, m, _ = trained
    z = model.get_latent_representation(key_added=None)
    model.save(tmp_path / "scmvp")
    with pytest.raises(AttuneInputError, match="overwrite"):
        model.save(tmp_path / "scmvp")
    m2 = m.copy()
    del m2.uns["_attune_lib_setup"]
    loaded = ScMVP.load(tmp_path / "scmvp", m2, device="cpu")
    np.testing.assert_array_equal(loaded.get_latent_representation(key_added=None), z)
    np.testing.assert_array_equal(
        loaded.get_cluster_assignments(key_added=None), model.get_cluster_assignments(key_added=None)
    )
    pd.testing.assert_frame_equal(loaded.history, model.history, check_exact=False)
    # features that differ from the saved ones are rejected, naming the field
    m3 = m.copy()
    m3.mod["atac"].var_names = [f"peak{i}" for i in range(m3["atac"].n_vars)]
    with pytest.raises(AttuneInputError, match="var_names"):
        ScMVP.load(tmp_path / "scmvp", m3)


@pytest.mark.parametrize("stop_after", [2, 4])  # inside the ATAC phase / inside the joint (GMM) phase
def test_checkpoint_resume_matches_uninterrupted(tmp_path, monkeypatch, stop_after):
    m, _ = make_paired(n_cells=120, n_genes=40, n_peaks=120, seed=3)
    ScMVP.setup_mudata(m)
    kw = {
        "max_epochs": 3,
        "warmup_epochs": 1,
        "pretrain_epochs": (1, 2),
        "batch_size": 32,
        "progress_bar": False,
        "device": "cpu",
    }
    full = ScMVP(m, n_latent=4, n_components=3, seed=1)
    full.train(**kw)

    def interrupted(trainer, epoch, record):
        if epoch == stop_after:
            raise KeyboardInterrupt

    part = ScMVP(m, n_latent=4, n_components=3, seed=1)
    with pytest.raises(KeyboardInterrupt):
        part.train(checkpoint_dir=tmp_path, callbacks=[interrupted], **kw)
    assert (tmp_path / "last.pt").exists() and not part.is_trained

    resumed = ScMVP(m, n_latent=4, n_components=3, seed=1)
    resumed.train(checkpoint_dir=tmp_path, resume=True, **kw)
    assert (
        list(resumed.history["phase"])
        == list(full.history["phase"])
        == ["rna", "atac", "atac", "warmup", "joint", "joint"]
    )
    np.testing.assert_allclose(resumed.history["loss"], full.history["loss"], rtol=1e-6)
    np.testing.assert_array_equal(
        resumed.get_latent_representation(key_added=None), full.get_latent_representation(key_added=None)
    )
    # a checkpoint written with other settings is refused, naming the file
    other = ScMVP(m, n_latent=5, n_components=3, seed=1)
    with pytest.raises(AttuneInputError, match="last.pt"):
        other.train(checkpoint_dir=tmp_path, resume=True, **kw)


# ---------------------------------------------------------------------------- presets
def _preset_data():
    """Hand-built data: 20 RNA cells (c0..c19), 20 ATAC cells (c2..c21) -> 18 co-assayed cells.

    RNA (220 genes): co-assayed cells express genes 0..204, except c3 and c7 (genes 0..197 only;
    c3 also expresses gene 207: 199 < 200 genes). Gene 205 is in 9 kept cells (+ c0, c1, which are RNA-only) -> removed;
    gene 206 in 10 kept cells -> kept; gene 207 in 9 kept cells + c3 (removed) -> removed;
    genes 208..219 are never detected -> removed.  Genes removed: 14, kept: 206.
    ATAC (210 peaks): co-assayed cells access peaks 0..201, except c5 and c7 (0..198: 199 peaks).
    Peak 202 in 9 kept cells -> removed; 203 in 10 kept cells -> kept; 204..209 never -> removed.
    Cells: 4 not co-assayed (c0, c1, c20, c21); low genes: c3, c7; low peaks: c5, c7 -> 15 kept.
    """
    rna_cells = [f"c{i}" for i in range(20)]
    atac_cells = [f"c{i}" for i in range(2, 22)]
    X = np.zeros((20, 220), dtype=np.float32)
    for i in range(20):
        X[i, : (198 if i in (3, 7) else 205)] = 1 + (i % 3)
    kept = [i for i in range(2, 20) if i not in (3, 5, 7)]  # 15 kept cells
    X[kept[:9], 205] = 1
    X[[0, 1], 205] = 1
    X[kept[:10], 206] = 2
    X[kept[:9], 207] = 1
    X[3, 207] = 1
    Y = np.zeros((20, 210), dtype=np.float32)
    for j, name in enumerate(atac_cells):
        i = int(name[1:])
        Y[j, : (199 if i in (5, 7) else 202)] = 1
    rows = {int(n[1:]): j for j, n in enumerate(atac_cells)}
    Y[[rows[i] for i in kept[:9]], 202] = 1
    Y[[rows[i] for i in kept[:10]], 203] = 1
    Y[[rows[20], rows[21]], :] = 1  # ATAC-only cells access everything
    rna = ad.AnnData(sp.csr_matrix(X), obs=pd.DataFrame(index=rna_cells),
                     var=pd.DataFrame(index=[f"g{k}" for k in range(220)]))
    atac = ad.AnnData(sp.csr_matrix(Y), obs=pd.DataFrame(index=atac_cells),
                      var=pd.DataFrame(index=[f"p{k}" for k in range(210)]))
    return _mudata(rna, atac), kept


@pytest.mark.parametrize("preset", ["sci-car", "snare-seq", "sciCAR", "paired-seq"])
def test_preset_filters_hand_counted(preset):
    m, kept = _preset_data()
    m.obs["note"] = "x"
    report = apply_preset(m, preset)
    assert report["cells_not_coassayed"] == 4
    assert report["cells_low_genes"] == 2 and report["cells_low_peaks"] == 2
    assert report["cells_removed"] == 7 and report["n_cells"] == 15
    assert report["genes_low_cells"] == 14 and report["genes_removed"] == 14 and report["n_genes"] == 206
    assert report["peaks_low_cells"] == 7 and report["peaks_removed"] == 7 and report["n_peaks"] == 203
    assert report["peaks_high_cells"] == 0
    expected_cells = [f"c{i}" for i in kept]
    assert list(m["rna"].obs_names) == expected_cells and list(m["atac"].obs_names) == expected_cells
    assert m.n_obs == 15 and list(m.obs_names) == expected_cells
    assert "g205" not in m["rna"].var_names and "g206" in m["rna"].var_names and "g207" not in m["rna"].var_names
    assert "p202" not in m["atac"].var_names and "p203" in m["atac"].var_names


def test_paired_seq_removes_common_peaks():
    """360 co-assayed cells; peak 'hi' in 337 cells (removed), 'edge' in 336 (kept), 'rare' in 9 (removed)."""
    n = 360
    X = np.ones((n, 210), dtype=np.float32)
    Y = np.zeros((n, 403), dtype=np.float32)
    for i in range(n):
        Y[i, (i + np.arange(200)) % 400] = 1  # every base peak in 160..200 cells
    Y[:337, 400] = 1
    Y[:336, 401] = 1
    Y[:9, 402] = 1
    cells = [f"c{i}" for i in range(n)]
    peaks = [f"p{k}" for k in range(400)] + ["hi", "edge", "rare"]
    rna = ad.AnnData(
        sp.csr_matrix(X), obs=pd.DataFrame(index=cells), var=pd.DataFrame(index=[f"g{k}" for k in range(210)])
    )
    atac = ad.AnnData(sp.csr_matrix(Y), obs=pd.DataFrame(index=cells), var=pd.DataFrame(index=peaks))
    m = _mudata(rna, atac)
    report = apply_preset(m.copy(), "sci-car")
    assert report["peaks_removed"] == 1 and report["peaks_high_cells"] == 0
    report = apply_preset(m, "paired_seq")
    assert report["preset"] == "paired-seq"
    assert report["peaks_high_cells"] == 1 and report["peaks_low_cells"] == 1 and report["peaks_removed"] == 2
    assert "hi" not in m["atac"].var_names and "edge" in m["atac"].var_names and "rare" not in m["atac"].var_names
    assert report["cells_removed"] == 0 and report["n_peaks"] == 401


def test_preset_errors():
    m, _ = _preset_data()
    with pytest.raises(AttuneInputError, match="unknown preset 'share-seq'.*sci-car"):
        apply_preset(m, "share-seq")
    with pytest.raises(AttuneInputError, match="layer 'counts'"):
        apply_preset(m, "sci-car", rna_layer="counts")
    with pytest.raises(AttuneInputError, match="modality 'protein'"):
        apply_preset(m, "sci-car", atac_mod="protein")
    assert m["rna"].n_obs == 20  # nothing was written


# ------------------------------------------------------------------------ bad inputs
def test_bad_inputs_name_the_field():
    m, _ = make_paired(n_cells=40, n_genes=20, n_peaks=50, seed=1)
    with pytest.raises(AttuneInputError, match="setup_mudata"):
        ScMVP(m)
    with pytest.raises(AttuneInputError, match="layer 'raw'.*'rna'"):
        ScMVP.setup_mudata(m, rna_layer="raw")
    with pytest.raises(AttuneInputError, match="layer 'tfidf'.*'atac'"):
        ScMVP.setup_mudata(m, atac_layer="tfidf")
    with pytest.raises(AttuneInputError, match="modality 'ATAC'|modality 'acc'"):
        ScMVP.setup_mudata(m, atac_mod="acc")
    bad = m["rna"].layers["counts"].copy()
    bad.data[3] = np.nan
    m["rna"].layers["counts"] = bad
    with pytest.raises(AttuneInputError, match=r"\['rna'\]\.layers\['counts'\].*NaN"):
        ScMVP.setup_mudata(m)
    m["rna"].layers["counts"] = m["rna"].X.copy()
    neg = m["atac"].X.copy()
    neg.data[0] = -1
    m["atac"].X = neg
    with pytest.raises(AttuneInputError, match=r"\['atac'\]\.X.*negative"):
        ScMVP.setup_mudata(m)
    m["atac"].X = abs(neg)
    ScMVP.setup_mudata(m)
    with pytest.raises(AttuneInputError, match="n_components"):
        ScMVP(m, n_components=41)
    with pytest.raises(AttuneInputError, match="n_heads"):
        ScMVP(m, n_hidden=100, n_heads=8)
    model = ScMVP(m, n_latent=3, n_hidden=16, n_components=2)
    with pytest.raises(AttuneInputError, match="not trained"):
        model.get_latent_representation()
    with pytest.raises(AttuneInputError, match="pretrain_epochs"):
        model.train(pretrain_epochs=(1,))
    with pytest.raises(AttuneInputError, match="batch_size"):
        model.train(batch_size=1)
    # unpaired modalities
    m2, _ = make_paired(n_cells=40, n_genes=20, n_peaks=50, seed=1)
    m2.mod["atac"] = m2["atac"][::-1].copy()
    with pytest.raises(AttuneInputError, match="not paired"):
        ScMVP.setup_mudata(m2)


def test_tfidf_matches_pp_and_auto_detection():
    m, _ = make_paired(n_cells=50, n_genes=20, n_peaks=60, seed=2)
    ScMVP.setup_mudata(m)
    assert m.uns["_attune_lib_setup"]["ScMVP"]["atac_transform"] == "tfidf"
    model = ScMVP(m, n_latent=3, n_hidden=16, n_components=2)
    tfidf_pp = pytest.importorskip("attune_lib.pp").tfidf
    tfidf_pp(m, mod="atac", key_added="tfidf")
    np.testing.assert_allclose(model._data.atac.toarray(), m["atac"].layers["tfidf"].toarray(), rtol=1e-5)
    # precomputed TF-IDF values (non-integers) are used as they are
    ScMVP.setup_mudata(m, atac_layer="tfidf")
    assert "atac_transform" not in m.uns["_attune_lib_setup"]["ScMVP"]  # None is left out (h5mu)
    model2 = ScMVP(m, n_latent=3, n_hidden=16, n_components=2)
    np.testing.assert_allclose(model2._data.atac.toarray(), model._data.atac.toarray(), rtol=1e-5)
