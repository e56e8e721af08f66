"""Attune model: sparse layers vs dense references, NT-Xent, training, save/load, resume, input errors."""

from __future__ import annotations

import copy
import math
import os

import anndata as ad
import mudata as md
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from attune_lib._utils import AttuneInputError
from attune_lib.models import Attune, StopTraining, contrastive_loss, nt_xent
from attune_lib.models._attune_nn import (
    StudentEncoder,
    TeacherEncoder,
    _dense_student_forward,
    _dense_teacher_forward,
    _dense_teacher_pool,
    context_scores,
    context_scores_with_zeros,
)
from attune_lib.models._data import csr_batch, iter_index_batches
from attune_lib.models._training import CHECKPOINT_NAME, LinearDecay, atomic_torch_save

torch.set_num_threads(1)

SMALL = {"n_hidden": 16, "n_latent": 16}  # small networks keep the module fast


# ----------------------------------------------------------------------------------------- helpers
def make_paired(n=240, n_genes=60, n_peaks=200, k=4, seed=0) -> md.MuData:
    """Paired data with a shared latent (clusters + within-cluster variation) driving both modalities."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    Z = rng.normal(0, 1.5, (k, 6))[labels] + rng.normal(0, 0.5, (n, 6))
    rate = np.exp(Z @ rng.normal(0, 0.6, (6, n_genes)) - 1.0)
    rna = np.log1p(rng.poisson(rate)).astype(np.float32)
    prob = 1 / (1 + np.exp(-(Z @ rng.normal(0, 0.8, (6, n_peaks)) - 2.5)))
    atac = (rng.random((n, n_peaks)) < prob).astype(np.float32)
    obs = [f"cell{i}" for i in range(n)]
    r = ad.AnnData(sp.csr_matrix(rna))
    r.obs_names, r.var_names = obs, [f"g{i}" for i in range(n_genes)]
    a = ad.AnnData(sp.csr_matrix(atac))
    a.obs_names, a.var_names = obs, [f"chr1:{100 * i}-{100 * i + 50}" for i in range(n_peaks)]
    m = md.MuData({"rna": r, "atac": a})
    m.obs["cell_type"] = pd_categorical(labels)
    return m


def pd_categorical(labels):
    import pandas as pd

    return pd.Categorical([f"type{i}" for i in labels])


def foscttm(x, y) -> float:
    try:
        from attune_lib.metrics import foscttm as _f

        return float(_f(x, y))
    except ImportError:  # pragma: no cover - metrics module written in parallel
        d = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
        diag = np.diag(d)
        return float(0.5 * ((d < diag[:, None]).mean() + (d < diag[None, :]).mean()))


def random_csr(n, p, density, seed, *, full_row=None, empty_row=None):
    X = sp.random(n, p, density=density, random_state=seed, format="csr", dtype=np.float64)
    X.data = X.data * 3 + 0.1
    X = X.tolil()
    if full_row is not None:
        X[full_row, :] = np.random.default_rng(seed).uniform(0.1, 2, p)
    if empty_row is not None:
        X[empty_row, :] = 0
    return X.tocsr()


def perturbed_teacher(p, *, value_bn, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    t = TeacherEncoder(p, n_hidden=8, n_latent=6, dropout=0.0, value_batchnorm=value_bn, chunk_size=7).to(dtype)
    with torch.no_grad():  # move away from the init (zero bias, unit BN) so every term matters
        t.embedding.normal_()
        t.attn_proj.bias.normal_()
        t.context.mul_(3)
        if value_bn:
            t.value_bn.weight.uniform_(0.5, 2.0)
            t.value_bn.bias.normal_()
    return t


def batch_of(X, dtype=torch.float64):
    b = csr_batch(X.astype(np.float32))
    b.val = torch.from_numpy(X.data).to(dtype)
    return b


@pytest.fixture(scope="module")
def paired():
    m = make_paired()
    Attune.setup_mudata(m, cell_type_key="cell_type")
    return m


@pytest.fixture(scope="module")
def trained(paired):
    model = Attune(paired, seed=0, **SMALL)
    z_r0 = model.get_latent_representation(modality="rna")
    z_a0 = model.get_latent_representation(modality="atac")
    model.train(max_epochs=8, batch_size=64, lr=1e-2, lr_end=1e-3, progress_bar=False, validation_fraction=0.1)
    return model, foscttm(z_r0, z_a0)


# ------------------------------------------------------------------------------- sparse == dense
def test_context_scores_gradcheck():
    torch.manual_seed(0)
    Fm = torch.randn(20, 5, dtype=torch.double, requires_grad=True)
    b = torch.randn(5, dtype=torch.double, requires_grad=True)
    c = torch.randn(5, dtype=torch.double, requires_grad=True)
    v = torch.randn(50, dtype=torch.double, requires_grad=True)
    col = torch.randint(0, 20, (50,))
    assert torch.autograd.gradcheck(lambda v, Fm, b, c: context_scores(v, col, Fm, b, c, chunk=13), (v, Fm, b, c))
    ref = torch.tanh(v[:, None] * Fm[col] + b) @ c
    torch.testing.assert_close(context_scores(v, col, Fm, b, c, chunk=13), ref)


def test_context_scores_with_zeros_gradcheck():
    torch.manual_seed(1)
    Fm = torch.randn(20, 5, dtype=torch.double, requires_grad=True)
    b = torch.randn(5, dtype=torch.double, requires_grad=True)
    c = torch.randn(5, dtype=torch.double, requires_grad=True)
    v = torch.randn(50, dtype=torch.double, requires_grad=True)
    a = torch.randn(20, dtype=torch.double, requires_grad=True)
    col = torch.randint(0, 20, (50,))

    def f(v, a, Fm, b, c):
        return context_scores_with_zeros(v, col, a, Fm, b, c, chunk=7)

    assert torch.autograd.gradcheck(f, (v, a, Fm, b, c))
    s, s0 = f(v, a, Fm, b, c)
    torch.testing.assert_close(s, torch.tanh(v[:, None] * Fm[col] + b) @ c)
    torch.testing.assert_close(s0, torch.tanh(a[:, None] * Fm + b) @ c)
    # only the zero scores reach the loss: the token part contributes nothing, and vice versa
    (gv, ga) = torch.autograd.grad(s0.sum(), (v, a), allow_unused=True, materialize_grads=True)
    assert torch.count_nonzero(gv) == 0 and torch.count_nonzero(ga) > 0


@pytest.mark.parametrize("value_bn", [False, True])
def test_teacher_sparse_pooling_equals_dense(value_bn):
    X = random_csr(9, 40, 0.2, seed=1, full_row=2, empty_row=5)  # incl. a cell without zeros and an empty cell
    t = perturbed_teacher(40, value_bn=value_bn)
    t_ref = copy.deepcopy(t)
    b = batch_of(X)
    pooled, att = t.pool(b, return_attention=True)
    Xd = torch.from_numpy(X.toarray())
    pooled_ref, w_ref = _dense_teacher_pool(t_ref, Xd, return_weights=True)
    torch.testing.assert_close(pooled, pooled_ref, atol=1e-5, rtol=0)
    # attention: non-zero features and the closed-form weights of the zero features
    rows, cols = b.row_ids(), b.col
    torch.testing.assert_close(att["nnz"], w_ref[rows, cols], atol=1e-7, rtol=0)
    prof = att["zero_profile"] if att["zero_profile"] is not None else torch.ones(40, dtype=torch.float64)
    w_full = att["zero_scale"][:, None] * prof[None, :]
    w_full[rows, cols] = att["nnz"]
    torch.testing.assert_close(w_full, w_ref, atol=1e-7, rtol=0)
    torch.testing.assert_close(w_full.sum(1), torch.ones(9, dtype=torch.float64))
    # full forward and gradients of every parameter
    g = torch.randn(9, 6, dtype=torch.float64)
    out, ref = t(b), _dense_teacher_forward(t_ref, Xd)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    (out * g).sum().backward()
    (ref * g).sum().backward()
    for (name, p1), p2 in zip(t.named_parameters(), t_ref.parameters(), strict=True):
        assert p1.grad is not None, name
        torch.testing.assert_close(p1.grad, p2.grad, atol=1e-5, rtol=0, msg=f"gradient of {name}")
    if value_bn:  # running statistics updated exactly like BatchNorm1d
        torch.testing.assert_close(t.value_bn.running_mean, t_ref.value_bn.running_mean)
        torch.testing.assert_close(t.value_bn.running_var, t_ref.value_bn.running_var)
        # eval mode (running statistics) too
        t.eval()
        t_ref.eval()
        torch.testing.assert_close(t(b), _dense_teacher_forward(t_ref, Xd), atol=1e-5, rtol=0)


@pytest.mark.parametrize("value_bn", [False, True])
def test_teacher_sparse_equals_dense_float32(value_bn):
    X = random_csr(16, 120, 0.1, seed=3)
    t = perturbed_teacher(120, value_bn=value_bn, dtype=torch.float32)
    t_ref = copy.deepcopy(t)
    b = csr_batch(X.astype(np.float32))
    out, ref = t(b), _dense_teacher_forward(t_ref, torch.from_numpy(X.toarray()).float())
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    out.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(t.embedding.grad, t_ref.embedding.grad, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("integer", [True, False])
def test_teacher_dedup_is_exact(integer):
    """Scoring each distinct (feature, value) pair once gives the dense result (counts and floats)."""
    X = random_csr(12, 25, 0.5, seed=5)
    if integer:
        X.data = np.floor(X.data) + 1  # counts 1..4: many repeated (feature, value) pairs
    Xd = torch.from_numpy(X.toarray())
    outs, grads = [], []
    for dedup in (True, False, "auto"):
        t = perturbed_teacher(25, value_bn=True)
        t.dedup = dedup
        b = batch_of(X)
        groups = t._dedup_groups(b)
        assert (groups is not None) == (dedup is True or (dedup == "auto" and integer))
        out = t(b)
        out.sum().backward()
        outs.append(out)
        grads.append([p.grad.clone() for p in t.parameters()])
    t_ref = perturbed_teacher(25, value_bn=True)
    ref = _dense_teacher_forward(t_ref, Xd)
    ref.sum().backward()
    for out, grad in zip(outs, grads, strict=True):
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
        for g, p in zip(grad, t_ref.parameters(), strict=True):
            torch.testing.assert_close(g, p.grad, atol=1e-5, rtol=0)


def test_student_sparse_equals_dense():
    X = random_csr(10, 50, 0.15, seed=2, empty_row=0)
    torch.manual_seed(0)
    s = StudentEncoder(50, n_hidden=12, n_latent=5, dropout=0.0).double()
    with torch.no_grad():
        s.value_bn.weight.uniform_(0.5, 2)
        s.value_bn.bias.normal_()
    s_ref = copy.deepcopy(s)
    b = batch_of(X)
    Xd = torch.from_numpy(X.toarray())
    out, ref = s(b), _dense_student_forward(s_ref, Xd)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    g = torch.randn_like(out)
    (out * g).sum().backward()
    (ref * g).sum().backward()
    for (name, p1), p2 in zip(s.named_parameters(), s_ref.parameters(), strict=True):
        torch.testing.assert_close(p1.grad, p2.grad, atol=1e-5, rtol=0, msg=f"gradient of {name}")
    s.eval()
    s_ref.eval()
    torch.testing.assert_close(s(b), _dense_student_forward(s_ref, Xd), atol=1e-5, rtol=0)


def test_teacher_tokens_are_value_times_embedding():
    X = random_csr(6, 30, 0.3, seed=4)
    t = perturbed_teacher(30, value_bn=False).eval()
    b = batch_of(X)
    tok = t.tokens(b)
    expected = torch.from_numpy(X.toarray())[:, :, None] * t.embedding[None]
    torch.testing.assert_close(tok["tokens"], expected[b.row_ids(), b.col])
    assert tok["zero_tokens"] is None
    t_bn = perturbed_teacher(30, value_bn=True).eval()
    tok = t_bn.tokens(b)
    Xv = t_bn.value_bn.dense(torch.from_numpy(X.toarray()))
    torch.testing.assert_close(tok["tokens"], (Xv[:, :, None] * t_bn.embedding[None])[b.row_ids(), b.col])
    zero_value = t_bn.value_bn.dense(torch.zeros(1, 30, dtype=torch.float64))[0]  # BN maps 0 to a_i
    torch.testing.assert_close(tok["zero_tokens"], zero_value[:, None] * t_bn.embedding)


# ------------------------------------------------------------------------------------------ NT-Xent
def _nt_xent_loop(z1, z2, tau):
    """Textbook SimCLR loss with explicit loops (independent of the vectorised implementation)."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    total = 0.0
    for a in range(2 * n):
        pos = a + n if a < n else a - n
        denom = sum(math.exp(z[a] @ z[k] / tau) for k in range(2 * n) if k != a)
        total += -math.log(math.exp(z[a] @ z[pos] / tau) / denom)
    return total / (2 * n)


def test_nt_xent_hand_computed():
    # two orthogonal cells, perfectly aligned, tau = 1: each anchor has sim 1 with its positive and
    # 0 with the two negatives -> -log(e / (e + 2))
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert float(nt_xent(z, z, temperature=1.0)) == pytest.approx(math.log(1 + 2 / math.e), rel=1e-6)
    # three cells, non-trivial geometry, against the loop implementation and a value written out by hand
    z1 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    z2 = np.array([[1.0, 0.2], [0.1, 1.0], [-1.0, 1.0]])
    got = float(nt_xent(torch.tensor(z1), torch.tensor(z2), temperature=0.5))
    assert got == pytest.approx(_nt_xent_loop(z1, z2, 0.5), rel=1e-9)
    # B = 1: the only other embedding is the positive -> loss 0
    assert float(nt_xent(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, -1.0]]))) == pytest.approx(0.0, abs=1e-7)


def test_nt_xent_positives_are_exactly_the_diagonal():
    B, tau = 8, 0.1
    z = torch.eye(B, dtype=torch.float64)
    analytic_min = math.log(1 + (2 * B - 2) * math.exp(-1 / tau))
    assert float(nt_xent(z, z, temperature=tau)) == pytest.approx(analytic_min, rel=1e-5)
    # any mismatched pairing (e.g. partner of cell i is cell i+1) is far above the minimum
    assert float(nt_xent(z, z.roll(1, dims=0), temperature=tau)) > analytic_min + 5
    # swapping only two partners already costs
    perm = torch.arange(B)
    perm[[0, 1]] = perm[[1, 0]]
    assert float(nt_xent(z, z[perm], temperature=tau)) > analytic_min + 1


def test_nt_xent_invariances():
    torch.manual_seed(0)
    z1, z2 = torch.randn(10, 4), torch.randn(10, 4)
    base = nt_xent(z1, z2)
    perm = torch.randperm(10)
    torch.testing.assert_close(nt_xent(z1[perm], z2[perm]), base)  # batch order
    torch.testing.assert_close(nt_xent(3 * z1, 0.5 * z2), base)  # L2 normalisation
    torch.testing.assert_close(nt_xent(z2, z1), base)  # symmetric in the two views
    assert float(nt_xent(z1, z2[perm])) != pytest.approx(float(base))
    np.testing.assert_allclose(float(base), _nt_xent_loop(z1.numpy(), z2.numpy(), 0.1), rtol=1e-5)


def test_contrast_designs_select_the_right_pairs():
    torch.manual_seed(1)
    emb = {k: torch.randn(6, 5) for k in ("rna_teacher", "atac_teacher", "rna_student", "atac_student")}
    expected = {
        "default": [("rna_teacher", "atac_teacher"), ("rna_student", "atac_student")],
        "intra": [("rna_student", "rna_teacher"), ("atac_student", "atac_teacher")],
        "cross": [("rna_teacher", "atac_student"), ("rna_student", "atac_teacher")],
    }
    for contrast, pairs in expected.items():
        out = contrastive_loss(emb, contrast=contrast)
        terms = [v for k, v in out.items() if k != "loss"]
        want = [nt_xent(emb[a], emb[b]) for a, b in pairs]
        assert len(terms) == 2
        for w in want:
            assert any(torch.allclose(t, w) for t in terms), contrast
        torch.testing.assert_close(out["loss"], (want[0] + want[1]) / 2)
    # aligned teachers and aligned students, but teachers unrelated to students:
    # only the default design sits at the analytic minimum
    e = torch.eye(6, dtype=torch.float64)
    f = e.roll(2, dims=0)
    aligned = {"rna_teacher": e, "atac_teacher": e, "rna_student": f, "atac_student": f}
    minimum = math.log(1 + 10 * math.exp(-10))
    assert float(contrastive_loss(aligned, contrast="default")["loss"]) == pytest.approx(minimum, rel=1e-5)
    assert float(contrastive_loss(aligned, contrast="intra")["loss"]) > minimum + 5
    assert float(contrastive_loss(aligned, contrast="cross")["loss"]) > minimum + 5
    with pytest.raises(AttuneInputError, match="contrast"):
        contrastive_loss(emb, contrast="bogus")


# ----------------------------------------------------------------------------------------- training
def test_training_lowers_loss_and_aligns_modalities(trained, paired):
    model, fos_untrained = trained
    h = model.history
    assert list(h.index) == list(range(1, 9))
    assert {"loss", "loss_teacher", "loss_student", "val_loss", "lr"} <= set(h.columns)
    assert h["loss"].iloc[-1] < h["loss"].iloc[0] - 0.3
    assert np.isfinite(h["val_loss"]).all()
    assert h["lr"].iloc[-1] == pytest.approx(1e-3, rel=1e-6)  # lr decayed linearly to lr_end
    z_r = model.get_latent_representation(modality="rna")
    z_a = model.get_latent_representation(modality="atac")
    np.testing.assert_allclose(np.linalg.norm(z_r, axis=1), 1.0, rtol=1e-5)
    fos = foscttm(z_r, z_a)
    assert fos_untrained > 0.35
    assert fos < 0.2, fos
    assert fos < fos_untrained - 0.2
    assert "trained 8 epoch(s)" in repr(model) and "contrast='default'" in repr(model)


def test_latent_keys_and_joint(trained, paired):
    model, _ = trained
    m = paired.copy()
    joint = model.get_latent_representation(m, key_added=True)
    assert joint.shape == (m.n_obs, 32)
    np.testing.assert_array_equal(m.obsm["X_attune"], joint)
    z_r = model.get_latent_representation(m, modality="rna", key_added=True)
    np.testing.assert_array_equal(joint[:, :16], z_r)
    np.testing.assert_array_equal(m["rna"].obsm["X_attune_rna"], z_r)
    np.testing.assert_array_equal(m.obsm["X_attune_rna"], z_r)
    model.get_latent_representation(m, modality="atac", network="student", key_added=True)
    assert "X_attune_atac_student" in m["atac"].obsm
    model.get_latent_representation(m, modality="atac", key_added="custom")
    assert "custom" in m.obsm and "custom" in m["atac"].obsm
    with pytest.raises(AttuneInputError, match="modality"):
        model.get_latent_representation(m, modality="protein")


def test_map_query_and_feature_checks(trained, paired):
    model, _ = trained
    ref = model.get_latent_representation(modality="joint")
    # a query with the features in another order maps to the same embedding
    perm = np.random.default_rng(0).permutation(paired["atac"].n_vars)
    q = md.MuData({"rna": paired["rna"][:50].copy(), "atac": paired["atac"][:50, perm].copy()})
    model.map_query(q, key_added="X_q")
    np.testing.assert_allclose(q.obsm["X_q"], ref[:50], atol=1e-5)
    assert q["rna"].obsm["X_q_rna"].shape == (50, 16) and "X_q_atac" in q["atac"].obsm
    # missing and extra features are named with their counts, nothing is written
    atac = paired["atac"][:20, 2:].copy()
    extra = ad.AnnData(sp.csr_matrix((20, 1), dtype=np.float32), obs=atac.obs[[]].copy())
    extra.var_names = ["chrZ:1-2"]
    bad = md.MuData({"rna": paired["rna"][:20].copy(), "atac": ad.concat([atac, extra], axis=1)})
    with pytest.raises(AttuneInputError, match=r"2 missing .* 1 extra"):
        model.map_query(bad, key_added="X_bad")
    assert "X_bad" not in bad.obsm and "X_bad_rna" not in bad.obsm


def test_attention_and_tokens_accessors(trained):
    model, _ = trained
    cells = np.arange(5)
    A = model.get_feature_attention(modality="atac", cells=cells)
    D = model.get_feature_attention(modality="atac", cells=cells, dense=True)
    assert sp.issparse(A) and A.shape == D.shape == (5, model.module.atac_teacher.n_features)
    np.testing.assert_allclose(D.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(A.toarray()[A.toarray() > 0], D[A.toarray() > 0], rtol=1e-6)
    tok = model.get_tokens(modality="rna", cells=["cell0", "cell3"])
    n_nz = tok["crow"][-1]
    assert tok["tokens"].shape == (n_nz, 16) and tok["attention"].shape == (n_nz,)
    assert tok["zero_tokens"].shape == (len(tok["var_names"]), 16)
    assert list(tok["obs_names"]) == ["cell0", "cell3"]
    assert model.get_feature_embeddings("atac").shape == (model.module.atac_teacher.n_features, 16)


def test_save_load_roundtrip(trained, paired, tmp_path):
    model, _ = trained
    z = model.get_latent_representation()
    model.save(tmp_path / "m")
    with pytest.raises(AttuneInputError, match="overwrite"):
        model.save(tmp_path / "m")
    model.save(tmp_path / "m", overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["m"]  # no temporary directories left behind
    m2 = paired.copy()
    del m2.uns["_attune_lib_setup"]  # load sets the MuData up with the saved settings
    loaded = Attune.load(tmp_path / "m", m2)
    np.testing.assert_array_equal(loaded.get_latent_representation(), z)
    assert loaded.is_trained and len(loaded.history) == 8
    assert loaded.init_params == model.init_params
    small = paired[:, paired.var_names[5:]].copy()  # drops 5 genes
    with pytest.raises(AttuneInputError, match="5 missing"):
        Attune.load(tmp_path / "m", small)


def test_resume_equals_uninterrupted(paired, tmp_path):
    kw = {
        "max_epochs": 2,
        "batch_size": 64,
        "lr": 1e-3,
        "lr_end": 1e-4,
        "validation_fraction": 0.1,
        "progress_bar": False,
    }
    full = Attune(paired, seed=3, **SMALL)
    full.train(**kw)

    class Interrupt(Exception):
        pass

    def stop_after_first(trainer, epoch, record):
        if epoch == 1:
            raise Interrupt

    first = Attune(paired, seed=3, **SMALL)
    with pytest.raises(Interrupt):
        first.train(checkpoint_dir=tmp_path, callbacks=[stop_after_first], **kw)
    assert os.listdir(tmp_path) == [CHECKPOINT_NAME]
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["epoch"] == 1
    resumed = Attune(paired, seed=3, **SMALL)  # fresh process-like object, different init is overwritten
    resumed.train(checkpoint_dir=tmp_path, resume=True, **kw)
    assert list(resumed.history.index) == [1, 2]
    for (name, a), b in zip(full.module.state_dict().items(), resumed.module.state_dict().values(), strict=True):
        torch.testing.assert_close(a.float(), b.float(), atol=1e-6, rtol=0, msg=name)
    np.testing.assert_allclose(resumed.history["loss"], full.history["loss"], rtol=1e-6)
    # resuming with other settings is refused, naming the setting
    with pytest.raises(AttuneInputError, match="batch_size"):
        Attune(paired, seed=3, **SMALL).train(checkpoint_dir=tmp_path, **{**kw, "batch_size": 32})
    # StopTraining ends early without an error
    early = Attune(paired, seed=3, **SMALL)

    def stop(trainer, epoch, record):
        raise StopTraining

    early.train(callbacks=[stop], **kw)
    assert len(early.history) == 1


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_torch_save({"epoch": 1}, path)
    real_save = torch.save

    def broken_save(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({"epoch": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert os.listdir(tmp_path) == ["last.pt"]
    assert torch.load(path, weights_only=True) == {"epoch": 1}


def test_lr_schedule_and_single_cell_batches():
    f = LinearDecay(11, 0.01)
    assert f(0) == 1.0 and f(10) == pytest.approx(0.01) and f(5) == pytest.approx(0.505) and f(50) == f(10)
    batches = list(iter_index_batches(np.arange(129), 64, shuffle=True, rng=np.random.default_rng(0),
                                      min_batch_size=2))
    assert [len(b) for b in batches] == [64, 64]  # the lone 129th cell is dropped (batch norm)
    assert len(set(np.concatenate(batches))) == 128
    m = make_paired(n=65, seed=1)
    Attune.setup_mudata(m)
    model = Attune(m, seed=0, **SMALL)
    model.train(max_epochs=1, batch_size=64, progress_bar=False)  # 64 + 1 cells: no BN error
    assert model.is_trained


def test_trainer_is_model_agnostic(tmp_path):
    """The loop only needs ``module.loss(batch)`` and ``source.get_batch(idx)`` (reused by other models)."""
    from attune_lib.models import Trainer

    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5], dtype=np.float32)

    class Source:
        n_obs = 100

        def get_batch(self, idx):
            return {"x": torch.from_numpy(X[idx]), "y": torch.from_numpy(y[idx])}

    class Regression(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 1)

        def loss(self, batch):
            return {"loss": ((self.lin(batch["x"]).squeeze(1) - batch["y"]) ** 2).mean()}

    torch.manual_seed(0)
    trainer = Trainer(Regression(), Source(), max_epochs=30, batch_size=16, lr=0.05, lr_end=0.005,
                      validation_fraction=0.2, seed=0, device="cpu", checkpoint_dir=tmp_path, progress_bar=False)
    hist = trainer.fit()
    assert trainer.steps_per_epoch == 5 and len(trainer.val_idx) == 20
    assert hist["loss"].iloc[-1] < 1e-2 < hist["loss"].iloc[0]
    assert hist["val_loss"].iloc[-1] < 1e-2
    assert hist["lr"].iloc[-1] == pytest.approx(0.005)
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["epoch"] == 30


def test_trainer_explicit_split():
    """``split=`` fixes the training and validation cells; bad splits are refused."""
    from attune_lib.models import Trainer

    seen = []

    class Source:
        n_obs = 10

        def get_batch(self, idx):
            seen.append(np.asarray(idx).copy())
            return {"x": torch.ones(len(idx), 1)}

    class Module(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def loss(self, batch):
            return {"loss": ((batch["x"] * self.w - 1) ** 2).mean()}

    tr = Trainer(Module(), Source(), max_epochs=1, batch_size=4, validation_fraction=0.5, device="cpu",
                 progress_bar=False, split=([0, 1, 2, 3, 4, 5], [8, 9]))
    assert tr.steps_per_epoch == 2 and list(tr.val_idx) == [8, 9]
    tr.fit()
    used = np.concatenate(seen)
    assert set(used) == {0, 1, 2, 3, 4, 5, 8, 9}  # 6 and 7 never used; validation on 8 and 9
    with pytest.raises(AttuneInputError, match="overlap"):
        Trainer(Module(), Source(), device="cpu", split=([0, 1, 2], [2, 3]))
    with pytest.raises(AttuneInputError, match=r"split: validation indices must lie in \[0, 10\)"):
        Trainer(Module(), Source(), device="cpu", split=([0, 1, 2], [10]))


# ------------------------------------------------------------------------------------- input errors
def test_setup_errors():
    m = make_paired(n=30, seed=2)
    with pytest.raises(AttuneInputError, match="'atac'"):
        Attune.setup_mudata(m, atac_key="peaks")
    with pytest.raises(AttuneInputError, match="layer 'lognorm'"):
        Attune.setup_mudata(m, rna_layer="lognorm")
    with pytest.raises(AttuneInputError, match="cell_type_key"):
        Attune.setup_mudata(m, cell_type_key="celltype")
    with pytest.raises(AttuneInputError, match="setup_mudata"):
        Attune(m)
    bad = m.copy()
    X = bad["rna"].X.copy()
    X.data[3] = np.nan
    bad["rna"].layers["lognorm"] = X
    with pytest.raises(AttuneInputError, match=r"mdata\['rna'\]\.layers\['lognorm'\] contains 1 NaN"):
        Attune.setup_mudata(bad, rna_layer="lognorm")
    X = bad["atac"].X.copy()
    X.data[0] = -1
    bad["atac"].X = X
    with pytest.raises(AttuneInputError, match=r"mdata\['atac'\]\.X contains 1 negative"):
        Attune.setup_mudata(bad)
    assert "_attune_lib_setup" not in bad.uns  # nothing written on failure
    Attune.setup_mudata(m, cell_type_key="cell_type")
    assert m.uns["_attune_lib_setup"]["Attune"]["n_peaks"] == 200
    with pytest.raises(AttuneInputError, match="contrast"):
        Attune(m, contrast="teacher-only")


def test_sim_small_if_available(request):
    try:
        from attune_lib.datasets import simulate_multiome  # noqa: F401
    except ImportError:
        pytest.skip("attune_lib.datasets.simulate_multiome not available yet")
    sim = request.getfixturevalue("sim_small")
    m = sim.copy()
    rna = m["rna"]
    X = rna.X.tocsr().astype(np.float32)
    X = sp.diags(1e4 / np.maximum(np.asarray(X.sum(1)).ravel(), 1)) @ X
    X.data = np.log1p(X.data)
    rna.layers["lognorm"] = X.tocsr().astype(np.float32)
    Attune.setup_mudata(m, rna_layer="lognorm", atac_layer="counts", cell_type_key="cell_type")
    model = Attune(m, seed=0, **SMALL)
    model.train(max_epochs=6, batch_size=64, lr=1e-2, lr_end=1e-3, progress_bar=False)
    assert model.history["loss"].iloc[-1] < model.history["loss"].iloc[0] - 1
    fos = foscttm(model.get_latent_representation(modality="rna"), model.get_latent_representation(modality="atac"))
    assert fos < 0.2, fos


def test_csr_batch_patterns_equal_the_batch_own():
    rng = np.random.default_rng(3)
    X = sp.random(40, 30, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    idx = np.array([5, 1, 17, 33, 2, 39])
    pre = csr_batch(X, idx, patterns=True)
    own = csr_batch(X, idx)
    assert "transpose" in pre._cache and "transpose" not in own._cache
    assert torch.equal(pre.row_ids(), own.row_ids())
    for a, b in zip(pre.transpose_pattern(), own.transpose_pattern(), strict=True):
        assert torch.equal(a, b)


def test_keep_freed_memory_opt_out(monkeypatch):
    import sys

    from attune_lib.models import _training

    monkeypatch.setattr(_training, "_MALLOC_TUNED", False)
    monkeypatch.setenv("ATTUNE_KEEP_FREED_MEMORY", "0")
    assert _training.keep_freed_memory() is False
    monkeypatch.delenv("ATTUNE_KEEP_FREED_MEMORY")
    if sys.platform.startswith("linux"):  # glibc's mallopt accepts both settings
        assert _training.keep_freed_memory() is True
