"""Models (scvi-tools style): :class:`Attune` and the reusable building blocks.

* :class:`Attune` - user class: ``setup_mudata``, ``train``, ``get_latent_representation``, ``map_query``,
  ``get_feature_attention``, ``get_tokens``, ``save``/``load``.
* :class:`AttuneModule` - the torch module (two teacher-student pairs, NT-Xent loss).
* :class:`Trainer` - the one training loop of every model (Adam, linear lr decay, validation, phases,
  early stopping, step budget, atomic checkpoints with data fingerprints, exact resume).
* :class:`BaseModel` - the shared contract (setup registry, ``is_trained``, ``history``, save/load);
  see :mod:`attune_lib.models.base`.
* :class:`CSRBatch`, :class:`PairedCSRSource` - sparse mini-batching.
* :class:`OnDiskPairedSource`, :func:`prefetch_batches` - streaming mini-batches from ``.h5ad`` files.
* :func:`init_distributed` - data-parallel training under ``torchrun`` (see :mod:`._distributed`).
"""

from ._attune import Attune
from ._attune_losses import CONTRAST_PAIRS, contrastive_loss, nt_xent
from ._attune_module import AttuneModule
from ._attune_nn import SparseFeatureBatchNorm, StudentEncoder, TeacherEncoder
from ._data import CSRBatch, PairedCSRSource, csr_batch, iter_index_batches
from ._distributed import init_distributed
from ._streaming import OnDiskPairedSource, prefetch_batches
from ._training import EarlyStopping, Phase, StopTraining, Trainer, atomic_torch_save, evaluate_loss
from .base import BaseModel

__all__ = [
    "CONTRAST_PAIRS",
    "Attune",
    "AttuneModule",
    "BaseModel",
    "CSRBatch",
    "EarlyStopping",
    "OnDiskPairedSource",
    "PairedCSRSource",
    "Phase",
    "SparseFeatureBatchNorm",
    "StopTraining",
    "StudentEncoder",
    "TeacherEncoder",
    "Trainer",
    "atomic_torch_save",
    "contrastive_loss",
    "csr_batch",
    "evaluate_loss",
    "init_distributed",
    "iter_index_batches",
    "nt_xent",
    "prefetch_batches",
]

from ._prediction import RNAPredictionModule, RNAPredictor, align_peaks, predict_rna_from_atac
from ._scmvp import ScMVP
from ._transformer import AttuneTokenSource, PCATokenSource, RegulatoryTransformer, TokenSource, links_to_sparse
from ._transformer_nn import RegulatoryDecoderModule

__all__ += [
    "RNAPredictionModule", "RNAPredictor", "align_peaks", "predict_rna_from_atac", "ScMVP",
    "RegulatoryTransformer", "RegulatoryDecoderModule", "TokenSource", "AttuneTokenSource", "PCATokenSource",
    "links_to_sparse",
]
