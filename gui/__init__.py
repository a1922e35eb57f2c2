"""Operator display for mrsmon: PySide6 + pyqtgraph, live (subscribing to an agent) or review.

`gui.model` and `gui.review` are Qt-free and can be used (and tested) without a display.
Widgets live in the other modules; `gui.window.MainWindow` assembles them.
"""
