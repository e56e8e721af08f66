"""``RegulatoryTransformer``: gene-peak decoder on frozen feature tokens, and its global attention scores.

Token sources (frozen; the decoder never changes them):

* :class:`AttuneTokenSource` - a pretrained :class:`~attune_lib.models.Attune` model's teachers:
  ``token_i = BN(x_i) E_i`` with the eval-mode value batch norm, i.e. ``x_i (scale_i E_i) + shift_i E_i``
  (the same tokens as :meth:`Attune.get_tokens`, zero-valued features included);
* :class:`PCATokenSource` - the "PCA + Transformer" ablation: per modality, a PCA with ``n_comps`` (10)
  components of the standardised values (RNA: log-normalised ``.X``; ATAC: TF-IDF). Feature ``i``'s
  embedding is its loading vector ``L_i`` (``n_comps``) mapped to ``d`` dimensions by a fixed random
  orthonormal projection ``Pi`` (``n_comps x d``, seeded): ``E_i = L_i Pi``; its token in a cell is the
  standardised value times the embedding, ``z_i E_i`` with ``z_i = (x_i - mean_i) / sd_i``.

Both are affine in the raw value, ``x_i slope_i + offset_i`` (:class:`~._transformer_nn.AffineTokens`). With
``token_scaling=True`` (default) both sequences are divided by the root-mean-square of their tokens
(over up to 256 cells), so the decoder sees unit-scale inputs whatever the source.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .._genomics import gene_peak_pairs
from .._utils import (
    AttuneInputError,
    as_csr,
    check_values,
    get_modality,
    progress,
    renamed_kwargs,
    resolve_device,
)
from ._data import PairedCSRSource, csr_batch
from ._training import Trainer
from ._transformer_nn import AffineTokens, AttentionPattern, RegulatoryDecoderModule
from .base import BaseModel, SavedModel, data_digest, names_digest, read_setup

__all__ = ["AttuneTokenSource", "PCATokenSource", "RegulatoryTransformer", "TokenSource", "links_to_sparse"]

_MODS = ("rna", "atac")


def _read_values(mdata, key: str, layer: str | None, var_names: pd.Index) -> sp.csr_matrix:
    adata = get_modality(mdata, key)
    if layer is not None:
        if layer not in adata.layers:
            raise AttuneInputError(f"layer {layer!r} not found in mdata[{key!r}].layers; available: "
                                   f"{sorted(adata.layers)}")
        X = adata.layers[layer]
    else:
        X = adata.X
    where = f"mdata[{key!r}]." + (f"layers[{layer!r}]" if layer else "X")
    check_values(X, name=where)
    X = as_csr(X)
    if not adata.var_names.equals(var_names):
        idx = adata.var_names.get_indexer(var_names)
        if (idx < 0).any():
            raise AttuneInputError(f"mdata[{key!r}] lacks {int((idx < 0).sum())} feature(s) of the token source, "
                                   f"e.g. {list(var_names[idx < 0][:3])}")
        X = X[:, idx]
    if not X.has_canonical_format:
        X.sum_duplicates()
    return X


class TokenSource:
    """Frozen per-feature affine tokens of genes and peaks and the values they multiply.

    Subclasses set ``name``, ``var_names`` (``{"rna": Index, "atac": Index}``), ``keys`` (modality names),
    implement :meth:`affine` (``{mod: (slope, offset)}``, ``n_features x d`` float32 arrays) and
    :meth:`matrices` (``{mod: CSR cells x features}`` in ``var_names`` order).
    """

    name = "tokens"
    var_names: dict[str, pd.Index]
    keys: dict[str, str]
    layers: dict[str, str | None]

    def affine(self) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def matrices(self, mdata, modalities=_MODS) -> dict[str, sp.csr_matrix]:
        """The values the tokens multiply, per modality (CSR cells x features, ``var_names`` order).

        ``layers[mod]`` names the layer (None: ``.X``); ATAC layer ``"tfidf"`` is computed from
        ``counts`` (or ``.X``) when the modality has no such layer.

        Parameters
        ----------
        mdata
            MuData holding the source's features.
        modalities
            Modalities to read.
        """
        from ..pp._atac import tfidf_matrix

        out = {}
        for m in modalities:
            adata = get_modality(mdata, self.keys[m])
            layer = self.layers[m]
            if m == "atac" and layer == "tfidf" and "tfidf" not in adata.layers:
                src = "counts" if "counts" in adata.layers else None
                C = _read_values(mdata, self.keys[m], src, self.var_names[m])
                out[m] = tfidf_matrix(C)
            else:
                out[m] = _read_values(mdata, self.keys[m], layer, self.var_names[m])
        return out


class _SavedTokenSource(TokenSource):
    """The token source of a loaded transformer: its tokens are in the saved weights."""

    def __init__(self, name: str, var_names: dict[str, pd.Index], keys: dict[str, str],
                 layers: dict[str, str | None]):
        self.name, self.var_names, self.keys, self.layers = name, var_names, keys, layers

    def affine(self):  # pragma: no cover - the loaded module already holds the tokens
        raise AttuneInputError("a loaded transformer's tokens are in its weights")


class AttuneTokenSource(TokenSource):
    """Tokens of a pretrained :class:`~attune_lib.models.Attune` model's teachers (eval mode, frozen).

    The values are read like the model reads them (the layers recorded by ``Attune.setup_mudata``).

    Parameters
    ----------
    model
        A trained :class:`~attune_lib.models.Attune` model; its MuData setup tells which layers the values
        come from.
    """

    name = "attune"

    def __init__(self, model):
        self.model = model
        self.var_names = model.var_names
        setup = dict(getattr(model, "_setup", None) or read_setup(model.mdata, "Attune") or {})
        self.keys = {"rna": setup.get("rna_key", "rna"), "atac": setup.get("atac_key", "atac")}
        self.layers = {"rna": setup.get("rna_layer"), "atac": setup.get("atac_layer")}
        if not getattr(model, "is_trained", True):
            import logging

            logging.getLogger("attune_lib").warning("AttuneTokenSource: the Attune model is not trained")

    @torch.no_grad()
    def affine(self):
        out = {}
        for mod in _MODS:
            t = self.model.module.network(mod, "teacher")
            E = t.embedding.detach().float().cpu()
            bn = t.value_bn
            if bn is None:
                out[mod] = (E.numpy().copy(), None)
                continue
            scale = bn.weight.detach().cpu() * torch.rsqrt(bn.running_var.cpu() + bn.eps)
            shift = bn.bias.detach().cpu() - bn.running_mean.cpu() * scale
            out[mod] = ((scale[:, None] * E).numpy(), (shift[:, None] * E).numpy())
        return out



class PCATokenSource(TokenSource):
    """Tokens from the first ``n_comps`` principal components of each modality (the PCA ablation).

    Parameters
    ----------
    mdata
        MuData with ``rna`` (log-normalised values in ``.X`` or ``rna_layer``) and ``atac``.
    n_comps
        Principal components per modality (10 in the paper).
    n_hidden
        Token dimension ``d``.
    rna_layer
        RNA values (None: ``.X``).
    atac_layer
        ATAC values: ``"tfidf"`` (computed from ``counts``/``.X`` when the layer is absent) or another layer.
    seed
        Seeds the PCA solver and the random projection.
    rna_mod
        RNA modality name.
    atac_mod
        ATAC modality name.
    """

    name = "pca"

    @renamed_kwargs(rna_key="rna_mod", atac_key="atac_mod")
    def __init__(self, mdata, *, n_comps: int = 10, n_hidden: int = 128, rna_mod: str = "rna",
                 atac_mod: str = "atac", rna_layer: str | None = None, atac_layer: str | None = "tfidf",
                 seed: int = 0):
        from sklearn.decomposition import PCA

        if int(n_comps) < 1:
            raise AttuneInputError(f"n_comps must be >= 1, got {n_comps}")
        self.keys = {"rna": rna_mod, "atac": atac_mod}
        self.layers = {"rna": rna_layer, "atac": atac_layer}
        self.var_names = {m: get_modality(mdata, self.keys[m]).var_names.copy() for m in _MODS}
        self.n_comps, self.n_hidden, self.seed = int(n_comps), int(n_hidden), int(seed)
        rng = np.random.default_rng([seed, 7])
        self._affine = {}
        for mod in _MODS:
            X = self.matrices(mdata, modalities=(mod,))[mod].astype(np.float64)
            n, F = X.shape
            mean = np.asarray(X.mean(0)).ravel()
            var = np.asarray(X.multiply(X).mean(0)).ravel() - mean**2
            sd = np.sqrt(np.maximum(var, 0))
            sd[sd == 0] = 1.0
            k = min(self.n_comps, min(n, F) - 1)
            if k < 1:
                raise AttuneInputError(f"too few cells/features for a PCA of {mod} (shape {X.shape})")
            Xs = X @ sp.diags(1.0 / sd)
            pca = PCA(k, svd_solver="arpack", random_state=seed).fit(Xs.tocsr())
            L = pca.components_.T  # F x k loadings
            Q, _ = np.linalg.qr(rng.normal(size=(self.n_hidden, self.n_comps)))
            Pi = Q[:, :k].T * math.sqrt(self.n_hidden / k)  # k x d, orthonormal rows (scaled)
            E = L @ Pi
            self._affine[mod] = ((E / sd[:, None]).astype(np.float32),
                                 (-(mean / sd)[:, None] * E).astype(np.float32))
            self.explained_variance_ratio_ = getattr(self, "explained_variance_ratio_", {})
            self.explained_variance_ratio_[mod] = pca.explained_variance_ratio_

    def affine(self):
        return dict(self._affine)



class RegulatoryTransformer(BaseModel):
    """Transformer decoder over frozen gene and peak tokens; its cross-attention scores gene-peak pairs.

    Parameters
    ----------
    source
        A trained :class:`~attune_lib.models.Attune` model ("Attune + Transformer"), ``"pca"`` (the
        "PCA + Transformer" ablation, :class:`PCATokenSource` with ``n_comps``) or a :class:`TokenSource`.
    mdata
        Paired MuData with gene (``rna.var``: ``chrom``, ``tss``, optional ``annotated``) and peak
        (``atac.var``: ``chrom``, ``start``, ``end``) coordinates. Default: the Attune model's MuData.
    window_bp
        A gene attends to the peaks whose midpoint lies within this distance of its TSS (1.2 Mb).
    n_hidden, n_heads, n_layers, d_ff, dropout_rate
        Decoder size (128, 1, 1, 512, 0.1 as in the original).
    temperature
        NT-Xent temperature of the CLS contrast (0.1).
    attention
        ``"sparse"`` (segment softmax over the in-window pairs) or ``"dense"`` (masked dense reference).
    token_scaling
        Divide each modality's tokens by their root-mean-square (see module docstring).
    hard_negatives
        Mismatched pairs of the matching loss drawn from the CLS-similarity softmax (True, ALBEF-style) or
        uniformly (ablation).
    n_comps
        PCA components for ``source="pca"``.
    seed
        Seeds weights, shuffling, dropout, hard-negative sampling and the PCA source.

    Examples
    --------
    >>> rt = RegulatoryTransformer(attune_model, mdata, window_bp=1_200_000)
    >>> rt.train(max_epochs=5)
    >>> links = rt.get_global_attention(key_added="attune_links")  # also in mdata.uns["attune_links"]
    """

    @renamed_kwargs(dropout="dropout_rate")
    def __init__(self, source, mdata=None, *, window_bp: float = 1_200_000, n_hidden: int = 128, n_heads: int = 1,
                 n_layers: int = 1, d_ff: int = 512, dropout_rate: float = 0.1, temperature: float = 0.1,
                 attention: str = "sparse", token_scaling: bool = True, hard_negatives: bool = True,
                 n_comps: int = 10, seed: int = 0):
        if isinstance(source, str):
            if source != "pca":
                raise AttuneInputError(f"source must be an Attune model, 'pca' or a TokenSource, got {source!r}")
            if mdata is None:
                raise AttuneInputError("source='pca' needs mdata")
            source = PCATokenSource(mdata, n_comps=n_comps, n_hidden=n_hidden, seed=seed)
        elif not isinstance(source, TokenSource):
            if not hasattr(source, "module") or not hasattr(source, "var_names"):
                raise AttuneInputError(f"source must be an Attune model, 'pca' or a TokenSource, "
                                       f"got {type(source).__name__}")
            mdata = source.mdata if mdata is None else mdata
            source = AttuneTokenSource(source)
        if mdata is None:
            raise AttuneInputError("mdata is required")
        if not window_bp > 0:
            raise AttuneInputError(f"window_bp must be > 0, got {window_bp}")
        self.mdata, self.source = mdata, source
        self._var_names = dict(source.var_names)
        pairs = gene_peak_pairs(mdata, window_bp=window_bp, rna_mod=source.keys["rna"], atac_mod=source.keys["atac"],
                                genes=self.var_names["rna"], peaks=self.var_names["atac"])
        self.pairs = pairs[["gene", "peak", "distance", "gene_idx", "peak_idx"]]
        self.init_params = {"window_bp": float(window_bp), "n_hidden": int(n_hidden), "n_heads": int(n_heads),
                            "n_layers": int(n_layers), "d_ff": int(d_ff), "dropout": float(dropout_rate),
                            "temperature": float(temperature), "attention": attention,
                            "token_scaling": bool(token_scaling), "hard_negatives": bool(hard_negatives),
                            "seed": int(seed), "source": source.name}
        pattern = AttentionPattern(len(self.var_names["rna"]), len(self.var_names["atac"]),
                                   pairs["gene_idx"].to_numpy(), pairs["peak_idx"].to_numpy())
        self.pattern = pattern
        aff = source.affine()
        mats = source.matrices(mdata)
        self._matrices = mats
        toks = {}
        rng = np.random.default_rng([seed, 3])
        sample = np.sort(rng.choice(mats["rna"].shape[0], size=min(256, mats["rna"].shape[0]), replace=False))
        for mod in _MODS:
            t = AffineTokens(torch.from_numpy(aff[mod][0]),
                             None if aff[mod][1] is None else torch.from_numpy(aff[mod][1]))
            if token_scaling:
                rms = t.rms(torch.from_numpy(mats[mod][sample].toarray()))
                t.scale.fill_(1.0 / rms if rms > 0 else 1.0)
            toks[mod] = t
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.module = RegulatoryDecoderModule(
                toks["rna"], toks["atac"], pattern, n_hidden=n_hidden, n_heads=n_heads, n_layers=n_layers,
                d_ff=d_ff, dropout_rate=dropout_rate, temperature=temperature, attention=attention,
                hard_negatives=hard_negatives)
        self.module.eval()
        self.history = pd.DataFrame()
        self.is_trained = False

    # -------------------------------------------------------------------------------------- save/load
    def _setup_to_save(self) -> dict[str, Any]:
        src = self.source
        return {"source": src.name, "rna_key": src.keys["rna"], "atac_key": src.keys["atac"],
                "rna_layer": src.layers["rna"], "atac_layer": src.layers["atac"]}

    def _extra_tensors(self) -> dict[str, Any]:
        return {
            c: torch.as_tensor(self.pairs[c].to_numpy(dtype=np.int64)) for c in ("gene_idx", "peak_idx", "distance")
        }

    def save(self, dir_path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save the decoder, its frozen tokens, the in-window pairs, settings and history to a directory.

        The directory format is shared by every model (see :mod:`attune_lib.models.base`). The tokens
        are stored with the weights, so loading needs neither the Attune model nor a new PCA.

        Parameters
        ----------
        dir_path
            Output directory (written atomically).
        overwrite
            Replace an existing directory.
        """
        super().save(dir_path, overwrite=overwrite)

    @classmethod
    def load(cls, dir_path: str | os.PathLike, mdata, *, device: str = "auto") -> RegulatoryTransformer:
        """Load a transformer saved with :meth:`save` onto ``mdata`` (same genes and peaks, any order).

        Nothing is written to ``mdata``.

        Parameters
        ----------
        dir_path
            Directory written by :meth:`save`.
        mdata
            MuData with the saved genes and peaks and the layers the token source read.
        device
            ``"auto"``, ``"cpu"`` or ``"cuda"``.
        """
        return super().load(dir_path, mdata, device=device)

    @classmethod
    def _from_saved(cls, saved: SavedModel, mdata) -> RegulatoryTransformer:
        p, st = saved.init_params, saved.setup
        var_names = {m: saved.var_names[m] for m in _MODS}
        source = _SavedTokenSource(st.get("source", p.get("source", "tokens")), var_names,
                                   {m: st.get(f"{m}_key", m) for m in _MODS},
                                   {m: st.get(f"{m}_layer") for m in _MODS})
        extra = saved.weights.get("extra", {})
        try:
            gi, pi, dist = (extra[c].numpy() for c in ("gene_idx", "peak_idx", "distance"))
        except KeyError as err:
            raise AttuneInputError(f"{saved.path / 'model.pt'} lacks the in-window pairs ({err})") from err
        sd = saved.weights["state_dict"]
        self = cls.__new__(cls)
        self.mdata, self.source, self._var_names = mdata, source, var_names
        self.pairs = pd.DataFrame({"gene": var_names["rna"].to_numpy()[gi].astype(str),
                                   "peak": var_names["atac"].to_numpy()[pi].astype(str),
                                   "distance": dist, "gene_idx": gi, "peak_idx": pi})
        self.init_params = p
        self.pattern = AttentionPattern(len(var_names["rna"]), len(var_names["atac"]), gi, pi)
        self._matrices = source.matrices(mdata)  # validates modalities, layers, values and features
        toks = {m: AffineTokens(torch.zeros_like(sd[f"{m}_tokens.slope"])) for m in _MODS}
        self.module = RegulatoryDecoderModule(
            toks["rna"], toks["atac"], self.pattern, n_hidden=p["n_hidden"], n_heads=p["n_heads"],
            n_layers=p["n_layers"], d_ff=p["d_ff"], dropout_rate=p["dropout"], temperature=p["temperature"],
            attention=p["attention"], hard_negatives=p["hard_negatives"])
        cls._load_state(self.module, saved)
        return self

    def _register_loaded(self, saved: SavedModel, mdata) -> None:
        """The transformer keeps its settings in its own files; nothing is recorded in ``mdata``."""

    def __repr__(self) -> str:
        p = self.init_params
        state = f"trained {len(self.history)} epoch(s)" if self.is_trained else "not trained"
        return (f"RegulatoryTransformer ({state}; tokens: {p['source']})\n"
                f"  {len(self.var_names['rna']):,} genes x {len(self.var_names['atac']):,} peaks, "
                f"{len(self.pairs):,} pairs within {p['window_bp'] / 1e3:g} kb "
                f"({100 * self.pattern.density():.2f} % of all pairs)\n"
                f"  n_hidden={p['n_hidden']}, n_heads={p['n_heads']}, n_layers={p['n_layers']}, d_ff={p['d_ff']}, "
                f"dropout={p['dropout']}, attention={p['attention']!r}")

    # ------------------------------------------------------------------------------------------ train
    def train(self, *, max_epochs: int = 5, batch_size: int = 4, lr: float = 1e-4, lr_end: float = 1e-6,
              weight_decay: float = 0.0, grad_clip: float | None = 1.0, validation_fraction: float = 0.0,
              device: str = "auto", checkpoint_dir: str | os.PathLike | None = None, resume: bool = True,
              progress_bar: bool = True, callbacks: Iterable[Callable] = ()) -> None:
        """Train the decoder (CLS contrast + RNA-ATAC matching); the token source stays frozen.

        Parameters
        ----------
        max_epochs
            Epochs (5 in the paper).
        batch_size
            Cells per batch (4 for 10x data in the original; >= 2, the contrast and hard negatives need it).
        lr, lr_end
            Adam learning rate, decaying linearly from ``lr`` to ``lr_end``.
        grad_clip
            Clip the global gradient norm (None: off).
        validation_fraction, device, checkpoint_dir, resume, progress_bar, callbacks
            As in :class:`~attune_lib.models.Trainer`.
        """
        source = PairedCSRSource(self._matrices)
        trainer = Trainer(self.module, source, max_epochs=max_epochs, batch_size=batch_size, lr=lr, lr_end=lr_end,
                          weight_decay=weight_decay, validation_fraction=validation_fraction,
                          seed=self.init_params["seed"], device=device, checkpoint_dir=checkpoint_dir,
                          resume=resume, progress_bar=progress_bar, callbacks=callbacks, grad_clip=grad_clip,
                          fingerprint={**self.init_params, "n_pairs": len(self.pairs),
                                       "features": names_digest([*self._var_names["rna"], "|",
                                                                 *self._var_names["atac"]]),
                                       "data": data_digest(source.matrices["rna"], source.matrices["atac"],
                                                           self.pairs["gene_idx"].to_numpy(),
                                                           self.pairs["peak_idx"].to_numpy())},
                          desc="Transformer")
        try:
            trainer.fit()
        finally:
            self.history = trainer.history_frame()
            self.is_trained = trainer.epoch > 0
            self.module.eval()

    # -------------------------------------------------------------------------------------- inference
    def _cells(self, cells) -> np.ndarray:
        from ._attune import (
            Attune,  # one cell-selection rule (mask, indices or names) for all models
        )

        return Attune._resolve_cells(get_modality(self.mdata, self.source.keys["rna"]), cells)

    @torch.no_grad()
    def get_global_attention(self, *, cells=None, batch_size: int = 16, key_added: str | None = "attune_links",
                             attention: str | None = None, device: str | None = None,
                             progress_bar: bool = False) -> pd.DataFrame:
        """Global cross-attention score of every in-window gene-peak pair (eval mode).

        Per cell ``c``, with the last layer's cross-attention weights (mean over heads):
        ``a_c(g)`` = gene ``g``'s weight on the peak-CLS token, ``b_c(p)`` = the gene-CLS token's weight on
        peak ``p``. ``score(g, p) = sum_c a_c(g) b_c(p)`` for in-window pairs (the outer product of the two
        CLS attention vectors, summed over cells, CLS dropped, times the window mask; reference notes).
        Also reported: ``pair_score`` = mean over cells of gene ``g``'s own weight on peak ``p``, and
        ``cov_score`` = ``mean_c a_c(g) b_c(p) - mean_c a_c(g) mean_c b_c(p)`` (the cell-level covariance part
        of ``score / n_cells``).

        Parameters
        ----------
        cells
            Cells to sum over (indices, boolean mask or names; default all). The paper used 900 T, B and
            monocyte cells for the PCHi-C comparison.
        batch_size
            Cells per inference batch.
        key_added
            Store the table in ``mdata.uns[key_added]`` (None: only return). A DataFrame in ``uns``
            round-trips through ``.h5mu``.
        attention
            Override the implementation (``"sparse"``/``"dense"``).

        Returns
        -------
        DataFrame ``gene, peak, distance, score, pair_score, cov_score`` (one row per in-window pair).
        """
        idx = self._cells(cells)
        if len(idx) == 0:
            raise AttuneInputError("no cells selected")
        dev = resolve_device(device) if device is not None else self.device
        self.module.to(dev).eval()
        gi = torch.from_numpy(self.pairs["gene_idx"].to_numpy()).to(dev)
        pi = torch.from_numpy(self.pairs["peak_idx"].to_numpy()).to(dev)
        n_pairs = len(self.pairs)
        s_ab = torch.zeros(n_pairs, dtype=torch.float64, device=dev)
        s_pair = torch.zeros(n_pairs, dtype=torch.float64, device=dev)
        s_a = torch.zeros(len(self.var_names["rna"]), dtype=torch.float64, device=dev)
        s_b = torch.zeros(len(self.var_names["atac"]), dtype=torch.float64, device=dev)
        Xr, Xa = self._matrices["rna"][idx], self._matrices["atac"][idx]
        steps = range(0, len(idx), batch_size)
        for st in progress(steps, enabled=progress_bar, desc="attention", unit="batch"):
            batch = {"rna": csr_batch(Xr, slice(st, st + batch_size)).to(dev),
                     "atac": csr_batch(Xa, slice(st, st + batch_size)).to(dev)}
            w = self.module.cell_attention(batch, attention=attention)
            a, b = w["gene_to_cls"].double(), w["cls_to_peak"].double()
            s_ab += (a[:, gi] * b[:, pi]).sum(0)
            s_pair += w["pair"].double().sum(0)
            s_a += a.sum(0)
            s_b += b.sum(0)
        n = float(len(idx))
        out = self.pairs[["gene", "peak", "distance"]].copy()
        out["score"] = s_ab.cpu().numpy()
        out["pair_score"] = (s_pair / n).cpu().numpy()
        out["cov_score"] = (s_ab / n - (s_a[gi] / n) * (s_b[pi] / n)).cpu().numpy()
        out = out.reset_index(drop=True)
        if key_added is not None:
            if not isinstance(key_added, str) or not key_added:
                raise AttuneInputError(f"key_added must be a non-empty string or None, got {key_added!r}")
            self.mdata.uns[key_added] = out
        return out

    @torch.no_grad()
    def get_cls_embeddings(self, *, cells=None, batch_size: int = 64) -> dict[str, np.ndarray]:
        """Output gene-CLS and peak-CLS vectors (``cells x d``) in eval mode."""
        idx = self._cells(cells)
        dev = self.device
        self.module.eval()
        g, p = [], []
        Xr, Xa = self._matrices["rna"][idx], self._matrices["atac"][idx]
        for st in range(0, len(idx), batch_size):
            batch = {"rna": csr_batch(Xr, slice(st, st + batch_size)).to(dev),
                     "atac": csr_batch(Xa, slice(st, st + batch_size)).to(dev)}
            out = self.module(batch)
            g.append(out["gene_cls"].cpu().numpy())
            p.append(out["peak_cls"].cpu().numpy())
        return {"gene_cls": np.concatenate(g), "peak_cls": np.concatenate(p)}


def links_to_sparse(links: pd.DataFrame, genes: pd.Index, peaks: pd.Index, *, column: str = "score") -> sp.csr_matrix:
    """A link table as a ``genes x peaks`` CSR matrix of ``column`` (pairs absent from the table are 0).

    Parameters
    ----------
    links
        Link table with ``gene``, ``peak`` and ``column``.
    genes
        Row order (gene names).
    peaks
        Column order (peak names).
    column
        Column of ``links`` holding the values.
    """
    gi = pd.Index(genes).get_indexer(links["gene"].astype(str))
    pi = pd.Index(peaks).get_indexer(links["peak"].astype(str))
    ok = (gi >= 0) & (pi >= 0)
    return sp.csr_matrix((links[column].to_numpy(dtype=np.float64)[ok], (gi[ok], pi[ok])),
                         shape=(len(genes), len(peaks)))

