"""Real multiome data as users hold it: one reader for every layout, input states through every step,
genome builds, feature filters that say what they drop, and trust flags that say when a result means nothing.

The 10x folders are built at test time from the real bone-marrow subset in ../shared/data (skipped
when it is absent); see the fixtures in conftest.py.
"""

from __future__ import annotations

import logging
import shutil
import warnings

import anndata as ad
import mudata as md
import numpy as np
import pytest
import scipy.sparse as sp

import attune_lib as al
from attune_lib._access import detect_input_state, get_matrix, lognormalize, matrix_state
from attune_lib._utils import AttuneInputError
from attune_lib.metrics import TrustWarning

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:anndata")


@pytest.fixture
def attune_log(caplog):
    caplog.set_level(logging.INFO, logger="attune_lib")
    return caplog


def _cell_types(mdata, bmmc_pair):
    rna, _ = bmmc_pair
    mdata.obs["cell_type"] = rna.obs.loc[mdata.obs_names, "cell_type"].astype(str).to_numpy()


# ------------------------------------------------------------------------------------------- layouts
def test_10x_folder_loads_with_one_call(tenx_folder, bmmc_pair):
    rna, atac = bmmc_pair
    m = al.datasets.read(tenx_folder.parent, genome="hg38")  # the outs/ folder above it works too
    assert m["rna"].shape == rna.shape and m["atac"].shape == atac.shape
    assert m.uns["attune"]["layout"] == "10x matrix folder"
    assert m.uns["attune"]["genome"] == "hg38"
    var = m["atac"].var
    placed = ~var["chrom"].str.contains(".", regex=False)  # unplaced contigs (GL000205.2) keep their names
    assert placed.mean() > 0.99 and var.loc[placed, "chrom"].str.startswith("chr").all()
    assert (var["end"] > var["start"]).all()
    assert m["atac"].var_names[0] == f"{var['chrom'].iloc[0]}:{var['start'].iloc[0]}-{var['end'].iloc[0]}"
    # the values are the real counts, cells in the same order
    np.testing.assert_array_equal(m["rna"].X.toarray(), rna.layers["counts"].toarray())
    assert list(m.obs_names) == list(rna.obs_names)
    # genes carry hg38 coordinates from the annotation
    assert m["rna"].var["annotated"].mean() > 0.9
    assert m.uns["attune"]["genome_fit"]["fits"]


def test_10x_folder_plain_and_without_coordinates(tenx_folder, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    import gzip

    for f in tenx_folder.iterdir():
        with gzip.open(f, "rb") as src, open(plain / f.name.removesuffix(".gz"), "wb") as dst:
            dst.write(src.read())
    # keep only id, name, feature_type: coordinates then come from the peak names
    feats = (plain / "features.tsv").read_text().splitlines()
    (plain / "features.tsv").write_text("\n".join("\t".join(r.split("\t")[:3]) for r in feats) + "\n")
    m = al.datasets.read(plain, genome="GRCh38")
    assert m.uns["attune"]["genome"] == "hg38"
    assert {"chrom", "start", "end"} <= set(m["atac"].var.columns)
    assert m["atac"].var["chrom"].str.startswith("chr").mean() > 0.99


def test_bare_chromosome_names_become_ucsc(tenx_folder_lognorm):
    m = al.datasets.read(tenx_folder_lognorm, genome="hg38")
    placed = ~m["atac"].var["chrom"].str.contains(".", regex=False)
    assert m["atac"].var.loc[placed, "chrom"].str.startswith("chr").all()
    assert m["atac"].var_names[placed].str.startswith("chr").all()
    assert "original_name" in m["atac"].var
    assert al.datasets.normalize_chrom_names(["1", "X", "MT", "chr2", "GL000219.1"]).tolist() == [
        "chr1", "chrX", "chrM", "chr2", "GL000219.1"]


def test_other_layouts_through_the_same_entry_point(bmmc_pair, shared_data_dir, tmp_path):
    rna, atac = bmmc_pair
    folder = tmp_path / "pair"
    folder.mkdir()
    rna.write_h5ad(folder / "bmmc_rna.h5ad")
    atac.write_h5ad(folder / "bmmc_atac.h5ad")
    m = al.datasets.read(folder)
    assert m.uns["attune"]["layout"] == "h5ad pair" and m["rna"].n_obs == rna.n_obs
    m2 = al.datasets.read([folder / "bmmc_rna.h5ad", folder / "bmmc_atac.h5ad"], genome="hg38")
    assert m2.uns["attune"]["layout"] == "h5ad pair"
    h5mu = al.datasets.read(shared_data_dir / "pbmc1k_muon" / "test_rna_atac.h5mu", genome="hg38")
    assert h5mu.uns["attune"]["layout"] == "h5mu" and h5mu["atac"].n_vars == 174
    mtx = al.datasets.read(shared_data_dir / "pbmc300_scpoem", genome="hg38")
    assert mtx.uns["attune"]["layout"] == "MatrixMarket pair"
    assert mtx["rna"].shape == (300, 300) and mtx["atac"].shape == (300, 3630)
    assert mtx.uns["attune"]["input_state"] == {"rna": "log-normalised", "atac": "log-normalised"}
    # load_dataset takes a path as well as a dataset name
    assert al.datasets.load_dataset(str(folder)).uns["attune"]["layout"] == "h5ad pair"


def test_unrecognised_layout_lists_what_was_tried(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "matrix_only.mtx").write_text("")
    with pytest.raises(AttuneInputError) as err:
        al.datasets.read(tmp_path)
    msg = str(err.value)
    assert "10x matrix folder" in msg and "h5ad" in msg and "MatrixMarket" in msg
    assert "notes.txt" in msg and str(tmp_path) in msg
    with pytest.raises(AttuneInputError, match="no such file"):
        al.datasets.read(tmp_path / "missing")
    with pytest.raises(AttuneInputError, match="genome='hg00'"):
        al.datasets.read(tmp_path, genome="hg00")


def test_broken_10x_folder_names_the_file(tenx_folder, tmp_path):
    broken = tmp_path / "filtered_feature_bc_matrix"
    shutil.copytree(tenx_folder, broken)
    (broken / "barcodes.tsv.gz").unlink()
    with pytest.raises(AttuneInputError, match="barcodes"):
        al.datasets.read(broken)


# -------------------------------------------------------------------------------------- input state
def test_input_states_are_detected(bmmc_pair):
    rna, atac = bmmc_pair
    counts = rna.layers["counts"]
    assert detect_input_state(counts) == "counts"
    assert detect_input_state(atac.X) == "binary"  # the released ATAC .X is binarised
    assert detect_input_state(rna.X) == "log-normalised"  # the released RNA .X is log-normalised
    assert detect_input_state(lognormalize(counts)) == "log-normalised"
    assert detect_input_state(counts * 1.37) == "normalised"  # ambient-corrected counts x constant
    cpm = sp.diags(1e6 / np.asarray(counts.sum(1)).ravel()) @ counts
    assert detect_input_state(cpm) == "normalised"


def test_log_input_is_reported_and_never_becomes_counts(tenx_folder_lognorm, attune_log):
    m = al.datasets.read(tenx_folder_lognorm, genome="hg38")
    warnings_ = [r for r in attune_log.records if r.levelno == logging.WARNING and "log-normalised" in r.message]
    assert len(warnings_) == 2  # one line per modality
    assert m.uns["attune"]["input_state"] == {"rna": "log-normalised", "atac": "log-normalised"}
    before = m["atac"].X.copy()
    al.pp.preprocess(m)
    rna, atac = m["rna"], m["atac"]
    assert "counts" not in rna.layers and "counts" not in atac.layers and "tfidf" not in atac.layers
    summary = m.uns["attune_pp"]
    assert summary["rna"]["input"] == "log-normalised" and summary["atac"]["input"] == "log-normalised"
    assert "no TF-IDF" in summary["atac"]["transform"] and "as given" in summary["rna"]["X"]
    assert "input" in atac.uns["X_lsi"]["params"] and "TF-IDF" not in atac.uns["X_lsi"]["params"]["input"]
    # the ATAC values are kept as given (only peaks were filtered)
    np.testing.assert_allclose(atac.X.toarray(), before[:, np.isin(before_names(m, tenx_folder_lognorm),
                                                                   atac.var_names)].toarray())
    # steps that need counts refuse with the argument to pass
    with pytest.raises(AttuneInputError, match="needs raw counts.*log-normalised.*rna_layer"):
        al.models.ScMVP.setup_mudata(m)
    with pytest.raises(AttuneInputError, match="log-normalised"):
        al.pp.tfidf(m, mod="atac")
    with pytest.raises(AttuneInputError, match="LDA is a count model.*needs raw counts"):
        al.tl.topic_pseudotime(m, start_cell=m.obs_names[0], n_topics=3)
    from attune_lib.tl._peers import _counts

    with pytest.raises(AttuneInputError, match="count likelihood"):
        _counts(atac, None, name="atac")


def before_names(m, folder):
    """ATAC names of the folder as read (before filtering), in the read order."""
    return al.datasets.read(folder, genome="hg38", check_genome=False, annotate=False)["atac"].var_names


def test_state_override_and_normalised_rna(bmmc_pair, tmp_path):
    rna, atac = bmmc_pair
    scaled = ad.AnnData(X=sp.csr_matrix(rna.layers["counts"] * 1.37), obs=rna.obs[[]].copy(), var=rna.var.copy())
    peaks = ad.AnnData(X=atac.layers["counts"].copy(), obs=atac.obs[[]].copy(), var=atac.var[[]].copy())
    scaled.write_h5ad(tmp_path / "rna.h5ad")
    peaks.write_h5ad(tmp_path / "atac.h5ad")
    m = al.datasets.read(tmp_path, genome="hg38")
    assert m.uns["attune"]["input_state"]["rna"] == "normalised"
    al.pp.preprocess(m)
    r = m["rna"]
    # normalised RNA is normalised to 1e4 and logged (not left as it was), but not stored as counts
    assert "counts" not in r.layers
    assert r.uns["attune_pp"]["normalize_log1p"]["skipped"] is False
    np.testing.assert_allclose(np.expm1(r.X.toarray()).sum(1)[:5] > 0, True)
    assert matrix_state(r) == "log-normalised"
    assert "counts" in m["atac"].layers and m.uns["attune_pp"]["atac"]["input"] == "counts"
    # an explicit state wins over detection
    m2 = al.datasets.read(tmp_path, genome="hg38", input_state={"rna": "counts"})
    assert m2["rna"].uns["attune_input"] == {"state": "counts", "source": "given", "matrices": {"X": "counts"}}
    with pytest.raises(AttuneInputError, match="input_state"):
        al.datasets.read(tmp_path, input_state="logs?")


def test_get_matrix_policy(bmmc_pair):
    rna, _ = bmmc_pair
    a = rna.copy()
    X, name, state = get_matrix(a, "counts", where="rna")
    assert name == "rna.layers['counts']" and state == "counts"
    del a.layers["counts"]
    with pytest.raises(AttuneInputError, match=r"rna\.X holds log-normalised values.*Pass layer="):
        get_matrix(a, "counts", where="rna")
    L, name, _ = get_matrix(a, "log-normalised", where="rna")
    assert L is a.X
    with pytest.raises(AttuneInputError, match="layer 'nope' not found"):
        get_matrix(a, "any", layer="nope", where="rna")


def test_prediction_features_use_log_values_as_given(bmmc_pair):
    from attune_lib.tl._prediction import LSITransform

    _, atac = bmmc_pair
    L = lognormalize(atac.layers["counts"])
    t = LSITransform(5, tfidf=False).fit(L)
    np.testing.assert_array_equal(t.tfidf(L).toarray(), L.toarray())
    assert not np.allclose(LSITransform(5).fit(L).tfidf(L).toarray(), L.toarray())


# ------------------------------------------------------------------------------------ genome, filters
def test_wrong_build_is_named(tenx_folder, bmmc_pair, tmp_path, attune_log):
    from conftest import write_10x_folder

    rna, atac = bmmc_pair
    shifted = atac.copy()
    coords = shifted.var_names.str.extract(r"^(.+?)-(\d+)-(\d+)$")
    off = 250_000  # as if the peaks were on another assembly of the same genome
    shifted.var_names = (coords[0] + "-" + (coords[1].astype(int) + off).astype(str) + "-"
                         + (coords[2].astype(int) + off).astype(str)).to_numpy()
    folder = write_10x_folder(tmp_path / "hg19like", rna, shifted)
    m = al.datasets.read(folder, genome="hg38")
    fit = m.uns["attune"]["genome_fit"]
    assert not fit["fits"] and "hg19" in fit["likely"]
    assert any("hg19" in r.message and r.levelno == logging.WARNING for r in attune_log.records)
    # the real peaks fit hg38, several-fold above the shifted background
    good = al.datasets.check_genome_fit(al.datasets.read(tenx_folder, genome="hg38"), "hg38")
    assert good["fits"] and good["enrichment"] > 3


def test_filters_warn_when_they_drop_most_features(attune_log):
    rng = np.random.default_rng(0)
    X = sp.random(400, 1000, density=0.01, random_state=1, format="csr", dtype=np.float32)
    X.data[:] = rng.integers(1, 3, X.nnz)
    a = ad.AnnData(X)
    al.pp.filter_features(a, min_fraction=0.05)
    msg = [r.message for r in attune_log.records if r.levelno == logging.WARNING]
    assert msg and "removed" in msg[0] and "of 1000 features" in msg[0]
    assert a.uns["attune_pp"]["filter_features"]["n_before"] == 1000


def test_default_peak_filter_keeps_sparse_peaks(tenx_folder, attune_log):
    m = al.datasets.read(tenx_folder, genome="hg38")
    n_peaks = m["atac"].n_vars
    al.pp.preprocess(m)
    steps = m.uns["attune_pp"]["atac"]["steps"]
    assert steps["n_peaks_input"] == n_peaks
    assert steps["after_filter"] > 0.5 * n_peaks  # the paper's 5 % rule would keep far fewer on sparse data
    paper = al.datasets.read(tenx_folder, genome="hg38")
    al.pp.preprocess(paper, peak_min_fraction=0.05)
    assert paper["atac"].n_vars < steps["after_filter"]


# --------------------------------------------------------------------------------------- trust flags
def test_pairing_without_biology_is_flagged():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 60)
    noise = rng.normal(size=(300, 16))
    ref = noise * 0.1 + np.eye(5)[labels] @ rng.normal(size=(5, 16)) * 3  # references keep the labels
    with pytest.warns(TrustWarning, match="pairs cells .* but keeps no label structure"):
        t = al.metrics.integration_trust(noise, noise + 1e-3 * rng.normal(size=noise.shape), labels,
                                         references={"RNA PCA": ref}, name="toy")
    assert t["foscttm"] < 0.01 and abs(t["label"].loc["joint", "label_signal"]) < 0.15
    assert "less label structure than RNA PCA" in t["flag"]
    # an embedding that keeps the labels raises nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrustWarning)
        good = al.metrics.integration_trust(ref, ref + 0.01 * noise, labels, references={"RNA PCA": ref})
    assert good["flags"] == [] and good["label"].loc["joint", "label_signal"] > 0.8


def test_prediction_noise_and_constants_are_flagged():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(200, 50))
    with pytest.warns(TrustWarning, match="noise level"):
        t = al.metrics.prediction_trust(y, rng.normal(size=y.shape), name="noise")
    assert t["mean_pearson"] < t["null_q95"] + 0.05
    const = y * 0.5 + rng.normal(size=y.shape) * 0.1
    const[:, :10] = 1.0
    with pytest.warns(TrustWarning, match="constant for 10 of 50 genes"):
        al.metrics.prediction_trust(y, const, name="lasso")
    # a constant is the right answer for genes nobody can predict: then no flag
    predictable = np.arange(50) >= 10
    t = al.metrics.prediction_trust(y, const, name="lasso", predictable=predictable, warn=False)
    assert t["n_constant"] == 10 and t["n_constant_predictable"] == 0 and t["flags"] == []
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrustWarning)
        ok = al.metrics.prediction_trust(y, y + rng.normal(size=y.shape), name="good")
    assert ok["flags"] == [] and ok["mean_pearson"] > 0.5


@pytest.mark.slow
def test_real_10x_folder_end_to_end(tenx_folder_lognorm, bmmc_pair):
    """Log-normalised real 10x data: read -> pp -> short training -> benchmark table with trust columns."""
    m = al.datasets.read(tenx_folder_lognorm, genome="hg38")
    _cell_types(m, bmmc_pair)
    al.pp.preprocess(m)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = al.tl.run_integration_benchmark(m, methods=("attune", "pca_lsi", "cca"), seeds=(0,), max_epochs=5,
                                             progress_bar=False)
    assert {"map_rna", "map_atac", "map_chance", "label_signal", "flag"} <= set(df.columns)
    assert (df["map_chance"] > 0).all() and (df["map_chance"] < df["map_rna"]).all()
    # with 5 epochs Attune keeps much less cell-type structure than RNA PCA alone: the table says so
    attune = df.set_index("method").loc["attune"]
    assert "less label structure than RNA PCA" in attune["flag"]
    assert any(isinstance(w.message, TrustWarning) for w in caught)


@pytest.mark.slow
def test_simulator_runs_raise_no_flags(sim_small):
    """A well-posed simulated dataset: the linear baselines keep the planted cell types, so no flags."""
    m = sim_small.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrustWarning)
        df = al.tl.run_integration_benchmark(m, methods=("pca_lsi", "cca"), seeds=(0,), progress_bar=False)
    assert (df["flag"] == "").all() and (df["label_signal"] > 0.5).all()
    assert df.attrs["data_flags"] == []


@pytest.mark.parametrize("state", ["counts", "binary", "normalised", "log-normalised"])
def test_each_atac_state_through_the_recipe(bmmc_pair, state):
    """Real ATAC in each input state: what pp keeps, how LSI is computed, what the summary says."""
    rna, atac = bmmc_pair
    counts = atac.layers["counts"].astype(np.float32)
    values = {"counts": counts, "binary": (counts > 0).astype(np.float32),
              "normalised": sp.csr_matrix(sp.diags(1e4 / np.asarray(counts.sum(1)).ravel()) @ counts),
              "log-normalised": lognormalize(counts)}[state]
    m = md.MuData({"rna": ad.AnnData(rna.layers["counts"].copy(), obs=rna.obs[[]].copy(), var=rna.var[[]].copy()),
                   "atac": ad.AnnData(sp.csr_matrix(values), obs=atac.obs[[]].copy(), var=atac.var[[]].copy())})
    m["atac"].var[["chrom", "start", "end"]] = atac.var_names.str.extract(r"^(.+?)-(\d+)-(\d+)$").to_numpy()
    m["atac"].var[["start", "end"]] = m["atac"].var[["start", "end"]].astype(int)
    al.pp.preprocess(m)
    a = m["atac"]
    assert m.uns["attune_pp"]["atac"]["input"] == state
    assert ("counts" in a.layers) == (state in ("counts", "binary"))
    assert ("tfidf" in a.layers) == (state != "log-normalised")
    assert a.obsm["X_lsi"].shape[0] == a.n_obs and np.isfinite(a.obsm["X_lsi"]).all()
    if state == "normalised":  # TF-IDF of the scaled values as given (not of logs); its TF ignores the scaling
        from attune_lib.pp._atac import tfidf_matrix

        keep = np.flatnonzero(atac.var_names.isin(a.var_names))
        np.testing.assert_allclose(a.layers["tfidf"].toarray(), tfidf_matrix(values[:, keep]).toarray(), rtol=1e-4,
                                   atol=1e-5)


def test_real_pbmc_10x_folders(pbmc_tenx_folders):
    """The real 10x PBMC cells as users hold them: one call reads each folder; pp uses what the state allows."""
    raw, log = pbmc_tenx_folders
    m = al.datasets.read(raw, genome="hg38")
    assert m["rna"].shape == (1000, 45) and m["atac"].shape == (1000, 174)
    assert m["atac"].var["chrom"].str.startswith("chr").all() and (m["atac"].var["start"] > 0).all()
    assert m.uns["attune"]["input_state"] == {"rna": "counts", "atac": "counts"}
    assert m.uns["attune"]["genome_fit"]["fits"]  # peaks within 5 kb of marker genes: strongly promoter-enriched
    lg = al.datasets.read(log, genome="hg38")
    assert lg.uns["attune"]["input_state"] == {"rna": "log-normalised", "atac": "log-normalised"}
    al.pp.preprocess(lg, n_comps=10)
    assert not lg["rna"].layers and "tfidf" not in lg["atac"].layers
    assert lg.uns["attune_pp"]["atac"]["transform"].startswith("none")
