"""The ``attune-companion`` command: list and fetch datasets, run the figure notebooks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="attune-companion: datasets and figure notebooks.", no_args_is_help=True,
                  pretty_exceptions_enable=False)


@app.command("datasets")
def datasets_cmd() -> None:
    """List the datasets in data_manifests/ and whether each is in the cache."""
    from .datasets import cache_dir, list_datasets

    df = list_datasets()
    typer.echo(f"cache: {cache_dir()}")
    typer.echo(df.to_string(index=False))


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
    notebook: Annotated[str, typer.Argument(help="'all', or a notebook stem or unique prefix")] = "all",
    dataset: Annotated[str, typer.Option(help="dataset parameter passed to the notebooks")] = "simulated",
    small: Annotated[bool, typer.Option("--small/--full", help="small CI-sized settings")] = False,
    seed: Annotated[int, typer.Option(help="random seed passed to the notebooks")] = 0,
    output: Annotated[Path, typer.Option(help="folder for executed notebooks")] = Path("results"),
    figures: Annotated[Path, typer.Option(help="folder the figures are written to")] = Path("figures"),
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="extra notebook parameter NAME=VALUE (repeatable), e.g. -p data_path=/my/10x/folder "
                              "-p genome=hg19")] = None,
) -> None:
    """Execute figure notebooks with papermill."""
    from ._runner import run_notebooks
    from ._utils import AttuneInputError

    names = None if notebook == "all" else [notebook]
    extra = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            typer.echo(f"error: --param {item!r}: expected NAME=VALUE, e.g. data_path=/my/folder", err=True)
            raise typer.Exit(2)
        extra[key.strip()] = value
    try:
        results = run_notebooks(names, output_dir=output, figures_dir=figures, dataset=dataset,
                                small=small, seed=seed, parameters=extra or None)
    except AttuneInputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    failed = [r for r in results if not r.ok]
    for r in results:
        status = "ok" if r.ok else f"FAILED ({r.error})"
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
