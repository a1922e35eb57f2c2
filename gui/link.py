"""The display's link to an agent: one worker thread owns the SUB and the control DEALER socket.

ZeroMQ sockets must stay in the thread that made them, so the worker does all socket work and hands
decoded JSON objects to the GUI thread through a queued Qt signal. It follows the zguide's Clone
pattern (SPEC.md section 6): subscribe first, then ask for a snapshot, then apply only published
messages whose `pub_seq` is above the snapshot's `last_pub_seq`.

It reconnects by itself. The SUB socket reconnects on its own; the worker notices an agent restart
or a lost message by (a) no message for `silence_s` (the agent publishes status every second),
(b) a `pub_seq` that goes backwards (a new agent process counts from 1) or (c) a gap in `pub_seq`,
and then takes a new snapshot. A control request unanswered for `request_timeout_s` closes the
DEALER (LINGER 0), opens a new one and resends what is pending (the zguide's Lazy Pirate), with a
back-off of 0.25 to 4 s.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections import deque
from typing import Any

import zmq
from PySide6 import QtCore

from protocols.sender import CurveClientKeys

TOPICS = ("session", "result", "status", "event", "alarm", "end")
SILENCE_S = 3.0
REQUEST_TIMEOUT_S = 2.0
BACKOFF_MIN_S = 0.25
BACKOFF_MAX_S = 4.0
POLL_MS = 50
MAX_BUFFERED = 100_000  # published messages held while a snapshot is awaited
SNAPSHOT_RETRY_S = 1.0  # after a refused snapshot


class AgentLink(QtCore.QObject):
    """Signals arrive on the thread that owns this object (the GUI thread)."""

    snapshot = QtCore.Signal(dict)
    session = QtCore.Signal(dict)
    result = QtCore.Signal(dict)
    event = QtCore.Signal(dict)
    status = QtCore.Signal(dict)
    alarm = QtCore.Signal(dict)
    end = QtCore.Signal(dict)
    state = QtCore.Signal(str, str)       # connecting | live | lost, and a detail
    reply = QtCore.Signal(dict, dict)     # (request, reply) for event and block requests
    errored = QtCore.Signal(str)
    _incoming = QtCore.Signal(str, object, object)  # worker -> GUI thread (queued)

    def __init__(self, publish: str, control: str, silence_s: float = SILENCE_S,
                 request_timeout_s: float = REQUEST_TIMEOUT_S, parent: QtCore.QObject | None = None,
                 curve: CurveClientKeys | None = None) -> None:
        super().__init__(parent)
        self.publish_addr, self.control_addr = publish, control
        self.curve = curve  # CURVE client keys, for an agent whose links leave loopback
        self.silence_s, self.request_timeout_s = silence_s, request_timeout_s
        self._requests: queue.Queue[dict[str, Any]] = queue.Queue()
        self._thread: _Worker | None = None
        self._incoming.connect(self._dispatch, QtCore.Qt.QueuedConnection)
        self.counts = {"snapshots": 0, "dropped_old": 0, "resyncs": 0, "dealer_resets": 0}

    # ---- GUI-thread API ----
    def start(self) -> None:
        if self._thread is None:
            self._thread = _Worker(self)
            self._thread.start()

    def stop(self, timeout_s: float = 3.0) -> None:
        if self._thread is not None:
            self._thread.stop_requested = True
            self._thread.wait(int(timeout_s * 1000))
            self._thread = None

    def request(self, req: dict[str, Any]) -> None:
        """Queue a control request (`event`, `block`, `ping`); the reply comes on `reply`."""
        if "op" not in req:
            raise ValueError("a control request needs an 'op'")
        req = dict(req)
        if req["op"] == "event":  # idempotency key: a resend after a lost reply must not store it twice
            req.setdefault("id", uuid.uuid4().hex)
        self._requests.put(req)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.isRunning()

    @QtCore.Slot(str, object, object)
    def _dispatch(self, kind: str, obj: Any, extra: Any) -> None:
        if kind == "state":
            self.state.emit(str(obj), str(extra or ""))
        elif kind == "snapshot":
            self.snapshot.emit(obj)
        elif kind == "reply":
            self.reply.emit(extra, obj)
        elif kind == "error":
            self.errored.emit(str(obj))
        elif kind in TOPICS:
            getattr(self, kind).emit(obj)


class _Worker(QtCore.QThread):
    def __init__(self, link: AgentLink) -> None:
        super().__init__()
        self.link = link
        self.stop_requested = False

    def _post(self, kind: str, obj: Any, extra: Any = None) -> None:
        self.link._incoming.emit(kind, obj, extra)

    def run(self) -> None:
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        _secure(sub, self.link.curve)
        for topic in TOPICS:
            sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        sub.connect(self.link.publish_addr)
        conn = _Connection(self, ctx, sub)
        try:
            while not self.stop_requested:
                conn.step()
        finally:
            sub.close(linger=0)
            conn.dealer.close(linger=0)
            ctx.term()

    def new_dealer(self, ctx: zmq.Context) -> zmq.Socket:
        d = ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        _secure(d, self.link.curve)
        d.connect(self.link.control_addr)
        return d


class _Connection:
    """The worker's state: the two sockets, requests in flight, the snapshot handshake (module doc)."""

    def __init__(self, worker: _Worker, ctx: zmq.Context, sub: zmq.Socket) -> None:
        self.worker, self.link, self.ctx, self.sub = worker, worker.link, ctx, sub
        self.dealer = worker.new_dealer(ctx)
        self.poller = zmq.Poller()
        self.poller.register(sub, zmq.POLLIN)
        self.poller.register(self.dealer, zmq.POLLIN)
        self.inflight: deque[list[Any]] = deque()  # [request, sent_monotonic]; replies come back in order
        self.state = ""
        self.awaiting_snapshot = False
        self.buffered: list[tuple[str, dict]] = []
        self.last_pub_seq: int | None = None
        self.last_rx = time.monotonic()
        self.backoff_s = BACKOFF_MIN_S
        self.next_try = 0.0
        self.retry_snapshot_at: float | None = None
        self.set_state("connecting")
        self.ask_snapshot()

    def post(self, kind: str, obj: Any, extra: Any = None) -> None:
        self.worker._post(kind, obj, extra)

    def set_state(self, new: str, detail: str = "") -> None:
        if new != self.state:
            self.state = new
            self.post("state", new, detail)

    def send(self, req: dict[str, Any]) -> None:
        self.inflight.append([req, time.monotonic()])
        self.dealer.send(json.dumps(req).encode())

    def snapshot_in_flight(self) -> bool:
        return any(r[0].get("op") == "snapshot" for r in self.inflight)

    def ask_snapshot(self) -> None:
        self.awaiting_snapshot = True
        self.buffered.clear()
        self.send({"op": "snapshot"})

    def apply(self, topic: str, obj: dict, replay: bool = False) -> bool:
        """Apply one published message in order; False means take a new snapshot."""
        seq = obj.get("pub_seq")
        if isinstance(seq, int) and self.last_pub_seq is not None:
            if seq <= self.last_pub_seq:
                if replay:  # published before the snapshot was taken: already in it
                    self.link.counts["dropped_old"] += 1
                    return True
                return False  # counting went back: a new agent process
            if seq > self.last_pub_seq + 1:
                return False  # a gap: a message was lost
        if isinstance(seq, int):
            self.last_pub_seq = seq
        self.post(topic, obj)
        return True

    # ---- one turn of the loop ----
    def step(self) -> None:
        while True:
            try:
                req = self.link._requests.get_nowait()
            except queue.Empty:
                break
            self.send(req)
        events = dict(self.poller.poll(POLL_MS))
        now = time.monotonic()
        if self.sub in events:
            self.read_published(now)
        if self.dealer in events:
            self.read_replies(now)
        self.check_timers(now)

    def read_published(self, now: float) -> None:
        while True:
            try:
                frames = self.sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.last_rx = now
            try:
                topic, obj = frames[0].decode(), json.loads(frames[-1])
            except (UnicodeDecodeError, json.JSONDecodeError):
                self.post("error", "unreadable message on the results link (ignored)")
                continue
            if not isinstance(obj, dict) or topic not in TOPICS:
                continue
            if self.awaiting_snapshot:
                self.buffered.append((topic, obj))
            elif not self.apply(topic, obj):
                self.link.counts["resyncs"] += 1
                self.set_state("connecting", "resynchronising")
                self.ask_snapshot()
                self.buffered.append((topic, obj))

    def read_replies(self, now: float) -> None:
        while True:
            try:
                frames = self.dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.last_rx = now
            self.backoff_s = BACKOFF_MIN_S
            try:
                reply = json.loads(frames[-1])
            except (UnicodeDecodeError, json.JSONDecodeError):
                self.post("error", "unreadable reply from the agent (ignored)")
                continue
            req = self.inflight.popleft()[0] if self.inflight else {"op": "?"}
            if req.get("op") == "snapshot":
                self.on_snapshot(reply, now)
            else:
                self.post("reply", reply, req)

    def on_snapshot(self, reply: dict, now: float) -> None:
        if not reply.get("ok", False):
            self.post("error", f"snapshot refused: {reply.get('error', '')}")
            self.retry_snapshot_at = now + SNAPSHOT_RETRY_S  # ask again; keep buffering
            return
        self.link.counts["snapshots"] += 1
        self.awaiting_snapshot = self.snapshot_in_flight()
        if self.awaiting_snapshot:
            return  # a newer snapshot request is on its way; use that one
        self.last_pub_seq = int(reply.get("last_pub_seq", 0))
        self.post("snapshot", reply)
        self.set_state("live")
        pending, self.buffered[:] = list(self.buffered), []
        for topic, obj in pending:
            if not self.apply(topic, obj, replay=True):
                self.link.counts["resyncs"] += 1
                self.ask_snapshot()
                break

    def check_timers(self, now: float) -> None:
        if self.retry_snapshot_at is not None and now >= self.retry_snapshot_at and not self.snapshot_in_flight():
            self.retry_snapshot_at = None
            self.ask_snapshot()
        if len(self.buffered) > MAX_BUFFERED:  # a snapshot that never comes: start over
            self.buffered.clear()
        # silence: agent gone or restarted; take a new snapshot when it answers
        if self.state == "live" and now - self.last_rx > self.link.silence_s:
            self.set_state("lost", f"silent {now - self.last_rx:.0f} s")
            if not self.awaiting_snapshot:
                self.ask_snapshot()
        if self.inflight and now - self.inflight[0][1] > self.link.request_timeout_s and now >= self.next_try:
            self.reset_dealer(now)

    def reset_dealer(self, now: float) -> None:
        """An unanswered request: rebuild the DEALER and resend (Lazy Pirate)."""
        self.set_state("lost", "no reply from the agent")
        self.poller.unregister(self.dealer)
        self.dealer.close(linger=0)
        self.link.counts["dealer_resets"] += 1
        self.dealer = self.worker.new_dealer(self.ctx)
        self.poller.register(self.dealer, zmq.POLLIN)
        again = [r[0] for r in self.inflight]
        self.inflight.clear()
        for req in again:
            self.send(req)
        if not self.awaiting_snapshot:
            self.ask_snapshot()  # whatever was published meanwhile comes with it
        self.next_try = now + self.backoff_s
        self.backoff_s = min(BACKOFF_MAX_S, self.backoff_s * 2)


def _secure(sock: zmq.Socket, curve: CurveClientKeys | None) -> None:
    if curve is not None:
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = curve.public, curve.secret, \
            curve.server_public
