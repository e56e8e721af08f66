"""Benchmark: sparse Attune vs the dense-token formulation, at PBMC-10k scale, on CPU.

Default scale: 12,000 cells x 2,000 genes x 30,000 peaks (the paper's PBMC 10k has 11,909 x 2,000 x
28,708). Prints, side by side in one run:

* data generation (``--generator simulate``: ``attune_lib.datasets.simulate_multiome(motifs=False)``;
  ``own``: an inline generator with RNA ~15 % and ATAC ~5 % non-zero; ``auto``: simulate when importable);
* sparse Attune: measured epoch time(s), projected 20-epoch time, peak resident memory;
* the dense-token formulation (every feature of every cell is a ``d``-vector, as in the original):
  forward + backward + Adam on the same mini-batches, timed on a few batches (in chunks of cells that fit
  ``--dense-mem-gb``) and extrapolated to an epoch; the speed-up ratio;
* ``--peers``: one epoch of MultiVI (scvi-tools) and GLUE (scglue) when installed, else a skip message.

Examples::

    OMP_NUM_THREADS=2 python benchmarks/bench_attune.py --quick
    OMP_NUM_THREADS=2 python benchmarks/bench_attune.py            # full scale, ~5-15 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
import warnings

import numpy as np
import scipy.sparse as sp

GiB = 1024**3


# ---------------------------------------------------------------------------------------- memory
class PeakRSS:
    """Peak resident set size of this process while the block runs (sampled every 20 ms)."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval

    @staticmethod
    def rss() -> int:
        try:
            import psutil

            return psutil.Process().memory_info().rss
        except ImportError:  # pragma: no cover
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        self.start = self.peak = self.rss()
        self._stop = threading.Event()

        def loop():
            while not self._stop.wait(self.interval):
                self.peak = max(self.peak, self.rss())

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def extra(self) -> int:
        return self.peak - self.start


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


# ------------------------------------------------------------------------------------------ data
def own_generator(n_cells, n_genes, n_peaks, *, rna_density=0.15, atac_density=0.05, n_types=8, seed=0):
    """Paired CSR data with shared cell types: RNA counts (log-normalised into ``.X``, raw in
    ``layers["counts"]``), ATAC counts 1/2; genes and peaks get coordinates on chr1 (for GLUE)."""
    import anndata as ad
    import mudata as md
    import pandas as pd

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_types, n_cells)

    def profile(n_feat, density):
        w = np.exp(rng.normal(0, 1.0, (n_types, n_feat)))
        return np.minimum(density * w / w.mean(axis=1, keepdims=True), 0.95)

    def draw(prob, values, block=400):
        mats = []
        for s in range(0, n_cells, block):
            lab = labels[s : s + block]
            depth = rng.lognormal(0, 0.3, (lab.size, 1))
            mask = rng.random((lab.size, prob.shape[1]), dtype=np.float32) < prob[lab] * depth
            m = sp.csr_matrix(mask, dtype=np.float32)
            m.data = values(m.nnz)
            mats.append(m)
        return sp.vstack(mats, format="csr")

    counts = draw(profile(n_genes, rna_density), lambda k: (1 + rng.geometric(0.4, k) - 1).astype(np.float32))
    lib = np.asarray(counts.sum(1)).ravel()
    rna = (sp.diags((1e4 / np.maximum(lib, 1)).astype(np.float32)) @ counts).tocsr()
    rna.data = np.log1p(rna.data)
    atac = draw(profile(n_peaks, atac_density), lambda k: (1 + (rng.random(k) < 0.1)).astype(np.float32))
    obs = pd.DataFrame({"cell_type": pd.Categorical(labels.astype(str))}, index=[f"cell{i}" for i in range(n_cells)])
    g_start = np.arange(n_genes) * 100_000 + 50_000
    gvar = pd.DataFrame({"chrom": "chr1", "start": g_start, "end": g_start + 20_000, "strand": "+",
                         "tss": g_start}, index=[f"g{i}" for i in range(n_genes)])
    p_start = np.sort(rng.integers(0, n_genes * 100_000, n_peaks)) // 10 * 10
    p_start = p_start + np.arange(n_peaks) % 10  # unique names
    avar = pd.DataFrame({"chrom": "chr1", "start": p_start, "end": p_start + 500},
                        index=[f"chr1:{a}-{a + 500}" for a in p_start])
    r = ad.AnnData(rna, obs=obs.copy(), var=gvar, layers={"counts": counts})
    a = ad.AnnData(atac, obs=obs.copy(), var=avar, layers={"counts": atac.copy()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return md.MuData({"rna": r, "atac": a})


def simulated(n_cells, n_genes, n_peaks, seed):
    """The project simulator; RNA counts are library-normalised and log1p-transformed into .X."""
    from attune_lib.datasets import simulate_multiome

    mdata = simulate_multiome(n_cells=n_cells, n_genes=n_genes, n_peaks=n_peaks, motifs=False, seed=seed)
    X = mdata["rna"].X.tocsr().astype(np.float32)
    X = sp.diags((1e4 / np.maximum(np.asarray(X.sum(1)).ravel(), 1)).astype(np.float32)) @ X
    X.data = np.log1p(X.data)
    mdata["rna"].X = X.tocsr()
    return mdata


# ----------------------------------------------------------------------------------- dense timing
def dense_step(module, opt, Xr, Xa):
    """One optimisation step of the dense-token formulation (every feature of every cell a token)."""

    from attune_lib.models._attune_losses import contrastive_loss
    from attune_lib.models._attune_nn import (
        _dense_student_forward,
        _dense_teacher_forward,
    )

    emb = {
        "rna_teacher": _dense_teacher_forward(module.rna_teacher, Xr),
        "atac_teacher": _dense_teacher_forward(module.atac_teacher, Xa),
        "rna_student": _dense_student_forward(module.rna_student, Xr),
        "atac_student": _dense_student_forward(module.atac_student, Xa),
    }
    loss = contrastive_loss(emb, contrast=module.contrast, temperature=module.temperature)["loss"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def sparse_step(module, opt, batch):
    loss = module.loss(batch)["loss"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def compare_dense(module, mdata, res: dict, args, n_batch: int) -> None:
    """Time sparse and dense steps on the same random batches (wall and process CPU time)."""
    import torch

    from attune_lib.models._data import csr_batch

    module.train()
    rng = np.random.default_rng(args.seed)
    n_cells, n_genes, n_peaks = res["n_cells"], res["n_genes"], res["n_peaks"]
    batches = [np.sort(rng.choice(n_cells, args.batch_size, replace=False)) for _ in range(args.compare_batches)]
    X_r = mdata["rna"].X.tocsr()
    X_a = mdata["atac"].X.tocsr()
    opt = torch.optim.Adam(module.parameters(), lr=1e-6)
    warm = np.sort(rng.choice(n_cells, args.batch_size, replace=False))  # optimiser state, allocator warm-up
    sparse_step(module, opt, {"rna": csr_batch(X_r, warm), "atac": csr_batch(X_a, warm)})
    sparse_t, sparse_c = [], []
    for idx in batches:
        b = {"rna": csr_batch(X_r, idx), "atac": csr_batch(X_a, idx)}
        t0, c0 = time.perf_counter(), time.process_time()
        sparse_step(module, opt, b)
        sparse_t.append(time.perf_counter() - t0)
        sparse_c.append(time.process_time() - c0)
    d = module.rna_teacher.n_hidden
    per_cell = 6 * (n_genes + n_peaks) * d * 4  # ~6 live cells x features x d float32 tensors per cell
    chunk = args.batch_size
    while chunk > 2 and chunk * per_cell > args.dense_mem_gb * GiB:
        chunk //= 2
    dense_t, dense_c = [], []
    with PeakRSS() as mem_dense:
        for idx in batches:
            t0, c0 = time.perf_counter(), time.process_time()
            for s in range(0, idx.size, chunk):
                sub = idx[s : s + chunk]
                dense_step(module, opt, torch.from_numpy(X_r[sub].toarray()), torch.from_numpy(X_a[sub].toarray()))
            dense_t.append(time.perf_counter() - t0)
            dense_c.append(time.process_time() - c0)
    sb, db = float(np.mean(sparse_t)), float(np.mean(dense_t))
    sc, dc = float(np.mean(sparse_c)), float(np.mean(dense_c))
    res.update(compare_sparse_batch_s=sb, compare_dense_batch_s=db, compare_sparse_batch_cpu_s=sc,
               compare_dense_batch_cpu_s=dc, dense_chunk_cells=chunk, dense_epoch_s=db * n_batch,
               dense_20_epochs_h=db * n_batch * 20 / 3600, dense_extra_rss_gib=mem_dense.extra / GiB,
               speedup=db / sb, speedup_cpu=dc / sc,
               speedup_vs_training_batch=db / (res["sparse_epoch_s"] / n_batch))
    print(f"dense tokens (original formulation), same {len(batches)} batches of {args.batch_size} cells "
          f"(run in chunks of {chunk} cells): {db:.2f} s/batch vs sparse {sb:.3f} s/batch -> "
          f"speed-up {res['speedup']:.1f}x wall, {res['speedup_cpu']:.1f}x CPU time "
          f"({res['speedup_vs_training_batch']:.1f}x vs the mean batch of the training epoch); dense epoch "
          f"~{res['dense_epoch_s'] / 60:.1f} min (extrapolated), 20 epochs ~{res['dense_20_epochs_h']:.1f} h; "
          f"dense chunk peak +{res['dense_extra_rss_gib']:.2f} GiB RSS", flush=True)


# ---------------------------------------------------------------------------------------- peers
def multivi_epoch(mdata, *, seed: int, epochs=(1, 3)) -> dict:
    """MultiVI's per-epoch training time: two runs of ``run_multivi`` (``epochs[0]`` and ``epochs[1]``
    epochs, no early stopping, scvi-tools' default 90 % training split); the difference of their wall times
    divided by the extra epochs removes setup, data registration and embedding."""
    from attune_lib.tl._peers import run_multivi

    times, cpu = [], []
    for e in epochs:
        t0, c0 = time.perf_counter(), time.process_time()
        run_multivi(mdata, seed=seed, progress_bar=False, max_epochs=e, early_stopping=False)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"multivi_runs_s": times, "multivi_epoch_s": (times[1] - times[0]) / (epochs[1] - epochs[0]),
            "multivi_epoch_cpu_s": (cpu[1] - cpu[0]) / (epochs[1] - epochs[0])}


def time_peers(mdata, *, seed: int) -> list[str]:
    """One epoch of MultiVI and GLUE through ``attune_lib.tl._peers`` (wall time of the whole call)."""
    try:
        from attune_lib.tl._peers import run_glue, run_multivi
    except ImportError as err:
        return [f"peers: skipped (attune_lib.tl._peers not importable: {err})"]
    lines = []
    for name, module, run, kw in (
        ("MultiVI", "scvi", run_multivi, {"max_epochs": 1, "early_stopping": False}),
        ("GLUE", "scglue", run_glue, {"max_epochs": 1}),
    ):
        try:
            __import__(module)
        except ImportError:
            lines.append(f"{name}: skipped ({module} not installed; pip install 'attune-companion[peers]')")
            continue
        t0 = time.perf_counter()
        try:
            run(mdata, seed=seed, progress_bar=False, **kw)
        except Exception as err:  # noqa: BLE001 - a peer failing must not hide our numbers
            lines.append(f"{name}: failed ({type(err).__name__}: {err})")
            continue
        what = ("1 epoch incl. setup and embedding" if name == "MultiVI"
                else "1 pretraining + 1 fine-tuning epoch incl. PCA/LSI, graph and embedding")
        lines.append(f"{name}: {time.perf_counter() - t0:.1f} s ({what})")
    return lines


def quality(model, mdata, seed: int) -> dict:
    """GLUE integration metrics (``attune_lib.metrics``) of the teacher embeddings against ``cell_type``."""
    from attune_lib.metrics import integration_metrics_from_embeddings

    zr = model.get_latent_representation(modality="rna")
    za = model.get_latent_representation(modality="atac")
    m = integration_metrics_from_embeddings(zr, za, mdata["rna"].obs["cell_type"].to_numpy(), seed=seed)
    return {k: float(m[k]) for k in ("foscttm", "map", "asw", "sas", "gc")}


# ------------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small smoke run: 1,500 cells x 500 genes x 5,000 peaks")
    ap.add_argument("--n-cells", type=int)
    ap.add_argument("--n-genes", type=int)
    ap.add_argument("--n-peaks", type=int)
    ap.add_argument("--generator", choices=("auto", "simulate", "own"), default="auto")
    ap.add_argument("--epochs", type=int, default=1, help="sparse epochs actually run (then extrapolated to 20)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--extra-batch", nargs="*", default=[], metavar="BS:LR",
                    help="also time Attune epochs at these batch_size:lr settings (e.g. 512:2e-4)")
    ap.add_argument("--multivi-epoch", action="store_true",
                    help="measure MultiVI's per-epoch time (1- and 3-epoch runs) and print the Attune/MultiVI ratio")
    ap.add_argument("--compare-batches", type=int, default=3, help="batches timed for both formulations")
    ap.add_argument("--dense-mem-gb", type=float, default=4.0, help="memory budget of one dense chunk")
    ap.add_argument("--no-value-batchnorm", action="store_true")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--peers", action="store_true", help="also time one MultiVI / GLUE epoch when installed")
    ap.add_argument("--no-dense", action="store_true", help="skip the dense-formulation comparison")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--omp-wait-policy", default="PASSIVE", choices=("PASSIVE", "ACTIVE", "inherit"),
                    help="OMP_WAIT_POLICY for torch's OpenMP threads (set before torch is imported). PASSIVE "
                         "keeps 2-thread timings honest on a shared machine: spinning threads made a step "
                         "6x slower at load 5 on 2 cores")
    ap.add_argument("--json", help="write the numbers to this JSON file")
    args = ap.parse_args(argv)

    if args.omp_wait_policy != "inherit":
        if "torch" in sys.modules:
            print("warning: torch already imported, --omp-wait-policy has no effect", file=sys.stderr)
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy
    import torch

    from attune_lib.models import Attune

    torch.set_num_threads(args.threads)
    os.environ.setdefault("ATTUNE_NO_PROGRESS", "1")
    n_cells, n_genes, n_peaks = (1500, 500, 5000) if args.quick else (12000, 2000, 30000)
    n_cells, n_genes, n_peaks = args.n_cells or n_cells, args.n_genes or n_genes, args.n_peaks or n_peaks
    gen = args.generator
    if gen == "auto":
        try:
            from attune_lib.datasets import simulate_multiome  # noqa: F401

            gen = "simulate"
        except ImportError:
            gen = "own"
    res: dict = {"n_cells": n_cells, "n_genes": n_genes, "n_peaks": n_peaks, "generator": gen,
                 "threads": args.threads, "batch_size": args.batch_size, "cpu_count": os.cpu_count(),
                 "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""), "load_start": os.getloadavg()[0]}

    t0 = time.perf_counter()
    mdata = simulated(n_cells, n_genes, n_peaks, args.seed) if gen == "simulate" else \
        own_generator(n_cells, n_genes, n_peaks, seed=args.seed)
    res["data_s"] = time.perf_counter() - t0
    dens = {m: mdata[m].X.nnz / (mdata[m].n_obs * mdata[m].n_vars) for m in ("rna", "atac")}
    res.update(rna_density=dens["rna"], atac_density=dens["atac"])
    print(f"data: {n_cells:,} cells x {n_genes:,} genes ({dens['rna']:.1%} non-zero) x {n_peaks:,} peaks "
          f"({dens['atac']:.1%} non-zero); generator={gen}; {res['data_s']:.1f} s; "
          f"torch threads={torch.get_num_threads()}", flush=True)

    Attune.setup_mudata(mdata)
    vbn = not args.no_value_batchnorm

    # --- sparse Attune: real training epochs
    model = Attune(mdata, seed=args.seed, value_batchnorm=vbn)
    cpu0 = time.process_time()
    with PeakRSS() as mem:
        model.train(max_epochs=args.epochs, batch_size=args.batch_size, device="cpu", progress_bar=False)
    res["sparse_epoch_cpu_s"] = (time.process_time() - cpu0) / args.epochs
    res["load_after_sparse"] = os.getloadavg()[0]
    ep = model.history["time_s"].to_numpy()
    n_batch = int(np.ceil(n_cells / args.batch_size))
    res.update(
        sparse_epoch_s=float(ep.mean()),
        sparse_epochs=ep.tolist(),
        sparse_20_epochs_min=float(ep.mean() * 20 / 60),
        sparse_peak_rss_gib=mem.peak / GiB,
        sparse_extra_rss_gib=mem.extra / GiB,
        final_loss=float(model.history["loss"].iloc[-1]),
    )
    t0 = time.perf_counter()
    model.get_latent_representation(modality="joint")
    res["embed_all_s"] = time.perf_counter() - t0
    res["quality_bs"] = {str(args.batch_size): quality(model, mdata, args.seed)}
    print(f"sparse Attune: {res['sparse_epoch_s']:.1f} s/epoch ({n_batch} batches, "
          f"{res['sparse_epoch_s'] / n_batch * 1000:.0f} ms/batch; epochs {', '.join(f'{x:.1f}' for x in ep)}) -> "
          f"projected 20 epochs {res['sparse_20_epochs_min']:.1f} min; peak RSS {res['sparse_peak_rss_gib']:.2f} GiB "
          f"(+{res['sparse_extra_rss_gib']:.2f} GiB during training); embedding all cells {res['embed_all_s']:.1f} s; "
          f"process CPU time {res['sparse_epoch_cpu_s']:.1f} s/epoch; load average {res['load_start']:.1f} -> "
          f"{res['load_after_sparse']:.1f}", flush=True)

    # --- other batch sizes, then MultiVI per epoch, side by side in this run
    for setting in args.extra_batch:
        bs, lr = setting.split(":")
        m2 = Attune(mdata, seed=args.seed, value_batchnorm=vbn)
        c0 = time.process_time()
        with PeakRSS() as mem2:
            m2.train(max_epochs=args.epochs, batch_size=int(bs), lr=float(lr), lr_end=float(lr) / 100,
                     device="cpu", progress_bar=False)
        t = float(m2.history["time_s"].mean())
        res[f"epoch_s_bs{bs}"] = t
        res[f"epoch_cpu_s_bs{bs}"] = (time.process_time() - c0) / args.epochs
        res["quality_bs"][bs] = quality(m2, mdata, args.seed)
        print(f"sparse Attune batch {bs} (lr {lr}): {t:.1f} s/epoch (epochs "
              f"{', '.join(f'{x:.1f}' for x in m2.history['time_s'])}); peak RSS {mem2.peak / GiB:.2f} GiB; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    if args.multivi_epoch:
        try:
            res.update(multivi_epoch(mdata, seed=args.seed))
        except ImportError as err:
            print(f"MultiVI: skipped ({err})")
        else:
            mv = res["multivi_epoch_s"]
            print(f"MultiVI: {mv:.1f} s/epoch (runs of 1 and 3 epochs: "
                  f"{', '.join(f'{x:.1f}' for x in res['multivi_runs_s'])} s); load {os.getloadavg()[0]:.1f}",
                  flush=True)
            mvc = res["multivi_epoch_cpu_s"]
            for key in [k for k in res if k.startswith("epoch_s_bs")] + ["sparse_epoch_s"]:
                bs = key[len("epoch_s_bs"):] if key != "sparse_epoch_s" else str(args.batch_size)
                cpu_key = f"epoch_cpu_s_bs{bs}" if key != "sparse_epoch_s" else "sparse_epoch_cpu_s"
                print(f"ratio MultiVI epoch / Attune epoch (batch {bs}): {mv / res[key]:.2f}x wall time, "
                      f"{mvc / res[cpu_key]:.2f}x process CPU time (MultiVI {mvc:.1f} s, Attune "
                      f"{res[cpu_key]:.1f} s CPU per epoch; the CPU ratio is less sensitive to other load)",
                      flush=True)

    # --- the same batches, both formulations
    if not args.no_dense:
        compare_dense(model.module, mdata, res, args, n_batch)
    for bs, q in res["quality_bs"].items():
        print(f"quality after {args.epochs} epoch(s), batch {bs} (teacher embeddings; attune_lib.metrics): "
              + ", ".join(f"{k} {v:.4f}" for k, v in q.items()), flush=True)
    res["maxrss_gib"] = maxrss_bytes() / GiB
    res["load_end"] = os.getloadavg()[0]
    print(f"process max RSS (getrusage, incl. data): {res['maxrss_gib']:.2f} GiB; load average at the end "
          f"{res['load_end']:.1f} on {os.cpu_count()} CPUs")

    if args.peers:
        for line in time_peers(mdata, seed=args.seed):
            print(line, flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
