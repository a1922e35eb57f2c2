"""The operator window: status strip, main curve, spectrum, quality traces and event buttons.

Review mode reads a stored session; live mode is fed by `gui.link.AgentLink` through Qt signals.
A QTimer redraws at 10 Hz from the model; each panel redraws only the aspects whose version
changed, so an idle display costs almost nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from gui.event_bar import EventBar
from gui.main_curve import MainCurvePanel
from gui.model import SessionModel
from gui.quality_panel import QualityPanel
from gui.review import SessionFolderError, load_block_spectrum
from gui.spectrum_panel import SpectrumPanel
from gui.status_strip import StatusStrip
from gui.theme import Theme, stylesheet, theme

REDRAW_MS = 100


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, model: SessionModel, theme_name: str = "dark", link: Any = None,
                 session_dir: str | Path | None = None, confirm_events: bool = True) -> None:
        super().__init__()
        self.model = model
        self.t: Theme = theme(theme_name)
        self.link = link
        self.session_dir = Path(session_dir) if session_dir else getattr(model, "session_dir", None)
        self.setWindowTitle("mrsmon · " + ("live" if model.live else "review"))
        self.setStyleSheet(stylesheet(self.t))
        self.status_messages: list[str] = []

        central = QtWidgets.QWidget()
        self.setCentralWidget(central)
        outer = QtWidgets.QVBoxLayout(central)
        outer.setContentsMargins(8, 6, 8, 6)
        outer.setSpacing(6)
        self.strip = StatusStrip(model, self.t)
        outer.addWidget(self.strip)

        self.main_curve = MainCurvePanel(model, self.t)
        self.spectrum = SpectrumPanel(model, self.t, fetch=self.fetch_block)
        top = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        top.addWidget(self.main_curve)
        top.addWidget(self.spectrum)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)
        self.quality = QualityPanel(model, self.t, x_link=self.main_curve.pi)
        body = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        body.addWidget(top)
        body.addWidget(self.quality)
        body.setStretchFactor(0, 3)
        body.setStretchFactor(1, 2)
        self.top_splitter, self.body_splitter = top, body
        outer.addWidget(body, 1)

        bottom = QtWidgets.QHBoxLayout()
        self.events = EventBar(confirm=confirm_events)
        self.events.event_requested.connect(self.send_event)
        if not model.live:
            self.events.set_enabled(False, "Review of a stored session: events can only be marked live")
        self.export_button = QtWidgets.QPushButton("Export PNG  [Ctrl+E]")
        self.export_button.setFocusPolicy(QtCore.Qt.NoFocus)
        self.export_button.clicked.connect(self.export_dialog)
        bottom.addWidget(self.events, 1)
        bottom.addWidget(self.export_button)
        outer.addLayout(bottom)
        self._build_menu()

        self.main_curve.block_clicked.connect(model.select_block)
        QtGui.QShortcut(QtGui.QKeySequence("L"), self, activated=lambda: model.select_block(None))
        QtGui.QShortcut(QtGui.QKeySequence("C"), self, activated=self.spectrum.components_box.toggle)
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self.redraw)
        self.timer.start()
        if link is not None:
            self._connect_link(link)
        self.redraw()

    def _build_menu(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        export = QtGui.QAction("Export view as PNG…", self)
        export.setShortcut(QtGui.QKeySequence("Ctrl+E"))
        export.triggered.connect(self.export_dialog)
        file_menu.addAction(export)
        quit_action = QtGui.QAction("Quit", self)
        quit_action.setShortcut(QtGui.QKeySequence("Ctrl+Q"))
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        view = bar.addMenu("&View")
        follow = QtGui.QAction("Follow latest block  (L)", self)
        follow.triggered.connect(lambda: self.model.select_block(None))
        view.addAction(follow)

    # ---- drawing ----
    def redraw(self) -> None:
        self.strip.refresh()
        self.main_curve.refresh()
        self.spectrum.refresh()
        self.quality.refresh()

    # ---- spectra ----
    def fetch_block(self, block: int) -> None:
        """Ask for a block's full arrays: from the session folder, else from the agent."""
        if self.session_dir is not None and not self.model.live:
            try:
                spec = load_block_spectrum(self.session_dir, block)
            except SessionFolderError as exc:
                self.show_message(str(exc))
                return
            if spec is not None:
                self.model.put_spectrum(block, spec, full=True)
            return
        if self.link is not None:
            self.link.request({"op": "block", "block": int(block)})

    # ---- events ----
    def send_event(self, event: dict) -> None:
        if self.link is None:
            self.show_message("not connected to an agent: event not sent")
            return
        self.link.request({"op": "event", **event})

    # ---- live link ----
    def _connect_link(self, link: Any) -> None:
        m = self.model
        link.snapshot.connect(m.load_snapshot)
        link.session.connect(lambda obj: m.set_session(obj.get("header") or obj, obj.get("plan") or {}))
        link.result.connect(lambda obj: self._same_session(obj) and m.add_result(obj))
        link.event.connect(lambda obj: self._same_session(obj) and m.add_event(obj))
        link.status.connect(self._on_status)
        link.alarm.connect(m.add_alarm)
        link.end.connect(lambda _obj: m.mark_ended())
        link.state.connect(m.set_link)
        link.reply.connect(self._on_reply)
        link.errored.connect(self.show_message)

    def _same_session(self, obj: dict) -> bool:
        """A message for another session than the one shown (the agent moved on) is ignored."""
        sid = obj.get("session")
        return not sid or not self.model.session_id or sid == self.model.session_id

    def _on_status(self, status: dict) -> None:
        self.model.set_status(status)
        if status.get("ended") or status.get("link") == "ended":
            self.model.mark_ended()

    def _on_reply(self, request: dict, reply: dict) -> None:
        if not reply.get("ok", False):
            self.show_message(f"agent refused {request.get('op')}: {reply.get('error', 'no reason given')}")
            if request.get("op") == "block" and request.get("block") is not None:
                self.spectrum.mark_unavailable(int(request["block"]))
            return
        if request.get("op") == "block" and reply.get("result"):
            r = reply["result"]
            if r.get("spectrum"):
                self.model.put_spectrum(int(r["block"]), r["spectrum"], full=True)
        elif request.get("op") == "event" and reply.get("event"):
            self.model.add_event(reply["event"])
            self.show_message(f"marked {reply['event'].get('kind', 'event').replace('_', ' ')}")

    def show_message(self, text: str) -> None:
        self.status_messages.append(text)
        self.statusBar().showMessage(text, 8000)

    # ---- export ----
    def export_png(self, path: str | Path) -> Path:
        """Save the window as it looks now."""
        self.redraw()
        out = Path(path)
        if not self.grab().save(str(out)):
            raise OSError(f"could not write {out}")
        return out

    def export_dialog(self) -> None:
        default = f"mrsmon-{self.model.session_id or 'view'}.png"
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export view as PNG", default, "PNG (*.png)")
        if path:
            self.show_message(f"saved {self.export_png(path)}")

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt name)
        self.timer.stop()
        if self.link is not None:
            self.link.stop()
        super().closeEvent(event)
