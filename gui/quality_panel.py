"""Quality traces per block, with the plan's alarm thresholds drawn as lines.

Six small plots sharing the main curve's time axis: frequency offset, drift, NAA linewidth, SNR,
rejected transients (stacked by reason) and the CRLB of the measure. A value beyond its threshold
shows as a vermillion point so the technician can find the block that turned the light amber.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from gui.drawing import (
    cache_text_items,
    fixed_axis_units,
    paint_whole_viewport,
    peak_decimate,
    set_data_if_changed,
    set_y_sticky,
)
from gui.main_curve import DENSE_POINTS
from gui.model import DrawnVersions, SessionModel
from gui.theme import AXIS_PT, COMPONENT_CYCLE, Theme

# (column, title, unit, threshold key, symmetric threshold)
TRACES = (
    ("freq_offset_hz", "Frequency offset", "Hz", None, False),
    ("drift_hz_per_min", "Drift", "Hz/min", "drift_hz_per_min", True),
    ("naa_fwhm_hz", "NAA linewidth", "Hz", "naa_fwhm_hz", False),
    ("snr", "SNR", "", None, False),
    ("n_rejected", "Rejected transients", "", None, False),
    ("crlb", "CRLB of measure", "%", "glu_crlb_pct", False),
)


class QualityPanel(pg.GraphicsLayoutWidget):
    def __init__(self, model: SessionModel, theme: Theme, x_link: pg.PlotItem | None = None) -> None:
        super().__init__()
        self.setBackground(theme.background)
        paint_whole_viewport(self)
        self.model, self.t = model, theme
        self._versions = DrawnVersions(model)
        self.plots: dict[str, pg.PlotItem] = {}
        self.curves: dict[str, pg.PlotCurveItem] = {}
        self.over: dict[str, pg.ScatterPlotItem] = {}
        self.limits: dict[str, list[pg.InfiniteLine]] = {}
        self.reject_bars: dict[str, pg.BarGraphItem] = {}
        self._titles: dict[str, str] = {}
        font = QtGui.QFont()
        font.setPointSize(AXIS_PT - 1)
        for i, (col, title, unit, key, symmetric) in enumerate(TRACES):
            p = self.addPlot(row=i // 3, col=i % 3)
            p.setMenuEnabled(False)
            p.setTitle(f"{title} ({unit})" if unit else title, color=theme.text, size=f"{AXIS_PT}pt")
            p.setClipToView(True)
            p.setDownsampling(auto=True, mode="peak")
            for name in ("left", "bottom"):
                ax = p.getAxis(name)
                ax.setPen(pg.mkPen(theme.muted))
                ax.setTextPen(pg.mkPen(theme.text))
                ax.setStyle(tickFont=font)
            fixed_axis_units(p)
            p.getAxis("left").setWidth(48)
            if i < 3:  # the top row shares the bottom row's time axis: fewer axes to draw
                p.getAxis("bottom").setStyle(showValues=False)
            if col != "n_rejected":
                # thin line, no spots: cheap to stroke and to update at 3600 points; a
                # PlotCurveItem, whose setData costs a fraction of a PlotDataItem's
                curve = pg.PlotCurveItem(pen=pg.mkPen(theme.data, width=1))
                over = pg.ScatterPlotItem(symbol="o", size=8, brush=pg.mkBrush(theme.threshold), pen=pg.mkPen(None))
                over.hide()  # shown only while some value is over its limit (an empty scatter still paints)
                p.addItem(curve)
                p.addItem(over)
                self.curves[col], self.over[col] = curve, over
            if key is not None:
                lines = [pg.InfiniteLine(angle=0, movable=False,
                                         pen=pg.mkPen(theme.threshold, width=1.3, style=QtCore.Qt.DashLine))
                         for _ in range(2 if symmetric else 1)]
                for line in lines:
                    p.addItem(line)
                self.limits[col] = lines
            self.plots[col] = p
        for c in range(3):
            self.ci.layout.setColumnStretchFactor(c, 1)
        # Rejection reasons get a legend inside their plot (a long title would widen the column).
        self.reject_legend = pg.LegendItem(offset=(-4, 2), labelTextColor=theme.text, colCount=4,
                                           labelTextSize=f"{AXIS_PT - 2}pt",
                                           brush=pg.mkBrush(theme.rgba(theme.panel, 190)))
        self.reject_legend.setParentItem(self.plots["n_rejected"].getViewBox())
        cache_text_items(self)

        # decimated traces follow the plots' width in pixels
        self.plots["freq_offset_hz"].getViewBox().sigResized.connect(self._redraw_traces)

        if x_link is not None:
            # Follow the main curve's time range. Not setXLink: pyqtgraph aligns linked views on
            # screen, which shifts the range when the plots differ in width.
            x_link.getViewBox().sigXRangeChanged.connect(self._follow_x)
            self._follow_x(x_link.getViewBox(), x_link.getViewBox().viewRange()[0])

    def _follow_x(self, _vb: object, x_range: tuple[float, float]) -> None:
        for p in self.plots.values():
            p.setXRange(float(x_range[0]), float(x_range[1]), padding=0)

    def refresh(self) -> None:
        if self._versions.changed("session"):
            self._draw_thresholds()
        if self._versions.changed("results", "measure"):
            self._draw_traces()

    def _redraw_traces(self, *_args: object) -> None:
        if self.model.rows:
            self._draw_traces()

    def _title(self, col: str, text: str) -> None:
        """Set a plot title only when it changes (a title is HTML layout: ~1 ms each)."""
        if self._titles.get(col) != text:
            self._titles[col] = text
            self.plots[col].setTitle(text, color=self.t.text, size=f"{AXIS_PT}pt")

    def _threshold(self, col: str) -> float | None:
        for c, _t, _u, key, _s in TRACES:
            if c == col and key is not None:
                return float(self.model.thresholds[key])
        return None

    def _draw_thresholds(self) -> None:
        for col, lines in self.limits.items():
            thr = self._threshold(col)
            if thr is None:
                continue
            lines[0].setPos(thr)
            if len(lines) > 1:
                lines[1].setPos(-thr)

    def _draw_traces(self) -> None:
        m = self.model
        t = m.col("t_min")
        self._title("crlb", f"CRLB of {m.measure} (%)")
        width = 2 if len(t) <= DENSE_POINTS else 1  # thick lines cost ms per frame at thousands of points
        for col, curve in self.curves.items():
            y = m.col(col)
            if curve.opts["pen"].width() != width:
                curve.setPen(pg.mkPen(self.t.data, width=width))
            # a sliding window has about eight points per pixel here: draw each column's extremes
            curve.setData(*peak_decimate(t, y, int(self.plots[col].getViewBox().width())), connect="finite")
            thr = self._threshold(col)
            if thr is not None:
                with np.errstate(invalid="ignore"):
                    bad = np.abs(y) > thr if col == "drift_hz_per_min" else y > thr
                set_data_if_changed(self.over[col], t[bad], y[bad], hide_empty=True)
            self._fit_y(col, y, thr)
        self._draw_rejections(t)

    def _fit_y(self, col: str, y: np.ndarray, thr: float | None) -> None:
        finite = y[np.isfinite(y)]
        if not len(finite):
            return
        lo, hi = float(finite.min()), float(finite.max())
        if thr is not None:  # keep the limit in view so distance to it is visible
            hi = max(hi, thr)
            if col == "drift_hz_per_min":
                lo = min(lo, -thr)
        if col in ("naa_fwhm_hz", "snr", "crlb"):
            lo = min(lo, 0.0)
        span = hi - lo or max(abs(hi), 1.0) * 0.2
        set_y_sticky(self.plots[col], lo - 0.08 * span, hi + 0.12 * span)

    def _draw_rejections(self, t: np.ndarray) -> None:
        m = self.model
        width = m.block_spacing_min() * 0.8 if len(t) > 1 else 0.5
        bottom = np.zeros(len(t))
        p = self.plots["n_rejected"]
        rejected = m.rejected()
        for i, (reason, h) in enumerate(rejected.items()):
            colour = COMPONENT_CYCLE[(i + 1) % len(COMPONENT_CYCLE)]
            shown = h > 0  # only blocks with rejections: most of a long session draws no bar
            bars = self.reject_bars.get(reason)
            if bars is None:
                bars = pg.BarGraphItem(x=t[shown], height=h[shown], y0=bottom[shown], width=width,
                                       brush=pg.mkBrush(colour), pen=pg.mkPen(None))
                p.addItem(bars)
                self.reject_bars[reason] = bars
                self.reject_legend.addItem(bars, reason)
                cache_text_items(self)
            else:
                bars.setOpts(x=t[shown], height=h[shown], y0=bottom[shown], width=width)
            bottom = bottom + h
        self._title("n_rejected", "Rejected transients" + ("" if rejected else " (none)"))
        top = float(bottom.max()) if len(bottom) else 0.0
        set_y_sticky(p, 0, max(top * 1.8, float(m.block_transients) * 0.25))  # room for the legend
