"""``Attune``: the user-facing model (scvi-tools style) over a paired RNA + ATAC MuData."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from .._access import layer_matrix
from .._utils import (
    AttuneInputError,
    as_csr,
    check_values,
    examples,
    get_modality,
    name_mismatch,
    renamed_kwargs,
)
from ._attune_module import AttuneModule
from ._data import PairedCSRSource, csr_batch, n_batches
from ._training import Trainer
from .base import BaseModel, SavedModel, data_digest, names_digest

__all__ = ["PAPER_SCHEDULE", "SMALL_DATA_SCHEDULE", "Attune"]

logger = logging.getLogger("attune_lib")

_PREDICTOR_DIR = "rna_predictor"
_LEGACY_PREDICTOR_FILE = "rna_predictor.pt"
_MODS = ("rna", "atac")

#: The paper's schedule: 20 epochs, Adam with lr decaying linearly from 1e-4 to 1e-6, no held-out cells.
PAPER_SCHEDULE: dict[str, Any] = {"max_epochs": 20, "max_steps": None, "lr": 1e-4, "lr_end": 1e-6,
                                  "validation_fraction": 0.0, "early_stopping": None}
#: Used by ``schedule="auto"`` when the paper's 20 epochs give fewer than ``min_steps`` optimisation steps
#: (up to ~6,000 cells at batch 128): a step budget, a 10x higher learning rate and early stopping on the
#: contrastive loss of 10 % held-out cells, keeping the best epoch's weights.
SMALL_DATA_SCHEDULE: dict[str, Any] = {"min_steps": 1000, "max_steps": 1000, "lr": 1e-3, "lr_end": 1e-5,
                                       "validation_fraction": 0.1, "patience_steps": 150, "min_delta": 1e-3}
_DEFAULT_KEYS = {"rna": "X_attune_rna", "atac": "X_attune_atac", "joint": "X_attune"}


def _where(key: str, layer: str | None) -> str:
    return f"mdata[{key!r}]." + (f"layers[{layer!r}]" if layer is not None else "X")


def _read_matrix(adata, key: str, layer: str | None):
    return layer_matrix(adata, layer, where=f"mdata[{key!r}]")


def _align_features(var_names: pd.Index, expected: pd.Index, where: str) -> np.ndarray | None:
    """Column indexer putting ``var_names`` in the model's order (None when already identical)."""
    if var_names.equals(expected):
        return None
    mismatch = name_mismatch(var_names, expected)
    if mismatch:
        raise AttuneInputError(
            f"{where} has {len(var_names)} features but the model was trained on {len(expected)}: "
            + mismatch + "; subset/reorder the query to the model's features")
    if not var_names.is_unique:
        raise AttuneInputError(f"{where} has duplicated feature names; make them unique (var_names_make_unique)")
    return var_names.get_indexer(expected)


class Attune(BaseModel):
    """Attune cross-modal contrastive model (teacher-student networks per modality).

    Parameters
    ----------
    mdata
        Paired MuData registered with :meth:`setup_mudata`.
    n_latent
        Output embedding dimension of every network (128).
    contrast
        ``"default"`` (RNA-teacher vs ATAC-teacher + RNA-student vs ATAC-student), ``"intra"``
        (student vs teacher within each modality) or ``"cross"`` (RNA-teacher vs ATAC-student + RNA-student vs
        ATAC-teacher; the paper's RtAs_RsAt).
    dropout_rate
        Dropout rate of teachers and students (old name ``dropout``).
    temperature
        NT-Xent temperature.
    value_batchnorm
        The teachers pass the values through a per-feature batch norm before the embeddings (as the original).
    seed
        Seeds the weight initialisation, the validation split, shuffling and dropout.
    n_hidden
        Feature-embedding dimension of the teachers and hidden width of the students (128).

    Examples
    --------
    >>> Attune.setup_mudata(mdata, rna_layer=None, atac_layer="counts")
    >>> model = Attune(mdata, seed=0)
    >>> model.train(max_epochs=20)
    >>> model.get_latent_representation(key_added=True)  # writes mdata.obsm["X_attune"]
    """

    # ------------------------------------------------------------------------------------------ setup
    @staticmethod
    @renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
    def setup_mudata(mdata, *, rna_mod: str = "rna", atac_mod: str = "atac", rna_layer: str | None = None,
                     atac_layer: str | None = None, cell_type_key: str | None = None) -> None:
        """Validate a paired MuData and record the settings in ``mdata.uns["_attune_lib_setup"]["Attune"]``.

        Parameters
        ----------
        mdata
            MuData with an RNA and an ATAC modality holding the same cells in the same order.
        rna_mod, atac_mod
            Modality names (old names ``rna_key``, ``atac_key``).
        rna_layer
            Layer with log-normalised expression (None: ``.X``).
        atac_layer
            Layer with the ATAC values fed to the networks as they are (None: ``.X``). Counts, binary
            accessibility or normalised counts all work; see ``docs/attune_model.md``.
        cell_type_key
            Optional ``obs`` column (of ``mdata`` or the RNA modality) with cell types, recorded for downstream use.
        """
        rna_key, atac_key = rna_mod, atac_mod
        rna = get_modality(mdata, rna_key, role="RNA")
        atac = get_modality(mdata, atac_key, role="ATAC")
        if rna_key == atac_key:
            raise AttuneInputError(f"rna_mod and atac_mod must differ, both are {rna_key!r}")
        X_rna = _read_matrix(rna, rna_key, rna_layer)
        X_atac = _read_matrix(atac, atac_key, atac_layer)
        if rna.n_obs != atac.n_obs or not rna.obs_names.equals(atac.obs_names):
            raise AttuneInputError(
                f"modalities {rna_key!r} ({rna.n_obs} cells) and {atac_key!r} ({atac.n_obs} cells) must hold the "
                "same cells in the same order (paired data); e.g. muon.pp.intersect_obs(mdata)")
        if mdata.n_obs != rna.n_obs:
            raise AttuneInputError(
                f"mdata has {mdata.n_obs} cells but mdata[{rna_key!r}] has {rna.n_obs}; keep only paired cells")
        check_values(X_rna, name=_where(rna_key, rna_layer))
        check_values(X_atac, name=_where(atac_key, atac_layer))
        if cell_type_key is not None and cell_type_key not in mdata.obs and cell_type_key not in rna.obs:
            raise AttuneInputError(
                f"cell_type_key {cell_type_key!r} not found in mdata.obs nor mdata[{rna_key!r}].obs")
        setup = {"rna_key": rna_key, "atac_key": atac_key, "rna_layer": rna_layer, "atac_layer": atac_layer,
                 "cell_type_key": cell_type_key, "n_genes": int(rna.n_vars), "n_peaks": int(atac.n_vars)}
        Attune._register(mdata, setup)

    @classmethod
    def _get_setup(cls, mdata) -> dict[str, Any]:
        s = cls._registered(mdata)
        return {k: s.get(k) for k in ("rna_key", "atac_key", "rna_layer", "atac_layer", "cell_type_key")}

    # ------------------------------------------------------------------------------------------- init
    @renamed_kwargs(dropout="dropout_rate")
    def __init__(self, mdata, *, n_latent: int = 128, contrast: str = "default", dropout_rate: float = 0.1,
                 temperature: float = 0.1, value_batchnorm: bool = True, seed: int = 0, n_hidden: int = 128):
        setup = self._get_setup(mdata)
        rna = get_modality(mdata, setup["rna_key"], role="RNA")
        atac = get_modality(mdata, setup["atac_key"], role="ATAC")
        for key, ad_ in ((setup["rna_key"], rna), (setup["atac_key"], atac)):
            if not ad_.var_names.is_unique:
                raise AttuneInputError(f"mdata[{key!r}].var_names are not unique; call var_names_make_unique()")
        self._build(mdata, setup, {"rna": rna.var_names.copy(), "atac": atac.var_names.copy()},
                    {"n_latent": int(n_latent), "contrast": contrast, "dropout_rate": float(dropout_rate),
                     "temperature": float(temperature), "value_batchnorm": bool(value_batchnorm),
                     "seed": int(seed), "n_hidden": int(n_hidden)})

    def _build(self, mdata, setup: dict, var_names: dict[str, pd.Index], init_params: dict) -> None:
        self.mdata = mdata
        self._setup = setup
        self._var_names = var_names
        self.init_params = init_params
        if "dropout" in init_params and "dropout_rate" not in init_params:  # saved before the rename
            init_params = {("dropout_rate" if k == "dropout" else k): v for k, v in init_params.items()}
        self.init_params = init_params
        p = init_params
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(p["seed"])
            self.module = AttuneModule(
                len(var_names["rna"]), len(var_names["atac"]), n_hidden=p["n_hidden"], n_latent=p["n_latent"],
                dropout_rate=p["dropout_rate"], value_batchnorm=p["value_batchnorm"], temperature=p["temperature"],
                contrast=p["contrast"])
        self.module.eval()
        self.is_trained = False
        self.history = pd.DataFrame()
        self.train_summary_: dict[str, Any] = {}

    @property
    def seed(self) -> int:
        """The seed given at construction."""
        return self.init_params["seed"]

    # ------------------------------------------------------------------------------------------- data
    def _matrices(self, mdata=None, *, modalities: Sequence[str] = _MODS) -> dict[str, sp.csr_matrix]:
        """Validated CSR inputs in the model's feature order (reference or query MuData)."""
        mdata = self.mdata if mdata is None else mdata
        s = self._setup
        n_obs = None
        out = {}
        for mod in modalities:
            key, layer = s[f"{mod}_key"], s[f"{mod}_layer"]
            adata = get_modality(mdata, key, role=mod.upper())
            X = _read_matrix(adata, key, layer)
            where = _where(key, layer)
            idx = _align_features(adata.var_names, self._var_names[mod], f"mdata[{key!r}]")
            check_values(X, name=where)
            X = as_csr(X)
            if idx is not None:
                X = X[:, idx]
            if n_obs is not None and X.shape[0] != n_obs:
                raise AttuneInputError(f"modalities must hold the same cells; {where} has {X.shape[0]} rows, "
                                       f"the other modality {n_obs}")
            n_obs = X.shape[0]
            out[mod] = X
        if len(modalities) == 2:
            a, b = (get_modality(mdata, s[f"{m}_key"]) for m in _MODS)
            if not a.obs_names.equals(b.obs_names):
                raise AttuneInputError(f"modalities {s['rna_key']!r} and {s['atac_key']!r} must hold the same "
                                       "cells in the same order")
        return out

    @staticmethod
    def _resolve_cells(adata, cells) -> np.ndarray:
        n = adata.n_obs
        if cells is None:
            return np.arange(n)
        arr = np.asarray(cells)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise AttuneInputError(f"boolean cells mask has shape {arr.shape}, expected ({n},)")
            return np.flatnonzero(arr)
        if arr.dtype.kind in "iu":
            if arr.size and (arr.min() < -n or arr.max() >= n):
                raise AttuneInputError(f"cells indices out of range for {n} cells")
            return arr % n if arr.size else arr.astype(int)
        idx = adata.obs_names.get_indexer(arr.astype(str))
        if (idx < 0).any():
            raise AttuneInputError(f"{int((idx < 0).sum())} cell name(s) not found, e.g. {examples(arr[idx < 0])}")
        return idx

    # ------------------------------------------------------------------------------------------ train
    def train(self, *, max_epochs: int | None = None, max_steps: int | None = None, batch_size: int = 128,
              lr: float | None = None, lr_end: float | None = None, validation_fraction: float | None = None,
              early_stopping: bool | Mapping[str, Any] | None = None, schedule: str = "auto",
              device: str = "auto", checkpoint_dir: str | os.PathLike | None = None, resume: bool = True,
              progress_bar: bool = True, callbacks: Iterable[Callable] = (), data=None) -> None:
        """Contrastive pretraining (Adam, lr decaying linearly from ``lr`` to ``lr_end``).

        With ``max_epochs`` and ``max_steps`` both None, ``schedule`` chooses them. ``"paper"``: the
        paper's 20 epochs at lr 1e-4 -> 1e-6 (:data:`PAPER_SCHEDULE`). ``"auto"`` (default): the paper's
        schedule when its 20 epochs give at least 1,000 optimisation steps (about 7,000 cells at batch
        128); on smaller data, where those epochs under-train, :data:`SMALL_DATA_SCHEDULE`: up to 1,000
        steps at lr 1e-3 -> 1e-5 with early stopping on the contrastive loss of 10 % held-out cells
        (patience ~150 steps), keeping the best epoch's weights. Any argument given explicitly
        overrides the schedule's value. What was run is in :attr:`train_summary_`, and ``history`` has
        one row per epoch (``loss``, ``val_loss`` when cells are held out, ``lr``, ``step``).

        Parameters
        ----------
        max_epochs
            Epochs (20 in the paper); None: chosen by ``schedule``.
        max_steps
            Budget of optimisation steps (the last epoch may be partial); None: chosen by ``schedule``.
        batch_size
            Cells per batch (128; 64 for SHARE-seq in the original). A last batch of one cell is dropped.
        lr, lr_end
            Learning rate at the first and last step (None: the schedule's).
        validation_fraction
            Held-out fraction; its loss goes to ``model.history`` as ``val_*`` columns (None: the schedule's).
        early_stopping
            True, or a dict of :class:`~attune_lib.models.EarlyStopping` arguments (``patience`` in epochs,
            ``min_delta``, ``restore_best``, ``monitor``): stop when the held-out loss stops improving.
            None: the schedule's; False: never.
        schedule
            ``"auto"`` or ``"paper"`` (see above).
        device
            ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``.
        checkpoint_dir
            Save ``last.pt`` (weights, optimiser, scheduler, RNG states, epoch) there after every epoch.
        resume
            Continue from ``checkpoint_dir/last.pt`` when it exists; the result equals an uninterrupted run.
            A checkpoint of other data, features or settings is refused with an error naming what differs.
        progress_bar
            tqdm bar with the running loss.
        callbacks
            ``fn(trainer, epoch, record)`` after each epoch (see :class:`attune_lib.models.Trainer`).
        data
            Train from disk instead of ``mdata``: an :class:`~attune_lib.models.OnDiskPairedSource` with the
            model's features in the model's order (build the model from its ``template_mudata()``).
            Mini-batches are read from the files in a background thread; ``X`` is never loaded.
        """
        if data is None:
            mats = self._matrices()
            source = PairedCSRSource(mats)
            digest = data_digest(source.matrices["rna"], source.matrices["atac"])
        else:
            source = self._check_source(data)
            digest = f"ondisk:{source.digest()}"
        plan = self._plan_schedule(source.n_obs, batch_size=batch_size, schedule=schedule,
                                   max_epochs=max_epochs, max_steps=max_steps, lr=lr, lr_end=lr_end,
                                   validation_fraction=validation_fraction, early_stopping=early_stopping)
        trainer = Trainer(
            self.module, source, max_epochs=plan["max_epochs"], max_steps=plan["max_steps"], batch_size=batch_size,
            lr=plan["lr"], lr_end=plan["lr_end"], validation_fraction=plan["validation_fraction"],
            early_stopping=plan["early_stopping"], seed=self.seed, device=device, checkpoint_dir=checkpoint_dir,
            resume=resume, progress_bar=progress_bar, callbacks=callbacks, desc="Attune",
            fingerprint={**self.init_params, "n_genes": len(self._var_names["rna"]),
                         "n_peaks": len(self._var_names["atac"]),
                         "features": names_digest([*self._var_names["rna"], "|", *self._var_names["atac"]]),
                         "data": digest}, prefetch=2)
        try:
            trainer.fit()
        finally:
            self.history = trainer.history_frame()
            self.is_trained = trainer.epoch > 0
            self.module.eval()
        self.train_summary_ = {**plan, **trainer.summary(), **_convergence(self.history)}
        if self.train_summary_["converged"] is False:
            logger.warning(
                "Attune: the %s fell by %.1f %% over the last quarter of the %d steps; the model is probably "
                "under-trained: train longer (max_steps=), raise lr, or use the default schedule='auto'",
                self.train_summary_["monitor"], 100 * self.train_summary_["last_quarter_drop"], trainer.step)

    def _check_source(self, data):
        from ._streaming import OnDiskPairedSource

        if not isinstance(data, OnDiskPairedSource):
            raise AttuneInputError(f"data must be an OnDiskPairedSource, got {type(data).__name__}")
        for mod in _MODS:
            if not data.var_names[mod].equals(self._var_names[mod]):
                mismatch = name_mismatch(data.var_names[mod], self._var_names[mod])
                raise AttuneInputError(
                    f"{data.matrices[mod].path} features differ from the model's ({mismatch or 'other order'}); "
                    "build the model from data.template_mudata()")
        return data

    @staticmethod
    def _plan_schedule(n_obs: int, *, batch_size: int, schedule: str, max_epochs, max_steps, lr, lr_end,
                       validation_fraction, early_stopping) -> dict[str, Any]:
        """Resolve the training schedule (see :meth:`train`); explicit arguments win."""
        if schedule not in ("auto", "paper"):
            raise AttuneInputError(f"schedule must be 'auto' or 'paper', got {schedule!r}")
        if int(batch_size) < 2:
            raise AttuneInputError(f"batch_size must be >= 2, got {batch_size}")
        base = dict(PAPER_SCHEDULE)
        name = "paper"
        small = SMALL_DATA_SCHEDULE
        if max_epochs is None and max_steps is None:
            paper_steps = PAPER_SCHEDULE["max_epochs"] * n_batches(n_obs, int(batch_size), 2)
            if schedule == "auto" and paper_steps < small["min_steps"]:
                name = "small_data"
                vf = small["validation_fraction"] if validation_fraction is None else float(validation_fraction)
                n_val = round(vf * n_obs) if vf > 0 else 0
                spe = max(1, n_batches(n_obs - max(n_val, 1 if vf > 0 else 0), int(batch_size), 2))
                base = {"max_epochs": math.ceil(small["max_steps"] / spe), "max_steps": small["max_steps"],
                        "lr": small["lr"], "lr_end": small["lr_end"], "validation_fraction": vf,
                        "early_stopping": {"patience": max(5, math.ceil(small["patience_steps"] / spe)),
                                           "min_delta": small["min_delta"], "restore_best": True}}
        else:
            name = "user"
            if max_epochs is None:  # a step budget alone: as many epochs as it needs
                spe = max(1, n_batches(n_obs, int(batch_size), 2))
                base["max_epochs"] = math.ceil(int(max_steps) / spe) + 1
            else:
                base["max_epochs"] = int(max_epochs)
            base["max_steps"] = max_steps
        plan = {"schedule": name, **base}
        for key, value in (("lr", lr), ("lr_end", lr_end), ("validation_fraction", validation_fraction),
                           ("early_stopping", early_stopping)):
            if value is not None:
                plan[key] = value
        if plan["early_stopping"] is not None and plan["early_stopping"] is not False \
                and not plan["validation_fraction"]:
            raise AttuneInputError("early_stopping watches the held-out contrastive loss; "
                                   "pass validation_fraction > 0 (e.g. 0.1)")
        return plan

    # ------------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def _embed(self, X: sp.csr_matrix, modality: str, network: str, batch_size: int) -> np.ndarray:
        net = self.module.network(modality, network)
        self.module.eval()
        dev = self.device
        out = np.empty((X.shape[0], self.init_params["n_latent"]), dtype=np.float32)
        for st in range(0, X.shape[0], batch_size):
            z = net(csr_batch(X, slice(st, st + batch_size)).to(dev))
            out[st : st + batch_size] = F.normalize(z, dim=1).cpu().numpy()
        return out

    def get_latent_representation(self, mdata=None, *, modality: str = "joint", network: str = "teacher",
                                  key_added: str | bool | None = None, batch_size: int = 1024) -> np.ndarray:
        """Cell embeddings (L2-normalised per modality) in eval mode.

        Parameters
        ----------
        mdata
            MuData with the model's features (default: the training MuData). Feature order may differ;
            missing or extra features raise an error naming their counts. An
            :class:`~attune_lib.models.OnDiskPairedSource` is embedded from disk, chunk by chunk.
        modality
            ``"rna"``, ``"atac"`` or ``"joint"`` (concatenation of the normalised RNA and ATAC embeddings,
            ``2 * n_latent`` columns).
        network
            ``"teacher"`` (the cell embedding of the paper) or ``"student"``.
        key_added
            Also store the result: a key, or True for the default ``X_attune_rna`` / ``X_attune_atac`` /
            ``X_attune`` (joint; ``_student`` appended for the students). Per-modality results go to
            ``mdata.obsm`` and the modality's ``obsm``, joint ones to ``mdata.obsm``. None: only return.
        batch_size
            Cells per inference batch.

        Returns
        -------
        ``n_cells x n_latent`` (``2 n_latent`` for joint) float32 array.
        """
        if modality not in (*_MODS, "joint"):
            raise AttuneInputError(f"modality must be 'rna', 'atac' or 'joint', got {modality!r}")
        self.module.network("rna", network)  # validates `network`
        if batch_size < 1:
            raise AttuneInputError(f"batch_size must be >= 1, got {batch_size}")
        mdata = self.mdata if mdata is None else mdata
        mods = _MODS if modality == "joint" else (modality,)
        from ._streaming import OnDiskPairedSource

        if isinstance(mdata, OnDiskPairedSource):  # streamed from disk, chunk by chunk
            if key_added is not None and key_added is not False:
                raise AttuneInputError("key_added needs a MuData; with an OnDiskPairedSource only the array "
                                       "is returned")
            src = self._check_source(mdata)
            parts = [np.concatenate([self._embed(chunk, m, network, batch_size)
                                     for _, chunk in src.matrices[m].iter_chunks(max(batch_size, 8192))])
                     for m in mods]
            return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        mats = self._matrices(mdata, modalities=mods)
        parts = [self._embed(mats[m], m, network, batch_size) for m in mods]
        Z = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        if key_added is not None and key_added is not False:
            key = key_added if isinstance(key_added, str) else (
                _DEFAULT_KEYS[modality] + ("_student" if network == "student" else ""))
            if mdata.n_obs != Z.shape[0]:
                raise AttuneInputError(f"mdata has {mdata.n_obs} cells but the modalities {Z.shape[0]}; "
                                       "cannot write mdata.obsm")
            mdata.obsm[key] = Z
            if modality != "joint":
                get_modality(mdata, self._setup[f"{modality}_key"]).obsm[key] = Z
        return Z

    def map_query(self, query_mdata, *, key_added: str = "X_attune", network: str = "teacher",
                  batch_size: int = 1024) -> None:
        """Embed a query MuData with the frozen (eval-mode) model: reference mapping (Supp. Fig. S9).

        Writes ``<key_added>_rna`` and ``<key_added>_atac`` (to ``query_mdata.obsm`` and each modality's
        ``obsm``) and ``<key_added>`` (joint) to ``query_mdata.obsm``. The query needs the model's features
        (any order) under the same modality keys and layers as the reference.
        """
        if not isinstance(key_added, str) or not key_added:
            raise AttuneInputError(f"key_added must be a non-empty string, got {key_added!r}")
        self._matrices(query_mdata)  # validate everything before writing anything
        for mod in _MODS:
            self.get_latent_representation(query_mdata, modality=mod, network=network,
                                           key_added=f"{key_added}_{mod}", batch_size=batch_size)
        query_mdata.obsm[key_added] = np.concatenate(
            [query_mdata.obsm[f"{key_added}_rna"], query_mdata.obsm[f"{key_added}_atac"]], axis=1)

    @torch.no_grad()
    def get_feature_attention(self, mdata=None, *, modality: str = "rna", cells=None, batch_size: int = 256,
                              dense: bool = False):
        """Teacher context-attention weights of each cell over its features (eval mode).

        Parameters
        ----------
        mdata
            MuData (default: the training one).
        modality
            ``"rna"`` or ``"atac"``.
        cells
            Subset: integer positions, a boolean mask or obs names (default: all cells).
        batch_size
            Cells per batch.
        dense
            Return a dense ``cells x features`` array including the weights of zero-valued features
            (every feature is a token, so rows sum to 1). Default: a CSR matrix with the weights of the
            non-zero features only.
        """
        self.module.network(modality, "teacher")
        mdata = self.mdata if mdata is None else mdata
        X = self._matrices(mdata, modalities=(modality,))[modality]
        idx = self._resolve_cells(get_modality(mdata, self._setup[f"{modality}_key"]), cells)
        X = X[idx]
        if dense and X.shape[0] * X.shape[1] > 2e8:
            raise AttuneInputError(f"dense=True would allocate {X.shape[0]} x {X.shape[1]} values; pass cells=")
        teacher = self.module.network(modality, "teacher")
        self.module.eval()
        blocks = []
        for st in range(0, X.shape[0], batch_size):
            b = csr_batch(X, slice(st, st + batch_size)).to(self.device)
            _, att = teacher.pool(b, return_attention=True)
            if dense:
                prof = att["zero_profile"]
                W = att["zero_scale"][:, None] * (prof[None, :] if prof is not None
                                                  else torch.ones(1, b.n_cols, device=b.device))
                W[b.row_ids(), b.col] = att["nnz"]
                blocks.append(W.cpu().numpy())
            else:
                blocks.append(sp.csr_matrix((att["nnz"].cpu().numpy(), b.col.cpu().numpy(), b.crow.cpu().numpy()),
                                            shape=b.shape))
        if dense:
            return np.concatenate(blocks, axis=0) if blocks else np.zeros((0, X.shape[1]), np.float32)
        return sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, X.shape[1]), dtype=np.float32)

    @torch.no_grad()
    def get_tokens(self, mdata=None, *, modality: str = "rna", cells=None, batch_size: int = 256,
                   max_bytes: float = 2 * 1024**3) -> dict[str, Any]:
        """Per-feature weighted embeddings ("tokens") of the teacher for the regulatory transformer.

        Returns a dict: ``crow``, ``col`` (CSR pattern over the selected cells, model feature order),
        ``tokens`` (``nnz x n_hidden``, ``value_i * E_i`` with the value after the value batch norm when
        used), ``attention`` (``nnz``), ``zero_tokens`` (``n_features x n_hidden``: the token of a zero-valued
        feature, ``a_i E_i``; None without value batch norm, where it is 0), ``obs_names``, ``var_names``.
        Inside a training loop use ``model.module.<modality>_teacher.tokens(batch)`` on a
        :class:`~attune_lib.models.CSRBatch` instead (torch tensors, differentiable).
        """
        teacher = self.module.network(modality, "teacher")
        mdata = self.mdata if mdata is None else mdata
        adata = get_modality(mdata, self._setup[f"{modality}_key"])
        X = self._matrices(mdata, modalities=(modality,))[modality]
        idx = self._resolve_cells(adata, cells)
        X = X[idx]
        est = X.nnz * teacher.n_hidden * 4
        if est > max_bytes:
            raise AttuneInputError(f"tokens of {len(idx)} cells need ~{est / 1024**3:.1f} GiB (nnz={X.nnz}); "
                                   "select fewer cells with cells= or raise max_bytes")
        self.module.eval()
        toks, atts, zero = [], [], None
        for st in range(0, X.shape[0], batch_size):
            out = teacher.tokens(csr_batch(X, slice(st, st + batch_size)).to(self.device))
            toks.append(out["tokens"].cpu().numpy())
            atts.append(out["attention"].cpu().numpy())
            if zero is None and out["zero_tokens"] is not None:
                zero = out["zero_tokens"].cpu().numpy()
        d = teacher.n_hidden
        return {
            "crow": X.indptr.astype(np.int64), "col": X.indices.astype(np.int64),
            "tokens": np.concatenate(toks) if toks else np.zeros((0, d), np.float32),
            "attention": np.concatenate(atts) if atts else np.zeros(0, np.float32),
            "zero_tokens": zero, "obs_names": adata.obs_names[idx].copy(), "var_names": self._var_names[modality],
        }

    def get_feature_embeddings(self, modality: str = "rna") -> pd.DataFrame:
        """The teacher's learned feature embedding ``E`` (features x n_hidden) indexed by feature name."""
        E = self.module.network(modality, "teacher").embedding.detach().cpu().numpy()
        return pd.DataFrame(E, index=self._var_names[modality])

    # -------------------------------------------------------------------------------------- save/load
    def predict_rna_from_atac(self, mdata=None, *, layer: str = "attune_predicted", align: str = "strict",
                              predictor=None, refit: bool = False, batch_size: int = 1024,
                              **train_kwargs) -> None:
        """Predict log-normalised RNA from ATAC with the fine-tuned prediction network (paper Fig. 2F).

        The first call fine-tunes an :class:`~attune_lib.models.RNAPredictor` (a copy of this model's
        ATAC student + Dense 1,000 + ReLU + Dense to the genes; MSE, Adam 1e-3) on this model's MuData,
        choosing the epoch on a validation split of those cells, and caches it as ``self.rna_predictor_``;
        later calls reuse it (``refit=True`` or new pretrained weights fine-tune again). This model's
        weights are never changed. See ``docs/prediction.md``.

        Parameters
        ----------
        mdata
            Query MuData (default: the training one). Only its ATAC modality (same key and layer as the
            training data) is read; the cells need not have been seen in training.
        layer
            Written to ``mdata[rna_key].layers[layer]`` (cells x genes, float32). When the query has no RNA
            modality one is added with the model's genes.
        align
            ``"strict"``: the query's peaks must be the model's (any order), else an error naming the
            missing/extra counts; ``"by_name"``: missing peaks are filled with zeros, extra ones dropped
            (with a warning).
        predictor
            A trained :class:`~attune_lib.models.RNAPredictor` to use instead of the cached one.
        refit
            Fine-tune again even when a cached predictor exists.
        batch_size
            Cells per inference batch.
        **train_kwargs
            Passed to :meth:`RNAPredictor.train` on the first call: ``max_epochs`` (40), ``train_batch_size``
            (128), ``lr`` (1e-3), ``validation_fraction`` (0.1), ``patience`` (10), ``seed``, ``device``,
            ``progress_bar``, ``checkpoint_dir``.
        """
        from ._prediction import predict_rna_from_atac

        predict_rna_from_atac(self, mdata, layer=layer, align=align, predictor=predictor, refit=refit,
                              batch_size=batch_size, **train_kwargs)

    def _extra_attrs(self) -> dict[str, Any]:
        summary = {k: v for k, v in self.train_summary_.items() if not isinstance(v, float) or math.isfinite(v)}
        return {"train_summary": summary}

    def _save_files(self, tmp: Path) -> None:
        predictor = getattr(self, "rna_predictor_", None)
        if predictor is not None:  # the fine-tuned prediction network cached by predict_rna_from_atac
            predictor.save(tmp / _PREDICTOR_DIR)

    def save(self, dir_path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save weights, init parameters, setup, feature names and history to a directory, atomically.

        The directory format is shared by every model (see :mod:`attune_lib.models.base`). The prediction
        network cached by :meth:`predict_rna_from_atac` (``rna_predictor_``) is saved with it (in
        ``rna_predictor/``) and restored by :meth:`load`.

        Parameters
        ----------
        dir_path
            Output directory; written to a temporary sibling directory that is then renamed, so an
            interrupted save never leaves a half-written model.
        overwrite
            Replace an existing directory.
        """
        super().save(dir_path, overwrite=overwrite)

    @classmethod
    def load(cls, dir_path: str | os.PathLike, mdata, *, device: str = "auto") -> Attune:
        """Load a model saved with :meth:`save` onto ``mdata`` (same features, any order).

        Every file is read and checked (a damaged file is named in the error) and ``mdata`` is validated
        (modalities, layers, values, features) before anything is written to it; ``mdata`` is then set up
        with the saved settings when it has no Attune setup yet.

        Parameters
        ----------
        dir_path
            Directory written by :meth:`save`.
        mdata
            MuData with the model's features (any order).
        device
            ``"auto"``, ``"cpu"`` or ``"cuda"``.
        """
        return super().load(dir_path, mdata, device=device)

    @classmethod
    def _from_saved(cls, saved: SavedModel, mdata) -> Attune:
        setup = {k: saved.setup.get(k) for k in ("rna_key", "atac_key", "rna_layer", "atac_layer", "cell_type_key")}
        missing = [m for m in _MODS if m not in saved.var_names]
        if missing:
            raise AttuneInputError(f"{saved.path / 'var_names.json'} lacks the modalities {missing}")
        self = cls.__new__(cls)
        self._build(mdata, setup, {m: saved.var_names[m] for m in _MODS}, saved.init_params)
        self._matrices(mdata)  # checks modalities, layers, values and features; writes nothing
        self._load_state(self.module, saved)
        self.train_summary_ = dict(saved.extra.get("train_summary", {}))
        sub, legacy = saved.path / _PREDICTOR_DIR, saved.path / _LEGACY_PREDICTOR_FILE
        if sub.exists() or legacy.exists():
            from ._prediction import RNAPredictor

            self.rna_predictor_ = RNAPredictor.load(sub if sub.exists() else legacy, device="cpu")
        return self

    # ------------------------------------------------------------------------------------------- repr
    def __repr__(self) -> str:
        p = self.init_params
        s = self._setup
        n_par = sum(t.numel() for t in self.module.parameters())
        if self.is_trained and len(self.history):
            last = self.history.iloc[-1]
            trained = f"trained {len(self.history)} epoch(s), final loss {last['loss']:.4f}"
            if "val_loss" in last:
                trained += f", val loss {last['val_loss']:.4f}"
        else:
            trained = "not trained"
        return (
            f"Attune model ({trained})\n"
            f"  RNA:  {len(self._var_names['rna']):,} genes from {_where(s['rna_key'], s['rna_layer'])}\n"
            f"  ATAC: {len(self._var_names['atac']):,} peaks from {_where(s['atac_key'], s['atac_layer'])}\n"
            f"  contrast={p['contrast']!r}, n_hidden={p['n_hidden']}, n_latent={p['n_latent']}, "
            f"dropout_rate={p['dropout_rate']}, temperature={p['temperature']}, "
            f"value_batchnorm={p['value_batchnorm']}, "
            f"seed={p['seed']}\n"
            f"  {n_par:,} parameters on {self.device}"
        )


def _convergence(history: pd.DataFrame) -> dict[str, Any]:
    """Whether the monitored loss (``val_loss`` when present, else ``loss``) still fell at the end.

    ``last_quarter_drop`` is the relative decrease of a least-squares line through the losses of the
    epochs in the last quarter of the steps; ``converged`` is True below 1 %, None with fewer than 4 epochs.
    """
    col = "val_loss" if "val_loss" in history else "loss"
    if len(history) < 4 or col not in history or "step" not in history:
        return {"monitor": col, "last_quarter_drop": float("nan"), "converged": None}
    steps = history["step"].to_numpy(dtype=float)
    vals = history[col].to_numpy(dtype=float)
    tail = steps >= steps[-1] * 0.75
    if tail.sum() < 2:
        tail[-2:] = True
    slope = np.polyfit(steps[tail], vals[tail], 1)[0]
    drop = float(-slope * 0.25 * steps[-1] / max(abs(vals[-1]), 1e-12))
    return {"monitor": col, "last_quarter_drop": drop, "converged": bool(drop < 0.01)}
