"""Peak-gene link scores against distance on the simulator: default size, several seeds.

Reproduces the table "A pair-specific read-out: results" of ``docs/regulatory.md``::

    OMP_NUM_THREADS=2 python docs/analysis/link_readout_benchmark.py --seeds 0 1 2 --out results/link_readout

For every seed: simulate ``pbmc`` at the default size (3,000 cells), preprocess, train Attune
(``--attune-epochs``), train the paper's regulatory transformer (``--transformer-epochs``; its global
score is "Attune + Transformer"), compute the baselines (distance, Spearman, LASSO, Cicero-like; GLUE
when scglue is installed and ``--glue``) and the pair-specific features of :func:`attune_lib.tl.link_features`
on the Attune embedding, then the read-outs of :func:`attune_lib.tl.link_readout`:

* ``Link read-out (truth-free)``: the fixed rule, nothing fitted;
* ``Link read-out (fitted: PCHi-C)`` / ``(fitted: true links)``: the degree-2 logistic combiner fitted
  on one truth, cross-fitted by chromosome groups (every pair is scored by a model that never saw its
  chromosome).

Every score is evaluated by :func:`attune_lib.tl.link_evaluation` against the noise-free true links, the
true distal links and the PCHi-C-like truth (T/B/monocyte columns): AUROC, AUPRC and the
distance-matched AUROC. Writes ``<out>/link_readout_seed<k>.csv`` and ``<out>/link_readout_summary.csv``
(mean and sd over seeds) and prints the targets.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
import pandas as pd

import attune_lib as al

CELL_TYPES = ["Mon", "nCD4", "tCD4", "aCD4", "naCD4", "nCD8", "tCD8", "nB", "tB"]
NAMES = {"distance_only": "Distance", "spearman": "Spearman", "lasso": "LASSO", "cicero": "Cicero-like",
         "glue": "GLUE"}


def one_seed(seed: int, *, size: str, attune_epochs: int, transformer_epochs: int, transformer_cells: int,
             glue: bool, embedding: str = "attune") -> pd.DataFrame:
    from attune_lib.models import Attune, RegulatoryTransformer

    t0 = time.time()
    mdata = al.datasets.simulate_multiome("pbmc", size=size, seed=seed, motifs=False)
    print(f"seed {seed}: {mdata['rna'].n_obs} cells", flush=True)
    al.pp.preprocess(mdata, seed=seed)
    model = None
    if embedding == "attune" or transformer_epochs > 0:
        Attune.setup_mudata(mdata, rna_layer=None, atac_layer="counts", cell_type_key="cell_type")
        model = Attune(mdata, seed=seed)
        model.train(max_epochs=attune_epochs, batch_size=128, lr=1e-3, lr_end=1e-5, progress_bar=False)
        model.get_latent_representation(modality="joint", key_added="X_attune")
        print(f"seed {seed}: Attune {time.time() - t0:.0f} s", flush=True)
    links = None
    if transformer_epochs > 0:
        sub = mdata
        if transformer_cells and transformer_cells < mdata.n_obs:  # a random subset of cells (CPU time)
            keep = np.sort(np.random.default_rng(seed).choice(mdata.n_obs, transformer_cells, replace=False))
            sub = mdata[keep].copy()
        rt = RegulatoryTransformer(model, sub, window_bp=1_200_000, seed=seed)
        rt.train(max_epochs=transformer_epochs, batch_size=32, lr=1e-3, lr_end=1e-5, progress_bar=False)
        links = rt.get_global_attention(key_added=None)
        print(f"seed {seed}: transformer {time.time() - t0:.0f} s", flush=True)
    methods = ["distance", "spearman", "lasso", "cicero"] + (["glue"] if glue else [])
    al.tl.link_baselines(mdata, methods=methods, seed=seed, key_added="link_baselines")
    base = mdata.uns["link_baselines"].rename(columns=NAMES)
    if embedding == "pca":  # a cheap cell state: RNA PCA and ATAC LSI side by side
        mdata.obsm["X_state"] = np.hstack([mdata["rna"].obsm["X_pca"][:, :30], mdata["atac"].obsm["X_lsi"][:, 1:30]])
    rep = "X_attune" if embedding == "attune" else "X_state"
    feats = al.tl.link_features(mdata, use_rep=rep, seed=seed, key_added=None)
    print(f"seed {seed}: baselines and features {time.time() - t0:.0f} s", flush=True)
    truth = mdata.uns["truth"]
    pchic = al.tl.pchic_truth(truth["pchic"], mdata["rna"].var, mdata["atac"].var, cell_types=CELL_TYPES,
                              window_bp=None)
    true_links = truth["links"]
    tab = feats.merge(base[["gene", "peak", *[NAMES[m if m != "distance" else "distance_only"]
                                               for m in methods]]], on=["gene", "peak"], how="left")
    if links is not None:
        tab = al.tl.add_link_scores(tab, links, column="score", name="Attune + Transformer (paper)")
    tab["ABC-like"] = tab["abc"]
    tab["Within-state co-variation"] = tab["covariation"]
    tab["Link read-out (truth-free)"] = al.tl.link_readout(tab, None, key_added="s")["s"]
    tab["Link read-out (fitted: PCHi-C)"] = al.tl.link_readout(tab, pchic, seed=seed, key_added="s")["s"]
    tab["Link read-out (fitted: true links)"] = al.tl.link_readout(tab, true_links, seed=seed, key_added="s")["s"]
    scores = [c for c in ["Distance", "Spearman", "Cicero-like", "LASSO", "GLUE", "Attune + Transformer (paper)",
                          "ABC-like", "Within-state co-variation", "Link read-out (truth-free)",
                          "Link read-out (fitted: PCHi-C)", "Link read-out (fitted: true links)"] if c in tab]
    ev = al.tl.link_evaluation(tab, {"true links": true_links,
                                     "true distal links": true_links[true_links["kind"] == "distal"],
                                     "PCHi-C-like": pchic}, methods=scores)
    ev.insert(0, "seed", seed)
    print(f"seed {seed}: done {time.time() - t0:.0f} s", flush=True)
    return ev


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--size", default="default")
    ap.add_argument("--attune-epochs", type=int, default=10)
    ap.add_argument("--transformer-epochs", type=int, default=3)
    ap.add_argument("--transformer-cells", type=int, default=600, help="cells the transformer trains and "
                    "sums its global score over (0: all)")
    ap.add_argument("--embedding", choices=["attune", "pca"], default="attune",
                    help="cell state of the co-variation features: the trained Attune joint embedding, or RNA "
                    "PCA + ATAC LSI (no training; for quick runs)")
    ap.add_argument("--glue", action="store_true", help="add GLUE (needs scglue)")
    ap.add_argument("--out", default="results/link_readout")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    glue = a.glue and importlib.util.find_spec("scglue") is not None
    evs = []
    for seed in a.seeds:
        ev = one_seed(seed, size=a.size, attune_epochs=a.attune_epochs, transformer_epochs=a.transformer_epochs,
                      transformer_cells=a.transformer_cells, glue=glue, embedding=a.embedding)
        ev.to_csv(out / f"link_readout_seed{seed}.csv", index=False)
        evs.append(ev)
    allev = pd.concat(evs, ignore_index=True)
    summ = allev.groupby(["truth", "method"], sort=False)[["auroc", "auprc", "auroc_distance_matched"]].agg(
        ["mean", "std"])
    summ.columns = [f"{a}_{b}" for a, b in summ.columns]
    summ = summ.reset_index()
    summ.to_csv(out / "link_readout_summary.csv", index=False)
    pd.set_option("display.width", 200)
    print(summ.round(3).to_string(index=False))
    # targets, per seed
    def val(ev, truth, method, col):
        r = ev[(ev["truth"] == truth) & (ev["method"] == method)]
        return float(r[col].iloc[0])

    for ev in evs:
        s = int(ev["seed"].iloc[0])
        new_t, new_p = "Link read-out (fitted: true links)", "Link read-out (fitted: PCHi-C)"
        checks = {
            "true links: AUROC new > distance": val(ev, "true links", new_t, "auroc")
            > val(ev, "true links", "Distance", "auroc"),
            "true links: AUPRC new > distance": val(ev, "true links", new_t, "auprc")
            > val(ev, "true links", "Distance", "auprc"),
            "true links: matched AUROC new >= Spearman + 0.05": val(ev, "true links", new_t, "auroc_distance_matched")
            >= val(ev, "true links", "Spearman", "auroc_distance_matched") + 0.05,
            "PCHi-C: AUROC new >= distance": val(ev, "PCHi-C-like", new_p, "auroc")
            >= val(ev, "PCHi-C-like", "Distance", "auroc"),
        }
        print(f"seed {s}: " + "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items()))
    return summ


if __name__ == "__main__":
    main()
