"""Export ended sessions to MRS-BIDS in child processes, one at a time, never in the way of ingest.

Each session folder keeps `processed.json` (docs/session-format.md): `fitted` once the pipeline has
fitted every block after SESSION_END, `export` once the export finished (`done` or `failed`). A
restarted agent reads it to finish what a crash interrupted. An export child dies with the agent
(`agent.lifeline`), so two exports never race for the same BIDS folder.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.lifeline import child_env
from agent.store import write_json_atomic
from protocols.session_folder import read_json

log = logging.getLogger("mrsmon.agent")
PROCESSED = "processed.json"


def read_processed(folder: Path) -> dict[str, Any]:
    path = Path(folder) / PROCESSED
    try:
        obj = read_json(path) if path.exists() else {}
    except (OSError, ValueError):
        obj = {}
    return obj if isinstance(obj, dict) else {}


def mark_processed(folder: Path, **fields: Any) -> None:
    """Merge fields into processed.json; a failed write (disk full) only means the work is redone later."""
    try:
        write_json_atomic(Path(folder) / PROCESSED, {**read_processed(folder), **fields})
    except OSError as exc:
        log.error("could not record %s in %s: %s (it is redone after a restart)", fields, folder, exc)


class ExportQueue:
    def __init__(self, sessions_dir: Path, bids: Path | None, alarm: Callable[[dict], None]):
        self.sessions_dir, self.bids, self._alarm = sessions_dir, bids, alarm
        self._waiting: deque[str] = deque()
        self._running: tuple[str, subprocess.Popen, Any] | None = None
        self.state: dict[str, str] = {}

    def submit(self, sid: str) -> None:
        if self.bids is None or self.state.get(sid) in ("waiting", "running"):
            return
        self.state[sid] = "waiting"
        self._waiting.append(sid)
        self.poll()

    def poll(self) -> None:
        """Reap a finished export and start the next one."""
        if self._running is not None:
            sid, proc, err_file = self._running
            if proc.poll() is None:
                return
            self._running = None
            self._finished(sid, proc.returncode, err_file)
        if self._waiting:
            self._start(self._waiting.popleft())

    def _start(self, sid: str) -> None:
        cmd = [sys.executable, "-m", "mrsmon", "export", str(self.sessions_dir / sid), "--bids", str(self.bids)]
        # stderr to a file, not a pipe: a pipe nobody reads until the end blocks a chatty child for good
        err_file = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err_file, stdin=subprocess.DEVNULL, text=True,
                                env=child_env())
        self._running = (sid, proc, err_file)
        self.state[sid] = "running"
        log.info("session %s ended: exporting to %s", sid, self.bids)

    def _finished(self, sid: str, returncode: int, err_file: Any) -> None:
        err_file.seek(0)
        err = err_file.read().strip()
        err_file.close()
        folder = self.sessions_dir / sid
        if returncode == 0:
            self.state[sid] = "done"
            log.info("session %s exported to %s", sid, self.bids)
        else:
            self.state[sid] = "failed"
            log.error("export of session %s failed: %s", sid, err.splitlines()[0] if err else returncode)
            self._alarm({"session": sid, "level": "amber", "code": "EXPORT_FAILED",
                         "message": f"export failed: {err[:200]}"})
        mark_processed(folder, export=self.state[sid], bids=str(self.bids))

    def shutdown(self) -> None:
        if self._running is None:
            return
        sid, proc, err_file = self._running
        log.warning("export of session %s interrupted by shutdown; it runs again when the agent restarts", sid)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # the rest of the shutdown must still run
            proc.kill()
            proc.wait(5)
        err_file.close()
        self._running = None
