"""Small shared helpers: modality access, input validation, seeds and devices."""

from __future__ import annotations

import functools
import inspect
import os
import random
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = [
    "AttuneInputError",
    "get_modality",
    "check_values",
    "set_seed",
    "resolve_device",
    "progress",
    "as_csr",
    "examples",
    "name_mismatch",
    "renamed_kwargs",
]


class AttuneInputError(ValueError):
    """Raised for bad user input; the message names the offending file, field or parameter."""


def examples(values: Iterable, k: int = 3) -> str:
    """The first ``k`` values, quoted, for error messages (``'a', 'b', 'c', ...``)."""
    values = list(values)
    return ", ".join(repr(str(v)) for v in values[:k]) + (", ..." if len(values) > k else "")


def name_mismatch(names, expected) -> str | None:
    """Describe how ``names`` differ from ``expected`` as a set ("2 missing ('a', 'b') and 1 extra ('c')").

    Returns None when both hold the same names (order and duplicates are not checked here).
    """
    import pandas as pd

    names, expected = pd.Index(names), pd.Index(expected)
    missing = expected.difference(names, sort=False)
    extra = names.difference(expected, sort=False)
    parts = []
    if len(missing):
        parts.append(f"{len(missing)} missing ({examples(missing)})")
    if len(extra):
        parts.append(f"{len(extra)} extra ({examples(extra)})")
    return " and ".join(parts) or None


def get_modality(mdata: Any, key: str, *, role: str | None = None):
    """Return ``mdata[key]`` or raise an error naming the missing modality.

    Parameters
    ----------
    mdata
        A :class:`mudata.MuData`.
    key
        Modality name, e.g. ``"rna"`` or ``"atac"``.
    role
        What the modality is used for, only to make the error message clearer.
    """
    mods = getattr(mdata, "mod", None)
    if mods is None:
        raise AttuneInputError(
            f"expected a MuData with modalities, got {type(mdata).__name__}"
        )
    if key not in mods:
        what = f" ({role})" if role else ""
        raise AttuneInputError(
            f"modality {key!r}{what} not found in MuData; available: {sorted(mods)}"
        )
    return mods[key]


def check_values(X, *, name: str, allow_negative: bool = False) -> None:
    """Reject empty matrices and NaN/inf/negative entries with a message naming ``name``."""
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise AttuneInputError(f"{name} is empty (shape {X.shape})")
    data = X.data if sp.issparse(X) else np.asarray(X)
    if data.size == 0:
        return
    if not np.issubdtype(data.dtype, np.number):
        raise AttuneInputError(f"{name} has a non-numeric dtype {data.dtype}")
    n_nan = int(np.isnan(data).sum()) if np.issubdtype(data.dtype, np.floating) else 0
    if n_nan:
        raise AttuneInputError(f"{name} contains {n_nan} NaN value(s)")
    n_inf = int(np.isinf(data).sum()) if np.issubdtype(data.dtype, np.floating) else 0
    if n_inf:
        raise AttuneInputError(f"{name} contains {n_inf} infinite value(s)")
    if not allow_negative:
        n_neg = int((data < 0).sum())
        if n_neg:
            raise AttuneInputError(f"{name} contains {n_neg} negative value(s)")


def as_csr(X, dtype=np.float32) -> sp.csr_matrix:
    """Return ``X`` as a CSR matrix of ``dtype`` without densifying sparse input."""
    if sp.issparse(X):
        X = X.tocsr()
        return X.astype(dtype) if X.dtype != dtype else X
    return sp.csr_matrix(np.asarray(X, dtype=dtype))


def set_seed(seed: int | None) -> np.random.Generator:
    """Seed Python, NumPy and (if imported) torch; return a NumPy Generator."""
    if seed is None:
        return np.random.default_rng()
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return np.random.default_rng(seed)


def resolve_device(device: Any = "auto"):
    """Resolve a device argument to a :class:`torch.device`.

    Parameters
    ----------
    device
        ``"auto"`` or None (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:<index>"``
        or a :class:`torch.device`.

    Raises
    ------
    AttuneInputError
        For an unknown device name, or ``"cuda"`` when this torch build or machine has no CUDA device.
    """
    import torch

    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise AttuneInputError(f"device={device!r} is not a device; use 'auto', 'cpu' or 'cuda'") from err
    if dev.type not in ("cpu", "cuda"):
        raise AttuneInputError(f"device={device!r} is not supported; use 'auto', 'cpu' or 'cuda'")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise AttuneInputError(f"device={device!r} but CUDA is not available (torch {torch.__version__}, "
                                   f"CUDA build: {torch.version.cuda or 'none'}); use device='cpu' or 'auto'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise AttuneInputError(f"device={device!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    return dev


def progress(iterable: Iterable | None = None, *, enabled: bool = True, **kwargs):
    """A tqdm progress bar that is silent when ``enabled`` is False or ATTUNE_NO_PROGRESS is set.

    With ``ATTUNE_PROGRESS=terminal`` (set by the notebook runner) the bar is drawn on the process's
    own stderr (the runner's terminal) instead of in the notebook's outputs.
    """
    disable = (not enabled) or bool(os.environ.get("ATTUNE_NO_PROGRESS"))
    if os.environ.get("ATTUNE_PROGRESS") == "terminal":
        import sys

        from tqdm.std import tqdm as plain_tqdm

        kwargs.setdefault("file", sys.__stderr__)
        kwargs.setdefault("mininterval", 1.0)
        return plain_tqdm(iterable, disable=disable, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=disable, **kwargs)


def renamed_kwargs(**old_to_new: str) -> Callable:
    """Accept a keyword argument's old name for one release, with a ``FutureWarning`` naming the new one.

    Parameters
    ----------
    **old_to_new
        Old keyword name mapped to its new name, e.g. ``renamed_kwargs(random_state="seed")``.

    Raises
    ------
    AttuneInputError
        (from the wrapped call) when both the old and the new name are given.
    """

    def decorate(func: Callable) -> Callable:
        params = inspect.signature(func).parameters
        for old, new in old_to_new.items():
            if new not in params:  # a typo here would silently drop the user's value
                raise TypeError(f"{func.__qualname__} has no parameter {new!r} (renamed from {old!r})")

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise AttuneInputError(
                            f"{func.__qualname__}: pass {new}= only ({old}= is its old name), not both")
                    warnings.warn(f"{func.__qualname__}: {old}= was renamed to {new}=; {old}= will be removed "
                                  "in a future release", FutureWarning, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        wrapper.__renamed_kwargs__ = dict(old_to_new)
        return wrapper

    return decorate
