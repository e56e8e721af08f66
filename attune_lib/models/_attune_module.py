"""``AttuneModule``: the two teacher-student pairs and the contrastive pretraining loss (torch only)."""

from __future__ import annotations

import torch
from torch import nn

from .._utils import AttuneInputError, renamed_kwargs
from ._attune_losses import CONTRAST_PAIRS, contrastive_loss
from ._attune_nn import StudentEncoder, TeacherEncoder
from ._data import CSRBatch
from ._distributed import all_gather_cat, is_distributed

__all__ = ["AttuneModule"]


class AttuneModule(nn.Module):
    """RNA and ATAC teacher-student networks trained with cross-modal NT-Xent.

    Parameters
    ----------
    n_genes, n_peaks
        Input features per modality.
    n_hidden
        Feature-embedding dimension of the teachers and hidden width of the students (128).
    n_latent
        Output (embedding) dimension of all four networks (128).
    dropout_rate
        Dropout rate (0.1; old name ``dropout``).
    value_batchnorm
        Teachers pass the values through a per-feature batch norm first (the original does).
    temperature
        NT-Xent temperature (0.1).
    contrast
        ``"default"``, ``"intra"`` or ``"cross"``; see :mod:`._attune_losses`.

    The batch is ``{"rna": CSRBatch, "atac": CSRBatch}`` with the same cells in the same order;
    :meth:`loss` returns the scvi-tools style dict consumed by :class:`._training.Trainer`.
    """

    @renamed_kwargs(dropout="dropout_rate")
    def __init__(self, n_genes: int, n_peaks: int, *, n_hidden: int = 128, n_latent: int = 128,
                 dropout_rate: float = 0.1, value_batchnorm: bool = True, temperature: float = 0.1,
                 contrast: str = "default"):
        super().__init__()
        if contrast not in CONTRAST_PAIRS:
            raise AttuneInputError(f"contrast must be one of {sorted(CONTRAST_PAIRS)}, got {contrast!r}")
        if not 0.0 <= dropout_rate < 1.0:
            raise AttuneInputError(f"dropout_rate must be in [0, 1), got {dropout_rate}")
        if temperature <= 0:
            raise AttuneInputError(f"temperature must be > 0, got {temperature}")
        for name, n in (("n_hidden", n_hidden), ("n_latent", n_latent), ("n_genes", n_genes), ("n_peaks", n_peaks)):
            if int(n) < 1:
                raise AttuneInputError(f"{name} must be >= 1, got {n}")
        self.contrast = contrast
        self.temperature = float(temperature)
        kw = {"n_hidden": n_hidden, "n_latent": n_latent, "dropout_rate": dropout_rate}
        self.rna_teacher = TeacherEncoder(n_genes, value_batchnorm=value_batchnorm, **kw)
        self.atac_teacher = TeacherEncoder(n_peaks, value_batchnorm=value_batchnorm, **kw)
        # the original student always batch-normalises its input values
        self.rna_student = StudentEncoder(n_genes, **kw)
        self.atac_student = StudentEncoder(n_peaks, **kw)

    def network(self, modality: str, network: str) -> nn.Module:
        if modality not in ("rna", "atac"):
            raise AttuneInputError(f"modality must be 'rna' or 'atac', got {modality!r}")
        if network not in ("teacher", "student"):
            raise AttuneInputError(f"network must be 'teacher' or 'student', got {network!r}")
        return getattr(self, f"{modality}_{network}")

    def forward(self, batch: dict[str, CSRBatch]) -> dict[str, torch.Tensor]:
        """The four ``B x n_latent`` embeddings (not normalised)."""
        return {
            "rna_teacher": self.rna_teacher(batch["rna"]),
            "atac_teacher": self.atac_teacher(batch["atac"]),
            "rna_student": self.rna_student(batch["rna"]),
            "atac_student": self.atac_student(batch["atac"]),
        }

    def loss(self, batch: dict[str, CSRBatch]) -> dict[str, torch.Tensor]:
        """``{"loss": ..., "loss_<term>": ...}`` for the configured contrast design.

        In distributed training the embeddings of every rank are all-gathered with gradient first, so the
        loss is the NT-Xent of the global batch (negatives from all ranks); see :mod:`._distributed`.
        """
        emb = self(batch)
        if self.training and is_distributed():
            emb = {k: all_gather_cat(v) for k, v in emb.items()}
        return contrastive_loss(emb, contrast=self.contrast, temperature=self.temperature)
