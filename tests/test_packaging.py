"""Project-level checks: pins agree across files, the CI script calls the README's test command."""

from __future__ import annotations

import re
import tomllib

import yaml


def test_torch_pinned_consistently(repo_root):
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text())
    deps = pyproject["project"]["dependencies"]
    assert "torch==2.13.0" in deps
    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    pip_deps = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "torch==2.13.0" in pip_deps
    assert "python=3.11" in env["dependencies"]
    assert pyproject["project"]["requires-python"].startswith(">=3.11")


def test_peers_extra_pins_scvi_14(repo_root):
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text())
    peers = pyproject["project"]["optional-dependencies"]["peers"]
    assert any(re.match(r"scvi-tools>=1\.4,<1\.5", p) for p in peers)
    assert any(p.startswith("scglue") for p in peers)


def test_ci_runs_readme_test_command(repo_root):
    readme = (repo_root / "README.md").read_text()
    ci = (repo_root / ".ci" / "run").read_text()
    assert "make test" in readme and "make figures" in readme
    assert re.search(r"^make test$", ci, flags=re.M)


def test_ci_lints_before_testing_with_ruff_from_the_test_extra(repo_root):
    ci = (repo_root / ".ci" / "run").read_text()
    assert ci.index("make lint") < ci.index("make test")
    makefile = (repo_root / "Makefile").read_text()
    assert re.search(r"^lint: \$\(STAMP\)\n\t\$\(VENV\)/bin/ruff check ", makefile, flags=re.M)
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text())
    assert any(p.startswith("ruff") for p in pyproject["project"]["optional-dependencies"]["test"])
    assert "*.ipynb" in pyproject["tool"]["ruff"]["extend-include"]


def test_import_is_light():
    import subprocess
    import sys

    code = "import attune_lib, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
