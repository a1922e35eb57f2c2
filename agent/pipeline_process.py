"""Run the pipeline in its own process, so fitting never competes with ingest for the GIL and a crash
in a fit cannot take ingest down. Notes go in and results come out as JSON over ZeroMQ ipc sockets;
nothing is pickled. If the process dies, the agent starts a new one, which resumes every open session
from disk (the pipeline already knows how: it replays stored transients and skips fitted blocks).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import signal
import tempfile
from pathlib import Path

import zmq

log = logging.getLogger("mrsmon.agent.pipeline")


def _note_to_json(note: dict) -> bytes:
    return json.dumps({k: (sorted(v) if isinstance(v, frozenset | set) else v) for k, v in note.items()}).encode()


def _note_from_json(raw: bytes) -> dict:
    note = json.loads(raw)
    if "flags" in note:
        note["flags"] = frozenset(note["flags"])
    return note


def _child_main(notes_addr: str, results_addr: str, basis_spec: str, block: int | None, log_level: int) -> None:
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
        self._dir = tempfile.mkdtemp(prefix="mrsmon-pipe-")
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
        self._start()

    def _start(self) -> None:
        spawn = mp.get_context("spawn")  # a clean interpreter: no inherited sockets or threads
        self.proc = spawn.Process(target=_child_main, name="mrsmon-pipeline", daemon=True,
                                  args=(self.notes_addr, self.results_addr, self.basis_spec, self.block,
                                        logging.getLogger().getEffectiveLevel()))
        self.proc.start()

    def submit(self, note: dict) -> None:
        """Never blocks the agent's loop. With no pipeline process connected (it died and is being
        restarted) the note is dropped: the new process says hello, gets every unfinished session
        resubmitted and replays it from disk, so nothing is lost."""
        try:
            self.notes.send(_note_to_json(note), zmq.NOBLOCK)
        except zmq.Again:
            self.check_alive()

    def check_alive(self) -> bool:
        """Restart a dead pipeline process; True if it had to."""
        if self.proc.is_alive():
            return False
        log.error("pipeline process exited (code %s); starting a new one, which resumes from disk",
                  self.proc.exitcode)
        self.restarts += 1
        self._start()
        return True

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the process to finish what it has queued, then stop; results stay readable until close()."""
        if self.proc.is_alive():
            self.notes.send(b"STOP")
            self.proc.join(timeout_s)
        if self.proc.is_alive():
            log.warning("pipeline process did not stop in %.0f s; terminating it (it resumes from disk)", timeout_s)
            self.proc.terminate()
            self.proc.join(5)

    def close(self) -> None:
        self.notes.close(0)
        self.results_socket.close(0)
        for name in ("notes", "results"):
            try:
                os.unlink(Path(self._dir) / name)
            except OSError:
                pass
        os.rmdir(self._dir) if not os.listdir(self._dir) else None
