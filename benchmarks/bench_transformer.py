"""Benchmark: sparse (segment-softmax) vs dense (masked) cross-attention of the regulatory transformer.

Default scale is PBMC 10k's feature space: 2,000 genes x 30,000 peaks, genes and peaks placed uniformly
on 12 chromosomes of 100 Mb, so a 1.2 Mb window holds ~0.2 % of all gene-peak pairs (~60 peaks per gene;
the original's PBMC window matrix has 87,436 pairs for 1,996 x 28,548 features, 0.15 %). Random frozen
tokens (d = 128, ATAC ~5 % non-zero).

Measured, side by side, for each implementation (same weights, same cells):

* ``layer``: one masked cross-attention over every gene row (forward + backward), ``B`` cells;
* ``inference``: :meth:`RegulatoryDecoderModule.cell_attention` (the whole decoder, every row: what
  ``get_global_attention`` runs per batch), ``B`` cells;
* ``train step``: one training step (CLS contrast + matching with hard negatives); in a one-layer decoder
  only the gene-CLS row reaches the losses, so both implementations compute that (unmasked) row only and
  should take the same time.

Time is the median of ``--repeats`` runs after one warm-up; peak memory is the peak resident set size
above the baseline while the step runs (sampled every 5 ms). The sparse/dense outputs are compared too.

Examples::

    OMP_NUM_THREADS=2 python benchmarks/bench_transformer.py --quick
    OMP_NUM_THREADS=2 python benchmarks/bench_transformer.py            # PBMC scale, ~2-5 min
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import threading
import time

# Spinning OpenMP threads wait for descheduled partners on an over-subscribed machine (see README);
# set before torch is imported. Export OMP_WAIT_POLICY=ACTIVE to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch


class PeakRSS:
    """Peak resident set size above the start while the block runs (sampled every 5 ms)."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        gc.collect()
        self.start = self.peak = self.rss()
        self._stop = threading.Event()

        def loop():
            while not self._stop.wait(self.interval):
                self.peak = max(self.peak, self.rss())

        self._t = threading.Thread(target=loop, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.rss())

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def make_problem(n_genes: int, n_peaks: int, window_bp: float, *, n_chrom: int = 12, chrom_len: float = 1e8,
                 d: int = 128, n_cells: int = 64, density: float = 0.05, seed: int = 0):
    import anndata as ad
    import mudata as md
    import pandas as pd
    import scipy.sparse as sp

    from attune_lib._genomics import gene_peak_pairs

    rng = np.random.default_rng(seed)
    gch = rng.integers(1, n_chrom + 1, n_genes)
    pch = rng.integers(1, n_chrom + 1, n_peaks)
    gvar = pd.DataFrame({"chrom": [f"chr{c}" for c in gch], "tss": rng.integers(0, int(chrom_len), n_genes)},
                        index=[f"G{i}" for i in range(n_genes)])
    ps = rng.integers(0, int(chrom_len) - 500, n_peaks)
    pvar = pd.DataFrame({"chrom": [f"chr{c}" for c in pch], "start": ps, "end": ps + 400},
                        index=[f"P{i}" for i in range(n_peaks)])
    obs = pd.DataFrame(index=[f"c{i}" for i in range(n_cells)])
    mdata = md.MuData({"rna": ad.AnnData(sp.random(n_cells, n_genes, 0.3, format="csr", dtype=np.float32,
                                                   random_state=seed), obs=obs.copy(), var=gvar),
                       "atac": ad.AnnData(sp.random(n_cells, n_peaks, density, format="csr", dtype=np.float32,
                                                    random_state=seed + 1), obs=obs.copy(), var=pvar)})
    pairs = gene_peak_pairs(mdata, window_bp=window_bp)
    return mdata, pairs


def build_module(n_genes, n_peaks, pairs, *, d=128, seed=0):
    from attune_lib.models._transformer_nn import AffineTokens, AttentionPattern, RegulatoryDecoderModule

    g = torch.Generator().manual_seed(seed)
    pat = AttentionPattern(n_genes, n_peaks, pairs["gene_idx"].to_numpy(), pairs["peak_idx"].to_numpy())
    rt = AffineTokens(torch.randn(n_genes, d, generator=g) * 0.1, torch.randn(n_genes, d, generator=g) * 0.1)
    at = AffineTokens(torch.randn(n_peaks, d, generator=g) * 0.1, torch.randn(n_peaks, d, generator=g) * 0.1)
    torch.manual_seed(seed)
    return RegulatoryDecoderModule(rt, at, pat, n_hidden=d), pat


def timed(fn, repeats: int):
    """Median wall time, median process CPU time and the largest peak-RSS increase over ``repeats`` runs."""
    fn()  # warm-up (also builds cached pattern tensors)
    times, cpus, peaks = [], [], []
    for _ in range(repeats):
        with PeakRSS() as mem:
            t0, c0 = time.perf_counter(), time.process_time()
            out = fn()
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        peaks.append(mem.extra_mb)
        del out
    return statistics.median(times), statistics.median(cpus), max(peaks)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="500 genes x 6,000 peaks, 2 cells, 1 repeat")
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--peaks", type=int, default=30000)
    ap.add_argument("--cells", type=int, default=4, help="cells per batch")
    ap.add_argument("--window", type=float, default=1_200_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-dense", action="store_true", help="only the sparse implementation")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if args.quick:
        args.genes, args.peaks, args.cells, args.repeats = 500, 6000, 2, 1
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    from attune_lib.models._data import csr_batch

    t0 = time.perf_counter()
    mdata, pairs = make_problem(args.genes, args.peaks, args.window)
    mod, pat = build_module(args.genes, args.peaks, pairs)
    mod.eval()  # no dropout: both implementations compute exactly the same thing
    X = {k: mdata[k].X for k in ("rna", "atac")}
    batch = {k: csr_batch(X[k], slice(0, args.cells)) for k in X}
    print(f"problem: {args.genes:,} genes x {args.peaks:,} peaks, {len(pairs):,} in-window pairs "
          f"({100 * pat.density():.3f} % of pairs; {len(pairs) / args.genes:.1f} peaks per gene), pattern nnz "
          f"{pat.nnz:,} vs dense {(args.genes + 1) * (args.peaks + 1):,}; {args.cells} cells per batch; "
          f"threads={torch.get_num_threads()}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
          f"load {os.getloadavg()[0]:.1f}; setup {time.perf_counter() - t0:.1f} s", flush=True)

    genes0 = mod.gene_sequence(batch["rna"].to_dense())

    def layer_step(impl):
        def run():
            mod.zero_grad(set_to_none=True)
            mem, _ = mod.memory(batch["atac"].to_dense())
            h, _ = mod.layers[0](genes0.detach(), mem, 0, pat, impl=impl)
            h.square().mean().backward()
            return h.detach()
        return run

    def infer(impl):
        def run():
            return mod.cell_attention(batch, attention=impl)
        return run

    def train_step(impl):
        def run():
            mod.attention = impl
            mod.train()
            mod.zero_grad(set_to_none=True)
            torch.manual_seed(0)
            out = mod.loss(batch)
            out["loss"].backward()
            mod.eval()
            return out["loss"].detach()
        return run

    impls = ["sparse"] if args.skip_dense else ["sparse", "dense"]
    rows = []
    outputs = {}
    for what, make in (("layer fwd+bwd", layer_step), ("inference", infer), ("train step", train_step)):
        res = {}
        for impl in impls:
            try:
                res[impl] = timed(make(impl), args.repeats)
                if what == "inference":
                    outputs[impl] = make(impl)()
            except RuntimeError as err:  # e.g. out of memory for the dense reference
                res[impl] = (float("nan"),) * 3
                print(f"  {what} {impl}: failed ({err})")
            print(f"  {what:<14} {impl:<6} wall {res[impl][0]:.3f} s, cpu {res[impl][1]:.3f} s, "
                  f"peak +{res[impl][2]:.0f} MB", flush=True)
        row = {"step": what, **{f"{i}_s": res[i][0] for i in impls}, **{f"{i}_cpu_s": res[i][1] for i in impls},
               **{f"{i}_mb": res[i][2] for i in impls}}
        if "dense" in res:
            row["speedup"] = res["dense"][0] / res["sparse"][0]
            row["cpu_speedup"] = res["dense"][1] / res["sparse"][1]
            row["memory_ratio"] = res["dense"][2] / max(res["sparse"][2], 1.0)
        rows.append(row)
    if "sparse" in outputs and "dense" in outputs:
        a, b = outputs["sparse"], outputs["dense"]
        diff = max(float((a[k] - b[k]).abs().max()) for k in a)
        print(f"max |sparse - dense| of the attention read-outs: {diff:.2e}")
    nan = float("nan")
    print(f"{'step':<15}{'sparse s':>9}{'dense s':>9}{'ratio':>7}{'sparse cpu':>11}{'dense cpu':>10}{'ratio':>7}"
          f"{'sparse MB':>10}{'dense MB':>9}{'ratio':>7}")
    for r in rows:
        print(f"{r['step']:<15}{r['sparse_s']:>9.3f}{r.get('dense_s', nan):>9.3f}{r.get('speedup', nan):>7.1f}"
              f"{r['sparse_cpu_s']:>11.3f}{r.get('dense_cpu_s', nan):>10.3f}{r.get('cpu_speedup', nan):>7.1f}"
              f"{r['sparse_mb']:>10.0f}{r.get('dense_mb', nan):>9.0f}{r.get('memory_ratio', nan):>7.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "n_pairs": len(pairs), "density": pat.density(), "rows": rows}, fh,
                      indent=1)


if __name__ == "__main__":
    main()
