"""Render a stored session offscreen to a PNG (for `mrsmon gui --screenshot` and `mrsmon demo`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def ensure_qt_platform() -> None:
    """Use the offscreen platform when there is no display (a server, CI, an ssh session)."""
    # an empty QT_QPA_PLATFORM (`export QT_QPA_PLATFORM=`) is no choice: Qt then finds no plugin
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if not display and not os.environ.get("QT_QPA_PLATFORM"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"


_QUIET = ("propagateSizeHints",)  # the offscreen platform says this for every window; harmless


def _qt_messages(mode, context, message: str) -> None:  # noqa: ANN001 (Qt types)
    if not any(q in message for q in _QUIET):
        sys.stderr.write(message + "\n")


def app():
    """The QApplication, created once."""
    ensure_qt_platform()
    from PySide6 import QtCore, QtWidgets

    existing = QtWidgets.QApplication.instance()
    if existing is not None:
        return existing
    QtCore.qInstallMessageHandler(_qt_messages)
    return QtWidgets.QApplication(["mrsmon-gui"])


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 1600x1000") from None
    if not (320 <= w <= 8000 and 240 <= h <= 8000):
        raise ValueError(f"size {w}x{h} outside 320x240 .. 8000x8000")
    return w, h


def render_window(window, size: tuple[int, int], out_png: str | Path) -> Path:
    """Lay out `window` at `size`, let pending events settle, draw and save it."""
    qapp = app()
    window.resize(*size)
    window.show()
    for _ in range(3):  # layout, then plots sized, then ranges applied
        qapp.processEvents()
        window.redraw()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    image = window.grab()
    if image.width() != size[0] or image.height() != size[1]:
        image = image.scaled(size[0], size[1])
    if not image.save(str(out), "PNG"):
        raise OSError(f"could not write {out}")
    return out


def render_session(session_dir: str | Path, out_png: str | Path, size: tuple[int, int] = (1600, 1000),
                   theme: str = "dark", block: int | None = None, components: bool = False) -> Path:
    """Render the review view of a stored session to `out_png` and return its path."""
    qapp = app()
    from gui.review import load_session
    from gui.window import MainWindow

    model = load_session(session_dir)
    if block is not None:
        model.select_block(block)
    window = MainWindow(model, theme_name=theme, session_dir=session_dir)
    window.spectrum.components_box.setChecked(components)
    try:
        return render_window(window, size, out_png)
    finally:
        window.timer.stop()
        window.close()
        window.deleteLater()
        qapp.processEvents()
