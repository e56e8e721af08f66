"""Training recipes: the named tiers every figure notebook reads its settings from.

Three tiers, one registry:

``ci``
    The test-suite tier: tiny data and a few epochs, so every notebook runs end to end in seconds.
    Its models are far from converged; its figures are marked "CI smoke run — not a result".
``standard``
    What ``make figures`` runs: the simulator's small size (600 cells) with every Attune model
    trained to convergence (the step budget with early stopping on held-out cells of
    :data:`attune_lib.models.SMALL_DATA_SCHEDULE`), fewer seeds and smaller grids than the paper.
``paper``
    The paper's settings (``make figures-paper``): the simulator's default size, the paper's
    epochs, learning rates, seeds and grids.

A notebook asks for its settings with ``recipe(notebook, tier)``; nothing about training (epochs,
learning rate, batch size, seeds, grids, simulator size) lives in the notebooks themselves.

>>> from attune_lib.recipes import recipe
>>> recipe("02b_feature_and_dimension", "ci")["attune"]["lr"]
0.001
"""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from typing import Any

from ._utils import AttuneInputError

__all__ = ["TIERS", "ATTUNE_TRAINING", "recipe", "resolve_tier", "list_recipes", "recipe_digest"]

#: The tiers, cheapest first.
TIERS: tuple[str, ...] = ("ci", "standard", "paper")

#: Attune contrastive pretraining per tier, shared by every notebook (one learning rate per tier).
#: ``standard``: ``schedule="auto"`` picks the step budget with early stopping on small data, the
#: paper's 20 epochs on large data. ``paper``: the paper's 20 epochs at lr 1e-4 -> 1e-6.
ATTUNE_TRAINING: dict[str, dict[str, Any]] = {
    "ci": {"max_epochs": 3, "batch_size": 64, "lr": 1e-3, "lr_end": 1e-5},
    "standard": {"schedule": "auto", "batch_size": 64},
    "paper": {"schedule": "paper", "batch_size": 128},
}

_SIM = {  # simulator size per tier: keyword arguments of load_dataset for the simulator
    "ci": {"small": True},
    "standard": {"small": True},
    "paper": {"small": False},
}


def _attune(tier: str, **over) -> dict[str, Any]:
    return {**ATTUNE_TRAINING[tier], **over}


def _sweep_training(tier: str) -> dict[str, Any]:
    """``max_epochs`` / ``attune_options`` as the sweeps and the benchmark take them."""
    t = dict(ATTUNE_TRAINING[tier])
    max_epochs = t.pop("max_epochs", None)
    options = {k: t.pop(k) for k in ("batch_size", "lr") if k in t}
    return {"max_epochs": max_epochs, "attune_options": {**options, "train_kwargs": t}}


#: notebook stem -> tier -> settings
_RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "00_data_tour": {
        tier: {"simulator": _SIM[tier], "n_top_genes": 2000, "n_comps": 30} for tier in TIERS
    },
    "02a_integration_benchmark": {
        "ci": {"simulator": {"small": True, "n_cells": 300, "n_genes": 120, "n_peaks": 600},
               "methods": ("attune", "pca_lsi", "cca"), "seeds": 2,
               "max_epochs": {"attune": 6, "multivi": 10, "glue": 5, "scmvp": 3},
               "method_options": {"attune": {"batch_size": 32, "lr": 1e-3}}},
        "standard": {"simulator": _SIM["standard"], "methods": ("attune", "pca_lsi", "cca", "scmvp"),
                     "seeds": 3, "max_epochs": {"attune": None, "scmvp": 15},
                     "method_options": {"attune": _sweep_training("standard")["attune_options"]}},
        "paper": {"simulator": _SIM["paper"], "methods": ("attune", "pca_lsi", "cca", "multivi", "glue", "scmvp"),
                  "seeds": 5, "max_epochs": None, "method_options": {}},
    },
    "02b_feature_and_dimension": {
        "ci": {"simulator": {"small": True, "n_cells": 240, "n_genes": 120, "n_peaks": 600},
               **_sweep_training("ci"), "seeds": 1,
               "gene_grid": (50, 100), "peak_grid": (150, None), "dims": (16, 128)},
        "standard": {"simulator": _SIM["standard"], **_sweep_training("standard"), "seeds": 2,
                     "gene_grid": (100, 285), "peak_grid": (1000, None), "dims": (32, 128)},
        "paper": {"simulator": _SIM["paper"], **_sweep_training("paper"), "seeds": 5,
                  "gene_grid": (250, 500, 1000), "peak_grid": (2500, 5000, None), "dims": (32, 64, 128, 256)},
    },
    "02c_prediction": {
        "ci": {"simulator": _SIM["ci"], "n_splits": 2, "pretrain_epochs": 10, "pretrain_lr": 1e-3,
               "pretrain_lr_end": 1e-5, "pretrain_batch_size": 64, "finetune_epochs": 20},
        "standard": {"simulator": _SIM["standard"], "n_splits": 3, "pretrain_epochs": 40, "pretrain_lr": 1e-3,
                     "pretrain_lr_end": 1e-5, "pretrain_batch_size": 64, "finetune_epochs": 40},
        "paper": {"simulator": _SIM["paper"], "n_splits": 5, "pretrain_epochs": 20, "pretrain_lr": 1e-4,
                  "pretrain_lr_end": 1e-6, "pretrain_batch_size": 128, "finetune_epochs": 40},
    },
    "03a_regulatory": {
        "ci": {"simulator": _SIM["ci"], "attune": _attune("ci"), "transformer_epochs": 3,
               "transformer_batch_size": 32, "transformer_lr": 1e-3, "dpag_min_peaks": 8, "glue_epochs": 10},
        "standard": {"simulator": _SIM["standard"], "attune": _attune("standard"), "transformer_epochs": 5,
                     "transformer_batch_size": 32, "transformer_lr": 1e-3, "dpag_min_peaks": 8,
                     "glue_epochs": 30},
        "paper": {"simulator": _SIM["paper"], "attune": _attune("paper"), "transformer_epochs": 5,
                  "transformer_batch_size": 4, "transformer_lr": 1e-4, "dpag_min_peaks": 10, "glue_epochs": 100},
    },
    "03b_chromatin_potential": {
        "ci": {"simulator": _SIM["ci"], "attune": _attune("ci"), "prediction_epochs": 15,
               "prediction_batch_size": 64, "topic_max_iter": 30},
        "standard": {"simulator": _SIM["standard"], "attune": _attune("standard"), "prediction_epochs": 50,
                     "prediction_batch_size": 64, "topic_max_iter": 100},
        "paper": {"simulator": _SIM["paper"], "attune": _attune("paper"), "prediction_epochs": 50,
                  "prediction_batch_size": 128, "topic_max_iter": 100},
    },
    "04_gene_regulation_shift": {
        "ci": {"simulator": _SIM["ci"], "attune": _attune("ci"), "transformer_epochs": 1,
               "transformer_cells": 150},
        "standard": {"simulator": _SIM["standard"], "attune": _attune("standard"), "transformer_epochs": 3,
                     "transformer_cells": None},
        "paper": {"simulator": _SIM["paper"], "attune": _attune("paper"), "transformer_epochs": 5,
                  "transformer_cells": None},
    },
    "05_modality_embeddings": {
        "ci": {"simulator": _SIM["ci"], "attune": _attune("ci"), "max_heatmap_cells": 600},
        "standard": {"simulator": _SIM["standard"], "attune": _attune("standard"), "max_heatmap_cells": 600},
        "paper": {"simulator": _SIM["paper"], "attune": _attune("paper"), "max_heatmap_cells": 1500},
    },
    "07_scmvp": {
        "ci": {"simulator": _SIM["ci"], "batch_size": 64,
               "schedule": {"pretrain_epochs": (3, 3), "max_epochs": 8, "warmup_epochs": 3}},
        "standard": {"simulator": _SIM["standard"], "batch_size": 64,
                     "schedule": {"pretrain_epochs": (10, 15), "max_epochs": 15, "warmup_epochs": 5}},
        "paper": {"simulator": _SIM["paper"], "batch_size": 64,
                  "schedule": {"pretrain_epochs": (10, 15), "max_epochs": 15, "warmup_epochs": 5}},
    },
    "S9_reference_mapping": {
        "ci": {"simulator": {"small": True, "n_cells": 400, "n_genes": 150, "n_peaks": 800},
               "max_epochs": 8, "attune_options": {"batch_size": 32, "lr": 1e-3}, "holdout_types": ("CD14 Mono",)},
        "standard": {"simulator": _SIM["standard"], **_sweep_training("standard"),
                     "holdout_types": ("CD14 Mono", "NK")},
        "paper": {"simulator": _SIM["paper"], **_sweep_training("paper"),
                  "holdout_types": ("CD14 Mono", "CD16 Mono", "NK")},
    },
}


def resolve_tier(tier: str | None = None, *, small: bool | None = None) -> str:
    """The tier to run: ``tier``, or the one the deprecated ``small`` flag stands for.

    ``small=True`` means ``"ci"`` and ``small=False`` ``"paper"``; both are accepted for one release
    with a ``FutureWarning``. Giving both a tier and ``small`` is refused when they disagree.

    Parameters
    ----------
    tier
        ``"ci"``, ``"standard"`` or ``"paper"``; None: from ``small`` (default ``"standard"``).
    small
        The old flag (None: not given).
    """
    from_small = None
    if small is not None:
        from_small = "ci" if small else "paper"
        warnings.warn(f"small={small!r} is deprecated; use tier={from_small!r}", FutureWarning, stacklevel=2)
    if tier is None:
        return from_small or "standard"
    if tier not in TIERS:
        raise AttuneInputError(f"parameter tier must be one of {', '.join(TIERS)}; got {tier!r}")
    if from_small is not None and from_small != tier:
        raise AttuneInputError(f"parameter tier={tier!r} contradicts small={small!r} (which means {from_small!r}); "
                               "give only tier")
    return tier


def recipe(notebook: str, tier: str) -> dict[str, Any]:
    """The settings of one notebook at one tier (a fresh copy; changing it changes nothing here).

    Parameters
    ----------
    notebook
        Notebook stem, e.g. ``"03a_regulatory"`` (a file name or path works too).
    tier
        ``"ci"``, ``"standard"`` or ``"paper"``.

    Raises
    ------
    AttuneInputError
        For an unknown notebook or tier (the known ones are listed).
    """
    stem = str(notebook).replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".ipynb")
    if stem not in _RECIPES:
        raise AttuneInputError(f"no recipe for notebook {stem!r}; known: {', '.join(sorted(_RECIPES))}")
    if tier not in TIERS:
        raise AttuneInputError(f"parameter tier must be one of {', '.join(TIERS)}; got {tier!r}")
    return copy.deepcopy(_RECIPES[stem][tier])


def list_recipes():
    """Every notebook's settings per tier as a table (``notebook``, ``tier``, ``setting``, ``value``)."""
    import pandas as pd

    rows = [{"notebook": nb, "tier": tier, "setting": key, "value": value}
            for nb, tiers in _RECIPES.items() for tier, settings in tiers.items() for key, value in settings.items()]
    return pd.DataFrame(rows)


def recipe_digest(settings: Any) -> str:
    """A short, stable digest of a recipe (or any JSON-like value), for cache keys.

    Parameters
    ----------
    settings
        Dicts, lists, tuples, strings, numbers, None.
    """
    text = json.dumps(settings, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
