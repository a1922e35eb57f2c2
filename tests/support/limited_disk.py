"""Run `mrsmon` with an injected size-limited disk, for machines where the fault suite cannot mount a small
filesystem: appends (os.pwritev) under MRSMON_TEST_DISK_ROOT fail with ENOSPC part-way once the files there
would exceed the byte budget written in MRSMON_TEST_DISK_BUDGET, as a full disk fails them; fsync fails
likewise while the folder is over budget. The test frees space by raising the budget."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

ROOT = Path(os.environ["MRSMON_TEST_DISK_ROOT"])
BUDGET = Path(os.environ["MRSMON_TEST_DISK_BUDGET"])
_real_pwritev, _real_fsync = os.pwritev, os.fsync


def _used() -> int:
    return sum(f.stat().st_size for f in ROOT.rglob("*") if f.is_file())


def _path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def pwritev(fd, buffers, offset, *args):
    if not _path(fd).startswith(str(ROOT)):
        return _real_pwritev(fd, buffers, offset, *args)
    room = int(BUDGET.read_text()) - _used()
    total = sum(len(memoryview(b).cast("B")) for b in buffers)
    if total <= room:
        return _real_pwritev(fd, buffers, offset, *args)
    if room > 0:  # the part that fits lands, as on a real disk
        first = bytes(memoryview(buffers[0]).cast("B"))[:room]
        return _real_pwritev(fd, [first], offset, *args)
    raise OSError(errno.ENOSPC, "No space left on device (injected)")


def fsync(fd):
    if _path(fd).startswith(str(ROOT)) and _used() > int(BUDGET.read_text()):
        raise OSError(errno.ENOSPC, "No space left on device (injected)")
    return _real_fsync(fd)


os.pwritev, os.fsync = pwritev, fsync

if __name__ == "__main__":
    from mrsmon.cli import main

    sys.exit(main(sys.argv[1:]))
