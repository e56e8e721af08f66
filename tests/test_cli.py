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
