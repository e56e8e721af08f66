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


NOISE = ("it/s]", "s/it]", "%|", "TqdmWarning", "FutureWarning", "DeprecationWarning", "Traceback")


def _figure_index() -> dict[str, tuple[str, str]]:
    """figure id (``*`` a wildcard) -> (notebook stem, data), from the table in figures/README.md."""
    index = {}
    text = (NB_DIR.parent / "figures" / "README.md").read_text()
    for line in text.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[1].endswith(".ipynb"):
            index[cells[0]] = (cells[1].removesuffix(".ipynb"), cells[3])
    return index


def output_problems(executed) -> list[str]:
    """What an executed notebook shows that a reader should not see: errors, progress bars, warnings,
    reprs instead of figures, figure cells without an image."""
    problems = []
    for i, cell in enumerate(executed.cells):
        if cell.cell_type != "code":
            continue
        outs = cell.get("outputs", [])
        for o in outs:
            if o.get("output_type") == "error":
                problems.append(f"cell {i}: error {o.get('ename')}: {o.get('evalue')}")
            is_stream = o.get("output_type") == "stream"
            text = o.get("text", "") if is_stream else str(o.get("data", {}).get("text/plain", ""))
            if o.get("output_type") == "stream" and "\r" in text:
                problems.append(f"cell {i}: carriage returns (a progress bar) in its output")
            for word in NOISE:
                if word in text:
                    problems.append(f"cell {i}: {word!r} in its output: {text[:120]!r}")
            data = o.get("data", {})
            if "PosixPath(" in text:
                problems.append(f"cell {i}: shows a PosixPath repr")
            if "<Figure size" in text and "image/png" not in data:
                problems.append(f"cell {i}: shows a Figure repr instead of the figure")
        top_level_save = any(ln.startswith("al.pl.savefig(") for ln in cell.source.splitlines())
        if top_level_save and not any("image/png" in o.get("data", {}) for o in outs):
            problems.append(f"cell {i}: saves a figure but shows no image")
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tmp_path):
    from attune_lib._runner import CI_MARK, run_notebook

    figures = tmp_path / "figures"
    result = run_notebook(path, output_dir=tmp_path / "results", figures_dir=figures, tier="ci", seed=0,
                          progress_bar=False)
    assert result.ok, f"{path.name} failed: {result.error} (see {result.output})"
    executed = nbformat.read(result.output, as_version=4)
    problems = output_problems(executed)
    assert not problems, f"{path.name}:\n" + "\n".join(problems)
    pngs = sorted(figures.glob("*.png"))
    assert pngs, f"{path.name} wrote no figure to {figures}"
    assert all(p.stat().st_size > 5_000 for p in pngs), "a figure file is suspiciously small"
    from PIL import Image

    assert all(Image.open(p).info.get("Attune-Mark") == CI_MARK for p in pngs), "a ci figure lacks the CI mark"
    assert (tmp_path / "results" / "runtimes.csv").exists()
    # figures/README.md indexes exactly the figures this notebook writes (real-data rows: when cached)
    from fnmatch import fnmatch

    index = _figure_index()
    made = {p.stem for p in pngs}
    unlisted = {m for m in made if not any(fnmatch(m, fid) for fid in index)}
    assert not unlisted, f"{path.stem} writes figures missing from figures/README.md: {sorted(unlisted)}"
    wrong = {m for m in made for fid, (nb, _) in index.items() if fnmatch(m, fid) and nb != path.stem}
    assert not wrong, f"figures/README.md gives another notebook for {sorted(wrong)}"
    missing = {fid for fid, (nb, data) in index.items()
               if nb == path.stem and data == "simulator" and not any(fnmatch(m, fid) for m in made)}
    assert not missing, f"figures/README.md lists figures {path.stem} did not write: {sorted(missing)}"


def test_figure_index_names_existing_notebooks():
    index = _figure_index()
    assert index, "figures/README.md has no index"
    stems = {p.stem for p in NOTEBOOKS}
    named = {nb for nb, _ in index.values()}
    assert named <= stems, named - stems
