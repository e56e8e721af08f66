"""The course edition: a static site of the executed figure notebooks, with a landing page.

Why nbconvert: it is maintained by the Jupyter project, already installed with this package (papermill
and JupyterLab depend on it), works offline, and renders exactly what the executed notebook holds. A
Sphinx-based tool (Jupyter Book 1.x) would add a dependency tree and a second markdown dialect for ten
pages. The HTML of the ``lab`` template is post-processed so that a page needs nothing from the
network: the require.js, MathJax and mermaid script tags that point at a CDN are dropped (no output of
these notebooks uses widgets, LaTeX or mermaid), images are embedded as data URIs, and the CSS is inline.
Every page opens from ``file://``.

Executed notebooks are reused from ``results_dir`` when they are newer than their source and were run
at the same tier; the others are executed there first (:func:`attune_lib._runner.run_notebook`).
Figures that a notebook only saved to disk (not shown inline) are attached to the cell that wrote them,
using the cell's start and end times that papermill records.
"""

from __future__ import annotations

import base64
import html
import inspect
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ._utils import AttuneInputError

__all__ = ["build_book", "BookResult", "TIERS_SMALL"]

#: tiers of the runner and whether each runs the notebooks' small settings
TIERS_SMALL = {"ci": True, "standard": False, "paper": False}

_CDN_SCRIPT = re.compile(r"<script\b[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>", re.S)
_MODULE_SCRIPT = re.compile(r"<script type=\"module\">.*?</script>", re.S)
_CHECK_SCRIPT = """<script>
// the page reports whether its images loaded (read by the book's browser test)
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (im) { return !(im.complete && im.naturalWidth > 0); }).length;
  document.body.setAttribute("data-book-images", imgs.length + " " + broken);
});
</script>"""
_NAV_CSS = """<style>
.book-nav{position:sticky;top:0;z-index:10;background:#f6f8fa;border-bottom:1px solid #d0d7de;
  padding:.5em 1em;font:14px/1.4 system-ui,sans-serif}
.book-nav a{margin-right:1.2em;color:#0550ae;text-decoration:none}
details.solution{border:1px solid #d0d7de;border-radius:6px;padding:.3em .8em;margin:.5em 0;background:#fbfbfb}
details.solution summary{cursor:pointer;font-weight:600}
</style>"""


@dataclass
class BookResult:
    """What :func:`build_book` made.

    Parameters
    ----------
    index
        The landing page.
    pages
        Notebook stem -> its page.
    reused, executed
        Notebook stems whose executed copy was reused, and those run for this build.
    failed
        Notebook stem -> error of the notebooks that did not run through (their page shows the error).
    """

    index: Path
    pages: dict[str, Path] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _run_kwargs(tier: str) -> dict:
    from ._runner import run_notebook

    params = inspect.signature(run_notebook).parameters
    if "tier" in params:
        return {"tier": tier}
    return {"small": TIERS_SMALL[tier]}


def _run_matches(nb, tier: str) -> bool:
    params = nb.metadata.get("papermill", {}).get("parameters", {})
    if "tier" in params:
        return params["tier"] == tier
    return "small" in params and bool(params["small"]) == TIERS_SMALL[tier]


def _is_fresh(executed: Path, source: Path, tier: str) -> bool:
    import nbformat

    if not executed.exists() or executed.stat().st_mtime < source.stat().st_mtime:
        return False
    try:
        nb = nbformat.read(executed, as_version=4)
    except Exception:  # noqa: BLE001 - an unreadable copy is simply not reused
        return False
    return _run_matches(nb, tier) and nb.metadata.get("papermill", {}).get("exception") is not True


def _when(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _attach_saved_figures(nb) -> int:
    """Give each code cell the PNGs it wrote to the run's figures folder but did not show inline."""
    import nbformat

    figdir = nb.metadata.get("papermill", {}).get("parameters", {}).get("figures_dir")
    if not figdir or not Path(figdir).is_dir():
        return 0
    pngs = [(p.stat().st_mtime, p) for p in Path(figdir).glob("*.png")]
    added = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or "savefig" not in cell.source:
            continue
        if any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
            continue
        pm = cell.metadata.get("papermill", {})
        start, end = _when(pm.get("start_time")), _when(pm.get("end_time"))
        if start is None or end is None:
            continue
        found = [p for t, p in sorted(pngs) if start - 1 <= t <= end + 1]
        if not found:  # files rewritten after the run (e.g. stamped): match the names the cell saves to
            prefixes = [m.split("{")[0] for m in re.findall(r"savefig\(\s*fig\s*,\s*f?[\"']([^\"']+)", cell.source)]
            found = sorted(p for _, p in pngs if any(pre and p.stem.startswith(pre) for pre in prefixes))
        for p in found:
            data = base64.b64encode(p.read_bytes()).decode()
            cell.outputs.append(nbformat.v4.new_output("display_data", data={"image/png": data,
                                                                             "text/plain": f"<{p.name}>"}))
            added += 1
    return added


def _page_html(nb, *, title: str, nav: str, solutions: bool) -> str:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", embed_images=True)
    body, _ = exporter.from_notebook_node(nb)
    body = _CDN_SCRIPT.sub("", body)
    body = _MODULE_SCRIPT.sub(lambda m: "" if "https://" in m.group(0) else m.group(0), body)
    body = re.sub(r"<title>.*?</title>", f"<title>{html.escape(title)}</title>", body, count=1, flags=re.S)
    if solutions:
        body = body.replace('<details class="solution">', '<details class="solution" open>')
    body = body.replace("</head>", _NAV_CSS + _CHECK_SCRIPT + "</head>", 1)
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav, body, count=1)


def _heading(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if m:
                return m.group(1).strip()
    return ""


def _goals(nb) -> list[str]:
    for cell in nb.cells[:3]:
        if cell.cell_type == "markdown" and re.search("learning goals", cell.source, re.I):
            part = re.split(r"learning goals[^\n]*\n", cell.source, flags=re.I, maxsplit=1)[-1]
            return [re.sub(r"^\s*[-*]\s+", "", line).strip() for line in part.splitlines()
                    if re.match(r"^\s*[-*]\s+", line)]
    return []


def _panels(title: str) -> str:
    m = re.search(r"\(([^)]*(?:Fig|Supp)[^)]*)\)", title)
    return m.group(1).replace("paper ", "") if m else "companion (no paper panel)"


def _md_inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def build_book(output_dir: str | os.PathLike = "book", *, results_dir: str | os.PathLike = "results",
               tier: str = "ci", solutions: bool = False, notebooks: list[str] | None = None,
               run: bool = True, progress_bar: bool = False) -> BookResult:
    """Build the course edition: one HTML page per executed notebook and a landing page.

    Parameters
    ----------
    output_dir
        Folder of the site (``index.html`` and one ``<stem>.html`` per notebook).
    results_dir
        Folder of executed notebooks: a copy newer than its source and run at ``tier`` is reused,
        the others are executed there (figures go to ``<results_dir>/figures``).
    tier
        ``"ci"`` (the notebooks' small settings), ``"standard"`` or ``"paper"``.
    solutions
        Show the exercises' solutions open (they are collapsed otherwise).
    notebooks
        Only these notebooks (stems or unique prefixes); None: all.
    run
        Execute notebooks that have no fresh executed copy; False raises for them instead.
    progress_bar
        Papermill's progress bar while executing.

    Returns
    -------
    BookResult
        The landing page, the pages, and which notebooks were reused, executed or failed.
    """
    import nbformat

    from ._runner import list_notebooks, resolve_notebook, run_notebook

    if tier not in TIERS_SMALL:
        raise AttuneInputError(f"tier {tier!r} is not one of {', '.join(TIERS_SMALL)}")
    sources = [resolve_notebook(n) for n in notebooks] if notebooks else list_notebooks()
    results = Path(results_dir).resolve()
    out = Path(output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    book = BookResult(index=out / "index.html")
    executed: dict[str, Path] = {}
    for src in sources:
        copy = results / src.name
        if _is_fresh(copy, src, tier):
            book.reused.append(src.stem)
            executed[src.stem] = copy
            continue
        if not run:
            raise AttuneInputError(f"{src.stem}: no executed copy at tier {tier!r} in {results} newer than "
                                   f"{src}; run it (attune-companion run {src.stem}) or build with run=True")
        res = run_notebook(src, output_dir=results, figures_dir=results / "figures", progress_bar=progress_bar,
                           **_run_kwargs(tier))
        book.executed.append(src.stem)
        executed[src.stem] = res.output
        if not res.ok:
            book.failed[src.stem] = res.error or "failed"
    stems = list(executed)
    entries = []
    for i, stem in enumerate(stems):
        nb = nbformat.read(executed[stem], as_version=4)
        _attach_saved_figures(nb)
        title = _heading(nb) or stem
        links = ['<a href="index.html">Contents</a>']
        if i > 0:
            links.append(f'<a href="{stems[i - 1]}.html">&larr; {html.escape(stems[i - 1])}</a>')
        if i + 1 < len(stems):
            links.append(f'<a href="{stems[i + 1]}.html">{html.escape(stems[i + 1])} &rarr;</a>')
        nav = '<nav class="book-nav">' + "".join(links) + "</nav>"
        page = out / f"{stem}.html"
        page.write_text(_page_html(nb, title=title, nav=nav, solutions=solutions), encoding="utf-8")
        book.pages[stem] = page
        from .teach import exercises

        try:
            n_ex = len(exercises(stem))
        except AttuneInputError:
            n_ex = 0
        entries.append({"stem": stem, "title": title, "panels": _panels(title), "goals": _goals(nb),
                        "exercises": n_ex, "failed": book.failed.get(stem)})
    book.index.write_text(_landing_page(entries, tier=tier, solutions=solutions), encoding="utf-8")
    (out / "book.json").write_text(json.dumps({"tier": tier, "solutions": solutions, "pages": stems,
                                               "reused": book.reused, "executed": book.executed,
                                               "failed": book.failed}, indent=2))
    return book


_PAPER = (
    "Attune (Yang, Xie, He and Yang, <i>GigaScience</i> 2025, doi:10.1093/gigascience/giaf053) learns one "
    "embedding for single-cell multiome data, where RNA and chromatin accessibility (ATAC) are measured in the "
    "same cells. Two teacher&ndash;student encoder pairs, one per modality, are trained with a cross-modal "
    "contrastive loss: a cell's RNA and ATAC profiles are pulled together on a unit hypersphere and other cells "
    "are pushed away. The paper reports that this integrates the modalities better than MultiVI, GLUE and "
    "scMVP (Fig. 2A&ndash;E), that fine-tuning the ATAC encoder predicts RNA from chromatin better than "
    "de novo networks (Fig. 2F&ndash;H), that a transformer decoder on the frozen encoders finds peak&ndash;gene "
    "links supported by promoter-capture Hi-C (Fig. 3A&ndash;F), and that the residual of predicted minus "
    "measured expression, <i>chromatin potential</i>, reveals genes whose expression lags their chromatin, such "
    "as <i>Gli3</i> in the hair follicle (Fig. 3G&ndash;4E) and maturing neurons in the fetal cortex (Fig. 5). "
    "These pages re-run each analysis, test each claim on data whose truth is known, and say where it holds "
    "and where it does not.")


def _landing_page(entries: list[dict], *, tier: str, solutions: bool) -> str:
    rows = []
    for e in entries:
        goals = "".join(f"<li>{_md_inline(g)}</li>" for g in e["goals"][:4])
        status = ' <span class="failed">(did not run through)</span>' if e["failed"] else ""
        rows.append(f'<tr><td>{html.escape(e["panels"])}</td><td><a href="{e["stem"]}.html">'
                    f'{html.escape(e["stem"])}</a>{status}</td><td>{html.escape(e["title"])}<ul>{goals}</ul></td>'
                    f'<td>{e["exercises"]}</td></tr>')
    settings = {"ci": "the small settings (a few hundred simulated cells and short training: fast, and far from "
                      "converged, so read the numbers as a demonstration of the method, not as results)",
                "standard": "the standard settings", "paper": "the paper's settings"}[tier]
    sol = "Solutions are shown open." if solutions else "Solutions are folded under each exercise; click to open."
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Attune companion: the course edition</title>
<style>
body{{font:16px/1.55 system-ui,-apple-system,Segoe UI,sans-serif;max-width:62em;margin:2em auto;padding:0 1em;
  color:#1f2328}}
h1{{font-size:1.8em}} h2{{margin-top:1.6em;border-bottom:1px solid #d0d7de}}
table{{border-collapse:collapse;width:100%}} td,th{{border:1px solid #d0d7de;padding:.4em .6em;vertical-align:top}}
th{{background:#f6f8fa;text-align:left}} ul{{margin:.3em 0 0 1.1em;padding:0}} code,pre{{background:#f6f8fa}}
pre{{padding:.7em;overflow:auto}} .failed{{color:#cf222e}}
</style>{_CHECK_SCRIPT}</head>
<body>
<h1>Attune companion &mdash; the course edition</h1>
<p>Executed notebooks of a PyTorch companion to the Attune paper, one per paper figure, each a lesson with
learning goals, a question before every figure, a takeaway after it, and exercises you can check. These pages
were run at the <b>{tier}</b> tier: {settings}. {sol}</p>

<h2>The paper in one paragraph</h2>
<p>{_PAPER}</p>

<h2>Figures, notebooks and paper panels</h2>
<table><tr><th>paper panel</th><th>notebook</th><th>what you learn</th><th>exercises</th></tr>
{''.join(rows)}
</table>

<h2>Run everything</h2>
<p>On a machine with Python 3.11, from the repository:</p>
<pre>make figures   # create .venv, run every figure notebook on the embedded simulator (no network)
make test      # create .venv, run the whole test suite
make book      # build these pages (reuses executed notebooks in results/)</pre>
<p>One notebook: <code>.venv/bin/attune-companion run 00 --small</code>; options <code>--dataset</code>,
<code>--seed</code>, <code>-p NAME=VALUE</code>. Open a notebook in JupyterLab to change it and run it cell by cell.</p>

<h2>Your own 10x data</h2>
<p>A Cell Ranger ARC <code>filtered_feature_bc_matrix/</code> folder (or its <code>.h5</code>), an
<code>.h5mu</code>, or a folder with an RNA and an ATAC <code>.h5ad</code>:</p>
<pre>import attune_lib as al
mdata = al.datasets.read("outs/filtered_feature_bc_matrix", genome="hg38")
al.pp.preprocess(mdata)
print(al.datasets.describe(mdata))</pre>
<p>The data tour runs on such a folder with <code>attune-companion run 00 -p data_path=/path/to/folder -p
genome=hg38</code>. The reader tells raw counts from normalised values and checks that the peaks fit the genome
build (see <code>docs/data.md</code>).</p>

<h2>The simulator, and why it has a truth</h2>
<p>Every page runs by default on a simulated multiome dataset (<code>al.datasets.simulate_multiome</code>): a
synthetic genome with genes, peaks and sequences carrying real JASPAR motifs, and presets shaped like the paper's
data: <code>pbmc</code> (discrete blood cell types), <code>skin</code> (transit-amplifying cells branching into
three hair-follicle lineages, with a <i>Gli3</i>-like gene) and <code>cortex</code> (progenitors maturing into
neurons, with a planted boundary where RNA lags chromatin). Because we generated the data, we know what
produced it: the cell types, the peak&ndash;gene links, the TF motifs, the genes whose expression lags their
chromatin, a promoter-capture Hi-C-like contact table, and the noise-free expression. That truth, stored in
<code>mdata.uns["truth"]</code>, lets each page score a method exactly, shows where a claim cannot hold, and is
the answer key of the exercises: <code>al.teach.check(notebook, exercise, answer, mdata=mdata)</code> says
right, partly right (with a hint) or wrong. Real data has no such key, which is why the simulator comes first
and real datasets (<code>--dataset</code>) second.</p>
</body></html>
"""
