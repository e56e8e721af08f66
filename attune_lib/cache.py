"""A disk cache of finished work: trained models and expensive tables.

An entry is keyed by what produced it: the dataset, the recipe tier, the seed, the stage's own
settings (e.g. its recipe) and a code fingerprint (the package version and a hash of the source of
the library's computing layers, ``datasets``, ``pp``, ``metrics``, ``models`` and ``tl``; plots and
the command line are left out, so restyling a figure keeps the cache). Change any of them and the
entry is missed and recomputed.

Where: ``$ATTUNE_CACHE_DIR`` when set, else ``<results_dir>/cache``. Each entry is a folder
``<cache>/<stage>/<key digest>/`` holding ``entry.json`` (the full key) and the payload. It is
written in a temporary sibling folder that is renamed into place only when complete, so an
interrupted run never leaves a half-written entry; the next run simply recomputes it.

``force=True`` (``attune-companion run --force``, or ``ATTUNE_CACHE_FORCE=1``) recomputes and
replaces entries.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import uuid
from collections.abc import Callable, Mapping
from functools import cache as _memo
from pathlib import Path
from typing import Any

from ._utils import AttuneInputError

__all__ = ["Cache", "code_fingerprint", "cache_root"]

ENTRY_FILE = "entry.json"
#: the parts of the package whose source enters the fingerprint
FINGERPRINT_PARTS = ("_utils.py", "_access.py", "_genomics.py", "datasets", "pp", "metrics", "models", "tl")


@_memo
def _fingerprint(parts: tuple[str, ...]) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        __version__ = version("attune-companion")
    except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        __version__ = "0+unknown"
    root = Path(__file__).resolve().parent
    h = hashlib.sha256(__version__.encode())
    for part in parts:
        p = root / part
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        for f in files:
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return f"{__version__}-{h.hexdigest()[:12]}"


def code_fingerprint(parts: tuple[str, ...] = FINGERPRINT_PARTS) -> str:
    """The package version and a hash of the source files of ``parts`` (``"0.1.0-3f2a..."``).

    Parameters
    ----------
    parts
        Files or sub-packages of ``attune_lib`` to hash (default: the computing layers).
    """
    return _fingerprint(tuple(parts))


def cache_root(results_dir: str | os.PathLike = "results") -> Path:
    """The cache folder: ``$ATTUNE_CACHE_DIR`` when set, else ``<results_dir>/cache``.

    Parameters
    ----------
    results_dir
        The results folder of the run.
    """
    env = os.environ.get("ATTUNE_CACHE_DIR")
    return Path(env).expanduser() if env else Path(results_dir) / "cache"


def _env_force() -> bool:
    return os.environ.get("ATTUNE_CACHE_FORCE", "").strip().lower() in ("1", "true", "yes")


def _check_name(stage: str) -> str:
    if not stage or not all(c.isalnum() or c in "-_." for c in stage) or stage.startswith("."):
        raise AttuneInputError(f"cache stage name must be letters, digits, '-', '_' or '.', got {stage!r}")
    return stage


class Cache:
    """Finished work of one notebook run, on disk: ``get_or_compute`` for tables, ``model`` for models.

    Parameters
    ----------
    results_dir
        Results folder; the cache lives in ``<results_dir>/cache`` unless ``ATTUNE_CACHE_DIR`` is set.
    dataset, tier, seed
        Part of every key.
    force
        Recompute every entry and replace it (also when ``ATTUNE_CACHE_FORCE=1``).
    enabled
        False: compute everything and write nothing.
    root
        Explicit cache folder (overrides ``results_dir`` and ``ATTUNE_CACHE_DIR``).

    Examples
    --------
    >>> cache = Cache("results", dataset="simulated", tier="ci", seed=0)  # doctest: +SKIP
    >>> df = cache.get_or_compute("feature_sweep", lambda: sweep(...), key=settings)  # doctest: +SKIP
    """

    def __init__(self, results_dir: str | os.PathLike = "results", *, dataset: str, tier: str, seed: int,
                 force: bool = False, enabled: bool = True, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else cache_root(results_dir)
        self.base_key = {"dataset": str(dataset), "tier": str(tier), "seed": int(seed)}
        self.force = bool(force) or _env_force()
        self.enabled = bool(enabled)
        self.hits: list[str] = []
        self.misses: list[str] = []

    # ---------------------------------------------------------------------------------------------
    def key(self, stage: str, key: Any = None) -> dict[str, Any]:
        """The full key of ``stage``: dataset, tier, seed, the stage's settings and the code fingerprint.

        Parameters
        ----------
        stage
            Stage name (a folder name).
        key
            The stage's own settings (JSON-like; tuples and lists are the same).
        """
        return {**self.base_key, "stage": _check_name(stage), "settings": _jsonable(key),
                "code": code_fingerprint()}

    def path(self, stage: str, key: Any = None) -> Path:
        """The entry folder of ``stage`` under ``key`` (it may not exist).

        Parameters
        ----------
        stage
            Stage name.
        key
            The stage's own settings.
        """
        full = self.key(stage, key)
        digest = hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()[:20]
        return self.root / stage / digest

    def has(self, stage: str, key: Any = None) -> bool:
        """Whether a complete entry exists for ``stage`` under ``key``.

        Parameters
        ----------
        stage
            Stage name.
        key
            The stage's own settings.
        """
        return (self.path(stage, key) / ENTRY_FILE).is_file()

    def get_or_compute(self, stage: str, compute: Callable[[], Any], *, key: Any = None,
                       save: Callable[[Any, Path], None] | None = None,
                       load: Callable[[Path], Any] | None = None) -> Any:
        """Load the entry of ``stage`` if it exists, else compute it, store it and return it.

        Parameters
        ----------
        stage
            Stage name, e.g. ``"feature_sweep"``.
        compute
            Called without arguments on a miss.
        key
            The stage's own settings (its recipe); part of the key.
        save, load
            ``save(value, folder)`` / ``load(folder)``; default: one pickle file (pandas DataFrames keep
            their ``attrs``).
        """
        save = save or _pickle_save
        load = load or _pickle_load
        if not self.enabled:
            return compute()
        entry = self.path(stage, key)
        if not self.force and (entry / ENTRY_FILE).is_file():
            try:
                value = load(entry)
            except Exception as exc:  # an unreadable entry (e.g. another library version) is recomputed
                import logging

                logging.getLogger("attune_lib").warning("cache entry %s unreadable (%s); recomputing", entry, exc)
            else:
                self.hits.append(stage)
                return value
        value = compute()
        self._write(entry, self.key(stage, key), lambda tmp: save(value, tmp))
        self.misses.append(stage)
        return value

    def model(self, stage: str, model_cls, mdata, build: Callable[[], Any], train: Callable[[Any], None], *,
              key: Any = None, device: str = "auto"):
        """A trained model: loaded with ``model_cls.load`` on a hit, else built, trained and saved.

        Parameters
        ----------
        stage
            Stage name, e.g. ``"attune"``.
        model_cls
            The model class (``Attune``, ``ScMVP``, ...); its ``save``/``load`` define the format.
        mdata
            The data the model is loaded onto (its features are checked by ``load``).
        build
            Returns a new, untrained model.
        train
            Trains it in place (its recipe belongs in ``key``).
        key
            The training settings; part of the key.
        device
            Passed to ``model_cls.load``.
        """
        entry = self.path(stage, key)
        if self.enabled and not self.force and (entry / ENTRY_FILE).is_file():
            try:
                model = model_cls.load(entry / "model", mdata, device=device)
            except Exception as exc:
                import logging

                logging.getLogger("attune_lib").warning("cache entry %s unreadable (%s); retraining", entry, exc)
            else:
                self.hits.append(stage)
                return model
        model = build()
        train(model)
        if self.enabled:
            self._write(entry, self.key(stage, key), lambda tmp: model.save(tmp / "model"))
            self.misses.append(stage)
        return model

    # ---------------------------------------------------------------------------------------------
    def _write(self, entry: Path, full_key: Mapping, write_payload: Callable[[Path], None]) -> None:
        """Write into a temporary sibling, then rename into place: never a half-written entry."""
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.parent / f".tmp-{entry.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            write_payload(tmp)
            (tmp / ENTRY_FILE).write_text(json.dumps(full_key, indent=1, sort_keys=True))
            if entry.exists():  # force, or an unreadable old entry: replace it
                old = entry.parent / f".old-{entry.name}-{uuid.uuid4().hex[:8]}"
                os.replace(entry, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, entry)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def summary(self) -> str:
        """One line: which stages came from the cache and which were computed."""
        hit = ", ".join(self.hits) or "none"
        miss = ", ".join(self.misses) or "none"
        return f"cache {self.root}: reused {hit}; computed {miss}"


def _jsonable(value: Any) -> Any:
    """JSON form of a key (tuples as lists, keys as strings, anything else by repr)."""
    return json.loads(json.dumps(value, sort_keys=True, default=repr))


def _pickle_save(value: Any, folder: Path) -> None:
    with open(folder / "value.pkl", "wb") as fh:
        pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)


def _pickle_load(folder: Path) -> Any:
    with open(folder / "value.pkl", "rb") as fh:
        return pickle.load(fh)
