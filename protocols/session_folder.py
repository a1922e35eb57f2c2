"""The session folder on disk (docs/session-format.md): its formats, the one reader, and the writer of
the derived files (block results, block spectra, transient rows).

The agent writes raw data (`agent.store.SessionWriter`: durable, fsync before ACK) and, through the
pipeline, the derived files; the analysis commands and the display's review mode read everything back
through `SessionReader`. It lives in `protocols/` because it is a contract between those packages,
like the wire format: the display may not import `agent`, and the live service may not import
`analysis` (docs/architecture.md).

    r = SessionReader(folder)
    r.header, r.plan, r.index                  # index sorted by seq
    r.transient(seq)                           # (coils, points) complex64, a read-only memory map
    r.events(), r.fits(), r.results()          # fits(): rows as dicts; results(): BlockResult objects
    r.block_spectrum(block)                    # the arrays of spectra/block-NNNNN.npz, or None
"""

from __future__ import annotations

import json
import struct
import zlib
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from protocols.wire import bits_to_flags, load_stored_json, missing_ranges, ranges

RECORD_MAGIC = b"MRSR"
RECORD_VERSION = 1
RECORD_HEADER = struct.Struct("<4sHHQqIIIIQQ8s")  # 64 bytes, see docs/session-format.md
assert RECORD_HEADER.size == 64
INDEX_DTYPE = np.dtype([("seq", "<u8"), ("offset", "<u8"), ("t_ns", "<i8"), ("flags", "<u4"), ("scan", "<u4")])


class SessionFolderError(ValueError):
    """A folder that is not a readable mrsmon session."""


def software_version() -> str:
    try:
        return metadata.version("mrsmon")
    except metadata.PackageNotFoundError:
        return "unknown"


# ------------------------------------------------------------------------------ JSON lines
def read_jsonl(path: Path) -> list[dict]:
    """The objects of a JSON-lines file. A line that does not parse as an object (the torn last line
    of a crash mid-append) is skipped, never the lines after it; non-finite numbers (older versions
    could store them) read as null. The one rule for every reader."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            obj = load_stored_json(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            rows.append(obj)
    return rows


def latest_revisions(rows: list[dict]) -> list[dict]:
    """Block result rows as written (append only) -> each block's last row, in block order."""
    latest = {r.get("block"): r for r in rows}
    return sorted(latest.values(), key=lambda r: (r.get("block") is None, r.get("block") or 0))


def read_json(path: Path) -> Any:
    """A JSON file of a session folder; non-finite numbers (older versions could store them) read as null.
    Raises OSError or ValueError (the agent answers the first as a store failure)."""
    return load_stored_json(Path(path).read_text())


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object file of a session folder, for readers: any failure is a SessionFolderError."""
    try:
        obj = read_json(path)
    except (OSError, ValueError, RecursionError) as exc:
        raise SessionFolderError(f"cannot read {path}: {exc}") from None
    if not isinstance(obj, dict):
        raise SessionFolderError(f"{path} does not hold a JSON object")
    return obj


# ------------------------------------------------------------------------------ raw.log
def _record_at(f, offset: int, size: int, record_bytes: int | None) -> tuple | None:
    """The index entry of a complete, crc-valid record at `offset`, else None."""
    f.seek(offset)
    head = f.read(RECORD_HEADER.size)
    if len(head) < RECORD_HEADER.size:
        return None
    magic, _ver, hlen, seq, t_ns, flags, _coils, _points, crc, nbytes, scan, _ = RECORD_HEADER.unpack(head)
    if magic != RECORD_MAGIC or hlen != RECORD_HEADER.size or offset + hlen + nbytes > size:
        return None
    if record_bytes is not None and hlen + nbytes != record_bytes:
        return None
    if zlib.crc32(f.read(nbytes)) != crc:
        return None
    return (seq, offset, t_ns, flags, scan & 0xFFFFFFFF), offset + hlen + nbytes


def _next_magic(f, start: int, size: int, chunk: int = 1 << 20) -> int:
    """Offset of the next record magic at or after `start`, or `size`."""
    pos = start
    while pos < size:
        f.seek(pos)
        buf = f.read(chunk + len(RECORD_MAGIC) - 1)
        hit = buf.find(RECORD_MAGIC)
        if hit >= 0:
            return pos + hit
        pos += chunk
    return size


def scan_raw_log(path: Path, record_bytes: int | None = None) -> tuple[np.ndarray, int]:
    """Index of every complete, crc-valid record in raw.log, and the end of the last one.

    A damaged record in the middle does not hide the records after it: the scan steps over it to the next
    record magic and goes on (only bytes after the last valid record are ever a torn tail)."""
    entries = []
    valid_end = 0
    if not path.exists():
        return np.zeros(0, INDEX_DTYPE), 0
    size = path.stat().st_size
    with open(path, "rb") as f:
        offset = 0
        while offset + RECORD_HEADER.size <= size:
            found = _record_at(f, offset, size, record_bytes)
            if found is None:
                offset = _next_magic(f, offset + 1, size)
                continue
            entry, offset = found
            entries.append(entry)
            valid_end = offset
    return np.array(entries, dtype=INDEX_DTYPE), valid_end


def read_index(path: Path) -> np.ndarray:
    """index.bin's whole entries (a torn last entry is left out)."""
    if not path.exists():
        return np.zeros(0, INDEX_DTYPE)
    data = path.read_bytes()
    return np.frombuffer(data[:len(data) - len(data) % INDEX_DTYPE.itemsize], INDEX_DTYPE).copy()


# ------------------------------------------------------------------------------ block spectra
def spectrum_path(folder: Path, block: int) -> Path:
    return Path(folder) / "spectra" / f"block-{int(block):05d}.npz"


def write_block_spectrum(folder: Path, block: int, spectrum: dict[str, Any]) -> None:
    """spectra/block-NNNNN.npz: `ppm`, `data`, `fit`, `baseline` and `comp_<name>` (float32, fit window)."""
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in spectrum.items() if k != "components"}
    arrays.update({f"comp_{n}": np.asarray(v, np.float32) for n, v in (spectrum.get("components") or {}).items()})
    np.savez(spectrum_path(folder, block), **arrays)


def read_block_spectrum(folder: Path, block: int) -> dict[str, Any] | None:
    """`ppm`, `data`, `fit`, `baseline` and `components` of one block, or None if not stored."""
    path = spectrum_path(folder, block)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            out: dict[str, Any] = {k: np.asarray(z[k]) for k in z.files if not k.startswith("comp_")}
            out["components"] = {k[5:]: np.asarray(z[k]) for k in z.files if k.startswith("comp_")}
    except (OSError, ValueError) as exc:
        raise SessionFolderError(f"cannot read {path}: {exc}") from None
    return out


class ResultsWriter:
    """Appends the derived files of a session or derivative folder: fits.jsonl (one block result per
    line, without its spectrum), spectra/block-NNNNN.npz, and transients.jsonl."""

    def __init__(self, folder: Path, transients: bool = True) -> None:
        self.folder = Path(folder)
        (self.folder / "spectra").mkdir(parents=True, exist_ok=True)
        self._fits = open(self.folder / "fits.jsonl", "a")
        self._transients = open(self.folder / "transients.jsonl", "a") if transients else None

    def block(self, result: dict[str, Any]) -> None:
        """One block result as JSON (docs/results.md); its spectrum goes to spectra/."""
        if result.get("spectrum"):
            write_block_spectrum(self.folder, int(result["block"]), result["spectrum"])
        self._fits.write(json.dumps({k: v for k, v in result.items() if k != "spectrum"}) + "\n")
        self._fits.flush()

    def transient(self, row: dict[str, Any]) -> None:
        if self._transients is not None:
            self._transients.write(json.dumps({k: v for k, v in row.items() if k != "kind"}) + "\n")
            self._transients.flush()

    def close(self, fsync: bool = False) -> None:
        import os

        for f in (self._fits, self._transients):
            if f is None:
                continue
            if fsync:
                f.flush()
                os.fsync(f.fileno())
            f.close()


# ------------------------------------------------------------------------------ the reader
def is_seq(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


class SessionReader:
    """Read-only view of a session folder; transients are read on demand through a memory map."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SessionFolderError(f"{self.folder} is not a folder")
        if not (self.folder / "session.json").exists():
            raise SessionFolderError(f"{self.folder} is not an mrsmon session folder (no session.json)")
        self.header: dict[str, Any] = read_json_object(self.folder / "session.json")
        plan_path = self.folder / "plan.json"
        self.plan: dict[str, Any] | None = read_json_object(plan_path) if plan_path.exists() else None
        index, _ = self._load_index()
        order = np.argsort(index["seq"], kind="stable")
        self.index = index[order]
        self.coils = int(self.header["coils"])
        self.points = int(self.header["points"])
        self.start_ns = int(self.header["start_time_ns"])
        raw = self.folder / "raw.log"
        self._mm = np.memmap(raw, dtype=np.uint8, mode="r") if raw.exists() and raw.stat().st_size else None
        self._row_of = {int(s): i for i, s in enumerate(self.index["seq"])}

    def _load_index(self) -> tuple[np.ndarray, int]:
        path = self.folder / "index.bin"
        if path.exists():
            idx = read_index(path)
            raw = self.folder / "raw.log"
            size = raw.stat().st_size if raw.exists() else 0
            nbytes = RECORD_HEADER.size + int(self.header["coils"]) * int(self.header["points"]) * 8
            if len(idx) == 0 or int(idx["offset"].max()) + nbytes <= size:
                return idx, 0
        return scan_raw_log(self.folder / "raw.log")

    @property
    def seqs(self) -> np.ndarray:
        return self.index["seq"]

    def entry(self, seq: int) -> np.void:
        """The index record (seq, offset, t_ns, flags, scan) of one stored transient."""
        return self.index[self._row_of[seq]]

    def flags(self, seq: int) -> frozenset[str]:
        return bits_to_flags(int(self.index["flags"][self._row_of[seq]]))

    def t_s(self, seq: int) -> float:
        return (int(self.index["t_ns"][self._row_of[seq]]) - self.start_ns) / 1e9

    def transient(self, seq: int) -> np.ndarray:
        """(coils, points) complex64, read-only view into raw.log."""
        if self._mm is None or seq not in self._row_of:
            raise KeyError(f"session {self.folder.name} holds no transient with seq {seq}")
        off = int(self.index["offset"][self._row_of[seq]]) + RECORD_HEADER.size
        n = self.coils * self.points * 8
        return self._mm[off:off + n].view("<c8").reshape(self.coils, self.points)

    def metabolite_seqs(self) -> np.ndarray:
        """Seqs of transients that are neither water reference, noise nor dummy scans."""
        return self.index["seq"][self.index["flags"] == 0]

    def events(self) -> list[dict]:
        """events.jsonl's rows as stored (replay sends them on unchanged)."""
        return read_jsonl(self.folder / "events.jsonl")

    def event_records(self) -> list:
        """The events as typed `mrs.results.EventRecord`, in time order (untimed ones last)."""
        from mrs.results import EventRecord, event_order

        return sorted((EventRecord.from_json(e) for e in self.events()), key=event_order)

    def fits_folder(self, derivative: str | None = None) -> Path:
        return self.folder / "derivatives" / derivative if derivative else self.folder

    def fits(self, derivative: str | None = None, revisions: bool = False) -> list[dict]:
        """Block result rows in block order, each block's latest revision (the first blocks of a
        session are published again once the session reference is fixed); `revisions`: every
        row as written."""
        rows = read_jsonl(self.fits_folder(derivative) / "fits.jsonl")
        return rows if revisions else latest_revisions(rows)

    def results(self, derivative: str | None = None) -> list:
        """The block results (each block's latest revision) as typed `mrs.results.BlockResult`."""
        from mrs.results import BlockResult

        return [BlockResult.from_json(r) for r in self.fits(derivative)]

    def block_spectrum(self, block: int, derivative: str | None = None) -> dict[str, Any] | None:
        return read_block_spectrum(self.fits_folder(derivative), block)

    def transient_records(self) -> list[dict]:
        return read_jsonl(self.folder / "transients.jsonl")

    @property
    def end(self) -> dict | None:
        p = self.folder / "end.json"
        return read_json_object(p) if p.exists() else None

    def refusals(self) -> list[dict]:
        """Messages the agent refused for good (the sender dropped them): seq, type, code, reason."""
        return read_jsonl(self.folder / "refused.jsonl")

    def stored_seqs(self) -> set[int]:
        s = {0} | {int(x) for x in self.index["seq"]}
        s |= {int(e["seq"]) for e in self.events() if is_seq(e.get("seq"))}
        if self.end:
            s.add(int(self.end["seq"]))
        return s

    def missing(self) -> list[list[int]]:
        """Seq ranges neither stored nor recorded as refused, up to SESSION_END (or up to the highest
        stored seq while open). The work grows with what is stored, never with the width of a gap."""
        accounted = self.stored_seqs() | {int(r["seq"]) for r in self.refusals() if is_seq(r.get("seq"))}
        top = int(self.end["seq"]) if self.end else max(accounted)
        return missing_ranges(sorted(accounted), 0, top)

    def duplicates(self) -> int:
        """Transients stored more than once (must be zero: the agent drops duplicates)."""
        return int(len(self.index) - len(np.unique(self.index["seq"])))

    @property
    def complete(self) -> bool:
        return self.end is not None and not self.missing()

    def summary(self) -> dict[str, Any]:
        fits = self.fits()
        flags = self.index["flags"]
        return {
            "session": self.header.get("session", self.folder.name),
            "protocol": self.header.get("protocol"),
            "subject": self.header.get("subject"), "session_code": self.header.get("session_code"),
            "kit_code": self.header.get("kit_code"),
            "transients": int(len(self.index)),
            "metabolite_transients": int((flags == 0).sum()),
            "water_ref": int((flags & 1 != 0).sum()), "noise": int((flags & 2 != 0).sum()),
            "dummy": int((flags & 4 != 0).sum()),
            "coils": self.coils, "points": self.points,
            "missing": self.missing(), "duplicates": self.duplicates(),
            "refused": ranges([int(r["seq"]) for r in self.refusals() if is_seq(r.get("seq"))]),
            "complete": self.complete, "ended": self.end is not None,
            "events": len(self.events()), "blocks_fitted": len(fits),
            "duration_s": round(float((self.index["t_ns"].max() - self.start_ns) / 1e9), 3) if len(self.index) else 0.0,
        }
