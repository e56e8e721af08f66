"""The course edition as a reader sees it: build the book at the ci tier and open every page in headless
Chromium (Debian's ``chromium``).

Checks: each page renders (title, text), every image loads (the page reports ``data-book-images="N
broken"`` from the browser), internal links and anchors resolve, no cell failed, nothing is fetched from
the network, and solutions are folded unless the ``--solutions`` build. Screenshots of the landing page and
of one notebook page are saved to ``$ATTUNE_ARTIFACTS/book`` (default: this test's temporary folder).

Executed notebooks are reused from ``$ATTUNE_BOOK_RESULTS`` when it is set and holds fresh ci-tier copies;
otherwise every notebook is executed once for this module (the full ci tier: each page must be checked).
Without Chromium the browser tests skip, except under ``CI=true``, where they fail (``.ci/run``
installs Chromium).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest

import attune_lib as al

pytestmark = pytest.mark.slow

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
STEMS = sorted(p.stem for p in NB_DIR.glob("*.ipynb"))


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    reason = "headless Chromium not found (apt-get install chromium; .ci/run installs it)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason + " -- required under CI")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    given = os.environ.get("ATTUNE_BOOK_RESULTS")
    return Path(given) if given else tmp_path_factory.mktemp("book_results")


@pytest.fixture(scope="module")
def book(results_dir, tmp_path_factory):
    from attune_lib._book import build_book

    return build_book(tmp_path_factory.mktemp("book"), results_dir=results_dir, tier="ci")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = os.environ.get("ATTUNE_ARTIFACTS")
    path = Path(root) / "book" if root else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _browser(*args: str, profile: Path, timeout: int = 180) -> str:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
           "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing may come from the network
           "--virtual-time-budget=8000", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"chromium failed: {out.stderr[-2000:]}"
    return out.stdout


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids, self.imgs, self.body_attrs, self.title, self.text = [], set(), [], {}, "", []
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if tag == "body":
            self.body_attrs = a
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False if tag == "title" else self._in_title

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        self.text.append(data)


def _parse(dom: str) -> _Page:
    page = _Page()
    page.feed(dom)
    return page


def test_the_book_has_every_notebook(book):
    assert not book.failed, f"notebooks that did not run through: {book.failed}"
    assert sorted(book.pages) == STEMS
    assert book.index.exists()


def test_no_cell_failed(book, results_dir):
    for stem in STEMS:
        nb = nbformat.read(results_dir / f"{stem}.ipynb", as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, f"{stem}: error output {errors[0].get('ename')}: {errors[0].get('evalue')}"


def test_pages_load_nothing_from_the_network(book):
    for path in [book.index, *book.pages.values()]:
        text = path.read_text(encoding="utf-8")
        remote = re.findall(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=\"(https?://[^\"]+)\"", text)
        assert not remote, f"{path.name} loads {remote[:3]}"
        assert "cdnjs" not in text and "cdn.jsdelivr" not in text, f"{path.name} refers to a CDN"


def test_solutions_are_folded_unless_asked(book, results_dir):
    for stem, path in book.pages.items():
        text = path.read_text(encoding="utf-8")
        n = len(al.teach.exercises(stem))
        assert text.count('<details class="solution">') >= n, f"{stem}: {n} exercises, fewer folded solutions"
        assert '<details class="solution" open>' not in text
    from attune_lib._book import _page_html

    executed = nbformat.read(results_dir / f"{STEMS[0]}.ipynb", as_version=4)
    text = _page_html(executed, title=STEMS[0], nav="", solutions=True)
    assert '<details class="solution" open>' in text and '<details class="solution">' not in text


def test_every_page_in_the_browser(book, tmp_path):
    pages = {"index": book.index, **book.pages}
    problems = []
    for name, path in pages.items():
        dom = _browser("--dump-dom", path.as_uri(), profile=tmp_path / "profile")
        page = _parse(dom)
        text = " ".join(page.text)
        if not page.title.strip() or len(text) < 2000:
            problems.append(f"{name}: blank page (title {page.title!r}, {len(text)} characters)")
        n_img, broken = (int(x) for x in page.body_attrs.get("data-book-images", "-1 -1").split())
        if n_img < 0:
            problems.append(f"{name}: the page's load check did not run")
        elif broken:
            problems.append(f"{name}: {broken} of {n_img} images did not load")
        if name != "index":
            if n_img < 1:
                problems.append(f"{name}: no figure on the page")
            n_ex = len(al.teach.exercises(name))
            if text.count("NO ANSWER YET") < n_ex:
                problems.append(f"{name}: the {n_ex} exercise checks did not all run")
            if "Traceback (most recent call last)" in text:
                problems.append(f"{name}: a traceback is shown")
        for src in page.imgs:
            if not src.startswith("data:") and not (path.parent / unquote(urlparse(src).path)).exists():
                problems.append(f"{name}: image {src[:80]} does not resolve")
        for href in page.links:
            url = urlparse(href)
            if url.scheme in ("http", "https", "mailto"):
                continue
            target = path if not url.path else (path.parent / unquote(url.path))
            if not target.exists():
                problems.append(f"{name}: broken link {href}")
            elif url.fragment and target == path and not {url.fragment, unquote(url.fragment)} & page.ids:
                problems.append(f"{name}: broken anchor {href}")
    index_links = {urlparse(h).path for h in _parse(book.index.read_text(encoding="utf-8")).links}
    missing = [s for s in STEMS if f"{s}.html" not in index_links]
    if missing:
        problems.append(f"index: no link to {missing}")
    assert not problems, "\n".join(problems)


def test_screenshots(book, artifacts, tmp_path):
    shots = {"landing.png": book.index, "notebook.png": book.pages.get("03b_chromatin_potential",
                                                                      next(iter(book.pages.values())))}
    for fname, path in shots.items():
        out = artifacts / fname
        out.unlink(missing_ok=True)
        _browser(f"--screenshot={out}", "--window-size=1280,1600", path.as_uri(), profile=tmp_path / "profile")
        assert out.exists() and out.stat().st_size > 20_000, f"{fname}: screenshot missing or blank"
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
