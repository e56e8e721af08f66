"""User-facing scMVP model (scvi-tools style): ``setup_mudata`` -> ``ScMVP(mdata)`` -> ``train`` -> getters.

>>> ScMVP.setup_mudata(mdata, rna_layer="counts")
>>> model = ScMVP(mdata, n_latent=10, seed=0)
>>> model.train(max_epochs=15, pretrain_epochs=(10, 15))
>>> model.get_latent_representation()          # writes mdata.obsm["X_scmvp"]
>>> model.get_cluster_assignments()            # writes mdata.obs["scmvp_cluster"]
>>> model.get_imputed()                        # writes .layers["scmvp_imputed"] of both modalities
>>> model.save("scmvp_model"); ScMVP.load("scmvp_model", mdata)

See ``docs/scmvp.md`` for the architecture and every design choice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .._access import layer_matrix
from .._utils import (
    AttuneInputError,
    as_csr,
    check_values,
    get_modality,
    renamed_kwargs,
    set_seed,
)
from ._scmvp_module import ScMVPModule
from ._training import Phase, Trainer
from .base import BaseModel, SavedModel, data_digest, names_digest

logger = logging.getLogger("attune_lib")

__all__ = ["ScMVP"]

_SETUP_FIELDS = ("rna_key", "atac_key", "rna_layer", "atac_layer", "atac_transform")


# ---------------------------------------------------------------------------- data helpers
def _layer_name(layer: str | None) -> str:
    return ".X" if layer is None else f".layers[{layer!r}]"


def _get_matrix(adata, layer: str | None, *, modality: str):
    return layer_matrix(adata, layer, where=f"mdata[{modality!r}]")


def _tfidf(counts: sp.csr_matrix, idf: np.ndarray, scale_factor: float = 1e4) -> sp.csr_matrix:
    """``log1p(counts / cell_total * idf * scale_factor)`` with a fixed ``idf`` (Signac method 1)."""
    X = sp.csr_matrix(counts, dtype=np.float64)
    row = np.asarray(X.sum(axis=1)).ravel()
    inv_row = np.divide(1.0, row, out=np.zeros_like(row), where=row > 0)
    out = sp.csr_matrix(sp.diags(inv_row) @ X @ sp.diags(np.asarray(idf, dtype=np.float64) * scale_factor))
    np.log1p(out.data, out=out.data)
    out.eliminate_zeros()
    return out.astype(np.float32)


def _idf(counts: sp.csr_matrix) -> np.ndarray:
    """``n_cells / peak_total`` (0 for empty peaks), as in :func:`attune_lib.pp.tfidf`."""
    col = np.asarray(counts.sum(axis=0), dtype=np.float64).ravel()
    return np.divide(counts.shape[0], col, out=np.zeros_like(col), where=col > 0)


class _PairedData:
    """Paired CSR matrices (RNA counts, ATAC TF-IDF); mini-batches are densified on demand.

    Also the :class:`~attune_lib.models.Trainer` data source: ``get_batch(idx)`` returns ``(x, y)``.
    """

    def __init__(self, rna: sp.csr_matrix, atac: sp.csr_matrix):
        self.rna = rna
        self.atac = atac
        self.n_obs = rna.shape[0]

    def get_batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.sort(idx)
        return torch.from_numpy(self.rna[idx].toarray()), torch.from_numpy(self.atac[idx].toarray())

    def batch(self, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.get_batch(idx)
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def _phase_loss(phase: str) -> Callable:
    def loss(module, batch):
        return module.loss(batch[0], batch[1], phase=phase)

    return loss


# -------------------------------------------------------------------------------- model
class ScMVP(BaseModel):
    """scMVP: multi-view VAE with a Gaussian-mixture prior for paired RNA + ATAC (Li et al. 2022).

    Parameters
    ----------
    mdata
        MuData registered with :meth:`ScMVP.setup_mudata`.
    n_latent
        Dimension of the common latent space.
    n_hidden
        Hidden size of the encoder and decoder channels.
    n_components
        Number of Gaussian-mixture components (clusters) ``K``.
    n_heads
        Self-attention heads of the ATAC encoder.
    dropout_rate
        Dropout in the encoders.
    cycle_weight
        Weight of the cycle-consistency term (0 disables it).
    seed
        Seed for the weight initialisation, mini-batch order, sampling and the GMM initialisation.
    """

    def __init__(
        self,
        mdata,
        *,
        n_latent: int = 10,
        n_hidden: int = 128,
        n_components: int = 20,
        n_heads: int = 8,
        dropout_rate: float = 0.1,
        cycle_weight: float = 1.0,
        seed: int = 0,
    ):
        registry = self._registered(mdata)
        for name, value, low in (
            ("n_latent", n_latent, 1),
            ("n_hidden", n_hidden, 1),
            ("n_components", n_components, 1),
            ("n_heads", n_heads, 1),
        ):
            if not isinstance(value, (int, np.integer)) or value < low:
                raise AttuneInputError(f"{name} must be a positive integer, got {value!r}")
        if n_hidden % n_heads:
            raise AttuneInputError(f"n_hidden={n_hidden} must be divisible by n_heads={n_heads}")
        if not 0 <= dropout_rate < 1:
            raise AttuneInputError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}")
        if cycle_weight < 0:
            raise AttuneInputError(f"cycle_weight must be >= 0, got {cycle_weight!r}")
        self.mdata = mdata
        self.registry = dict(registry)
        self.seed = int(seed)
        data, fitted = self._build_data(mdata, self.registry, fit=True)
        self.registry.update(fitted)
        self._data = data
        if n_components > data.n_obs:
            raise AttuneInputError(f"n_components={n_components} exceeds the number of cells ({data.n_obs})")
        self.init_params = {
            "n_latent": int(n_latent),
            "n_hidden": int(n_hidden),
            "n_components": int(n_components),
            "n_heads": int(n_heads),
            "dropout_rate": float(dropout_rate),
            "cycle_weight": float(cycle_weight),
            "seed": self.seed,
        }
        self._var_names = {"rna": pd.Index(self.registry["gene_names"]), "atac": pd.Index(self.registry["peak_names"])}
        set_seed(self.seed)
        self.module = ScMVPModule(
            data.rna.shape[1], data.atac.shape[1],
            n_latent=n_latent, n_hidden=n_hidden, n_components=n_components,
            n_heads=n_heads, dropout_rate=dropout_rate, cycle_weight=cycle_weight,
        )
        self.history = pd.DataFrame()
        self.is_trained = False

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """Alias of :attr:`init_params` (the constructor's arguments)."""
        return self.init_params

    @property
    def _setup(self) -> dict[str, Any]:
        return {k: self.registry.get(k) for k in _SETUP_FIELDS}

    def __repr__(self) -> str:
        m = self.module
        return (
            f"ScMVP(n_genes={m.n_genes}, n_peaks={m.n_peaks}, n_latent={m.n_latent}, "
            f"n_components={m.n_components}, trained={self.is_trained})"
        )

    # ------------------------------------------------------------------------- setup
    @staticmethod
    @renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
    def setup_mudata(
        mdata,
        *,
        rna_mod: str = "rna",
        atac_mod: str = "atac",
        rna_layer: str | None = "counts",
        atac_layer: str | None = None,
        atac_transform: str | None = "auto",
    ) -> None:
        """Register the modalities and layers scMVP reads (validated; written to ``mdata.uns["_attune_lib_setup"]``).

        Parameters
        ----------
        mdata
            Paired MuData (same cells in the same order in both modalities, e.g. after
            :func:`attune_lib.datasets.apply_preset`).
        rna_mod, atac_mod
            Modality names.
        rna_layer
            RNA raw counts (``None``: ``.X``). Modelled with a negative binomial.
        atac_layer
            ATAC matrix (``None``: ``.X``): raw counts, or TF-IDF values already computed.
        atac_transform
            ``"tfidf"``: compute TF-IDF from the ATAC counts (``log1p(tf * idf * 1e4)``, the IDF fixed
            at model creation); ``None``: use the values as they are (already TF-IDF);
            ``"auto"``: ``"tfidf"`` when the matrix holds integers, else ``None``.
        """
        if atac_transform not in ("auto", "tfidf", None):
            raise AttuneInputError(f"atac_transform must be 'auto', 'tfidf' or None, got {atac_transform!r}")
        rna = get_modality(mdata, rna_mod, role="RNA")
        atac = get_modality(mdata, atac_mod, role="ATAC")
        # the RNA likelihood is a negative binomial: it needs raw counts, whatever the input state
        from .._access import get_matrix, matrix_state

        if rna_layer is None or rna_layer in rna.layers:  # NaN/inf/negative values are named first
            check_values(_get_matrix(rna, rna_layer, modality=rna_mod),
                         name=f"mdata[{rna_mod!r}]{_layer_name(rna_layer)}")
        explicit = None if (rna_layer == "counts" and "counts" not in rna.layers) else rna_layer
        get_matrix(rna, "counts", layer=explicit, where=f"mdata[{rna_mod!r}]", allow_binary=False,
                   step="ScMVP (negative-binomial RNA likelihood)", param="rna_layer")
        X = _get_matrix(rna, rna_layer, modality=rna_mod)
        Y = _get_matrix(atac, atac_layer, modality=atac_mod)
        check_values(X, name=f"mdata[{rna_mod!r}]{_layer_name(rna_layer)}")
        check_values(Y, name=f"mdata[{atac_mod!r}]{_layer_name(atac_layer)}")
        if rna.n_obs != atac.n_obs or not np.array_equal(rna.obs_names.values, atac.obs_names.values):
            raise AttuneInputError(
                f"modalities {rna_mod!r} ({rna.n_obs} cells) and {atac_mod!r} ({atac.n_obs} cells) are not "
                "paired (obs_names differ or are in a different order); keep co-assayed cells only, "
                "e.g. attune_lib.datasets.apply_preset(mdata, 'sci-car')"
            )
        if rna.n_obs < 2:
            raise AttuneInputError(f"need at least 2 cells, got {rna.n_obs}")
        if atac_transform == "auto":
            atac_transform = "tfidf" if matrix_state(atac, atac_layer) != "log-normalised" else None
        ScMVP._register(mdata, {"rna_key": rna_mod, "atac_key": atac_mod, "rna_layer": rna_layer,
                                "atac_layer": atac_layer, "atac_transform": atac_transform})

    @staticmethod
    def _build_data(mdata, registry: dict, *, fit: bool) -> tuple[_PairedData, dict]:
        """Read and validate the registered matrices; ``fit`` computes the IDF, otherwise it is reused."""
        rna_key, atac_key = registry["rna_key"], registry["atac_key"]
        rna_layer = registry.get("rna_layer") or None
        atac_layer = registry.get("atac_layer") or None
        rna = get_modality(mdata, rna_key, role="RNA")
        atac = get_modality(mdata, atac_key, role="ATAC")
        if rna.n_obs != atac.n_obs or not np.array_equal(rna.obs_names.values, atac.obs_names.values):
            raise AttuneInputError(f"modalities {rna_key!r} and {atac_key!r} are not paired (obs_names differ)")
        X = _get_matrix(rna, rna_layer, modality=rna_key)
        Y = _get_matrix(atac, atac_layer, modality=atac_key)
        check_values(X, name=f"mdata[{rna_key!r}]{_layer_name(rna_layer)}")
        check_values(Y, name=f"mdata[{atac_key!r}]{_layer_name(atac_layer)}")
        fitted: dict = {}
        if not fit:
            for key, names, label in (("gene_names", rna.var_names, "genes"), ("peak_names", atac.var_names, "peaks")):
                if key in registry and list(registry[key]) != list(names):
                    raise AttuneInputError(
                        f"{label} of mdata[{rna_key if label == 'genes' else atac_key!r}].var_names differ from "
                        f"the ones the model was trained on ({len(registry[key])} {label} expected)"
                    )
        else:
            fitted["gene_names"] = [str(v) for v in rna.var_names]
            fitted["peak_names"] = [str(v) for v in atac.var_names]
        rna_csr = as_csr(X)
        Y_csr = as_csr(Y)
        if registry.get("atac_transform") == "tfidf":
            if fit:
                idf = _idf(Y_csr)
                fitted["idf"] = idf.astype(np.float64)
            else:
                idf = np.asarray(registry["idf"], dtype=np.float64)
            Y_csr = _tfidf(Y_csr, idf)
        return _PairedData(rna_csr, Y_csr), fitted

    def _data_for(self, mdata) -> _PairedData:
        if mdata is None or mdata is self.mdata:
            return self._data
        data, _ = self._build_data(mdata, self.registry, fit=False)
        return data

    # ---------------------------------------------------------------------- training
    def train(
        self,
        *,
        max_epochs: int = 15,
        pretrain_epochs: tuple[int, int] = (10, 15),
        warmup_epochs: int = 5,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 1e-6,
        adam_eps: float = 0.01,
        device: str | None = "auto",
        checkpoint_dir: str | os.PathLike | None = None,
        resume: bool = False,
        progress_bar: bool = True,
        callbacks: Iterable[Callable] = (),
    ) -> None:
        """Pretrain the RNA and ATAC channels, initialise the mixture prior, then train jointly.

        The stages are phases of one :class:`~attune_lib.models.Trainer` run (each with a fresh Adam:
        ``lr``, ``eps=adam_eps``, ``weight_decay``, constant learning rate):

        1. ``"rna"``: ``pretrain_epochs[0]`` epochs of the RNA channel as a VAE (standard-normal prior);
        2. ``"atac"``: ``pretrain_epochs[1]`` epochs of the ATAC channel;
        3. ``"warmup"``: the first ``warmup_epochs`` of the ``max_epochs`` joint epochs train the joint
           encoder and both decoders with a standard-normal prior; then a diagonal
           :class:`~sklearn.mixture.GaussianMixture` (``n_components``) is fitted on the joint latent
           means and copied into the prior (VaDE initialisation);
        4. ``"joint"``: the remaining joint epochs minimise ``-ELBO + cycle_weight * cycle`` with the
           mixture prior and the cluster attention.

        Parameters
        ----------
        max_epochs
            Joint epochs, warm-up included (the scMVP default is 15; at least 1).
        pretrain_epochs
            ``(rna, atac)`` pretraining epochs; ``(0, 0)`` skips pretraining.
        warmup_epochs
            Joint epochs with the standard-normal prior before the mixture prior is fitted
            (``0``: fit it right after pretraining).
        batch_size
            Mini-batch size (a trailing batch of one cell is dropped for BatchNorm).
        lr, weight_decay, adam_eps
            Adam settings.
        device
            ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.
        checkpoint_dir
            If given, a checkpoint (``last.pt``) is written atomically after every epoch.
        resume
            Continue from the checkpoint in ``checkpoint_dir`` when present. It must have been written
            with the same data, features, model settings, schedule, ``lr``, ``batch_size``, ``adam_eps``
            and ``weight_decay``; otherwise an error names what differs.
        progress_bar
            Show a tqdm progress bar.
        callbacks
            ``fn(trainer, epoch, record)`` after each epoch (see :class:`~attune_lib.models.Trainer`).

        Notes
        -----
        Losses per epoch are in :attr:`history` (a DataFrame indexed by epoch with the columns
        ``phase, loss, reconst_rna, reconst_atac, kl, cycle, lr, step, time_s``). Calling ``train``
        again on a trained model runs the joint phase only (``max_epochs`` more epochs) and appends to
        the history.
        """
        pre = tuple(pretrain_epochs) if pretrain_epochs is not None else (0, 0)
        if len(pre) != 2 or any((not isinstance(e, (int, np.integer))) or e < 0 for e in pre):
            raise AttuneInputError(
                f"pretrain_epochs must be two non-negative integers (rna, atac), got {pretrain_epochs!r}"
            )
        if not isinstance(max_epochs, (int, np.integer)) or max_epochs < 1:
            raise AttuneInputError(f"max_epochs must be a positive integer (joint epochs), got {max_epochs!r}")
        if not isinstance(warmup_epochs, (int, np.integer)) or warmup_epochs < 0:
            raise AttuneInputError(f"warmup_epochs must be a non-negative integer, got {warmup_epochs!r}")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 2:
            raise AttuneInputError(f"batch_size must be an integer >= 2, got {batch_size!r}")
        if lr <= 0:
            raise AttuneInputError(f"lr must be positive, got {lr!r}")
        if resume and checkpoint_dir is None:
            raise AttuneInputError("resume=True needs checkpoint_dir")

        if self.is_trained:
            stages = [("joint", int(max_epochs))]
        else:
            warm = min(int(warmup_epochs), int(max_epochs))
            stages = [("rna", int(pre[0])), ("atac", int(pre[1])), ("warmup", warm), ("joint", int(max_epochs) - warm)]
        phases = [
            Phase(name, n, parameters=lambda m, name=name: self._phase_parameters(name), loss=_phase_loss(name),
                  on_start=self._init_prior_once if name == "joint" else None)
            for name, n in stages
        ]
        previous = self.history
        # a further train() call continues with fresh (but reproducible) shuffling and sampling
        seed = self.seed + 1_000_003 * len(previous)
        trainer = Trainer(
            self.module, self._data, phases=phases, batch_size=int(batch_size), lr=lr, lr_end=None,
            weight_decay=weight_decay, adam_eps=adam_eps, seed=seed, device=device, checkpoint_dir=checkpoint_dir,
            resume=resume, progress_bar=progress_bar, callbacks=callbacks, desc="scMVP",
            fingerprint={**self.init_params, "n_genes": self.module.n_genes, "n_peaks": self.module.n_peaks,
                         "features": names_digest([*self._var_names["rna"], "|", *self._var_names["atac"]]),
                         "data": data_digest(self._data.rna, self._data.atac), "continued_from": len(previous)})
        try:
            trainer.fit()
        finally:
            new = trainer.history_frame()
            if len(previous) and len(new):
                new.index = new.index + int(previous.index.max())
                new["step"] = new["step"] + int(previous["step"].iloc[-1])
            self.history = pd.concat([previous, new]) if len(previous) else new
            self.module.eval()
        if not int(self.module.gmm_initialised):
            self._init_prior()
        self.module.eval()
        self.is_trained = True

    def _phase_parameters(self, phase: str) -> list[torch.nn.Parameter]:
        """Parameters that receive gradients in a phase (the others are left untouched by Adam)."""
        m = self.module
        if phase == "rna":
            mods = [m.rna_encoder, m.rna_decoder]
        elif phase == "atac":
            mods = [m.atac_encoder, m.atac_decoder]
        elif phase == "warmup":
            mods = [m.rna_encoder, m.atac_encoder, m.joint_encoder, m.rna_decoder, m.atac_decoder]
        else:
            return list(m.parameters())
        return [p for mod in mods for p in mod.parameters()]

    def _init_prior_once(self, trainer=None) -> None:
        """Fit the mixture prior unless it already is (a continued or resumed run keeps it)."""
        if not int(self.module.gmm_initialised):
            self._init_prior()

    @torch.no_grad()
    def _init_prior(self) -> None:
        """Fit a diagonal GaussianMixture on the (pretrained) joint latent means and copy it into the prior."""
        latent = self._posterior_arrays(self._data, need=("latent",), use_gamma=False)["latent"]
        self.module.init_prior_from_gmm(latent, seed=self.seed)

    # ------------------------------------------------------------------------- output
    @torch.no_grad()
    def _posterior_arrays(
        self, data: _PairedData, *, need: tuple[str, ...], batch_size: int = 256, use_gamma=True
    ) -> dict:
        module = self.module
        was_training = module.training
        module.eval()
        device = next(module.parameters()).device
        chunks: dict[str, list] = {k: [] for k in need}
        try:
            for start in range(0, data.n_obs, batch_size):
                idx = np.arange(start, min(start + batch_size, data.n_obs))
                x, y = data.batch(idx, device)
                out = module.posterior(x, y)
                if not use_gamma:
                    out.pop("gamma", None)
                for k in need:
                    chunks[k].append(out[k].cpu().numpy())
        finally:
            module.train(was_training)
        return {k: np.concatenate(v, axis=0) for k, v in chunks.items()}

    def _check_trained(self) -> None:
        if not self.is_trained:
            raise AttuneInputError("the model is not trained; call .train() (or ScMVP.load) first")

    def get_latent_representation(
        self, mdata=None, *, key_added: str | None = "X_scmvp", batch_size: int = 256
    ) -> np.ndarray:
        """Posterior mean of the common latent ``z`` for every cell.

        Parameters
        ----------
        mdata
            MuData with the same modalities, layers and features (default: the training MuData).
        key_added
            Written to ``mdata.obsm[key_added]`` (``None``: only returned).
        batch_size
            Cells per inference batch.

        Returns
        -------
        ``(n_cells, n_latent)`` float32 array.
        """
        self._check_trained()
        target = self.mdata if mdata is None else mdata
        latent = self._posterior_arrays(self._data_for(mdata), need=("latent",), batch_size=batch_size)["latent"]
        if key_added is not None:
            target.obsm[key_added] = latent
        return latent

    def get_cluster_assignments(
        self,
        mdata=None,
        *,
        key_added: str | None = "scmvp_cluster",
        batch_size: int = 256,
        return_probabilities: bool = False,
    ):
        """Most likely mixture component ``argmax_c q(c | z)`` of every cell (at the posterior mean).

        Parameters
        ----------
        mdata
            MuData with the same modalities, layers and features (default: the training MuData).
        key_added
            Written as a categorical column ``mdata.obs[key_added]`` (``None``: only returned).
        batch_size
            Cells per inference batch.
        return_probabilities
            Also return the ``(n_cells, K)`` responsibilities.

        Returns
        -------
        Integer labels ``(n_cells,)``, and the responsibilities when ``return_probabilities``.
        """
        self._check_trained()
        target = self.mdata if mdata is None else mdata
        gamma = self._posterior_arrays(self._data_for(mdata), need=("gamma",), batch_size=batch_size)["gamma"]
        labels = gamma.argmax(axis=1)
        if key_added is not None:
            target.obs[key_added] = pd.Categorical(
                labels.astype(str), categories=[str(k) for k in range(self.module.n_components)]
            )
        return (labels, gamma) if return_probabilities else labels

    def get_imputed(
        self,
        mdata=None,
        *,
        layer_rna: str | None = "scmvp_imputed",
        layer_atac: str | None = "scmvp_imputed",
        batch_size: int = 256,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Imputed profiles: the decoded NB means (RNA counts) and Poisson means (ATAC, TF-IDF scale).

        Both use the cell's observed library size (RNA total counts; ATAC total TF-IDF). The layers
        are dense ``float32`` (``n_cells x n_features``), so mind the memory for many peaks.

        Parameters
        ----------
        mdata
            MuData with the same modalities, layers and features (default: the training MuData).
        layer_rna, layer_atac
            Layers written in the RNA / ATAC modality (``None`` skips that modality).
        batch_size
            Cells per inference batch.

        Returns
        -------
        ``(rna, atac)`` arrays (``None`` for a skipped modality).
        """
        self._check_trained()
        target = self.mdata if mdata is None else mdata
        need = tuple(k for k, layer in (("rna_imputed", layer_rna), ("atac_imputed", layer_atac)) if layer is not None)
        if not need:
            return None, None
        out = self._posterior_arrays(self._data_for(mdata), need=need, batch_size=batch_size)
        rna = out.get("rna_imputed")
        atac = out.get("atac_imputed")
        if rna is not None:
            target.mod[self.registry["rna_key"]].layers[layer_rna] = rna
        if atac is not None:
            target.mod[self.registry["atac_key"]].layers[layer_atac] = atac
        return rna, atac

    # ---------------------------------------------------------------------- save/load
    def _extra_tensors(self) -> dict[str, Any]:
        idf = self.registry.get("idf")
        return {"idf": None if idf is None else torch.as_tensor(np.asarray(idf), dtype=torch.float64)}

    def save(self, dir_path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save the weights, settings, setup, features, IDF and history to a directory, atomically.

        The directory format is shared by every model (see :mod:`attune_lib.models.base`); the IDF
        fitted on the training data is stored with the weights in ``model.pt``.

        Parameters
        ----------
        dir_path
            Output directory.
        overwrite
            Replace an existing directory.
        """
        super().save(dir_path, overwrite=overwrite)

    @classmethod
    def load(cls, dir_path: str | os.PathLike, mdata, *, device: str | None = "auto") -> ScMVP:
        """Load a model saved with :meth:`save` and attach it to ``mdata`` (same features).

        Every file is read and checked and ``mdata`` is validated before anything is written to it;
        ``mdata`` is then set up with the saved keys and layers when it has no scMVP setup. The saved IDF
        is reused, so latents of the training data are reproduced exactly.

        Parameters
        ----------
        dir_path
            Directory written by :meth:`save`.
        mdata
            MuData with the saved features in the saved order.
        device
            ``"auto"``, ``"cpu"`` or ``"cuda"``.
        """
        return super().load(dir_path, mdata, device=device)

    @classmethod
    def _from_saved(cls, saved: SavedModel, mdata) -> ScMVP:
        reg = {k: saved.setup.get(k) for k in _SETUP_FIELDS}
        reg["gene_names"] = list(saved.var_names["rna"])
        reg["peak_names"] = list(saved.var_names["atac"])
        idf = saved.weights.get("extra", {}).get("idf")
        if idf is not None:
            reg["idf"] = idf.numpy()
        elif reg.get("atac_transform") == "tfidf":
            raise AttuneInputError(f"{saved.path / 'model.pt'} lacks the IDF of the saved TF-IDF transform")
        # validate the new MuData against the saved features before writing anything to it
        data, _ = cls._build_data(mdata, reg, fit=False)
        model = cls.__new__(cls)
        model.mdata = mdata
        model.registry = reg
        model.seed = int(saved.init_params["seed"])
        model.init_params = saved.init_params
        model._var_names = dict(saved.var_names)
        model._data = data
        kw = {k: v for k, v in model.init_params.items() if k != "seed"}
        model.module = ScMVPModule(data.rna.shape[1], data.atac.shape[1], **kw)
        cls._load_state(model.module, saved)
        return model
