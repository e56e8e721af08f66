"""The pair-specific link features on real paired data, where no truth set is at hand.

Quoted in ``docs/regulatory.md`` ("Real data"). Runs in a minute or two on a laptop CPU::

    python docs/analysis/link_readout_real.py [--data ../shared/data]

Data: the bone-marrow multiome subset in ``<data>/bmmc500_openproblems`` (500 cells, 600 genes, 600
peaks, GRCh38; genes placed with ``<data>/annotation/hg38_genes_orghs_2022-09.tsv``). Without a
truth set, three checks that need none:

* **is there within-state co-variation beyond chance?** The z-scores of :func:`attune_lib.tl.link_features`
  (cell state: a briefly trained Attune joint embedding) against the same statistic with the RNA cells
  permuted (the null keeps every marginal);
* **does it decay with distance, as regulation does?** Mean z by distance bin;
* **is the read-out pair-specific?** :func:`attune_lib.tl.link_score_structure` of the truth-free
  read-out, to compare with the original Attune's released PBMC scores (rank-1 Spearman 0.989,
  distance Spearman 0.063; ``tests/test_regulatory.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd

import attune_lib as al


def load(data: Path) -> md.MuData:
    rna = ad.read_h5ad(data / "bmmc500_openproblems" / "rna.h5ad")
    atac = ad.read_h5ad(data / "bmmc500_openproblems" / "atac.h5ad")
    rna.X = rna.layers["counts"].copy()
    atac.X = atac.layers["counts"].copy()
    al.datasets.annotate_genes(rna, data / "annotation" / "hg38_genes_orghs_2022-09.tsv")
    parts = atac.var_names.str.extract(r"^(.+)-(\d+)-(\d+)$")  # chr1-100-200 and contigs (GL000205.2-...)
    atac.var["chrom"] = parts[0].to_numpy()
    atac.var["start"], atac.var["end"] = parts[1].astype(int).to_numpy(), parts[2].astype(int).to_numpy()
    return md.MuData({"rna": rna, "atac": atac})


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    ap.add_argument("--epochs", type=int, default=10)
    a = ap.parse_args(argv)
    from attune_lib.models import Attune

    mdata = load(Path(a.data))
    al.pp.preprocess(mdata, seed=0)
    Attune.setup_mudata(mdata, rna_layer=None, atac_layer="counts", cell_type_key="cell_type")
    model = Attune(mdata, seed=0)
    model.train(max_epochs=a.epochs, batch_size=64, lr=1e-3, lr_end=1e-5, progress_bar=False)
    model.get_latent_representation(modality="joint", key_added="X_attune")
    feats = al.tl.link_features(mdata, use_rep="X_attune", key_added=None)
    # null: the same statistic with the RNA cells permuted (state and marginals kept, pairing broken)
    perm = mdata.copy()
    order = np.random.default_rng(0).permutation(perm.n_obs)
    rna = perm["rna"]
    rna.X = rna.X[order]
    rna.layers["counts"] = rna.layers["counts"][order]
    null = al.tl.link_features(perm, use_rep="X_attune", key_added=None)
    z, z0 = feats["covariation_z"].to_numpy(), null["covariation_z"].to_numpy()
    bins = pd.cut(feats["distance"], [0, 2_000, 50_000, 200_000, 1_200_001], right=False)
    by_bin = pd.DataFrame({"z": z, "z_null": z0, "bin": bins}).groupby("bin", observed=True).agg(
        n_pairs=("z", "size"), mean_z=("z", "mean"), mean_z_null=("z_null", "mean"),
        frac_z_gt_3=("z", lambda v: float((v > 3).mean())), frac_null_gt_3=("z_null", lambda v: float((v > 3).mean())))
    readout = al.tl.link_readout(feats, None, key_added="s")
    out = {
        "n_pairs": len(feats), "n_genes": int(feats["gene"].nunique()), "n_peaks": int(feats["peak"].nunique()),
        "frac_z_gt_3": float((z > 3).mean()), "frac_null_z_gt_3": float((z0 > 3).mean()),
        "structure_truth_free_readout": al.tl.link_score_structure(readout, score="s"),
        "structure_covariation": al.tl.link_score_structure(feats, score="covariation"),
    }
    pd.set_option("display.width", 160)
    print(f"{out['n_pairs']:,} candidate pairs ({out['n_genes']} genes, {out['n_peaks']} peaks) within 1.2 Mb")
    print(by_bin.round(3).to_string())
    for k, v in out.items():
        print(k, v)
    return out


if __name__ == "__main__":
    main()
