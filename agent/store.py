"""Session folders on disk: durable append (fsync before ACK), crash recovery, and lazy reading.

Layout and record format: docs/session-format.md. Writers own one session folder; the reader is
`protocols.session_folder.SessionReader`.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from protocols.session_folder import (  # the folder format and its reader live with the other readers
    INDEX_DTYPE,
    RECORD_HEADER,
    RECORD_MAGIC,
    RECORD_VERSION,
    read_jsonl,
    scan_raw_log,
)
from protocols.wire import flags_to_bits, ranges


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
