"""What a figure shows, for tests that check plotted content rather than only the return type.

:func:`content` sums over the data axes of a figure (colour-bar axes are counted apart, in ``n_colorbars``);
:func:`axes_content` describes one axes; :func:`assert_shows` and :func:`assert_axes` assert on them.
"""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.collections import Collection, PathCollection, PolyCollection, QuadMesh
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle


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
