"""The status strip: a big traffic light with its reason, data ages, link state, kit code.

Readable from two metres: the light carries a word (OK / CHECK / STOP / WAIT) as well as a colour,
the reason is one sentence in a large font. Texts are set only when they change.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from gui.model import Light, SessionModel
from gui.theme import STATUS_PT, STATUS_SMALL_PT, Theme

LINK_TEXT = {"review": "review (stored session)", "connecting": "connecting…", "live": "connected",
             "lost": "agent unreachable"}


def _age(s: float | None) -> str:
    if s is None:
        return "—"
    if s < 100:
        return f"{s:.0f} s ago"
    return f"{s / 60:.0f} min ago"


class StatusStrip(QtWidgets.QFrame):
    def __init__(self, model: SessionModel, theme: Theme, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("strip")
        self.model, self.t = model, theme
        self._texts: dict[QtWidgets.QLabel, str] = {}
        self._light_level = ""
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(10, 8, 10, 8)
        lay.setSpacing(14)
        self.light = QtWidgets.QLabel("WAIT")
        self.light.setAlignment(QtCore.Qt.AlignCenter)
        self.light.setMinimumSize(150, 64)
        self.light.setAccessibleName("traffic light")
        self.reason = QtWidgets.QLabel("")
        self.reason.setWordWrap(True)
        self.reason.setStyleSheet(f"font-size: {STATUS_PT}pt; font-weight: 600; background: transparent;")
        self.more = QtWidgets.QLabel("")
        self.more.setObjectName("muted")
        self.more.setStyleSheet(f"font-size: {STATUS_SMALL_PT - 2}pt; background: transparent; color: {theme.muted};")
        self.more.setWordWrap(True)
        mid = QtWidgets.QVBoxLayout()
        mid.setSpacing(0)
        mid.addWidget(self.reason)
        mid.addWidget(self.more)
        grid = QtWidgets.QGridLayout()
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(0)
        self.fields: dict[str, QtWidgets.QLabel] = {}
        for row, (key, name) in enumerate((("transient", "last transient"), ("block", "last block"),
                                           ("link", "link"), ("kit", "kit · session"))):
            k = QtWidgets.QLabel(name)
            k.setStyleSheet(f"font-size: {STATUS_SMALL_PT - 2}pt; color: {theme.muted}; background: transparent;")
            v = QtWidgets.QLabel("—")
            v.setStyleSheet(f"font-size: {STATUS_SMALL_PT}pt; font-weight: 600; background: transparent;")
            grid.addWidget(k, row, 0, QtCore.Qt.AlignRight)
            grid.addWidget(v, row, 1)
            self.fields[key] = v
        lay.addWidget(self.light)
        lay.addLayout(mid, 1)
        lay.addLayout(grid)
        self.refresh()

    def _set(self, label: QtWidgets.QLabel, text: str) -> None:
        if self._texts.get(label) != text:
            self._texts[label] = text
            label.setText(text)

    def refresh(self) -> Light:
        m = self.model
        light = m.light()
        if light.level != self._light_level:
            self._light_level = light.level
            self.light.setStyleSheet(
                f"background: {self.t.light[light.level]}; color: {self.t.light_text[light.level]};"
                f"font-size: {STATUS_PT + 6}pt; font-weight: 800; border-radius: 10px; padding: 4px 14px;")
        self._set(self.light, light.word)
        self._set(self.reason, light.reason)
        self._set(self.more, ("also: " + "; ".join(light.others)) if light.others else "")
        if m.live:
            self._set(self.fields["transient"], _age(m.transient_age_s()))
            last = m.last_result
            age = m.block_age_s()  # unknown for blocks that came with the snapshot
            self._set(self.fields["block"], "—" if last is None else
                      f"#{last.block}" + (f", {_age(age)}" if age is not None else ""))
        else:
            n = len(m.rows)
            self._set(self.fields["transient"], "stored")
            self._set(self.fields["block"], f"{n} blocks" + (" · ended" if m.ended else " · not ended"))
        link = LINK_TEXT.get(m.link, m.link)
        if m.link_detail:
            link = f"{link} ({m.link_detail})"
        self._set(self.fields["link"], link)
        kit = m.header.get("kit_code") or m.plan.get("kit_code") or "—"
        self._set(self.fields["kit"], f"{kit} · {m.session_id or '—'}")
        return light
