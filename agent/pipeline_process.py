"""Run the pipeline in its own process, so fitting never competes with ingest for the GIL and a crash
in a fit cannot take ingest down. Notes go in and results come out as JSON over ZeroMQ ipc sockets;
nothing is pickled. If the process dies, the agent starts a new one, which resumes every open session
from disk (the pipeline already knows how: it replays stored transients and skips fitted blocks).

The child is a plain `python -m agent.pipeline_process` (no multiprocessing, so no resource tracker
that could outlive the agent), and it dies with the agent (`agent.lifeline`): a SIGKILLed agent leaves
no orphan behind, and a restarted one starts its own child on fresh ipc paths.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

from agent.lifeline import child_env, die_with_parent

log = logging.getLogger("mrsmon.agent.pipeline")


def _note_to_json(note: dict) -> bytes:
    return json.dumps({k: (sorted(v) if isinstance(v, frozenset | set) else v) for k, v in note.items()}).encode()


def _note_from_json(raw: bytes) -> dict:
    note = json.loads(raw)
    if "flags" in note:
        note["flags"] = frozenset(note["flags"])
    return note


def _child_main(notes_addr: str, results_addr: str, basis_spec: str, block: int | None, log_level: int) -> None:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the agent decides when we stop
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads
        os.environ.setdefault(var, "1")  # small matrices: one thread is faster and steadier under load
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    from agent.pipeline import Pipeline

    ctx = zmq.Context()
    notes = ctx.socket(zmq.PULL)
    notes.connect(notes_addr)
    results = ctx.socket(zmq.PUSH)
    results.connect(results_addr)
    # Both links are up: tell the agent, which then (re)submits every unfinished session to replay.
    results.send_multipart([b"_hello", b"{}"])

    def publish(topic: str, obj: dict) -> None:
        results.send_multipart([topic.encode(), json.dumps(obj, allow_nan=False).encode()])

    pipe = Pipeline(publish, basis_spec, block)
    pipe.warm_up()
    try:
        while True:
            raw = notes.recv()
            if raw == b"STOP":
                break
            pipe.handle_safely(_note_from_json(raw))
    finally:
        pipe.close()
        results.send_multipart([b"_stopped", b"{}"])
        notes.close(0)
        results.close(linger=2000)
        ctx.term()


class PipelineProcess:
    """The agent-side handle: `submit(note)` from the poll thread; results arrive on `results_socket`."""

    def __init__(self, ctx: zmq.Context, basis_spec: str = "auto", block: int | None = None):
        _remove_stale_dirs()
        self._dir = tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-")
        self.notes_addr = f"ipc://{self._dir}/notes"
        self.results_addr = f"ipc://{self._dir}/results"
        self.notes = ctx.socket(zmq.PUSH)
        self.notes.linger = 0
        self.notes.sndhwm = 200_000  # ~100 h of transient notes: a slow pipeline never makes us drop one
        self.notes.bind(self.notes_addr)
        self.results_socket = ctx.socket(zmq.PULL)
        self.results_socket.linger = 0
        self.results_socket.bind(self.results_addr)
        self.basis_spec, self.block = basis_spec, block
        self.restarts = 0
        self._stopping = False
        self._start()

    def _start(self) -> None:
        # a clean interpreter: no inherited sockets or threads; stdout and stderr are the agent's (its log)
        cmd = [sys.executable, "-m", "agent.pipeline_process", self.notes_addr, self.results_addr, self.basis_spec,
               "" if self.block is None else str(self.block), str(logging.getLogger().getEffectiveLevel())]
        self.proc = subprocess.Popen(cmd, env=child_env(), stdin=subprocess.DEVNULL)

    def submit(self, note: dict) -> None:
        """Never blocks the agent's loop. With no pipeline process connected (it died and is being
        restarted) the note is dropped: the new process says hello, gets every unfinished session
        resubmitted and replays it from disk, so nothing is lost."""
        try:
            self.notes.send(_note_to_json(note), zmq.NOBLOCK)
        except zmq.Again:
            self.check_alive()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def is_alive(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> bool:
        """Restart a dead pipeline process; True if it had to (never once stop() was called)."""
        if self.is_alive() or self._stopping:
            return False
        log.error("pipeline process exited (code %s); starting a new one, which resumes from disk",
                  self.proc.returncode)
        self.restarts += 1
        self._start()
        return True

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the process to finish what it has queued, then stop; results stay readable until close()."""
        self._stopping = True
        deadline = time.monotonic() + timeout_s
        if self.is_alive():
            self.notes.sndtimeo = int(timeout_s * 1000)  # a process still starting connects within this
            try:
                self.notes.send(b"STOP")
            except zmq.Again:
                pass
            try:
                self.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("pipeline process did not stop in %.0f s; killing it (it resumes from disk)", timeout_s)
                self.proc.kill()
                self.proc.wait(5)

    def close(self) -> None:
        self.notes.close(0)
        self.results_socket.close(0)
        shutil.rmtree(self._dir, ignore_errors=True)


_DIR_PREFIX = "mrsmon-pipe-"


def _remove_stale_dirs() -> None:
    """ipc folders left by agents that were killed (their pid is gone): nothing else cleans them up."""
    for d in Path(tempfile.gettempdir()).glob(f"{_DIR_PREFIX}*-*"):
        try:
            pid = int(d.name[len(_DIR_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if __name__ == "__main__":
    _notes, _results, _basis, _block, _level = sys.argv[1:6]
    _child_main(_notes, _results, _basis, int(_block) if _block else None, int(_level))
