"""NT-Xent (SimCLR) contrastive loss and Attune's contrast designs.

``nt_xent(z1, z2)`` stacks the ``2B`` L2-normalised embeddings; for each of them the positive is the
other view of the same cell (row ``i`` of ``z1`` <-> row ``i`` of ``z2``) and the ``2B - 2`` other
embeddings (both views of every other cell, same-modality ones included) are negatives. The loss is the
mean cross-entropy over all ``2B`` anchors, so both directions count. Each cell's own pair is the only
positive (the original labelled part of the matched pairs as negatives; this does not).

Contrast designs (paper Fig. 2H / Table S7):

* ``"default"``: RNA-teacher vs ATAC-teacher and RNA-student vs ATAC-student (the paper's design);
* ``"intra"``: RNA-student vs RNA-teacher and ATAC-student vs ATAC-teacher;
* ``"cross"``: RNA-teacher vs ATAC-student and RNA-student vs ATAC-teacher (RtAs_RsAt).

The pretraining loss is the mean of the two NT-Xent terms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._utils import AttuneInputError

__all__ = ["CONTRAST_PAIRS", "contrastive_loss", "nt_xent"]

#: term name -> (embedding, embedding) for each contrast design
CONTRAST_PAIRS: dict[str, dict[str, tuple[str, str]]] = {
    "default": {"teacher": ("rna_teacher", "atac_teacher"), "student": ("rna_student", "atac_student")},
    "intra": {"rna": ("rna_student", "rna_teacher"), "atac": ("atac_student", "atac_teacher")},
    "cross": {"rt_as": ("rna_teacher", "atac_student"), "rs_at": ("rna_student", "atac_teacher")},
}


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, *, temperature: float = 0.1) -> torch.Tensor:
    """Normalised temperature-scaled cross-entropy between two views of the same ``B`` cells.

    Parameters
    ----------
    z1, z2
        ``B x d`` embeddings; row ``i`` of both is cell ``i`` (the only positive pair of each row).
    temperature
        Softmax temperature ``tau`` (0.1 in Attune).

    Returns
    -------
    Scalar: ``-1/(2B) sum_a log( exp(sim(a, a+)/tau) / sum_{k != a} exp(sim(a, k)/tau) )`` with cosine ``sim``.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise AttuneInputError(f"nt_xent needs two B x d tensors of the same shape, got {tuple(z1.shape)} "
                               f"and {tuple(z2.shape)}")
    if temperature <= 0:
        raise AttuneInputError(f"temperature must be > 0, got {temperature}")
    B = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=1)
    logits = (z @ z.t()) / temperature
    logits = logits.masked_fill(torch.eye(2 * B, dtype=torch.bool, device=z.device), float("-inf"))
    idx = torch.arange(B, device=z.device)
    targets = torch.cat([idx + B, idx])  # anchor i (view 1) <-> i + B (view 2)
    return F.cross_entropy(logits, targets)


def contrastive_loss(embeddings: dict[str, torch.Tensor], *, contrast: str = "default",
                     temperature: float = 0.1) -> dict[str, torch.Tensor]:
    """Attune pretraining loss for a contrast design.

    Parameters
    ----------
    embeddings
        ``rna_teacher``, ``atac_teacher``, ``rna_student``, ``atac_student`` (``B x d`` each).
    contrast
        ``"default"``, ``"intra"`` or ``"cross"`` (see module docstring).
    temperature
        NT-Xent temperature.

    Returns
    -------
    dict with ``loss`` (mean of the two terms) and ``loss_<term>`` for each term.
    """
    if contrast not in CONTRAST_PAIRS:
        raise AttuneInputError(f"contrast must be one of {sorted(CONTRAST_PAIRS)}, got {contrast!r}")
    out = {}
    for term, (a, b) in CONTRAST_PAIRS[contrast].items():
        out[f"loss_{term}"] = nt_xent(embeddings[a], embeddings[b], temperature=temperature)
    out["loss"] = sum(out.values()) / len(out)
    return out
