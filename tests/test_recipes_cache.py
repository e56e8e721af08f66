"""Recipes (the ci / standard / paper tiers), the cache of finished work and the runner around them."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from attune_lib import recipes
from attune_lib._utils import AttuneInputError
from attune_lib.cache import Cache, code_fingerprint


def test_every_notebook_has_every_tier():
    from attune_lib._runner import list_notebooks

    for nb in list_notebooks():
        for tier in recipes.TIERS:
            r = recipes.recipe(nb.stem, tier)
            assert "simulator" in r, f"{nb.stem}/{tier}: no simulator size"


def test_one_attune_learning_rate_per_tier():
    lrs = set()
    for nb in ("03a_regulatory", "03b_chromatin_potential", "04_gene_regulation_shift", "05_modality_embeddings"):
        lrs.add(recipes.recipe(nb, "ci")["attune"]["lr"])
    assert lrs == {1e-3}


def test_recipe_is_a_copy_and_names_bad_input():
    r = recipes.recipe("00_data_tour", "ci")
    r["simulator"]["small"] = "changed"
    assert recipes.recipe("00_data_tour", "ci")["simulator"]["small"] is True
    with pytest.raises(AttuneInputError, match="tier"):
        recipes.recipe("00_data_tour", "fast")
    with pytest.raises(AttuneInputError, match="no recipe for notebook 'nope'"):
        recipes.recipe("nope", "ci")


def test_small_is_a_deprecated_alias():
    with pytest.warns(FutureWarning, match="tier='ci'"):
        assert recipes.resolve_tier(None, small=True) == "ci"
    assert recipes.resolve_tier(None) == "standard"
    with pytest.raises(AttuneInputError, match="contradicts"), pytest.warns(FutureWarning):
        recipes.resolve_tier("paper", small=True)


def _cache(tmp_path, **kw):
    return Cache(tmp_path, dataset="simulated", tier="ci", seed=0, **kw)


def test_cache_hit_skips_the_work(tmp_path):
    calls = []

    def work():
        calls.append(1)
        df = pd.DataFrame({"a": [1, 2]})
        df.attrs["data_flags"] = ["x"]
        return df

    first = _cache(tmp_path).get_or_compute("table", work, key={"lr": 1e-3})
    c = _cache(tmp_path)
    second = c.get_or_compute("table", work, key={"lr": 1e-3})
    assert len(calls) == 1 and c.hits == ["table"]
    pd.testing.assert_frame_equal(first, second)
    assert second.attrs["data_flags"] == ["x"]
    entry = c.path("table", {"lr": 1e-3})
    assert json.loads((entry / "entry.json").read_text())["code"] == code_fingerprint()


@pytest.mark.parametrize("change", ["key", "seed", "tier", "dataset"])
def test_a_changed_key_is_a_miss(tmp_path, change):
    calls = []
    _cache(tmp_path).get_or_compute("table", lambda: calls.append(1) or 1, key={"lr": 1e-3})
    base = dict(dataset="simulated", tier="ci", seed=0)
    key = {"lr": 1e-3}
    if change == "key":
        key = {"lr": 1e-2}
    else:
        base[change] = {"seed": 1, "tier": "standard", "dataset": "simulated_skin"}[change]
    Cache(tmp_path, **base).get_or_compute("table", lambda: calls.append(1) or 2, key=key)
    assert len(calls) == 2


def test_force_recomputes_and_replaces(tmp_path):
    _cache(tmp_path).get_or_compute("t", lambda: 1)
    assert _cache(tmp_path, force=True).get_or_compute("t", lambda: 2) == 2
    assert _cache(tmp_path).get_or_compute("t", lambda: 3) == 2


def test_force_from_the_environment(tmp_path, monkeypatch):
    _cache(tmp_path).get_or_compute("t", lambda: 1)
    monkeypatch.setenv("ATTUNE_CACHE_FORCE", "1")
    assert _cache(tmp_path).get_or_compute("t", lambda: 2) == 2


def test_an_interrupted_write_leaves_no_entry(tmp_path):
    c = _cache(tmp_path)

    def broken_save(value, folder):
        (folder / "value.pkl").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        c.get_or_compute("t", lambda: 1, save=broken_save)
    assert not c.has("t")
    assert not [p for p in (tmp_path / "cache" / "t").iterdir()]  # no temporary folder left either
    assert _cache(tmp_path).get_or_compute("t", lambda: 5) == 5


def test_cache_dir_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTUNE_CACHE_DIR", str(tmp_path / "elsewhere"))
    c = Cache(tmp_path / "results", dataset="simulated", tier="ci", seed=0)
    c.get_or_compute("t", lambda: 1)
    assert (tmp_path / "elsewhere" / "t").is_dir() and not (tmp_path / "results").exists()


def test_cached_model_round_trip(tmp_path, sim_small):
    from attune_lib.models import ScMVP

    m = sim_small.copy()
    ScMVP.setup_mudata(m, rna_layer=None, atac_layer=None)
    trained = []

    def build():
        return ScMVP(m, n_latent=4, seed=0)

    def train(model):
        trained.append(1)
        model.train(pretrain_epochs=(1, 1), max_epochs=1, warmup_epochs=1, batch_size=128, progress_bar=False)

    a = _cache(tmp_path).model("scmvp", ScMVP, m, build, train, key={"epochs": 1})
    b = _cache(tmp_path).model("scmvp", ScMVP, m, build, train, key={"epochs": 1})
    assert len(trained) == 1 and b.is_trained
    pd.testing.assert_frame_equal(pd.DataFrame(a.history).reset_index(drop=True),
                                  pd.DataFrame(b.history).reset_index(drop=True), check_dtype=False)


def test_unknown_stage_names_are_refused(tmp_path):
    with pytest.raises(AttuneInputError, match="stage name"):
        _cache(tmp_path).get_or_compute("../up", lambda: 1)
