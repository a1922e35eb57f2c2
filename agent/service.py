"""The agent process: owns the sockets and routes between ingest, the pipeline, displays and control.

One thread polls the data ROUTER, the control ROUTER and the pipeline's results, and alone touches
the PUB socket and the session writers. Fitting runs in a separate pipeline process.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib.metadata import version as _version
from pathlib import Path
from typing import Any

import zmq

from agent.ingest import Ingest
from agent.security import CurveGuard, SecurityError, is_loopback
from protocols.session_folder import latest_revisions, read_block_spectrum, read_jsonl
from protocols.wire import EVENT_KINDS

log = logging.getLogger("mrsmon.agent")
__version__ = _version("mrsmon")
STATUS_INTERVAL_S = 1.0


@dataclass
class AgentConfig:
    sessions_dir: Path
    listen: str = "tcp://127.0.0.1:5555"
    publish: str = "tcp://127.0.0.1:5556"
    control: str = "tcp://127.0.0.1:5557"
    keys: Path | None = None
    basis: str = "auto"
    block: int | None = None
    fit: bool = True
    credit: int = 64
    fsync: bool = True
    bids: Path | None = None  # MRS-BIDS root for the automatic export at session end; None = no export


class Agent:
    def __init__(self, config: AgentConfig, context: zmq.Context | None = None):
        self.config = config
        self.ctx = context or zmq.Context()
        self._own_ctx = context is None
        self.ingest = Ingest(config.sessions_dir, credit=config.credit, fsync=config.fsync)
        self.pub_seq = 0
        self.current: str | None = None
        self.results: dict[str, list[dict]] = {}
        self.latest: dict[str, dict] = {}
        self.last_transient: dict[str, float] = {}
        self.guard: CurveGuard | None = None
        self._stop = threading.Event()
        self.pipeline = None
        self._unfinished: dict[str, bool] = {}  # sessions the pipeline has not ended: sid -> scanner ended
        self._exports: dict[str, subprocess.Popen] = {}
        self._export_errs: dict[str, Any] = {}  # each running export's stderr file
        self.export_state: dict[str, str] = {}
        self.ready = threading.Event()

    # ------------------------------------------------------------------ setup
    def _bind(self) -> None:
        c = self.config
        if not is_loopback(c.listen) and c.keys is None:
            raise SecurityError(f"{c.listen} is not a loopback address: CURVE keys are required "
                                "(create them with `mrsmon keygen DIR`, then pass --keys DIR)")
        self.data = self.ctx.socket(zmq.ROUTER)
        self.data.linger = 0
        self.data.rcvhwm = 10000
        if c.keys is not None:
            self.guard = CurveGuard(self.ctx, c.keys)
            self.guard.secure(self.data)
        self.data.bind(c.listen)
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.linger = 0
        self.pub.sndhwm = 10000
        self.pub.bind(c.publish)
        self.ctl = self.ctx.socket(zmq.ROUTER)
        self.ctl.linger = 0
        self.ctl.bind(c.control)

    def stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        try:
            self._bind()
            self._serve()
        finally:
            self._shutdown()

    def _serve(self) -> None:
        if self.config.fit:
            from agent.pipeline_process import PipelineProcess

            self.pipeline = PipelineProcess(self.ctx, self.config.basis, self.config.block)
        for sid in self.ingest.open_unfinished():
            log.info("reopened unfinished session %s", sid)
            self._load_results(sid)
            self.current = sid
            self._unfinished[sid] = False
            self._to_pipeline({"kind": "open", "session": sid, "seq": 0})
        log.info("agent %s listening on %s, publishing on %s, control on %s, sessions in %s", __version__,
                 self.config.listen, self.config.publish, self.config.control, self.config.sessions_dir)
        poller = zmq.Poller()
        results = self.pipeline.results_socket if self.pipeline else None
        for s in (self.data, self.ctl, results):
            if s is not None:
                poller.register(s, zmq.POLLIN)
        next_status = time.monotonic()
        self.ready.set()
        while not self._stop.is_set():
            events = dict(poller.poll(100))
            if self.data in events:
                self._drain_data()
            if results is not None and results in events:
                self._drain_pipeline()
            if self.ctl in events:
                self._drain_control()
            if time.monotonic() >= next_status:
                self._publish_status()
                if self.pipeline:
                    self.pipeline.check_alive()
                self._reap_exports()
                next_status = time.monotonic() + STATUS_INTERVAL_S

    def _shutdown(self) -> None:
        for sid, proc in self._exports.items():
            log.warning("export of session %s interrupted by shutdown; repeat it with `mrsmon export %s --bids %s`",
                        sid, self.config.sessions_dir / sid, self.config.bids)
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:  # the rest of the shutdown must still run
                proc.kill()
        if self.pipeline is not None:
            self.pipeline.stop()
            self._drain_pipeline()
            self.pipeline.close()
        self.ingest.close()
        if self.guard:
            self.guard.stop()
        for name in ("data", "pub", "ctl"):  # some may not exist if binding failed
            sock = getattr(self, name, None)
            if sock is not None:
                sock.close(linger=0)
        if self._own_ctx:
            self.ctx.term()
        log.info("agent stopped: %s", self.ingest.status())

    def _drain_data(self) -> None:
        """Take what is waiting (bounded, so control and results get their turn), store it with one
        fsync, then ACK: group commit keeps latency at one fsync and lets throughput grow with load."""
        batch = []
        for _ in range(256):
            try:
                batch.append(self.data.recv_multipart(zmq.NOBLOCK, copy=True))
            except zmq.Again:
                break
        if not batch:
            return
        arrived = time.monotonic()
        outcomes = self.ingest.handle_many([frames[1:] for frames in batch])
        for frames, outcome in zip(batch, outcomes):
            for reply in outcome.replies:
                self.data.send_multipart([frames[0], *reply])
            for note in outcome.notes:
                self._on_note(note, arrived)

    def _on_note(self, note, arrived: float) -> None:
        sid = note.session
        folder = str(self.config.sessions_dir / sid)
        if note.kind == "session":
            self.current = sid
            self.results[sid] = []
            self._unfinished[sid] = False
            w = self.ingest.writers[sid]
            self._publish("session", {"session": sid, "header": w.header, "plan": self._plan(sid)})
        elif note.kind == "transient":
            self.last_transient[sid] = time.monotonic()
            self._to_pipeline({"kind": "transient", "session": sid, "seq": note.seq, "folder": folder,
                               "offset": note.data["offset"], "t_ns": note.data["t_ns"],
                               "flags": note.data["flags"], "arrived": arrived})
            return
        elif note.kind == "event":
            self._publish("event", {"session": sid, **note.data})
        elif note.kind == "end":
            self._unfinished[sid] = True
            if not self.pipeline:
                self._publish("end", {"session": sid})
                self._start_export(sid)
        self._to_pipeline({"kind": note.kind, "session": sid, "seq": note.seq, "folder": folder})

    def _to_pipeline(self, note: dict) -> None:
        if self.pipeline is not None:
            note.setdefault("folder", str(self.config.sessions_dir / note["session"]))
            self.pipeline.submit(note)

    def _resubmit_unfinished(self) -> None:
        """A new pipeline process knows nothing: reopen every session it had not finished (it replays
        them from disk, so notes dropped while no process was connected are not lost)."""
        for sid, ended in self._unfinished.items():
            self._to_pipeline({"kind": "open", "session": sid, "seq": 0})
            if ended:
                self._to_pipeline({"kind": "end", "session": sid, "seq": -1})

    def _drain_pipeline(self) -> None:
        assert self.pipeline is not None
        while True:
            try:
                topic, body = self.pipeline.results_socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if topic == b"_hello":  # a (re)started pipeline process: give it every unfinished session
                self._resubmit_unfinished()
                continue
            if topic.startswith(b"_"):
                continue
            obj = json.loads(body)
            sid = obj.get("session")
            if topic == b"end":
                self._unfinished.pop(sid, None)
                self._start_export(sid)  # after the last fit, so the derivatives are complete
            if topic == b"result" and sid:
                self._keep_result(sid, {k: v for k, v in obj.items() if k != "spectrum"})
                if not obj.get("revision"):
                    self.latest[sid] = obj
            self._publish(topic.decode(), obj)

    # ------------------------------------------------------------------ export
    def _start_export(self, sid: str) -> None:
        """Export an ended session to MRS-BIDS in a child process: never in the way of ingest or fitting."""
        if self.config.bids is None or sid in self._exports:
            return
        cmd = [sys.executable, "-m", "mrsmon", "export", str(self.config.sessions_dir / sid), "--bids",
               str(self.config.bids)]
        # stderr to a file, not a pipe: a pipe nobody reads until the end blocks a chatty child for good
        err_file = tempfile.TemporaryFile(mode="w+")
        self._exports[sid] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err_file, text=True)
        self._export_errs[sid] = err_file
        self.export_state[sid] = "running"
        log.info("session %s ended: exporting to %s", sid, self.config.bids)

    def _reap_exports(self) -> None:
        for sid, proc in list(self._exports.items()):
            if proc.poll() is None:
                continue
            del self._exports[sid]
            err_file = self._export_errs.pop(sid)
            err_file.seek(0)
            err = err_file.read().strip()
            err_file.close()
            if proc.returncode == 0:
                self.export_state[sid] = "done"
                log.info("session %s exported to %s", sid, self.config.bids)
            else:
                self.export_state[sid] = "failed"
                log.error("export of session %s failed: %s", sid, err.splitlines()[0] if err else proc.returncode)
                self._publish("alarm", {"session": sid, "level": "amber", "code": "EXPORT_FAILED",
                                        "message": f"export failed: {err[:200]}"})

    # ------------------------------------------------------------------ publishing
    def _publish(self, topic: str, obj: dict) -> None:
        self.pub_seq += 1
        obj = {**obj, "pub_seq": self.pub_seq}
        self.pub.send_multipart([topic.encode(), json.dumps(obj, allow_nan=False).encode()])

    def status(self) -> dict[str, Any]:
        sid = self.current
        st: dict[str, Any] = {"session": sid, "link": "no_session", **self.ingest.status(),
                              "export": self.export_state.get(sid) if sid else None}
        if sid and sid in self.ingest.writers:
            w = self.ingest.writers[sid]
            tr = float(w.header.get("repetition_time_s", 2.0))
            age = time.monotonic() - self.last_transient[sid] if sid in self.last_transient else None
            st.update({"transients": w.n_transients, "last_transient_age_s": age,
                       "last_block": (self.results.get(sid) or [{}])[-1].get("block"),
                       "ended": w.end_seq is not None, "complete": w.complete,
                       "link": "ended" if w.end_seq is not None else
                       ("receiving" if age is not None and age < 3 * tr else "idle")})
        return st

    def _publish_status(self) -> None:
        self._publish("status", self.status())

    # ------------------------------------------------------------------ control
    def _drain_control(self) -> None:
        while True:
            try:
                frames = self.ctl.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            identity, body = frames[0], frames[-1]
            envelope = frames[1:-1]  # REQ clients add an empty delimiter frame
            try:
                req = json.loads(body)
                if not isinstance(req, dict):
                    raise ValueError("request must be a JSON object")
                reply = self._control(req)
            except (ValueError, KeyError, TypeError) as exc:
                reply = {"ok": False, "error": str(exc)}
            self.ctl.send_multipart([identity, *envelope, json.dumps(reply, allow_nan=False).encode()])

    def _control(self, req: dict) -> dict:
        op = req.get("op")
        if op == "ping":
            return {"ok": True, "version": __version__, "session": self.current}
        if op == "snapshot":
            sid = req.get("session") or self.current
            if sid is None:
                return {"ok": True, "session": None, "results": [], "events": [], "status": self.status(),
                        "last_pub_seq": self.pub_seq}
            folder = self.config.sessions_dir / sid
            header = json.loads((folder / "session.json").read_text())
            if sid not in self.results:
                self._load_results(sid)
            return {"ok": True, "session": header, "plan": self._plan(sid), "results": self.results[sid],
                    "events": read_jsonl(folder / "events.jsonl"), "latest": self.latest.get(sid),
                    "status": self.status(), "last_pub_seq": self.pub_seq}
        if op == "event":
            return self._control_event(req)
        if op == "block":
            sid = req.get("session") or self.current
            return {"ok": True, "result": self._block(sid, int(req["block"]))}
        raise ValueError(f"unknown op {op!r}; use ping, snapshot, event or block")

    def _control_event(self, req: dict) -> dict:
        sid = self.current
        if sid is None or sid not in self.ingest.writers:
            raise ValueError("no session is open to mark an event in")
        kind = req.get("kind")
        if kind not in EVENT_KINDS:
            raise ValueError(f"event kind {kind!r} is not one of {', '.join(EVENT_KINDS)}")
        value = req.get("value") or {}
        note = str(req.get("note", ""))[:500]
        if not isinstance(value, dict):
            raise ValueError("event value must be a JSON object")
        event_id = req.get("id")
        if event_id is not None and not (isinstance(event_id, str) and 0 < len(event_id) <= 64):
            raise ValueError("event id must be a string of 1 to 64 characters")
        w = self.ingest.writers[sid]
        if event_id is not None:  # idempotent: a resend after a lost reply returns the stored event
            stored = next((e for e in read_jsonl(w.folder / "events.jsonl") if e.get("id") == event_id), None)
            if stored is not None:
                return {"ok": True, "event": stored, "duplicate": True}
        t_ns = int(req.get("t_ns") or time.time_ns())
        row = w.append_event({"seq": None, "source": "display", "kind": kind, "t_ns": t_ns, "value": value,
                              "note": note, "id": event_id})
        w.commit()
        self._publish("event", {"session": sid, **row})
        return {"ok": True, "event": row}

    def _plan(self, sid: str) -> dict | None:
        p = self.config.sessions_dir / sid / "plan.json"
        return json.loads(p.read_text()) if p.exists() else None

    def _load_results(self, sid: str) -> None:
        self.results[sid] = latest_revisions(read_jsonl(self.config.sessions_dir / sid / "fits.jsonl"))

    def _keep_result(self, sid: str, row: dict) -> None:
        """Snapshots carry each block once: a revision replaces the row of its block."""
        rows = self.results.setdefault(sid, [])
        if row.get("revision"):
            for i in range(len(rows) - 1, -1, -1):
                if rows[i].get("block") == row.get("block"):
                    rows[i] = row
                    return
        rows.append(row)

    def _block(self, sid: str | None, block: int) -> dict:
        if sid is None:
            raise ValueError("no session")
        rows = [r for r in self.results.get(sid) or read_jsonl(self.config.sessions_dir / sid / "fits.jsonl")
                if r.get("block") == block]
        if not rows:
            raise ValueError(f"block {block} has not been fitted")
        result = dict(rows[-1])
        spec = read_block_spectrum(self.config.sessions_dir / sid, block)
        if spec is not None:
            comps = spec.pop("components")
            result["spectrum"] = {**{k: v.tolist() for k, v in spec.items()},
                                  "components": {n: c.tolist() for n, c in comps.items()}}
        return result
