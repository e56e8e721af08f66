"""Every public function and class (``__all__`` of each namespace) documents its parameters (numpydoc).

A callable with parameters needs a ``Parameters`` section (numpydoc's parser reads it) naming every
parameter of its signature (``*args``/``**kwargs`` as ``*args``/``**kwargs``; grouped entries such as
``lr, lr_end`` count for each name). A class may document them in its own docstring or in ``__init__``'s.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

numpydoc = pytest.importorskip("numpydoc.docscrape")

NAMESPACES = ["attune_lib", "attune_lib.datasets", "attune_lib.pp", "attune_lib.tl", "attune_lib.pl",
              "attune_lib.metrics", "attune_lib.models", "attune_lib.teach",
              "attune_lib.recipes", "attune_lib.cache"]


def _public():
    seen = {}
    for ns in NAMESPACES:
        mod = importlib.import_module(ns)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name, None)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            key = f"{obj.__module__}.{obj.__qualname__}"
            seen.setdefault(key, obj)
    return sorted(seen.items())


PUBLIC = _public()


def _parameters(obj) -> list[str]:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return []
    out = []
    for p in sig.parameters.values():
        if p.name in ("self", "cls") or p.name.startswith("_"):
            continue
        out.append({p.VAR_POSITIONAL: f"*{p.name}", p.VAR_KEYWORD: f"**{p.name}"}.get(p.kind, p.name))
    return out


def _documented(obj) -> tuple[bool, set[str]]:
    docs = [inspect.getdoc(obj) or ""]
    if inspect.isclass(obj) and obj.__init__ is not object.__init__:
        docs.append(inspect.getdoc(obj.__init__) or "")
    found, names = False, set()
    for doc in docs:
        params = numpydoc.NumpyDocString(doc)["Parameters"]
        if params:
            found = True
        for p in params:
            names.update(n.strip() for n in p.name.split(","))
    return found, names


def test_there_are_public_callables():
    assert len(PUBLIC) > 100


@pytest.mark.parametrize("qualname,obj", PUBLIC, ids=[k for k, _ in PUBLIC])
def test_parameters_section(qualname, obj):
    params = _parameters(obj)
    if not params:
        return
    found, names = _documented(obj)
    assert found, f"{qualname} has parameters {params} but no numpydoc 'Parameters' section"
    missing = [p for p in params if p not in names and p.lstrip("*") not in names]
    assert not missing, f"{qualname}: parameters {missing} are not in its 'Parameters' section"


def test_checker_rejects_an_undocumented_parameter():
    def f(a, b=1):
        """Do something.

        Parameters
        ----------
        a
            The first.
        """

    found, names = _documented(f)
    assert found and "b" not in names and "a" in names
