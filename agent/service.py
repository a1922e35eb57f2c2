"""The agent process: owns the sockets and routes between ingest, the pipeline, displays and control.

One thread polls the data ROUTER, the control ROUTER, the results XPUB and the pipeline's results, and
alone touches the sockets and the session writers. Fitting runs in a separate pipeline process, exports
in child processes. Nothing a peer sends reaches further than a refusal: every message and request is
handled inside its own guard, and the loop itself never raises.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from importlib.metadata import version as _version
from pathlib import Path
from typing import Any

import zmq

from agent import control
from agent.control import ControlError
from agent.exports import ExportQueue, mark_processed, read_processed
from agent.ingest import Ingest
from agent.links import Links
from protocols.session_folder import latest_revisions, read_json, read_jsonl

log = logging.getLogger("mrsmon.agent")
__version__ = _version("mrsmon")
STATUS_INTERVAL_S = 1.0
DATA_BATCH = 256                    # messages taken per turn of the loop
DATA_BATCH_BYTES = 64 * 2**20       # ... and at most this many bytes of them
CONTROL_BATCH = 64
IDLE_RELEASE_S = 30.0               # a session silent this long closes its files (reopened on demand)
STORE_ALARM_INTERVAL_S = 5.0        # while writes fail, the red alarm is repeated this often
MAX_CACHED_RESULTS = 16             # sessions whose result rows are kept in memory for snapshots


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
        self.links: Links | None = None
        self._stop = threading.Event()
        self.pipeline = None
        self._unfinished: dict[str, bool] = {}  # sessions the pipeline has not ended: sid -> scanner ended
        self.exports = ExportQueue(config.sessions_dir, config.bids, lambda a: self._publish("alarm", a))
        self.control_refused: dict[str, int] = {}
        self._store_alarm_at = 0.0
        self._store_was_failing = False
        self.ready = threading.Event()

    @property
    def export_state(self) -> dict[str, str]:
        return self.exports.state

    # ------------------------------------------------------------------ loop
    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        try:
            c = self.config
            self.links = Links(self.ctx, c.listen, c.publish, c.control, c.keys)
            self._serve()
        finally:
            self._shutdown()

    def _serve(self) -> None:
        if self.config.fit:
            from agent.pipeline_process import PipelineProcess

            self.pipeline = PipelineProcess(self.ctx, self.config.basis, self.config.block)
        self._recover()
        log.info("agent %s listening on %s, publishing on %s, control on %s, sessions in %s", __version__,
                 self.config.listen, self.config.publish, self.config.control, self.config.sessions_dir)
        assert self.links is not None
        links = self.links
        poller = zmq.Poller()
        results = self.pipeline.results_socket if self.pipeline else None
        for s in (links.data, links.ctl, links.pub, results, *links.monitor_sockets):
            if s is not None:
                poller.register(s, zmq.POLLIN)
        next_status = time.monotonic()
        self.ready.set()
        while not self._stop.is_set():
            events = dict(poller.poll(100))
            if links.data in events:
                self._drain_data()
            if results is not None and results in events:
                self._drain_pipeline()
            if links.ctl in events:
                self._drain_control()
            if links.pub in events:
                links.accept_subscriptions()
            if any(m in events for m in links.monitor_sockets):
                links.drain_monitors()
            if time.monotonic() >= next_status:
                self._tick()
                next_status = time.monotonic() + STATUS_INTERVAL_S

    def _tick(self) -> None:
        self._publish_status()
        if self.pipeline:
            self.pipeline.check_alive()
        self.exports.poll()
        self.ingest.release_idle(IDLE_RELEASE_S)
        self._store_alarm()

    def _recover(self) -> None:
        """Finish what a previous run left: reopen unfinished sessions in the pipeline, and for ended
        ones fit what was not fitted and export what was not exported (processed.json says which)."""
        for sid in self.ingest.unfinished():
            log.info("reopened unfinished session %s", sid)
            self.current = sid
            self._unfinished[sid] = False
            self._results_of(sid)
            self._to_pipeline({"kind": "open", "session": sid, "seq": 0})
        for folder in sorted(self.config.sessions_dir.iterdir()):
            if not (folder / "end.json").is_file() or not (folder / "session.json").is_file():
                continue
            done = read_processed(folder)
            sid = folder.name
            if self.config.fit and not done.get("fitted"):
                w = self.ingest.writer(sid)
                log.info("session %s ended but was not finished: fitting%s", sid, " and exporting" if
                         self.config.bids else "")
                self._unfinished[sid] = bool(w and w.complete)
                self._to_pipeline({"kind": "open", "session": sid, "seq": 0})
                if self._unfinished[sid]:
                    self._to_pipeline({"kind": "end", "session": sid, "seq": -1})
            elif self.config.bids is not None and done.get("export") not in ("done", "failed"):
                log.info("session %s ended but was not exported: exporting", sid)
                self.exports.submit(sid)

    def _shutdown(self) -> None:
        self.exports.shutdown()
        if self.pipeline is not None:
            self.pipeline.stop()
            self._drain_pipeline()
            self.pipeline.close()
        self.ingest.close()
        if self.links is not None:
            self.links.close()
        if self._own_ctx:
            self.ctx.term()
        log.info("agent stopped: %s", self.ingest.status())

    # ------------------------------------------------------------------ data
    def _drain_data(self) -> None:
        """Take what is waiting (bounded in count and bytes, so control and results get their turn), store
        it with one fsync, then reply: group commit keeps latency at one fsync and lets throughput grow."""
        assert self.links is not None
        batch: list[list[bytes]] = []
        size = 0
        while len(batch) < DATA_BATCH and size < DATA_BATCH_BYTES:
            try:
                frames = self.links.data.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                break
            batch.append(frames)
            size += sum(len(f) for f in frames)
        if not batch:
            return
        arrived = time.monotonic()
        outcomes = self.ingest.handle_many([frames[1:] for frames in batch], [frames[0] for frames in batch])
        for frames, outcome in zip(batch, outcomes):
            for reply in outcome.replies:
                try:
                    self.links.data.send_multipart([frames[0], *reply], zmq.NOBLOCK)
                except zmq.ZMQError:  # the peer is gone or not reading: it resends what it misses
                    pass
            for note in outcome.notes:
                self._on_note(note, arrived)
        self._store_alarm()

    def _store_alarm(self) -> None:
        """While writes fail: a red alarm on the results link, repeated; when they work again: cleared."""
        err = self.ingest.store_error
        if err is not None and time.monotonic() - self._store_alarm_at >= STORE_ALARM_INTERVAL_S:
            self._store_alarm_at = time.monotonic()
            self._store_was_failing = True
            self._publish("alarm", {"session": self.current, "level": "red", "code": "STORE_FAILED",
                                    "message": f"cannot write to disk ({err}): transients are held by the scanner "
                                               "and stored as soon as space is free"})
        elif err is None and self._store_was_failing:
            self._store_was_failing = False
            self._store_alarm_at = 0.0
            log.info("writes to the sessions folder work again")
            self._publish("alarm", {"session": self.current, "level": "clear", "code": "STORE_FAILED",
                                    "message": "writing to disk works again"})

    def _on_note(self, note, arrived: float) -> None:
        sid = note.session
        folder = str(self.config.sessions_dir / sid)
        if note.kind == "session":
            self.current = sid
            self.results[sid] = []
            self._unfinished[sid] = False
            w = self.ingest.writer(sid)
            self._publish("session", {"session": sid, "header": w.header if w else {}, "plan": self._plan(sid)})
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
                self.exports.submit(sid)
        self._to_pipeline({"kind": note.kind, "session": sid, "seq": note.seq, "folder": folder})

    # ------------------------------------------------------------------ pipeline
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
            except ValueError:  # not two frames: not from our pipeline
                continue
            if topic == b"_hello":  # a (re)started pipeline process: give it every unfinished session
                self._resubmit_unfinished()
                continue
            if topic.startswith(b"_"):
                continue
            obj = json.loads(body)
            sid = obj.get("session")
            if topic == b"end" and sid:
                self._unfinished.pop(sid, None)
                mark_processed(self.config.sessions_dir / sid, fitted=True)
                self.exports.submit(sid)  # after the last fit, so the derivatives are complete
            if topic == b"result" and sid:
                self._keep_result(sid, {k: v for k, v in obj.items() if k != "spectrum"})
                if not obj.get("revision"):
                    self.latest[sid] = obj
            self._publish(topic.decode(), obj)

    # ------------------------------------------------------------------ publishing
    def _publish(self, topic: str, obj: dict) -> None:
        if self.links is None:
            return
        self.pub_seq += 1
        obj = {**obj, "pub_seq": self.pub_seq}
        self.links.pub.send_multipart([topic.encode(), control.dumps(obj)])

    def status(self) -> dict[str, Any]:
        sid = self.current
        st: dict[str, Any] = {"session": sid, "link": "no_session", **self.ingest.status(),
                              "control_refused": dict(self.control_refused),
                              "connections_refused": dict(self.links.refused) if self.links else {},
                              "export": self.exports.state.get(sid) if sid else None}
        w = self.ingest.writer(sid) if sid else None
        if w is not None:
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
        assert self.links is not None
        for _ in range(CONTROL_BATCH):
            try:
                frames = self.links.ctl.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) < 2:
                continue
            identity, body = frames[0], frames[-1]
            envelope = frames[1:-1]  # REQ clients add an empty delimiter frame
            try:
                reply = self._control(control.parse_request(body))
            except ControlError as exc:
                reply = self._control_refusal(exc.code, str(exc))
            except OSError as exc:  # a session folder that cannot be read or written
                reply = self._control_refusal("STORE_FAILED", f"the agent could not read or write the session: {exc}")
            except Exception as exc:  # a bug must cost one request, never the agent
                log.exception("control request failed")
                reply = self._control_refusal("INTERNAL", f"the agent failed on this request ({type(exc).__name__})")
            try:
                self.links.ctl.send_multipart([identity, *envelope, control.dumps(reply)], zmq.NOBLOCK)
            except zmq.ZMQError:
                pass

    def _control_refusal(self, code: str, sentence: str) -> dict:
        self.control_refused[code] = self.control_refused.get(code, 0) + 1
        n = self.control_refused[code]
        if n <= 10 or n % 1000 == 0:
            log.warning("refused a control request (%s): %s [%d so far]", code, sentence, n)
        return {"ok": False, "code": code, "error": sentence}

    def _session(self, req: dict) -> str:
        sid = req.get("session") or self.current
        if sid is None:
            raise ControlError("NO_SESSION", "no session has been started")
        control.session_folder(self.config.sessions_dir, sid)
        return sid

    def _control(self, req: dict) -> dict:
        op = req["op"]
        if op == "ping":
            return {"ok": True, "version": __version__, "session": self.current}
        if op == "snapshot":
            if req.get("session") is None and self.current is None:
                return {"ok": True, "session": None, "results": [], "events": [], "status": self.status(),
                        "last_pub_seq": self.pub_seq}
            sid = self._session(req)
            folder = self.config.sessions_dir / sid
            return {"ok": True, "session": read_json(folder / "session.json"), "plan": self._plan(sid),
                    "results": self._results_of(sid), "events": read_jsonl(folder / "events.jsonl"),
                    "latest": self.latest.get(sid), "status": self.status(), "last_pub_seq": self.pub_seq}
        if op == "event":
            return self._control_event(req)
        sid = self._session(req)  # op == "block"
        block = control.block_number(req.get("block"))
        return {"ok": True, "result": control.block_result(self.config.sessions_dir / sid, self._results_of(sid),
                                                           block)}

    def _control_event(self, req: dict) -> dict:
        fields = control.event_fields(req)
        sid = self.current
        w = self.ingest.writer(sid) if sid else None
        if sid is None or w is None:
            raise ControlError("NO_SESSION", "no session is open to mark an event in")
        if fields["id"] is not None:  # idempotent: a resend after a lost reply returns the stored event
            stored = next((e for e in read_jsonl(w.folder / "events.jsonl") if e.get("id") == fields["id"]), None)
            if stored is not None:
                return {"ok": True, "event": stored, "duplicate": True}
        try:
            row = w.append_event({"seq": None, "source": "display", **fields})
            w.commit()
        except OSError as exc:
            self.ingest.note_store_failure(exc)
            self._store_alarm()
            raise ControlError("STORE_FAILED", f"the event could not be stored ({exc}); send it again") from None
        self._publish("event", {"session": sid, **row})
        return {"ok": True, "event": row}

    def _plan(self, sid: str) -> dict | None:
        p = self.config.sessions_dir / sid / "plan.json"
        return read_json(p) if p.exists() else None

    def _results_of(self, sid: str) -> list[dict]:
        if sid in self.results:
            return self.results[sid]
        rows = latest_revisions(read_jsonl(self.config.sessions_dir / sid / "fits.jsonl"))
        if sid in self._unfinished or sid == self.current or len(self.results) < MAX_CACHED_RESULTS:
            self.results[sid] = rows
        return rows

    def _keep_result(self, sid: str, row: dict) -> None:
        """Snapshots carry each block once: a revision replaces the row of its block."""
        rows = self.results.setdefault(sid, [])
        if row.get("revision"):
            for i in range(len(rows) - 1, -1, -1):
                if rows[i].get("block") == row.get("block"):
                    rows[i] = row
                    return
        rows.append(row)
