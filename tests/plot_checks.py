"""What a figure shows, for tests that check plotted content rather than only the return type.

:func:`content` sums over the data axes of a figure (colour-bar axes are counted apart, in ``n_colorbars``);
:func:`axes_content` describes one axes; :func:`assert_shows` and :func:`assert_axes` assert on them.
"""

from __future__ import annotations

import re

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import Collection, PathCollection, PolyCollection, QuadMesh
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle
from matplotlib.text import Text


def is_colorbar(ax: Axes) -> bool:
    """Whether ``ax`` holds a colour bar."""
    return getattr(ax, "_colorbar", None) is not None


def legend_texts(ax: Axes) -> list[str]:
    """Labels of the legend of ``ax`` (empty when it has none)."""
    leg = ax.get_legend()
    return [t.get_text() for t in leg.get_texts()] if leg is not None else []


def axes_content(ax: Axes) -> dict:
    """Title, axis labels, tick labels, texts, legend, bars, lines, scatter points, polygons and images of ``ax``.

    ``n_points`` counts scatter points only; ``n_other`` the offsets of other collections (line collections).
    """
    lines = [ln for ln in ax.lines if len(ln.get_xdata()) > 1]
    scatter = [c for c in ax.collections if isinstance(c, PathCollection)]
    polys = [c for c in ax.collections if isinstance(c, PolyCollection)]
    kinds = (PathCollection, PolyCollection, QuadMesh)
    other = [c for c in ax.collections if isinstance(c, Collection) and not isinstance(c, kinds)]
    images = [tuple(im.get_array().shape) for im in ax.get_images() if isinstance(im, AxesImage)]
    images += [tuple(c.get_array().shape) for c in ax.collections if isinstance(c, QuadMesh)]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    return {
        "title": ax.get_title(),
        "xlabel": ax.get_xlabel(),
        "ylabel": ax.get_ylabel(),
        "xticklabels": [t.get_text() for t in ax.get_xticklabels()],
        "yticklabels": [t.get_text() for t in ax.get_yticklabels()],
        "texts": [t.get_text() for t in ax.texts],
        "legend": legend_texts(ax),
        "bars": [(p.get_width(), p.get_height()) for p in bars],
        "bar_colors": [p.get_facecolor() for p in bars],
        "n_lines": len(lines),
        "line_lengths": [len(ln.get_xdata()) for ln in lines],
        "n_points": sum(len(c.get_offsets()) for c in scatter),
        "n_other": sum(len(c.get_offsets()) for c in other),
        "scatter_sizes": [len(c.get_offsets()) for c in scatter],
        "n_polys": sum(len(c.get_paths()) for c in polys),
        "images": images,
    }


def has_data(c: dict) -> bool:
    """Whether an :func:`axes_content` describes drawn data."""
    return bool(c["bars"] or c["n_lines"] or c["n_points"] or c["n_other"] or c["n_polys"] or c["images"])


def content(fig) -> dict:
    """Texts, bar sizes, line/point counts and image shapes of every axes of ``fig`` (colour bars apart)."""
    assert isinstance(fig, Figure), f"expected a Figure, got {type(fig).__name__}"
    out = {"n_axes": 0, "texts": set(), "bars": [], "n_lines": 0, "n_points": 0, "images": [], "data_axes": 0,
           "n_colorbars": 0, "legends": []}
    for ax in fig.axes:
        if is_colorbar(ax):
            out["n_colorbars"] += 1
            out["texts"].update(t for t in (ax.get_ylabel(), ax.get_xlabel()) if t)
            continue
        out["n_axes"] += 1
        c = axes_content(ax)
        texts = [c["title"], c["xlabel"], c["ylabel"], *c["xticklabels"], *c["yticklabels"], *c["texts"], *c["legend"]]
        out["texts"].update(t for t in texts if t)
        if ax.get_legend() is not None:
            out["legends"].append(c["legend"])
        out["bars"] += c["bars"]
        out["n_lines"] += c["n_lines"]
        out["n_points"] += c["n_points"] + c["n_other"] + c["n_polys"]
        out["images"] += c["images"]
        if has_data(c):
            out["data_axes"] += 1
    for leg in fig.legends:
        labels = [t.get_text() for t in leg.get_texts()]
        out["legends"].append(labels)
        out["texts"].update(labels)
    if fig._suptitle is not None and fig._suptitle.get_text():
        out["texts"].add(fig._suptitle.get_text())
    out["texts"].update(t.get_text() for t in fig.texts if t.get_text())
    out["text"] = " ".join(sorted(out["texts"]))
    return out


def assert_shows(fig, *, texts=(), min_data_axes: int = 1, n_bars: int | None = None, min_points: int = 0,
                 image_shape=None, n_colorbars: int | None = None, legend=None) -> dict:
    """Assert that ``fig`` draws data on at least ``min_data_axes`` axes and shows ``texts``.

    ``n_colorbars`` is the exact number of colour bars; ``legend`` labels that must all appear in one
    legend (``()``: at least one legend, whatever it says).
    """
    c = content(fig)
    assert c["data_axes"] >= min_data_axes, f"{c['data_axes']} axes with data, expected >= {min_data_axes}"
    missing = [t for t in texts if t not in c["text"]]
    assert not missing, f"texts {missing} not shown; shown: {sorted(c['texts'])[:30]}"
    if n_bars is not None:
        assert len(c["bars"]) == n_bars, f"{len(c['bars'])} bars, expected {n_bars}"
    assert c["n_points"] >= min_points, f"{c['n_points']} points, expected >= {min_points}"
    if image_shape is not None:
        assert tuple(image_shape) in [tuple(s) for s in c["images"]], f"images {c['images']}, expected {image_shape}"
    if n_colorbars is not None:
        assert c["n_colorbars"] == n_colorbars, f"{c['n_colorbars']} colour bars, expected {n_colorbars}"
    if legend is not None:
        assert c["legends"], "no legend drawn"
        want = [str(x) for x in legend]
        assert any(all(w in leg for w in want) for leg in c["legends"]), f"no legend with {want}: {c['legends']}"
    return c


def assert_axes(ax: Axes, *, title=None, xlabel=None, ylabel=None, texts=(), n_bars: int | None = None,
                n_points: int | None = None, min_points: int = 0, n_lines: int | None = None, image_shape=None,
                legend=None, ticklabels=()) -> dict:
    """Assert what one axes shows; ``title``/``xlabel``/``ylabel`` are substrings, ``None`` skips a check.

    ``texts`` must appear among its title, labels, tick labels, texts or legend; ``ticklabels`` among its tick
    labels; ``legend`` are labels its legend must hold (``()``: a legend of any content).
    """
    c = axes_content(ax)
    for key, want in (("title", title), ("xlabel", xlabel), ("ylabel", ylabel)):
        if want is not None:
            assert want in c[key], f"{key} {c[key]!r} lacks {want!r}"
    shown = " ".join([c["title"], c["xlabel"], c["ylabel"], *c["xticklabels"], *c["yticklabels"], *c["texts"],
                      *c["legend"]])
    missing = [t for t in texts if str(t) not in shown]
    assert not missing, f"texts {missing} not shown on the axes; shown: {shown[:300]}"
    ticks = c["xticklabels"] + c["yticklabels"]
    missing = [t for t in ticklabels if str(t) not in ticks]
    assert not missing, f"tick labels {missing} missing; ticks: {ticks}"
    if n_bars is not None:
        assert len(c["bars"]) == n_bars, f"{len(c['bars'])} bars, expected {n_bars}"
    if n_points is not None:
        assert c["n_points"] == n_points, f"{c['n_points']} points, expected {n_points}"
    assert c["n_points"] >= min_points, f"{c['n_points']} points, expected >= {min_points}"
    if n_lines is not None:
        assert c["n_lines"] == n_lines, f"{c['n_lines']} lines, expected {n_lines}"
    if image_shape is not None:
        assert tuple(image_shape) in c["images"], f"images {c['images']}, expected {image_shape}"
    if legend is not None:
        assert ax.get_legend() is not None, "no legend on the axes"
        missing = [str(x) for x in legend if str(x) not in c["legend"]]
        assert not missing, f"legend lacks {missing}: {c['legend']}"
    return c


# --------------------------------------------------------------------------------------------------
# the figure style guide (docs/conventions.md, "Figures")
# --------------------------------------------------------------------------------------------------
#: text that names an internal key instead of saying what is shown
INTERNAL_KEY = re.compile(
    r"\bX_\w+"                      # obsm keys (X_umap_attune, X_lsi)
    r"|\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b"  # snake_case keys (topic_pseudotime, lsi_ridge, total_counts)
    r"|\b(?:obsm|obs|uns|var|layers)\[" # accessors
    r"|\bcluster cluster\b"          # a label prefixed twice
    r"|\b([A-Za-z]+) \1\b"            # any doubled word
)
#: smallest font at the saved size, in points
MIN_FONT_PT = 8.0


def _visible_texts(fig: Figure) -> list[Text]:
    fig.canvas.draw()
    out = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip():
            continue
        ax = t.axes
        if ax is not None and not ax.get_visible():
            continue
        # tick labels outside the view are kept by matplotlib but not drawn
        if t.get_window_extent().width == 0:
            continue
        out.append(t)
    return out


def _numeric(labels: list[str]) -> bool:
    vals = [s.replace("\u2212", "-").replace("%", "") for s in labels if s.strip()]
    if not vals:
        return False
    try:
        [float(v) for v in vals]
    except ValueError:
        return False
    return True


def _text_boxes(ax: Axes, renderer) -> list:
    """Boxes of the drawn title and of each axis (its drawn tick labels and label) of ``ax``."""
    titles = [t.get_window_extent(renderer) for t in (ax.title, ax._left_title, ax._right_title)
              if t.get_visible() and t.get_text().strip()]
    axes = [axis.get_tightbbox(renderer) for axis in (ax.xaxis, ax.yaxis) if axis.get_visible()]
    return titles + [b for b in axes if b is not None and b.width > 0 and b.height > 0]


def style_problems(fig: Figure) -> list[str]:
    """What breaks the figure style guide on ``fig`` (empty when nothing does).

    Checks: no text names an internal key (:data:`INTERNAL_KEY`); every text is at least
    :data:`MIN_FONT_PT`; each data panel has a title (or the figure one); an axis with numeric ticks has a
    label; a colour-mapped scatter, image or mesh has a colour bar; a scatter with varying dot sizes has a
    legend; the offset text ("1e6") is not used; the texts of one panel do not overlap another panel's.
    """
    problems = []
    texts = _visible_texts(fig)
    for t in texts:
        s = t.get_text()
        if INTERNAL_KEY.search(s):
            problems.append(f"internal key in text {s!r}")
        if t.get_fontsize() < MIN_FONT_PT - 1e-6:
            problems.append(f"font {t.get_fontsize():.1f} pt < {MIN_FONT_PT} pt: {s[:40]!r}")
    suptitle = fig._suptitle is not None and fig._suptitle.get_text()
    renderer = fig.canvas.get_renderer()
    data_axes = [a for a in fig.axes if a.get_visible() and not is_colorbar(a) and a.axison
                 and has_data(axes_content(a))]
    n_colorbars = sum(is_colorbar(a) for a in fig.axes)
    has_legend = bool(fig.legends) or any(a.get_legend() is not None for a in fig.axes)
    def frame(a):
        return tuple(round(v, 3) for v in a.get_position().bounds)

    firsts: dict = {}
    for a in fig.axes:
        firsts.setdefault(frame(a), a)
    twins = {id(a) for a in fig.axes if firsts[frame(a)] is not a}  # twinx/twiny axes share a frame
    for a in data_axes:
        if id(a) in twins:
            continue
        c = axes_content(a)
        where = f"panel {c['title'] or '(untitled)'!r}"
        if not (c["title"] or suptitle):
            problems.append(f"{where}: no title")
        for axis, label, ticks in (("x", c["xlabel"], c["xticklabels"]), ("y", c["ylabel"], c["yticklabels"])):
            axis_obj = a.xaxis if axis == "x" else a.yaxis
            shown = [t for t, tk in zip(ticks, axis_obj.get_ticklabels()) if tk.get_visible()]
            if _numeric(shown) and not label:
                problems.append(f"{where}: numeric {axis} axis without a label")
            off = axis_obj.get_offset_text()
            if off.get_visible() and off.get_text().strip():
                problems.append(f"{where}: {axis} axis offset text {off.get_text()!r}")
        mapped = [m for m in (*a.collections, *a.get_images())
                  if getattr(m, "get_array", None) is not None and m.get_array() is not None
                  and not isinstance(m, PolyCollection)]
        if mapped and not n_colorbars:
            problems.append(f"{where}: colour-mapped data without a colour bar")
        for coll in a.collections:
            if isinstance(coll, PathCollection):
                sizes = np.unique(np.round(coll.get_sizes(), 3))
                if len(sizes) > 1 and not has_legend:
                    problems.append(f"{where}: dot sizes vary but no legend explains them")
    panels = [a for a in fig.axes if a.get_visible() and a.axison and id(a) not in twins]
    boxes = {id(a): _text_boxes(a, renderer) for a in panels}
    frames = {id(a): a.get_window_extent(renderer) for a in panels}
    for a in panels:
        for b in panels:
            if a is b or a in b.child_axes or b in a.child_axes:
                continue
            texts_meet = id(a) < id(b) and any(ba.overlaps(bb) for ba in boxes[id(a)] for bb in boxes[id(b)])
            on_frame = any(_inside(ba, frames[id(b)]) for ba in boxes[id(a)])
            if texts_meet or on_frame:
                problems.append(f"text of panel {a.get_title()!r} overlaps panel {b.get_title()!r}")
    return sorted(set(problems))


def _inside(box, frame, tol: float = 2.0) -> bool:
    """Whether ``box`` reaches more than ``tol`` pixels into ``frame``."""
    return (box.x1 - tol > frame.x0 and box.x0 + tol < frame.x1 and box.y1 - tol > frame.y0
            and box.y0 + tol < frame.y1)


def assert_style(fig: Figure) -> None:
    """Assert that ``fig`` follows the figure style guide (:func:`style_problems`)."""
    problems = style_problems(fig)
    assert not problems, "figure style problems:\n  " + "\n  ".join(problems)
