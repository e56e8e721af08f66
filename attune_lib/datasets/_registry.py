"""One entry point for notebooks: ``load_dataset(name)`` routes a dataset name to its loader."""

from __future__ import annotations

from .._utils import AttuneInputError

__all__ = ["load_dataset", "list_datasets", "available_datasets"]

# name -> (description, loader factory); simulator presets need no network.
_SIMULATED = {
    "simulated": "pbmc",
    "simulated_pbmc": "pbmc",
    "simulated_skin": "skin",
    "simulated_cortex": "cortex",
}


#: Registered real datasets that :func:`load_dataset` (and the runner's ``--dataset``) can open as a MuData.
#: The other manifests are resources (annotations, motifs, genomes, PCHi-C, released scores).
_REAL = ("pbmc1k_muon", "pbmc300_scpoem", "pbmc10k_attune", "pbmc10k_glue", "share_tac", "cortex_trevino")


def list_datasets():
    """Every registered dataset: one row per manifest, plus the simulator's presets.

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``title``, ``kind``, ``organism``, ``genome``, ``n_files``, ``cached`` (files
        present in the cache; presence and size only, :func:`~attune_lib.datasets.fetch` verifies checksums)
        and ``loadable``: whether :func:`load_dataset` and ``attune-companion run --dataset`` accept the name
        (resources such as annotations or motif tables are not loadable as a MuData).
    """
    import pandas as pd

    from ._fetch import cache_table

    df = cache_table()
    presets = pd.DataFrame([{"name": name, "title": f"Simulated paired multiome, {preset} preset", "kind": "simulator",
                             "organism": "synthetic", "genome": None, "n_files": 0, "cached": True}
                            for name, preset in _SIMULATED.items() if name != "simulated"])
    df = pd.concat([df, presets], ignore_index=True) if len(presets) else df
    df["loadable"] = df["name"].isin([*_SIMULATED, *_REAL])
    return df


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset` (deprecated: use ``list_datasets().query("loadable")``)."""
    import warnings

    warnings.warn("available_datasets() is deprecated; use list_datasets(), whose 'loadable' column marks the "
                  "names load_dataset accepts", FutureWarning, stacklevel=2)
    return _loadable()


def _loadable() -> list[str]:
    return [*_SIMULATED, *_REAL]


def load_dataset(name: str = "simulated", *, preset: str | None = None, small: bool = True, seed: int = 0,
                 **kwargs):
    """Load a dataset by name as a MuData with ``mdata["rna"]`` and ``mdata["atac"]``.

    Parameters
    ----------
    name
        ``"simulated"`` (the embedded default; ``preset`` picks ``pbmc``/``skin``/``cortex``),
        ``"simulated_<preset>"``, or a manifest name such as ``"pbmc1k_muon"`` or ``"pbmc10k_attune"``
        (resolved through the data cache; offline and uncached, the error names the file, its URL and
        where to put it), or the path of the user's own data in any layout
        :func:`attune_lib.datasets.read` recognises (a 10x folder, ``.h5``, ``.h5mu``, ...).
    small
        For the simulator: the CI-sized variant.
    seed
        For the simulator: its random seed.
    **kwargs
        Passed to the loader (e.g. ``n_cells`` for the simulator, ``genome`` for a path).
    preset
        Simulator preset for ``name="simulated"`` (``pbmc``, ``skin``, ``cortex``; None: ``pbmc``).
    """
    from . import _real
    from ._simulate import simulate_multiome

    if name in _SIMULATED:
        return simulate_multiome(preset=preset or _SIMULATED[name], size="small" if small else "default",
                                 seed=seed, **kwargs)
    loaders = {
        "pbmc1k_muon": lambda: _real.pbmc1k(**kwargs),
        "pbmc300_scpoem": lambda: _real.pbmc300(**kwargs),
        "pbmc10k_attune": lambda: _real.pbmc10k(source="attune", **kwargs),
        "pbmc10k_glue": lambda: _real.pbmc10k(source="glue", **kwargs),
        "share_tac": lambda: _real.share_tac(**kwargs),
        "cortex_trevino": lambda: _real.cortex(**kwargs),
    }
    if name not in loaders:
        from pathlib import Path

        if Path(str(name)).expanduser().exists():  # the user's own data: any layout datasets.read knows
            from ._read import read

            return read(name, **kwargs)
        raise AttuneInputError(f"dataset={name!r} is neither a known dataset nor an existing path; choose one of "
                               f"{_loadable()} or pass a file/folder (see attune_lib.datasets.read)")
    return loaders[name]()
