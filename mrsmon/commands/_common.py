"""Small helpers shared by command bodies: logging and clean shutdown on signals."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=getattr(logging, str(level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")


def on_stop_signals(stop: Callable[[], None]) -> None:
    """SIGINT and SIGTERM call `stop` (a clean shutdown), instead of killing mid-write."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop())
