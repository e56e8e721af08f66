"""Notebooks: committed without outputs, parameterised, and executed end to end under papermill."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
REQUIRED_PARAMS = ("dataset", "small", "seed", "figures_dir", "results_dir")


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found"
    assert (NB_DIR / "00_data_tour.ipynb") in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs", []) == [], f"{path.name}: cell {i} has outputs"
            assert cell.get("execution_count") is None, f"{path.name}: cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected exactly one cell tagged 'parameters'"
    src = tagged[0].source
    for name in REQUIRED_PARAMS:
        assert f"{name} =" in src, f"{path.name}: parameters cell lacks {name!r}"
    ns: dict = {}
    exec(compile(src, path.name, "exec"), ns)  # the defaults must be plain, runnable assignments
    assert ns["dataset"] == "simulated" and ns["small"] is True


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tmp_path):
    from attune_lib._runner import run_notebook

    figures = tmp_path / "figures"
    result = run_notebook(path, output_dir=tmp_path / "results", figures_dir=figures, small=True, seed=0,
                          progress_bar=False)
    assert result.ok, f"{path.name} failed: {result.error} (see {result.output})"
    executed = nbformat.read(result.output, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    pngs = sorted(figures.glob("*.png"))
    assert pngs, f"{path.name} wrote no figure to {figures}"
    assert all(p.stat().st_size > 5_000 for p in pngs), "a figure file is suspiciously small"
    assert (tmp_path / "results" / "runtimes.csv").exists()
