"""MRD 2 streams for the bridge: read with `mrd.BinaryMrdReader` (header, then acquisitions and other items,
then the end marker), and the acknowledgement written back on a socket: MRD 2 has no CLOSE message, so
the bridge answers with a complete, empty MRD 2 stream once everything is durable."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from protocols.mrd import framing

Put = Callable[[str, Any, float], None]


def read_stream(stream, put: Put) -> None:
    """Events for the bridge's main loop: header2, acq2 (an mrd.Acquisition), other2 (a type name), close2;
    or bad (a FramingError) when the stream is cut short or unreadable."""
    import mrd

    try:
        reader = mrd.BinaryMrdReader(stream)
        header = reader.read_header()
        put("header2", header, time.monotonic())
        for item in reader.read_data():
            if isinstance(item, mrd.StreamItem.Acquisition):
                put("acq2", item.value, time.monotonic())
            else:
                put("other2", type(item).__name__, time.monotonic())
        put("close2", None, time.monotonic())
    except EOFError:
        put("bad", framing.Truncated("the MRD 2 stream ended before its end marker"), 0.0)
    except Exception as exc:  # the generated reader raises many types for bad bytes; all end this stream
        put("bad", framing.FramingError("bad_mrd2", f"unreadable MRD 2 stream: {type(exc).__name__}: "
                                                    f"{str(exc)[:120]}"), 0.0)


def write_end(sock: socket.socket) -> None:
    import mrd

    try:
        with sock.makefile("wb") as f, mrd.BinaryMrdWriter(f) as w:
            w.write_header(mrd.Header())
            w.write_data([])
    except (OSError, ValueError):
        pass  # the client is gone: it sees no reply stream, which is the truth
