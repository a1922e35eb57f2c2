"""MRD files as a replay source: MRD 1 HDF5 (`.h5`, read with `ismrmrd.Dataset`), an MRD 1 session
stream saved to a file (what `ismrmrd.ProtocolSerializer` writes), and MRD 2 binary (`.bin` / `.mrd`,
read with `mrd.BinaryMrdReader`). The kind is told by the file's first bytes, not its name.

Each acquisition is mapped exactly as the live bridge maps it (`protocols.mrd.mapping`); what cannot
be mapped is counted and reported, not sent. Nothing identifying leaves the file: the subject and
session codes of a replay are fixed placeholders.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from protocols.mrd import framing
from protocols.mrd.header import (
    HeaderError,
    HeaderInfo,
    Pseudonyms,
    info_from_mrd1,
    info_from_mrd2,
    session_start_fields,
)
from protocols.mrd.mapping import (
    DEFAULT_WATER_FLAGS,
    Readout,
    Refused,
    check_against_session,
    kind_flags,
    readout_from_mrd1,
    readout_from_mrd2,
    samples,
    session_shape,
)

MRD_SUFFIXES = (".h5", ".mrd", ".bin")
REPLAY_PSEUDONYMS = Pseudonyms(salt=b"mrsmon-replay", subject="replay", session_code="ses-01", kit_code="KIT-0000")


class MrdFileError(ValueError):
    """The file is not an MRD file this reader can use."""


@dataclass
class MrdTransient:
    flags: tuple[str, ...]
    offset_s: float
    data: np.ndarray
    scan: int


@dataclass
class MrdFileSource:
    header: dict[str, Any]
    transients: list[MrdTransient]
    end_s: float
    refused: Counter = field(default_factory=Counter)


def read_mrd_file(path: str | Path) -> tuple[HeaderInfo, list[Readout]]:
    p = Path(path)
    with open(p, "rb") as f:
        magic = f.read(8)
    if magic.startswith(b"yardl"):
        return _read_mrd2(p)
    if magic.startswith(b"\x89HDF"):
        return _read_hdf5(p)
    if len(magic) >= 2 and int.from_bytes(magic[:2], "little") in (framing.CONFIG_FILE, framing.CONFIG_TEXT,
                                                                   framing.HEADER):
        return _read_stream(p)
    raise MrdFileError(f"{p} is neither MRD 1 (HDF5 or a saved session stream) nor MRD 2 (binary)")


def _read_mrd2(p: Path) -> tuple[HeaderInfo, list[Readout]]:
    import mrd

    with mrd.BinaryMrdReader(str(p)) as reader:
        header = reader.read_header()
        if header is None:
            raise MrdFileError(f"{p}: the MRD 2 stream has no header")
        readouts = [readout_from_mrd2(item.value) for item in reader.read_data()
                    if isinstance(item, mrd.StreamItem.Acquisition)]
    return info_from_mrd2(header), readouts


def _read_hdf5(p: Path) -> tuple[HeaderInfo, list[Readout]]:
    import ismrmrd

    ds = ismrmrd.Dataset(str(p), "dataset", create_if_needed=False)
    try:
        info = info_from_mrd1(ds.read_xml_header())
        n = ds.number_of_acquisitions()
        readouts = [readout_from_mrd1(ds.read_acquisition(i).to_bytes()) for i in range(n)]
    finally:
        ds.close()
    return info, readouts


def _read_stream(p: Path) -> tuple[HeaderInfo, list[Readout]]:
    info: HeaderInfo | None = None
    readouts: list[Readout] = []
    with open(p, "rb") as f:
        read_exactly = framing.reader_of(f)
        while True:
            try:
                msg = framing.read_message(read_exactly)
            except EOFError:
                break
            if msg.id == framing.HEADER:
                info = info_from_mrd1(msg.body[4:])
            elif msg.id == framing.ACQUISITION:
                readouts.append(readout_from_mrd1(msg.body))
            elif msg.id == framing.CLOSE:
                break
    if info is None:
        raise MrdFileError(f"{p}: the MRD stream has no acquisition header")
    return info, readouts


def mrd_file_source(path: str | Path, water_flags: tuple[str, ...] = DEFAULT_WATER_FLAGS,
                    tick_ns: int = 2_500_000) -> MrdFileSource:
    """SESSION_START fields and the transients of an MRD file, timed by their stamps (else by TR)."""
    info, readouts = read_mrd_file(path)
    refused: Counter = Counter()
    mapped: list[tuple[Readout, tuple[str, ...], np.ndarray]] = []
    for r in readouts:
        try:
            mapped.append((r, kind_flags(r, water_flags), samples(r)))
        except Refused as exc:
            refused[exc.code] += 1
    first = next((m for m in mapped if m[1] != ("noise",)), None)
    if first is None:
        raise MrdFileError(f"{path}: no MRS transient in the file ({len(readouts)} acquisitions, "
                           f"refused {dict(refused)})")
    sw = info.user_doubles.get("SpectralWidth")
    try:
        coils, points, dwell_s = session_shape(first[0], first[2], 1.0 / sw if sw else None)
        header = session_start_fields(info, points=points, coils=coils, dwell_s=dwell_s,
                                      pseudonyms=REPLAY_PSEUDONYMS, protocol=None)
    except (Refused, HeaderError) as exc:
        raise MrdFileError(f"{path}: {exc}") from None
    tr_s = header["repetition_time_s"]
    stamps = [r.time_stamp for r, _, _ in mapped]
    timed = all(stamps) and len(set(stamps)) == len(stamps)
    out: list[MrdTransient] = []
    seen: set[int] = set()
    for k, (r, flags, data) in enumerate(mapped):
        try:
            check_against_session(r, data, coils, points, dwell_s)
        except Refused as exc:
            refused[exc.code] += 1
            continue
        if r.scan_counter in seen:
            refused["repeated_scan"] += 1
            continue
        seen.add(r.scan_counter)
        offset = (r.time_stamp - stamps[0]) * tick_ns / 1e9 if timed else k * tr_s
        out.append(MrdTransient(flags, max(offset, 0.0), data, r.scan_counter))
    end_s = (max(t.offset_s for t in out) if out else 0.0) + tr_s
    return MrdFileSource(header, out, end_s, refused)
