"""How far above distance alone can a link score get on the simulator's PCHi-C-like truth?

Reproduces the ceiling numbers of ``docs/regulatory.md`` ("Why the paper's global score cannot beat
distance" and "A pair-specific read-out"). Runs in about a minute on a laptop CPU::

    python docs/analysis/link_score_ceiling.py

Scores every candidate gene-peak pair within 1.2 Mb of the small ``pbmc`` simulation (seed 0, the
setting of ``notebooks/03a_regulatory.ipynb``) against the PCHi-C-like truth (T/B/monocyte columns) with

* the baselines alone (distance, Spearman over metacells);
* rank means ``(1 - w) rank(-distance) + w rank(Spearman)`` for a grid of ``w`` (the best ``w`` is
  picked on the truth itself, so it is an optimistic ceiling for "distance + co-variation");
* 5-fold cross-validated logistic regressions on log-distance plus Spearman, and on log-distance plus
  the simulator's own link weights (the oracle: what perfect knowledge of the planted links adds);
* the within-state co-variation of :func:`attune_lib.tl.link_features` (cell state: RNA PCA + ATAC LSI),
  alone and in the read-out of :func:`attune_lib.tl.link_readout` fitted on the PCHi-C-like truth of
  other chromosomes (held-out chromosomes only).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

import attune_lib as al

CELL_TYPES = ["Mon", "nCD4", "tCD4", "aCD4", "naCD4", "nCD8", "tCD8", "nB", "tB"]


def main(seed: int = 0) -> pd.DataFrame:
    mdata = al.datasets.load_dataset("simulated", small=True, seed=seed)
    al.pp.preprocess(mdata, seed=seed)
    al.tl.link_baselines(mdata, window_bp=1_200_000, methods=["distance", "spearman"], seed=seed,
                         key_added="link_baselines")
    links = mdata.uns["link_baselines"]
    pchic = mdata.uns["truth"]["pchic"]
    truth = al.tl.pchic_truth(pchic, mdata["rna"].var, mdata["atac"].var,
                              cell_types=[c for c in CELL_TYPES if c in pchic.columns], window_bp=None)
    links = al.tl.add_link_scores(links, mdata.uns["truth"]["links"], column="weight", name="oracle")
    links["oracle"] = links["oracle"].fillna(0.0)
    y = links.merge(truth[["gene", "peak"]].assign(y=1), how="left")["y"].fillna(0).to_numpy()

    rows = [("Distance", roc_auc_score(y, links["distance_only"])),
            ("Spearman", roc_auc_score(y, links["spearman"])),
            ("Oracle link weight", roc_auc_score(y, links["oracle"]))]
    r_d = rankdata(links["distance_only"]) / len(links)
    r_s = rankdata(links["spearman"]) / len(links)
    best = max((roc_auc_score(y, (1 - w) * r_d + w * r_s), w) for w in np.linspace(0.05, 0.95, 19))
    rows.append((f"Distance + Spearman, rank mean (best w = {best[1]:.2f}, chosen on the truth)", best[0]))
    feats = pd.DataFrame({"log_distance": np.log10(links["distance"] + 1e3), "spearman": links["spearman"],
                          "oracle": links["oracle"], "oracle_linked": (links["oracle"] > 0).astype(float)})

    def cv(cols):
        p = cross_val_predict(LogisticRegression(max_iter=2000), feats[cols], y, cv=5, method="predict_proba")
        return roc_auc_score(y, p[:, 1])

    rows.append(("Logistic(log distance, Spearman), 5-fold CV", cv(["log_distance", "spearman"])))
    rows.append(("Logistic(log distance, oracle weight), 5-fold CV",
                 cv(["log_distance", "oracle", "oracle_linked"])))
    mdata.obsm["X_state"] = np.hstack([mdata["rna"].obsm["X_pca"][:, :30], mdata["atac"].obsm["X_lsi"][:, 1:30]])
    feats = al.tl.link_features(mdata, use_rep="X_state", seed=seed, key_added=None)
    feats = al.tl.link_readout(feats, truth, seed=seed, key_added="readout")
    sub = links[["gene", "peak"]].merge(feats[["gene", "peak", "covariation", "readout"]], how="left")
    rows.append(("Within-state co-variation (RNA PCA + ATAC LSI state)", roc_auc_score(y, sub["covariation"])))
    rows.append(("Link read-out fitted on other chromosomes (held-out)", roc_auc_score(y, sub["readout"])))
    out = pd.DataFrame(rows, columns=["score", "auroc_vs_pchic_like_truth"])
    print(f"{len(links):,} candidate pairs, {int(y.sum())} PCHi-C-supported")
    print(out.round(3).to_string(index=False))
    return out


if __name__ == "__main__":
    main()
