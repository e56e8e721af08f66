"""Weight-level check against the original Attune's released pretrained weights.

The original (github.com/melobio/Attune, TensorFlow/Keras 2.5) ships the pretrained networks as Keras
``save_weights`` HDF5 files, e.g. ``10x_pretrain/weight/pretrain/``:

* ``weight_encoder_epoch12.h5``            RNA teacher (embedding + context attention)
* ``weight_decoder_epoch12.h5``            RNA student (dense)
* ``weight_encoder_embedding_epoch12.h5``  ATAC teacher
* ``weight_decoder_embedding_epoch12.h5``  ATAC student

These tests load a file into the port's :class:`~attune_lib.models.TeacherEncoder` /
:class:`~attune_lib.models.StudentEncoder` and compare, on identical inputs and layer by layer, the
port's forward pass with the original's, computed here with NumPy from the same HDF5 arrays by the
equations of the original's Keras layers in inference mode (``AttentionWithContext``: ``exp`` of
the scores divided by their sum + ``1e-7``; ``BatchNormalization`` with the moving statistics,
epsilon ``1e-3``; dropout inactive). No TensorFlow is needed.

Mapping: Keras ``Dense``/attention kernels act as ``x @ K`` (the port's ``nn.Linear`` stores
``K.T``); the original's teacher value batch norm has a single channel (it normalises the
``cells x features x 1`` tensor), which the port's per-feature layer represents exactly by
repeating its scalar parameters; the port's batch norms get Keras' epsilon.

Point ``ATTUNE_ORIGINAL_DIR`` at a checkout of the original. Files that are absent, or are Git LFS
pointers rather than HDF5 (some copies lack the large ``*_embedding_*`` ATAC files), are skipped
with a message naming them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from attune_lib.models import CSRBatch, StudentEncoder, TeacherEncoder, csr_batch
from attune_lib.models._attune_nn import _dense_student_forward, _dense_teacher_pool

h5py = pytest.importorskip("h5py")

KERAS_BN_EPS = 1e-3
KERAS_ATTENTION_EPS = 1e-7  # K.epsilon() added to the attention denominator

#: (folder, epoch) of the released pretraining weights
WEIGHT_SETS = (
    ("10x_pretrain/weight/pretrain", 12),
    ("10x_pretrain/weight/pretrain", 5),
    ("10x_prediction/weight/pretrain", 20),
    ("greenleaf_pretrain/weight/pretrain", 20),
)
#: (modality, network, file pattern, Keras layer prefix)
NETWORKS = (
    ("rna", "teacher", "weight_encoder_epoch{e}.h5", "RNA"),
    ("rna", "student", "weight_decoder_epoch{e}.h5", "RNA"),
    ("atac", "teacher", "weight_encoder_embedding_epoch{e}.h5", "ATAC"),
    ("atac", "student", "weight_decoder_embedding_epoch{e}.h5", "ATAC"),
)
CASES = [(f"{folder}/{pattern.format(e=e)}", mod, net, prefix)
         for folder, e in WEIGHT_SETS for mod, net, pattern, prefix in NETWORKS]


def _original_dir() -> Path:
    root = os.environ.get("ATTUNE_ORIGINAL_DIR")
    if not root:
        needed = ", ".join(c[0] for c in CASES[:4])
        pytest.skip(f"ATTUNE_ORIGINAL_DIR is not set; point it at a checkout of github.com/melobio/Attune "
                    f"with the released weights (e.g. {needed})")
    return Path(root)


def _read_weights(rel: str) -> dict[str, np.ndarray]:
    """All arrays of a Keras ``save_weights`` file, keyed ``layer/weight`` (``:0`` dropped)."""
    path = _original_dir() / rel
    if not path.is_file():
        pytest.skip(f"original weight file not present: {path}")
    try:
        fh = h5py.File(path, "r")
    except OSError as err:
        head = path.read_bytes()[:60]
        what = "a Git LFS pointer" if head.startswith(b"version https://git-lfs") else "not HDF5"
        pytest.skip(f"{path} cannot be read by h5py ({what}: {err})")
    out: dict[str, np.ndarray] = {}
    with fh:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                layer = name.split("/")[0]
                weight = name.split("/")[-1].split(":")[0]
                out[f"{layer}/{weight}"] = np.asarray(obj[()], dtype=np.float64)
        fh.visititems(visit)
    return out


def _find(w: dict[str, np.ndarray], layer_suffix: str, weight: str) -> np.ndarray:
    keys = [k for k in w if k.split("/")[0].endswith(layer_suffix) and k.endswith("/" + weight)]
    assert len(keys) == 1, f"expected one {layer_suffix}/{weight} in the file, found {keys} (all: {sorted(w)})"
    return w[keys[0]]


def _inputs(n_features: int, kind: str, seed: int = 0) -> sp.csr_matrix:
    """Identical inputs for both implementations: sparse non-negative values, one empty cell."""
    rng = np.random.default_rng(seed)
    n_cells = 48
    dens = 0.15 if kind == "rna" else 0.05
    mask = rng.random((n_cells, n_features)) < dens
    counts = rng.poisson(3.0, size=mask.shape) + 1
    if kind == "rna":  # log-normalised expression
        raw = mask * counts
        lib = np.maximum(raw.sum(1, keepdims=True), 1)
        X = np.log1p(raw / lib * 1e4)
    else:  # peak counts
        X = (mask * rng.integers(1, 4, size=mask.shape)).astype(float)
    X[0] = 0.0  # a cell with no detected feature
    return sp.csr_matrix(X)


def _batch64(X: sp.csr_matrix) -> CSRBatch:
    b = csr_batch(X)
    return CSRBatch(b.crow, b.col, torch.from_numpy(X.data.astype(np.float64)), b.n_cols)


def _bn(x, gamma, beta, mean, var, eps=KERAS_BN_EPS):
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def _set_bn(bn, w, layer, n: int) -> None:
    with torch.no_grad():
        for attr, name in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                           ("running_var", "moving_variance")):
            v = torch.from_numpy(np.broadcast_to(_find(w, layer, name), (n,)).copy())
            getattr(bn, attr).copy_(v)
    bn.eps = KERAS_BN_EPS


# ------------------------------------------------------------------------------------------------
# the original's forward passes (NumPy, inference mode)
# ------------------------------------------------------------------------------------------------
def _original_teacher(w, prefix: str, X: np.ndarray) -> dict[str, np.ndarray]:
    E = _find(w, f"{prefix}-Embedding", "embeddings")
    v = _bn(X, *(_find(w, f"{prefix}-BN-1", k) for k in ("gamma", "beta", "moving_mean", "moving_variance")))
    H = v[:, :, None] * E[None, :, :]  # Embedding(feature ids) * BN(value)
    W, b, u = (_find(w, "attention_with_context", f"attention_with_context_{k}") for k in ("W", "b", "u"))
    uit = np.tanh(H @ W + b)
    ait = uit @ u
    a = np.exp(ait)
    a = a / (a.sum(1, keepdims=True) + KERAS_ATTENTION_EPS)
    pooled = (H * a[:, :, None]).sum(1)
    t = np.tanh(pooled)
    h = _bn(t, *(_find(w, f"{prefix}-BN-3", k) for k in ("gamma", "beta", "moving_mean", "moving_variance")))
    out = np.maximum(h @ _find(w, "projection-1", "kernel") + _find(w, "projection-1", "bias"), 0.0)
    return {"value_bn": v, "attention": a, "pooled": pooled, "pooled_bn": h, "output": out}


def _original_student(w, prefix: str, X: np.ndarray) -> dict[str, np.ndarray]:
    v = _bn(X, *(_find(w, f"{prefix}-BN-1", k) for k in ("gamma", "beta", "moving_mean", "moving_variance")))
    h1 = np.maximum(v @ _find(w, f"{prefix}-projection-0", "kernel") + _find(w, f"{prefix}-projection-0", "bias"), 0)
    h = _bn(h1, *(_find(w, f"{prefix}-BN-3", k) for k in ("gamma", "beta", "moving_mean", "moving_variance")))
    out = np.maximum(h @ _find(w, "projection-2", "kernel") + _find(w, "projection-2", "bias"), 0.0)
    return {"value_bn": v, "hidden": h1, "hidden_bn": h, "output": out}


# ------------------------------------------------------------------------------------------------
# loading into the port
# ------------------------------------------------------------------------------------------------
def _port_teacher(w, prefix: str) -> TeacherEncoder:
    E = _find(w, f"{prefix}-Embedding", "embeddings")
    P, d = E.shape
    W = _find(w, "attention_with_context", "attention_with_context_W")
    K = _find(w, "projection-1", "kernel")
    t = TeacherEncoder(P, n_hidden=d, n_latent=K.shape[1], value_batchnorm=True).double().eval()
    with torch.no_grad():
        t.embedding.copy_(torch.from_numpy(E))
        t.attn_proj.weight.copy_(torch.from_numpy(W.T))
        t.attn_proj.bias.copy_(torch.from_numpy(_find(w, "attention_with_context", "attention_with_context_b")))
        t.context.copy_(torch.from_numpy(_find(w, "attention_with_context", "attention_with_context_u")))
        t.out.weight.copy_(torch.from_numpy(K.T))
        t.out.bias.copy_(torch.from_numpy(_find(w, "projection-1", "bias")))
    _set_bn(t.value_bn, w, f"{prefix}-BN-1", P)  # one channel in the original: repeated per feature
    _set_bn(t.pool_bn, w, f"{prefix}-BN-3", d)
    return t


def _port_student(w, prefix: str) -> StudentEncoder:
    K0 = _find(w, f"{prefix}-projection-0", "kernel")
    K2 = _find(w, "projection-2", "kernel")
    s = StudentEncoder(K0.shape[0], n_hidden=K0.shape[1], n_latent=K2.shape[1]).double().eval()
    with torch.no_grad():
        s.fc1.weight.copy_(torch.from_numpy(K0))  # stored input-major, used as x @ weight
        s.fc1.bias.copy_(torch.from_numpy(_find(w, f"{prefix}-projection-0", "bias")))
        s.fc2.weight.copy_(torch.from_numpy(K2.T))
        s.fc2.bias.copy_(torch.from_numpy(_find(w, "projection-2", "bias")))
    _set_bn(s.value_bn, w, f"{prefix}-BN-1", K0.shape[0])
    _set_bn(s.bn, w, f"{prefix}-BN-3", K0.shape[1])
    return s


def _close(name: str, got, want, rtol: float = 1e-9, atol: float = 1e-10) -> None:
    got = got.detach().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    assert got.shape == want.shape, f"{name}: shape {got.shape} vs original {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"layer {name} differs from the original")


@pytest.mark.parametrize("rel,mod,net,prefix", CASES, ids=[c[0] for c in CASES])
def test_port_reproduces_original_forward(rel, mod, net, prefix):
    w = _read_weights(rel)
    if net == "teacher":
        P = _find(w, f"{prefix}-Embedding", "embeddings").shape[0]
    else:
        P = _find(w, f"{prefix}-projection-0", "kernel").shape[0]
    X = _inputs(P, mod)
    Xd = X.toarray()
    batch = _batch64(X)
    if net == "teacher":
        ref = _original_teacher(w, prefix, Xd)
        port = _port_teacher(w, prefix)
        with torch.no_grad():
            scale, shift = port.value_bn(batch)
            _close("value batch norm", torch.from_numpy(Xd) * scale + shift, ref["value_bn"])
            pooled_dense, weights = _dense_teacher_pool(port, torch.from_numpy(Xd), return_weights=True)
            _close("attention weights (dense)", weights, ref["attention"])
            pooled, att = port.pool(batch, return_attention=True)
            _close("attention-pooled tokens (sparse)", pooled, ref["pooled"])
            _close("attention-pooled tokens (dense)", pooled_dense, ref["pooled"])
            zero_w = att["zero_scale"][:, None] * att["zero_profile"][None, :]
            dense_att = zero_w.clone()
            rows = batch.row_ids()
            dense_att[rows, batch.col] = att["nnz"]
            _close("attention weights (sparse)", dense_att, ref["attention"])
            _close("batch norm of tanh(pooled)", port.pool_bn(torch.tanh(pooled)), ref["pooled_bn"])
            _close("teacher output", port(batch), ref["output"])
    else:
        ref = _original_student(w, prefix, Xd)
        port = _port_student(w, prefix)
        with torch.no_grad():
            scale, shift = port.value_bn(batch)
            _close("value batch norm", torch.from_numpy(Xd) * scale + shift, ref["value_bn"])
            h1 = torch.relu(port.fc1(torch.from_numpy(ref["value_bn"])))
            _close("first dense + ReLU", h1, ref["hidden"])
            _close("hidden batch norm", port.bn(h1), ref["hidden_bn"])
            _close("student output (sparse)", port(batch), ref["output"])
            _close("student output (dense)", _dense_student_forward(port, torch.from_numpy(Xd)), ref["output"])
    assert np.isfinite(ref["output"]).all() and ref["output"].std() > 0, "degenerate reference output"


@pytest.mark.parametrize("rel", [c[0] for c in CASES], ids=[c[0] for c in CASES])
def test_released_batchnorm_statistics_are_initial(rel):
    """The released networks were trained with every batch norm in inference mode.

    Their moving statistics are still Keras' initial values (mean 0, variance 1) after 5-20 epochs:
    the original's training loop calls the Keras models without ``training=True``, so batch norm
    normalised with these constants (an affine map with learned scale and shift) and dropout was
    inactive while it trained. ``docs/faithful_but_correct.md`` ("Port vs original") discusses it.
    """
    w = _read_weights(rel)
    means = [v for k, v in w.items() if k.endswith("/moving_mean")]
    variances = [v for k, v in w.items() if k.endswith("/moving_variance")]
    assert means and len(means) == len(variances), f"{rel}: no batch-norm statistics found"
    for m, v in zip(means, variances):
        assert np.all(m == 0.0) and np.all(v == 1.0)
    gammas = [v for k, v in w.items() if k.endswith("/gamma")]
    assert any(np.any(g != 1.0) for g in gammas), f"{rel}: batch-norm scales untrained, not a trained file"
