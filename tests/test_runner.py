"""The runner: inline figures, progress on stderr, the CI mark, resume, tiers."""

from __future__ import annotations

import nbformat
import pytest

from attune_lib._runner import CI_MARK, mark_ci_figure, run_notebook

FIG_CODE = ("import matplotlib.pyplot as plt\nimport attune_lib as al\nfig, ax = plt.subplots()\n"
            "ax.plot([0, 1], [0, 1])\nax.set_title(f'tier {tier}')\n"
            "al.pl.savefig(fig, 'toy', figures_dir=figures_dir);")


def _notebook(path, code: str = FIG_CODE):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("dataset = 'simulated'\ntier = 'ci'\nseed = 0\nfigures_dir = '.'\n"
                                       "results_dir = '.'\nforce = False")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("# draw one figure\n" + code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def test_mark_ci_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1])
    path = tmp_path / "f.png"
    fig.savefig(path)
    plt.close(fig)
    h0 = Image.open(path).size[1]
    mark_ci_figure(path)
    with Image.open(path) as im:
        assert im.info["Attune-Mark"] == CI_MARK and im.size[1] > h0
        r, g, b = im.convert("RGB").getpixel((2, 2))
        assert r > 150 and g < 80  # the red banner
    size = path.stat().st_size
    mark_ci_figure(path)  # idempotent
    assert path.stat().st_size == size


@pytest.mark.slow
def test_inline_figure_progress_mark_and_resume(tmp_path, monkeypatch, capfd):
    from PIL import Image

    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    _notebook(nbdir / "01_toy.ipynb")
    monkeypatch.setenv("ATTUNE_NOTEBOOK_DIR", str(nbdir))
    monkeypatch.setenv("MPLBACKEND", "Agg")  # the runner gives the kernel the inline backend anyway
    out, figs = tmp_path / "out", tmp_path / "figs"
    res = run_notebook("01", output_dir=out, figures_dir=figs, tier="ci")
    assert res.ok, res.error
    err = capfd.readouterr().err
    assert "[01_toy] cell 3/3: draw one figure" in err and "done in" in err  # 3: papermill injects one
    executed = nbformat.read(res.output, as_version=4)
    outputs = executed.cells[-1].outputs
    assert any("image/png" in o.get("data", {}) for o in outputs), outputs
    # a figure shows as an image (its text/plain companion is never shown); no bare "<Figure size ...>"
    assert not any("Figure size" in str(o.get("data", {}).get("text/plain", "")) and "image/png" not in o["data"]
                   for o in outputs if "data" in o)
    assert Image.open(figs / "toy.png").info.get("Attune-Mark") == CI_MARK
    assert (out / "cell_runtimes.json").exists()
    again = run_notebook("01", output_dir=out, figures_dir=figs, tier="ci", resume=True)
    assert again.skipped and again.ok
    assert "skipped" in capfd.readouterr().err
    other = run_notebook("01", output_dir=out, figures_dir=figs, tier="standard", resume=True)
    assert not other.skipped and other.ok
    assert "Attune-Mark" not in Image.open(figs / "toy.png").info  # a standard run carries no mark
    assert "ETA" in capfd.readouterr().err  # the second run knows the cell times of the first
