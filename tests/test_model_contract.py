"""The shared model contract: setup registry, save directory, load validation, devices, resume checks.

Every model (Attune, ScMVP, RNAPredictor, RegulatoryTransformer) follows
:class:`attune_lib.models.base.BaseModel`; these tests run the same checks on each.
"""

from __future__ import annotations

import json

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from attune_lib._utils import AttuneInputError
from attune_lib.models import Attune, RegulatoryTransformer, RNAPredictor, ScMVP, StopTraining

torch.set_num_threads(1)

SMALL = {"n_hidden": 16, "n_latent": 16}
FAST = {"progress_bar": False, "device": "cpu"}


# ----------------------------------------------------------------------------------------- data
def make_paired(n=160, n_genes=30, n_peaks=90, seed=0, *, counts=False) -> md.MuData:
    """Paired data with gene/peak coordinates; RNA log-normalised in .X (and counts in a layer)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    Z = rng.normal(0, 1.5, (3, 4))[labels] + rng.normal(0, 0.5, (n, 4))
    rna_counts = rng.poisson(np.exp(Z @ rng.normal(0, 0.6, (4, n_genes)) - 0.5)).astype(np.float32)
    atac = (rng.random((n, n_peaks)) < 1 / (1 + np.exp(-(Z @ rng.normal(0, 0.8, (4, n_peaks)) - 1.5))))
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(n)])
    tss = np.arange(n_genes) * 30_000 + 10_000
    var_r = pd.DataFrame({"chrom": "chr1", "start": tss, "end": tss + 5_000, "strand": "+", "tss": tss},
                         index=[f"g{i}" for i in range(n_genes)])
    starts = np.arange(n_peaks) * 10_000
    var_a = pd.DataFrame({"chrom": "chr1", "start": starts, "end": starts + 500},
                         index=[f"chr1:{s}-{s + 500}" for s in starts])
    r = ad.AnnData(sp.csr_matrix(np.log1p(rna_counts)), obs=obs.copy(), var=var_r)
    r.layers["counts"] = sp.csr_matrix(rna_counts)
    a = ad.AnnData(sp.csr_matrix(atac.astype(np.float32)), obs=obs.copy(), var=var_a)
    a.layers["counts"] = a.X.copy()
    m = md.MuData({"rna": r, "atac": a})
    m.obs["cell_type"] = pd.Categorical([f"t{i}" for i in labels])
    return m


@pytest.fixture(scope="module")
def paired():
    return make_paired()


@pytest.fixture(scope="module")
def attune(paired):
    m = paired.copy()
    Attune.setup_mudata(m)
    model = Attune(m, seed=0, **SMALL)
    model.train(max_epochs=2, batch_size=64, lr=1e-3, **FAST)
    return model


@pytest.fixture(scope="module")
def scmvp(paired):
    m = paired.copy()
    ScMVP.setup_mudata(m)
    model = ScMVP(m, n_latent=4, n_hidden=16, n_heads=2, n_components=3, seed=0)
    model.train(max_epochs=2, warmup_epochs=1, pretrain_epochs=(1, 1), batch_size=64, **FAST)
    return model


@pytest.fixture(scope="module")
def predictor(attune):
    pred = RNAPredictor.from_attune(attune, n_head=16)
    pred.train(attune.mdata, max_epochs=2, batch_size=64, **FAST)
    return pred


@pytest.fixture(scope="module")
def transformer(attune):
    rt = RegulatoryTransformer(attune, window_bp=100_000, n_hidden=16, d_ff=32, seed=0)
    rt.train(max_epochs=1, batch_size=32, **FAST)
    return rt


# ------------------------------------------------------------------------------- setup registry
def test_one_setup_registry_and_legacy_keys(paired):
    from attune_lib.models.base import SETUP_KEY, read_setup

    m = paired.copy()
    Attune.setup_mudata(m, atac_layer="counts")
    ScMVP.setup_mudata(m)
    assert set(m.uns[SETUP_KEY]) == {"Attune", "ScMVP"}
    assert read_setup(m, "Attune")["atac_layer"] == "counts"
    assert read_setup(m, "ScMVP")["atac_transform"] == "tfidf"
    assert "_attune_setup" not in m.uns and "scmvp_setup" not in m.uns
    # MuData set up by an older version (legacy keys) still works
    old = paired.copy()
    old.uns["_attune_setup"] = {"rna_key": "rna", "atac_key": "atac", "atac_layer": "counts"}
    old.uns["scmvp_setup"] = {"rna_key": "rna", "atac_key": "atac", "rna_layer": "counts", "atac_layer": "",
                              "atac_transform": "tfidf"}
    assert Attune(old, seed=0, **SMALL)._setup["atac_layer"] == "counts"
    s = read_setup(old, "ScMVP")
    assert s["atac_layer"] is None and s["rna_layer"] == "counts"
    with pytest.raises(AttuneInputError, match="setup_mudata"):
        Attune(paired.copy(), seed=0)


# ---------------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("name", ["attune", "scmvp", "predictor", "transformer"])
def test_round_trip_same_format(name, request, tmp_path):
    from attune_lib.models.base import ATTR_FILE, FEATURES_FILE, HISTORY_FILE, WEIGHTS_FILE

    model = request.getfixturevalue(name)
    mdata = model.mdata if name != "predictor" else request.getfixturevalue("attune").mdata
    if name == "predictor":
        before = model.predict(mdata)
    elif name == "transformer":
        before = model.get_global_attention(key_added=None)["score"].to_numpy()
    else:
        before = model.get_latent_representation(key_added=None)
    model.save(tmp_path / "m")
    with pytest.raises(AttuneInputError, match="overwrite"):
        model.save(tmp_path / "m")
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert {ATTR_FILE, FEATURES_FILE, WEIGHTS_FILE, HISTORY_FILE} <= files
    attrs = json.loads((tmp_path / "m" / ATTR_FILE).read_text())
    assert attrs["model"] == type(model).__name__ and attrs["versions"]["torch"] == torch.__version__
    assert "attune_lib" in attrs["versions"] and attrs["is_trained"] is True
    hist = pd.read_csv(tmp_path / "m" / HISTORY_FILE)
    assert len(hist) == len(model.history) > 0 and "loss" in hist
    cls = type(model)
    if name == "predictor":
        loaded = cls.load(tmp_path / "m", device="cpu")
        after = loaded.predict(mdata)
    else:
        loaded = cls.load(tmp_path / "m", mdata.copy(), device="cpu")
        after = (loaded.get_global_attention(key_added=None)["score"].to_numpy() if name == "transformer"
                 else loaded.get_latent_representation(key_added=None))
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)
    assert loaded.is_trained and isinstance(loaded.history, pd.DataFrame)
    pd.testing.assert_frame_equal(loaded.history.reset_index(drop=True), model.history.reset_index(drop=True),
                                  check_dtype=False, check_exact=False)
    assert loaded.init_params == model.init_params
    # loading through the wrong class names the model that was saved
    other = ScMVP if name != "scmvp" else Attune
    with pytest.raises(AttuneInputError, match=type(model).__name__):
        other.load(tmp_path / "m", mdata.copy())


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_load_damaged_weights_names_file_and_leaves_mdata(attune, paired, tmp_path, damage):
    """A truncated or 0-byte model.pt gives an error naming that file, and nothing is written to mdata."""
    attune.save(tmp_path / "m")
    weights = tmp_path / "m" / "model.pt"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    m = paired.copy()
    uns_before = set(m.uns)
    with pytest.raises(AttuneInputError, match="model.pt"):
        Attune.load(tmp_path / "m", m)
    assert set(m.uns) == uns_before


def test_load_damaged_attrs_and_features(attune, paired, tmp_path):
    attune.save(tmp_path / "m")
    (tmp_path / "m" / "attr.json").write_text("{not json")
    m = paired.copy()
    with pytest.raises(AttuneInputError, match="attr.json"):
        Attune.load(tmp_path / "m", m)
    attune.save(tmp_path / "m", overwrite=True)
    fewer = paired[:, paired.var_names[3:]].copy()  # 3 genes missing
    with pytest.raises(AttuneInputError, match="3 missing"):
        Attune.load(tmp_path / "m", fewer)
    assert not any("setup" in k for k in fewer.uns)
    with pytest.raises(AttuneInputError, match="not a saved"):
        Attune.load(tmp_path / "nothing", paired.copy())


def test_scmvp_load_damaged_weights(scmvp, paired, tmp_path):
    scmvp.save(tmp_path / "s")
    (tmp_path / "s" / "model.pt").write_bytes(b"")
    m = paired.copy()
    with pytest.raises(AttuneInputError, match="model.pt"):
        ScMVP.load(tmp_path / "s", m)
    assert set(m.uns) == set(paired.uns)


# ---------------------------------------------------------------------------------------- device
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_without_cuda_is_a_named_error(attune, scmvp):
    with pytest.raises(AttuneInputError, match="device='cuda'"):
        attune.train(max_epochs=1, device="cuda", progress_bar=False)
    with pytest.raises(AttuneInputError, match="device='cuda'"):
        scmvp.train(max_epochs=1, device="cuda", progress_bar=False)
    with pytest.raises(AttuneInputError, match="device"):
        attune.train(max_epochs=1, device="tpu", progress_bar=False)


# ----------------------------------------------------------------------------------- checkpoints
def test_resume_refuses_other_data_of_the_same_shape(paired, tmp_path):
    """A checkpoint written on other data of the same shape is never resumed silently."""
    kw = {"max_epochs": 2, "batch_size": 64, "lr": 1e-3, **FAST}
    a = paired.copy()
    Attune.setup_mudata(a)
    Attune(a, seed=0, **SMALL).train(checkpoint_dir=tmp_path, **kw)
    b = make_paired(seed=1)  # same shape, same names, other values
    Attune.setup_mudata(b)
    with pytest.raises(AttuneInputError, match="data"):
        Attune(b, seed=0, **SMALL).train(checkpoint_dir=tmp_path, **kw)
    c = paired.copy()  # same values, other feature names
    c.mod["atac"].var_names = [f"chr2:{i}-{i + 1}" for i in range(c.mod["atac"].n_vars)]
    c.update()
    Attune.setup_mudata(c)
    with pytest.raises(AttuneInputError, match="features"):
        Attune(c, seed=0, **SMALL).train(checkpoint_dir=tmp_path, **kw)
    # the same data resumes (nothing left to train: the history comes from the checkpoint)
    again = Attune(a, seed=0, **SMALL)
    again.train(checkpoint_dir=tmp_path, **kw)
    assert again.is_trained and list(again.history.index) == [1, 2]


def _interrupt_after(n):
    def cb(trainer, epoch, record):
        if epoch == n:
            raise KeyboardInterrupt

    return cb


def test_scmvp_resume_checks(paired, tmp_path):
    m = paired.copy()
    ScMVP.setup_mudata(m)
    kw = {"max_epochs": 2, "warmup_epochs": 1, "pretrain_epochs": (1, 1), "batch_size": 64, **FAST}
    model = ScMVP(m, n_latent=4, n_hidden=16, n_heads=2, n_components=3, seed=0)
    with pytest.raises(KeyboardInterrupt):
        model.train(checkpoint_dir=tmp_path, callbacks=[_interrupt_after(2)], **kw)
    assert not model.is_trained
    for change in ({"lr": 1e-2}, {"batch_size": 32}, {"adam_eps": 1e-8}):
        fresh = ScMVP(m, n_latent=4, n_hidden=16, n_heads=2, n_components=3, seed=0)
        with pytest.raises(AttuneInputError, match=next(iter(change))):
            fresh.train(checkpoint_dir=tmp_path, resume=True, **{**kw, **change})
    other = make_paired(seed=5)
    ScMVP.setup_mudata(other)
    with pytest.raises(AttuneInputError, match="data"):
        ScMVP(other, n_latent=4, n_hidden=16, n_heads=2, n_components=3, seed=0).train(
            checkpoint_dir=tmp_path, resume=True, **kw)
    with pytest.raises(AttuneInputError, match="max_epochs"):
        ScMVP(m, n_latent=4, n_hidden=16, n_heads=2, n_components=3, seed=0).train(**{**kw, "max_epochs": 0})


def test_scmvp_stages_are_trainer_phases(scmvp):
    h = scmvp.history
    assert isinstance(h, pd.DataFrame)
    assert list(h["phase"]) == ["rna", "atac", "warmup", "joint"]
    assert list(h.index) == [1, 2, 3, 4] and (h["step"].diff().dropna() > 0).all()


def test_early_stopping_restores_best_and_is_recorded(paired):
    m = paired.copy()
    Attune.setup_mudata(m)
    model = Attune(m, seed=0, **SMALL)
    model.train(max_epochs=40, batch_size=32, lr=3e-2, lr_end=3e-2, validation_fraction=0.2,
                early_stopping={"patience": 2, "min_delta": 0.0}, **FAST)
    h = model.history
    best = int(h["val_loss"].idxmin())
    assert model.train_summary_["best_epoch"] == best
    if model.train_summary_["stopped_early"]:
        assert len(h) == best + 2 < 40
    # the weights kept are the best epoch's: re-evaluating gives its validation loss
    assert model.train_summary_["best_val_loss"] == pytest.approx(h["val_loss"].min())


def test_max_steps_budget(paired):
    m = paired.copy()
    Attune.setup_mudata(m)
    model = Attune(m, seed=0, **SMALL)
    model.train(max_epochs=50, max_steps=7, batch_size=64, **FAST)  # 160 cells: 3 steps per epoch
    h = model.history
    assert list(h["step"]) == [3, 6, 7]  # the last epoch is partial
    assert h["lr"].iloc[-1] == pytest.approx(1e-6)


def test_stop_training_callback_still_works(paired):
    m = paired.copy()
    Attune.setup_mudata(m)
    model = Attune(m, seed=0, **SMALL)

    def stop(trainer, epoch, record):
        raise StopTraining

    model.train(max_epochs=5, batch_size=64, callbacks=[stop], **FAST)
    assert len(model.history) == 1 and model.is_trained


def test_schedule_choice():
    """The paper's schedule where its 20 epochs give >= 1,000 steps; the small-data one below; explicit wins."""
    from attune_lib.models import Attune as A
    from attune_lib.models._attune import PAPER_SCHEDULE, SMALL_DATA_SCHEDULE

    none = {"max_epochs": None, "max_steps": None, "lr": None, "lr_end": None, "validation_fraction": None,
            "early_stopping": None}
    big = A._plan_schedule(20_000, batch_size=128, schedule="auto", **none)
    assert big["schedule"] == "paper" and big["max_epochs"] == 20 and big["lr"] == PAPER_SCHEDULE["lr"]
    small = A._plan_schedule(2_600, batch_size=128, schedule="auto", **none)
    assert small["schedule"] == "small_data" and small["max_steps"] == SMALL_DATA_SCHEDULE["max_steps"]
    assert small["lr"] == 1e-3 and small["validation_fraction"] == 0.1 and small["early_stopping"]["restore_best"]
    # 2,340 training cells at batch 128: 19 steps per epoch, so the budget needs 53 epochs
    assert small["max_epochs"] == 53
    paper = A._plan_schedule(2_600, batch_size=128, schedule="paper", **none)
    assert paper["schedule"] == "paper" and paper["max_epochs"] == 20 and paper["early_stopping"] is None
    user = A._plan_schedule(2_600, batch_size=128, schedule="auto", **{**none, "max_epochs": 5, "lr": 3e-4})
    assert user["schedule"] == "user" and user["max_epochs"] == 5 and user["lr"] == 3e-4
    with pytest.raises(AttuneInputError, match="validation_fraction"):
        A._plan_schedule(2_600, batch_size=128, schedule="auto",
                         **{**none, "max_epochs": 5, "early_stopping": True})
    with pytest.raises(AttuneInputError, match="schedule"):
        A._plan_schedule(2_600, batch_size=128, schedule="fast", **none)


def test_default_schedule_records_convergence(paired):
    """On small data the default schedule holds cells out, stops early and says whether it converged."""
    m = paired.copy()
    Attune.setup_mudata(m)
    model = Attune(m, seed=0, **SMALL)
    model.train(batch_size=64, **FAST)
    s, h = model.train_summary_, model.history
    assert s["schedule"] == "small_data" and "val_loss" in h and h["step"].iloc[-1] <= 1000
    assert s["steps"] == h["step"].iloc[-1] and s["monitor"] == "val_loss"
    assert s["converged"] in (True, False) and np.isfinite(s["last_quarter_drop"])
    # the epoch kept: no later epoch improves on it by more than min_delta (1e-3)
    best = s["best_epoch"]
    assert h["val_loss"].loc[best:].min() >= h.loc[best, "val_loss"] - 1e-3
    assert h.loc[best, "val_loss"] == pytest.approx(s["best_val_loss"])


def test_directories_of_earlier_versions_still_load(attune, scmvp, paired, tmp_path):
    """attune_lib.Attune/1 (attr.json + raw state dict) and attune_lib.ScMVP/1 (one model.pt) load."""
    old = tmp_path / "attune_v1"
    old.mkdir()
    torch.save({k: v.detach().cpu() for k, v in attune.module.state_dict().items()}, old / "model.pt")
    (old / "attr.json").write_text(json.dumps({
        "format": "attune_lib.Attune/1", "init_params": attune.init_params,
        "setup": {"rna_key": "rna", "atac_key": "atac"},
        "is_trained": True, "var_names": {m: list(map(str, attune.var_names[m])) for m in ("rna", "atac")}}))
    attune.history.to_csv(old / "history.csv")
    loaded = Attune.load(old, paired.copy(), device="cpu")
    np.testing.assert_allclose(loaded.get_latent_representation(), attune.get_latent_representation(), atol=1e-6)
    assert loaded.is_trained and len(loaded.history) == len(attune.history)

    old = tmp_path / "scmvp_v1"
    old.mkdir()
    reg = {k: v for k, v in scmvp.registry.items() if k != "idf"}
    reg = {**reg, **{k: ("" if reg.get(k) is None else reg[k]) for k in ("rna_layer", "atac_layer", "atac_transform")}}
    hist = scmvp.history.rename(columns={"time_s": "seconds"})
    torch.save({"format": "attune_lib.ScMVP/1", "init_kwargs": scmvp.init_params, "registry": reg,
                "idf": torch.as_tensor(np.asarray(scmvp.registry["idf"]), dtype=torch.float64),
                "state_dict": {k: v.detach().cpu() for k, v in scmvp.module.state_dict().items()},
                "history": {"epoch": list(range(len(hist))), **{c: hist[c].tolist() for c in hist.columns}},
                "is_trained": True}, old / "model.pt")
    m = paired.copy()
    loaded = ScMVP.load(old, m, device="cpu")
    np.testing.assert_allclose(loaded.get_latent_representation(key_added=None),
                               scmvp.get_latent_representation(key_added=None), atol=1e-6)
    assert "time_s" in loaded.history and loaded.history.index.name == "epoch"
