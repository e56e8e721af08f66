"""Data-parallel training (torch.distributed, gloo, 2 CPU processes) equals one process on the same global batch."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from attune_lib.models._attune_module import AttuneModule
from attune_lib.models._data import PairedCSRSource
from attune_lib.models._distributed import SyncBatchNorm1d, all_gather_cat, is_distributed
from attune_lib.models._training import StopTraining, Trainer

# float32 sums in another order (per-rank partial sums, all-reduce) differ from one process by rounding
# only; over a few Adam steps that stays far below this
TOL = 2e-4


def _data(seed=0, n=96, genes=40, peaks=120):
    rng = np.random.default_rng(seed)
    rna = sp.random(n, genes, density=0.3, format="csr", random_state=rng, dtype=np.float32)
    rna.data = np.log1p(rng.poisson(3, rna.nnz) + 1).astype(np.float32)
    atac = sp.random(n, peaks, density=0.1, format="csr", random_state=rng, dtype=np.float32)
    atac.data = (1 + (rng.random(atac.nnz) < 0.2)).astype(np.float32)
    return {"rna": rna, "atac": atac}


def _train(checkpoint_dir=None, stop_after=None, epochs=3):
    torch.manual_seed(0)
    mats = _data()
    module = AttuneModule(40, 120, n_hidden=16, n_latent=8, dropout_rate=0.0)
    cbs = []
    if stop_after is not None:
        def stop(trainer, epoch, record):
            if epoch >= stop_after:
                raise StopTraining
        cbs.append(stop)
    trainer = Trainer(module, PairedCSRSource(mats), max_epochs=epochs, batch_size=32, lr=3e-3, lr_end=1e-4,
                      seed=0, device="cpu", progress_bar=False, checkpoint_dir=checkpoint_dir, callbacks=cbs)
    hist = trainer.fit()
    params = torch.cat([p.detach().flatten() for p in module.parameters()]).numpy()
    buffers = torch.cat([b.detach().float().flatten() for b in module.buffers()]).numpy()
    return hist["loss"].to_numpy(), params, buffers


def _worker(rank, world, port, out_dir, ckpt):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        assert is_distributed()
        # gather with gradient: every rank's rows, in rank order, and gradients flow back to each rank
        x = torch.full((rank + 1, 2), float(rank), requires_grad=True)
        g = all_gather_cat(x)
        assert g.shape == (3, 2) and g[0, 0] == 0 and g[2, 0] == 1
        g.sum().backward()
        assert torch.allclose(x.grad, torch.full_like(x, float(world)))  # one identical loss per rank
        loss, params, buffers = _train()
        loss_a, _, _ = _train(checkpoint_dir=ckpt, stop_after=1)
        loss_b, params_b, _ = _train(checkpoint_dir=ckpt)
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), loss=loss, params=params, buffers=buffers,
                 loss_a=loss_a, loss_b=loss_b, params_b=params_b)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process(tmp_path):
    ref_loss, ref_params, ref_buffers = _train()
    ckpt = tmp_path / "ckpt"
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), str(ckpt)), nprocs=2, join=True)
    r0, r1 = (np.load(tmp_path / f"rank{r}.npz") for r in (0, 1))
    # the same global loss on both ranks and the same weights (DDP keeps replicas identical)
    np.testing.assert_allclose(r0["loss"], r1["loss"], rtol=1e-6)
    np.testing.assert_allclose(r0["params"], r1["params"], atol=1e-6)
    # equals one process with the same global batch of 32: loss per epoch, weights, batch-norm statistics
    assert ref_loss[-1] < ref_loss[0] - 0.05  # it trained
    np.testing.assert_allclose(r0["loss"], ref_loss, rtol=TOL)
    np.testing.assert_allclose(r0["params"], ref_params, atol=TOL)
    np.testing.assert_allclose(r0["buffers"], ref_buffers, rtol=TOL, atol=TOL)
    # resume under DDP: stopped after epoch 1 (rank 0 wrote last.pt), resumed to 3 epochs = uninterrupted
    assert (ckpt / "last.pt").exists() and not list(ckpt.glob("*.tmp"))
    assert len(r0["loss_a"]) == 1
    np.testing.assert_allclose(r0["loss_b"], r0["loss"], rtol=1e-5)
    np.testing.assert_allclose(r0["params_b"], r0["params"], atol=1e-5)


def test_sync_batchnorm_is_batchnorm_without_process_group():
    torch.manual_seed(0)
    x = torch.randn(10, 4)
    a, b = SyncBatchNorm1d(4), torch.nn.BatchNorm1d(4)
    assert torch.equal(a(x), b(x))
    assert torch.equal(a.running_var, b.running_var)
    assert set(a.state_dict()) == set(b.state_dict())


@pytest.mark.parametrize("n", [1, 3])
def test_all_gather_cat_is_identity_without_process_group(n):
    x = torch.randn(n, 2)
    assert all_gather_cat(x) is x
