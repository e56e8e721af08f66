"""Cross-modal prediction (ATAC -> RNA): the Attune prediction head and its fine-tuning.

The network follows the paper's "Modality prediction network": the ATAC **student** encoder
(``BN -> Dense + ReLU -> BN -> Dropout -> Dense + ReLU``, output ``n_latent``), then a dense layer of
1,000 units + ReLU and a linear dense layer to the genes. It is trained with the MSE on log-normalised
expression (Adam, lr 1e-3, 40 epochs, batch 128).

* ``RNAPredictor.from_attune(model)`` copies the pretrained ATAC student (the Attune model itself is
  never modified) and fine-tunes all weights: the paper's "MLP with pretraining".
* ``RNAPredictor.de_novo(mdata)`` builds the same network with random weights ("de novo" MLP).

Model choice never looks at test cells: the epoch kept is the one with the lowest loss on a
**validation** split carved from the training cells (the original chose the epoch on the test set).
Early stopping (``patience``) uses the same validation curve. The cells used in training are recorded
(``touched_indices_``), so tests can check that held-out cells were never seen.

ATAC input goes through the sparse CSR mini-batching of :mod:`attune_lib.models._data` and the loop
of :class:`attune_lib.models.Trainer` (progress bar, checkpoints, callbacks).
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import nn

from .._utils import AttuneInputError, as_csr, check_values, get_modality, name_mismatch, renamed_kwargs
from ._attune_nn import StudentEncoder
from ._data import CSRBatch, csr_batch
from ._training import EarlyStopping, Trainer
from .base import BaseModel, SavedModel, data_digest, names_digest

__all__ = [
    "RNAPredictionModule",
    "RNAPredictor",
    "align_peaks",
    "predict_rna_from_atac",
]

_ALIGN = ("strict", "by_name")


# ------------------------------------------------------------------------------------------ helpers
def _read(adata, key: str, layer: str | None):
    if layer is not None:
        if layer not in adata.layers:
            raise AttuneInputError(
                f"layer {layer!r} not found in mdata[{key!r}].layers; available: {sorted(adata.layers)}")
        return adata.layers[layer]
    if adata.X is None:
        raise AttuneInputError(f"mdata[{key!r}].X is empty (None); pass the layer holding the values")
    return adata.X


def _where(key: str, layer: str | None) -> str:
    return f"mdata[{key!r}]." + (f"layers[{layer!r}]" if layer is not None else "X")


def _dense(Y) -> np.ndarray:
    Y = Y.toarray() if sp.issparse(Y) else np.asarray(Y)
    return np.ascontiguousarray(Y, dtype=np.float32)


def align_peaks(X, var_names: pd.Index, expected: pd.Index, *, align: str = "strict",
                where: str = "mdata['atac']") -> sp.csr_matrix:
    """Put the columns of a query ATAC matrix in the order of ``expected`` (the training peaks).

    Parameters
    ----------
    X
        Query cells x query peaks.
    var_names
        Query peak names (columns of ``X``).
    expected
        Peaks the predictor was trained on, in its order.
    align
        ``"strict"``: the query must hold exactly the expected peaks (any order); otherwise an
        :class:`AttuneInputError` names the counts of missing and extra peaks. ``"by_name"``: missing
        peaks are filled with zeros and extra peaks dropped, with a warning giving both counts.
    where
        Name of the query matrix in error messages.

    Returns
    -------
    CSR matrix, cells x ``len(expected)``.
    """
    if align not in _ALIGN:
        raise AttuneInputError(f"align must be one of {_ALIGN}, got {align!r}")
    var_names = pd.Index(var_names).astype(str)
    expected = pd.Index(expected).astype(str)
    X = as_csr(X)
    if X.shape[1] != len(var_names):
        raise AttuneInputError(f"{where} has {X.shape[1]} columns but {len(var_names)} peak names")
    if not var_names.is_unique:
        raise AttuneInputError(f"{where} has duplicated peak names; make them unique (var_names_make_unique)")
    if var_names.equals(expected):
        return X
    mismatch = name_mismatch(var_names, expected)
    if mismatch:
        msg = f"{where} has {len(var_names)} peaks but the predictor was trained on {len(expected)}: {mismatch}"
        if align == "strict":
            raise AttuneInputError(msg + "; subset/reorder the query to the training peaks, or pass "
                                   "align='by_name' to fill missing peaks with zeros and drop extra ones")
        warnings.warn(msg + "; missing peaks are filled with zeros and extra peaks dropped (align='by_name')",
                      UserWarning, stacklevel=3)
    pos = expected.get_indexer(var_names)  # query column -> training column (-1: extra)
    keep = np.flatnonzero(pos >= 0)
    S = sp.csr_matrix((np.ones(keep.size, np.float32), (keep, pos[keep])), shape=(len(var_names), len(expected)))
    out = (X @ S).tocsr()
    out.sort_indices()
    return out


# ------------------------------------------------------------------------------------------- module
class RNAPredictionModule(nn.Module):
    """ATAC encoder followed by the prediction head ``Dense(n_head) + ReLU -> Dense(n_genes)``.

    Parameters
    ----------
    encoder
        A :class:`~attune_lib.models.StudentEncoder` over the peaks (pretrained copy or fresh).
    n_genes
        Output units (genes).
    n_head
        Hidden units of the head (1,000 in the paper).

    ``loss(batch)`` takes ``{"atac": CSRBatch, "y": Tensor}`` and returns ``{"loss": MSE}`` (the protocol
    of :class:`attune_lib.models.Trainer`).
    """

    def __init__(self, encoder: StudentEncoder, n_genes: int, *, n_head: int = 1000):
        super().__init__()
        if int(n_genes) < 1:
            raise AttuneInputError(f"n_genes must be >= 1, got {n_genes}")
        if int(n_head) < 1:
            raise AttuneInputError(f"n_head must be >= 1, got {n_head}")
        self.encoder = encoder
        n_latent = encoder.fc2.out_features
        self.hidden = nn.Linear(n_latent, int(n_head))
        self.out = nn.Linear(int(n_head), int(n_genes))
        for lin in (self.hidden, self.out):  # Keras defaults, as the original
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    @property
    def n_genes(self) -> int:
        return self.out.out_features

    def forward(self, atac: CSRBatch) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(self.encoder(atac))))

    def loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        pred = self(batch["atac"])
        return {"loss": torch.mean((pred - batch["y"]) ** 2)}


class _RegressionSource:
    """Trainer data source over the fit cells only: ATAC CSR rows + dense targets.

    ``get_batch`` receives local positions (``0..n_fit-1``); ``touched`` records which were read, and
    ``global_idx`` maps them back to the caller's cell indices.
    """

    def __init__(self, X: sp.csr_matrix, Y, global_idx: np.ndarray):
        self.X = X
        self.Y = Y
        self.global_idx = np.asarray(global_idx)
        self.n_obs = int(X.shape[0])
        self.touched = np.zeros(self.n_obs, dtype=bool)

    def get_batch(self, idx: np.ndarray) -> dict[str, Any]:
        self.touched[idx] = True
        y = self.Y[idx]
        return {"atac": csr_batch(self.X, idx), "y": torch.from_numpy(_dense(y))}


_PREDICTOR_FORMAT = "attune_companion.RNAPredictor/1"


# ---------------------------------------------------------------------------------------- predictor
class RNAPredictor(BaseModel):
    """Predict log-normalised RNA expression from ATAC (the Attune prediction network).

    Build it with :meth:`from_attune` (fine-tune the pretrained ATAC student) or :meth:`de_novo`
    (same network, random weights), train with :meth:`train` (or :meth:`fit_matrices` on arrays),
    then :meth:`predict` (returns an array) or :meth:`predict_to_layer` (writes ``mdata["rna"].layers``).

    Parameters
    ----------
    encoder
        ATAC :class:`~attune_lib.models.StudentEncoder`; it becomes part of this predictor (pass a copy).
    peak_names, gene_names
        Input peaks and output genes, in the network's order.
    n_head
        Hidden units of the head (1,000).
    seed
        Seeds the head initialisation, the validation split, shuffling and dropout.
    setup
        Where the data live: ``rna_key``, ``atac_key``, ``rna_layer`` (log-normalised expression, the
        target; None = ``.X``) and ``atac_layer`` (the ATAC values fed to the encoder; None = ``.X``).
    origin
        ``"attune_finetuned"`` or ``"mlp_denovo"`` (recorded only).

    Attributes
    ----------
    history
        Per-epoch ``loss`` (training MSE) and ``val_loss`` (validation MSE).
    best_epoch
        Epoch whose weights were kept (lowest ``val_loss``).
    train_indices_, val_indices_
        Cells (positions in the training MuData / matrices) used to fit and to choose the epoch.
    touched_indices_
        Every cell whose data were read during training (train and validation cells only).
    """

    def __init__(self, encoder: StudentEncoder, peak_names: Sequence[str], gene_names: Sequence[str], *,
                 n_head: int = 1000, seed: int = 0, setup: dict | None = None, origin: str = "custom"):
        if not isinstance(encoder, StudentEncoder):
            raise AttuneInputError(f"encoder must be a StudentEncoder, got {type(encoder).__name__}")
        self.peak_names = pd.Index([str(p) for p in peak_names])
        self.gene_names = pd.Index([str(g) for g in gene_names])
        if encoder.n_features != len(self.peak_names):
            raise AttuneInputError(
                f"encoder expects {encoder.n_features} peaks but {len(self.peak_names)} peak_names were given")
        for what, names in (("peak_names", self.peak_names), ("gene_names", self.gene_names)):
            if not names.is_unique:
                raise AttuneInputError(f"{what} are not unique")
        self.seed = int(seed)
        self.setup = {"rna_key": "rna", "atac_key": "atac", "rna_layer": None, "atac_layer": None,
                      **(setup or {})}
        self.origin = origin
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.module = RNAPredictionModule(encoder.cpu(), len(self.gene_names), n_head=n_head)
        self.module.eval()
        self.n_head = int(n_head)
        self.init_params = {"n_head": self.n_head, "seed": self.seed, "origin": origin,
                            "n_hidden": int(encoder.fc1.weight.shape[1]), "n_latent": int(encoder.fc2.out_features),
                            "dropout": float(encoder.dropout.p), "value_batchnorm": encoder.value_bn is not None}
        self._var_names = {"atac": self.peak_names, "rna": self.gene_names}
        self.history = pd.DataFrame()
        self.best_epoch: int | None = None
        self.stopped_early = False
        self.is_trained = False
        self.train_indices_ = np.zeros(0, dtype=np.int64)
        self.val_indices_ = np.zeros(0, dtype=np.int64)
        self.touched_indices_ = np.zeros(0, dtype=np.int64)
        self.pretrained_fingerprint: float | None = None

    # ------------------------------------------------------------------------------ constructors
    @classmethod
    def from_attune(cls, model, *, n_head: int = 1000, seed: int | None = None) -> RNAPredictor:
        """Prediction network initialised from a (pretrained) :class:`~attune_lib.models.Attune` model.

        The ATAC student is deep-copied: fine-tuning never changes ``model``.

        Parameters
        ----------
        model
            An Attune model (ideally trained).
        n_head
            Hidden units of the head.
        seed
            Seed of the head and of training (default: the model's seed).
        """
        if not hasattr(model, "module") or not hasattr(model.module, "atac_student"):
            raise AttuneInputError(f"model must be an Attune model, got {type(model).__name__}")
        if not getattr(model, "is_trained", False):
            warnings.warn("the Attune model is not trained; the prediction network starts from random weights",
                          UserWarning, stacklevel=2)
        student = copy.deepcopy(model.module.atac_student).cpu()
        s = model._setup
        setup = {k: s.get(k) for k in ("rna_key", "atac_key", "rna_layer", "atac_layer")}
        names = model.var_names
        pred = cls(student, names["atac"], names["rna"], n_head=n_head,
                   seed=model.seed if seed is None else seed, setup=setup, origin="attune_finetuned")
        pred.pretrained_fingerprint = _fingerprint(model.module.atac_student)
        return pred

    @classmethod
    @renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod", dropout="dropout_rate")
    def de_novo(cls, mdata=None, *, peak_names: Sequence[str] | None = None,
                gene_names: Sequence[str] | None = None, n_hidden: int = 128, n_latent: int = 128,
                dropout_rate: float = 0.1, n_head: int = 1000, seed: int = 0, rna_mod: str = "rna",
                atac_mod: str = "atac", rna_layer: str | None = None, atac_layer: str | None = None) -> RNAPredictor:
        """The same network with random weights (the paper's de novo MLP).

        Parameters
        ----------
        mdata
            MuData giving the peaks and genes (or pass ``peak_names`` and ``gene_names``).
        n_hidden, n_latent, dropout_rate
            Student encoder architecture (Attune's defaults: 128, 128, 0.1).
        n_head
            Hidden units of the head.
        seed
            Seeds the weights and training.
        rna_mod, atac_mod, rna_layer, atac_layer
            Modalities and layers (target expression, ATAC input); None layers mean ``.X``.
        """
        if mdata is not None:
            peak_names = get_modality(mdata, atac_mod, role="ATAC").var_names
            gene_names = get_modality(mdata, rna_mod, role="RNA").var_names
        if peak_names is None or gene_names is None:
            raise AttuneInputError("pass mdata, or both peak_names and gene_names")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            enc = StudentEncoder(len(peak_names), n_hidden=n_hidden, n_latent=n_latent, dropout_rate=dropout_rate)
        setup = {"rna_key": rna_mod, "atac_key": atac_mod, "rna_layer": rna_layer, "atac_layer": atac_layer}
        return cls(enc, peak_names, gene_names, n_head=n_head, seed=seed, setup=setup, origin="mlp_denovo")

    # ------------------------------------------------------------------------------------- data
    def atac_matrix(self, mdata, *, align: str = "strict") -> sp.csr_matrix:
        """Validated ATAC input of ``mdata`` as CSR in the predictor's peak order (see :func:`align_peaks`)."""
        key, layer = self.setup["atac_key"], self.setup["atac_layer"]
        adata = get_modality(mdata, key, role="ATAC")
        X = _read(adata, key, layer)
        check_values(X, name=_where(key, layer))
        return align_peaks(X, adata.var_names, self.peak_names, align=align, where=f"mdata[{key!r}]")

    def rna_matrix(self, mdata):
        """Target expression of ``mdata`` (cells x genes, predictor gene order; CSR or dense)."""
        key, layer = self.setup["rna_key"], self.setup["rna_layer"]
        adata = get_modality(mdata, key, role="RNA")
        Y = _read(adata, key, layer)
        check_values(Y, name=_where(key, layer), allow_negative=True)
        names = pd.Index(adata.var_names.astype(str))
        if not names.equals(self.gene_names):
            missing = self.gene_names.difference(names, sort=False)
            extra = names.difference(self.gene_names, sort=False)
            if len(missing) or len(extra):
                raise AttuneInputError(
                    f"mdata[{key!r}] has {len(names)} genes but the predictor has {len(self.gene_names)}: "
                    f"{len(missing)} missing, {len(extra)} extra; subset the genes first")
            Y = Y[:, names.get_indexer(self.gene_names)]
        return as_csr(Y) if sp.issparse(Y) else np.asarray(Y, dtype=np.float32)

    # ------------------------------------------------------------------------------------ train
    def train(self, mdata, *, train_indices=None, val_indices=None, validation_fraction: float = 0.1,
              max_epochs: int = 40, batch_size: int = 128, lr: float = 1e-3, patience: int | None = 10,
              min_delta: float = 0.0, device: str = "auto", checkpoint_dir: str | os.PathLike | None = None,
              resume: bool = True, progress_bar: bool = True, callbacks: Iterable[Callable] = (),
              init_output_bias: bool = True) -> None:
        """Train (fine-tune) on the cells of ``mdata``; the epoch kept is chosen on a validation split.

        Parameters
        ----------
        mdata
            Paired MuData with the predictor's peaks and genes.
        train_indices
            Cells (integer positions) to fit on; default: all cells not in ``val_indices``.
            Cells in neither ``train_indices`` nor ``val_indices`` are never read.
        val_indices
            Cells used only to choose the epoch and for early stopping; default: ``validation_fraction``
            of ``train_indices``, drawn with ``seed``.
        validation_fraction
            Fraction of the training cells held out for validation when ``val_indices`` is None.
        max_epochs, batch_size, lr
            Adam with a constant learning rate (the paper: 40 epochs, batch 128, lr 1e-3).
        patience
            Stop after this many epochs without a validation improvement (None: run all epochs).
            The weights of the best validation epoch are kept either way.
        min_delta
            Smallest decrease of the validation loss that counts as an improvement.
        device
            ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``.
        checkpoint_dir
            Write ``last.pt`` (every epoch) and ``best.pt`` (best validation weights) there.
        resume
            Continue from ``checkpoint_dir/last.pt`` when it exists.
        progress_bar
            tqdm bar with the running loss.
        callbacks
            Extra ``fn(trainer, epoch, record)`` called after each epoch.
        init_output_bias
            Start the output bias at the training cells' mean expression (see :meth:`fit_matrices`).
        """
        X = self.atac_matrix(mdata)
        Y = self.rna_matrix(mdata)
        if X.shape[0] != Y.shape[0]:
            raise AttuneInputError(f"ATAC has {X.shape[0]} cells but RNA {Y.shape[0]}; the data must be paired")
        n = X.shape[0]
        train_idx = np.arange(n) if train_indices is None else _as_indices(train_indices, n, "train_indices")
        if val_indices is None:
            if not 0.0 < validation_fraction < 1.0:
                raise AttuneInputError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
            rng = np.random.default_rng([self.seed, 7])
            perm = rng.permutation(train_idx)
            n_val = max(1, round(validation_fraction * perm.size))
            val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        else:
            val_idx = _as_indices(val_indices, n, "val_indices")
            if train_indices is None:
                train_idx = np.setdiff1d(train_idx, val_idx)
        self.fit_matrices(X, Y, train_indices=train_idx, val_indices=val_idx, max_epochs=max_epochs,
                          batch_size=batch_size, lr=lr, patience=patience, min_delta=min_delta, device=device,
                          checkpoint_dir=checkpoint_dir, resume=resume, progress_bar=progress_bar,
                          callbacks=callbacks, init_output_bias=init_output_bias)

    def fit_matrices(self, X_atac, Y, *, train_indices, val_indices, max_epochs: int = 40, batch_size: int = 128,
                     lr: float = 1e-3, patience: int | None = 10, min_delta: float = 0.0, device: str = "auto",
                     checkpoint_dir: str | os.PathLike | None = None, resume: bool = True,
                     progress_bar: bool = True, callbacks: Iterable[Callable] = (), desc: str | None = None,
                     init_output_bias: bool = True) -> None:
        """Train on matrices: ``X_atac`` (cells x peaks, predictor order) and ``Y`` (cells x genes).

        Only the rows in ``train_indices`` (fit) and ``val_indices`` (model choice) are read.
        See :meth:`train` for the options. ``init_output_bias``: before the first training, set the bias
        of the output layer to the mean expression of the training cells (Keras' zero initialisation
        otherwise; it only shortens the first epochs, see ``docs/prediction.md``).
        """
        X = as_csr(X_atac)
        n = X.shape[0]
        if X.shape[1] != len(self.peak_names):
            raise AttuneInputError(f"X_atac has {X.shape[1]} peaks, the predictor {len(self.peak_names)}")
        if Y.shape != (n, len(self.gene_names)):
            raise AttuneInputError(f"Y has shape {Y.shape}, expected ({n}, {len(self.gene_names)})")
        tr = _as_indices(train_indices, n, "train_indices")
        va = _as_indices(val_indices, n, "val_indices")
        if va.size == 0:
            raise AttuneInputError("val_indices is empty; the epoch is chosen on a validation split")
        if np.intersect1d(tr, va).size:
            raise AttuneInputError(f"train_indices and val_indices share {np.intersect1d(tr, va).size} cell(s)")
        if tr.size < 2:
            raise AttuneInputError(f"need at least 2 training cells, got {tr.size}")
        if patience is not None and int(patience) < 1:
            raise AttuneInputError(f"patience must be >= 1 or None, got {patience}")
        fit = np.concatenate([tr, va])
        Yf = Y[fit]
        Yf = as_csr(Yf) if sp.issparse(Yf) else _dense(Yf)
        check_values(Yf, name="Y", allow_negative=True)
        if init_output_bias and not self.is_trained:
            mean = np.asarray(Yf[: tr.size].mean(axis=0), dtype=np.float32).ravel()
            with torch.no_grad():
                self.module.out.bias.copy_(torch.from_numpy(mean))
        source = _RegressionSource(X[fit], Yf, fit)
        ckpt = None if checkpoint_dir is None else Path(checkpoint_dir)
        # the epoch kept is the best on the validation cells; patience=None runs every epoch
        stopping = EarlyStopping(
            monitor="val_loss",
            patience=int(max_epochs) + 1 if patience is None else int(patience),
            min_delta=min_delta,
            restore_best=True,
        )
        trainer = Trainer(
            self.module, source, max_epochs=max_epochs, batch_size=batch_size, lr=lr, lr_end=None,
            validation_fraction=0.0, seed=self.seed, device=device, checkpoint_dir=ckpt, resume=resume,
            progress_bar=progress_bar, callbacks=callbacks, desc=desc or f"RNA from ATAC ({self.origin})",
            early_stopping=stopping,
            fingerprint={"origin": self.origin, "n_head": self.n_head, "n_genes": len(self.gene_names),
                         "n_peaks": len(self.peak_names), "n_train": int(tr.size), "n_val": int(va.size),
                         "features": names_digest([*self.peak_names, "|", *self.gene_names]),
                         "data": data_digest(source.X, Yf, fit)},
            # positions 0..len(tr)-1 of the source are the training cells, the rest validation
            split=(np.arange(tr.size), np.arange(tr.size, fit.size)))
        try:
            trainer.fit()
        finally:
            self.history = trainer.history_frame()
            self.module.eval()
        self.best_epoch = trainer.best_epoch
        self.stopped_early = trainer.stopped_early
        self.is_trained = True
        self.train_indices_, self.val_indices_ = tr, va
        self.touched_indices_ = np.sort(fit[source.touched])

    # ---------------------------------------------------------------------------------- predict
    @torch.no_grad()
    def predict_matrix(self, X_atac, *, batch_size: int = 1024) -> np.ndarray:
        """Predicted expression (cells x genes, float32) for an ATAC matrix in the predictor's peak order."""
        if batch_size < 1:
            raise AttuneInputError(f"batch_size must be >= 1, got {batch_size}")
        X = as_csr(X_atac)
        if X.shape[1] != len(self.peak_names):
            raise AttuneInputError(f"X_atac has {X.shape[1]} peaks, the predictor {len(self.peak_names)}")
        self.module.eval()
        dev = next(self.module.parameters()).device
        out = np.empty((X.shape[0], len(self.gene_names)), dtype=np.float32)
        for st in range(0, X.shape[0], batch_size):
            out[st : st + batch_size] = self.module(csr_batch(X, slice(st, st + batch_size)).to(dev)).cpu().numpy()
        return out

    def predict(self, mdata, *, align: str = "strict", batch_size: int = 1024,
                as_frame: bool = False) -> np.ndarray | pd.DataFrame:
        """Predicted log-normalised expression of the cells of ``mdata`` (only ATAC is read).

        Parameters
        ----------
        mdata
            MuData with an ATAC modality (any cells, seen or not in training).
        align
            ``"strict"`` (the query's peaks must be the training peaks, any order) or ``"by_name"``
            (missing peaks become zeros, extra peaks are dropped; warns). See :func:`align_peaks`.
        batch_size
            Cells per inference batch.
        as_frame
            Return a DataFrame indexed by cell with the gene names as columns.

        Returns
        -------
        ``n_cells x n_genes`` float32 array (predictor gene order) or DataFrame.
        """
        if not self.is_trained:
            warnings.warn("the prediction network is not trained", UserWarning, stacklevel=2)
        X = self.atac_matrix(mdata, align=align)
        P = self.predict_matrix(X, batch_size=batch_size)
        if as_frame:
            obs = get_modality(mdata, self.setup["atac_key"]).obs_names
            return pd.DataFrame(P, index=obs.copy(), columns=self.gene_names.copy())
        return P

    def _layer_order(self, mdata) -> np.ndarray | None:
        """Validate where a predicted layer goes: the query RNA modality's gene order in predictor
        positions, or None when the query has no RNA modality (one is then created)."""
        rkey, akey = self.setup["rna_key"], self.setup["atac_key"]
        atac = get_modality(mdata, akey, role="ATAC")
        rna = mdata.mod.get(rkey) if hasattr(mdata, "mod") else None
        if rna is None:
            return None
        if not rna.obs_names.equals(atac.obs_names):
            raise AttuneInputError(f"mdata[{rkey!r}] and mdata[{akey!r}] must hold the same cells in the "
                                   "same order to write the predicted layer")
        names = pd.Index(rna.var_names.astype(str))
        mismatch = name_mismatch(names, self.gene_names)
        if mismatch:
            raise AttuneInputError(
                f"mdata[{rkey!r}] has {len(names)} genes but the predictor predicts {len(self.gene_names)}: "
                f"{mismatch}; "
                f"subset mdata[{rkey!r}] to the predictor's genes or drop the modality")
        if not names.is_unique:
            raise AttuneInputError(f"mdata[{rkey!r}] has duplicated gene names")
        return self.gene_names.get_indexer(names)

    # ------------------------------------------------------------------------------------ persistence
    def _setup_to_save(self) -> dict[str, Any]:
        return dict(self.setup)

    def _extra_attrs(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch, "stopped_early": bool(self.stopped_early),
                "pretrained_fingerprint": self.pretrained_fingerprint}

    def _extra_tensors(self) -> dict[str, Any]:
        return {k: torch.as_tensor(getattr(self, k), dtype=torch.int64)
                for k in ("train_indices_", "val_indices_", "touched_indices_")}

    def save(self, dir_path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save the network, its features, settings, split and history to a directory, atomically.

        The directory format is shared by every model (see :mod:`attune_lib.models.base`).

        Parameters
        ----------
        dir_path
            Output directory; written to a temporary sibling directory, then renamed.
        overwrite
            Replace an existing directory.
        """
        super().save(dir_path, overwrite=overwrite)

    @classmethod
    def load(cls, dir_path: str | os.PathLike, mdata=None, *, device: str = "auto") -> RNAPredictor:
        """Load a predictor written by :meth:`save` (a single ``.pt`` file of older versions is read too).

        Parameters
        ----------
        dir_path
            Directory written by :meth:`save`.
        mdata
            Optional MuData whose ATAC peaks are checked against the predictor's (nothing is written to it).
        device
            ``"auto"``, ``"cpu"`` or ``"cuda"``.
        """
        from .._utils import resolve_device

        path = Path(dir_path)
        if path.is_file():
            self = cls._load_legacy_file(path)
            self.module.to(resolve_device(device))
            return self
        if not path.exists():
            raise AttuneInputError(f"{path}: no saved RNAPredictor there")
        self = super().load(path, mdata, device=device)
        if mdata is not None:
            self.atac_matrix(mdata)
        return self

    @classmethod
    def _from_saved(cls, saved: SavedModel, mdata) -> RNAPredictor:
        p = saved.init_params
        missing = [m for m in ("atac", "rna") if m not in saved.var_names]
        if missing:
            raise AttuneInputError(f"{saved.path / 'var_names.json'} lacks the modalities {missing}")
        enc = StudentEncoder(len(saved.var_names["atac"]), n_hidden=p["n_hidden"], n_latent=p["n_latent"],
                             dropout_rate=p["dropout"], value_batchnorm=p["value_batchnorm"])
        self = cls(enc, saved.var_names["atac"], saved.var_names["rna"], n_head=p["n_head"], seed=p["seed"],
                   setup=saved.setup, origin=p["origin"])
        cls._load_state(self.module, saved)
        extra = saved.extra
        self.best_epoch = extra.get("best_epoch")
        self.stopped_early = bool(extra.get("stopped_early", False))
        self.pretrained_fingerprint = extra.get("pretrained_fingerprint")
        for k, v in saved.weights.get("extra", {}).items():
            setattr(self, k, v.numpy().astype(np.int64))
        return self

    def _register_loaded(self, saved: SavedModel, mdata) -> None:
        """A predictor reads its setup from its own files; nothing is recorded in ``mdata``."""

    @classmethod
    def _load_legacy_file(cls, path: Path) -> RNAPredictor:
        """Read the single-file format of earlier versions."""
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated/foreign file: name it
            raise AttuneInputError(f"{path}: cannot read a saved RNAPredictor ({type(exc).__name__}: {exc})") from exc
        if not isinstance(obj, dict) or obj.get("format") != _PREDICTOR_FORMAT:
            raise AttuneInputError(f"{path} is not a saved RNAPredictor (format {_PREDICTOR_FORMAT!r} expected)")
        enc = StudentEncoder(len(obj["peak_names"]), **obj["encoder"])
        self = cls(enc, obj["peak_names"], obj["gene_names"], n_head=obj["n_head"], seed=obj["seed"],
                   setup=obj["setup"], origin=obj["origin"])
        self.module.load_state_dict(obj["state"])
        self.module.eval()
        for k in ("is_trained", "best_epoch", "stopped_early", "pretrained_fingerprint"):
            setattr(self, k, obj[k])
        for k, v in obj["indices"].items():
            setattr(self, k, np.asarray(v, dtype=np.int64))
        self.history = pd.DataFrame(
            obj["history"], index=pd.Index(obj["history_index"], name=obj["history_index_name"])
        )
        return self

    def predict_to_layer(self, mdata, *, layer: str = "attune_predicted", align: str = "strict",
                         batch_size: int = 1024) -> None:
        """Write predicted expression to ``mdata["rna"].layers[layer]`` (dense float32).

        When ``mdata`` has an RNA modality it must hold the same cells as ATAC (same order) and the
        predictor's genes (any order; the layer follows the modality's gene order). When it has none, an
        RNA modality with the predictor's genes, ``X=None`` and only this layer is added. Everything is
        validated before anything is written.
        """
        if not isinstance(layer, str) or not layer:
            raise AttuneInputError(f"layer must be a non-empty string, got {layer!r}")
        order = self._layer_order(mdata)
        P = self.predict(mdata, align=align, batch_size=batch_size)
        rkey, akey = self.setup["rna_key"], self.setup["atac_key"]
        if order is not None:
            mdata.mod[rkey].layers[layer] = P if np.array_equal(order, np.arange(len(order))) else P[:, order]
            return
        import anndata as ad

        atac = get_modality(mdata, akey)
        new = ad.AnnData(obs=pd.DataFrame(index=atac.obs_names.copy()),
                         var=pd.DataFrame(index=self.gene_names.copy()))
        new.layers[layer] = P
        mdata.mod[rkey] = new
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            mdata.update()

    def __repr__(self) -> str:
        state = (f"trained, best epoch {self.best_epoch} of {len(self.history)}" if self.is_trained
                 else "not trained")
        n_par = sum(t.numel() for t in self.module.parameters())
        return (f"RNAPredictor ({self.origin}, {state})\n"
                f"  {len(self.peak_names):,} peaks -> student ({self.module.encoder.fc2.out_features}) -> "
                f"{self.n_head} -> {len(self.gene_names):,} genes; {n_par:,} parameters")


def _as_indices(idx, n: int, name: str) -> np.ndarray:
    arr = np.asarray(idx)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise AttuneInputError(f"boolean {name} has shape {arr.shape}, expected ({n},)")
        return np.flatnonzero(arr)
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise AttuneInputError(f"{name} must hold integer cell positions or a boolean mask, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= n:
        raise AttuneInputError(f"{name} has positions outside [0, {n})")
    if np.unique(arr).size != arr.size:
        raise AttuneInputError(f"{name} has repeated cells")
    return np.sort(arr.astype(np.int64))


def _fingerprint(module: nn.Module) -> float:
    """Cheap weight checksum, to notice when the pretrained model changed after a predictor was fit."""
    with torch.no_grad():
        return float(sum(float(p.double().abs().sum()) for p in module.parameters()))


# ------------------------------------------------------------------------------- Attune entry point
def predict_rna_from_atac(model, mdata=None, *, layer: str = "attune_predicted", align: str = "strict",
                          predictor: RNAPredictor | None = None, refit: bool = False, batch_size: int = 1024,
                          **train_kwargs) -> RNAPredictor:
    """Fine-tune the prediction network on ``model``'s training data (once) and predict RNA for ``mdata``.

    Backs :meth:`attune_lib.models.Attune.predict_rna_from_atac`. The first call fine-tunes an
    :class:`RNAPredictor` from a copy of the model's ATAC student on the model's MuData (the epoch
    being chosen on a validation split of those cells) and caches it on the model
    (``model.rna_predictor_``); later calls reuse it unless ``refit=True`` or the pretrained weights
    changed since.

    Parameters
    ----------
    model
        Trained :class:`~attune_lib.models.Attune`.
    mdata
        Query MuData (default: the model's own). Only its ATAC modality is read; cells need not have
        been seen in training.
    layer
        Layer of ``mdata["rna"]`` receiving the predicted log-normalised expression.
    align
        ``"strict"`` or ``"by_name"``; see :func:`align_peaks`.
    predictor
        Use this trained predictor instead of the cached one.
    refit
        Fine-tune again even when a cached predictor exists.
    batch_size
        Cells per inference batch.
    **train_kwargs
        Passed to :meth:`RNAPredictor.train` (``max_epochs``, ``batch_size`` is ``train_batch_size``
        here, ``validation_fraction``, ``patience``, ``device``, ``progress_bar``, ...).

    Returns
    -------
    The predictor used.
    """
    query = model.mdata if mdata is None else mdata
    if align not in _ALIGN:
        raise AttuneInputError(f"align must be one of {_ALIGN}, got {align!r}")
    if predictor is None:
        cached = getattr(model, "rna_predictor_", None)
        stale = cached is not None and cached.pretrained_fingerprint != _fingerprint(model.module.atac_student)
        if stale and not refit:
            warnings.warn("the Attune model changed since its prediction network was fine-tuned; fine-tuning again",
                          UserWarning, stacklevel=2)
        if cached is None or refit or stale:
            if "train_batch_size" in train_kwargs:
                train_kwargs["batch_size"] = train_kwargs.pop("train_batch_size")
            new = RNAPredictor.from_attune(model, seed=train_kwargs.pop("seed", None),
                                           n_head=train_kwargs.pop("n_head", 1000))
            # validate the query before spending time on training
            new.atac_matrix(query, align=align)
            new._layer_order(query)
            new.train(model.mdata, **train_kwargs)
            model.rna_predictor_ = cached = new
        elif train_kwargs:
            warnings.warn(f"training options {sorted(train_kwargs)} ignored: the cached prediction network is "
                          "reused; pass refit=True to fine-tune again", UserWarning, stacklevel=2)
        predictor = cached
    elif not isinstance(predictor, RNAPredictor):
        raise AttuneInputError(f"predictor must be an RNAPredictor, got {type(predictor).__name__}")
    predictor.predict_to_layer(query, layer=layer, align=align, batch_size=batch_size)
    return predictor
