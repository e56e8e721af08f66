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

__all__ = ["notebooks_dir", "list_notebooks", "resolve_notebook", "notebook_datasets", "run_notebook",
           "run_notebooks", "RunResult"]


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
    """Find a notebook by file name, stem, or a unique prefix (``"00"``, ``"00_data_tour"``, ``"02_pred"``).

    Raises
    ------
    AttuneInputError
        When nothing matches, or when a prefix matches several notebooks (the candidates are listed).
    """
    path = Path(name)
    if path.suffix == ".ipynb" and path.exists():
        return path
    candidates = list_notebooks()
    exact = [nb for nb in candidates if name in (nb.name, nb.stem)]
    if exact:
        return exact[0]
    matches = [nb for nb in candidates if nb.stem.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise AttuneInputError(
            f"notebook {name!r} is ambiguous: it matches {', '.join(nb.stem for nb in matches)}; give more of the name")
    raise AttuneInputError(
        f"notebook {name!r} not found; available: {', '.join(nb.stem for nb in candidates)}"
    )


def notebook_datasets(notebook: str | os.PathLike) -> list[str]:
    """Dataset names a notebook accepts: the simulator's, and every dataset whose manifest lists the notebook.

    A path to the user's own data (any layout :func:`attune_lib.datasets.read` recognises) is accepted too.

    Parameters
    ----------
    notebook
        Notebook path, name, stem or unique prefix.
    """
    from .datasets import get_manifest, list_datasets

    nb = resolve_notebook(str(notebook))
    names = []
    table = list_datasets()
    for name in table.loc[table["loadable"], "name"]:
        if name.startswith("simulated"):
            names.append(name)
            continue
        try:
            listed = get_manifest(name).notebooks or []
        except AttuneInputError:
            continue
        if nb.name in listed or nb.stem in listed:
            names.append(name)
    return names


def _check_dataset(nb: Path, dataset: str) -> None:
    if Path(dataset).expanduser().exists():
        return
    accepted = notebook_datasets(nb)
    if dataset not in accepted:
        raise AttuneInputError(
            f"--dataset {dataset!r} is not accepted by {nb.stem}; choose one of {', '.join(accepted)} "
            "(or give the path of your own data)")


def _writable_dir(path: Path, what: str) -> Path:
    """Create ``path`` and check that a file can be written there; one clear error otherwise."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise AttuneInputError(f"cannot write to {what} {path}: {exc.strerror or exc}") from None
    return path


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
        Folder for the executed copy (``<output_dir>/<stem>.ipynb``, written only when the run succeeds;
        a failed run is kept as ``<stem>.failed.ipynb``) and ``runtimes.csv``.
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
    _check_dataset(nb_path, dataset)
    out_dir = _writable_dir(Path(output_dir).resolve(), "--output")
    fig_dir = _writable_dir(Path(figures_dir).resolve(), "--figures")
    params = {
        "dataset": dataset,
        "small": bool(small),
        "seed": int(seed),
        "figures_dir": str(fig_dir),
        "results_dir": str(out_dir),
        **(parameters or {}),
    }
    out_path = out_dir / nb_path.name
    # executed into a temporary file; moved into place only on success, so a failed run never
    # replaces the last good executed notebook (it is kept beside it as NAME.failed.ipynb)
    running = out_dir / f".{nb_path.stem}.running.ipynb"
    t0 = time.perf_counter()
    ok, err = True, None
    try:
        pm.execute_notebook(
            str(nb_path),
            str(running),
            parameters=params,
            cwd=str(nb_path.parent),
            kernel_name=kernel_name,
            progress_bar=progress_bar,
        )
    except pm.PapermillExecutionError as exc:  # the failed copy keeps the failing cell for debugging
        ok, err = False, f"{exc.ename}: {exc.evalue}"
    except BaseException:
        running.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - t0
    if ok:
        os.replace(running, out_path)
        (out_dir / f"{nb_path.stem}.failed.ipynb").unlink(missing_ok=True)
    else:
        out_path = out_dir / f"{nb_path.stem}.failed.ipynb"
        os.replace(running, out_path)
    _record_runtime(out_dir, nb_path.stem, dataset, small, seed, seconds, ok)
    return RunResult(nb_path.stem, out_path, seconds, ok, err)


def run_notebooks(names: list[str] | None = None, **kwargs) -> list[RunResult]:
    """Execute several notebooks (default: all) in order; see :func:`run_notebook`.

    Every notebook name, the dataset and the output folders are checked before the first kernel starts.

    Parameters
    ----------
    names
        Notebook names, stems or unique prefixes; None runs them all.
    **kwargs
        Passed to :func:`run_notebook`.
    """
    paths = [resolve_notebook(n) for n in names] if names else list_notebooks()
    dataset = kwargs.get("dataset", "simulated")
    for nb in paths:
        _check_dataset(nb, dataset)
    for key, what in (("output_dir", "--output"), ("figures_dir", "--figures")):
        _writable_dir(Path(kwargs.get(key, "results" if key == "output_dir" else "figures")).resolve(), what)
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
