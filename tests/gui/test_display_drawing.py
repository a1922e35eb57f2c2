"""Drawing helpers: merged error bars keep the picture, unchanged data is not re-set."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from gui.drawing import column_extents, peak_decimate, set_data, set_data_if_changed, set_y_sticky


def test_column_extents_merges_bars_per_column_to_union_and_core() -> None:
    t = np.array([0.1, 0.2, 0.9, 1.5, 3.2, 3.4])
    lo = np.array([1.0, 0.5, 2.0, 1.0, 0.0, 1.0])
    hi = np.array([2.0, 1.5, 3.0, 4.0, 1.0, 3.0])
    mt, mlo, mhi, clo, chi = column_extents(t, lo, hi, 0.0, 4.0, n_columns=4)  # columns of width 1
    assert mt.tolist() == [0.1, 1.5, 3.2]
    assert mlo.tolist() == [0.5, 1.0, 0.0] and mhi.tolist() == [3.0, 4.0, 3.0]
    assert clo.tolist() == [2.0, 1.0, 1.0] and chi.tolist() == [1.5, 4.0, 1.0]  # first core is empty


def test_column_extents_leaves_sparse_bars_alone() -> None:
    t, lo, hi = np.arange(5.0), np.zeros(5), np.ones(5)
    mt, mlo, mhi, clo, chi = column_extents(t, lo, hi, 0.0, 5.0, n_columns=900)
    assert mt.tolist() == t.tolist() and mlo.tolist() == lo.tolist() and mhi.tolist() == hi.tolist()
    assert clo.tolist() == lo.tolist() and chi.tolist() == hi.tolist()


def test_set_data_if_changed_skips_only_identical_data(qapp) -> None:
    item = pg.PlotCurveItem()
    assert set_data_if_changed(item, [1, 2], [3, np.nan])
    assert not set_data_if_changed(item, np.array([1.0, 2.0]), np.array([3.0, np.nan]))
    assert set_data_if_changed(item, [1, 2], [3, 4])
    assert item.getData()[1].tolist() == [3, 4]


def test_sticky_range_grows_with_room_and_shrinks_when_loose(qapp) -> None:
    plot = pg.PlotItem()
    assert set_y_sticky(plot, 0, 10)  # the first fit is exact
    assert plot.getViewBox().viewRange()[1] == [0, 10]
    assert not set_y_sticky(plot, 1, 9)  # inside: unchanged
    assert set_y_sticky(plot, 0, 12)  # past the top: the top moves a quarter span further
    assert plot.getViewBox().viewRange()[1] == [0, 15]
    assert not set_y_sticky(plot, 0, 14)  # the next blocks fit in that room
    assert set_y_sticky(plot, -1, 14)  # past the bottom: only the bottom moves
    assert plot.getViewBox().viewRange()[1] == [-4.75, 15]
    assert not set_y_sticky(plot, -1.2, 14.2)  # and the top does not come back down
    assert set_y_sticky(plot, 0, 4)  # data fill less than half: fitted again
    assert plot.getViewBox().viewRange()[1] == [0, 4]


def test_peak_decimate_keeps_each_runs_extremes_and_gaps() -> None:
    x = np.arange(12.0)
    y = np.array([0, 5, 1, 2, 2, 2, np.nan, np.nan, np.nan, 3, -4, 1])
    dx, dy = peak_decimate(x, y, n_columns=4)  # runs of 3 points
    assert dx.tolist() == [0, 0, 3, 3, 6, 6, 9, 9]
    assert dy[:4].tolist() == [0, 5, 2, 2] and np.isnan(dy[4:6]).all() and dy[6:].tolist() == [-4, 3]
    short_x, short_y = peak_decimate(x[:5], y[:5], n_columns=4)
    assert short_x.tolist() == x[:5].tolist()  # under three points per column: unchanged


def test_set_data_if_changed_sees_data_set_in_between_and_hides_empty_items(qapp) -> None:
    item = pg.ScatterPlotItem()
    set_data_if_changed(item, [], [], hide_empty=True)
    assert not item.isVisible()
    set_data(item, [1.0], [2.0])  # e.g. a spectrum drawn between two "no spectrum" states
    assert set_data_if_changed(item, [], [], hide_empty=True)
    assert len(item.getData()[0]) == 0 and not item.isVisible()
    set_data_if_changed(item, [1.0], [2.0], hide_empty=True)
    assert item.isVisible()
