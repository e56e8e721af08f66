"""Streaming: chunked on-disk writing, CSR row reads from .h5ad, background prefetch, training from disk."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from attune_lib._utils import AttuneInputError
from attune_lib.datasets._ondisk import write_multiome_h5ad
from attune_lib.models import Attune, OnDiskPairedSource, prefetch_batches
from attune_lib.models._streaming import H5CSRMatrix


@pytest.fixture(scope="module")
def ondisk(tmp_path_factory):
    out = tmp_path_factory.mktemp("ondisk")
    paths = write_multiome_h5ad(out, n_cells=230, n_genes=30, n_peaks=90, chunk_size=64, seed=1,
                                progress_bar=False)
    return paths


def test_writer_files_are_anndata_and_chunking_is_invisible(ondisk, tmp_path):
    rna, atac = ad.read_h5ad(ondisk["rna"]), ad.read_h5ad(ondisk["atac"])
    assert rna.shape == (230, 30) and atac.shape == (230, 90)
    assert sp.issparse(rna.X) and rna.obs_names.equals(atac.obs_names)
    assert set(np.unique(atac.X.data)) <= {1.0, 2.0} and rna.X.data.min() > 0
    assert 0.02 < atac.X.nnz / (230 * 90) < 0.1 and "cell_type" in rna.obs
    # backed access reads the same rows
    backed = ad.read_h5ad(ondisk["atac"], backed="r")
    np.testing.assert_array_equal(backed.X[10:20].toarray(), atac.X[10:20].toarray())
    with pytest.raises(AttuneInputError, match="exists"):
        write_multiome_h5ad(ondisk["rna"].parent, n_cells=5, progress_bar=False)
    assert not list(ondisk["rna"].parent.glob(".*partial"))


def test_h5_rows_equal_in_memory_rows(ondisk):
    X = ad.read_h5ad(ondisk["atac"]).X.tocsr()
    m = H5CSRMatrix(ondisk["atac"])
    for idx in (np.array([5, 6, 7, 100, 3]), np.arange(0, 230, 7), np.array([229])):
        got = m.rows(idx)
        np.testing.assert_array_equal(got.toarray(), X[idx].toarray())
        assert got.has_canonical_format
    with pytest.raises(AttuneInputError, match="row indices"):
        m.rows(np.array([230]))


def test_prefetch_keeps_order_and_raises_at_the_failing_batch():
    batches = [np.array([i]) for i in range(6)]
    got = [int(b) for _, b in prefetch_batches(lambda i: int(i[0]) * 10, batches, depth=2)]
    assert got == [0, 10, 20, 30, 40, 50]

    def bad(i):
        if i[0] == 3:
            raise ValueError("broken chunk")
        return int(i[0])

    seen = []
    with pytest.raises(ValueError, match="broken chunk"):
        for _, b in prefetch_batches(bad, batches, depth=2):
            seen.append(b)
    assert seen == [0, 1, 2]


def test_train_from_disk_equals_train_in_memory(ondisk):
    src = OnDiskPairedSource(ondisk["rna"], ondisk["atac"])
    tmpl = src.template_mudata()
    assert tmpl["atac"].X.nnz == 0 and tmpl["atac"].shape == (230, 90)
    Attune.setup_mudata(tmpl)
    disk = Attune(tmpl, seed=0, n_hidden=16, n_latent=8)
    disk.train(max_epochs=2, batch_size=32, lr=1e-3, data=src, device="cpu", progress_bar=False)
    import mudata as md

    mem = md.MuData({"rna": ad.read_h5ad(ondisk["rna"]), "atac": ad.read_h5ad(ondisk["atac"])})
    Attune.setup_mudata(mem)
    ref = Attune(mem, seed=0, n_hidden=16, n_latent=8)
    ref.train(max_epochs=2, batch_size=32, lr=1e-3, device="cpu", progress_bar=False)
    np.testing.assert_allclose(disk.history["loss"], ref.history["loss"], rtol=1e-5)
    z_disk = disk.get_latent_representation(src)
    np.testing.assert_allclose(z_disk, ref.get_latent_representation(), atol=1e-5)
    assert z_disk.shape == (230, 16)


def test_ondisk_source_errors_name_the_file(ondisk, tmp_path):
    with pytest.raises(AttuneInputError, match="does not exist"):
        OnDiskPairedSource(tmp_path / "nope.h5ad", ondisk["atac"])
    dense = tmp_path / "dense.h5ad"
    ad.AnnData(np.ones((230, 3), np.float32)).write_h5ad(dense)
    with pytest.raises(AttuneInputError, match="dense.h5ad"):
        OnDiskPairedSource(dense, ondisk["atac"])
    bad = tmp_path / "neg.h5ad"
    a = ad.read_h5ad(ondisk["rna"])
    a.X = a.X.copy()
    a.X.data[0] = -1.0
    a.write_h5ad(bad)
    with pytest.raises(AttuneInputError, match="neg.h5ad"):
        OnDiskPairedSource(bad, ondisk["atac"])
