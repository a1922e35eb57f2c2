"""Small pyqtgraph helpers shared by the panels: cheaper repaints."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtWidgets

_CACHED = (pg.AxisItem, pg.TextItem, pg.LegendItem, pg.LabelItem)


def set_y_sticky(plot, lo: float, hi: float) -> bool:
    """Set a plot's y range to [lo, hi] only when the data left the current range or fill less
    than half of it. A range change re-lays out the axis (text) and costs milliseconds per
    frame; new blocks usually fall inside the range already shown."""
    (_x0, _x1), (y0, y1) = plot.getViewBox().viewRange()
    want = hi - lo
    if lo >= y0 and hi <= y1 and (y1 - y0) <= 2.0 * want:
        return False
    plot.setYRange(lo, hi, padding=0)
    return True


def cache_text_items(view: pg.GraphicsView) -> None:
    """Paint axes, labels and legends from a pixmap cache until they change.

    Text is the most expensive thing pyqtgraph draws in software rendering; these items change
    only when a range or a label changes, which invalidates their cache.
    """
    for item in view.scene().items():
        if isinstance(item, _CACHED):
            item.setCacheMode(QtWidgets.QGraphicsItem.DeviceCoordinateCache)
