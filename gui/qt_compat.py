"""Workaround for a reference-count bug in the pinned PySide6 (6.12.0) on Python < 3.12.

Measured here: adding or removing a QGraphicsItem, setParentItem and every repaint of a pyqtgraph
view drop a reference to None (and sometimes True/False) that was never taken, tens per frame. On
Python 3.12+ these singletons are immortal and nobody notices; on 3.11 their count reaches zero
within minutes of redrawing and the interpreter aborts ("deallocating None"). Until the binding is
fixed, the display gives the three singletons a reserve of 2**40 references at import, which is
what 3.12 does by design. `tests/gui/test_qt_compat.py` shows the leak is still there (so this
can be removed when it is not) and that the reserve keeps the counts far from zero.
"""

from __future__ import annotations

import ctypes
import sys

RESERVE = 1 << 40
_done = False


def protect_singletons() -> bool:
    """Give None, True and False a large reference reserve on Python < 3.12 (once)."""
    global _done
    if _done or sys.version_info >= (3, 12):
        return False
    for obj in (None, True, False):
        # ob_refcnt is the first field of every PyObject (CPython object layout).
        ctypes.c_ssize_t.from_address(id(obj)).value += RESERVE
    _done = True
    return True


protect_singletons()
