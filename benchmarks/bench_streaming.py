"""Benchmark: Attune trained from disk (streamed mini-batches), memory flat in the number of cells.

For each size (``--sizes``, default 10,000 / 100,000 / 1,000,000 cells x 2,000 genes x 30,000 peaks):

1. :func:`attune_lib.datasets.write_multiome_h5ad` writes ``rna.h5ad`` / ``atac.h5ad`` chunk by chunk
   (RNA ~15 % and ATAC ~5 % non-zero by default; ``--rna-density`` / ``--atac-density``);
2. in a fresh process (so its peak resident memory is its own), an
   :class:`attune_lib.models.OnDiskPairedSource` opens the files and ``Attune.train(data=source)`` runs
   one epoch (or ``--max-steps`` steps) with mini-batches read from the files in a background thread.

Printed per size: writing time, file size, streamed cells per second (cells trained / training wall
time), peak RSS of the training process (``getrusage`` high-water mark, everything included: Python,
torch, the model, the row pointers, the loader) and the cell-independent part of that (RSS after the
model is built, before training). ``--json`` writes the table.

Examples::

    OMP_NUM_THREADS=2 python benchmarks/bench_streaming.py --sizes 10000 100000
    OMP_NUM_THREADS=2 python benchmarks/bench_streaming.py --sizes 1000000 --max-steps 2000 --keep
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

GiB = 1024**3


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def child_write(args) -> dict:
    from attune_lib.datasets import write_multiome_h5ad

    t0 = time.perf_counter()
    paths = write_multiome_h5ad(args.dir, n_cells=args.n_cells, n_genes=args.n_genes, n_peaks=args.n_peaks,
                                rna_density=args.rna_density, atac_density=args.atac_density,
                                chunk_size=args.chunk_size, seed=args.seed, overwrite=True, progress_bar=False)
    return {"write_s": time.perf_counter() - t0, "write_peak_rss_gib": _maxrss() / GiB,
            "file_gib": sum(p.stat().st_size for p in paths.values()) / GiB}


def child_train(args) -> dict:
    import torch

    from attune_lib.models import Attune, OnDiskPairedSource

    torch.set_num_threads(args.threads)
    d = Path(args.dir)
    t0 = time.perf_counter()
    source = OnDiskPairedSource(d / "rna.h5ad", d / "atac.h5ad", check_values=False)
    nnz = {m: x.nnz for m, x in source.matrices.items()}
    open_s = time.perf_counter() - t0
    tmpl = source.template_mudata()
    Attune.setup_mudata(tmpl)
    model = Attune(tmpl, seed=args.seed)
    rss_model = _rss()
    t0 = time.perf_counter()
    model.train(data=source, max_epochs=1 if args.max_steps is None else None, max_steps=args.max_steps,
                batch_size=args.batch_size, lr=args.lr, lr_end=args.lr / 100, device="cpu", progress_bar=False)
    train_s = time.perf_counter() - t0
    steps = int(model.history["step"].iloc[-1])
    cells = min(steps * args.batch_size, source.n_obs)
    epoch_s = float(model.history["time_s"].sum())
    return {"open_s": open_s, "train_s": train_s, "epoch_s": epoch_s, "steps": steps, "cells_trained": cells,
            "cells_per_s": cells / epoch_s, "loss": float(model.history["loss"].iloc[-1]),
            "rss_after_model_gib": rss_model / GiB, "train_peak_rss_gib": _maxrss() / GiB,
            "rna_density": nnz["rna"] / (source.n_obs * args.n_genes),
            "atac_density": nnz["atac"] / (source.n_obs * args.n_peaks)}


def run_child(kind: str, args, n_cells: int, data_dir: Path) -> dict:
    cmd = [sys.executable, __file__, f"--_child={kind}", f"--_n-cells={n_cells}", f"--_dir={data_dir}",
           f"--n-genes={args.n_genes}", f"--n-peaks={args.n_peaks}", f"--rna-density={args.rna_density}",
           f"--atac-density={args.atac_density}", f"--chunk-size={args.chunk_size}", f"--seed={args.seed}",
           f"--batch-size={args.batch_size}", f"--lr={args.lr}", f"--threads={args.threads}"]
    if args.max_steps is not None and n_cells > args.max_steps_above:
        cmd.append(f"--max-steps={args.max_steps}")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--n-genes", type=int, default=2000)
    ap.add_argument("--n-peaks", type=int, default=30000)
    ap.add_argument("--rna-density", type=float, default=0.15)
    ap.add_argument("--atac-density", type=float, default=0.05)
    ap.add_argument("--chunk-size", type=int, default=10000, help="cells per written chunk")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--max-steps", type=int, default=None,
                    help="cap the streamed epoch at this many steps (sizes above --max-steps-above only)")
    ap.add_argument("--max-steps-above", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work-dir", default="benchmarks/results/streaming_data",
                    help="where the datasets are written (one folder per size)")
    ap.add_argument("--keep", action="store_true", help="keep the written files (default: delete after each size)")
    ap.add_argument("--reuse", action="store_true", help="train on files already written by an earlier --keep run")
    ap.add_argument("--json", help="write the results to this JSON file")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    ap.add_argument("--_n-cells", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--_dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("ATTUNE_NO_PROGRESS", "1")

    if args._child:
        args.n_cells, args.dir = args._n_cells, args._dir
        res = child_write(args) if args._child == "write" else child_train(args)
        print(json.dumps(res))
        return 0

    rows = []
    for n in args.sizes:
        data_dir = Path(args.work_dir) / f"cells_{n}"
        res = {"n_cells": n, "n_genes": args.n_genes, "n_peaks": args.n_peaks, "batch_size": args.batch_size,
               "load_start": os.getloadavg()[0]}
        if args.reuse and (data_dir / "atac.h5ad").exists():
            res["file_gib"] = sum((data_dir / f).stat().st_size for f in ("rna.h5ad", "atac.h5ad")) / GiB
        else:
            res.update(run_child("write", args, n, data_dir))
            print(f"{n:,} cells: written in {res['write_s']:.0f} s ({res['file_gib']:.2f} GiB on disk, writer peak "
                  f"RSS {res['write_peak_rss_gib']:.2f} GiB)", flush=True)
        res.update(run_child("train", args, n, data_dir))
        res["load_end"] = os.getloadavg()[0]
        what = "one epoch" if res["cells_trained"] >= n else f"{res['steps']} steps ({res['cells_trained']:,} cells)"
        print(f"{n:,} cells (RNA {res['rna_density']:.1%}, ATAC {res['atac_density']:.1%} non-zero): streamed {what} "
              f"in {res['epoch_s']:.0f} s = {res['cells_per_s']:.0f} cells/s; peak RSS {res['train_peak_rss_gib']:.2f} "
              f"GiB (after building the model {res['rss_after_model_gib']:.2f} GiB); load {res['load_start']:.1f} -> "
              f"{res['load_end']:.1f}", flush=True)
        rows.append(res)
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
