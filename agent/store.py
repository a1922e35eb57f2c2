"""Session folders on disk: durable append (fsync before ACK), crash recovery, and lazy reading.

Layout and record format: docs/session-format.md. Writers own one session folder; the reader is
`protocols.session_folder.SessionReader`.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from agent.durable import DurableAppendFile, cut_torn_line
from protocols.session_folder import (  # the folder format and its reader live with the other readers
    INDEX_DTYPE,
    RECORD_HEADER,
    RECORD_MAGIC,
    RECORD_VERSION,
    is_seq,
    read_index,
    read_json,
    read_jsonl,
    scan_raw_log,
)
from protocols.wire import flags_to_bits, missing_ranges

log = logging.getLogger("mrsmon.agent.store")


class StoreError(OSError):
    """The session folder cannot be written or read."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Temp file, fsync, rename, fsync the folder: the file is either the old or the new one. A failed
    write (disk full) leaves no temp file behind and raises OSError."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _index_fits_raw(index: np.ndarray, raw: Path, record_bytes: int) -> bool:
    """True if index.bin describes raw.log exactly: records back to back, the last one ending at the file's
    end with the seq the index names (a cheap check; anything else makes recovery scan raw.log)."""
    size = raw.stat().st_size if raw.exists() else 0
    n = len(index)
    if n * record_bytes != size:
        return False
    if n == 0:
        return True
    if not np.array_equal(index["offset"], np.arange(n, dtype=np.uint64) * np.uint64(record_bytes)):
        return False
    with open(raw, "rb") as f:
        f.seek(int(index["offset"][-1]))
        head = f.read(RECORD_HEADER.size)
    return len(head) == RECORD_HEADER.size and head[:4] == RECORD_MAGIC and \
        RECORD_HEADER.unpack(head)[3] == int(index["seq"][-1])


class SessionWriter:
    """Appends one session's messages durably. Not thread-safe: the ingest thread owns it.

    State is what is *accounted for*: every seq stored, or durably recorded as refused (refused.jsonl).
    It is kept as a watermark `upto` (every seq 0..upto accounted for) plus the set of seqs above it, so
    memory grows with the out-of-order window, not with the session. File handles are opened on demand;
    `release()` closes them (after a commit) and the next append reopens them.
    """

    def __init__(self, folder: Path, header: dict[str, Any], plan: dict[str, Any] | None = None,
                 fsync: bool = True, on_open: Any = None):
        self.folder = Path(folder)
        self._fsync = fsync
        self._on_open = on_open  # called before handles are opened (the owner bounds open writers)
        new = not (self.folder / "session.json").exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        if new:  # plan first: session.json's presence is what makes the folder a session
            if plan is not None:
                write_json_atomic(self.folder / "plan.json", plan)
            write_json_atomic(self.folder / "session.json", {**header, "received_ns": time.time_ns()})
        self.header = read_json(self.folder / "session.json")
        self.coils = int(self.header["coils"])
        self.points = int(self.header["points"])
        self.start_ns = int(self.header["start_time_ns"])
        self.record_bytes = RECORD_HEADER.size + self.coils * self.points * 8
        self._pending: list[tuple[int, str]] = []  # (seq, kind) appended since the last commit
        self._recover()

    # -------------------------------------------------------------- recovery
    def _recover(self) -> None:
        """Learn what is stored; cut only torn tails (bytes after the last valid record, never ACKed)."""
        raw = self.folder / "raw.log"
        index_path = self.folder / "index.bin"
        on_disk = read_index(index_path)
        if _index_fits_raw(on_disk, raw, self.record_bytes):
            index, valid_end = on_disk, len(on_disk) * self.record_bytes
        else:
            index, valid_end = scan_raw_log(raw, self.record_bytes)
            size = raw.stat().st_size if raw.exists() else 0
            if 0 < size - valid_end < self.record_bytes:  # shorter than a record: a write cut short, never ACKed
                log.warning("%s: cutting a torn last record of %d bytes", raw, size - valid_end)
                with open(raw, "r+b") as f:
                    f.truncate(valid_end)
                    os.fsync(f.fileno())
                size = valid_end
            elif size > valid_end:  # whole records that fail their check: keep them, append after them
                log.error("%s: %d bytes after the last valid record are damaged; kept, and skipped by readers",
                          raw, size - valid_end)
            valid_end = size
            tmp = index_path.with_suffix(".tmp")
            index.tofile(tmp)
            os.replace(tmp, index_path)
        self.n_transients = len(index)
        self._raw = DurableAppendFile(raw, valid_end, self._fsync)
        self._index = DurableAppendFile(index_path, len(index) * INDEX_DTYPE.itemsize, fsync=False)
        events_path, refused_path = self.folder / "events.jsonl", self.folder / "refused.jsonl"
        self._events = DurableAppendFile(events_path, cut_torn_line(events_path), self._fsync)
        self._refusals = DurableAppendFile(refused_path, cut_torn_line(refused_path), self._fsync)
        accounted = [0, *(int(s) for s in index["seq"])]
        accounted += [int(e["seq"]) for e in read_jsonl(events_path) if is_seq(e.get("seq"))]
        accounted += [int(e["seq"]) for e in read_jsonl(refused_path) if is_seq(e.get("seq"))]
        self.end_seq: int | None = None
        end = self.folder / "end.json"
        if end.exists():
            self.end_seq = int(read_json(end)["seq"])
            accounted.append(self.end_seq)
        self._upto = -1
        self._ahead: set[int] = set()
        self._add_seqs(accounted)

    @property
    def fsync(self) -> bool:
        return self._fsync

    @fsync.setter
    def fsync(self, on: bool) -> None:
        self._fsync = on
        for f in (self._raw, self._events, self._refusals):  # index.bin is rebuilt from raw.log if it lags
            f.fsync = on

    @property
    def _files(self) -> tuple[DurableAppendFile, ...]:
        return (self._raw, self._index, self._events, self._refusals)

    def _ready(self) -> None:
        if not any(f.is_open for f in self._files) and self._on_open is not None:
            self._on_open(self)

    # -------------------------------------------------------------- commit
    def commit(self) -> None:
        """Make every append since the last commit durable. Callers ACK only after this returns.

        If fsync fails, everything since the last commit is rolled back (files cut to their committed
        length, seqs forgotten), so the sender's resend is stored again rather than taken for a duplicate.
        """
        try:
            for f in self._files:
                f.sync()
        except OSError:
            self._rollback()
            raise
        for f in self._files:
            f.mark_committed()
        self._pending.clear()

    @property
    def dirty(self) -> bool:
        return bool(self._pending) or any(f.dirty for f in self._files)

    def _rollback(self) -> None:
        for f in self._files:
            f.rollback()
        if not self._pending:
            return
        lost = {s for s, _ in self._pending}
        self.n_transients -= sum(1 for _, kind in self._pending if kind == "transient")
        low = min(lost)
        if low <= self._upto:  # the watermark passed pending seqs: step it back, keep the durable ones ahead
            self._ahead.update(s for s in range(low + 1, self._upto + 1) if s not in lost)
            self._upto = low - 1
        self._ahead.difference_update(lost)
        self._pending.clear()

    def release(self) -> None:
        """Commit (a failure rolls back) and close the file handles; the next append reopens them."""
        try:
            self.commit()
        except OSError as exc:
            log.error("session %s: commit before releasing its files failed: %s", self.folder.name, exc)
        for f in self._files:
            f.close()

    def close(self) -> None:
        self.release()

    # -------------------------------------------------------------- appends
    def append_transient(self, seq: int, t_ns: int, scan: int, flags: frozenset[str], data: np.ndarray,
                         crc32: int | None = None) -> int:
        """Append one transient (durable at the next commit); returns the record's offset in raw.log.

        `crc32` is the payload's checksum when the caller has verified it already (ingest has), which
        saves a second pass over the data on the hot path. All or nothing: if a write fails, nothing
        of the record stays in raw.log or index.bin and OSError is raised.
        """
        self._ready()
        arr = np.ascontiguousarray(data, dtype="<c8")
        buf = memoryview(arr).cast("B")
        crc = zlib.crc32(buf) if crc32 is None else crc32
        head = RECORD_HEADER.pack(RECORD_MAGIC, RECORD_VERSION, RECORD_HEADER.size, seq, t_ns,
                                  flags_to_bits(flags), data.shape[0], data.shape[1], crc, len(buf),
                                  scan, b"\0" * 8)
        offset = self._raw.append(head, buf)
        entry = np.array([(seq, offset, t_ns, flags_to_bits(flags), scan & 0xFFFFFFFF)], INDEX_DTYPE)
        try:
            self._index.append(entry.tobytes())  # rebuildable from raw.log, but kept exact for fast reopen
        except OSError:
            self._raw.undo_to(offset)
            raise
        self._stored(seq, "transient")
        self.n_transients += 1
        return offset

    def append_event(self, event: dict[str, Any]) -> dict[str, Any]:
        self._ready()
        row = {"seq": event.get("seq"), "source": event.get("source", "scanner"), "kind": event["kind"],
               "t_ns": int(event["t_ns"]), "t_s": (int(event["t_ns"]) - self.start_ns) / 1e9,
               "value": event.get("value") or {}, "note": event.get("note", "")}
        if event.get("id"):
            row["id"] = str(event["id"])
        self._events.append((json.dumps(row, allow_nan=False) + "\n").encode())
        if row["seq"] is not None:
            self._stored(int(row["seq"]), "event")
        return row

    def append_refusal(self, seq: int, code: str, reason: str, type_: str) -> dict[str, Any]:
        """Account for a seq whose message was refused for good (the sender drops it), so `upto` can pass
        it: the session records what was lost and why instead of waiting for it forever."""
        self._ready()
        row = {"seq": seq, "type": type_, "code": code, "reason": reason[:300], "received_ns": time.time_ns()}
        self._refusals.append((json.dumps(row, allow_nan=False) + "\n").encode())
        self._stored(seq, "refusal")
        return row

    def end(self, header: dict[str, Any]) -> None:
        """SESSION_END: end.json is written and fsynced at once (atomic), so it needs no commit."""
        write_json_atomic(self.folder / "end.json", header)
        self.end_seq = int(header["seq"])
        self._add_seqs([self.end_seq])

    def _stored(self, seq: int, kind: str) -> None:
        self._pending.append((seq, kind))
        self._add_seqs([seq])

    # -------------------------------------------------------------- state
    def _add_seqs(self, seqs: list[int]) -> None:
        self._ahead.update(s for s in seqs if s > self._upto)
        while self._upto + 1 in self._ahead:  # amortised O(1): the watermark only moves forward
            self._upto += 1
            self._ahead.discard(self._upto)

    def holds(self, seq: int) -> bool:
        """True if seq is accounted for (stored, or recorded as refused)."""
        return seq <= self._upto or seq in self._ahead

    def upto(self) -> int:
        """Highest U such that every seq 0..U is accounted for."""
        return self._upto

    def missing_below(self, seq: int, limit: int = 64) -> list[list[int]]:
        """Ranges of seqs above `upto` and below `seq` not accounted for; work grows with what is held
        above `upto`, never with the size of a gap."""
        return missing_ranges(sorted(self._ahead), self._upto + 1, seq - 1, limit)

    @property
    def complete(self) -> bool:
        return self.end_seq is not None and self.upto() >= self.end_seq
