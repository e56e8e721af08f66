"""attune-companion: a reproducible PyTorch companion to Attune (GigaScience 2025) and scMVP.

Namespaces follow scanpy: ``datasets`` (manifests, readers, the simulator), ``pp`` (preprocessing),
``tl`` (analysis tools), ``pl`` (plots returning Figures), ``metrics`` and ``models``
(``Attune``, ``ScMVP``); ``recipes`` (the ``ci`` / ``standard`` / ``paper`` training settings of the
figure notebooks) and ``cache`` (finished work on disk).

>>> import attune_lib as al
>>> mdata = al.datasets.simulate_multiome(preset="pbmc", size="small", seed=0)
"""

from __future__ import annotations

import importlib
import logging
import os as _os
import sys as _sys

__version__ = "0.1.0"

_SUBMODULES = ("datasets", "pp", "tl", "pl", "metrics", "models", "teach", "recipes", "cache")
__all__ = [*_SUBMODULES, "__version__"]

logger = logging.getLogger("attune_lib")
if not logger.handlers:
    # under the notebook runner (ATTUNE_PROGRESS=terminal) library logs go to the runner's terminal,
    # not into the notebook's outputs
    _handler = logging.StreamHandler(_sys.__stderr__ if _os.environ.get("ATTUNE_PROGRESS") == "terminal" else None)
    _handler.setFormatter(logging.Formatter("attune_lib: %(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def __getattr__(name: str):
    # Submodules load on first use so `import attune_lib` stays fast (torch is imported only by models).
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_SUBMODULES])
