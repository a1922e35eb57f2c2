"""The main curve: the chosen measure per block against session time, with the context to read it.

Baseline mean and band, percent change on the right axis, planned phases shaded, real events as
labelled lines, the smoothed trend, CRLB error bars. Blocks that did not fit cleanly appear as
crosses on the time axis instead of as data. Plot items are created once and updated with setData.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from gui.drawing import (
    apply_range_now,
    cache_text_items,
    column_extents,
    fixed_axis_units,
    paint_whole_viewport,
    paints_nothing,
    peak_decimate,
    set_data,
    set_data_if_changed,
    set_y_sticky,
)
from gui.model import DrawnVersions, SessionModel, percent_change
from gui.theme import AXIS_PT, TITLE_PT, Theme
from mrs.results import EventRecord

DENSE_POINTS = 400   # above this many blocks the measure draws as a line, not as spots
ERROR_ALPHA = 150    # opacity of one CRLB bar
TREND_POINTS = 250   # vertices of the trend line (smooth: sigma >= 1 min, so 250 draw the same curve)


class PercentAxis(pg.AxisItem):
    """A right-hand axis that labels the left axis's values as percent change from a baseline.

    Ticks are chosen at round percentages (not at round values of the measure) and mapped back.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("right", **kwargs)
        self.enableAutoSIPrefix(False)
        self.base = math.nan

    def set_baseline(self, mean: float) -> None:
        if mean == self.base or (math.isnan(mean) and math.isnan(self.base)):
            return
        self.base = mean
        self.picture = None
        self.update()

    def _valid(self) -> bool:
        return math.isfinite(self.base) and self.base != 0.0

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list:  # noqa: N802 (Qt name)
        if not self._valid():
            return []
        p = sorted(((minVal / self.base - 1) * 100, (maxVal / self.base - 1) * 100))
        levels = super().tickValues(p[0], p[1], size)
        scale = abs(self.base) / 100.0
        return [(spacing * scale, [self.base * (1 + v / 100.0) for v in vals]) for spacing, vals in levels]

    def tickStrings(self, values: list, scale: float, spacing: float) -> list[str]:  # noqa: N802
        if not self._valid():
            return ["" for _ in values]
        pct_spacing = spacing / abs(self.base) * 100.0
        decimals = 0 if pct_spacing >= 1 else (1 if pct_spacing >= 0.1 else 2)
        out = []
        for v in values:
            p = (v / self.base - 1) * 100
            out.append("0%" if abs(p) < 0.5 * 10 ** -decimals else f"{p:+.{decimals}f}%")
        return out


EVENT_LABELS = {
    "infusion_start": "▶ infusion start", "infusion_stop": "■ infusion stop", "infusion_pause": "❚❚ pause",
    "infusion_resume": "▶ resume", "pump_rate": "pump", "vitals": "vitals", "rating": "rating",
    "pretreatment": "pretreatment", "sequence_change": "sequence", "shim": "shim", "motion": "motion",
    "note": "note",
}


def event_label(e: EventRecord) -> str:
    """Short text for an event line: the kind, plus the key values a technician wants to see."""
    kind = e.kind
    v = e.value
    text = EVENT_LABELS.get(kind, kind)
    if kind == "vitals" and v:
        bp = f"{v.get('sys_mmhg', '?')}/{v.get('dia_mmhg', '?')}" if "sys_mmhg" in v else ""
        hr = f" HR {v['hr_bpm']}" if "hr_bpm" in v else ""
        text = f"BP {bp}{hr}".strip()
    elif kind == "pump_rate" and "ml_per_h" in v:
        text = f"pump {v['ml_per_h']:g} ml/h"
    elif kind == "rating" and v:
        text = f"{v.get('scale', 'rating')} {v.get('score', '')}".strip()
    elif kind == "note" and e.note:
        note = e.note
        text = "✎ " + (note if len(note) <= 18 else note[:17] + "…")
    return text


class MainCurvePanel(QtWidgets.QWidget):
    """Measure selector, baseline summary and the plot. `block_clicked(block)` on a point click."""

    block_clicked = QtCore.Signal(int)

    def __init__(self, model: SessionModel, theme: Theme, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.model, self.t = model, theme
        self._versions = DrawnVersions(model)
        self._left_label = ""
        self._drawn_base: tuple[float, float] | None = None
        self._bars: tuple[np.ndarray, np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0), np.zeros(0))
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addLayout(self._build_header())
        self.plot, self.pi = self._build_plot(theme)
        lay.addWidget(self.plot, 1)
        self._build_items(theme)
        cache_text_items(self.plot)

    def _build_header(self) -> QtWidgets.QHBoxLayout:
        """Caption, measure selector and the baseline summary."""
        head = QtWidgets.QHBoxLayout()
        self.title = QtWidgets.QLabel("Measure")  # plain caption; the combo names the measure
        f = self.title.font()
        f.setPointSize(TITLE_PT + 2)
        f.setBold(True)
        self.title.setFont(f)
        self.combo = QtWidgets.QComboBox()
        self.combo.setMinimumWidth(130)
        self.combo.setToolTip("Measure to plot: ratio or metabolite (institutional units)")
        self.combo.currentTextChanged.connect(self._on_measure)
        self.summary = QtWidgets.QLabel("")
        self.summary.setObjectName("muted")
        head.addWidget(self.title)
        head.addWidget(self.combo)
        head.addSpacing(12)
        head.addWidget(self.summary, 1)
        return head
    def _build_plot(self, theme: Theme) -> tuple[pg.PlotWidget, pg.PlotItem]:
        self.pct_axis = PercentAxis()
        plot = pg.PlotWidget(background=theme.background, axisItems={"right": self.pct_axis})
        paint_whole_viewport(plot)
        pi = plot.getPlotItem()
        pi.showAxis("right")
        # No pyqtgraph grid: it costs ~10 ms a frame in software rendering; the baseline lines,
        # the band and the percent axis give the reference instead.
        pi.setClipToView(True)
        pi.setDownsampling(auto=True, mode="peak")
        pi.setMenuEnabled(False)
        for name in ("left", "bottom", "right"):
            ax = pi.getAxis(name)
            ax.setPen(pg.mkPen(theme.muted))
            ax.setTextPen(pg.mkPen(theme.text))
            font = QtGui.QFont()
            font.setPointSize(AXIS_PT)
            ax.setStyle(tickFont=font)
        pi.setLabel("bottom", "session time", units="min", **{"font-size": f"{AXIS_PT}pt", "color": theme.text})
        fixed_axis_units(pi)
        return plot, pi

    def _build_items(self, theme: Theme) -> None:
        """The plot's items and legend."""
        pi = self.pi
        # Items created once; redraws only call setData / setRegion / setPos.
        self.phase_items: list[pg.GraphicsObject] = []
        self.event_items: list[pg.GraphicsObject] = []
        self.band = pg.LinearRegionItem(orientation="horizontal", movable=False,
                                        brush=pg.mkBrush(theme.rgba(theme.band, 38)),
                                        pen=pg.mkPen(None))
        self.band.setZValue(-5)
        for line in self.band.lines:
            line.setPen(pg.mkPen(None))
            paints_nothing(line)
        self.base_line = pg.InfiniteLine(angle=0, movable=False,
                                         pen=pg.mkPen(theme.baseline, width=1.5, style=QtCore.Qt.DashLine))
        self.errors = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), height=np.zeros(0),
                                      pen=pg.mkPen(theme.rgba(theme.data, ERROR_ALPHA), width=1), beam=0.0)
        self.error_core = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), height=np.zeros(0),
                                          pen=pg.mkPen(theme.rgba(theme.data, ERROR_ALPHA), width=1), beam=0.0)
        self.error_core.hide()
        # Spots are ScatterPlotItems, not PlotDataItems (which wrap a scatter and a curve): one
        # item instead of three for Qt to visit, with Python calls, on every repaint.
        self.points = pg.ScatterPlotItem(symbol="o", size=9, brush=pg.mkBrush(theme.data),
                                         pen=pg.mkPen(theme.background, width=1))
        # Dense series (sliding windows) draw as a thin line: a scatter of thousands of spots
        # costs tens of ms per update in pyqtgraph.
        self.dense = pg.PlotCurveItem(pen=pg.mkPen(theme.data, width=1))
        # Plain curves are PlotCurveItems: a PlotDataItem's setData costs several times more.
        self.trend_curve = pg.PlotCurveItem(pen=pg.mkPen(theme.trend, width=3.5))
        # blocks fitted before the session reference exists: open circles until their revision
        self.provisional = pg.ScatterPlotItem(symbol="o", size=9, brush=pg.mkBrush(theme.background),
                                              pen=pg.mkPen(theme.data, width=2))
        self.failed = pg.ScatterPlotItem(symbol="x", size=13, brush=pg.mkBrush(theme.threshold),
                                         pen=pg.mkPen(theme.threshold, width=2.5))
        self.selected = pg.ScatterPlotItem(symbol="o", size=18, brush=pg.mkBrush(None),
                                           pen=pg.mkPen(theme.text, width=2.5))
        for item in (self.band, self.base_line, self.errors, self.error_core, self.dense, self.trend_curve,
                     self.points, self.provisional, self.failed, self.selected):
            pi.addItem(item)
        self.band.hide()
        self.base_line.hide()
        pi.scene().sigMouseClicked.connect(self._on_click)
        # merged error bars follow the pixel columns: redo them when the view is resized or scaled
        pi.getViewBox().sigResized.connect(self._draw_errors)
        pi.getViewBox().sigXRangeChanged.connect(self._draw_errors)
        self.legend = pg.LegendItem(offset=(60, 4), labelTextColor=theme.text, colCount=3,
                                    brush=pg.mkBrush(theme.rgba(theme.panel, 200)), labelTextSize=f"{AXIS_PT}pt")
        self.legend.setParentItem(pi.getViewBox())
        # a stand-in sample, so the real spots can be hidden when a dense series draws as a line
        self._points_sample = pg.ScatterPlotItem(symbol="o", size=9, brush=pg.mkBrush(theme.data),
                                                 pen=pg.mkPen(theme.background, width=1))
        self.legend.addItem(self._points_sample, "block ± CRLB   (right axis: % vs baseline)")
        self.legend.addItem(self.trend_curve, "trend")
        # A stand-in sample: a legend entry for an InfiniteLine crashes pyqtgraph's ItemSample.
        self._base_sample = pg.PlotDataItem(pen=pg.mkPen(theme.baseline, width=1.5, style=QtCore.Qt.DashLine))
        self.legend.addItem(self._base_sample, "baseline mean ± SD")
        self._provisional_in_legend = False

    # ---- user input ----
    def _on_measure(self, text: str) -> None:
        if text:
            self.model.set_measure(text)

    def _on_click(self, ev: Any) -> None:
        """A click near a block (within 12 px in time) freezes the spectrum on that block."""
        vb = self.pi.getViewBox()
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        x = vb.mapSceneToView(ev.scenePos()).x()
        block = self.nearest_block(x, max_dx=12 * vb.viewPixelSize()[0])
        if block is not None:
            self.block_clicked.emit(block)

    def nearest_block(self, t_min: float, max_dx: float = float("inf")) -> int | None:
        t = self.model.col("t_min")
        if not len(t):
            return None
        i = int(np.nanargmin(np.abs(t - t_min)))
        return int(self.model.col("block")[i]) if abs(t[i] - t_min) <= max_dx else None

    # ---- redraw ----
    def refresh(self) -> None:
        if self._versions.changed("session"):
            self._draw_plan()
        measures_changed = self._versions.changed("results", "measure")
        if measures_changed:
            self._fill_combo()
        events_changed = self._versions.changed("events")
        if events_changed:
            self._draw_events()
        if measures_changed or events_changed:
            self._draw_data()
        if self._versions.changed("selection"):
            self._draw_selection()

    def _fill_combo(self) -> None:
        names = self.model.available_measures()
        if [self.combo.itemText(i) for i in range(self.combo.count())] != names:
            was = self.combo.blockSignals(True)
            self.combo.clear()
            self.combo.addItems(names)
            self.combo.blockSignals(was)
        if self.combo.currentText() != self.model.measure:
            was = self.combo.blockSignals(True)
            self.combo.setCurrentText(self.model.measure)
            self.combo.blockSignals(was)
        if self._left_label != self.model.measure:  # a label change re-lays out and repaints the axis
            self._left_label = self.model.measure
            self.pi.setLabel("left", self.model.measure, **{"font-size": f"{AXIS_PT}pt", "color": self.t.text})

    def _draw_plan(self) -> None:
        for item in self.phase_items:
            self.pi.removeItem(item)
        self.phase_items = []
        plan = self.model.plan
        for i, ph in enumerate(plan.get("phases") or []):
            colour = self.t.phase_fills[i % len(self.t.phase_fills)]
            # opaque, pre-mixed with the background: phases never overlap, and an opaque fill
            # costs a fraction of a translucent one in software rendering
            region = pg.LinearRegionItem(values=(float(ph["start_min"]), float(ph["end_min"])), movable=False,
                                         brush=pg.mkBrush(self.t.on_background(colour, 30)), pen=pg.mkPen(None))
            for line in region.lines:
                line.setPen(pg.mkPen(None))
                paints_nothing(line)
            region.setZValue(-10)
            label = pg.InfiniteLine(pos=float(ph["start_min"]), angle=90, movable=False,
                                    pen=pg.mkPen(None), label=str(ph["name"]),
                                    labelOpts={"position": 0.03, "color": self.t.muted, "anchors": [(0, 1), (0, 1)],
                                               "fill": None})
            paints_nothing(label)  # it only carries the phase's name
            label.label.setFont(_font(AXIS_PT))
            for it in (region, label):
                self.pi.addItem(it)
                self.phase_items.append(it)
        cache_text_items(self.plot)
        duration = float(plan.get("duration_min") or 0) or None
        if duration:
            self.pi.setXRange(0, duration, padding=0.01)

    def _draw_events(self) -> None:
        for item in self.event_items:
            self.pi.removeItem(item)
        self.event_items = []
        m = self.model
        real_kinds = {e.kind for e in m.events}
        for e in m.plan.get("events") or []:
            if e.get("kind") in real_kinds or e.get("at_min") is None or float(e["at_min"]) < 0:
                continue
            line = pg.InfiniteLine(pos=float(e["at_min"]), angle=90, movable=False,
                                   pen=pg.mkPen(self.t.planned, width=1, style=QtCore.Qt.DotLine))
            line.setToolTip(f"planned {e.get('kind')}")
            self.pi.addItem(line)
            self.event_items.append(line)
        positions = [0.81, 0.73, 0.65]
        for i, e in enumerate(m.events):
            if e.t_s is None:
                continue
            major = e.kind in ("infusion_start", "infusion_stop")
            line = pg.InfiniteLine(pos=e.t_s / 60.0, angle=90, movable=False,
                                   pen=pg.mkPen(self.t.event, width=2.5 if major else 1.2),
                                   label=event_label(e),
                                   labelOpts={"position": positions[i % len(positions)], "color": self.t.event,
                                              "fill": pg.mkBrush(self.t.rgba(self.t.background, 190)),
                                              "anchors": [(0, 0.5), (0, 0.5)]})
            line.label.setFont(_font(AXIS_PT - 1))
            line.setToolTip(f"{e.kind} at {e.t_s / 60:.1f} min ({e.source})")
            self.pi.addItem(line)
            self.event_items.append(line)
        cache_text_items(self.plot)

    def _draw_data(self) -> None:
        m = self.model
        t = m.col("t_min")
        v = m.plotted_values()
        err = m.col("err")
        good = np.isfinite(v)
        dense = len(t) > DENSE_POINTS
        prov = good & (m.col("provisional") > 0.5)
        final = good & ~prov
        set_data_if_changed(self.points, t[final] if not dense else [], v[final] if not dense else [], hide_empty=True)
        set_data_if_changed(self.provisional, t[prov] if not dense else [], v[prov] if not dense else [],
                            hide_empty=True)
        shown = bool(prov.any()) and not dense  # a hidden item in a legend shows an "invisible" eye
        if shown != self._provisional_in_legend:
            if shown:
                self.legend.addItem(self.provisional, "provisional (refitted once the session reference is set)")
            else:
                self.legend.removeItem(self.provisional)
            self._provisional_in_legend = shown
        if dense:  # about four blocks per pixel column: draw each column's extremes
            set_data(self.dense, *peak_decimate(t, v, int(self.pi.getViewBox().width())), connect="finite")
            self.dense.show()
        else:
            set_data_if_changed(self.dense, [], [], hide_empty=True)
        e = np.where(np.isfinite(err), err, 0.0)[good]
        self._bars = (t[good], v[good] - e, v[good] + e)
        self._draw_errors()
        trend = m.trend()
        step = max(1, len(t) // TREND_POINTS)  # the trend is smooth: fewer vertices, same line
        self.trend_curve.setData(t[::step], trend[::step], connect="finite")
        base = m.baseline()
        self.pct_axis.set_baseline(base.mean if base.valid else math.nan)
        if base.valid:
            if self._drawn_base != (base.mean, base.sd):
                self._drawn_base = (base.mean, base.sd)
                self.base_line.setPos(base.mean)
                self.band.setRegion((base.mean - base.sd, base.mean + base.sd))
            self.base_line.show()
            self.band.show()
            last = percent_change(trend[-1:], base.mean) if len(trend) else np.array([math.nan])
            change = f"   now {last[0]:+.1f}% (trend)" if np.isfinite(last[0]) else ""
            planned = "" if any(ev.kind == "infusion_start" for ev in m.events) else " (planned start)"
            self._summary(f"baseline {base.mean:.3g} ± {base.sd:.2g}, n = {base.n} blocks{planned}{change}")
        else:
            self.base_line.hide()
            self.band.hide()
            self._summary("baseline: waiting for blocks before the infusion start")
        bad = ~(m.col("ok") > 0.5)
        y_bad = float(np.nanmedian(v)) if good.any() and bad.any() else 0.0
        set_data_if_changed(self.failed, t[bad], np.full(int(bad.sum()), y_bad), hide_empty=True)
        self._set_y_range(v[good], e, base)
        if len(t) and t[-1] > self.pi.getViewBox().viewRange()[0][1]:
            self.pi.setXRange(0, float(t[-1]) * 1.1, padding=0.01)
            apply_range_now(self.pi)

    def _summary(self, text: str) -> None:
        if self.summary.text() != text:
            self.summary.setText(text)

    def _draw_errors(self, *_args: object) -> None:
        """CRLB bars. More bars than pixel columns (a sliding window) are merged per column into
        a union and a core layer. Qt blends each overlapping translucent bar again: where all k
        bars of a column overlap they showed 1 - (1 - a)^k opaque, fading to a at their tips.
        The union gets the opacity of k/2 bars (the fringe's average) and the core the rest, so
        the look stays with two strokes per column instead of k."""
        t0, lo, hi = self._bars
        vb = self.pi.getViewBox()
        (x0, x1), _ = vb.viewRange()
        t, lo, hi, core_lo, core_hi = column_extents(t0, lo, hi, x0, x1, max(1, int(vb.width())))
        k = len(t0) / len(t) if len(t) else 1.0
        a = ERROR_ALPHA / 255
        union = 1 - (1 - a) ** max(1.0, k / 2)
        core = (1 - (1 - a) ** k - union) / (1 - union) if union < 1 else 0.0
        self._set_error_pen(self.errors, round(255 * union))
        self.errors.setData(x=t, y=(lo + hi) / 2, height=hi - lo)
        inside = core_hi > core_lo
        if k > 1.0 and inside.any():
            self._set_error_pen(self.error_core, round(255 * core))
            self.error_core.setData(x=t[inside], y=(core_lo[inside] + core_hi[inside]) / 2,
                                    height=core_hi[inside] - core_lo[inside])
            self.error_core.show()
        else:
            self.error_core.hide()

    def _set_error_pen(self, item: pg.ErrorBarItem, alpha: int) -> None:
        if item.opts["pen"].color().alpha() != alpha:
            item.setData(pen=pg.mkPen(self.t.rgba(self.t.data, alpha), width=1))

    def _set_y_range(self, v: np.ndarray, e: np.ndarray, base: Any) -> None:
        if not len(v):
            return
        lo = float(np.min(v - e))
        hi = float(np.max(v + e))
        if base.valid:
            lo, hi = min(lo, base.mean - base.sd), max(hi, base.mean + base.sd)
        span = hi - lo or abs(hi) * 0.1 or 1.0
        set_y_sticky(self.pi, lo - 0.08 * span, hi + 0.30 * span)  # headroom for event labels

    def _draw_selection(self) -> None:
        b = self.model.selected_block
        r = self.model.result(b) if b is not None else None
        if r is None or r.t_s is None:
            set_data_if_changed(self.selected, [], [], hide_empty=True)
            return
        v = self.model.plotted_values()
        i = int(np.searchsorted(self.model.col("block"), b))
        y = v[i] if i < len(v) and np.isfinite(v[i]) else float(np.nanmedian(v)) if np.isfinite(v).any() else 0
        set_data_if_changed(self.selected, [float(r.t_s) / 60.0], [y], hide_empty=True)


def _font(pt: int) -> QtGui.QFont:
    f = QtGui.QFont()
    f.setPointSize(pt)
    return f

