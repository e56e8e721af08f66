"""Execute the figure notebooks with papermill.

Each notebook has a cell tagged ``parameters``; the runner injects ``dataset``, ``tier``, ``seed``,
``figures_dir`` and ``results_dir`` (absolute paths) and writes the executed copy to the output folder.

What the runner adds around papermill:

- **progress** on the runner's terminal (stderr): one line per notebook and per code cell, with the
  elapsed time and an ETA from the last recorded runtimes (``<output>/runtimes.csv`` per notebook,
  ``<output>/cell_runtimes.json`` per cell). Training bars and library logs inside the kernel go to
  the same terminal (``ATTUNE_PROGRESS=terminal``), not into the notebook's outputs.
- **inline figures**: the kernel runs matplotlib's inline backend, so every figure a cell draws is an
  image output of the executed notebook.
- **the cache of finished work** (:mod:`attune_lib.cache`) in ``<output>/cache`` (or
  ``$ATTUNE_CACHE_DIR``); ``force=True`` recomputes it.
- **resume**: with ``resume=True`` a notebook whose last run succeeded with the same parameters,
  notebook source and code fingerprint is skipped.
- **the CI mark**: figures written by a ``tier="ci"`` run are stamped "CI smoke run — not a result".
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ._utils import AttuneInputError
from .recipes import TIERS, resolve_tier

__all__ = ["notebooks_dir", "list_notebooks", "resolve_notebook", "notebook_datasets", "run_notebook",
           "run_notebooks", "RunResult", "CI_MARK", "mark_ci_figure", "expected_seconds"]

#: the mark stamped on every figure of a ``ci`` run
CI_MARK = "CI smoke run \u2014 not a result"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


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
    """What one notebook run gave: its stem, the executed copy, the seconds it took and whether it ran through.

    Parameters
    ----------
    notebook
        Notebook stem.
    output
        The executed notebook (``NAME.failed.ipynb`` for a failed run).
    seconds
        Wall time of the run (0 when skipped).
    ok
        Whether every cell ran.
    error
        ``"Name: message"`` of the failing cell.
    skipped
        True when ``resume`` found the same run already finished.
    """

    notebook: str
    output: Path
    seconds: float
    ok: bool
    error: str | None = None
    skipped: bool = False


# --------------------------------------------------------------------------------------------------
# recorded runtimes and the ETA
# --------------------------------------------------------------------------------------------------
def expected_seconds(output_dir: str | os.PathLike, notebook: str, tier: str) -> float | None:
    """The last successful runtime of ``notebook`` at ``tier`` in ``<output_dir>/runtimes.csv`` (None: never run).

    Parameters
    ----------
    output_dir
        The runner's output folder.
    notebook
        Notebook stem.
    tier
        Recipe tier.
    """
    path = Path(output_dir) / "runtimes.csv"
    if not path.exists():
        return None
    last = None
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            row_tier = row.get("tier") or ("ci" if row.get("small") == "True" else "paper")
            if row.get("notebook") == notebook and row_tier == tier and row.get("ok") == "True":
                try:
                    last = float(row["seconds"])
                except (TypeError, ValueError):
                    continue
    return last


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _cell_label(source: str) -> str:
    """A short name for a code cell: its first comment, else its first line of code."""
    lines = [ln.strip() for ln in source.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("#"):
            return ln.lstrip("# ")[:60]
    return (lines[0] if lines else "(empty)")[:60]


def _cell_key(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:12]


class _CellTimes:
    """Per-cell runtimes of each notebook and tier, kept in ``<output>/cell_runtimes.json``."""

    def __init__(self, out_dir: Path, stem: str, tier: str):
        self.path = out_dir / "cell_runtimes.json"
        self.slot = f"{stem}/{tier}"
        try:
            self.data = json.loads(self.path.read_text()) if self.path.exists() else {}
        except (OSError, ValueError):
            self.data = {}
        self.old = dict(self.data.get(self.slot, {}))
        self.new: dict[str, float] = {}

    def expected(self, source: str) -> float | None:
        return self.old.get(_cell_key(source))

    def record(self, source: str, seconds: float) -> None:
        self.new[_cell_key(source)] = round(seconds, 2)

    def save(self) -> None:
        self.data[self.slot] = {**self.old, **self.new}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


def _progress_engine():
    """A papermill engine that reports each code cell on stderr: ``[nb] 3/12 label ... done in 4s (ETA 1m02s)``."""
    from papermill.engines import NBClientEngine

    class ProgressEngine(NBClientEngine):
        reporter = None  # set per run

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            rep = cls.reporter
            if rep is not None:
                rep.bind(nb_man.nb.cells)  # the parameterised notebook (papermill added the injected cell)
                start, complete = nb_man.cell_start, nb_man.cell_complete

                def cell_start(cell, cell_index=None, **kw):
                    rep.start(cell, cell_index)
                    return start(cell, cell_index, **kw)

                def cell_complete(cell, cell_index=None, **kw):
                    rep.complete(cell, cell_index)
                    return complete(cell, cell_index, **kw)

                nb_man.cell_start, nb_man.cell_complete = cell_start, cell_complete
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    return ProgressEngine


class _Reporter:
    """Prints one line when a code cell starts and one when it ends (its time, the notebook's ETA)."""

    def __init__(self, stem: str, cells, times: _CellTimes, prefix: str):
        self.stem, self.times, self.prefix = stem, times, prefix
        self.bind(cells)
        self.t0 = self.t_cell = time.perf_counter()

    def bind(self, cells) -> None:
        self.cells = cells
        self.code = [i for i, c in enumerate(cells) if c.cell_type == "code" and c.source.strip()]

    def start(self, cell, index):
        if index not in self.code:
            return
        self.t_cell = time.perf_counter()
        exp = self.times.expected(cell.source)
        _say(f"{self.prefix}[{self.stem}] cell {self.code.index(index) + 1}/{len(self.code)}: "
             f"{_cell_label(cell.source)}" + (f" (last run {_fmt(exp)})" if exp is not None else ""))

    def complete(self, cell, index):
        if index not in self.code:
            return
        dt = time.perf_counter() - self.t_cell
        self.times.record(cell.source, dt)
        rest = [self.times.expected(self.cells[i].source) for i in self.code if i > index]
        eta = "" if not rest else (", ETA ?" if any(r is None for r in rest) else f", ETA {_fmt(sum(rest))}")
        _say(f"{self.prefix}[{self.stem}]   done in {_fmt(dt)}; elapsed {_fmt(time.perf_counter() - self.t0)}{eta}")


# --------------------------------------------------------------------------------------------------
# the CI mark
# --------------------------------------------------------------------------------------------------
def mark_ci_figure(path: str | os.PathLike, text: str = CI_MARK) -> None:
    """Stamp a PNG with a red banner ``text`` across its top and record it in the PNG's metadata.

    The file is rewritten atomically. A PNG that already carries the mark is left as it is.

    Parameters
    ----------
    path
        A PNG file.
    text
        The mark.
    """
    from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

    path = Path(path)
    with Image.open(path) as im:
        if im.info.get("Attune-Mark") == text:
            return
        im = im.convert("RGBA")
    w, h = im.size
    band = max(18, min(60, h // 12))
    font = ImageFont.load_default(size=int(band * 0.7))
    canvas = Image.new("RGBA", (w, h + band), (255, 255, 255, 255))
    canvas.paste(im, (0, band))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([0, 0, w, band], fill=(200, 30, 30, 255))
    draw.text((6, band * 0.12), text, fill=(255, 255, 255, 255), font=font)
    meta = PngImagePlugin.PngInfo()
    meta.add_text("Attune-Mark", text)
    tmp = path.with_name(f".{path.stem}.mark.png")
    canvas.convert("RGB").save(tmp, pnginfo=meta, optimize=True)
    os.replace(tmp, path)


def _pngs(folder: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime_ns for p in folder.glob("*.png")}


# --------------------------------------------------------------------------------------------------
# resume
# --------------------------------------------------------------------------------------------------
def _run_signature(nb_path: Path, params: dict) -> str:
    from .cache import code_fingerprint

    nb_text = json.dumps([c.get("source") for c in json.loads(nb_path.read_text())["cells"]])
    payload = json.dumps({"params": params, "notebook": nb_text, "code": code_fingerprint()}, sort_keys=True,
                         default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


@contextlib.contextmanager
def _kernel_env(**values: str | None):
    """Set environment variables for the kernel papermill starts (it inherits this process's environment)."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_notebook(
    notebook: str | os.PathLike,
    *,
    output_dir: str | os.PathLike = "results",
    figures_dir: str | os.PathLike = "figures",
    dataset: str = "simulated",
    tier: str | None = None,
    small: bool | None = None,
    seed: int = 0,
    parameters: dict | None = None,
    kernel_name: str | None = None,
    progress_bar: bool = True,
    force: bool = False,
    resume: bool = False,
    prefix: str = "",
) -> RunResult:
    """Execute one notebook with papermill.

    Parameters
    ----------
    notebook
        Path, file name, stem or id prefix of a notebook in :func:`notebooks_dir`.
    output_dir
        Folder for the executed copy (``<output_dir>/<stem>.ipynb``, written only when the run succeeds;
        a failed run is kept as ``<stem>.failed.ipynb``), ``runtimes.csv``, ``cell_runtimes.json`` and
        the cache (``<output_dir>/cache`` unless ``ATTUNE_CACHE_DIR`` is set).
    figures_dir
        Folder the notebook writes its figures to.
    dataset, seed
        Injected into the notebook's ``parameters`` cell.
    tier
        Recipe tier (``"ci"``, ``"standard"``, ``"paper"``; see :mod:`attune_lib.recipes`); None:
        ``"standard"``, or what ``small`` stands for.
    small
        Deprecated alias: True is ``tier="ci"``, False ``tier="paper"``.
    parameters
        Further parameters to inject.
    kernel_name
        Jupyter kernel; default: the kernel in the notebook's metadata.
    progress_bar
        Report each cell (start, time, ETA) on stderr.
    force
        Recompute cached work (``ATTUNE_CACHE_FORCE=1`` in the kernel).
    resume
        Skip the notebook when its last run succeeded with the same parameters, source and code.
    prefix
        Text before each progress line (e.g. ``"[2/10] "``).
    """
    import nbformat
    import papermill as pm
    from papermill.engines import papermill_engines

    tier = resolve_tier(tier, small=small)
    nb_path = resolve_notebook(str(notebook))
    _check_dataset(nb_path, dataset)
    out_dir = _writable_dir(Path(output_dir).resolve(), "--output")
    fig_dir = _writable_dir(Path(figures_dir).resolve(), "--figures")
    params = {
        "dataset": dataset,
        "tier": tier,
        "seed": int(seed),
        "figures_dir": str(fig_dir),
        "results_dir": str(out_dir),
        "force": bool(force),
        **(parameters or {}),
    }
    if _declares(nb_path, "small") and "small" not in (parameters or {}):  # a notebook still on the old flag
        params["small"] = tier == "ci"
    out_path = out_dir / nb_path.name
    done_path = out_dir / ".done" / f"{nb_path.stem}.json"
    signature = _run_signature(nb_path, params)
    if resume and not force and out_path.exists() and done_path.exists():
        try:
            done = json.loads(done_path.read_text())
        except (OSError, ValueError):
            done = {}
        if done.get("signature") == signature:
            if progress_bar:
                _say(f"{prefix}[{nb_path.stem}] finished before with the same settings: skipped (--force reruns it)")
            return RunResult(nb_path.stem, out_path, 0.0, True, skipped=True)
    # executed into a temporary file; moved into place only on success, so a failed run never
    # replaces the last good executed notebook (it is kept beside it as NAME.failed.ipynb)
    running = out_dir / f".{nb_path.stem}.running.ipynb"
    times = _CellTimes(out_dir, nb_path.stem, tier)
    engine = _progress_engine()
    if progress_bar:
        nb = nbformat.read(nb_path, as_version=4)
        engine.reporter = _Reporter(nb_path.stem, nb.cells, times, prefix)
        exp = expected_seconds(out_dir, nb_path.stem, tier)
        _say(f"{prefix}[{nb_path.stem}] tier {tier}, dataset {dataset}, seed {seed}"
             + (f"; last run {_fmt(exp)}" if exp is not None else ""))
    else:
        engine.reporter = _SilentTimes(times)
    papermill_engines.register("attune-progress", engine)
    before = _pngs(fig_dir)
    t0 = time.perf_counter()
    ok, err = True, None
    env = {"MPLBACKEND": INLINE_BACKEND, "ATTUNE_PROGRESS": "terminal",
           "ATTUNE_CACHE_FORCE": "1" if force else None,
           # tqdm.auto's note that widgets are missing (bars go to the terminal here) and mudata's notice
           # of a future default are not for the reader of the notebook
           "PYTHONWARNINGS": "ignore:IProgress not found,ignore:From 0.4 .update():FutureWarning"}
    try:
        with _kernel_env(**env):
            pm.execute_notebook(
                str(nb_path),
                str(running),
                parameters=params,
                cwd=str(nb_path.parent),
                kernel_name=kernel_name,
                progress_bar=False,
                engine_name="attune-progress",
                # fd-level output of the kernel (tqdm bars, C libraries) stays on the runner's terminal
                extra_arguments=["--IPKernelApp.capture_fd_output=False"],
            )
    except pm.PapermillExecutionError as exc:  # the failed copy keeps the failing cell for debugging
        ok, err = False, f"{exc.ename}: {exc.evalue}"
    except BaseException:
        running.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - t0
    if tier == "ci":
        after = _pngs(fig_dir)
        for png, mtime in after.items():
            if before.get(png) != mtime:
                mark_ci_figure(png)
    if ok:
        os.replace(running, out_path)
        (out_dir / f"{nb_path.stem}.failed.ipynb").unlink(missing_ok=True)
        done_path.parent.mkdir(exist_ok=True)
        done_path.write_text(json.dumps({"signature": signature, "seconds": round(seconds, 1)}))
    else:
        out_path = out_dir / f"{nb_path.stem}.failed.ipynb"
        os.replace(running, out_path)
        done_path.unlink(missing_ok=True)
    times.save()
    _record_runtime(out_dir, nb_path.stem, dataset, tier, seed, seconds, ok)
    if progress_bar:
        _say(f"{prefix}[{nb_path.stem}] {'ok' if ok else 'FAILED: ' + str(err)} in {_fmt(seconds)}")
    return RunResult(nb_path.stem, out_path, seconds, ok, err)


def _declares(nb_path: Path, name: str) -> bool:
    """Whether the notebook's ``parameters`` cell assigns ``name``."""
    import re

    for cell in json.loads(nb_path.read_text()).get("cells", []):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            src = "".join(cell.get("source", ""))
            return re.search(rf"^{re.escape(name)}\s*=", src, flags=re.M) is not None
    return False


class _SilentTimes:
    """Records cell runtimes without printing."""

    def __init__(self, times: _CellTimes):
        self.times = times
        self.t = time.perf_counter()

    def bind(self, cells) -> None:
        pass

    def start(self, cell, index):
        self.t = time.perf_counter()

    def complete(self, cell, index):
        if cell.cell_type == "code" and cell.source.strip():
            self.times.record(cell.source, time.perf_counter() - self.t)


def run_notebooks(names: list[str] | None = None, **kwargs) -> list[RunResult]:
    """Execute several notebooks (default: all) in order; see :func:`run_notebook`.

    Every notebook name, the dataset, the tier and the output folders are checked before the first
    kernel starts. Progress (notebook i of n, elapsed, ETA from the last recorded runtimes) goes to stderr.

    Parameters
    ----------
    names
        Notebook names, stems or unique prefixes; None runs them all.
    **kwargs
        Passed to :func:`run_notebook`.
    """
    paths = [resolve_notebook(n) for n in names] if names else list_notebooks()
    tier = resolve_tier(kwargs.pop("tier", None), small=kwargs.pop("small", None))
    if tier not in TIERS:  # pragma: no cover - resolve_tier raises first
        raise AttuneInputError(f"unknown tier {tier!r}")
    dataset = kwargs.get("dataset", "simulated")
    for nb in paths:
        _check_dataset(nb, dataset)
    for key, what in (("output_dir", "--output"), ("figures_dir", "--figures")):
        _writable_dir(Path(kwargs.get(key, "results" if key == "output_dir" else "figures")).resolve(), what)
    out_dir = Path(kwargs.get("output_dir", "results")).resolve()
    show = kwargs.get("progress_bar", True)
    expected = {nb.stem: expected_seconds(out_dir, nb.stem, tier) for nb in paths}
    results = []
    t0 = time.perf_counter()
    for i, nb in enumerate(paths):
        rest = [expected[p.stem] for p in paths[i:]]
        eta = None if any(r is None for r in rest) else sum(rest)
        if show and len(paths) > 1:
            _say(f"== notebook {i + 1}/{len(paths)}: {nb.stem}; elapsed {_fmt(time.perf_counter() - t0)}"
                 + (f", ETA {_fmt(eta)}" if eta is not None else ""))
        results.append(run_notebook(nb, tier=tier, prefix=f"[{i + 1}/{len(paths)}] " if len(paths) > 1 else "",
                                    **kwargs))
    return results


def _record_runtime(out_dir: Path, stem: str, dataset: str, tier: str, seed: int, seconds: float, ok: bool):
    path = out_dir / "runtimes.csv"
    header = ["notebook", "dataset", "tier", "seed", "seconds", "ok", "finished"]
    if path.exists():
        with open(path, newline="") as fh:
            first = next(csv.reader(fh), [])
        if first != header:  # an older layout (small instead of tier): keep it beside, start afresh
            os.replace(path, path.with_name("runtimes.old.csv"))
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(header)
        w.writerow([stem, dataset, tier, seed, f"{seconds:.1f}", ok, time.strftime("%Y-%m-%dT%H:%M:%S")])
