"""Readers (h5mu, h5ad pair, 10x h5, MatrixMarket), validation, peak parsing, gene annotation,
atomic writing, and the real-data loaders on ../shared/data."""

from __future__ import annotations

import warnings

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from attune_lib._utils import AttuneInputError
from attune_lib.datasets import _real
from attune_lib.datasets._fetch import DataNotAvailableError
from attune_lib.datasets._readers import (
    annotate_genes,
    atomic_write_path,
    build_mudata,
    parse_peak_names,
    read_10x_multiome_h5,
    read_gene_annotation,
    read_h5ad_pair,
    read_h5mu,
    read_mtx_multiome,
    read_names,
    write_h5mu,
)

PEAKS = ["chr1:100-200", "chr1:300-450", "chr2:10-90", "chrX:5-25"]
GENES = ["GENEA", "GENEB", "GENEC"]


def _pair(n_cells=5, *, cells=None, atac_cells=None, seed=0):
    rng = np.random.default_rng(seed)
    cells = cells or [f"cell{i}" for i in range(n_cells)]
    atac_cells = atac_cells or cells
    rna = ad.AnnData(
        X=rng.poisson(2, (len(cells), len(GENES))).astype(np.float32),
        obs=pd.DataFrame(index=cells),
        var=pd.DataFrame(index=GENES),
    )
    atac = ad.AnnData(
        X=sp.csr_matrix(
            rng.poisson(1, (len(atac_cells), len(PEAKS))).astype(np.float32)
        ),
        obs=pd.DataFrame(index=atac_cells),
        var=pd.DataFrame(index=PEAKS),
    )
    return rna, atac


@pytest.fixture
def shared_cache(shared_data_dir, monkeypatch):
    monkeypatch.setenv("ATTUNE_DATA_DIR", str(shared_data_dir))
    monkeypatch.setenv("ATTUNE_OFFLINE", "1")
    return shared_data_dir


# ---------------------------------------------------------------------------------------------
# real data


def test_read_h5mu_pbmc1k(shared_data_dir):
    m = read_h5mu(shared_data_dir / "pbmc1k_muon" / "test_rna_atac.h5mu")
    assert m["rna"].shape == (1000, 45)
    assert m["atac"].shape == (1000, 174)
    assert m["rna"].obs_names.equals(m["atac"].obs_names)
    assert sp.isspmatrix_csr(m["rna"].X)
    x = m["rna"].X.data
    assert np.all(x >= 0) and np.allclose(x, np.round(x))  # raw counts
    var = m["atac"].var
    assert var["start"].dtype == np.int64 and var["end"].dtype == np.int64
    assert (var["end"] > var["start"]).all()
    first = m["atac"].var_names[0]
    assert (
        first == f"{var['chrom'].iloc[0]}:{var['start'].iloc[0]}-{var['end'].iloc[0]}"
    )


def test_pbmc1k_loader(shared_cache):
    with pytest.warns(UserWarning, match=r"3 of 45 genes have no annotation.*'TRAC'"):
        m = _real.pbmc1k()
    var = m["rna"].var
    assert var["annotated"].sum() == 42
    assert var.loc["CD2", "chrom"] == "chr1" and var.loc["CD2", "strand"] == "+"
    assert var.loc["S100A8", "strand"] == "-"
    assert var.loc["S100A8", "tss"] == var.loc["S100A8", "end"]
    assert pd.isna(var.loc["TRAC", "chrom"]) and var.loc["TRAC", "tss"] == -1
    assert var["tss"].dtype == np.int64
    assert m.uns["attune"]["normalised_input"] is False


def test_pbmc300_mtx_reader_and_loader(shared_data_dir, shared_cache):
    d = shared_data_dir / "pbmc300_scpoem"
    m = read_mtx_multiome(
        d / "Y.mtx",
        d / "X.mtx",
        d / "cell_data.csv",
        d / "gene_data.csv",
        d / "peak_data.csv",
    )  # transpose="auto": X.mtx decides, the square Y.mtx follows
    assert m["rna"].shape == (300, 300) and m["atac"].shape == (300, 3630)
    assert m["rna"].obs_names[0] == "GTACCTTGTGTGCACG-1"
    assert m["rna"].var_names[0] == "STXBP4"
    assert m["atac"].var_names[0] == "chr1:100350863-100355404"
    assert m["atac"].var["original_name"].iloc[0] == "chr1-100350863-100355404"
    # orientation: MatrixMarket entry (row 3, col 1) of X.mtx is cell 3, peak 1
    assert m["atac"].X[2, 0] == pytest.approx(0.4533481811905701, rel=1e-6)
    assert m["rna"].X[7, 0] == pytest.approx(2.2732388117223272, rel=1e-6)
    with pytest.raises(
        AttuneInputError, match=r"X\.mtx: transpose=True expects features x cells"
    ):
        read_mtx_multiome(
            d / "Y.mtx",
            d / "X.mtx",
            d / "cell_data.csv",
            d / "gene_data.csv",
            d / "peak_data.csv",
            transpose=True,
        )
    with pytest.warns(UserWarning, match="genes have no annotation"):
        loaded = _real.pbmc300()
    assert loaded.uns["attune"]["normalised_input"] is True
    assert loaded["rna"].var["annotated"].sum() > 280


def test_attune_release_and_metadata(shared_cache):
    r = _real.attune_release("pbmc10k")
    assert r["rna_embedding"].shape == (11904, 128) == r["atac_embedding"].shape
    norms = np.linalg.norm(r["rna_embedding"], axis=1)
    # L2-normalised, except 6 RNA (and 1 ATAC) rows that the original released as all-zero vectors
    assert np.allclose(norms[norms > 0], 1, atol=1e-3) and (norms == 0).sum() == 6
    assert (np.linalg.norm(r["atac_embedding"], axis=1) == 0).sum() == 1
    assert r["cell_ids"][0].endswith("-1")
    assert r["window"].shape == (1996, 28548) and r["window"].nnz == 87436
    assert list(r["cross_attention"].columns) == ["gene", "peak", "score"]
    ep20 = r["metrics"].set_index("epoch").loc[20, "foscttm"]
    assert ep20 == pytest.approx(0.008208798, rel=1e-6)
    share = _real.attune_release("share_tac")
    assert len(share["genes"]) == 2000
    meta = share["metadata"]
    assert meta.shape[0] == 6436
    assert list(meta["cell_type"].cat.categories[:2]) == ["TAC-1", "TAC-2"]
    assert meta["pseudotime"].between(0, 1).all()
    cortex = _real.attune_release("cortex")
    assert cortex["rna_embedding"].shape == (4352, 128)
    assert cortex["row_ids"].dtype == np.int64
    cm = cortex["metadata"]
    assert cm.shape[0] == 4693
    assert {
        "cell_type",
        "batch",
        "pseudotime",
        "latent_time",
        "umap_1",
        "umap_2",
    } <= set(cm.columns)
    assert "nIPC/ExN" in cm["cell_type"].cat.categories
    with pytest.raises(AttuneInputError, match="dataset: expected"):
        _real.attune_release("nope")


def test_gmt_and_annotations(shared_cache, tmp_path):
    sets = _real.load_go_bp()
    assert len(sets) == 5233
    assert "TP53" in sets["GOBP_MITOCHONDRIAL_GENOME_MAINTENANCE"]
    assert all(15 <= len(g) <= 500 for g in sets.values())
    small = _real.load_go_bp(max_size=20)
    assert 0 < len(small) < len(sets)
    _sets, desc = _real.read_gmt(
        shared_cache / "annotation" / "go_bp_hs_2022-07.gmt", with_descriptions=True
    )
    assert desc["GOBP_MITOCHONDRIAL_GENOME_MAINTENANCE"] == "GO:0000002"
    bad = tmp_path / "bad.gmt"
    bad.write_text("SET1\tdesc\tA\tB\nSET2\n")
    with pytest.raises(AttuneInputError, match=r"bad\.gmt: line 2"):
        _real.read_gmt(bad)
    hg = _real.load_gene_annotation("hg38")
    mm = _real.load_gene_annotation("mm10")
    assert len(hg) == 28410 and len(mm) == 23419
    assert "ensembl_id" in hg.columns and "ensembl_id" not in mm.columns
    for df in (hg, mm):
        assert {"symbol", "chrom", "start", "end", "strand", "tss"} <= set(df.columns)
        assert set(df["strand"]) == {"+", "-"}
    with pytest.raises(AttuneInputError, match="genome: expected"):
        _real.load_gene_annotation("hg19")


def test_annotate_with_real_tables(shared_cache):
    rna = ad.AnnData(
        np.ones((2, 3), np.float32),
        var=pd.DataFrame(index=["Gli3", "Lef1", "NotAGene"]),
    )
    with pytest.warns(UserWarning, match=r"1 of 3 genes.*'NotAGene'"):
        annotate_genes(rna, _real.load_gene_annotation("mm10"))
    assert rna.var.loc["Gli3", "chrom"] == "chr13"
    assert rna.var["annotated"].tolist() == [True, True, False]
    # mm10 has no Ensembl ids: a gene_ids column must not break symbol matching
    rna2 = ad.AnnData(
        np.ones((1, 1), np.float32),
        var=pd.DataFrame({"gene_ids": ["ENSMUSG00000021318"]}, index=["Gli3"]),
    )
    annotate_genes(rna2, _real.load_gene_annotation("mm10"))
    assert rna2.var["annotated"].all()


def test_large_loaders_offline_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTUNE_DATA_DIR", str(tmp_path))
    for loader, fname in [
        (lambda: _real.pbmc10k(offline=True), "ad_rna.h5ad"),
        (
            lambda: _real.pbmc10k(source="glue", offline=True),
            "10x-Multiome-Pbmc10k-RNA.h5ad",
        ),
        (lambda: _real.share_tac(offline=True), "adata_rna_SHARE_TAC.h5ad"),
        (lambda: _real.cortex(offline=True), "greenleaf-final-RNA"),
        (lambda: _real.pbmc1k(offline=True), "test_rna_atac.h5mu"),
    ]:
        with pytest.raises(DataNotAvailableError, match=fname) as exc:
            loader()
        assert str(tmp_path) in str(exc.value)


def test_share_tac_loader_joins_metadata(shared_cache, tmp_path, monkeypatch):
    """The full SHARE files are not in the shared folder: stand in small ones with real barcodes."""
    meta = _real.load_share_tac_metadata()
    cells = list(meta.index[:6]) + ["UNKNOWN.BARCODE"]
    genes = ["Gli3", "Lef1", "Krt14"]
    rna = ad.AnnData(
        np.ones((7, 3), np.float32),
        obs=pd.DataFrame(index=cells),
        var=pd.DataFrame(index=genes),
    )
    atac = ad.AnnData(
        np.ones((7, 2), np.float32),
        obs=pd.DataFrame(index=cells),
        var=pd.DataFrame(index=["chr13:15000000-15000500", "chr3:131000000-131000300"]),
    )
    rna.write_h5ad(tmp_path / "r.h5ad")
    atac.write_h5ad(tmp_path / "a.h5ad")
    real_fetch = _real.fetch

    def fake_fetch(name, files=None, **kw):
        if name == "share_tac":
            return {
                "adata_rna_SHARE_TAC.h5ad": tmp_path / "r.h5ad",
                "adata_atac_SHARE_TAC.h5ad": tmp_path / "a.h5ad",
            }
        return real_fetch(name, files, **kw)

    monkeypatch.setattr(_real, "fetch", fake_fetch)
    with pytest.warns(UserWarning, match="1 of 7 cells have no metadata"):
        m = _real.share_tac()
    obs = m["rna"].obs
    assert obs["cell_type"].iloc[0] == meta["cell_type"].iloc[0]
    assert obs["pseudotime"].iloc[:6].tolist() == pytest.approx(
        meta["pseudotime"].iloc[:6].tolist()
    )
    assert np.isnan(obs["pseudotime"].iloc[6])
    assert m["atac"].obsm["X_umap_original"].shape == (7, 2)
    assert m["rna"].var["annotated"].all()


# ---------------------------------------------------------------------------------------------
# synthetic files


def test_read_h5ad_pair_roundtrip_and_cells(tmp_path):
    rna, atac = _pair(5)
    rna.write_h5ad(tmp_path / "rna.h5ad")
    atac.write_h5ad(tmp_path / "atac.h5ad")
    m = read_h5ad_pair(tmp_path / "rna.h5ad", tmp_path / "atac.h5ad")
    assert np.array_equal(m["rna"].X.toarray(), rna.X)
    assert m["atac"].var["chrom"].tolist() == ["chr1", "chr1", "chr2", "chrX"]
    # differing cells: counts and overlap in the message, intersect keeps the shared ones
    rna2, atac2 = _pair(
        cells=["c0", "c1", "c2", "c3", "c4"], atac_cells=["c4", "c2", "c9", "c0"]
    )
    rna2.write_h5ad(tmp_path / "rna2.h5ad")
    atac2.write_h5ad(tmp_path / "atac2.h5ad")
    with pytest.raises(AttuneInputError) as exc:
        read_h5ad_pair(tmp_path / "rna2.h5ad", tmp_path / "atac2.h5ad")
    msg = str(exc.value)
    assert (
        "rna2.h5ad) has 5 cells" in msg
        and "atac2.h5ad) has 4" in msg
        and "3 are shared" in msg
    )
    assert "intersect=True" in msg and "'c9'" in msg
    m2 = read_h5ad_pair(tmp_path / "rna2.h5ad", tmp_path / "atac2.h5ad", intersect=True)
    assert list(m2["rna"].obs_names) == ["c0", "c2", "c4"] == list(m2["atac"].obs_names)
    # atac rows follow the shared order, not the file order
    assert np.array_equal(m2["atac"].X.toarray()[0], atac2.X.toarray()[3])
    with pytest.raises(
        AttuneInputError, match=r"missing\.h5ad: RNA h5ad file not found"
    ):
        read_h5ad_pair(tmp_path / "missing.h5ad", tmp_path / "atac.h5ad")


def test_same_cells_other_order_are_aligned():
    rna, atac = _pair(4)
    atac = atac[::-1].copy()
    m = build_mudata(rna, atac)
    assert list(m["atac"].obs_names) == list(rna.obs_names)
    assert np.array_equal(m["atac"].X.toarray()[0], atac.X.toarray()[-1])


def test_no_shared_cells_even_with_intersect():
    rna, atac = _pair(cells=["a", "b"], atac_cells=["c", "d"])
    with pytest.raises(AttuneInputError, match="none are shared"):
        build_mudata(rna, atac, intersect=True)


def _write_10x_h5(path, *, types=None, names=None):
    # 3 cells; features: 3 genes + 2 peaks (+ optional extra); CSC features x cells as Cell Ranger
    ids = ["ENSG1", "ENSG2", "ENSG3", "chr1:10-20", "chr2:30-40"]
    names = names or ["G1", "G2", "G3", "chr1:10-20", "chr2:30-40"]
    types = types or ["Gene Expression"] * 3 + ["Peaks"] * 2
    dense = np.array(
        [[1, 0, 2], [0, 0, 3], [4, 5, 0], [1, 1, 0], [0, 2, 2]], dtype=np.int32
    )  # features x cells
    csc = sp.csc_matrix(dense)
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix")
        g["data"], g["indices"], g["indptr"] = csc.data, csc.indices, csc.indptr
        g["shape"] = np.array(dense.shape, dtype=np.int64)
        g["barcodes"] = np.array([b"AAA-1", b"CCC-1", b"GGG-1"])
        fg = g.create_group("features")
        fg["id"] = np.array([s.encode() for s in ids])
        fg["name"] = np.array([s.encode() for s in names])
        fg["feature_type"] = np.array([s.encode() for s in types])
        fg["genome"] = np.array([b"GRCh38"] * 5)
        fg["interval"] = np.array(
            [b"chr1:1-2", b"chr1:3-4", b"chr2:5-6", b"chr1:10-20", b"chr2:30-40"]
        )
    return dense


def test_read_10x_multiome_h5(tmp_path):
    dense = _write_10x_h5(tmp_path / "filtered_feature_bc_matrix.h5")
    m = read_10x_multiome_h5(tmp_path / "filtered_feature_bc_matrix.h5")
    assert list(m["rna"].obs_names) == ["AAA-1", "CCC-1", "GGG-1"]
    assert list(m["rna"].var_names) == ["G1", "G2", "G3"]
    assert m["rna"].var["gene_ids"].tolist() == ["ENSG1", "ENSG2", "ENSG3"]
    assert np.array_equal(m["rna"].X.toarray(), dense[:3].T)
    assert np.array_equal(m["atac"].X.toarray(), dense[3:].T)
    assert m["atac"].var["start"].tolist() == [10, 30]
    # repeated symbols are made unique with a warning
    _write_10x_h5(
        tmp_path / "dup.h5", names=["G1", "G1", "G3", "chr1:10-20", "chr2:30-40"]
    )
    with pytest.warns(UserWarning, match="repeated gene symbol"):
        m = read_10x_multiome_h5(tmp_path / "dup.h5")
    assert m["rna"].var_names.is_unique
    _write_10x_h5(tmp_path / "nopeaks.h5", types=["Gene Expression"] * 5)
    with pytest.raises(
        AttuneInputError, match=r"nopeaks\.h5: features/feature_type must contain both"
    ):
        read_10x_multiome_h5(tmp_path / "nopeaks.h5")
    with h5py.File(tmp_path / "broken.h5", "w") as f:
        f.create_group("matrix")
    with pytest.raises(AttuneInputError, match=r"broken\.h5: matrix/data not found"):
        read_10x_multiome_h5(tmp_path / "broken.h5")


def test_read_mtx_features_by_cells_with_tsv_tables(tmp_path):
    rng = np.random.default_rng(1)
    rna = (
        sp.random(3, 4, density=0.6, random_state=1, format="coo") * 10
    )  # genes x cells
    atac = (
        sp.random(4, 4, density=0.5, random_state=2, format="coo") * 3
    )  # peaks x cells (square!)
    scipy.io.mmwrite(tmp_path / "rna.mtx", rna)
    scipy.io.mmwrite(tmp_path / "atac.mtx", atac)
    (tmp_path / "barcodes.tsv").write_text("b1\nb2\nb3\nb4\n")
    (tmp_path / "genes.tsv").write_text("G1\tx\nG2\tx\nG3\tx\n")
    (tmp_path / "peaks.bed").write_text(
        "chr1_1_5\nchr1_7_9\nchr2_1_3\nchrUn_KI270728v1_10_20\n"
    )
    m = read_mtx_multiome(
        tmp_path / "rna.mtx",
        tmp_path / "atac.mtx",
        tmp_path / "barcodes.tsv",
        tmp_path / "genes.tsv",
        tmp_path / "peaks.bed",
    )
    assert m["rna"].shape == (4, 3) and m["atac"].shape == (4, 4)
    assert np.allclose(m["rna"].X.toarray(), rna.toarray().T)
    assert np.allclose(
        m["atac"].X.toarray(), atac.toarray().T
    )  # followed the RNA orientation
    assert m["atac"].var["chrom"].tolist()[-1] == "chrUn_KI270728v1"
    assert m["atac"].var_names[0] == "chr1:1-5"
    # both square -> cannot tell
    with pytest.raises(AttuneInputError, match="transpose: cannot tell"):
        read_mtx_multiome(
            tmp_path / "atac.mtx",
            tmp_path / "atac.mtx",
            ["a", "b", "c", "d"],
            ["g1", "g2", "g3", "g4"],
            ["chr1:1-2", "chr1:3-4", "chr1:5-6", "chr1:7-8"],
        )
    with pytest.raises(
        AttuneInputError, match=r"rna\.mtx: matrix shape \(3, 4\) matches neither"
    ):
        read_mtx_multiome(
            tmp_path / "rna.mtx",
            tmp_path / "atac.mtx",
            ["a", "b"],
            ["g1", "g2", "g3"],
            ["p1", "p2", "p3", "p4"],
        )
    del rng


def test_read_names_formats(tmp_path):
    (tmp_path / "r.csv").write_text('"","x"\n"1","A"\n"2","B"\n')
    (tmp_path / "plain.csv").write_text("name,other\nA,1\nB,2\n")
    (tmp_path / "empty.txt").write_text("")
    assert list(read_names(tmp_path / "r.csv")) == ["A", "B"]
    assert list(read_names(tmp_path / "plain.csv")) == ["A", "B"]
    assert list(read_names(["x", "y"])) == ["x", "y"]
    with pytest.raises(AttuneInputError, match=r"empty\.txt: names file is empty"):
        read_names(tmp_path / "empty.txt")


# ---------------------------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize(
    ("mod", "bad", "message"),
    [
        ("rna", np.nan, "contains 1 NaN"),
        ("rna", np.inf, "contains 1 infinite"),
        ("atac", -1.0, "contains 1 negative"),
    ],
)
def test_bad_values_name_modality_and_file(mod, bad, message):
    rna, atac = _pair(4)
    target = rna if mod == "rna" else atac
    X = target.X.toarray() if sp.issparse(target.X) else target.X.copy()
    X[1, 2] = bad
    target.X = X
    with pytest.raises(AttuneInputError) as exc:
        build_mudata(rna, atac, sources={"rna": "r.h5ad", "atac": "a.h5ad"})
    msg = str(exc.value)
    assert f"modality '{mod}'" in msg and message in msg
    assert ("r.h5ad" if mod == "rna" else "a.h5ad") in msg


def test_empty_matrix():
    rna, atac = _pair(3)
    with pytest.raises(AttuneInputError, match=r"modality 'rna'.* is empty"):
        build_mudata(rna[:, []].copy(), atac)
    with pytest.raises(
        AttuneInputError, match=r"modality 'atac' \(from a\.h5ad\) is empty"
    ):
        build_mudata(rna, atac[:, []].copy(), sources={"atac": "a.h5ad"})
    with pytest.raises(AttuneInputError, match=r"modality 'rna'.* is empty"):
        build_mudata(rna[[]].copy(), atac[[]].copy())


def test_duplicated_names():
    rna, atac = _pair(cells=["a", "b", "a"])
    with pytest.raises(
        AttuneInputError, match=r"modality 'rna'.*1 duplicated cell name.*'a'"
    ):
        build_mudata(rna, atac)
    rna, atac = _pair(3)
    atac.var_names = ["chr1:1-2", "chr1:1-2", "chr1:5-6", "chr1:7-8"]
    with pytest.raises(
        AttuneInputError, match=r"modality 'atac'.*duplicated feature name.*'chr1:1-2'"
    ):
        build_mudata(rna, atac)
    # different names, same coordinates after canonical renaming
    atac.var_names = ["chr1:1-2", "chr1-1-2", "chr1:5-6", "chr1:7-8"]
    with pytest.raises(
        AttuneInputError, match="same coordinates under different names"
    ):
        build_mudata(rna, atac)


def test_unparsable_peaks():
    rna, atac = _pair(3)
    atac.var_names = ["chr1:1-2", "peak_7", "chr1:5", "chr1:7-8"]
    with pytest.raises(AttuneInputError) as exc:
        build_mudata(rna, atac)
    msg = str(exc.value)
    assert "modality 'atac'" in msg and "2 of 4 could not be parsed" in msg
    assert "'peak_7'" in msg and "'chr1:5'" in msg
    # allowed when peak parsing is switched off
    m = build_mudata(rna, atac, parse_peaks=False)
    assert "chrom" not in m["atac"].var.columns


def test_parse_peak_names_formats():
    df = parse_peak_names(
        [
            "chr1:100-200",
            "chr2-300-400",
            "chr3_500_600",
            "chrUn_KI270728v1_1_9",
            "GL000194.1:5-6",
        ]
    )
    assert df["chrom"].tolist() == [
        "chr1",
        "chr2",
        "chr3",
        "chrUn_KI270728v1",
        "GL000194.1",
    ]
    assert df["start"].tolist() == [100, 300, 500, 1, 5]
    assert df["end"].tolist() == [200, 400, 600, 9, 6]
    assert df["start"].dtype == np.int64
    with pytest.raises(
        AttuneInputError, match=r"end before they start, e.g. 'chr1:500-100'"
    ):
        parse_peak_names(["chr1:500-100"])


def test_inputs_not_modified_by_build_mudata():
    rna, atac = _pair(cells=["a", "b", "c"], atac_cells=["c", "a", "z"])
    before = (rna.copy(), atac.copy())
    m = build_mudata(rna, atac, intersect=True)
    assert m.n_obs == 2
    assert list(atac.obs_names) == list(before[1].obs_names)
    assert "chrom" not in atac.var.columns and rna.var.shape[1] == 0


# ---------------------------------------------------------------------------------------------
# gene annotation


ANN = pd.DataFrame(
    {
        "symbol": ["GENEA", "GENEB", "GENEB", "OTHER"],
        "ensembl_id": ["ENSG01", "ENSG02", "ENSG09", "ENSG03;ENSG04"],
        "chrom": ["chr1", "chr2", "chr2_alt", "chr3"],
        "start": [100, 200, 250, 300],
        "end": [150, 260, 260, 390],
        "strand": ["+", "-", "-", "+"],
    }
)


def test_annotate_genes_symbols_ids_and_warning():
    rna, _ = _pair(2)
    rna.var["gene_ids"] = [
        "ENSG01.5",
        "ENSG99",
        "ENSG04",
    ]  # GENEC matches OTHER by its 2nd id
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = annotate_genes(rna, ANN)
    assert out is None
    var = rna.var
    assert var["annotated"].tolist() == [True, True, True]
    assert (
        var.loc["GENEB", "chrom"] == "chr2"
    )  # primary assembly preferred over chr2_alt
    assert var.loc["GENEB", "tss"] == 260  # derived from strand '-' -> end
    assert var.loc["GENEC", "chrom"] == "chr3"  # by Ensembl id
    assert var.loc["GENEA", "tss"] == 100
    assert [str(w.message) for w in rec] == []  # everything annotated: no warning


def test_annotate_genes_unannotated_warns_and_marks():
    rna, _ = _pair(2)
    ann = ANN[ANN["symbol"] != "GENEC"]
    with pytest.warns(
        UserWarning,
        match=r"1 of 3 genes have no annotation in annotation DataFrame \(e\.g\. 'GENEC'\)",
    ):
        copy = annotate_genes(rna, ann, copy=True)
    assert "chrom" not in rna.var.columns  # copy=True leaves the input alone
    assert copy.var["annotated"].tolist() == [True, True, False]
    assert pd.isna(copy.var.loc["GENEC", "chrom"]) and pd.isna(
        copy.var.loc["GENEC", "strand"]
    )
    assert copy.var.loc["GENEC", ["start", "end", "tss"]].tolist() == [-1, -1, -1]


def test_annotate_genes_bad_tables(tmp_path):
    rna, _ = _pair(2)
    with pytest.raises(AttuneInputError, match=r"missing column\(s\) \['strand'\]"):
        annotate_genes(rna, ANN.drop(columns="strand"))
    bad = ANN.assign(strand=["+", "?", "-", "+"])
    with pytest.raises(AttuneInputError, match="column 'strand' must be"):
        annotate_genes(rna, bad)
    path = tmp_path / "ann.tsv"
    ANN.rename(columns={"symbol": "gene_name", "chrom": "chr"}).to_csv(
        path, sep="\t", index=False
    )
    df = read_gene_annotation(path)
    assert {"symbol", "chrom", "tss"} <= set(df.columns)
    with pytest.raises(AttuneInputError, match=r"ann\.tsv: column 'start'"):
        ANN.assign(start=["1", "x", "3", "4"]).to_csv(path, sep="\t", index=False)
        annotate_genes(rna, path)
    assert "chrom" not in rna.var.columns  # nothing written on failure


# ---------------------------------------------------------------------------------------------
# writing


def test_write_h5mu_roundtrip(tmp_path):
    m = build_mudata(*_pair(4))
    out = tmp_path / "sub" / "data.h5mu"
    write_h5mu(m, out)
    back = read_h5mu(out)
    assert np.array_equal(back["rna"].X.toarray(), m["rna"].X.toarray())
    with pytest.raises(AttuneInputError, match="file exists"):
        write_h5mu(m, out, overwrite=False)


def test_nothing_written_on_failure(tmp_path, monkeypatch):
    m = build_mudata(*_pair(4))
    out = tmp_path / "data.h5mu"
    # invalid data: refused before anything is created
    bad = m.copy()
    X = bad["rna"].X.toarray()
    X[0, 0] = np.nan
    bad["rna"].X = X
    with pytest.raises(AttuneInputError, match="NaN"):
        write_h5mu(bad, out)
    assert list(tmp_path.iterdir()) == []

    # the writer dies half-way: no final file, no temporary left behind
    def half_write(self, filename, *a, **k):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(type(m), "write", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_h5mu(m, out)
    assert list(tmp_path.iterdir()) == []

    # an existing good file survives a failed overwrite
    out.write_bytes(b"old")
    with pytest.raises(OSError):
        write_h5mu(m, out)
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.h5mu"]


def test_atomic_write_path(tmp_path):
    target = tmp_path / "x.txt"
    with atomic_write_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    with pytest.raises(RuntimeError), atomic_write_path(tmp_path / "y.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with (
            pytest.raises(AttuneInputError, match="writer produced no file"),
            atomic_write_path(tmp_path / "z.txt"),
        ):
            pass
