"""The ``attune-companion`` command: list and fetch datasets, run the figure notebooks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="attune-companion: datasets and figure notebooks.", no_args_is_help=True,
                  pretty_exceptions_enable=False)


@app.command("datasets")
def datasets_cmd() -> None:
    """List the datasets `run --dataset` accepts (and the notebooks that take each), then the supporting files."""
    from ._runner import list_notebooks, notebook_datasets
    from .datasets import cache_dir, list_datasets

    df = list_datasets()
    takers: dict[str, list[str]] = {}
    for nb in list_notebooks():
        for name in notebook_datasets(nb):
            takers.setdefault(name, []).append(nb.stem.split("_")[0])
    typer.echo(f"cache: {cache_dir()}")
    typer.echo("\nDatasets for `run --dataset NAME` (or give the path of your own data):")
    cols = ["name", "title", "organism", "genome", "cached"]
    runnable = df[df["name"].isin(list(takers))][cols].copy()
    runnable["notebooks"] = [" ".join(takers[n]) for n in runnable["name"]]
    typer.echo(runnable.to_string(index=False))
    other = df[~df["name"].isin(list(takers))][cols]
    if len(other):
        typer.echo("\nSupporting files the notebooks read themselves (fetch them; not a --dataset value):")
        typer.echo(other.to_string(index=False))


@app.command("fetch")
def fetch_cmd(
    name: Annotated[str, typer.Argument(help="dataset name, as listed by `attune-companion datasets`")],
    file: Annotated[list[str] | None, typer.Option("--file", help="only these files of the dataset")] = None,
) -> None:
    """Download (or verify in the cache) the files of one dataset, checking checksums."""
    from ._utils import AttuneInputError
    from .datasets import fetch

    try:
        paths = fetch(name, files=file or None)
    except AttuneInputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for fname, path in paths.items():
        typer.echo(f"{fname}\t{path}")


@app.command("notebooks")
def notebooks_cmd() -> None:
    """List the figure notebooks and the datasets each accepts."""
    from ._runner import list_notebooks, notebook_datasets

    for nb in list_notebooks():
        typer.echo(f"{nb.stem}\t{', '.join(notebook_datasets(nb))}")


def _run_epilog() -> str:
    """The notebooks and the datasets each accepts, for ``run --help`` (a path to one's own data works too)."""
    from ._runner import list_notebooks, notebook_datasets
    from ._utils import AttuneInputError

    try:
        lines = [f"{nb.stem}: {', '.join(notebook_datasets(nb))}" for nb in list_notebooks()]
    except AttuneInputError as exc:  # pragma: no cover - no notebook folder
        return str(exc)
    return "Notebooks and the --dataset values each accepts (or a path to your own data):\n\n" + "\n\n".join(lines)


@app.command("run", epilog=_run_epilog())
def run_cmd(
    notebook: Annotated[str, typer.Argument(help="'all', or a notebook stem or id (00, 02a, 03b, S9, ...)")] = "all",
    dataset: Annotated[str, typer.Option(help="dataset parameter passed to the notebooks")] = "simulated",
    tier: Annotated[str | None, typer.Option(
        help="recipe tier: ci (test-suite smoke run), standard (converged models, `make figures`) or paper "
             "(the paper's settings); default standard")] = None,
    small: Annotated[bool | None, typer.Option(
        "--small/--full", help="deprecated: --small is --tier ci, --full is --tier paper")] = None,
    seed: Annotated[int, typer.Option(help="random seed passed to the notebooks")] = 0,
    output: Annotated[Path, typer.Option(
        help="folder for executed notebooks, runtimes and the cache")] = Path("results"),
    figures: Annotated[Path, typer.Option(help="folder the figures are written to")] = Path("figures"),
    force: Annotated[bool, typer.Option("--force", help="recompute cached models and tables")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="skip notebooks whose last run finished with the same settings and code")] = False,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="extra notebook parameter NAME=VALUE (repeatable), e.g. -p data_path=/my/10x/folder "
                              "-p genome=hg19")] = None,
) -> None:
    """Execute figure notebooks with papermill (progress, cell by cell, on stderr)."""
    import warnings

    from ._runner import run_notebooks
    from ._utils import AttuneInputError
    from .recipes import resolve_tier

    names = None if notebook == "all" else [notebook]
    extra = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            typer.echo(f"error: --param {item!r}: expected NAME=VALUE, e.g. data_path=/my/folder", err=True)
            raise typer.Exit(2)
        extra[key.strip()] = value
    try:
        if small is not None:
            typer.echo(f"warning: {'--small' if small else '--full'} is deprecated; use "
                       f"--tier {'ci' if small else 'paper'}", err=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            tier = resolve_tier(tier, small=small)
        results = run_notebooks(names, output_dir=output, figures_dir=figures, dataset=dataset,
                                tier=tier, seed=seed, parameters=extra or None, force=force, resume=resume)
    except AttuneInputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    failed = [r for r in results if not r.ok]
    for r in results:
        status = "skipped (finished before)" if r.skipped else ("ok" if r.ok else f"FAILED ({r.error})")
        typer.echo(f"{r.notebook:32s} {r.seconds:8.1f} s  {status}  -> {r.output}")
    if failed:
        raise typer.Exit(1)


@app.command("book")
def book_cmd(
    output: Annotated[Path, typer.Option(help="folder of the site (index.html and one page per notebook)")] = Path(
        "book"),
    results: Annotated[Path, typer.Option(help="executed notebooks: reused when fresh, else run there")] = Path(
        "results"),
    tier: Annotated[str, typer.Option(help="ci (small settings), standard or paper")] = "ci",
    solutions: Annotated[bool, typer.Option("--solutions/--no-solutions",
                                            help="show the exercises' solutions")] = False,
    notebook: Annotated[list[str] | None, typer.Option(help="only these notebooks (repeatable)")] = None,
) -> None:
    """Build the course edition: a static site of the executed notebooks with a landing page."""
    from ._book import build_book
    from ._utils import AttuneInputError

    try:
        book = build_book(output, results_dir=results, tier=tier, solutions=solutions, notebooks=notebook or None)
    except AttuneInputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"book: {book.index} ({len(book.pages)} pages; reused {len(book.reused)}, "
               f"executed {len(book.executed)})")
    for stem, err in book.failed.items():
        typer.echo(f"FAILED {stem}: {err}", err=True)
    if book.failed:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
