"""The exercises of every notebook, each with the function that computes its answer key.

Keys are computed from ``mdata.uns["truth"]`` (and the simulated layers and obs) or from the files a
notebook wrote to its results folder, never stored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._utils import AttuneInputError
from ._check import Context, Exercise

# ---------------------------------------------------------------------------------------------- helpers


def _present_links(ctx: Context) -> pd.DataFrame:
    """True links whose gene and peak are still in the (possibly filtered) MuData."""
    links = ctx.truth["links"]
    m = ctx.mdata
    return links[links["gene"].isin(m["rna"].var_names) & links["peak"].isin(m["atac"].var_names)]


def _cell_types(ctx: Context) -> pd.Series:
    m = ctx.mdata
    obs = m["rna"].obs if "cell_type" in m["rna"].obs else m.obs
    if "cell_type" not in obs:
        raise AttuneInputError(f"{ctx.notebook}: this exercise needs obs['cell_type']")
    return obs["cell_type"].astype(str)


def _truth_centroid_distances(ctx: Context) -> pd.DataFrame:
    """Euclidean distances between cell-type centroids of the noise-free expression (long format)."""
    rna = ctx.mdata["rna"]
    if "truth_mean" not in rna.layers:
        raise AttuneInputError(f"{ctx.notebook}: rna.layers['truth_mean'] (the simulator's noise-free expression) "
                               "is missing; run the notebook on the simulator")
    X = np.asarray(rna.layers["truth_mean"])
    types = _cell_types(ctx).to_numpy()
    names = sorted(set(types))
    cent = np.stack([X[types == t].mean(axis=0) for t in names])
    d = np.sqrt(((cent[:, None, :] - cent[None, :, :]) ** 2).sum(-1))
    rows = [(names[i], names[j], d[i, j]) for i in range(len(names)) for j in range(i + 1, len(names))]
    return pd.DataFrame(rows, columns=["a", "b", "distance"]).sort_values("distance", ignore_index=True)


def _top_with_ties(values: pd.Series, n: int) -> dict:
    """The top ``n`` names of ``values``; every name tied with the n-th is accepted too."""
    values = values.sort_values(ascending=False)
    top = list(values.index[:n])
    cutoff = values.iloc[min(n, len(values)) - 1]
    return {"answer": top, "accept": list(values.index[values >= cutoff])}


def _bottom_with_ties(values: pd.Series, n: int) -> dict:
    return _top_with_ties(-values, n)


def _choice_of(values: pd.Series, *, lowest: bool, aliases: dict | None = None) -> dict:
    """The best name in ``values`` (a Series indexed by name), with its aliases."""
    best = values.idxmin() if lowest else values.idxmax()
    return {"answer": best, "aliases": list((aliases or {}).get(best, []))}


def _method_aliases(df: pd.DataFrame) -> dict:
    if {"label", "method"} <= set(df.columns):
        return {lab: [m] for lab, m in df[["label", "method"]].drop_duplicates().itertuples(index=False)}
    return {}


def _ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"].astype(str).str.startswith("ok")] if "status" in df else df


# ------------------------------------------------------------------------------------------ 00 data tour


def _largest_types(ctx):
    return _top_with_ties(_cell_types(ctx).value_counts(), 3)


def _median_link_distance(ctx):
    return {"answer": float(ctx.truth["links"]["distance"].abs().median()), "right": 0.1, "partly": 0.5,
            "relative": True}


def _sparser_modality(ctx):
    m = ctx.mdata
    frac = {}
    for mod in ("rna", "atac"):
        X = m[mod].layers["counts"] if "counts" in m[mod].layers else m[mod].X
        nnz = X.nnz if hasattr(X, "nnz") else int(np.count_nonzero(X))
        frac[mod] = nnz / (X.shape[0] * X.shape[1])
    return _choice_of(pd.Series(frac), lowest=True)


# ------------------------------------------------------------------------------- 02 integration benchmark


def _closest_types(ctx):
    d = _truth_centroid_distances(ctx)
    a, b = d.iloc[0]["a"], d.iloc[0]["b"]
    return {"answer": [a, b]}


def _best_foscttm(ctx):
    df = _ok_rows(ctx.result("02a_integration_benchmark.csv"))
    return _choice_of(df.groupby("label")["foscttm"].mean(), lowest=True, aliases=_method_aliases(df))


def _attune_beats_cca(ctx):
    df = _ok_rows(ctx.result("02a_integration_benchmark.csv"))
    means = df.groupby("method")["overall"].mean()
    if not {"attune", "cca"} <= set(means.index):
        raise AttuneInputError(f"{ctx.notebook}: the benchmark table has no Attune or CCA rows")
    yes = bool(means["attune"] > means["cca"])
    return {"answer": "yes" if yes else "no", "aliases": ["true" if yes else "false"]}


# ---------------------------------------------------------------------------- 02 feature and dimension


def _linked_peak_fraction(ctx):
    m = ctx.mdata
    links = ctx.truth["links"]
    n = int(links.loc[links["peak"].isin(m["atac"].var_names), "peak"].nunique())
    return {"answer": n / m["atac"].n_vars, "right": 0.02, "partly": 0.1}


def _best_design(ctx):
    con = ctx.result("02_contrast_ablation.csv")
    con = con[con["method"] == "attune"] if "method" in con else con
    return _choice_of(con.groupby("design")["overall"].mean(), lowest=False)


def _chance_designs(ctx):
    con = ctx.result("02_contrast_ablation.csv")
    con = con[con["method"] == "attune"] if "method" in con else con
    f = con.groupby("design")["foscttm"].mean()
    near = list(f.index[f > 0.3])
    if not near:
        return {"answer": ["none"]}
    return {"answer": near}


# ---------------------------------------------------------------------------------------- 02 prediction


def _top_weight_genes(ctx):
    return _top_with_ties(_present_links(ctx).groupby("gene")["weight"].sum(), 5)


def _prediction_table(ctx) -> pd.DataFrame:
    table = ctx.result("02c_prediction_table.csv")
    if "method" in table.columns:
        table = table.set_index("method")
    else:
        table = table.set_index(table.columns[0])
    return table


def _best_predictor(ctx):
    table = _prediction_table(ctx)
    table = table.drop(index=[i for i in table.index if i == "noise_free"])
    return _choice_of(table["pearson_mean"], lowest=False)


def _ceiling(ctx):
    table = _prediction_table(ctx)
    if "noise_free" not in table.index:
        raise AttuneInputError(f"{ctx.notebook}: no noise_free row (only the simulator has a ceiling)")
    return {"answer": float(table.loc["noise_free", "pearson_mean"]), "right": 0.02, "partly": 0.06}


# ---------------------------------------------------------------------------------------- 03 regulatory


def _near_distal_fraction(ctx):
    links = ctx.truth["links"]
    distal = links[links["kind"] == "distal"]
    return {"answer": float((distal["distance"].abs() <= 150_000).mean()), "right": 0.03, "partly": 0.1}


def _distance_or_attention(ctx):
    auroc = ctx.result("03a_regulatory_auroc.csv")
    allbin = auroc[auroc["bin"].astype(str) == "all"].set_index("method")["auroc"]
    pair = allbin.reindex(["Distance", "Attune + Transformer"])
    if pair.isna().any():
        raise AttuneInputError(f"{ctx.notebook}: 03a_regulatory_auroc.csv lacks Distance or Attune + Transformer")
    best = pair.idxmax()
    alias = {"Distance": ["distance alone", "distance only"], "Attune + Transformer":
             ["attune", "attention", "transformer", "attune transformer"]}
    return {"answer": best, "aliases": alias[best]}


def _chance_bins(ctx):
    auroc = ctx.result("03a_regulatory_auroc.csv")
    mine = auroc[(auroc["method"] == "Attune + Transformer") & (auroc["bin"].astype(str) != "all")]
    bins = list(mine.loc[mine["auroc"] <= 0.55, "bin"].astype(str))
    return {"answer": bins or ["none"]}


# ----------------------------------------------------------------------------------- 03 chromatin potential


def _lagging_genes(ctx):
    lag = ctx.truth["lagging_genes"]
    lag = lag[lag["gene"].isin(ctx.mdata["rna"].var_names)]
    if not len(lag):
        raise AttuneInputError(f"{ctx.notebook}: this simulation plants no lagging genes (use preset='skin')")
    return _top_with_ties(lag.set_index("gene")["lag"].astype(float), 5)


def _potential_summary(ctx) -> dict:
    return ctx.result("03b_chromatin_potential_summary.json")


def _attune_or_cis(ctx):
    s = _potential_summary(ctx)
    if s.get("lagging_auroc_cis") is None:
        raise AttuneInputError(f"{ctx.notebook}: the summary has no cis AUROC (simulator only)")
    best = "Attune" if s["lagging_auroc_attune"] > s["lagging_auroc_cis"] else "cis"
    return {"answer": best, "aliases": ["attune residual", "attune head"] if best == "Attune" else
            ["cis residual", "cis predictor"]}


def _lagging_auroc(ctx):
    s = _potential_summary(ctx)
    return {"answer": float(s["lagging_auroc_attune"]), "right": 0.02, "partly": 0.1}


# -------------------------------------------------------------------------------- 04 gene regulation shift


def _gli3(ctx) -> dict:
    g3 = ctx.truth.get("gli3_like") or {}
    if not g3 or not str(g3.get("gene", "")):
        raise AttuneInputError(f"{ctx.notebook}: this simulation has no Gli3-like gene (use preset='skin')")
    return g3


def _late_tf(ctx):
    g3 = _gli3(ctx)
    early = list(g3["early_tfs"])
    partly = {str(tf): "that TF drives the early peak group, which closes; the late group opens." for tf in early}
    partly.update({str(m): "that motif belongs to an early TF; the late group's TF is another." for m in
                   g3["early_motif_ids"]})
    return {"answer": str(g3["late_tf"]), "aliases": [str(g3["late_motif_id"])], "partly": partly}


def _early_tfs(ctx):
    return {"answer": [str(t) for t in _gli3(ctx)["early_tfs"]]}


def _planted_kept(ctx):
    g3 = _gli3(ctx)
    table = ctx.result(f"04_{g3['gene']}_peak_clusters.csv")
    planted = set(g3["early_peaks"]) | set(g3["late_peaks"])
    peaks = table[table.columns[0]] if "peak" not in table else table["peak"]
    return {"answer": int(peaks.isin(planted).sum()), "right": 0, "partly": 2}


# --------------------------------------------------------------------------------- 05 modality embeddings


def _boundary(ctx):
    b = np.asarray(ctx.truth.get("boundary", [np.nan, np.nan]), dtype=float)
    if not np.isfinite(b).all():
        raise AttuneInputError(f"{ctx.notebook}: this simulation has no maturation boundary (use preset='cortex')")
    return {"answer": [float(b[0]), float(b[1])], "right": 0.03, "partly": 0.1}


def _boundary_types(ctx):
    obs = ctx.mdata.obs if "truth_boundary" in ctx.mdata.obs else ctx.mdata["rna"].obs
    y = obs["truth_boundary"].to_numpy(dtype=bool)
    if not y.any():
        raise AttuneInputError(f"{ctx.notebook}: no cell has truth_boundary (use preset='cortex')")
    share = _cell_types(ctx)[y].value_counts(normalize=True)
    return {"answer": list(share.index[share >= 0.2])}


def _boundary_auroc(ctx):
    s = ctx.result("05_modality_embeddings_summary.json")
    if s.get("boundary_auroc_distance") is None:
        raise AttuneInputError(f"{ctx.notebook}: the summary has no boundary AUROC (simulator only)")
    return {"answer": float(s["boundary_auroc_distance"]), "right": 0.02, "partly": 0.1}


# ------------------------------------------------------------------------------------------------ 07 scMVP


def _rarest_types(ctx):
    return _bottom_with_ties(_cell_types(ctx).value_counts(), 2)


def _scmvp_scores(ctx) -> pd.Series:
    s = ctx.result("07_scmvp_scores.csv")
    if isinstance(s, pd.DataFrame):
        s = s.set_index(s.columns[0])[s.columns[1]]
    return pd.Series(s, dtype=float)


def _scmvp_ari(ctx):
    return {"answer": float(_scmvp_scores(ctx)["ari"]), "right": 0.02, "partly": 0.1}


def _scmvp_nmi(ctx):
    return {"answer": float(_scmvp_scores(ctx)["nmi"]), "right": 0.02, "partly": 0.1}


# ----------------------------------------------------------------------------------- S9 reference mapping


def _closest_to_holdout(ctx, holdout: str = "CD14 Mono"):
    d = _truth_centroid_distances(ctx)
    rows = d[(d["a"] == holdout) | (d["b"] == holdout)]
    if rows.empty:
        raise AttuneInputError(f"{ctx.notebook}: cell type {holdout!r} is not in this data")
    others = [b if a == holdout else a for a, b in zip(rows["a"], rows["b"])]
    return {"answer": others[0],
            "partly": {others[1]: "that type is the second closest in the noise-free expression."}}


def _landing_type(ctx, holdout: str = "CD14 Mono"):
    table = ctx.result("S9_reference_mapping.csv")
    first = table.columns[0]
    row = table[(table[first].astype(str) == holdout) & (table.get("holdout_type", holdout) == holdout)]
    if row.empty:
        raise AttuneInputError(f"{ctx.notebook}: S9_reference_mapping.csv has no row for {holdout!r}")
    votes = row.iloc[0].drop(labels=[c for c in (first, "n_cells", "holdout_type") if c in row.columns])
    votes = pd.to_numeric(votes, errors="coerce").dropna()
    order = votes.sort_values(ascending=False)
    return {"answer": order.index[0],
            "partly": {order.index[1]: f"that type gets the second largest share ({order.iloc[1]:.0%})."}
            if len(order) > 1 else {}}


# ------------------------------------------------------------------------------------------------ registry

EXERCISES: dict[str, list[Exercise]] = {
    "00_data_tour": [
        Exercise("largest_cell_types", "Which three cell types have the most cells?", "set", "truth",
                 _largest_types, hint="count mdata['rna'].obs['cell_type'].", example='["B naive", "NK", "pDC"]'),
        Exercise("median_link_distance", "What is the median distance (in bp) between a true link's peak and "
                 "its gene's TSS?", "number", "truth", _median_link_distance,
                 hint="mdata.uns['truth']['links']['distance'] is signed; take the absolute value.",
                 example="150000"),
        Exercise("sparser_modality", "Which modality has the smaller fraction of non-zero entries, 'rna' or "
                 "'atac'?", "choice", "truth", _sparser_modality,
                 hint="compare X.nnz / (n_obs * n_vars) of the raw counts.", example='"rna"'),
    ],
    "02a_integration_benchmark": [
        Exercise("closest_cell_types", "Which two cell types are closest in the simulator's noise-free "
                 "expression (and so the pair an embedding is most likely to confuse)?", "set", "truth",
                 _closest_types, hint="average rna.layers['truth_mean'] per cell type and compare the centroids.",
                 example='["NK", "pDC"]'),
        Exercise("best_foscttm", "Which method pairs each cell's RNA with its own ATAC best (lowest mean "
                 "FOSCTTM)?", "choice", "results", _best_foscttm,
                 hint="FOSCTTM is lower-is-better; average over seeds.", example='"PCA/LSI"'),
        Exercise("attune_beats_cca", "Does Attune beat the linear PCA/LSI+CCA baseline on the overall "
                 "integration score ('yes' or 'no')?", "choice", "results", _attune_beats_cca,
                 hint="compare the mean 'overall' of the two methods in the benchmark table.", example='"yes"'),
    ],
    "02b_feature_and_dimension": [
        Exercise("linked_peak_fraction", "What fraction of this dataset's peaks has at least one true link to "
                 "a gene?", "number", "truth", _linked_peak_fraction,
                 hint="count the distinct peaks of mdata.uns['truth']['links'] that are in mdata['atac'].",
                 example="0.5"),
        Exercise("best_design", "Which contrast design gives the best overall score here?", "choice", "results",
                 _best_design, hint="average 'overall' per design over the Attune rows.", example='"intra"'),
        Exercise("chance_designs", "Under which designs does FOSCTTM stay near chance (mean above 0.3)?",
                 "set", "results", _chance_designs, exact=False,
                 hint="which designs never contrast a cell's RNA teacher with its ATAC teacher?",
                 example='["cross"]'),
    ],
    "02c_prediction": [
        Exercise("top_link_weight_genes", "Which five genes have the largest total true link weight (sum over "
                 "their linked peaks, among the genes and peaks kept by preprocessing)?", "set", "truth",
                 _top_weight_genes, hint="group mdata.uns['truth']['links'] by gene and sum 'weight'.",
                 example='["CD14", "LYZ", "NKG7", "GNLY", "MS4A1"]'),
        Exercise("best_predictor", "Which method predicts RNA from ATAC best on this run (highest mean "
                 "gene-wise Pearson, the noise_free ceiling excluded)?", "choice", "results", _best_predictor,
                 hint="look at pearson_mean in the comparison table.", example='"mlp_denovo"'),
        Exercise("prediction_ceiling", "What is the ceiling: the mean gene-wise Pearson of the noise-free "
                 "expression with the measured expression?", "number", "results", _ceiling,
                 hint="the noise_free row of the table.", example="0.5"),
    ],
    "03a_regulatory": [
        Exercise("near_distal_fraction", "What fraction of the true distal links lies within 150 kb of the "
                 "gene's TSS?", "number", "truth", _near_distal_fraction,
                 hint="truth['links'] rows with kind == 'distal'; compare |distance| with 150,000.",
                 example="0.5"),
        Exercise("distance_or_attention", "Which ranks the PCHi-C-supported pairs better over all candidates: "
                 "'Distance' alone or 'Attune + Transformer'?", "choice", "results", _distance_or_attention,
                 hint="the 'all' rows of the AUROC table.", example='"Distance"'),
        Exercise("chance_bins", "In which distance bins does the paper's score (Attune + Transformer) stop "
                 "beating chance (AUROC at most 0.55)?", "set", "results", _chance_bins, exact=False,
                 hint="the AUROC-by-bin table; 0.5 is chance.", example='["[50, 150) kb"]'),
    ],
    "03b_chromatin_potential": [
        Exercise("lagging_genes", "Which five genes lag most (largest planted lag of expression behind "
                 "chromatin)?", "set", "truth", _lagging_genes,
                 hint="mdata.uns['truth']['lagging_genes'] has a 'lag' per gene; the residual ranking is an "
                 "estimate of it.", example='["Gli3", "Krt71", "Shh", "Msx2", "Lef1"]'),
        Exercise("attune_or_cis", "Which residual ranks the planted lagging genes better here: 'Attune' or "
                 "'cis'?", "choice", "results", _attune_or_cis,
                 hint="compare the two lagging-gene AUROCs in the summary.", example='"Attune"'),
        Exercise("lagging_auroc", "What is the AUROC of the Attune residual ranking for the planted lagging "
                 "genes?", "number", "results", _lagging_auroc, hint="summary['lagging_auroc_attune'].",
                 example="0.7"),
    ],
    "04_gene_regulation_shift": [
        Exercise("late_tf", "Which TF (or its JASPAR motif id) opens Gli3's late peak group?", "choice", "truth",
                 _late_tf, hint="truth['gli3_like'] names the TFs of both peak groups.", example='"Sox5"'),
        Exercise("early_tfs", "Which two TFs drive Gli3's early (closing) peak group?", "set", "truth",
                 _early_tfs, hint="truth['gli3_like']['early_tfs'].", example='["Lef1", "Foxp1"]'),
        Exercise("planted_peaks_kept", "How many of Gli3's 12 planted peaks (early and late) did the link "
                 "read-out keep?", "number", "results", _planted_kept,
                 hint="count the non-empty 'planted' entries of the peak cluster table.", example="6"),
    ],
    "05_modality_embeddings": [
        Exercise("boundary_interval", "Between which two pseudotimes does the simulator delay RNA behind "
                 "chromatin (the maturation boundary)?", "interval", "truth", _boundary,
                 hint="look at obs['pseudotime'] of the cells with obs['truth_boundary'].", example="(0.2, 0.4)"),
        Exercise("boundary_cell_types", "Which cell types make up at least 20% of the boundary cells each?",
                 "set", "truth", _boundary_types, exact=False,
                 hint="value_counts(normalize=True) of cell_type among the truth_boundary cells.",
                 example='["RG"]'),
        Exercise("boundary_auroc", "What AUROC does the RNA-ATAC cosine distance reach for the boundary cells?",
                 "number", "results", _boundary_auroc, hint="summary['boundary_auroc_distance'].",
                 example="0.9"),
    ],
    "07_scmvp": [
        Exercise("rarest_cell_types", "Which two cell types are the rarest (the ones a mixture prior most "
                 "easily merges into a neighbour)?", "set", "truth", _rarest_types,
                 hint="count mdata['rna'].obs['cell_type'].", example='["CD4 T", "NK"]'),
        Exercise("cluster_ari", "What ARI do scMVP's mixture clusters reach against the true cell types?",
                 "number", "results", _scmvp_ari, hint="the 'ari' score.", example="0.5"),
        Exercise("cluster_nmi", "And what NMI?", "number", "results", _scmvp_nmi, hint="the 'nmi' score.",
                 example="0.5"),
    ],
    "S9_reference_mapping": [
        Exercise("closest_to_holdout", "Which seen cell type is closest to the held-out CD14 Mono in the "
                 "noise-free expression?", "choice", "truth", _closest_to_holdout,
                 hint="compare cell-type centroids of rna.layers['truth_mean'].", example='"NK"'),
        Exercise("landing_type", "Next to which reference cell type do most held-out CD14 Mono cells land?",
                 "choice", "results", _landing_type,
                 hint="the CD14 Mono row of the nearest-reference-types table.", example='"B naive"'),
    ],
}

#: simulator preset each notebook runs on by default (for the answer key when no mdata is given)
PRESETS = {"03b_chromatin_potential": "skin", "04_gene_regulation_shift": "skin", "05_modality_embeddings": "cortex"}
