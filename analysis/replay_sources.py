"""Replay sources beyond mrsmon's own (session folders, NIfTI-MRS): MRD files and vendor raw files.

`other_source(path, **options)` returns (header, [(flags, offset_s, data, scan)], end_s) or None when
the path is neither; `analysis.replay` turns the rows into its items. Orientation: the agent expects the
NIfTI-MRS convention, and vendor conversions are not always in it (spec2nii keeps a Siemens RDA's
samples as stored, which are mirrored). With `conjugate="auto"` the metabolite transients' singlets
decide (`mrs.orientation`), as `mrsmon fit --conjugate auto` does; "yes" / "no" force it. Every
decision and whatever a conversion left out is logged (logger `mrsmon.replay`), never dropped silently.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("mrsmon.replay")
WATER_PPM = 4.65


def other_source(path: Path, water: str | Path | None = None, sequence: str | None = None,
                 water_flags: tuple[str, ...] | None = None, tick_ms: float = 2.5,
                 conjugate: str | bool = "auto"):
    from analysis.vendor import is_vendor_file, vendor_source
    from protocols.mrd.files import MRD_SUFFIXES, mrd_file_source
    from protocols.mrd.mapping import DEFAULT_WATER_FLAGS

    if path.is_file() and path.suffix.lower() in MRD_SUFFIXES:
        src = mrd_file_source(path, water_flags or DEFAULT_WATER_FLAGS, int(round(tick_ms * 1e6)))
        header: dict[str, Any] = dict(src.header)
        if sequence:
            header["sequence"] = sequence
        if src.refused:
            log.warning("%s: acquisitions not replayed: %s", path.name, dict(src.refused))
        rows = [(t.flags, t.offset_s, t.data, t.scan) for t in src.transients]
        log.info("%s: %d transients from an MRD file", path.name, len(rows))
    elif is_vendor_file(path):
        header, rows, end_s, notes = vendor_source(path, water=water, sequence=sequence)
        for note in notes:
            log.info("%s: %s", path.name, note)
        src = None
    else:
        return None
    rows = _oriented(path.name, header, rows, conjugate)
    return header, rows, src.end_s if src is not None else end_s


def _oriented(name: str, header: dict, rows: list, conjugate: str | bool) -> list:
    """Rows conjugated when asked, or when `auto` finds the metabolite spectrum mirrored."""
    mode = {True: "yes", False: "no"}.get(conjugate, conjugate)  # type: ignore[call-overload]
    if mode not in ("auto", "yes", "no"):
        raise ValueError(f"conjugate must be auto, yes or no, not {conjugate!r}")
    if mode == "auto":
        from mrs.orientation import data_orientation

        metab = [d for f, _, d, _ in rows if not f]
        if not metab:
            log.info("%s: no metabolite transient to judge the orientation by: replayed as stored", name)
            return rows
        o = data_orientation(np.stack(metab), float(header["dwell_time_s"]),
                             float(header["spectrometer_frequency_mhz"]), WATER_PPM)
        log.info("%s: %s", name, o.message)
        if not o.reversed:
            if o.reversed is None:
                log.warning("%s: orientation undetermined: replayed as stored (give --conjugate yes if the "
                            "spectrum shows mirrored)", name)
            return rows
        log.warning("%s: the spectrum is mirrored (the conjugate convention): every FID is conjugated", name)
    elif mode == "no":
        return rows
    return [(f, o_s, np.conj(d), s) for f, o_s, d, s in rows]
