"""What a figure shows, for tests that check plotted content rather than only the return type."""

from __future__ import annotations

from matplotlib.collections import Collection, PolyCollection, QuadMesh
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle


def content(fig) -> dict:
    """Texts, bar sizes, line/point counts and image shapes of every axes of ``fig``."""
    assert isinstance(fig, Figure), f"expected a Figure, got {type(fig).__name__}"
    out = {"n_axes": 0, "texts": set(), "bars": [], "n_lines": 0, "n_points": 0, "images": [], "data_axes": 0}
    for ax in fig.axes:
        out["n_axes"] += 1
        texts = [ax.get_title(), ax.get_xlabel(), ax.get_ylabel(),
                 *(t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()),
                 *(t.get_text() for t in ax.texts)]
        leg = ax.get_legend()
        if leg is not None:
            texts += [t.get_text() for t in leg.get_texts()]
        out["texts"].update(t for t in texts if t)
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        out["bars"] += [(p.get_width(), p.get_height()) for p in bars]
        lines = [ln for ln in ax.lines if len(ln.get_xdata()) > 1]
        out["n_lines"] += len(lines)
        pts = 0
        for c in ax.collections:
            if isinstance(c, QuadMesh):
                out["images"].append(c.get_array().shape)
            elif isinstance(c, Collection) and not isinstance(c, PolyCollection):
                pts += len(c.get_offsets())
            elif isinstance(c, PolyCollection):
                pts += len(c.get_paths())
        out["n_points"] += pts
        imgs = [im.get_array().shape for im in ax.get_images() if isinstance(im, AxesImage)]
        out["images"] += imgs
        if bars or lines or pts or imgs or any(isinstance(c, QuadMesh) for c in ax.collections):
            out["data_axes"] += 1
    texts = out["texts"]
    out["text"] = " ".join(sorted(texts))
    return out


def assert_shows(fig, *, texts=(), min_data_axes: int = 1, n_bars: int | None = None, min_points: int = 0,
                 image_shape=None) -> dict:
    """Assert that ``fig`` draws data on at least ``min_data_axes`` axes and shows ``texts``."""
    c = content(fig)
    assert c["data_axes"] >= min_data_axes, f"{c['data_axes']} axes with data, expected >= {min_data_axes}"
    missing = [t for t in texts if t not in c["text"]]
    assert not missing, f"texts {missing} not shown; shown: {sorted(c['texts'])[:30]}"
    if n_bars is not None:
        assert len(c["bars"]) == n_bars, f"{len(c['bars'])} bars, expected {n_bars}"
    assert c["n_points"] >= min_points, f"{c['n_points']} points, expected >= {min_points}"
    if image_shape is not None:
        assert tuple(image_shape) in [tuple(s) for s in c["images"]], f"images {c['images']}, expected {image_shape}"
    return c

