"""The spectrum of one block: data, fit, baseline, residual below, metabolite components on demand.

Shows the newest block unless the user froze one by clicking it on the main curve. Arrays come
from the model's bounded cache; a missing block is requested through `fetch(block)` (a stored npz
in review mode, the control op `block` live) and drawn when it arrives.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from gui.drawing import (
    apply_range_now,
    cache_text_items,
    fixed_axis_units,
    paint_whole_viewport,
    set_data,
    set_data_if_changed,
)
from gui.model import SessionModel
from gui.theme import AXIS_PT, COMPONENT_CYCLE, TITLE_PT, Theme

# Components are drawn as a few groups a technician knows; everything else in the basis
# (macromolecules, lipids, minor metabolites) is summed into one "other" curve.
COMPONENT_GROUPS = (
    ("Glu", ("Glu",)), ("Gln", ("Gln",)), ("tNAA", ("NAA", "NAAG")), ("tCr", ("Cr", "PCr")),
    ("tCho", ("GPC", "PCh")), ("mI", ("mI",)), ("GABA", ("GABA",)), ("GSH", ("GSH",)),
)


def key_components(components: dict) -> dict:
    """Grouped component curves in display order, plus the sum of the rest as "other"."""
    used: set[str] = set()
    out: dict[str, np.ndarray] = {}
    for name, members in COMPONENT_GROUPS:
        present = [np.asarray(components[m]) for m in members if m in components]
        used.update(members)
        if present:
            out[name] = np.sum(present, axis=0)
    rest = [np.asarray(v) for k, v in components.items() if k not in used]
    if rest:
        out["other"] = np.sum(rest, axis=0)
    return out


class SpectrumPanel(QtWidgets.QWidget):
    def __init__(self, model: SessionModel, theme: Theme, fetch: Callable[[int], None] | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.model, self.t, self.fetch = model, theme, fetch
        self._drawn_key: tuple | None = None
        self._requested: set[int] = set()
        self._unavailable: set[int] = set()
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        head = QtWidgets.QHBoxLayout()
        self.title = QtWidgets.QLabel("Spectrum")
        f = self.title.font()
        f.setPointSize(TITLE_PT)
        f.setBold(True)
        self.title.setFont(f)
        self.components_box = QtWidgets.QCheckBox("components")
        self.components_box.setToolTip("Show each fitted metabolite (C)")
        self.components_box.toggled.connect(lambda _=None: self.refresh(force=True))
        self.follow_button = QtWidgets.QPushButton("Follow latest")
        self.follow_button.setToolTip("Stop showing the frozen block; show each new block (L)")
        self.follow_button.clicked.connect(lambda: self.model.select_block(None))
        head.addWidget(self.title, 1)
        head.addWidget(self.components_box)
        head.addWidget(self.follow_button)
        lay.addLayout(head)
        self.plot = pg.PlotWidget(background=theme.background)
        paint_whole_viewport(self.plot)
        lay.addWidget(self.plot, 1)
        pi = self.plot.getPlotItem()
        self.pi = pi
        pi.invertX(True)  # high ppm on the left, as spectroscopists read it
        pi.setMenuEnabled(False)
        pi.hideAxis("left")
        ax = pi.getAxis("bottom")
        ax.setPen(pg.mkPen(theme.muted))
        ax.setTextPen(pg.mkPen(theme.text))
        font = QtGui.QFont()
        font.setPointSize(AXIS_PT)
        ax.setStyle(tickFont=font)
        fixed_axis_units(pi)
        pi.setLabel("bottom", "chemical shift (ppm)", **{"font-size": f"{AXIS_PT}pt", "color": theme.text})
        # PlotCurveItems, not PlotDataItems: they are redrawn on every block, and a PlotDataItem's
        # setData costs several times more for the same line.
        self.data = pg.PlotCurveItem(pen=pg.mkPen(theme.spec_data, width=1))
        self.fit = pg.PlotCurveItem(pen=pg.mkPen(theme.spec_fit, width=2.2))
        self.baseline = pg.PlotCurveItem(pen=pg.mkPen(theme.spec_baseline, width=1.5, style=QtCore.Qt.DashLine))
        self.residual = pg.PlotCurveItem(pen=pg.mkPen(theme.spec_residual, width=1))
        self.components: dict[str, pg.PlotDataItem] = {}
        self._legend_names: set[str] = set()
        for item in (self.data, self.baseline, self.fit, self.residual):
            pi.addItem(item)
        self.legend = pg.LegendItem(offset=(-8, 8), labelTextColor=theme.text,
                                    brush=pg.mkBrush(theme.rgba(theme.panel, 200)), labelTextSize=f"{AXIS_PT - 1}pt")
        self.legend.setParentItem(pi.getViewBox())
        self.legend.addItem(self.data, "data")
        self.legend.addItem(self.fit, "fit")
        self.legend.addItem(self.baseline, "baseline")
        self.legend.addItem(self.residual, "residual")
        self.message = pg.TextItem("", color=theme.muted, anchor=(0.5, 0.5))
        self.message.setFont(font)
        pi.addItem(self.message)
        cache_text_items(self.plot)
        window = (self.model.plan.get("fit_window_ppm") or [0.2, 4.2])
        pi.setXRange(float(window[0]), float(window[1]), padding=0.01)

    def refresh(self, force: bool = False) -> None:
        m = self.model
        block = m.displayed_block()
        spec = m.spectra.get(block) if block is not None else None
        key = (block, id(spec), m.version("selection"), m.version("session"), self.components_box.isChecked())
        if key == self._drawn_key and not force:
            return
        self._drawn_key = key
        frozen = m.selected_block is not None
        self.follow_button.setEnabled(frozen)
        if block is None:
            self._clear("no block fitted yet")
            self.title.setText("Spectrum")
            return
        r = m.result(block)
        when = f" · {float(r.t_s) / 60:.1f} min" if r and r.t_s is not None else ""
        status = r.qc.fit_status if r else "?"
        self.title.setText(f"Block {block}{when} · fit {status}" + ("  (frozen)" if frozen else "  (latest)"))
        if (spec is None or "ppm" not in spec) and self.fetch is not None and block not in self._requested:
            self._requested.add(block)
            self.fetch(block)  # review answers at once, live later through the model
            spec = m.spectra.get(block)
            self._drawn_key = (block, id(spec), m.version("selection"), m.version("session"),
                               self.components_box.isChecked())
        if spec is None or "ppm" not in spec:
            waiting = m.live and block in self._requested and block not in self._unavailable
            self._clear("loading spectrum…" if waiting else "no spectrum stored for this block")
            return
        if spec.get("_full"):
            self._requested.discard(block)
        elif self.components_box.isChecked() and self.fetch is not None and block not in self._requested:
            self._requested.add(block)  # the compact published spectrum has no components: ask for them
            self.fetch(block)
        self._draw(spec)

    def mark_unavailable(self, block: int) -> None:
        """The agent could not send this block's arrays: say so instead of waiting forever."""
        self._unavailable.add(int(block))
        self.refresh(force=True)

    def _clear(self, text: str) -> None:
        for item in [self.data, self.fit, self.baseline, self.residual, *self.components.values()]:
            set_data_if_changed(item, [], [])
        self._message(text)
        vb = self.pi.getViewBox()
        (x0, x1), (y0, y1) = vb.viewRange()
        self.message.setPos((x0 + x1) / 2, (y0 + y1) / 2)

    def _message(self, text: str) -> None:
        if self.message.toPlainText() != text:
            self.message.setText(text)

    def _draw(self, spec: dict) -> None:
        self._message("")
        ppm = spec["ppm"]
        data = spec.get("data")
        fit = spec.get("fit")
        base = spec.get("baseline")
        for item, y in ((self.data, data), (self.fit, fit), (self.baseline, base)):
            set_data(item, ppm if y is not None else ppm[:0], y if y is not None else ppm[:0])
        top = float(np.nanmax(data)) if data is not None and len(data) else 1.0
        bottom = float(np.nanmin(data)) if data is not None and len(data) else 0.0
        span = (top - bottom) or 1.0
        if data is not None and fit is not None:
            resid = np.asarray(data) - np.asarray(fit)
            offset = bottom - 0.12 * span - float(np.nanmax(resid))
            set_data(self.residual, ppm, resid + offset)
            bottom = offset + float(np.nanmin(resid))
        else:
            set_data(self.residual, ppm[:0], ppm[:0])
        show = self.components_box.isChecked()
        comps = key_components(spec.get("components") or {})
        for name, y in comps.items():
            item = self.components.get(name)
            if item is None:
                # never the fit's colour; no yellow on a light background; dashed once colours run out
                palette = [c for c in COMPONENT_CYCLE if c != self.t.spec_fit
                           and not (self.t.name == "light" and c == "#F0E442")]
                k = len(self.components)
                style = QtCore.Qt.SolidLine if k < len(palette) else QtCore.Qt.DashLine
                colour = self.t.muted if name == "other" else palette[k % len(palette)]
                item = pg.PlotDataItem(pen=pg.mkPen(colour, width=2.2 if name == "Glu" else 1.3, style=style))
                self.pi.addItem(item)
                self.components[name] = item
            set_data_if_changed(item, ppm if show else [], y if show else [])
        legend_changed = False
        for name, item in self.components.items():
            if name not in comps:
                set_data_if_changed(item, [], [])
            in_legend = name in self._legend_names
            wanted = show and name in comps
            if wanted and not in_legend:
                self.legend.addItem(item, name)
                self._legend_names.add(name)
                legend_changed = True
            elif in_legend and not wanted:
                self.legend.removeItem(item)
                self._legend_names.discard(name)
        if legend_changed:
            cache_text_items(self.plot)
        self._set_ranges(float(np.min(ppm)), float(np.max(ppm)), bottom - 0.03 * span, top + 0.08 * span)

    def _set_ranges(self, x_lo: float, x_hi: float, y_lo: float, y_hi: float) -> None:
        """Fit the view to the spectrum, skipping y changes under 4% of the span (x: 0.1%) as
        long as the data stay inside the view: a range change notifies every item and the axis
        (about 1 ms), and successive blocks of noisy data differ by a few percent."""
        (x0, x1), (y0, y1) = self.pi.getViewBox().viewRange()
        pad = 0.01 * (x_hi - x_lo)
        if abs(x0 - (x_lo - pad)) > 1e-3 * (x_hi - x_lo) or abs(x1 - (x_hi + pad)) > 1e-3 * (x_hi - x_lo):
            self.pi.setXRange(x_lo, x_hi, padding=0.01)
        span = y_hi - y_lo
        data_inside = y0 <= y_lo + 0.025 * span and y1 >= y_hi - 0.07 * span  # within the margins
        close = abs(y0 - y_lo) <= 0.04 * span and abs(y1 - y_hi) <= 0.04 * span
        if not (data_inside and close):
            self.pi.setYRange(y_lo, y_hi, padding=0)
        apply_range_now(self.pi)
