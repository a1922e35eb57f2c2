"""An append-only file that is either durable or rolled back: the building block of the session writer.

Writes go to an explicit offset (`pwrite`), never through a userspace buffer, so a failed write leaves
nothing queued that could land later. Every append is all or nothing: a write that fails part-way
(disk full, I/O error) is cut off again at once (`ftruncate`, which needs no free space), and the file's
logical end stays where it was, so the next append starts exactly there. `commit()` fsyncs; if that fails,
everything since the last commit is cut off, and the caller forgets those records (it never ACKed them).
The file handle is opened on demand and can be released between commits (bounded open handles).
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

log = logging.getLogger("mrsmon.agent.store")


class DurableAppendFile:
    """`end` is the logical length (everything written), `committed` the length known to be on disk."""

    def __init__(self, path: Path, end: int, fsync: bool = True):
        self.path = Path(path)
        self.end = end
        self.committed = end
        self.fsync = fsync
        self._fd: int | None = None
        self._needs_cut = False  # an earlier cut failed: bytes beyond `end` must go before anything is trusted

    # ------------------------------------------------------------------ handle
    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        return self._fd

    def close(self) -> None:
        """Release the handle (call after commit(): what is not committed stays in the file uncommitted)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # ------------------------------------------------------------------ writes
    def append(self, *parts: bytes | memoryview) -> int:
        """Write `parts` at the logical end, all or nothing; returns the offset they start at."""
        fd = self._open()
        if self._needs_cut:
            self._cut(self.end)
        start = self.end
        views = [memoryview(p).cast("B") for p in parts]
        total = sum(len(v) for v in views)
        done = 0
        try:
            while done < total:
                n = os.pwritev(fd, _remaining(views, done), start + done)
                if n == 0:
                    raise OSError(errno.ENOSPC, "no space left: a write made no progress", str(self.path))
                done += n
        except OSError:
            self._cut(start)
            raise
        self.end = start + total
        return start

    def undo_to(self, offset: int) -> None:
        """Take back an append of this batch (another file of the same record failed)."""
        self._cut(offset)
        self.end = offset

    def _cut(self, offset: int) -> None:
        try:
            os.ftruncate(self._open(), offset)
            self._needs_cut = False
        except OSError as exc:  # the next append overwrites from `end` anyway; cut again before that
            self._needs_cut = True
            log.error("could not cut %s back to %d bytes: %s", self.path, offset, exc)

    # ------------------------------------------------------------------ durability
    @property
    def dirty(self) -> bool:
        return self.end != self.committed

    def sync(self) -> None:
        """fsync what was appended since the last commit; raises OSError (the caller rolls back)."""
        if self.dirty and self.fsync:
            os.fsync(self._open())

    def mark_committed(self) -> None:
        self.committed = self.end

    def rollback(self) -> None:
        if self.end != self.committed or self._needs_cut:
            self._cut(self.committed)
            self.end = self.committed


def _remaining(views: list[memoryview], skip: int) -> list[memoryview]:
    out = []
    for v in views:
        if skip >= len(v):
            skip -= len(v)
            continue
        out.append(v[skip:])
        skip = 0
    return out


def cut_torn_line(path: Path) -> int:
    """A JSON-lines file whose last line has no newline (a write cut short, never acknowledged): cut that
    line off, fsync, and return the file's new length. Lines before it are never touched."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep != len(data):
        log.warning("%s: cutting a torn last line of %d bytes (never acknowledged)", path, len(data) - keep)
        with open(path, "r+b") as f:
            f.truncate(keep)
            os.fsync(f.fileno())
    return keep
