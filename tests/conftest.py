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
