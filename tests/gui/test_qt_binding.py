"""Regression guard for the pinned Qt binding.

PySide6 6.12.0 on Python 3.11 drops a reference to None (and True/False) each time a plot item is
added or removed and on every repaint; after a few hundred redraws the interpreter aborts with
"deallocating None". 6.11.3 does not, which is why pyproject.toml pins it. If someone moves the pin to
a leaking release, this fails instead of the display crashing an hour into a session.
"""

from __future__ import annotations

import sys

import pyqtgraph as pg
import pytest


# From Python 3.12 None is immortal: its reference count never moves and this could not fail there.
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12: nothing to measure")
def test_adding_and_removing_plot_items_does_not_leak_none_references(qapp) -> None:
    plot = pg.PlotWidget()
    plot.resize(400, 300)
    plot.show()
    before = sys.getrefcount(None)
    for _ in range(200):
        line = pg.InfiniteLine(pos=1.0)
        plot.addItem(line)
        plot.removeItem(line)
        plot.repaint()
    leaked = before - sys.getrefcount(None)
    assert leaked < 100, f"the Qt binding dropped {leaked} references to None: do not pin this PySide6 release"
