"""Replay sources beyond mrsmon's own (session folders, NIfTI-MRS): MRD files and vendor raw files.

`other_source(path, **options)` returns (header, [(flags, offset_s, data, scan)], end_s) or None when
the path is neither; `agent.replay` turns the rows into its items. Notes on what a conversion did or
left out are logged (logger `mrsmon.replay`), never silently dropped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("mrsmon.replay")


def other_source(path: Path, water: str | Path | None = None, sequence: str | None = None,
                 water_flags: tuple[str, ...] | None = None, tick_ms: float = 2.5, conjugate: bool = False):
    from agent.vendor import is_vendor_file, vendor_source
    from protocols.mrd.files import MRD_SUFFIXES, mrd_file_source
    from protocols.mrd.mapping import DEFAULT_WATER_FLAGS

    if path.is_file() and path.suffix.lower() in MRD_SUFFIXES:
        src = mrd_file_source(path, water_flags or DEFAULT_WATER_FLAGS, int(round(tick_ms * 1e6)), conjugate)
        header: dict[str, Any] = dict(src.header)
        if sequence:
            header["sequence"] = sequence
        if src.refused:
            log.warning("%s: acquisitions not replayed: %s", path.name, dict(src.refused))
        rows = [(t.flags, t.offset_s, t.data, t.scan) for t in src.transients]
        log.info("%s: %d transients from an MRD file", path.name, len(rows))
        return header, rows, src.end_s
    if is_vendor_file(path):
        header, rows, end_s, notes = vendor_source(path, water=water, sequence=sequence)
        if conjugate:
            rows = [(f, o, np.conj(d), s) for f, o, d, s in rows]
        for note in notes:
            log.info("%s: %s", path.name, note)
        return header, rows, end_s
    return None
