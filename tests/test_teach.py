"""al.teach: every notebook's exercises, checked against the simulator's truth (small size) and against
result tables like the ones the notebooks write; the lesson structure of every notebook."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

import attune_lib as al
from attune_lib._utils import AttuneInputError

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))


def _status(nb, ex, answer, **kw):
    return al.teach.check(nb, ex, answer, verbose=False, **kw).status


def _centroids(mdata):
    rna = mdata["rna"]
    types = rna.obs["cell_type"].astype(str).to_numpy()
    X = np.asarray(rna.layers["truth_mean"])
    return {t: X[types == t].mean(0) for t in sorted(set(types))}


def _nearest_pairs(mdata):
    cent = _centroids(mdata)
    names = list(cent)
    pairs = [(float(np.linalg.norm(cent[a] - cent[b])), a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    return sorted(pairs)


# --------------------------------------------------------------- truth exercises: right / partly / wrong


def test_00_data_tour(sim_small):
    counts = sim_small["rna"].obs["cell_type"].value_counts()
    top, rest = list(counts.index[:3]), list(counts.index[3:])
    nb = "00_data_tour"
    assert _status(nb, "largest_cell_types", top[::-1], mdata=sim_small) == "right"
    assert _status(nb, "largest_cell_types", [top[0], rest[0], rest[1]], mdata=sim_small) == "partly"
    assert _status(nb, "largest_cell_types", rest[-3:], mdata=sim_small) == "wrong"
    med = sim_small.uns["truth"]["links"]["distance"].abs().median()
    assert _status(nb, "median_link_distance", med * 1.05, mdata=sim_small) == "right"
    assert _status(nb, "median_link_distance", med * 1.3, mdata=sim_small) == "partly"
    assert _status(nb, "median_link_distance", med * 10, mdata=sim_small) == "wrong"
    assert _status(nb, "median_link_distance", "far", mdata=sim_small) == "wrong"
    assert _status(nb, "sparser_modality", "ATAC", mdata=sim_small) == "right"
    assert _status(nb, "sparser_modality", "rna", mdata=sim_small) == "wrong"


def test_02a_integration_benchmark(sim_small):
    pairs = _nearest_pairs(sim_small)
    _, a, b = pairs[0]
    far = pairs[-1]
    other = next(t for t in _centroids(sim_small) if t not in (a, b) and t not in far[1:])
    nb = "02a_integration_benchmark"
    assert _status(nb, "closest_cell_types", [b, a], mdata=sim_small) == "right"
    assert _status(nb, "closest_cell_types", [a, other], mdata=sim_small) == "partly"
    assert _status(nb, "closest_cell_types", [far[1], far[2]] if a not in far[1:] and b not in far[1:]
                   else [other, "nothing"], mdata=sim_small) == "wrong"


def test_02b_feature_and_dimension(sim_small):
    links = sim_small.uns["truth"]["links"]
    frac = links["peak"].nunique() / sim_small["atac"].n_vars
    nb = "02b_feature_and_dimension"
    assert _status(nb, "linked_peak_fraction", frac + 0.01, mdata=sim_small) == "right"
    assert _status(nb, "linked_peak_fraction", frac - 0.07, mdata=sim_small) == "partly"
    assert _status(nb, "linked_peak_fraction", frac + 0.3, mdata=sim_small) == "wrong"


def test_02c_prediction(sim_small):
    weight = sim_small.uns["truth"]["links"].groupby("gene")["weight"].sum().sort_values(ascending=False)
    top, low = list(weight.index[:5]), list(weight.index[-5:])
    nb = "02c_prediction"
    assert _status(nb, "top_link_weight_genes", top, mdata=sim_small) == "right"
    assert _status(nb, "top_link_weight_genes", top[:2] + low[:3], mdata=sim_small) == "partly"
    assert _status(nb, "top_link_weight_genes", top[:3], mdata=sim_small) == "partly"  # too few names
    assert _status(nb, "top_link_weight_genes", low, mdata=sim_small) == "wrong"
    # only genes kept by preprocessing count: drop the heaviest gene and the key moves on
    kept = sim_small[:, [g for g in sim_small["rna"].var_names if g != top[0]] + list(sim_small["atac"].var_names)]
    assert _status(nb, "top_link_weight_genes", top, mdata=kept) == "partly"


def test_03a_regulatory(sim_small):
    links = sim_small.uns["truth"]["links"]
    distal = links[links["kind"] == "distal"]["distance"].abs()
    frac = float((distal <= 150_000).mean())
    nb = "03a_regulatory"
    assert _status(nb, "near_distal_fraction", frac, mdata=sim_small) == "right"
    assert _status(nb, "near_distal_fraction", frac - 0.08, mdata=sim_small) == "partly"
    assert _status(nb, "near_distal_fraction", frac - 0.5, mdata=sim_small) == "wrong"


def test_03b_chromatin_potential(sim_skin_small):
    lag = sim_skin_small.uns["truth"]["lagging_genes"].sort_values("lag", ascending=False)
    assert len(lag) >= 6
    top = list(lag["gene"][:5])
    non = [g for g in sim_skin_small["rna"].var_names if g not in set(lag["gene"])][:5]
    nb = "03b_chromatin_potential"
    assert _status(nb, "lagging_genes", top, mdata=sim_skin_small) == "right"
    assert _status(nb, "lagging_genes", ",".join(top), mdata=sim_skin_small) == "right"  # a string works too
    assert _status(nb, "lagging_genes", top[:3] + non[:2], mdata=sim_skin_small) == "partly"
    assert _status(nb, "lagging_genes", non, mdata=sim_skin_small) == "wrong"


def test_04_gene_regulation_shift(sim_skin_small):
    g3 = sim_skin_small.uns["truth"]["gli3_like"]
    nb = "04_gene_regulation_shift"
    assert _status(nb, "late_tf", str(g3["late_tf"]).upper(), mdata=sim_skin_small) == "right"
    assert _status(nb, "late_tf", str(g3["late_motif_id"]), mdata=sim_skin_small) == "right"
    assert _status(nb, "late_tf", str(g3["early_tfs"][0]), mdata=sim_skin_small) == "partly"
    assert _status(nb, "late_tf", "Hoxc13", mdata=sim_skin_small) == "wrong"
    early = [str(t) for t in g3["early_tfs"]]
    assert _status(nb, "early_tfs", early[::-1], mdata=sim_skin_small) == "right"
    assert _status(nb, "early_tfs", [early[0], str(g3["late_tf"])], mdata=sim_skin_small) == "partly"
    assert _status(nb, "early_tfs", [str(g3["late_tf"])], mdata=sim_skin_small) == "wrong"


def test_05_modality_embeddings(sim_cortex_small):
    obs = sim_cortex_small.obs
    inside = obs.loc[obs["truth_boundary"].astype(bool), "pseudotime"]
    lo, hi = float(inside.min()), float(inside.max())  # the planted interval, seen from the cells
    nb = "05_modality_embeddings"
    assert _status(nb, "boundary_interval", (hi, lo), mdata=sim_cortex_small) == "right"
    assert _status(nb, "boundary_interval", (lo, hi + 0.15), mdata=sim_cortex_small) == "partly"
    assert _status(nb, "boundary_interval", (0.0, 0.2), mdata=sim_cortex_small) == "wrong"
    share = obs.loc[obs["truth_boundary"].astype(bool), "cell_type"].astype(str).value_counts(normalize=True)
    major = list(share.index[share >= 0.2])
    minor = [t for t in obs["cell_type"].astype(str).unique() if t not in major]
    assert _status(nb, "boundary_cell_types", major, mdata=sim_cortex_small) == "right"
    assert _status(nb, "boundary_cell_types", major[:1] + minor[:1], mdata=sim_cortex_small) == "partly"
    assert _status(nb, "boundary_cell_types", minor, mdata=sim_cortex_small) == "wrong"


def test_07_scmvp(sim_small):
    counts = sim_small["rna"].obs["cell_type"].value_counts().sort_values()
    rare, common = list(counts.index[:2]), list(counts.index[-2:])
    nb = "07_scmvp"
    assert _status(nb, "rarest_cell_types", rare, mdata=sim_small) == "right"
    assert _status(nb, "rarest_cell_types", [rare[0], common[0]], mdata=sim_small) == "partly"
    assert _status(nb, "rarest_cell_types", common, mdata=sim_small) == "wrong"


def test_S9_reference_mapping(sim_small):
    cent = _centroids(sim_small)
    d = {t: float(np.linalg.norm(cent[t] - cent["CD14 Mono"])) for t in cent if t != "CD14 Mono"}
    order = sorted(d, key=d.get)
    nb = "S9_reference_mapping"
    assert _status(nb, "closest_to_holdout", order[0], mdata=sim_small) == "right"
    assert _status(nb, "closest_to_holdout", order[1], mdata=sim_small) == "partly"
    assert _status(nb, "closest_to_holdout", order[-1], mdata=sim_small) == "wrong"


# ----------------------------------------------------------------------- results exercises, on tables


def test_results_exercises_read_the_notebooks_tables(tmp_path):
    bench = pd.DataFrame({"label": ["Attune", "Attune", "PCA/LSI", "PCA/LSI+CCA"],
                          "method": ["attune", "attune", "pca_lsi", "cca"], "seed": [0, 1, 0, 0],
                          "status": ["ok", "ok", "ok", "ok"], "foscttm": [0.05, 0.07, 0.4, 0.1],
                          "overall": [0.5, 0.6, 0.2, 0.7]})
    bench.to_csv(tmp_path / "02a_integration_benchmark.csv", index=False)
    nb = "02a_integration_benchmark"
    assert _status(nb, "best_foscttm", "Attune", results=tmp_path) == "right"
    assert _status(nb, "best_foscttm", "attune", results=tmp_path) == "right"  # the method id works too
    assert _status(nb, "best_foscttm", "PCA/LSI", results=tmp_path) == "wrong"
    assert _status(nb, "attune_beats_cca", "no", results=tmp_path) == "right"  # 0.55 < 0.7
    bench.loc[bench["method"] == "cca", "overall"] = 0.1
    assert _status(nb, "attune_beats_cca", "no", results={"02a_integration_benchmark.csv": bench}) == "wrong"

    con = pd.DataFrame({"method": "attune", "design": ["default", "intra", "cross"],
                        "foscttm": [0.05, 0.5, 0.45], "overall": [0.4, 0.6, 0.1]})
    res = {"02_contrast_ablation.csv": con}
    nb = "02b_feature_and_dimension"
    assert _status(nb, "best_design", "intra", results=res) == "right"
    assert _status(nb, "best_design", "default", results=res) == "wrong"
    assert _status(nb, "chance_designs", ["cross", "intra"], results=res) == "right"
    assert _status(nb, "chance_designs", ["cross"], results=res) == "partly"

    table = pd.DataFrame({"method": ["attune_finetuned", "lasso", "noise_free"], "pearson_mean": [0.16, 0.19, 0.28]})
    res = {"02c_prediction_table.csv": table}
    assert _status("02c_prediction", "best_predictor", "lasso", results=res) == "right"
    assert _status("02c_prediction", "best_predictor", "noise_free", results=res) == "wrong"
    assert _status("02c_prediction", "prediction_ceiling", 0.3, results=res) == "right"
    assert _status("02c_prediction", "prediction_ceiling", 0.33, results=res) == "partly"

    auroc = pd.DataFrame({"method": ["Distance", "Attune + Transformer"] * 3,
                          "bin": ["all", "all", "(0, 10000]", "(0, 10000]", "(10000, 50000]", "(10000, 50000]"],
                          "auroc": [0.8, 0.55, 0.6, 0.5, 0.6, 0.7]})
    res = {"03a_regulatory_auroc.csv": auroc}
    assert _status("03a_regulatory", "distance_or_attention", "distance alone", results=res) == "right"
    assert _status("03a_regulatory", "distance_or_attention", "attention", results=res) == "wrong"
    assert _status("03a_regulatory", "chance_bins", ["(0, 10000]"], results=res) == "right"

    res = {"03b_chromatin_potential_summary.json": {"lagging_auroc_attune": 0.6, "lagging_auroc_cis": 0.8}}
    assert _status("03b_chromatin_potential", "attune_or_cis", "cis", results=res) == "right"
    assert _status("03b_chromatin_potential", "lagging_auroc", 0.65, results=res) == "partly"

    scores = pd.Series({"ari": 0.4, "nmi": 0.5, "imputed_vs_truth": 0.8, "observed_vs_truth": 0.3})
    scores.to_csv(tmp_path / "07_scmvp_scores.csv")
    assert _status("07_scmvp", "cluster_nmi", 0.51, results=tmp_path) == "right"
    assert _status("07_scmvp", "cluster_ari", 0.9, results=tmp_path) == "wrong"

    near = pd.DataFrame({"cell_type": ["CD14 Mono", "B naive"], "CD16 Mono": [0.6, 0.0], "cDC": [0.3, 0.1],
                         "B naive": [0.1, 0.9], "n_cells": [30, 5], "holdout_type": "CD14 Mono"})
    near.to_csv(tmp_path / "S9_reference_mapping.csv", index=False)
    assert _status("S9_reference_mapping", "landing_type", "CD16 Mono", results=tmp_path) == "right"
    assert _status("S9_reference_mapping", "landing_type", "cDC", results=tmp_path) == "partly"
    assert _status("S9_reference_mapping", "landing_type", "B naive", results=tmp_path) == "wrong"


def test_planted_peaks_kept(sim_skin_small, tmp_path):
    g3 = sim_skin_small.uns["truth"]["gli3_like"]
    peaks = list(g3["early_peaks"][:4]) + list(g3["late_peaks"][:3]) + ["chr1:1-2"]
    pd.DataFrame({"peak": peaks, "cluster": 0}).to_csv(tmp_path / "04_Gli3_peak_clusters.csv", index=False)
    nb = "04_gene_regulation_shift"
    assert _status(nb, "planted_peaks_kept", 7, mdata=sim_skin_small, results=tmp_path) == "right"
    assert _status(nb, "planted_peaks_kept", 8, mdata=sim_skin_small, results=tmp_path) == "partly"
    assert _status(nb, "planted_peaks_kept", 12, mdata=sim_skin_small, results=tmp_path) == "wrong"


# --------------------------------------------------------------------------------- errors and no answer


def test_no_answer_yet_repeats_the_question(capsys):
    res = al.teach.check("03b_chromatin_potential", "lagging_genes", None)
    assert res.status == "no answer" and "lag" in res.message
    assert "NO ANSWER YET" in capsys.readouterr().out


def test_unknown_ids_name_the_notebook_and_list_the_known_ones():
    with pytest.raises(AttuneInputError, match="no exercise 'nope'.*lagging_genes"):
        al.teach.check("03b_chromatin_potential", "nope", 1)
    with pytest.raises(AttuneInputError, match="'99_none' has no exercises.*00_data_tour"):
        al.teach.check("99_none", "x", 1)


def test_truth_exercise_on_real_data_says_so(sim_small):
    real_like = sim_small.copy()
    real_like.uns.pop("truth")
    with pytest.raises(AttuneInputError, match="00_data_tour.*simulator's truth"):
        al.teach.check("00_data_tour", "median_link_distance", 1, mdata=real_like)


def test_results_exercise_without_results_says_where(tmp_path):
    with pytest.raises(AttuneInputError, match="results="):
        al.teach.check("07_scmvp", "cluster_ari", 0.5)
    with pytest.raises(AttuneInputError, match="07_scmvp_scores.csv not found"):
        al.teach.check("07_scmvp", "cluster_ari", 0.5, results=tmp_path)


def test_every_exercise_has_a_question_and_an_answer_form():
    table = al.teach.exercises()
    assert set(table["notebook"]) == {p.stem for p in NOTEBOOKS}, "exercises and notebooks differ"
    counts = table.groupby("notebook").size()
    assert counts.between(2, 4).all(), counts.to_dict()
    assert (table.groupby("notebook")["checked_against"].apply(lambda s: (s == "truth").any())).all()


# ----------------------------------------------------------------------------------- lesson structure


def _markdown(nb):
    return [c.source for c in nb.cells if c.cell_type == "markdown"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_a_lesson(path):
    nb = nbformat.read(path, as_version=4)
    md = _markdown(nb)
    first = md[0] if md else ""
    assert re.search(r"learning goals", " ".join(md[:2]), re.I), f"{path.name}: no learning goals at the top"
    assert nb.cells.index(next(c for c in nb.cells if c.cell_type == "markdown" and
                               re.search("learning goals", c.source, re.I))) <= 1, first
    n_q = sum(bool(re.search(r"\*\*Question\*\*", s)) for s in md)
    n_t = sum(bool(re.search(r"\*\*Takeaway\*\*", s)) for s in md)
    assert n_q >= 1 and n_t >= 1, f"{path.name}: {n_q} Question and {n_t} Takeaway cells"
    # every Question is followed (later) by a Takeaway before the next Question
    seq = [("Q" if "**Question**" in s else "") + ("T" if "**Takeaway**" in s else "") for s in md]
    seq = "".join(x for x in seq if x)
    assert re.fullmatch(r"(QT)+", seq), f"{path.name}: Question/Takeaway cells out of order: {seq}"
    # the exercise cells call the checker with ids that are registered, and their solutions are collapsed
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    calls = re.findall(r"al\.teach\.check\(\s*\"([^\"]+)\",\s*\"([^\"]+)\"", code)
    registered = set(al.teach.exercises(path.stem)["exercise"])
    assert {ex for n, ex in calls if n == path.stem} == registered, f"{path.name}: checks {calls}"
    assert all(n == path.stem for n, _ in calls), f"{path.name}: checks another notebook's exercise"
    solutions = sum(s.count("<details") for s in md)
    assert solutions >= len(registered), f"{path.name}: {solutions} collapsed solutions for {len(registered)}"
    for s in md:
        bad = re.search(r"\(CI\)|\bin CI\b|\bCI (run|tier|budget|machine|job)|continuous integration|\bissues?\b|"
                        r"\btracker\b|reported to its owner", s)
        assert not bad, f"{path.name}: lesson text mentions {bad.group(0)!r}: {s[:80]!r}"
