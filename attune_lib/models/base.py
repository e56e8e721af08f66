"""The contract every model of :mod:`attune_lib.models` follows (scvi-tools style).

* **Setup registry.** ``Model.setup_mudata(mdata, ...)`` validates the input and records where the data
  live in ``mdata.uns["_attune_lib_setup"][<model name>]`` (:func:`write_setup` / :func:`read_setup`).
  MuData set up by older versions (``uns["_attune_setup"]``, ``uns["scmvp_setup"]``) are still read.
* **State.** ``model.is_trained`` (bool), ``model.history`` (a :class:`pandas.DataFrame`, one row per epoch,
  indexed by ``epoch``), ``model.init_params`` (the constructor's arguments, JSON), ``model.device``.
* **Training.** One loop, :class:`attune_lib.models.Trainer`; its checkpoints carry a fingerprint of the
  model settings, the feature names and a digest of the training data (:func:`data_digest`), so a run
  is only resumed on the data and settings it was started with.
* **Persistence.** ``model.save(dir_path)`` writes one directory format, atomically (a temporary sibling
  directory renamed into place):

  ==================  =============================================================================
  ``attr.json``       format, model class, ``init_params``, setup, ``is_trained``, package versions,
                      model-specific settings
  ``var_names.json``  feature names per modality (``{"rna": [...], "atac": [...]}``)
  ``model.pt``        weights (``state_dict``) and model-specific tensors, readable with
                      ``torch.load(weights_only=True)``
  ``history.csv``     the training history
  ==================  =============================================================================

  ``Model.load(dir_path, mdata)`` reads and checks every file first (a damaged file is named in the
  error), validates ``mdata`` against the saved features, and only then registers the setup in ``mdata``.
  Directories written by earlier versions (``attune_lib.Attune/1``, ``attune_lib.ScMVP/1``) are read too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .._utils import AttuneInputError

__all__ = [
    "ATTR_FILE",
    "FEATURES_FILE",
    "HISTORY_FILE",
    "SAVE_FORMAT",
    "SETUP_KEY",
    "WEIGHTS_FILE",
    "BaseModel",
    "SavedModel",
    "data_digest",
    "names_digest",
    "read_saved",
    "read_setup",
    "write_setup",
]

SETUP_KEY = "_attune_lib_setup"
_LEGACY_SETUP_KEYS = {"Attune": "_attune_setup", "ScMVP": "scmvp_setup"}
SAVE_FORMAT = "attune_lib.model/2"
ATTR_FILE = "attr.json"
FEATURES_FILE = "var_names.json"
WEIGHTS_FILE = "model.pt"
HISTORY_FILE = "history.csv"


# ------------------------------------------------------------------------------------- setup registry
def write_setup(mdata, model: str, setup: Mapping[str, Any]) -> None:
    """Record a model's setup in ``mdata.uns["_attune_lib_setup"][model]``.

    Parameters
    ----------
    mdata
        The MuData being set up.
    model
        Model class name (``"Attune"``, ``"ScMVP"``, ...).
    setup
        JSON-compatible settings; None values are left out, so the MuData stays writable to ``.h5mu``
        (:func:`read_setup` gives None for a missing key).
    """
    registry = dict(mdata.uns.get(SETUP_KEY, {}))
    registry[model] = {k: v for k, v in setup.items() if v is not None}
    mdata.uns[SETUP_KEY] = registry


def read_setup(mdata, model: str) -> dict[str, Any] | None:
    """The setup recorded by :func:`write_setup` (or by an older version under its legacy key).

    Parameters
    ----------
    mdata
        A MuData.
    model
        Model class name.

    Returns
    -------
    A dict (empty strings, the legacy encoding of None, are returned as None), or None when ``mdata``
    is not set up for ``model``.
    """
    uns = getattr(mdata, "uns", None)
    if uns is None:
        return None
    registry = uns.get(SETUP_KEY, {})
    if model in registry:
        found = registry[model]
    elif _LEGACY_SETUP_KEYS.get(model) in uns:
        found = uns[_LEGACY_SETUP_KEYS[model]]
    else:
        return None
    return {k: (None if isinstance(v, str) and v == "" else _plain(v)) for k, v in dict(found).items()}


def _plain(v):
    """numpy scalars/arrays read back from .h5mu -> Python values."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


# ---------------------------------------------------------------------------------------- digests
def names_digest(names: Iterable) -> str:
    """Order-sensitive digest of feature names (for checkpoint fingerprints).

    Parameters
    ----------
    names
        Feature names.
    """
    h = hashlib.blake2b(digest_size=12)
    for n in names:
        h.update(str(n).encode())
        h.update(b"\0")
    return h.hexdigest()


def data_digest(*matrices) -> str:
    """Digest of the values of sparse or dense matrices (shape, sparsity pattern and values).

    Two datasets with the same shape but other values, or the same values in another cell order,
    give different digests; used to refuse resuming a checkpoint written on other data.

    Parameters
    ----------
    *matrices
        scipy sparse matrices or array-likes.
    """
    h = hashlib.blake2b(digest_size=12)
    for X in matrices:
        if sp.issparse(X):
            X = X.tocsr()
            if not X.has_canonical_format:
                X = X.copy()
                X.sum_duplicates()
            h.update(f"csr{X.shape}".encode())
            for arr in (X.indptr, X.indices, X.data):
                h.update(np.ascontiguousarray(arr).view(np.uint8))
        else:
            arr = np.ascontiguousarray(np.asarray(X))
            h.update(f"dense{arr.shape}{arr.dtype}".encode())
            h.update(arr.view(np.uint8))
    return h.hexdigest()


# ------------------------------------------------------------------------------------ saved models
class SavedModel:
    """The validated contents of a saved model directory (see :func:`read_saved`).

    Parameters
    ----------
    path
        The directory.
    attrs
        Contents of ``attr.json``.
    var_names
        Feature names per modality (``var_names.json``).
    weights
        Contents of ``model.pt``: ``{"state_dict": ..., "extra": {...}}``.
    history
        The training history.
    """

    def __init__(self, path: Path, attrs: dict, var_names: dict[str, pd.Index], weights: dict,
                 history: pd.DataFrame):
        self.path = path
        self.attrs = attrs
        self.var_names = var_names
        self.weights = weights
        self.history = history

    @property
    def init_params(self) -> dict[str, Any]:
        return dict(self.attrs["init_params"])

    @property
    def setup(self) -> dict[str, Any]:
        return dict(self.attrs.get("setup") or {})

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.attrs.get("extra") or {})


def read_saved(dir_path: str | os.PathLike, model: str) -> SavedModel:
    """Read and check every file of a saved model directory; errors name the damaged file.

    Parameters
    ----------
    dir_path
        Directory written by ``save``.
    model
        Expected model class name.
    """
    path = Path(dir_path)
    attr_file = path / ATTR_FILE
    legacy = _read_legacy(path, model)
    if legacy is not None:
        return legacy
    if not path.is_dir() or not attr_file.is_file():
        raise AttuneInputError(f"{path} is not a saved {model} model ({ATTR_FILE} not found)")
    try:
        attrs = json.loads(attr_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AttuneInputError(f"{attr_file} is damaged and cannot be read ({err})") from err
    if not isinstance(attrs, dict) or attrs.get("format") != SAVE_FORMAT:
        found = attrs.get("format") if isinstance(attrs, dict) else type(attrs).__name__
        raise AttuneInputError(f"{attr_file}: unknown format {found!r}, expected {SAVE_FORMAT!r}")
    if attrs.get("model") != model:
        raise AttuneInputError(f"{path} holds a saved {attrs.get('model')} model, not {model}; "
                               f"load it with {attrs.get('model')}.load")
    if "init_params" not in attrs:
        raise AttuneInputError(f"{attr_file} is damaged: no 'init_params'")
    feat_file = path / FEATURES_FILE
    try:
        raw = json.loads(feat_file.read_text())
        var_names = {str(k): pd.Index([str(v) for v in vals]) for k, vals in raw.items()}
    except FileNotFoundError as err:
        raise AttuneInputError(f"{feat_file} not found; the saved model in {path} is incomplete") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError) as err:
        raise AttuneInputError(f"{feat_file} is damaged and cannot be read ({err})") from err
    weights_file = path / WEIGHTS_FILE
    if not weights_file.is_file():
        raise AttuneInputError(f"{weights_file} not found; the saved model in {path} is incomplete")
    weights = _load_weights(weights_file)
    if not isinstance(weights, dict) or "state_dict" not in weights:
        raise AttuneInputError(f"{weights_file} is damaged: no 'state_dict'")
    hist_file = path / HISTORY_FILE
    history = pd.DataFrame()
    if hist_file.is_file():
        try:
            history = pd.read_csv(hist_file)
        except pd.errors.EmptyDataError:
            history = pd.DataFrame()
        except (OSError, ValueError, pd.errors.ParserError) as err:
            raise AttuneInputError(f"{hist_file} is damaged and cannot be read ({err})") from err
        if "epoch" in history:
            history = history.set_index("epoch")
    return SavedModel(path, attrs, var_names, weights, history)


def _load_weights(file: Path):
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, 0-byte file, foreign pickle: name the file
        raise AttuneInputError(f"{file} is damaged and cannot be read "
                               f"({type(err).__name__}: {err or 'empty file'})") from err


def _read_legacy(path: Path, model: str) -> SavedModel | None:
    """Directories written by earlier versions (``attune_lib.Attune/1``, ``attune_lib.ScMVP/1``), or None."""
    attr_file, weights_file = path / ATTR_FILE, path / WEIGHTS_FILE
    if model == "Attune" and attr_file.is_file():
        try:
            attrs = json.loads(attr_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None  # reported by read_saved
        if not isinstance(attrs, dict) or attrs.get("format") != "attune_lib.Attune/1":
            return None
        if not weights_file.is_file():
            raise AttuneInputError(f"{weights_file} not found; the saved model in {path} is incomplete")
        state = _load_weights(weights_file)
        hist_file = path / HISTORY_FILE
        history = pd.read_csv(hist_file, index_col="epoch") if hist_file.is_file() else pd.DataFrame()
        new = {"format": SAVE_FORMAT, "model": model, "init_params": attrs["init_params"],
               "setup": attrs.get("setup", {}), "is_trained": attrs.get("is_trained", False), "extra": {}}
        names = {m: pd.Index([str(v) for v in attrs["var_names"][m]]) for m in ("rna", "atac")}
        return SavedModel(path, new, names, {"state_dict": state, "extra": {}}, history)
    if model == "ScMVP" and not attr_file.is_file() and weights_file.is_file():
        payload = _load_weights(weights_file)
        if not isinstance(payload, dict) or payload.get("format") != "attune_lib.ScMVP/1":
            return None
        reg = payload["registry"]
        setup = {k: (reg.get(k) or None) for k in ("rna_key", "atac_key", "rna_layer", "atac_layer",
                                                    "atac_transform")}
        hist = pd.DataFrame(payload.get("history") or {})
        if len(hist):
            hist = hist.drop(columns=["epoch"], errors="ignore").rename(columns={"seconds": "time_s"})
            hist.index = pd.RangeIndex(1, len(hist) + 1, name="epoch")
        new = {"format": SAVE_FORMAT, "model": model, "init_params": payload["init_kwargs"], "setup": setup,
               "is_trained": payload.get("is_trained", False), "extra": {}}
        names = {"rna": pd.Index(reg["gene_names"]), "atac": pd.Index(reg["peak_names"])}
        return SavedModel(path, new, names, {"state_dict": payload["state_dict"], "extra": {"idf": payload["idf"]}},
                          hist)
    return None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("attune-companion")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        pkg = "unknown"
    import platform

    return {"attune_lib": pkg, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _write_dir(path: Path, overwrite: bool, write) -> None:
    """Call ``write(tmp_dir)`` on a temporary sibling directory, fsync it and rename it to ``path``."""
    if path.exists() and not overwrite:
        raise AttuneInputError(f"{path} already exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        write(tmp)
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ------------------------------------------------------------------------------------------- model
class BaseModel:
    """Base class of the user-facing models: state, history, device, save/load.

    Subclasses set ``self.module`` (a :class:`torch.nn.Module`), ``self.init_params`` (JSON dict),
    ``self._var_names`` (feature names per modality), ``self._history`` and ``self._is_trained``, and
    implement :meth:`_from_saved` (build the model from a :class:`SavedModel` and validate ``mdata``
    without writing to it). Optional hooks: :meth:`_setup_to_save`, :meth:`_extra_attrs`,
    :meth:`_extra_tensors`, :meth:`_save_files`, :meth:`_register_loaded`.
    """

    module: torch.nn.Module
    init_params: dict[str, Any]
    _var_names: dict[str, pd.Index]
    _history: pd.DataFrame
    _is_trained: bool = False

    @classmethod
    def _model_name(cls) -> str:
        return cls.__name__

    # ----------------------------------------------------------------------------------- state
    @property
    def is_trained(self) -> bool:
        """Whether at least one training epoch ran (or a trained model was loaded)."""
        return bool(self._is_trained)

    @is_trained.setter
    def is_trained(self, value: bool) -> None:
        self._is_trained = bool(value)

    @property
    def history(self) -> pd.DataFrame:
        """Per-epoch training history (losses, ``val_*`` losses, ``lr``, ``step``, ``time_s``), indexed by epoch."""
        return self._history

    @history.setter
    def history(self, value) -> None:
        self._history = value if isinstance(value, pd.DataFrame) else pd.DataFrame(value)

    @property
    def device(self) -> torch.device:
        """Device of the model's weights."""
        return next(self.module.parameters()).device

    @property
    def var_names(self) -> dict[str, pd.Index]:
        """Feature names (model order) per modality."""
        return dict(self._var_names)

    # ------------------------------------------------------------------------------- registry
    @classmethod
    def _register(cls, mdata, setup: Mapping[str, Any]) -> None:
        write_setup(mdata, cls._model_name(), setup)

    @classmethod
    def _registered(cls, mdata) -> dict[str, Any]:
        setup = read_setup(mdata, cls._model_name())
        if setup is None:
            raise AttuneInputError(
                f"mdata.uns[{SETUP_KEY!r}][{cls._model_name()!r}] not found; "
                f"call {cls._model_name()}.setup_mudata(mdata, ...) first")
        return setup

    # ------------------------------------------------------------------------------ save hooks
    def _setup_to_save(self) -> dict[str, Any]:
        return dict(getattr(self, "_setup", {}) or {})

    def _extra_attrs(self) -> dict[str, Any]:
        return {}

    def _extra_tensors(self) -> dict[str, Any]:
        return {}

    def _save_files(self, tmp: Path) -> None:
        """Write model-specific extra files into the (temporary) save directory."""

    # ------------------------------------------------------------------------------- save/load
    def save(self, dir_path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save the model to a directory (``attr.json``, ``var_names.json``, ``model.pt``, ``history.csv``).

        The files are written to a temporary sibling directory that is then renamed to ``dir_path``,
        so an interrupted save never leaves a half-written model.

        Parameters
        ----------
        dir_path
            Output directory.
        overwrite
            Replace an existing directory.
        """
        path = Path(dir_path)
        attrs = {
            "format": SAVE_FORMAT, "model": self._model_name(), "init_params": self.init_params,
            "setup": self._setup_to_save(), "is_trained": self.is_trained, "versions": _versions(),
            "extra": self._extra_attrs(),
        }
        feats = {m: [str(v) for v in names] for m, names in self._var_names.items()}
        weights = {"state_dict": {k: v.detach().cpu() for k, v in self.module.state_dict().items()},
                   "extra": self._extra_tensors()}
        hist = self.history

        def write(tmp: Path) -> None:
            torch.save(weights, tmp / WEIGHTS_FILE)
            (tmp / ATTR_FILE).write_text(json.dumps(attrs, indent=1, default=_json_default))
            (tmp / FEATURES_FILE).write_text(json.dumps(feats, default=_json_default))
            h = hist.copy()
            if h.index.name is None:
                h.index.name = "epoch"
            h.to_csv(tmp / HISTORY_FILE)
            self._save_files(tmp)

        _write_dir(path, overwrite, write)

    @classmethod
    def load(cls, dir_path: str | os.PathLike, mdata, *, device: str = "auto"):
        """Load a model saved with :meth:`save` onto ``mdata`` (same features, any order).

        Every file is read and checked, and ``mdata`` validated against the saved features, before
        anything is written to ``mdata``; only then is the saved setup registered in ``mdata`` (when it
        has none for this model).

        Parameters
        ----------
        dir_path
            Directory written by :meth:`save`.
        mdata
            MuData holding the saved features (any order).
        device
            ``"auto"``, ``"cpu"`` or ``"cuda"``.
        """
        from .._utils import resolve_device

        dev = resolve_device(device)
        saved = read_saved(dir_path, cls._model_name())
        model = cls._from_saved(saved, mdata)
        model.module.to(dev).eval()
        model.is_trained = bool(saved.attrs.get("is_trained", False))
        model.history = saved.history
        model._register_loaded(saved, mdata)
        return model

    @classmethod
    def _from_saved(cls, saved: SavedModel, mdata):  # pragma: no cover - abstract
        raise NotImplementedError

    def _register_loaded(self, saved: SavedModel, mdata) -> None:
        """After a successful load: record the saved setup in ``mdata`` when it has none."""
        if mdata is not None and read_setup(mdata, self._model_name()) is None:
            self._register(mdata, saved.setup)

    @staticmethod
    def _load_state(module: torch.nn.Module, saved: SavedModel) -> None:
        try:
            module.load_state_dict(saved.weights["state_dict"])
        except (RuntimeError, KeyError) as err:
            raise AttuneInputError(f"{saved.path / WEIGHTS_FILE} does not fit the saved settings "
                                   f"in {ATTR_FILE} ({err})") from err
