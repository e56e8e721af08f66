"""Benchmark: scMVP epoch time per training phase on synthetic paired CSR data.

Default scale is the paper-sized 12,000 cells x 2,000 genes x 30,000 peaks; ``--quick`` runs
1,000 x 300 x 3,000. The data are generated inline (NB RNA counts, sparse binary ATAC with
cluster-specific peaks, ~3% dense) so the benchmark does not depend on the simulator.

    python benchmarks/bench_scmvp.py --quick
    OMP_NUM_THREADS=2 python benchmarks/bench_scmvp.py --threads 2 --epochs 1
    python benchmarks/bench_scmvp.py --n-cells 1200 --threads 1   # full feature sizes, extrapolated

Prints the data generation time, one line per phase (seconds per epoch, ms per step) and the
estimated time of the default schedule (RNA 10 + ATAC 15 + joint 15 epochs, 5 of them warm-up).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp


def make_data(n_cells: int, n_genes: int, n_peaks: int, *, n_types: int = 8, density: float = 0.03, seed: int = 0):
    import anndata as ad
    import mudata as md
    import pandas as pd

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_types, n_cells)
    prof = np.tile(rng.normal(0, 1.0, n_genes), (n_types, 1))
    for t in range(n_types):
        prof[t, rng.choice(n_genes, max(1, n_genes // 20), replace=False)] += 2.0
    p = np.exp(prof)
    p /= p.sum(1, keepdims=True)
    lib = rng.lognormal(np.log(3000), 0.4, n_cells)
    rna = np.empty((n_cells, n_genes), dtype=np.float32)
    for s in range(0, n_cells, 2000):  # chunked NB draws
        mu = p[labels[s : s + 2000]] * lib[s : s + 2000, None]
        rna[s : s + 2000] = rng.poisson(rng.gamma(2.0, mu / 2.0))
    rna_csr = sp.csr_matrix(rna)
    del rna
    # ATAC: each cell draws ~density * n_peaks peaks, half from its type's peak set
    type_peaks = [rng.choice(n_peaks, max(1, n_peaks // 10), replace=False) for _ in range(n_types)]
    k = max(1, int(density * n_peaks))
    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    cols = []
    for i in range(n_cells):
        c = np.union1d(rng.choice(type_peaks[labels[i]], k // 2), rng.integers(0, n_peaks, k - k // 2))
        cols.append(c)
        indptr[i + 1] = indptr[i] + len(c)
    indices = np.concatenate(cols).astype(np.int32)
    atac_csr = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(n_cells, n_peaks))
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(n_cells)])
    rna_ad = ad.AnnData(rna_csr, obs=obs.copy(), var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]))
    rna_ad.layers["counts"] = rna_ad.X
    atac_ad = ad.AnnData(
        atac_csr, obs=obs.copy(), var=pd.DataFrame(index=[f"chr1:{i * 500}-{i * 500 + 400}" for i in range(n_peaks)])
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mdata = md.MuData({"rna": rna_ad, "atac": atac_ad})
    return mdata, labels


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 x 300 x 3,000 instead of 12,000 x 2,000 x 30,000")
    ap.add_argument("--n-cells", type=int)
    ap.add_argument("--n-genes", type=int)
    ap.add_argument("--n-peaks", type=int)
    ap.add_argument("--epochs", type=int, default=1, help="epochs timed per phase")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from attune_lib.models._scmvp import ScMVP

    if args.threads:
        torch.set_num_threads(args.threads)
    n_cells, n_genes, n_peaks = (1_000, 300, 3_000) if args.quick else (12_000, 2_000, 30_000)
    n_cells = args.n_cells or n_cells
    n_genes = args.n_genes or n_genes
    n_peaks = args.n_peaks or n_peaks

    t0 = time.perf_counter()
    mdata, _labels = make_data(n_cells, n_genes, n_peaks, seed=args.seed)
    t_data = time.perf_counter() - t0
    nnz = mdata["atac"].X.nnz
    print(f"data: {n_cells} cells x {n_genes} genes x {n_peaks} peaks "
          f"(ATAC nnz {nnz:,}, {nnz / n_cells / n_peaks:.1%} dense) in {t_data:.1f} s")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}")

    t0 = time.perf_counter()
    ScMVP.setup_mudata(mdata)
    model = ScMVP(mdata, n_latent=10, n_components=20, seed=args.seed)
    print(f"setup + TF-IDF + model: {time.perf_counter() - t0:.1f} s, "
          f"{sum(p.numel() for p in model.module.parameters()):,} parameters")
    E = args.epochs
    t0 = time.perf_counter()
    model.train(max_epochs=2 * E, warmup_epochs=E, pretrain_epochs=(E, E), batch_size=args.batch_size,
                device=args.device, progress_bar=False)
    total = time.perf_counter() - t0
    h = model.history
    phases = np.array(h["phase"])
    secs = np.array(h["time_s"])
    steps = int(np.ceil(n_cells / args.batch_size))
    per_epoch = {}
    for phase in ("rna", "atac", "warmup", "joint"):
        s = secs[phases == phase].mean()
        per_epoch[phase] = s
        print(
            f"  {phase:7s} {s:8.2f} s/epoch  {1000 * s / steps:7.1f} ms/step  "
            f"(loss {np.array(h['loss'])[phases == phase][-1]:.1f})"
        )
    other = total - secs.sum()
    print(f"GMM initialisation and bookkeeping: {other:.1f} s")
    est = 10 * per_epoch["rna"] + 15 * per_epoch["atac"] + 5 * per_epoch["warmup"] + 10 * per_epoch["joint"] + other
    print(f"estimated default schedule (10 + 15 + 5 + 10 epochs): {est / 60:.1f} min")
    if n_cells != 12_000:
        # per-step cost does not depend on the number of cells: scale to the paper-sized 12,000 cells
        f = int(np.ceil(12_000 / args.batch_size)) / steps
        est12 = f * (10 * per_epoch["rna"] + 15 * per_epoch["atac"] + 5 * per_epoch["warmup"] + 10 * per_epoch["joint"])
        print("extrapolated to 12,000 cells: " + ", ".join(f"{k} {f * v:.0f} s/epoch" for k, v in per_epoch.items())
              + f"; default schedule {est12 / 60:.0f} min (+ GMM init)")
    t0 = time.perf_counter()
    model.get_latent_representation()
    print(f"latent for all cells: {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
