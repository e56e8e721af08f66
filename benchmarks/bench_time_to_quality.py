"""Benchmark: time to quality of Attune, MultiVI and GLUE on the same simulated data, in one run.

The simulator's ``pbmc`` preset (``--n-cells`` x ``--n-genes`` x ``--n-peaks`` before ``attune_lib.pp``)
is preprocessed once and given to the three methods. For each, the FOSCTTM of its RNA and ATAC
embeddings (``attune_lib.metrics``) is measured after every epoch, outside the timed training:

* **Attune**: ``model.train()`` with its default schedule (on a few thousand cells: 1,000 steps, early
  stopping on held-out cells, best epoch kept); an epoch callback embeds all cells;
* **MultiVI** (scvi-tools, ``attune_lib.tl._peers.run_multivi``, its early stopping): a Lightning callback
  embeds all cells after every epoch (the time it takes is subtracted);
* **GLUE** (scglue, ``run_glue``): its fit loop has no per-epoch hook here, so only the total wall time
  (graph, PCA/LSI, pretraining and fine-tuning) and the final scores are reported; its time to quality
  is at most that total.

Time to quality: cumulative training wall time until the first epoch whose FOSCTTM is within 5 % of the
method's own final FOSCTTM (``<= 1.05 x final``). Final scores: FOSCTTM, MAP, ASW, SAS, GC of the
returned embeddings.

Example (in the environment with the peers)::

    OMP_NUM_THREADS=2 .venv-peers/bin/python benchmarks/bench_time_to_quality.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

METRICS = ("foscttm", "map", "asw", "sas", "gc")


def scores(zr, za, labels, seed) -> dict:
    from attune_lib.metrics import integration_metrics_from_embeddings

    m = integration_metrics_from_embeddings(np.asarray(zr), np.asarray(za), labels, seed=seed)
    return {k: float(m[k]) for k in METRICS}


def time_to(curve: list[tuple[float, float]], final: float, tol: float = 0.05) -> float | None:
    """First cumulative time whose FOSCTTM is within ``tol`` (relative) of ``final``."""
    for t, f in curve:
        if f <= final * (1 + tol):
            return t
    return None


def run_attune(mdata, labels, seed) -> dict:
    from attune_lib.metrics import foscttm
    from attune_lib.models import Attune

    model = Attune(mdata, seed=seed)
    fos = []

    def cb(trainer, epoch, record):
        zr = model.get_latent_representation(modality="rna")
        za = model.get_latent_representation(modality="atac")
        fos.append(float(foscttm(zr, za)))

    t0 = time.perf_counter()
    model.train(device="cpu", progress_bar=False, callbacks=[cb])
    wall = time.perf_counter() - t0
    times = np.cumsum(model.history["time_s"].to_numpy())
    final = scores(model.get_latent_representation(modality="rna"),
                   model.get_latent_representation(modality="atac"), labels, seed)
    return {"curve": list(zip(times.tolist(), fos, strict=True)), "final": final, "wall_s": wall,
            "train_s": float(times[-1]), "epochs": len(fos), "steps": int(model.history["step"].iloc[-1])}


def run_multivi(mdata, labels, seed) -> dict:
    import lightning.pytorch as pl
    import scvi

    from attune_lib.metrics import foscttm
    from attune_lib.tl._peers import run_multivi as _run

    holder: dict = {}
    orig_train = scvi.model.MULTIVI.train

    def train(self, *a, **k):  # keep the model object for the epoch callback
        holder["model"] = self
        return orig_train(self, *a, **k)

    curve, state = [], {"t": None, "train": 0.0}

    class EpochQuality(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            state["t"] = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            state["train"] += time.perf_counter() - state["t"]
            model = holder["model"]
            was = model.is_trained_
            model.is_trained_ = True
            pl_module.module.eval()  # the final embedding is computed in eval mode: the curve must be too
            zr = model.get_latent_representation(modality="expression")
            za = model.get_latent_representation(modality="accessibility")
            model.is_trained_ = was
            pl_module.module.train()
            curve.append((state["train"], float(foscttm(np.asarray(zr), np.asarray(za)))))

    scvi.model.MULTIVI.train = train
    try:
        t0 = time.perf_counter()
        out = _run(mdata, seed=seed, progress_bar=False, train_kwargs={"callbacks": [EpochQuality()]})
        wall = time.perf_counter() - t0
    finally:
        scvi.model.MULTIVI.train = orig_train
    return {"curve": curve, "final": scores(out["rna"], out["atac"], labels, seed), "wall_s": wall,
            "train_s": state["train"], "epochs": len(curve)}


def run_glue(mdata, labels, seed) -> dict:
    from attune_lib.tl._peers import run_glue as _run

    t0 = time.perf_counter()
    out = _run(mdata, seed=seed, progress_bar=False)
    wall = time.perf_counter() - t0
    return {"curve": [], "final": scores(out["rna"], out["atac"], labels, seed), "wall_s": wall, "train_s": wall}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-cells", type=int, default=3000)
    ap.add_argument("--n-genes", type=int, default=1000)
    ap.add_argument("--n-peaks", type=int, default=10000)
    ap.add_argument("--methods", nargs="+", default=["attune", "multivi", "glue"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the results to this JSON file")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("ATTUNE_NO_PROGRESS", "1")
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
    runners = {"attune": run_attune, "multivi": run_multivi, "glue": run_glue}
    rows = {}
    for name in args.methods:
        try:
            res = runners[name](mdata, labels, args.seed)
        except ImportError as err:
            print(f"{name}: skipped ({err})", flush=True)
            continue
        final = res["final"]["foscttm"]
        res["time_to_quality_s"] = time_to(res["curve"], final) if res["curve"] else None
        res["load"] = os.getloadavg()[0]
        rows[name] = res
        ttq = (f"{res['time_to_quality_s']:.1f} s" if res["time_to_quality_s"] is not None
               else f"<= {res['wall_s']:.1f} s (no per-epoch curve)")
        print(f"{name}: time to within 5 % of its final FOSCTTM {ttq}; training {res['train_s']:.1f} s, whole call "
              f"{res['wall_s']:.1f} s; final " + ", ".join(f"{k} {v:.4f}" for k, v in res["final"].items())
              + f"; load {res['load']:.1f}", flush=True)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
