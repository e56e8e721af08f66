"""Embedding quality and epoch time of Attune against the training batch size (simulator data).

Trains Attune with the paper's schedule (20 epochs, lr 1e-4 -> 1e-6) at several batch sizes on the
same simulated MuData and prints, per setting, the mean epoch time and the GLUE integration metrics
(FOSCTTM, MAP, ASW, SAS, GC) of the teacher embeddings. A larger batch has fewer per-batch fixed
costs (the zero-feature scores of every peak, ``E W^T``, Adam over the embeddings) and more
negatives per NT-Xent anchor, but fewer optimisation steps per epoch.

Example::

    OMP_NUM_THREADS=2 python benchmarks/bench_batch_quality.py --settings 128:1e-4 512:1e-4 512:2e-4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-cells", type=int, default=8000)
    ap.add_argument("--n-genes", type=int, default=1000)
    ap.add_argument("--n-peaks", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--settings", nargs="+", default=["128:1e-4", "512:1e-4", "512:2e-4"],
                    help="batch_size:lr pairs (lr_end = lr / 100)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the results to this JSON file")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    import attune_lib as al
    from attune_lib.models import Attune

    torch.set_num_threads(args.threads)
    mdata = al.datasets.simulate_multiome("pbmc", n_cells=args.n_cells, n_genes=args.n_genes,
                                          n_peaks=args.n_peaks, motifs=False, seed=args.seed)
    al.pp.preprocess(mdata)
    Attune.setup_mudata(mdata, cell_type_key="cell_type")
    labels = mdata["rna"].obs["cell_type"].to_numpy()
    print(f"data: {mdata['rna'].shape} RNA, {mdata['atac'].shape} ATAC after pp; load {os.getloadavg()[0]:.1f}",
          flush=True)
    rows = []
    for setting in args.settings:
        bs, lr = setting.split(":")
        bs, lr = int(bs), float(lr)
        model = Attune(mdata, seed=args.seed)
        t0 = time.perf_counter()
        model.train(max_epochs=args.epochs, batch_size=bs, lr=lr, lr_end=lr / 100, validation_fraction=0.0,
                    early_stopping=False, device="cpu", progress_bar=False)
        wall = time.perf_counter() - t0
        zr = model.get_latent_representation(modality="rna")
        za = model.get_latent_representation(modality="atac")
        m = al.metrics.integration_metrics_from_embeddings(zr, za, labels, seed=args.seed)
        row = {"batch_size": bs, "lr": lr, "epoch_s": float(model.history["time_s"].mean()), "train_s": wall,
               "final_loss": float(model.history["loss"].iloc[-1]), "load": os.getloadavg()[0],
               **{k: float(m[k]) for k in ("foscttm", "map", "asw", "sas", "gc")}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
