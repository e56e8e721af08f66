"""One vocabulary across the public API (docs/conventions.md, "Names").

``seed`` is the one name for randomness, ``dropout_rate`` the one name for dropout, ``*_mod`` names a
modality and ``*_key`` an obs/obsm/uns/layer key. Old names stay accepted for one release through
``attune_lib._utils.renamed_kwargs``, with a FutureWarning.
"""

from __future__ import annotations

import inspect
import warnings

import pytest

import attune_lib as al
from attune_lib._utils import AttuneInputError, renamed_kwargs

NAMESPACES = ("pp", "tl", "pl", "datasets", "metrics", "models")
MODALITY_NAMES = {"rna", "atac"}


def _public_callables():
    out = []
    for ns_name in NAMESPACES:
        ns = getattr(al, ns_name)
        for name in getattr(ns, "__all__", []):
            obj = getattr(ns, name)
            if inspect.isclass(obj):
                if issubclass(obj, BaseException):
                    continue
                out.append((f"{ns_name}.{name}", obj.__init__))
                for meth_name, meth in vars(obj).items():
                    if meth_name.startswith("_"):
                        continue
                    func = meth.__func__ if isinstance(meth, (staticmethod, classmethod)) else meth
                    if inspect.isfunction(func):
                        out.append((f"{ns_name}.{name}.{meth_name}", func))
            elif inspect.isfunction(obj):
                out.append((f"{ns_name}.{name}", obj))
    return out


CALLABLES = _public_callables()

def _params(func):
    return inspect.signature(func).parameters  # follows __wrapped__: the new names


def test_the_walk_sees_the_api():
    names = {n for n, _ in CALLABLES}
    assert {"pp.preprocess", "tl.embed_umap", "metrics.integration_metrics", "models.Attune.train"} <= names
    assert len(CALLABLES) > 150


@pytest.mark.parametrize("where,func", CALLABLES, ids=[n for n, _ in CALLABLES])
def test_one_name_per_concept(where, func):
    params = _params(func)
    bad = {"random_state": "seed", "dropout": "dropout_rate"}
    found = [f"{p} (use {bad[p]})" for p in params if p in bad]
    assert not found, f"{where}: {found}"
    for name, p in params.items():
        if name.endswith("_key") and isinstance(p.default, str):
            assert p.default not in MODALITY_NAMES, (
                f"{where}: {name}={p.default!r} names a modality; modality names are *_mod parameters")
        if name.endswith("_mod") and p.default is not inspect.Parameter.empty:
            assert p.default is None or p.default in MODALITY_NAMES, f"{where}: {name}={p.default!r}"


def test_renamed_keyword_still_accepted_with_a_warning():
    mdata = al.datasets.simulate_multiome(preset="pbmc", size="small", seed=0)
    new = al.tl.gene_peak_pairs(mdata, window_bp=50_000, rna_mod="rna", atac_mod="atac")
    with pytest.warns(FutureWarning, match="rna_key= was renamed to rna_mod="):
        old = al.tl.gene_peak_pairs(mdata, window_bp=50_000, rna_key="rna", atac_mod="atac")
    assert old.equals(new)
    with pytest.raises(AttuneInputError, match="pass rna_mod= only"):
        al.tl.gene_peak_pairs(mdata, window_bp=50_000, rna_key="rna", rna_mod="rna")


def test_renamed_kwargs_refuses_an_unknown_new_name():
    with pytest.raises(TypeError, match="no parameter 'sede'"):
        renamed_kwargs(random_state="sede")(lambda x, *, seed=0: x)


def test_renamed_kwargs_maps_the_value():
    @renamed_kwargs(random_state="seed")
    def f(*, seed=0):
        return seed

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(seed=3) == 3  # the new name warns nothing
    with pytest.warns(FutureWarning):
        assert f(random_state=5) == 5
