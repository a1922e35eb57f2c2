"""A child process of the agent dies with it: no orphaned pipeline or export keeps running after a kill.

The agent starts its children with `child_env()`; a child calls `die_with_parent()` first thing. On
Linux the kernel sends the child SIGKILL when the parent dies (PR_SET_PDEATHSIG); everywhere, a
watchdog thread also checks once a second that the parent is still the one that started it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PARENT_ENV = "MRSMON_PARENT_PID"
PR_SET_PDEATHSIG = 1
WATCH_INTERVAL_S = 1.0


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child that must not outlive this process."""
    return {**(os.environ if env is None else env), PARENT_ENV: str(os.getpid())}


def die_with_parent(parent_pid: int | None = None) -> bool:
    """Arrange to exit when the parent does; True if a parent was named (by argument or environment)."""
    if parent_pid is None:
        parent_pid = int(os.environ.get(PARENT_ENV, "0") or 0)
    if parent_pid <= 0:
        return False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still works
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), name="mrsmon-lifeline", daemon=True).start()
    return True


def _watch(parent_pid: int) -> None:
    while True:
        time.sleep(WATCH_INTERVAL_S)
        if os.getppid() != parent_pid:
            os._exit(1)
