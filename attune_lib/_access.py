"""One data-access layer: what a matrix holds (its *input state*) and getting a matrix by kind.

Every step that needs a particular kind of values (raw counts for a count likelihood or TF-IDF,
log-normalised expression for PCA or regression targets) asks for it here, so one policy decides
for the whole package:

* **Input state** of a matrix, one of :data:`INPUT_STATES`:

  - ``"counts"``: non-negative integers (UMIs, fragments or insertions in peaks);
  - ``"binary"``: only 0/1 (binarised accessibility);
  - ``"normalised"``: non-integer but not log-scaled, e.g. CPM, size-factor or ambient-corrected
    counts (each cell's values are whole multiples of one per-cell factor), or values too large
    to be logs;
  - ``"log-normalised"``: anything else, e.g. ``log1p`` of normalised counts, or TF-IDF.

  The state is detected from up to 1,000 evenly spaced cells (deterministic) by
  :func:`detect_input_state`, and can be set explicitly with :func:`set_input_state`. What is
  known is recorded in ``adata.uns["attune_input"]`` (``state``, ``source`` = ``"detected"`` or
  ``"given"``, and the state of every layer the package wrote).
* **Getting a matrix by kind** (:func:`get_matrix`): ``"counts"`` returns raw counts (an explicit
  ``layer``, else ``.layers["counts"]``, else ``.X``) or raises an error naming the matrix, its
  state and the argument to pass; ``"log-normalised"`` returns log-normalised values, computing
  ``log1p(normalize_total)`` on the fly from counts or normalised values; ``"any"`` returns the
  matrix as it is. ``layer=None`` always means "choose by kind", never "silently use ``.X``".
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._utils import AttuneInputError

logger = logging.getLogger("attune_lib")

__all__ = [
    "INPUT_STATES",
    "COUNT_STATES",
    "detect_input_state",
    "matrix_state",
    "set_input_state",
    "record_layer_state",
    "get_matrix",
    "lognormalize",
    "counts_matrix",
    "layer_matrix",
    "log_expression",
]

#: the states a matrix can be in (see the module docstring)
INPUT_STATES = ("counts", "binary", "normalised", "log-normalised")
#: states whose values may be used where counts are needed (TF-IDF, count likelihoods)
COUNT_STATES = ("counts", "binary")
_UNS_KEY = "attune_input"
_ALIASES = {
    "raw": "counts", "raw counts": "counts", "count": "counts", "integer": "counts",
    "normalized": "normalised", "scaled": "normalised", "cpm": "normalised",
    "log": "log-normalised", "lognorm": "log-normalised", "log-normalized": "log-normalised",
    "log_normalised": "log-normalised", "log_normalized": "log-normalised", "log1p": "log-normalised",
    "binarised": "binary", "binarized": "binary",
}
# log1p of anything a library-size normalisation gives stays far below this (log1p(1e6) ~ 13.8)
_MAX_LOG_VALUE = 25.0


def canonical_state(state: str, *, name: str = "state") -> str:
    s = str(state).strip().lower()
    s = _ALIASES.get(s, s)
    if s not in INPUT_STATES:
        raise AttuneInputError(f"{name}={state!r} is not an input state; choose one of {list(INPUT_STATES)}")
    return s


def _sample_rows(X, n_cells: int):
    n = X.shape[0]
    if n == 0:
        return X
    idx = np.unique(np.linspace(0, n - 1, min(n_cells, n)).round().astype(int))
    return X[idx]


def detect_input_state(X, *, n_cells: int = 1000) -> str:
    """Detect what a cells x features matrix holds.

    Rules, applied to up to ``n_cells`` evenly spaced cells:

    1. all stored values are whole numbers: ``"binary"`` when they are all 1 (and there are at
       least 50 of them), else ``"counts"``;
    2. in at least 90 % of the cells with two or more distinct values, every value is a whole
       multiple of the cell's smallest value (within 1e-4): ``"normalised"`` (scaled counts: CPM,
       size factors, ambient correction times a constant);
    3. the largest value exceeds 25: ``"normalised"`` (not a log scale);
    4. otherwise ``"log-normalised"``.

    Parameters
    ----------
    X
        Dense or sparse matrix, cells x features, finite and non-negative.
    n_cells
        Number of cells to look at.

    Returns
    -------
    str
        One of :data:`INPUT_STATES`.
    """
    sub = _sample_rows(X, n_cells)
    sub = sp.csr_matrix(sub, dtype=np.float64) if sp.issparse(sub) else sp.csr_matrix(np.asarray(sub, np.float64))
    sub.eliminate_zeros()
    vals = sub.data
    if vals.size == 0:
        return "counts"
    if np.all(np.abs(vals - np.round(vals)) < 1e-6):
        return "binary" if vals.size >= 50 and np.all(vals == 1) else "counts"
    n_multi = n_scaled = 0
    for i in range(sub.shape[0]):
        row = sub.data[sub.indptr[i]:sub.indptr[i + 1]]
        if row.size < 2 or np.ptp(row) <= 1e-9 * row.max():
            continue
        n_multi += 1
        ratio = row / row.min()
        n_scaled += bool(np.all(np.abs(ratio - np.round(ratio)) < 1e-4))
    if n_multi and n_scaled >= 0.9 * n_multi:
        return "normalised"
    if vals.max() > _MAX_LOG_VALUE:
        return "normalised"
    return "log-normalised"


def _record(adata) -> dict[str, Any]:
    rec = adata.uns.get(_UNS_KEY)
    return dict(rec) if isinstance(rec, dict) else {}


def set_input_state(adata, state: str | None = None, *, name: str = "adata", warn: bool = True) -> str:
    """Record the input state of ``adata.X`` in ``adata.uns["attune_input"]`` and report it.

    Parameters
    ----------
    adata
        AnnData of one modality; ``.X`` holds the values as given by the user.
    state
        One of :data:`INPUT_STATES` (aliases such as ``"log"``, ``"raw"``, ``"cpm"`` are accepted),
        or None to detect it.
    name
        Modality name, for messages.
    warn
        Log one WARNING line on the ``"attune_lib"`` logger when the state is not raw counts.

    Returns
    -------
    str
        The recorded state.
    """
    if state is None:
        state, source = detect_input_state(adata.X), "detected"
    else:
        state, source = canonical_state(state), "given"
    rec = _record(adata)
    matrices = dict(rec.get("matrices", {}))
    matrices["X"] = state
    adata.uns[_UNS_KEY] = {"state": state, "source": source, "matrices": matrices}
    if warn and state != "counts":
        logger.warning("%s: input holds %s values (%s), not raw counts; steps that need counts will use "
                       "what this allows or say what to pass", name, state, source)
    return state


def record_layer_state(adata, layer: str | None, state: str) -> None:
    """Record that ``.layers[layer]`` (``.X`` for None) now holds ``state`` values (after a transform)."""
    state = canonical_state(state)
    rec = _record(adata)
    matrices = dict(rec.get("matrices", {}))
    matrices["X" if layer is None else str(layer)] = state
    rec["matrices"] = matrices
    adata.uns[_UNS_KEY] = rec


def matrix_state(adata, layer: str | None = None, *, n_cells: int = 1000) -> str:
    """State of ``.layers[layer]`` (``.X`` for None): recorded when known, else detected."""
    rec = _record(adata)
    known = rec.get("matrices", {})
    key = "X" if layer is None else str(layer)
    if key in known:
        return str(known[key])
    return detect_input_state(layer_matrix(adata, layer, where="adata"), n_cells=n_cells)


def layer_matrix(adata, layer: str | None, *, where: str = "adata"):
    """``.layers[layer]`` (``.X`` for None) as it is, or an error naming the missing layer and the ones there.

    Parameters
    ----------
    adata
        AnnData of one modality.
    layer
        Layer name, or None for ``.X``.
    where
        How the modality is named in messages.
    """
    if layer is None:
        if adata.X is None:
            raise AttuneInputError(f"{where}.X is empty (None); pass the layer holding the values")
        return adata.X
    if layer not in adata.layers:
        raise AttuneInputError(f"layer {layer!r} not found in {where}.layers; available: {sorted(adata.layers)}")
    return adata.layers[layer]


def _xname(where: str, layer: str | None) -> str:
    return f"{where}." + ("X" if layer is None else f"layers[{layer!r}]")


def lognormalize(X, *, target_sum: float = 1e4, dtype=np.float32) -> sp.csr_matrix:
    """``log1p`` of each cell scaled to ``target_sum`` (scanpy's ``normalize_total`` + ``log1p``), as CSR.

    Cells with no counts stay all-zero.

    Parameters
    ----------
    X
        Counts or normalised values, cells x features.
    target_sum
        Total per cell after scaling.
    dtype
        Output dtype (float32; the arithmetic is float64 either way).
    """
    X = sp.csr_matrix(X, dtype=np.float64)
    total = np.asarray(X.sum(axis=1)).ravel()
    scale = np.divide(target_sum, total, out=np.zeros_like(total), where=total > 0)
    out = sp.csr_matrix(sp.diags(scale) @ X)
    np.log1p(out.data, out=out.data)
    out.eliminate_zeros()
    return out.astype(dtype)


def get_matrix(adata, kind: str = "any", *, layer: str | None = None, where: str = "adata",
               step: str = "this step", param: str = "layer", allow_binary: bool = True):
    """Get a matrix of the kind a step needs, or refuse with an error that says what to pass.

    Parameters
    ----------
    adata
        AnnData of one modality.
    kind
        ``"counts"``: raw counts (``layer`` if given, else ``.layers["counts"]``, else ``.X``), which
        must be in state ``"counts"`` (or ``"binary"`` when ``allow_binary``);
        ``"scaled"``: the same, also accepting normalised (not log) values, for steps that are
        defined on any scaled counts (TF-IDF, sums over cells);
        ``"log-normalised"``: log-normalised values (``layer``/``.X`` as they are when already
        log-normalised, otherwise ``log1p(normalize_total(1e4))`` computed on a copy);
        ``"any"``: ``layer`` (``.X`` for None) as it is.
    layer
        An explicit layer; None chooses by kind as above.
    where
        How the modality is named in messages, e.g. ``"mdata['atac']"``.
    step
        The step asking, for messages, e.g. ``"ScMVP (negative-binomial likelihood)"``.
    param
        The argument of that step that selects the layer, named in the error.
    allow_binary
        Whether 0/1 values are acceptable as counts.

    Returns
    -------
    tuple
        ``(matrix, name, state)``; ``name`` is e.g. ``"mdata['rna'].layers['counts']"``.

    Raises
    ------
    AttuneInputError
        When the matrix is missing or of the wrong kind; the message names the matrix, its state
        (and whether it was detected or given) and the argument to pass.
    """
    kind = {"lognorm": "log-normalised", "log": "log-normalised"}.get(kind, kind)
    if kind not in ("counts", "scaled", "log-normalised", "any"):
        raise AttuneInputError(f"kind={kind!r}; choose 'counts', 'scaled', 'log-normalised' or 'any'")
    if kind == "any":
        X = layer_matrix(adata, layer, where=where)
        return X, _xname(where, layer), matrix_state(adata, layer)
    if kind in ("counts", "scaled"):
        ok = COUNT_STATES if allow_binary else ("counts",)
        if kind == "scaled":
            ok = (*ok, "normalised")
        candidates = [layer] if layer is not None else (["counts"] if "counts" in adata.layers else []) + [None]
        seen = []
        for cand in candidates:
            X = layer_matrix(adata, cand, where=where)
            state = matrix_state(adata, cand)
            if state in ok:
                return X, _xname(where, cand), state
            seen.append(f"{_xname(where, cand)} holds {state} values")
        given = _record(adata).get("source") == "given"
        need = "raw counts" if kind == "counts" else "counts or normalised (not log) values"
        raise AttuneInputError(
            f"{step} needs {need}, but " + "; ".join(seen)
            + (" (as declared)" if given else " (detected)")
            + f". Pass {param}=<name of a layer with raw integer counts>, or, if the values really are "
            "counts, declare it with al.datasets.read(..., input_state='counts') or "
            "al.pp.set_input_state(adata, 'counts')")
    # log-normalised
    X = layer_matrix(adata, layer, where=where)
    state = matrix_state(adata, layer)
    if state == "log-normalised":
        return X, _xname(where, layer), state
    return lognormalize(X), f"log1p(normalize_total({_xname(where, layer)}))", "log-normalised"


def counts_matrix(adata, layer: str | None, where: str, *, kind: str = "counts", step: str = "this step"):
    """Counts (``kind="scaled"``: or normalised values; ``"any"``: as given) and the layer they came from.

    Parameters
    ----------
    adata
        AnnData of one modality.
    layer
        An explicit layer, or None to choose by input state (see :func:`get_matrix`).
    where
        How the modality is named in messages.
    kind
        ``"counts"``, ``"scaled"`` or ``"any"``.
    step
        The step asking, for messages.

    Returns
    -------
    tuple
        ``(matrix, layer)``; ``layer`` is None for ``.X``.
    """
    from ._utils import check_values

    X, name, _ = get_matrix(adata, kind, layer=layer, where=where, step=step)
    check_values(X, name=name)
    used = None if name.endswith(".X") else name.split("layers[")[-1].strip("]'\"")
    return X, used


def log_expression(adata, layer: str | None, where: str) -> np.ndarray:
    """Log-normalised expression as a dense float64 array (counts or normalised values log1p(CP10k) on the fly).

    Parameters
    ----------
    adata
        AnnData of the RNA modality.
    layer
        Layer to read (None: ``.X``).
    where
        How the modality is named in messages.
    """
    from ._utils import check_values

    X = layer_matrix(adata, layer, where=where)
    check_values(X, name=_xname(where, layer), allow_negative=True)
    X, _, _ = get_matrix(adata, "log-normalised", layer=layer, where=where)
    return (X.toarray() if sp.issparse(X) else np.asarray(X)).astype(np.float64)
