"""Trust diagnostics on real multiome data laid out as users hold it (a 10x ARC folder).

Builds a gzipped Cell Ranger ARC ``filtered_feature_bc_matrix/`` folder from the real bone-marrow subset
(500 cells, 21 cell types) in ``../shared/data`` (or ``--data``), optionally as log-normalised values,
reads it with ``datasets.read``, preprocesses it with the defaults and runs the integration benchmark
(Attune with its default schedule and with the paper's 20 epochs, PCA/LSI, PCA/LSI+CCA) and the
prediction benchmark (LASSO, ridge on LSI, de novo MLP), printing the trust columns and flags.

    python docs/analysis/real_data_trust.py [--data ../shared/data] [--lognorm] [--seeds 0]

The PBMC 10k subset (scPOEM, already log-normalised) is read with ``--pbmc300``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import anndata as ad

import attune_lib as al

REPO = Path(__file__).resolve().parents[2]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--lognorm", action="store_true", help="write log-normalised values instead of counts")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--skip-prediction", action="store_true")
    ap.add_argument("--pbmc300", action="store_true", help="read the scPOEM PBMC subset (log-normalised, no labels)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import write_10x_folder  # the same folder writer the tests use

    from attune_lib._access import lognormalize

    warnings.simplefilter("ignore")
    if args.pbmc300:  # no cell types: prediction only
        m = al.datasets.read(args.data / "pbmc300_scpoem", genome="hg38")
        al.pp.preprocess(m)
        print(al.datasets.describe(m))
        _prediction(m)
        return
    base = args.data / "bmmc500_openproblems"
    rna, atac = ad.read_h5ad(base / "rna.h5ad"), ad.read_h5ad(base / "atac.h5ad")
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        kw = {}
        if args.lognorm:
            kw = dict(rna_values=lognormalize(rna.layers["counts"]), atac_values=lognormalize(atac.layers["counts"]),
                      bare_chroms=True)
        folder = write_10x_folder(Path(tmp) / "filtered_feature_bc_matrix", rna, atac, **kw)
        m = al.datasets.read(folder, genome="hg38")
    m.obs["cell_type"] = rna.obs.loc[m.obs_names, "cell_type"].astype(str).to_numpy()
    al.pp.preprocess(m)
    print(al.datasets.describe(m))
    cols = ["label", "seed", "foscttm", "map", "map_rna", "map_atac", "map_chance", "label_signal", "overall"]
    for name, epochs in (("default schedule", None), ("paper schedule (20 epochs)", {"attune": 20})):
        df = al.tl.run_integration_benchmark(m, methods=("attune", "pca_lsi", "cca"), seeds=args.seeds,
                                             max_epochs=epochs, progress_bar=False)
        print(f"\n== integration, Attune with the {name}")
        print(df[cols].round(3).to_string(index=False))
        for _, row in df.iterrows():
            print(f"  flag [{row['label']}]: {row['flag'] or '-'}")
        print("  data flags:", "; ".join(df.attrs["data_flags"]) or "-")
    if not args.skip_prediction:
        _prediction(m)


def _prediction(m) -> None:
    summary, _ = al.tl.run_prediction_benchmark(m, settings=("lasso", "lsi_ridge", "mlp_denovo"),
                                                contrasts=("default",), n_splits=1, progress_bar=False)
    print("\n== prediction (RNA from ATAC, one 80/20 split)")
    print(summary[["method", "pearson", "null_pearson_q95", "n_genes_constant_pred", "n_genes", "flag"]]
          .round(3).to_string(index=False))


if __name__ == "__main__":
    main()
