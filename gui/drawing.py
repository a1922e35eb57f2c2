"""Small pyqtgraph helpers shared by the panels: cheaper repaints."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph.graphicsItems.LegendItem import ItemSample
from PySide6 import QtWidgets

# QGraphicsTextItem: the text inside axis labels, titles, legend entries and line labels is its
# own child item; caching only the parent left every text to be laid out and drawn per frame.
_CACHED = (pg.AxisItem, pg.TextItem, pg.LegendItem, pg.LabelItem, ItemSample, QtWidgets.QGraphicsTextItem)


def set_y_sticky(plot, lo: float, hi: float, grow: float = 0.25) -> bool:
    """Set a plot's y range to [lo, hi] only when the data left the current range or fill less
    than half of it. A range change re-lays out the axis (text) and costs milliseconds per
    frame; new blocks usually fall inside the range already shown. When data already shown grow
    past an edge (a drifting frequency), that edge moves `grow` times the span further, so a
    steady trend changes the range every few hundred blocks, not on every one. The first fit
    (a stored session, a snapshot) and a refit of a loose range are exact."""
    (_x0, _x1), (y0, y1) = plot.getViewBox().viewRange()
    want = hi - lo
    if lo >= y0 and hi <= y1 and (y1 - y0) <= 2.0 * want:
        return False
    growing = getattr(plot, "_mrsmon_fitted", False) and (y1 - y0) <= 2.0 * want
    plot._mrsmon_fitted = True
    if growing:  # move only the edge the data passed; the other one stays (no see-saw)
        room = grow * want
        plot.setYRange(lo - room if lo < y0 else y0, hi + room if hi > y1 else y1, padding=0)
    else:
        plot.setYRange(lo, hi, padding=0)
    apply_range_now(plot)
    return True


def apply_range_now(plot) -> None:
    """Apply a range just set to the view's transform now, not at paint time.

    pyqtgraph defers the transform to the paint; changing it there makes Qt schedule a second
    full paint of the plot right after the first (measured: the spectrum was painted twice per
    block). Applied during the update, the change is painted once.
    """
    plot.getViewBox().prepareForPaint()


def paint_whole_viewport(view: pg.GraphicsView) -> None:
    """Repaint a plot's whole viewport in one pass when anything in it changed.

    pyqtgraph's default (MinimalViewportUpdate) repaints the union of the changed items' rects;
    after a new block that is a region of 5 to 12 rectangles per plot, which Qt's raster engine
    paints by clipping every item to each of them: measured 41 ms for the three plots against
    19 ms for one full pass each (sliding window, offscreen). A new block changes most of the
    plot area anyway.
    """
    view.setViewportUpdateMode(QtWidgets.QGraphicsView.FullViewportUpdate)


def cache_text_items(view: pg.GraphicsView) -> None:
    """Paint axes, labels and legends (with their line samples) from a pixmap cache until they change.

    Text is the most expensive thing pyqtgraph draws in software rendering; these items change
    only when a range or a label changes, which invalidates their cache.
    """
    for item in view.scene().items():
        if isinstance(item, _CACHED):
            item.setCacheMode(QtWidgets.QGraphicsItem.DeviceCoordinateCache)


def set_data_if_changed(item, x, y, hide_empty: bool = False, **kwargs) -> bool:
    """`item.setData(x, y)` unless the item already shows exactly these values.

    pyqtgraph's setData costs 0.02 to 0.3 ms even for an empty array (bounds, signals, a view
    update), and many items (failed-fit crosses, over-limit spots) rarely change between blocks.
    `hide_empty` also hides the item while it has no data: Qt then skips it when painting (an
    empty scatter still cost about 0.2 ms per repaint). Not for items shown in a legend, whose
    sample turns into an "invisible" eye.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if hide_empty:
        item.setVisible(len(x) > 0)
    last = getattr(item, "_mrsmon_shown", None)
    if (last is not None and last[0].shape == x.shape and last[1].shape == y.shape
            and np.array_equal(last[0], x, equal_nan=True) and np.array_equal(last[1], y, equal_nan=True)):
        return False
    set_data(item, x, y, **kwargs)
    return True


def set_data(item, x, y, **kwargs) -> None:
    """`item.setData(x, y)`, remembered for `set_data_if_changed`: an item updated through one
    must never be set with a bare setData, or the other would compare against stale values."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    item.setData(x, y, **kwargs)
    item._mrsmon_shown = (x.copy(), y.copy())


def column_extents(t: np.ndarray, lo: np.ndarray, hi: np.ndarray, x0: float, x1: float,
                   n_columns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merge vertical bars (at sorted `t`, from `lo` to `hi`) that fall in the same one of
    `n_columns` equal columns of [x0, x1], at the column's first `t`.

    Returns (t, lo, hi, core_lo, core_hi): per column the union of its bars (lowest `lo` to
    highest `hi`) and their common core (highest `lo` to lowest `hi`; empty when core_lo >
    core_hi). With a column per screen pixel, union and core drawn as two translucent layers
    look like the many overlapping bars did, with two strokes per pixel column instead of four
    or more (a 3600-block sliding window). Sparse bars come back unchanged (core = the bar).
    """
    t, lo, hi = np.asarray(t, float), np.asarray(lo, float), np.asarray(hi, float)
    if len(t) <= n_columns or x1 <= x0 or n_columns < 1:
        return t, lo, hi, lo, hi
    col = np.floor((t - x0) * (n_columns / (x1 - x0))).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
    return (t[starts], np.minimum.reduceat(lo, starts), np.maximum.reduceat(hi, starts),
            np.maximum.reduceat(lo, starts), np.minimum.reduceat(hi, starts))


def paints_nothing(item) -> None:
    """Mark a line that only carries a label (or bounds a region) as having no contents of its
    own: Qt then skips its paint call, while its children (the label) are still drawn."""
    item.setFlag(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemHasNoContents, True)



def fixed_axis_units(plot) -> None:
    """No automatic SI prefixes on any of a plot's four axes, shown or hidden: with them, every
    range change re-lays out the axis label as HTML (and drops its cached picture)."""
    for name in ("left", "bottom", "right", "top"):
        plot.getAxis(name).enableAutoSIPrefix(False)


def peak_decimate(x: np.ndarray, y: np.ndarray, n_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """A line of many more points than `n_columns` (the plot's width in pixels) reduced to the
    lowest and the highest value of each run of ceil(n / n_columns) points, at the run's first
    x: about one run per pixel column, so the stroked line covers the same pixels with two
    vertices per column instead of eight (a 3600-block sliding window on a 460-px trace).
    Shorter lines come back unchanged. A run of only NaNs stays a gap.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    k = -(-n // max(1, n_columns))  # points per run
    if k < 3:
        return x, y
    m = -(-n // k)
    pad = m * k - n
    ys = np.concatenate([y, np.full(pad, np.nan)]).reshape(m, k)
    lo, hi = np.fmin.reduce(ys, axis=1), np.fmax.reduce(ys, axis=1)  # NaNs ignored unless all
    xs = x[::k]
    return np.repeat(xs, 2), np.column_stack([lo, hi]).ravel()
