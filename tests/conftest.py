"""Shared, session-scoped fixtures: small simulated datasets and the real data in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("ATTUNE_NO_PROGRESS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ATTUNE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``../shared/data`` (real data); tests using it skip cleanly when it is absent."""
    if not (SHARED_DATA / "SHA256SUMS").exists():
        pytest.skip(f"real data folder not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sim_small():
    """Small ``pbmc``-preset simulation (discrete cell types); do not modify in place, copy first."""
    from attune_lib.datasets import simulate_multiome

    return simulate_multiome(preset="pbmc", size="small", seed=0)


@pytest.fixture(scope="session")
def sim_skin_small():
    """Small ``skin``-preset simulation (TAC branching into three lineages along pseudotime)."""
    from attune_lib.datasets import simulate_multiome

    return simulate_multiome(preset="skin", size="small", seed=0)


@pytest.fixture(scope="session")
def sim_cortex_small():
    """Small ``cortex``-preset simulation (progenitors maturing into neurons)."""
    from attune_lib.datasets import simulate_multiome

    return simulate_multiome(preset="cortex", size="small", seed=0)


# ---------------------------------------------------------------------------------------------
# real 10x Multiome data laid out as users hold it (built from ../shared/data at test time)


def write_10x_folder(folder: Path, rna, atac, *, rna_values=None, atac_values=None, bare_chroms: bool = False,
                     gzipped: bool = True) -> Path:
    """Write a Cell Ranger ARC ``filtered_feature_bc_matrix/`` folder (features x cells MatrixMarket).

    ``features.tsv`` has the ARC columns ``id, name, feature_type, chrom, start, end``; gene rows
    carry their (hg38) coordinates when known. ``bare_chroms`` writes ``1`` instead of ``chr1``.
    """
    import gzip

    import numpy as np
    import pandas as pd
    import scipy.io
    import scipy.sparse as sp

    folder.mkdir(parents=True, exist_ok=True)
    Xr = sp.csr_matrix(rna.layers["counts"] if rna_values is None else rna_values)
    Xa = sp.csr_matrix(atac.layers["counts"] if atac_values is None else atac_values)
    M = sp.hstack([Xr, Xa]).T.tocoo()
    peaks = atac.var_names.str.extract(r"^(.+?)[\-:](\d+)-(\d+)$")
    chrom = peaks[0].str.replace("^chr", "", regex=True) if bare_chroms else peaks[0]
    gene_chrom = rna.var["chrom"].fillna("") if "chrom" in rna.var else pd.Series("", index=rna.var_names)
    feats = pd.DataFrame({
        "id": list(rna.var["gene_ids"]) + list(atac.var_names),
        "name": list(rna.var_names) + list(atac.var_names),
        "type": ["Gene Expression"] * rna.n_vars + ["Peaks"] * atac.n_vars,
        "chrom": list(gene_chrom) + list(chrom),
        "start": list(rna.var["start"] if "start" in rna.var else [""] * rna.n_vars) + list(peaks[1]),
        "end": list(rna.var["end"] if "end" in rna.var else [""] * rna.n_vars) + list(peaks[2]),
    })
    opener = (lambda p: gzip.open(p, "wb")) if gzipped else (lambda p: open(p, "wb"))
    sfx = ".gz" if gzipped else ""
    field = "integer" if np.all(np.mod(M.data, 1) == 0) else "real"
    with opener(folder / f"matrix.mtx{sfx}") as fh:
        scipy.io.mmwrite(fh, M, field=field)
    with opener(folder / f"barcodes.tsv{sfx}") as fh:
        fh.write(("\n".join(rna.obs_names) + "\n").encode())
    with opener(folder / f"features.tsv{sfx}") as fh:
        fh.write(feats.to_csv(sep="\t", header=False, index=False).encode())
    return folder


@pytest.fixture(scope="session")
def bmmc_pair(shared_data_dir):
    """The real bone-marrow multiome subset (500 cells, 21 cell types, 2 batches) as two AnnData."""
    import anndata as ad

    base = shared_data_dir / "bmmc500_openproblems"
    return ad.read_h5ad(base / "rna.h5ad"), ad.read_h5ad(base / "atac.h5ad")


@pytest.fixture(scope="session")
def tenx_folder(bmmc_pair, tmp_path_factory):
    """Real bone-marrow data as a gzipped 10x ARC ``filtered_feature_bc_matrix/`` folder of raw counts."""
    rna, atac = bmmc_pair
    return write_10x_folder(tmp_path_factory.mktemp("tenx") / "filtered_feature_bc_matrix", rna, atac)


@pytest.fixture(scope="session")
def tenx_folder_lognorm(bmmc_pair, tmp_path_factory):
    """The same real cells as a 10x folder of log-normalised values (log1p of counts per 10k), bare chrom names."""
    from attune_lib._access import lognormalize

    rna, atac = bmmc_pair
    return write_10x_folder(tmp_path_factory.mktemp("tenx_log") / "filtered_feature_bc_matrix", rna, atac,
                            rna_values=lognormalize(rna.layers["counts"]),
                            atac_values=lognormalize(atac.layers["counts"]), bare_chroms=True)


@pytest.fixture(scope="session")
def pbmc_tenx_folders(shared_data_dir, tmp_path_factory):
    """Real 10x PBMC multiome (muon's 1,000 cells) as gzipped ARC folders: raw counts and a log-normalised copy."""
    import mudata as md

    from attune_lib._access import lognormalize

    m = md.read_h5mu(shared_data_dir / "pbmc1k_muon" / "test_rna_atac.h5mu")
    rna, atac = m["rna"], m["atac"]
    base = tmp_path_factory.mktemp("pbmc_tenx")
    raw = write_10x_folder(base / "counts" / "filtered_feature_bc_matrix", rna, atac, rna_values=rna.X,
                           atac_values=atac.X)
    log = write_10x_folder(base / "log" / "filtered_feature_bc_matrix", rna, atac, rna_values=lognormalize(rna.X),
                           atac_values=lognormalize(atac.X))
    return raw, log
