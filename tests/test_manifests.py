"""Dataset manifests (schema, validation errors) and pooch-backed fetching (cache, offline, checksums)."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pooch
import pytest
import yaml

from attune_lib._utils import AttuneInputError
from attune_lib.datasets import list_datasets
from attune_lib.datasets._fetch import (
    ChecksumMismatchError,
    DataNotAvailableError,
    cache_dir,
    fetch,
)
from attune_lib.datasets._manifest import (
    get_manifest,
    load_manifest,
    manifest_dir,
)

REQUIRED = {
    "pbmc10k_attune",
    "pbmc10k_glue",
    "share_tac",
    "cortex_trevino",
    "javierre2016_pchic",
    "jaspar2022",
    "go_bp",
    "hg38_annotation",
    "mm10_annotation",
    "pbmc1k_muon",
    "pbmc300_scpoem",
    "attune_release",
    "simulated",
}


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything tries to download through pooch."""

    def boom(*args, **kwargs):
        # pytest.fail raises a BaseException, so fetch's error handling cannot swallow it
        pytest.fail(f"network access attempted: {args} {kwargs}")

    monkeypatch.setattr(pooch, "retrieve", boom)


@pytest.fixture
def shared_cache(shared_data_dir, monkeypatch):
    monkeypatch.setenv("ATTUNE_DATA_DIR", str(shared_data_dir))
    monkeypatch.setenv("ATTUNE_OFFLINE", "1")
    return shared_data_dir


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    d.mkdir()
    monkeypatch.setenv("ATTUNE_DATA_DIR", str(d))
    monkeypatch.delenv("ATTUNE_OFFLINE", raising=False)
    return d


# ---------------------------------------------------------------------------------------------
# the manifests in the repository


def test_every_manifest_validates(repo_root):
    paths = sorted((repo_root / "data_manifests").glob("*.yaml"))
    assert paths, "no manifests found"
    names = set()
    for p in paths:
        m = load_manifest(p)
        assert m.name == p.stem
        assert m.citation.text and m.licence and m.source
        for f in m.files:
            assert f.url is not None or f.derived_from
            assert f.checksum is not None or f.checksum_note
        names.add(m.name)
    assert REQUIRED <= names, REQUIRED - names
    assert manifest_dir().resolve() == (repo_root / "data_manifests").resolve()


def test_manifest_kinds_and_special_entries():
    assert get_manifest("jaspar2022").kind == "package"
    assert get_manifest("jaspar2022").package["version"] == "4.0.0"
    sim = get_manifest("simulated")
    assert (
        sim.kind == "simulator"
        and sim.simulator == "attune_lib.datasets.simulate_multiome"
    )
    assert sim.files == ()
    pchic = get_manifest("javierre2016_pchic")
    zipf = pchic.file("mmc4.zip")
    assert zipf.checksum is None and "checksum" in zipf.checksum_note.lower()
    assert zipf.extract[-1] == "PCHiC_peak_matrix_cutoff5.tsv"
    assert pchic.file("PCHiC_peak_matrix_cutoff5.tsv") is zipf
    attune = get_manifest("pbmc10k_attune")
    assert {f.checksum for f in attune.files} == {
        "md5:c326a877c845b9582cf22e7f62206a78",
        "md5:c60296d27e026b70c371a3b0e80a1fb2",
    }
    glue = get_manifest("pbmc10k_glue")
    assert all(f.checksum.startswith("sha256:") for f in glue.files)
    rel = get_manifest("attune_release")
    for f in rel.files:
        assert f.url.startswith(
            "https://github.com/melobio/Attune/raw/93867953ac3ab75be5b1cd2cb761c13d0bb4fe66/"
        )
    go = get_manifest("go_bp")
    assert [f.name for f in go.required_files] == ["go_bp_hs_2022-07.gmt"]


def test_manifest_checksums_and_sizes_match_shared_data(shared_data_dir):
    """Every file that the shared folder holds has the SHA256SUMS checksum and size in its manifest."""
    sums = {}
    for line in (shared_data_dir / "SHA256SUMS").read_text().splitlines():
        digest, rel = line.split()
        sums[rel.removeprefix("./")] = digest
    covered = set()
    for p in sorted(manifest_dir().glob("*.yaml")):
        for f in load_manifest(p).files:
            if f.relpath in sums:
                covered.add(f.relpath)
                assert f.checksum == f"sha256:{sums[f.relpath]}", f.relpath
                assert f.size == (shared_data_dir / f.relpath).stat().st_size, f.relpath
    assert covered == set(sums), set(sums) - covered


def test_list_datasets(shared_cache, tmp_path, monkeypatch):
    df = list_datasets()
    assert {"name", "title", "organism", "genome", "n_files", "cached"} <= set(
        df.columns
    )
    assert REQUIRED <= set(df["name"])
    row = df.set_index("name")
    assert row.loc["pbmc1k_muon", "cached"]
    assert row.loc["attune_release", "cached"]
    assert row.loc["attune_release", "n_files"] == 14
    assert not row.loc["pbmc10k_attune", "cached"]
    assert row.loc["simulated", "cached"]
    # loadable: what load_dataset / --dataset accept; resources (annotations, motifs) are not
    assert row.loc["simulated", "loadable"] and row.loc["simulated_skin", "loadable"]
    assert row.loc["pbmc1k_muon", "loadable"] and not row.loc["jaspar2022", "loadable"]
    assert not row.loc["hg38_annotation", "loadable"]
    monkeypatch.setenv("ATTUNE_DATA_DIR", str(tmp_path))
    row = list_datasets().set_index("name")
    assert not row.loc["pbmc1k_muon", "cached"]
    assert row.loc["simulated", "cached"]


def test_get_manifest_unknown_name():
    with pytest.raises(AttuneInputError, match="unknown dataset 'nope'.*pbmc1k_muon"):
        get_manifest("nope")


# ---------------------------------------------------------------------------------------------
# broken manifests name the file and the field

GOOD = {
    "name": "toy",
    "title": "Toy",
    "description": "A toy dataset.",
    "citation": {"text": "Someone 2020", "doi": "10.1000/xyz"},
    "licence": "CC0-1.0",
    "organism": "Homo sapiens",
    "genome": "GRCh38",
    "source": "https://example.org/toy",
    "notebooks": [],
    "files": [
        {
            "name": "a.csv",
            "url": "https://example.org/a.csv",
            "checksum": "sha256:" + "a" * 64,
            "format": "csv",
        },
        {
            "name": "b.h5ad",
            "url": "doi:10.6084/m9.figshare.1.v1/b.h5ad",
            "checksum": "md5:" + "b" * 32,
            "format": "h5ad",
            "size": 10,
        },
    ],
}


def _write(dirpath: Path, data, name="toy") -> Path:
    p = dirpath / f"{name}.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def _broken(mutate):
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    mutate(data)
    return data


def test_good_toy_manifest_loads(tmp_path):
    m = load_manifest(_write(tmp_path, GOOD))
    assert m.files[1].hash_algorithm == "md5"
    assert m.files[0].relpath == "toy/a.csv"


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda d: d.pop("title"), "title", "required field is missing"),
        (lambda d: d["citation"].pop("doi"), "citation.doi", "required"),
        (
            lambda d: d["files"][1].update(checksum="sha256:1234"),
            "files[1].checksum",
            "expected 'sha256:<64 hex>' or 'md5:<32 hex>'",
        ),
        (
            lambda d: d["files"][0].update(checksum="crc32:" + "a" * 8),
            "files[0].checksum",
            "expected 'sha256",
        ),
        (
            lambda d: d["files"][0].update(url="htp:/example"),
            "files[0].url",
            "invalid URL",
        ),
        (
            lambda d: d["files"][0].update(url="example.org/a.csv"),
            "files[0].url",
            "invalid URL",
        ),
        (
            lambda d: d["files"][1].update(url="doi:not-a-doi"),
            "files[1].url",
            "invalid DOI URL",
        ),
        (
            lambda d: d["files"][0].update(checksum=None),
            "files[0].checksum",
            "checksum_note",
        ),
        (lambda d: d["files"][0].update(url=None), "files[0].url", "derived_from"),
        (lambda d: d["files"][0].pop("format"), "files[0].format", "required"),
        (lambda d: d["files"][0].update(size=-3), "files[0].size", "positive integer"),
        (
            lambda d: d["files"][0].update(cache_path="../escape.csv"),
            "files[0].cache_path",
            "relative path",
        ),
        (lambda d: d["files"][1].update(name="a.csv"), "files[1].name", "duplicate"),
        (
            lambda d: d["files"][0].update(colour="red"),
            "files[0].colour",
            "unknown field",
        ),
        (lambda d: d.update(kind="magic"), "kind", "expected one of"),
        (lambda d: d.update(files=[]), "files", "non-empty"),
        (lambda d: d.update(name="other"), "name", "file name stem"),
        (
            lambda d: d["citation"].update(doi="doi.org/abc"),
            "citation.doi",
            "expected a DOI",
        ),
        (lambda d: d.update(source="somewhere"), "source", "expected an http"),
        (
            lambda d: d.update(
                kind="simulator",
                files=None,
                source="attune_lib.x.y",
                simulator="not dotted",
            ),
            "simulator",
            "dotted function path",
        ),
    ],
)
def test_broken_manifest_names_file_and_field(tmp_path, mutate, field, message):
    p = _write(tmp_path, _broken(mutate))
    with pytest.raises(AttuneInputError) as exc:
        load_manifest(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}: {field}: "), msg
    assert message in msg


def test_broken_manifest_via_env_dir_and_yaml_error(tmp_path, monkeypatch):
    _write(tmp_path, _broken(lambda d: d["files"][1].update(checksum="md5:xyz")))
    monkeypatch.setenv("ATTUNE_MANIFEST_DIR", str(tmp_path))
    with pytest.raises(
        AttuneInputError, match=r"toy\.yaml: files\[1\]\.checksum: expected"
    ):
        get_manifest("toy")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(AttuneInputError, match=r"bad\.yaml: not valid YAML"):
        load_manifest(tmp_path / "bad.yaml")


def test_repo_manifest_display_name(repo_root, monkeypatch):
    """Errors for the repository's manifests read 'data_manifests/<name>.yaml: <field>: ...'."""
    real = repo_root / "data_manifests" / "pbmc300_scpoem.yaml"
    original = yaml.safe_load
    broken = yaml.safe_load(real.read_text())
    broken["files"][1]["checksum"] = "sha256:xyz"
    monkeypatch.setattr(yaml, "safe_load", lambda text: broken)
    with pytest.raises(AttuneInputError) as exc:
        load_manifest(real)
    monkeypatch.setattr(yaml, "safe_load", original)
    assert str(exc.value).startswith(
        "data_manifests/pbmc300_scpoem.yaml: files[1].checksum: expected 'sha256:<64 hex>' or 'md5:<32 hex>'"
    )


# ---------------------------------------------------------------------------------------------
# fetching


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTUNE_DATA_DIR", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("ATTUNE_DATA_DIR")
    assert cache_dir() == Path(pooch.os_cache("attune-companion"))


def test_fetch_from_shared_cache_without_network(shared_cache, no_network, monkeypatch):
    monkeypatch.delenv("ATTUNE_OFFLINE")  # online mode, but nothing may be downloaded
    paths = fetch("pbmc300_scpoem")
    assert set(paths) == {
        "X.mtx",
        "Y.mtx",
        "cell_data.csv",
        "gene_data.csv",
        "peak_data.csv",
    }
    assert paths["X.mtx"] == shared_cache / "pbmc300_scpoem" / "X.mtx"
    rel = fetch("attune_release", ["cortex/umap.txt", "pbmc10k/pbmc_gene.list"])
    assert (
        rel["cortex/umap.txt"]
        == shared_cache / "attune_release" / "cortex" / "umap.txt"
    )
    ann = fetch("hg38_annotation")
    assert ann["hg38_genes_orghs_2022-09.tsv"].is_file()
    assert fetch("go_bp", "go_bp_hs_2022-07.gmt")["go_bp_hs_2022-07.gmt"].is_file()


def test_fetch_verifies_checksum_of_cached_copy(shared_data_dir, tmp_cache, no_network):
    """A correct copy is accepted; the checksum is what is checked (an equal-size corrupt copy is not)."""
    src = shared_data_dir / "pbmc300_scpoem" / "cell_data.csv"
    dst = tmp_cache / "pbmc300_scpoem" / "cell_data.csv"
    dst.parent.mkdir(parents=True)
    shutil.copy(src, dst)
    assert fetch("pbmc300_scpoem", "cell_data.csv") == {"cell_data.csv": dst}


def test_offline_missing_file_names_file_url_and_target(tmp_cache, no_network):
    with pytest.raises(DataNotAvailableError) as exc:
        fetch("pbmc1k_muon", offline=True)
    msg = str(exc.value)
    target = tmp_cache / "pbmc1k_muon" / "test_rna_atac.h5mu"
    assert "'test_rna_atac.h5mu'" in msg
    assert (
        "https://github.com/scverse/muon/raw/4fef69997eb71480463238ab5e70df2ced896805/"
        in msg
    )
    assert str(target) in msg
    assert "offline" in msg
    assert exc.value.path == target and exc.value.file == "test_rna_atac.h5mu"
    assert isinstance(exc.value, AttuneInputError)
    assert not target.exists()


def test_offline_env_var(tmp_cache, no_network, monkeypatch):
    monkeypatch.setenv("ATTUNE_OFFLINE", "1")
    with pytest.raises(DataNotAvailableError, match="ad_rna.h5ad"):
        fetch("pbmc10k_attune")


def test_network_failure_is_data_not_available(tmp_cache, monkeypatch):
    import requests

    def fail(*a, **k):
        raise requests.exceptions.ConnectionError("Name or service not known")

    monkeypatch.setattr(pooch, "retrieve", fail)
    with pytest.raises(DataNotAvailableError) as exc:
        fetch("pbmc300_scpoem", "Y.mtx")
    msg = str(exc.value)
    assert "download failed" in msg and "ConnectionError" in msg
    assert "data_example/single/Y.mtx" in msg
    assert str(tmp_cache / "pbmc300_scpoem" / "Y.mtx") in msg


def test_derived_file_without_url(tmp_cache, no_network):
    with pytest.raises(DataNotAvailableError) as exc:
        fetch("hg38_annotation")
    msg = str(exc.value)
    assert "no public download URL" in msg
    assert "org.hs.eg.db" in msg
    assert str(tmp_cache / "annotation" / "hg38_genes_orghs_2022-09.tsv") in msg


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_corrupted_cached_file_is_refused_and_removed(
    shared_data_dir, tmp_cache, no_network, how
):
    src = shared_data_dir / "pbmc300_scpoem" / "gene_data.csv"
    dst = tmp_cache / "pbmc300_scpoem" / "gene_data.csv"
    dst.parent.mkdir(parents=True)
    data = bytearray(src.read_bytes())
    if how == "flip":
        data[100] ^= 0xFF
        data[200] ^= 0x01
    else:
        data = data[:-10]
    dst.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError) as exc:
        fetch("pbmc300_scpoem", ["gene_data.csv"])
    msg = str(exc.value)
    assert str(dst) in msg and "deleted" in msg
    assert ("checksum sha256:" in msg) if how == "flip" else ("size" in msg)
    assert not dst.exists()


def test_download_goes_through_pooch_with_known_hash(
    shared_data_dir, tmp_cache, monkeypatch
):
    calls = []

    def fake_retrieve(
        url, known_hash=None, fname=None, path=None, progressbar=False, **kw
    ):
        calls.append((url, known_hash, fname, path))
        out = Path(path) / fname
        shutil.copy(shared_data_dir / "pbmc300_scpoem" / fname, out)
        return str(out)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    paths = fetch("pbmc300_scpoem", "peak_data.csv", progressbar=False)
    assert paths["peak_data.csv"] == tmp_cache / "pbmc300_scpoem" / "peak_data.csv"
    ((url, known_hash, _fname, path),) = calls
    assert url.endswith("/data_example/single/peak_data.csv")
    assert known_hash == get_manifest("pbmc300_scpoem").file("peak_data.csv").checksum
    assert Path(path) == tmp_cache / "pbmc300_scpoem"
    # a second call finds it cached and does not download again
    fetch("pbmc300_scpoem", "peak_data.csv")
    assert len(calls) == 1


def test_downloaded_file_with_bad_hash(tmp_cache, monkeypatch):
    def bad_hash(url, known_hash=None, fname=None, path=None, **kw):
        raise ValueError(
            f"SHA256 hash of downloaded file ({fname}) does not match the known hash"
        )

    monkeypatch.setattr(pooch, "retrieve", bad_hash)
    with pytest.raises(
        ChecksumMismatchError, match="does not match the manifest checksum"
    ):
        fetch("pbmc300_scpoem", "Y.mtx")
    assert not (tmp_cache / "pbmc300_scpoem" / "Y.mtx").exists()


def test_fetch_special_kinds_and_unknown_file(shared_cache):
    with pytest.raises(AttuneInputError, match="simulated.*simulate_multiome"):
        fetch("simulated")
    with pytest.raises(AttuneInputError, match="has no file 'nope.csv'"):
        fetch("pbmc300_scpoem", "nope.csv")
    pytest.importorskip("pyjaspar")
    out = fetch("jaspar2022")
    assert out["JASPAR2022.sqlite"].is_file()


def _nested_zip(member_text: bytes) -> bytes:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("DATA_S1/PCHiC_peak_matrix_cutoff5.tsv", member_text)
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as z:
        z.writestr("__MACOSX/DATA_S1.zip", b"junk")
        z.writestr("DATA_S1.zip", inner.getvalue())
    return outer.getvalue()


def test_fetch_extracts_nested_archive(tmp_cache, tmp_path, monkeypatch, no_network):
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    data["files"] = [
        {
            "name": "mmc4.zip",
            "url": "https://example.org/mmc4.zip",
            "checksum": None,
            "checksum_note": "unknown for the test",
            "format": "zip",
            "extract": ["DATA_S1.zip", "PCHiC_peak_matrix_cutoff5.tsv"],
        }
    ]
    _write(mdir, data)
    monkeypatch.setenv("ATTUNE_MANIFEST_DIR", str(mdir))
    (tmp_cache / "toy").mkdir()
    (tmp_cache / "toy" / "mmc4.zip").write_bytes(
        _nested_zip(b"baitChr\tbaitStart\n1\t100\n")
    )
    out = fetch("toy")
    tsv = tmp_cache / "toy" / "PCHiC_peak_matrix_cutoff5.tsv"
    assert out == {
        "mmc4.zip": tmp_cache / "toy" / "mmc4.zip",
        "PCHiC_peak_matrix_cutoff5.tsv": tsv,
    }
    assert tsv.read_bytes() == b"baitChr\tbaitStart\n1\t100\n"
    assert [
        p.name for p in (tmp_cache / "toy").iterdir() if p.name.startswith(".")
    ] == []
    # the extracted table alone is enough
    (tmp_cache / "toy" / "mmc4.zip").unlink()
    assert fetch("toy", offline=True) == {"PCHiC_peak_matrix_cutoff5.tsv": tsv}


@pytest.fixture
def local_http(tmp_path, monkeypatch):
    """A throw-away HTTP server on 127.0.0.1 serving tmp_path/'served' (real pooch downloads)."""
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(served)
    )
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for var in (
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_real_pooch_download_verifies_checksum(
    local_http, tmp_cache, tmp_path, monkeypatch
):
    import hashlib

    served, base = local_http
    payload = b"barcode,celltype\nAAA-1,T\n"
    (served / "good.csv").write_bytes(payload)
    (served / "evil.csv").write_bytes(b"tampered\n")
    digest = hashlib.sha256(payload).hexdigest()
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    data["files"] = [
        {
            "name": "good.csv",
            "url": f"{base}/good.csv",
            "checksum": f"sha256:{digest}",
            "format": "csv",
        },
        {
            "name": "evil.csv",
            "url": f"{base}/evil.csv",
            "checksum": f"sha256:{digest}",
            "format": "csv",
        },
    ]
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    _write(mdir, data)
    monkeypatch.setenv("ATTUNE_MANIFEST_DIR", str(mdir))
    out = fetch("toy", "good.csv", progressbar=False)
    assert out["good.csv"] == tmp_cache / "toy" / "good.csv"
    assert out["good.csv"].read_bytes() == payload
    with pytest.raises(
        ChecksumMismatchError, match="evil.csv.*does not match the manifest checksum"
    ):
        fetch("toy", "evil.csv", progressbar=False)
    assert sorted(p.name for p in (tmp_cache / "toy").iterdir()) == ["good.csv"]
    # a missing file on the server is a clear 'not available' error with URL and target
    data["files"][1]["url"] = f"{base}/missing.csv"
    _write(mdir, data)
    with pytest.raises(DataNotAvailableError, match="missing.csv") as exc:
        fetch("toy", "evil.csv", progressbar=False)
    assert str(tmp_cache / "toy" / "evil.csv") in str(exc.value)


def test_manifest_notebooks_exist(repo_root):
    """Every notebook a manifest names is a real notebook in notebooks/."""
    from attune_lib.datasets import get_manifest, list_datasets

    table = list_datasets()
    for name in table.loc[~table["name"].str.startswith("simulated_"), "name"]:  # presets share one manifest
        for nb in get_manifest(name).notebooks:
            assert (repo_root / "notebooks" / nb).exists(), f"data_manifests/{name}.yaml names missing notebook {nb}"


def test_genome_fasta_manifests(tmp_cache, no_network):
    """Genome FASTAs for real-data motif scans resolve through their manifests (offline: a clear error)."""
    from attune_lib.datasets import genome_fasta

    for assembly, fname in (("hg38", "hg38.fa.gz"), ("GRCm38", "mm10.fa.gz")):
        m = get_manifest(f"{fname.split('.')[0]}_genome")
        assert m.genome == fname.split(".")[0] and m.file(fname).url.endswith(f"/bigZips/{fname}")
        with pytest.raises(DataNotAvailableError) as exc:
            genome_fasta(assembly, offline=True)
        msg = str(exc.value)
        assert repr(fname) in msg and m.file(fname).url in msg and str(tmp_cache / "genome" / fname) in msg
    # a copy placed where the error says is used as is (no checksum is published in the manifest)
    target = tmp_cache / "genome" / "mm10.fa.gz"
    target.parent.mkdir(parents=True)
    import gzip

    with gzip.open(target, "wt") as fh:
        fh.write(">chr1\nACGTACGTNN\n")
    assert genome_fasta("mm10", offline=True) == target
    with pytest.raises(AttuneInputError, match="genome: expected"):
        genome_fasta("hg19")
