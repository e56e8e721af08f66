"""Data-parallel training on ``torch.distributed`` (one process per device, launched by ``torchrun``).

What a model needs to train data-parallel, with the same objective as one process on the same global
batch:

* the contrastive loss sees the **global** batch: the embeddings of every rank are all-gathered *with
  gradient* (:func:`torch.distributed.nn.functional.all_gather`), so each cell's negatives span the
  cells of every rank;
* batch norms normalise with **global** batch statistics (:class:`SyncBatchNorm1d`, and the statistics
  of :class:`~._attune_nn.SparseFeatureBatchNorm` are all-reduced), so a rank's local half-batch is
  normalised as in one process;
* :class:`~._training.Trainer` wraps the module in :class:`torch.nn.parallel.DistributedDataParallel`
  (gradients averaged over ranks), splits every global batch into contiguous per-rank parts, writes
  checkpoints from rank 0 only (atomically) and resumes every rank from the same file.

Every rank computes the same global loss; the backward of each collective sums the ``world_size``
identical contributions and DDP divides by ``world_size``, so the gradients equal those of one process
on the global batch. Launch::

    torchrun --nproc_per_node=4 my_training_script.py   # calls init_distributed(), then model.train()

:func:`init_distributed` reads the environment ``torchrun`` (or a SLURM ``srun``) sets and picks the
backend (NCCL on CUDA, gloo on CPU).
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .._utils import AttuneInputError

__all__ = [
    "SyncBatchNorm1d",
    "all_gather_cat",
    "all_reduce_sum",
    "barrier",
    "init_distributed",
    "is_distributed",
    "local_device",
    "rank",
    "world_size",
]


def is_distributed() -> bool:
    """True when a ``torch.distributed`` process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def barrier() -> None:
    """:func:`torch.distributed.barrier` when distributed, else nothing."""
    if is_distributed():
        dist.barrier()


def local_device(device: torch.device) -> torch.device:
    """``cuda:LOCAL_RANK`` for a CUDA device under a process group (one process per GPU), else ``device``."""
    if device.type == "cuda" and is_distributed() and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank() % max(torch.cuda.device_count(), 1))))
    return device


def init_distributed(backend: str | None = None) -> bool:
    """Initialise the default process group from the environment ``torchrun`` sets.

    Reads ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT`` (``torchrun``), or the SLURM
    variables ``SLURM_PROCID``/``SLURM_NTASKS`` when started by ``srun`` (then ``MASTER_ADDR`` and
    ``MASTER_PORT`` must be exported by the batch script). Does nothing when a group already exists or
    the environment names a single process.

    Parameters
    ----------
    backend
        ``"nccl"``, ``"gloo"`` or None (NCCL when CUDA is available, else gloo).

    Returns
    -------
    bool
        Whether a process group with more than one process is active afterwards.
    """
    if not dist.is_available():
        return False
    if dist.is_initialized():
        return is_distributed()
    env = os.environ
    if "RANK" not in env and "SLURM_PROCID" in env:
        env["RANK"] = env["SLURM_PROCID"]
        env["WORLD_SIZE"] = env.get("SLURM_NTASKS", "1")
        env.setdefault("LOCAL_RANK", env.get("SLURM_LOCALID", "0"))
    if int(env.get("WORLD_SIZE", "1")) <= 1:
        return False
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        if var not in env:
            raise AttuneInputError(f"environment variable {var} is not set; launch with torchrun or export it "
                                   "in the batch script (see docs/attune_model.md, 'Data-parallel training')")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(env.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return is_distributed()


def all_gather_cat(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (``B_r x ...``) over ranks in rank order, differentiably; ``x`` itself when not
    distributed. Ranks may hold different numbers of rows."""
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(sizes, n)
    sizes = [int(s) for s in sizes]
    m = max(sizes)
    if m != x.shape[0]:  # all_gather needs equal shapes: pad, then cut
        x = torch.cat([x, x.new_zeros((m - x.shape[0], *x.shape[1:]))])
    parts = all_gather(x)
    return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)])


def all_reduce_sum(x: torch.Tensor, *, grad: bool = True) -> torch.Tensor:
    """Sum of ``x`` over ranks (differentiable when ``grad``); ``x`` when not distributed."""
    if not is_distributed():
        return x
    if grad:
        from torch.distributed.nn.functional import all_reduce

        return all_reduce(x)
    out = x.detach().clone()
    dist.all_reduce(out)
    return out


def shuffle_seed(seed: int) -> int:
    """Per-rank torch seed for dropout: rank 0 keeps ``seed`` (a one-process run is unchanged), the other
    ranks draw from ``SeedSequence([seed, rank])`` so no two ranks share dropout masks."""
    r = rank()
    if r == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), r]).generate_state(1)[0])


class SyncBatchNorm1d(nn.BatchNorm1d):
    """:class:`torch.nn.BatchNorm1d` that, under a process group in training, normalises with the
    statistics of the global batch (all ranks), on CPU (gloo) as on CUDA.

    Outside distributed training it is exactly :class:`torch.nn.BatchNorm1d` (same state-dict keys, so
    saved models and checkpoints are unchanged).

    Parameters
    ----------
    num_features
        Number of features (channels).
    **kwargs
        Passed to :class:`torch.nn.BatchNorm1d` (``eps``, ``momentum``, ...).
    """

    def __init__(self, num_features: int, **kwargs):
        super().__init__(num_features, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        n = all_reduce_sum(torch.tensor([float(x.shape[0])], device=x.device, dtype=x.dtype), grad=False)
        mean = all_reduce_sum(x.sum(0)) / n
        var = all_reduce_sum(((x - mean) ** 2).sum(0)) / n
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            mom = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - mom).add_(mean.detach(), alpha=mom)
            self.running_var.mul_(1 - mom).add_(var.detach() * (n / (n - 1)), alpha=mom)
        y = (x - mean) * torch.rsqrt(var + self.eps)
        return y * self.weight + self.bias
