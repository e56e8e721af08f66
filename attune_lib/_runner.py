"""Execute the figure notebooks with papermill.

Each notebook has a cell tagged ``parameters``; the runner injects ``dataset``, ``small``, ``seed``,
``figures_dir`` and ``results_dir`` (absolute paths) and writes the executed copy to the output folder.
Runtimes are appended to ``<output>/runtimes.csv``.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ._utils import AttuneInputError, progress

__all__ = ["notebooks_dir", "list_notebooks", "resolve_notebook", "run_notebook", "run_notebooks", "RunResult"]


def notebooks_dir() -> Path:
    """The folder of figure notebooks (``ATTUNE_NOTEBOOK_DIR`` or the repository's ``notebooks/``)."""
    env = os.environ.get("ATTUNE_NOTEBOOK_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "notebooks"
    if not path.is_dir():
        raise AttuneInputError(
            f"notebook folder {path} not found; set ATTUNE_NOTEBOOK_DIR to the repository's notebooks/ folder"
        )
    return path


def list_notebooks() -> list[Path]:
    """All figure notebooks, in name order."""
    return sorted(p for p in notebooks_dir().glob("*.ipynb") if not p.name.startswith("."))


def resolve_notebook(name: str) -> Path:
    """Find a notebook by file name, stem, or number prefix (``"00"``, ``"00_data_tour"``)."""
    path = Path(name)
    if path.suffix == ".ipynb" and path.exists():
        return path
    candidates = list_notebooks()
    for nb in candidates:
        if name in (nb.name, nb.stem) or nb.stem.split("_", 1)[0] == name:
            return nb
    raise AttuneInputError(
        f"notebook {name!r} not found; available: {', '.join(nb.stem for nb in candidates)}"
    )


@dataclass
class RunResult:
    notebook: str
    output: Path
    seconds: float
    ok: bool
    error: str | None = None


def run_notebook(
    notebook: str | os.PathLike,
    *,
    output_dir: str | os.PathLike = "results",
    figures_dir: str | os.PathLike = "figures",
    dataset: str = "simulated",
    small: bool = False,
    seed: int = 0,
    parameters: dict | None = None,
    kernel_name: str | None = None,
    progress_bar: bool = True,
) -> RunResult:
    """Execute one notebook with papermill.

    Parameters
    ----------
    notebook
        Path, file name, stem or number prefix of a notebook in :func:`notebooks_dir`.
    output_dir
        Folder for the executed copy (``<output_dir>/<stem>.ipynb``) and ``runtimes.csv``.
    figures_dir
        Folder the notebook writes its figures to.
    dataset, small, seed
        Injected into the notebook's ``parameters`` cell.
    parameters
        Further parameters to inject.
    kernel_name
        Jupyter kernel; default: the kernel in the notebook's metadata.
    """
    import papermill as pm

    nb_path = resolve_notebook(str(notebook))
    out_dir = Path(output_dir).resolve()
    fig_dir = Path(figures_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    fig_dir.mkdir(parents=True, exist_ok=True)
    params = {
        "dataset": dataset,
        "small": bool(small),
        "seed": int(seed),
        "figures_dir": str(fig_dir),
        "results_dir": str(out_dir),
        **(parameters or {}),
    }
    out_path = out_dir / nb_path.name
    t0 = time.perf_counter()
    ok, err = True, None
    try:
        pm.execute_notebook(
            str(nb_path),
            str(out_path),
            parameters=params,
            cwd=str(nb_path.parent),
            kernel_name=kernel_name,
            progress_bar=progress_bar,
        )
    except pm.PapermillExecutionError as exc:  # the executed copy keeps the failing cell for debugging
        ok, err = False, f"{exc.ename}: {exc.evalue}"
    seconds = time.perf_counter() - t0
    _record_runtime(out_dir, nb_path.stem, dataset, small, seed, seconds, ok)
    return RunResult(nb_path.stem, out_path, seconds, ok, err)


def run_notebooks(names: list[str] | None = None, **kwargs) -> list[RunResult]:
    """Execute several notebooks (default: all) in order; see :func:`run_notebook`."""
    paths = [resolve_notebook(n) for n in names] if names else list_notebooks()
    results = []
    bar = progress(paths, desc="notebooks", unit="nb")
    for nb in bar:
        bar.set_postfix_str(nb.stem)
        results.append(run_notebook(nb, progress_bar=False, **kwargs))
    return results


def _record_runtime(out_dir: Path, stem: str, dataset: str, small: bool, seed: int, seconds: float, ok: bool):
    path = out_dir / "runtimes.csv"
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(["notebook", "dataset", "small", "seed", "seconds", "ok", "finished"])
        w.writerow([stem, dataset, small, seed, f"{seconds:.1f}", ok, time.strftime("%Y-%m-%dT%H:%M:%S")])
