"""The command-line entry point and the papermill runner's argument handling."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from attune_lib._runner import list_notebooks, resolve_notebook
from attune_lib._utils import AttuneInputError
from attune_lib.cli import app

runner = CliRunner()


def test_notebooks_listed():
    res = runner.invoke(app, ["notebooks"])
    assert res.exit_code == 0, res.output
    assert "00_data_tour" in res.output.split()


def test_resolve_by_prefix_and_stem():
    assert resolve_notebook("00").stem == "00_data_tour"
    assert resolve_notebook("00_data_tour").name == "00_data_tour.ipynb"
    with pytest.raises(AttuneInputError, match="not found; available: .*00_data_tour"):
        resolve_notebook("no_such_notebook")


def test_run_unknown_notebook_fails_cleanly(tmp_path):
    res = runner.invoke(app, ["run", "no_such_notebook", "--output", str(tmp_path / "r"),
                              "--figures", str(tmp_path / "f")])
    assert res.exit_code == 2
    assert "no_such_notebook" in res.output
    assert not (tmp_path / "r" / "runtimes.csv").exists()


def test_datasets_lists_manifests_with_cache_state(shared_data_dir, monkeypatch):
    monkeypatch.setenv("ATTUNE_DATA_DIR", str(shared_data_dir))
    res = runner.invoke(app, ["datasets"])
    assert res.exit_code == 0, res.output
    assert str(shared_data_dir) in res.output
    line = next(ln for ln in res.output.splitlines() if ln.strip().startswith("pbmc1k_muon"))
    assert "True" in line


def test_fetch_unknown_dataset_names_it():
    res = runner.invoke(app, ["fetch", "no_such_dataset"])
    assert res.exit_code == 1
    assert "no_such_dataset" in res.output


def test_list_notebooks_finds_only_visible_notebooks_in_name_order(tmp_path, monkeypatch):
    for name in ("07_b.ipynb", "00_a.ipynb", ".hidden.ipynb", "notes.txt", "02_c.ipynb"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "01_nested.ipynb").write_text("{}")
    monkeypatch.setenv("ATTUNE_NOTEBOOK_DIR", str(tmp_path))
    assert [p.name for p in list_notebooks()] == ["00_a.ipynb", "02_c.ipynb", "07_b.ipynb"]
    assert resolve_notebook("02") == tmp_path / "02_c.ipynb"


def test_run_param_must_be_name_value(tmp_path):
    res = runner.invoke(app, ["run", "00", "-p", "data_path", "--output", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert "NAME=VALUE" in res.output and not (tmp_path / "r").exists()


def test_run_passes_params_to_the_notebook(monkeypatch, tmp_path):
    seen = {}

    def fake_run_notebooks(names, **kwargs):
        seen.update(kwargs, names=names)
        return []

    monkeypatch.setattr("attune_lib._runner.run_notebooks", fake_run_notebooks)
    res = runner.invoke(app, ["run", "00", "-p", "data_path=/my/10x/outs", "-p", "genome=hg19",
                              "--output", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert seen["names"] == ["00"] and seen["parameters"] == {"data_path": "/my/10x/outs", "genome": "hg19"}


def test_ambiguous_prefix_lists_the_candidates(tmp_path):
    with pytest.raises(AttuneInputError,
                       match="ambiguous.*02a_integration_benchmark.*02b_feature_and_dimension.*02c_prediction"):
        resolve_notebook("02")
    assert resolve_notebook("02c").stem == "02c_prediction"
    res = runner.invoke(app, ["run", "02", "--output", str(tmp_path / "r")])
    assert res.exit_code == 2 and "ambiguous" in res.output and not (tmp_path / "r").exists()


def test_notebook_ids_are_unique():
    ids = [nb.stem.split("_")[0] for nb in list_notebooks()]
    assert len(ids) == len(set(ids)), f"notebook ids repeat: {sorted(ids)}"
    for nb in list_notebooks():
        assert resolve_notebook(nb.stem.split("_")[0]) == nb


def test_dataset_is_checked_before_any_kernel_starts(tmp_path):
    from attune_lib._runner import notebook_datasets

    assert "pbmc10k_attune" in notebook_datasets("02a_integration_benchmark")
    assert "share_tac" not in notebook_datasets("02a_integration_benchmark")
    assert "share_tac" in notebook_datasets("04_gene_regulation_shift")
    res = runner.invoke(app, ["run", "all", "--dataset", "jaspar2022", "--output", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert res.output.startswith("error:") and "jaspar2022" in res.output and "simulated" in res.output
    assert not (tmp_path / "r").exists()


def test_unwritable_output_is_one_error_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    res = runner.invoke(app, ["run", "00", "--output", str(blocker / "sub")])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot write to --output")


def test_run_help_lists_notebooks_and_their_datasets():
    res = runner.invoke(app, ["run", "--help"])
    assert res.exit_code == 0
    assert "04_gene_regulation_shift" in res.output and "share_tac" in res.output


def _notebook(path, code: str):
    import nbformat

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("dataset = 'simulated'\nsmall = True\nseed = 0\nfigures_dir = '.'\n"
                                       "results_dir = '.'\nfail = False")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


@pytest.mark.slow
def test_failed_run_never_replaces_the_last_good_one(tmp_path, monkeypatch):
    from attune_lib._runner import run_notebook

    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    _notebook(nbdir / "01_toy.ipynb", "if fail:\n    raise RuntimeError('planted failure')\nprint('fine')")
    monkeypatch.setenv("ATTUNE_NOTEBOOK_DIR", str(nbdir))
    out = tmp_path / "out"
    good = run_notebook("01_toy", output_dir=out, figures_dir=tmp_path / "f", progress_bar=False)
    assert good.ok and (out / "01_toy.ipynb").exists()
    before = (out / "01_toy.ipynb").read_text()
    bad = run_notebook("01_toy", output_dir=out, figures_dir=tmp_path / "f", parameters={"fail": True},
                       progress_bar=False)
    assert not bad.ok and "planted failure" in bad.error
    assert (out / "01_toy.ipynb").read_text() == before  # the last good run is untouched
    assert bad.output == out / "01_toy.failed.ipynb" and bad.output.exists()
    assert not list(out.glob(".*running*"))
    again = run_notebook("01_toy", output_dir=out, figures_dir=tmp_path / "f", progress_bar=False)
    assert again.ok and not (out / "01_toy.failed.ipynb").exists()
