"""Event buttons with keyboard shortcuts: the technician marks what happens in the room.

Each button emits `event_requested({kind, value, note, t_ns})` with the time of the key press (not
of the dialog's OK), which the window sends to the agent as control op `event`. Dialog methods
(`ask_vitals`, ...) are separate so tests can replace them.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

# (kind, button text, shortcut)
BUTTONS = (
    ("infusion_start", "Infusion start", "F1"),
    ("infusion_stop", "Infusion stop", "F2"),
    ("infusion_pause", "Pause", "F3"),
    ("infusion_resume", "Resume", "F4"),
    ("pump_rate", "Pump rate…", "F5"),
    ("vitals", "Vitals BP/HR…", "F6"),
    ("rating", "Rating…", "F7"),
    ("note", "Note…", "F8"),
)
RATING_SCALES = ("CADSS", "PSI", "VAS", "other")


class EventBar(QtWidgets.QWidget):
    event_requested = QtCore.Signal(dict)

    def __init__(self, parent: QtWidgets.QWidget | None = None, confirm: bool = True) -> None:
        super().__init__(parent)
        self.confirm = confirm
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        self.buttons: dict[str, QtWidgets.QPushButton] = {}
        for kind, text, key in BUTTONS:
            b = QtWidgets.QPushButton(f"{text}  [{key}]")
            b.setShortcut(QtGui.QKeySequence(key))
            b.setToolTip(f"Mark {kind.replace('_', ' ')} now ({key})")
            b.setFocusPolicy(QtCore.Qt.NoFocus)
            b.clicked.connect(lambda _=False, k=kind: self.trigger(k))
            lay.addWidget(b)
            self.buttons[kind] = b
        lay.addStretch(1)

    def set_enabled(self, enabled: bool, why: str = "") -> None:
        for b in self.buttons.values():
            b.setEnabled(enabled)
            if why:
                b.setToolTip(why)

    def trigger(self, kind: str) -> dict[str, Any] | None:
        """Build the event for `kind` (asking for values where needed) and emit it."""
        t_ns = time.time_ns()  # the moment of the key press is the event time
        value: dict[str, Any] = {}
        note = ""
        if kind in ("infusion_start", "infusion_stop") and self.confirm:
            if not self.ask_confirm(kind):
                return None
        elif kind == "pump_rate":
            v = self.ask_pump_rate()
            if v is None:
                return None
            value = {"ml_per_h": v}
        elif kind == "vitals":
            v2 = self.ask_vitals()
            if v2 is None:
                return None
            value = v2
        elif kind == "rating":
            v3 = self.ask_rating()
            if v3 is None:
                return None
            value = v3
        elif kind == "note":
            text = self.ask_note()
            if not text:
                return None
            note = text
        event = {"kind": kind, "value": value, "note": note, "t_ns": t_ns}
        self.event_requested.emit(event)
        return event

    # ---- dialogs (replaceable in tests) ----
    def ask_confirm(self, kind: str) -> bool:
        text = kind.replace("_", " ")
        answer = QtWidgets.QMessageBox.question(self, "Mark event", f"Mark {text} now?",
                                                QtWidgets.QMessageBox.Yes | QtWidgets.QMessageBox.No,
                                                QtWidgets.QMessageBox.Yes)
        return answer == QtWidgets.QMessageBox.Yes

    def ask_pump_rate(self) -> float | None:
        v, ok = QtWidgets.QInputDialog.getDouble(self, "Pump rate", "Pump rate (ml/h):", 30.0, 0.0, 2000.0, 1)
        return float(v) if ok else None

    def ask_vitals(self) -> dict[str, int] | None:
        dlg = VitalsDialog(self)
        if dlg.exec() != QtWidgets.QDialog.Accepted:
            return None
        return dlg.values()

    def ask_rating(self) -> dict[str, Any] | None:
        dlg = RatingDialog(self)
        if dlg.exec() != QtWidgets.QDialog.Accepted:
            return None
        return dlg.values()

    def ask_note(self) -> str | None:
        text, ok = QtWidgets.QInputDialog.getText(
            self, "Note", "Note (no names or other identifying details):")
        return text.strip() if ok and text.strip() else None


class VitalsDialog(QtWidgets.QDialog):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Vitals")
        form = QtWidgets.QFormLayout(self)
        self.sys = _spin(60, 260, 120)
        self.dia = _spin(30, 160, 80)
        self.hr = _spin(20, 220, 70)
        form.addRow("Systolic (mmHg)", self.sys)
        form.addRow("Diastolic (mmHg)", self.dia)
        form.addRow("Heart rate (bpm)", self.hr)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def values(self) -> dict[str, int]:
        return {"sys_mmhg": self.sys.value(), "dia_mmhg": self.dia.value(), "hr_bpm": self.hr.value()}


class RatingDialog(QtWidgets.QDialog):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Rating")
        form = QtWidgets.QFormLayout(self)
        self.scale = QtWidgets.QComboBox()
        self.scale.addItems(RATING_SCALES)
        self.score = _spin(0, 200, 0)
        form.addRow("Scale", self.scale)
        form.addRow("Score", self.score)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def values(self) -> dict[str, Any]:
        return {"scale": self.scale.currentText(), "score": self.score.value()}


def _spin(lo: int, hi: int, value: int) -> QtWidgets.QSpinBox:
    s = QtWidgets.QSpinBox()
    s.setRange(lo, hi)
    s.setValue(value)
    return s
