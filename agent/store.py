"""Session folders on disk: durable append (fsync before ACK), crash recovery, and lazy reading.

Layout and record format: docs/session-format.md. Writers own one session folder; readers never load
a whole session: `SessionReader.transient(seq)` reads through a memory map.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from protocols.wire import bits_to_flags, flags_to_bits, ranges

RECORD_MAGIC = b"MRSR"
RECORD_VERSION = 1
RECORD_HEADER = struct.Struct("<4sHHQqIIIIQQ8s")  # 64 bytes, see docs/session-format.md
assert RECORD_HEADER.size == 64
INDEX_DTYPE = np.dtype([("seq", "<u8"), ("offset", "<u8"), ("t_ns", "<i8"), ("flags", "<u4"), ("scan", "<u4")])


class StoreError(OSError):
    """The session folder cannot be written or read."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def latest_revisions(rows: list[dict]) -> list[dict]:
    """Block result rows as written (append only) -> each block's last row, in block order."""
    latest = {r.get("block"): r for r in rows}
    return sorted(latest.values(), key=lambda r: (r.get("block") is None, r.get("block") or 0))


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines file; a torn last line (crash mid-write) is ignored."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            break
    return rows


def scan_raw_log(path: Path) -> tuple[np.ndarray, int]:
    """Index of every complete, crc-valid record in raw.log, and the byte length of that valid prefix."""
    entries = []
    valid_end = 0
    if not path.exists():
        return np.zeros(0, INDEX_DTYPE), 0
    size = path.stat().st_size
    with open(path, "rb") as f:
        offset = 0
        while offset + RECORD_HEADER.size <= size:
            f.seek(offset)
            head = f.read(RECORD_HEADER.size)
            magic, ver, hlen, seq, t_ns, flags, coils, points, crc, nbytes, scan, _ = RECORD_HEADER.unpack(head)
            if magic != RECORD_MAGIC or hlen != RECORD_HEADER.size or offset + hlen + nbytes > size:
                break
            if zlib.crc32(f.read(nbytes)) != crc:
                break
            entries.append((seq, offset, t_ns, flags, scan & 0xFFFFFFFF))
            offset += hlen + nbytes
            valid_end = offset
    return np.array(entries, dtype=INDEX_DTYPE), valid_end


class SessionWriter:
    """Appends one session's messages durably. Not thread-safe: the ingest thread owns it."""

    def __init__(self, folder: Path, header: dict[str, Any], plan: dict[str, Any] | None = None,
                 fsync: bool = True):
        self.folder = Path(folder)
        self.fsync = fsync
        new = not (self.folder / "session.json").exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        if new:
            write_json_atomic(self.folder / "session.json", {**header, "received_ns": time.time_ns()})
            if plan is not None:
                write_json_atomic(self.folder / "plan.json", plan)
        self.header = json.loads((self.folder / "session.json").read_text())
        self.coils = int(self.header["coils"])
        self.points = int(self.header["points"])
        self.start_ns = int(self.header["start_time_ns"])
        self._recover()
        self._dirty: set = set()
        self._pending_seqs: set[int] = set()
        self._pending_transients: set[int] = set()
        self._raw = open(self.folder / "raw.log", "ab")
        self._index = open(self.folder / "index.bin", "ab")
        self._events = open(self.folder / "events.jsonl", "a")
        self._committed = {f: f.tell() for f in (self._raw, self._index, self._events)}

    # -------------------------------------------------------------- recovery
    def _recover(self) -> None:
        """Cut a torn tail off raw.log, rebuild the index, and learn which seqs are stored."""
        raw = self.folder / "raw.log"
        index, valid_end = scan_raw_log(raw)
        if raw.exists() and raw.stat().st_size > valid_end:
            with open(raw, "r+b") as f:
                f.truncate(valid_end)
                os.fsync(f.fileno())
        index_path = self.folder / "index.bin"
        on_disk = np.fromfile(index_path, INDEX_DTYPE) if index_path.exists() else np.zeros(0, INDEX_DTYPE)
        if on_disk.shape != index.shape or not np.array_equal(on_disk, index):
            index.tofile(index_path)
        self.seqs: set[int] = set()
        self._upto = -1
        self._add_seqs([0, *(int(s) for s in index["seq"])])
        self.n_transients = len(index)
        events = read_jsonl(self.folder / "events.jsonl")
        self._rewrite_torn_jsonl(self.folder / "events.jsonl", events)
        self._add_seqs([int(e["seq"]) for e in events if e.get("seq") is not None])
        self.end_seq: int | None = None
        end = self.folder / "end.json"
        if end.exists():
            self.end_seq = int(json.loads(end.read_text())["seq"])
            self._add_seqs([self.end_seq])

    @staticmethod
    def _rewrite_torn_jsonl(path: Path, rows: list[dict]) -> None:
        if path.exists() and len([ln for ln in path.read_text().splitlines() if ln.strip()]) != len(rows):
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def _sync(self, f) -> None:
        """Flush now; fsync at `commit()`, so a batch of messages costs one fsync (group commit)."""
        f.flush()
        self._dirty.add(f)

    def commit(self) -> None:
        """Make every append since the last commit durable. Callers ACK only after this returns.

        If fsync fails, everything since the last commit is rolled back (files cut to their committed
        length, seqs forgotten), so the sender's resend is stored again rather than taken for a duplicate.
        """
        try:
            if self.fsync:
                for f in self._dirty:
                    os.fsync(f.fileno())
        except OSError:
            self._rollback()
            raise
        self._dirty.clear()
        self._pending_seqs.clear()
        self._committed = {f: f.tell() for f in (self._raw, self._index, self._events)}

    def _rollback(self) -> None:
        for f, size in self._committed.items():
            f.flush()
            f.truncate(size)
            f.seek(size)
        self.n_transients -= sum(1 for s in self._pending_seqs if s in self._pending_transients)
        self.seqs.difference_update(self._pending_seqs)
        self._upto = min(self._upto, min(self._pending_seqs, default=self._upto + 1) - 1)
        self._pending_seqs.clear()
        self._pending_transients.clear()
        self._dirty.clear()

    # -------------------------------------------------------------- appends
    def append_transient(self, seq: int, t_ns: int, scan: int, flags: frozenset[str], data: np.ndarray,
                         crc32: int | None = None) -> int:
        """Append and fsync one transient; returns the record's offset in raw.log.

        `crc32` is the payload's checksum when the caller has verified it already (ingest has), which
        saves a second pass over the data on the hot path.
        """
        arr = np.ascontiguousarray(data, dtype="<c8")
        buf = memoryview(arr).cast("B")
        crc = zlib.crc32(buf) if crc32 is None else crc32
        offset = self._raw.tell()
        head = RECORD_HEADER.pack(RECORD_MAGIC, RECORD_VERSION, RECORD_HEADER.size, seq, t_ns,
                                  flags_to_bits(flags), data.shape[0], data.shape[1], crc, len(buf),
                                  scan, b"\0" * 8)
        self._raw.write(head)
        self._raw.write(buf)
        self._sync(self._raw)
        self._index.write(np.array([(seq, offset, t_ns, flags_to_bits(flags), scan & 0xFFFFFFFF)],
                                   INDEX_DTYPE).tobytes())
        self._index.flush()  # rebuildable from raw.log, so no fsync on the hot path
        self._add_seqs([seq])
        self._pending_seqs.add(seq)
        self._pending_transients.add(seq)
        self.n_transients += 1
        return offset

    def append_event(self, event: dict[str, Any]) -> dict[str, Any]:
        row = {"seq": event.get("seq"), "source": event.get("source", "scanner"), "kind": event["kind"],
               "t_ns": int(event["t_ns"]), "t_s": (int(event["t_ns"]) - self.start_ns) / 1e9,
               "value": event.get("value") or {}, "note": event.get("note", "")}
        if event.get("id"):
            row["id"] = str(event["id"])
        self._events.write(json.dumps(row) + "\n")
        self._sync(self._events)
        if row["seq"] is not None:
            self._add_seqs([int(row["seq"])])
            self._pending_seqs.add(int(row["seq"]))
        return row

    def end(self, header: dict[str, Any]) -> None:
        write_json_atomic(self.folder / "end.json", header)
        self.end_seq = int(header["seq"])
        self._add_seqs([self.end_seq])

    def close(self) -> None:
        for f in (self._raw, self._index, self._events):
            f.close()

    # -------------------------------------------------------------- state
    def _add_seqs(self, seqs: list[int]) -> None:
        self.seqs.update(seqs)
        while self._upto + 1 in self.seqs:  # amortised O(1): the watermark only moves forward
            self._upto += 1

    def upto(self) -> int:
        """Highest U such that every seq 0..U is stored."""
        return self._upto

    def missing_below(self, seq: int) -> list[list[int]]:
        return ranges([s for s in range(self.upto() + 1, seq) if s not in self.seqs])

    @property
    def complete(self) -> bool:
        return self.end_seq is not None and self.upto() >= self.end_seq


class SessionReader:
    """Read-only view of a session folder; transients are read on demand through a memory map."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not (self.folder / "session.json").exists():
            raise StoreError(f"{self.folder} is not an mrsmon session folder (no session.json)")
        self.header: dict[str, Any] = json.loads((self.folder / "session.json").read_text())
        plan_path = self.folder / "plan.json"
        self.plan: dict[str, Any] | None = json.loads(plan_path.read_text()) if plan_path.exists() else None
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
            idx = np.fromfile(path, INDEX_DTYPE)
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
        return read_jsonl(self.folder / "events.jsonl")

    def fits(self, derivative: str | None = None, revisions: bool = False) -> list[dict]:
        """Block results in block order, each block's latest revision (the first blocks of a
        session are published again once the session reference is fixed); `revisions`: every
        row as written."""
        base = self.folder / "derivatives" / derivative if derivative else self.folder
        rows = read_jsonl(base / "fits.jsonl")
        return rows if revisions else latest_revisions(rows)

    def transient_records(self) -> list[dict]:
        return read_jsonl(self.folder / "transients.jsonl")

    @property
    def end(self) -> dict | None:
        p = self.folder / "end.json"
        return json.loads(p.read_text()) if p.exists() else None

    def stored_seqs(self) -> set[int]:
        s = {0} | {int(x) for x in self.index["seq"]}
        s |= {int(e["seq"]) for e in self.events() if e.get("seq") is not None}
        if self.end:
            s.add(int(self.end["seq"]))
        return s

    def missing(self) -> list[list[int]]:
        """Seq ranges not stored, up to SESSION_END (or up to the highest stored seq while open)."""
        stored = self.stored_seqs()
        top = int(self.end["seq"]) if self.end else max(stored)
        return ranges([s for s in range(top + 1) if s not in stored])

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
            "complete": self.complete, "ended": self.end is not None,
            "events": len(self.events()), "blocks_fitted": len(fits),
            "duration_s": round(float((self.index["t_ns"].max() - self.start_ns) / 1e9), 3) if len(self.index) else 0.0,
        }
