"""A small, reusable training loop with atomic checkpoints and exact resume.

Protocols (scvi-tools style, kept minimal so other models can reuse the loop):

* the **module** is a :class:`torch.nn.Module` whose ``loss(batch)`` returns a dict of scalar tensors
  with at least ``"loss"`` (the one optimised); every entry is averaged per epoch into the history;
* the **source** has ``n_obs`` and ``get_batch(idx) -> batch`` where ``batch`` is a tensor,
  :class:`~._data.CSRBatch` or a dict/list of them (moved with :func:`~._data.move_to_device`).

:class:`Trainer` runs Adam with a learning rate decaying linearly from ``lr`` to ``lr_end`` over all
optimisation steps, an optional validation split (loss in eval mode), a progress bar, and writes
``<checkpoint_dir>/last.pt`` after every epoch (module, optimiser, scheduler, every RNG state, epoch,
history) through a temporary file and :func:`os.replace`, so a checkpoint on disk is always complete.
``resume=True`` restores all of it, so an interrupted run ends with the same weights as an uninterrupted
one (bit-identical on CPU).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .._utils import AttuneInputError, progress, resolve_device, set_seed
from ._data import iter_index_batches, move_to_device, n_batches

__all__ = [
    "CHECKPOINT_NAME",
    "LinearDecay",
    "StopTraining",
    "Trainer",
    "atomic_torch_save",
    "atomic_write_bytes",
    "evaluate_loss",
    "split_validation",
]

CHECKPOINT_NAME = "last.pt"


class StopTraining(Exception):
    """Raise from a callback to end training after the current epoch (the checkpoint is already saved)."""


class LinearDecay:
    """Multiplicative factor for :class:`torch.optim.lr_scheduler.LambdaLR`: 1 at step 0, ``end_ratio`` at
    step ``total_steps - 1``, linear in between (a callable object so the scheduler state pickles)."""

    def __init__(self, total_steps: int, end_ratio: float):
        self.total_steps = int(total_steps)
        self.end_ratio = float(end_ratio)

    def __call__(self, step: int) -> float:
        if self.total_steps <= 1:
            return 1.0
        t = min(step, self.total_steps - 1) / (self.total_steps - 1)
        return 1.0 - (1.0 - self.end_ratio) * t


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every platform / filesystem
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[Any], None]) -> None:
    """Call ``write(fileobj)`` on a temporary file next to ``path`` and rename it over ``path``.

    The temporary file is flushed and fsynced before :func:`os.replace`, and removed when ``write``
    fails, so ``path`` is either the old complete file or the new complete file, never a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """:func:`torch.save` through :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, lambda fh: torch.save(obj, fh))


def split_validation(n_obs: int, fraction: float, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Random train/validation split of ``range(n_obs)`` (sorted index arrays), reproducible from ``seed``."""
    if not 0.0 <= fraction < 1.0:
        raise AttuneInputError(f"validation_fraction must be in [0, 1), got {fraction}")
    idx = np.arange(n_obs)
    n_val = round(fraction * n_obs)
    if fraction > 0 and n_val == 0:
        n_val = 1
    if n_val == 0:
        return idx, idx[:0]
    perm = np.random.default_rng([0 if seed is None else seed, 1]).permutation(n_obs)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


@torch.no_grad()
def evaluate_loss(module: torch.nn.Module, source, indices: np.ndarray, *, batch_size: int,
                  device: torch.device) -> dict[str, float]:
    """Cell-weighted mean of ``module.loss`` over ``indices`` in eval mode (the module's mode is restored)."""
    was_training = module.training
    module.eval()
    sums: dict[str, float] = {}
    n = 0
    try:
        for idx in iter_index_batches(indices, batch_size, shuffle=False):
            out = module.loss(move_to_device(source.get_batch(idx), device))
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v) * idx.size
            n += idx.size
    finally:
        module.train(was_training)
    return {k: v / max(n, 1) for k, v in sums.items()}


def _rng_state(shuffle_rng: np.random.Generator) -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], np_state[1].tolist(), *np_state[2:]),
        "torch": torch.get_rng_state(),
        "shuffle": shuffle_rng.bit_generator.state,
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any], shuffle_rng: np.random.Generator) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    shuffle_rng.bit_generator.state = state["shuffle"]


class Trainer:
    """Train ``module`` on ``source`` (see the module docstring for both protocols).

    Parameters
    ----------
    module
        Module with ``loss(batch) -> {"loss": tensor, ...}``.
    source
        Object with ``n_obs`` and ``get_batch(idx)``.
    max_epochs
        Passes over the training cells.
    batch_size
        Cells per mini-batch; a final batch of a single cell is dropped (batch norm needs two).
    lr, lr_end
        Learning rate at the first and last optimisation step (linear decay in between).
    weight_decay
        Adam weight decay.
    validation_fraction
        Fraction of cells held out; their loss is recorded as ``val_*`` columns of the history.
    seed
        Seeds the validation split, the shuffling and torch (dropout) for a fresh run.
    device
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ...
    checkpoint_dir
        Write ``last.pt`` there after every epoch; None disables checkpoints.
    resume
        Continue from ``checkpoint_dir/last.pt`` when it exists (the run's settings must match).
    progress_bar
        Show a tqdm bar with the running loss.
    callbacks
        ``callback(trainer, epoch, record)`` after each epoch's checkpoint; raise :class:`StopTraining`
        to end early.
    fingerprint
        Extra settings (e.g. the architecture) that must match a checkpoint to resume from it.
    grad_clip
        Clip the global gradient norm to this value (None: no clipping).
    min_batch_size
        Smallest training batch kept (2 for batch norm).
    desc
        Progress-bar label.
    split
        Explicit ``(train_indices, val_indices)`` into ``source`` (disjoint); overrides
        ``validation_fraction``.
    """

    def __init__(self, module: torch.nn.Module, source, *, max_epochs: int = 20, batch_size: int = 128,
                 lr: float = 1e-4, lr_end: float | None = 1e-6, weight_decay: float = 0.0,
                 validation_fraction: float = 0.0, seed: int | None = 0, device: str | torch.device = "auto",
                 checkpoint_dir: str | os.PathLike | None = None, resume: bool = True, progress_bar: bool = True,
                 callbacks: Iterable[Callable] = (), fingerprint: Mapping[str, Any] | None = None,
                 grad_clip: float | None = None, min_batch_size: int = 2, desc: str = "training",
                 split: tuple[Iterable[int], Iterable[int]] | None = None):
        if int(max_epochs) < 1:
            raise AttuneInputError(f"max_epochs must be >= 1, got {max_epochs}")
        if int(batch_size) < min_batch_size:
            raise AttuneInputError(f"batch_size must be >= {min_batch_size}, got {batch_size}")
        if not (lr > 0 and math.isfinite(lr)):
            raise AttuneInputError(f"lr must be a positive number, got {lr}")
        lr_end = lr if lr_end is None else lr_end
        if not (lr_end > 0 and math.isfinite(lr_end)):
            raise AttuneInputError(f"lr_end must be a positive number, got {lr_end}")
        self.module = module
        self.source = source
        self.max_epochs = int(max_epochs)
        self.batch_size = int(batch_size)
        self.lr, self.lr_end = float(lr), float(lr_end)
        self.weight_decay = float(weight_decay)
        self.validation_fraction = float(validation_fraction)
        self.seed = seed
        self.device = resolve_device(device)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.resume = bool(resume)
        self.progress_bar = progress_bar
        self.callbacks = list(callbacks)
        self.fingerprint = dict(fingerprint or {})
        self.grad_clip = grad_clip
        self.min_batch_size = int(min_batch_size)
        self.desc = desc
        if split is None:
            self.train_idx, self.val_idx = split_validation(source.n_obs, self.validation_fraction, seed)
        else:
            self.train_idx, self.val_idx = (np.asarray(list(s), dtype=np.int64) for s in split)
            for name, idx in (("train", self.train_idx), ("validation", self.val_idx)):
                if idx.size and (idx.min() < 0 or idx.max() >= source.n_obs):
                    raise AttuneInputError(f"split: {name} indices must lie in [0, {source.n_obs})")
            if np.intersect1d(self.train_idx, self.val_idx).size:
                raise AttuneInputError("split: training and validation indices overlap")
        if self.train_idx.size < self.min_batch_size:
            raise AttuneInputError(
                f"only {self.train_idx.size} training cell(s) (n_obs={source.n_obs}, "
                f"validation_fraction={validation_fraction}); need at least {self.min_batch_size}")
        self.steps_per_epoch = n_batches(self.train_idx.size, self.batch_size, self.min_batch_size)
        self.history: list[dict[str, float]] = []
        self.epoch = 0  # epochs completed

    # ---------------------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_NAME

    def config(self) -> dict[str, Any]:
        """Settings a checkpoint must share to be resumed."""
        return {
            "max_epochs": self.max_epochs, "batch_size": self.batch_size, "lr": self.lr, "lr_end": self.lr_end,
            "weight_decay": self.weight_decay, "validation_fraction": self.validation_fraction,
            "seed": self.seed, "n_obs": int(self.source.n_obs), "grad_clip": self.grad_clip,
            **{f"module.{k}": v for k, v in self.fingerprint.items()},
        }

    def _make_optim(self):
        params = list(self.module.parameters())
        try:  # the fused kernel is ~3x faster on CPU for the 30,000 x 128 embeddings
            opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay, fused=True)
        except (RuntimeError, TypeError):  # pragma: no cover - device/dtype without a fused kernel
            opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        total = self.max_epochs * self.steps_per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(opt, LinearDecay(total, self.lr_end / self.lr))
        return opt, sched

    def _save(self, opt, sched, shuffle_rng) -> None:
        if self.checkpoint_path is None:
            return
        state = {
            "format": "attune_lib.trainer/1",
            "epoch": self.epoch,
            "config": self.config(),
            "module": self.module.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": _rng_state(shuffle_rng),
            "history": self.history,
        }
        atomic_torch_save(state, self.checkpoint_path)

    def _load(self, opt, sched, shuffle_rng) -> None:
        path = self.checkpoint_path
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise AttuneInputError(f"checkpoint {path} could not be read ({err}); "
                                   "delete it or pass resume=False") from err
        mine, theirs = self.config(), state.get("config", {})
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if diff:
            details = ", ".join(f"{k}: checkpoint {theirs.get(k)!r} vs now {mine.get(k)!r}" for k in diff)
            raise AttuneInputError(f"checkpoint {path} was written with other settings ({details}); "
                                   "pass resume=False or another checkpoint_dir")
        self.module.load_state_dict(state["module"])
        self.module.to(self.device)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"], shuffle_rng)
        self.history = [dict(r) for r in state["history"]]
        self.epoch = int(state["epoch"])

    # ---------------------------------------------------------------------------------------------
    def fit(self) -> pd.DataFrame:
        """Run (or resume) training; returns the per-epoch history (also in ``self.history``)."""
        self.module.to(self.device)
        shuffle_rng = np.random.default_rng([0 if self.seed is None else self.seed, 2])
        if self.seed is not None:
            set_seed(self.seed)
        opt, sched = self._make_optim()
        self.history, self.epoch = [], 0
        if self.resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            self._load(opt, sched, shuffle_rng)
        total = self.max_epochs * self.steps_per_epoch
        bar = progress(total=total, initial=self.epoch * self.steps_per_epoch, enabled=self.progress_bar,
                       desc=self.desc, unit="batch")
        try:
            while self.epoch < self.max_epochs:
                record = self._run_epoch(opt, sched, shuffle_rng, bar)
                self.epoch += 1
                self.history.append(record)
                self._save(opt, sched, shuffle_rng)
                try:
                    for cb in self.callbacks:
                        cb(self, self.epoch, record)
                except StopTraining:
                    break
        finally:
            bar.close()
            self.module.eval()
        return self.history_frame()

    def history_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.history).set_index("epoch") if self.history else pd.DataFrame()

    def _run_epoch(self, opt, sched, shuffle_rng, bar) -> dict[str, float]:
        t0 = time.perf_counter()
        self.module.train()
        sums: dict[str, float] = {}
        n = 0
        bar.set_description(f"{self.desc} epoch {self.epoch + 1}/{self.max_epochs}")
        for idx in iter_index_batches(self.train_idx, self.batch_size, shuffle=True, rng=shuffle_rng,
                                      min_batch_size=self.min_batch_size):
            batch = move_to_device(self.source.get_batch(idx), self.device)
            out = self.module.loss(batch)
            loss = out["loss"]
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"non-finite loss {loss_value} at epoch {self.epoch + 1}; "
                                         "lower lr or check the input values")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip)
            opt.step()
            sched.step()
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * idx.size
            n += idx.size
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
        record = {"epoch": self.epoch + 1, **{k: v / n for k, v in sums.items()}}
        if self.val_idx.size:
            val = evaluate_loss(self.module, self.source, self.val_idx, batch_size=self.batch_size,
                                device=self.device)
            record.update({f"val_{k}": v for k, v in val.items()})
        record["lr"] = float(opt.param_groups[0]["lr"])
        record["time_s"] = time.perf_counter() - t0
        return record
