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

    def run(self) -> None:  # noqa: C901 (one loop, its states are spelled out in the module doc)
        link = self.link
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        _secure(sub, link.curve)
        for topic in TOPICS:
            sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        sub.connect(link.publish_addr)
        dealer = self._new_dealer(ctx)
        inflight: deque[list[Any]] = deque()  # [request, sent_monotonic]; replies come back in order
        state = ""
        awaiting_snapshot = False
        buffered: list[tuple[str, dict]] = []
        last_pub_seq: int | None = None
        last_rx = time.monotonic()
        backoff_s = BACKOFF_MIN_S
        next_try = 0.0
        retry_snapshot_at: float | None = None

        def set_state(new: str, detail: str = "") -> None:
            nonlocal state
            if new != state:
                state = new
                self._post("state", new, detail)

        def send(req: dict[str, Any]) -> None:
            inflight.append([req, time.monotonic()])
            dealer.send(json.dumps(req).encode())

        def ask_snapshot() -> None:
            nonlocal awaiting_snapshot
            awaiting_snapshot = True
            buffered.clear()
            send({"op": "snapshot"})

        def apply(topic: str, obj: dict, replay: bool = False) -> bool:
            """Apply one published message in order; False means take a new snapshot."""
            nonlocal last_pub_seq
            seq = obj.get("pub_seq")
            if isinstance(seq, int) and last_pub_seq is not None:
                if seq <= last_pub_seq:
                    if replay:  # published before the snapshot was taken: already in it
                        link.counts["dropped_old"] += 1
                        return True
                    return False  # counting went back: a new agent process
                if seq > last_pub_seq + 1:
                    return False  # a gap: a message was lost
            if isinstance(seq, int):
                last_pub_seq = seq
            self._post(topic, obj)
            return True

        set_state("connecting")
        ask_snapshot()
        try:
            poller = zmq.Poller()
            poller.register(sub, zmq.POLLIN)
            poller.register(dealer, zmq.POLLIN)
            while not self.stop_requested:
                while True:
                    try:
                        req = link._requests.get_nowait()
                    except queue.Empty:
                        break
                    send(req)
                events = dict(poller.poll(POLL_MS))
                now = time.monotonic()
                if sub in events:
                    while True:
                        try:
                            frames = sub.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        last_rx = now
                        try:
                            topic, obj = frames[0].decode(), json.loads(frames[-1])
                        except (UnicodeDecodeError, json.JSONDecodeError):
                            self._post("error", "unreadable message on the results link (ignored)")
                            continue
                        if not isinstance(obj, dict) or topic not in TOPICS:
                            continue
                        if awaiting_snapshot:
                            buffered.append((topic, obj))
                        elif not apply(topic, obj):
                            link.counts["resyncs"] += 1
                            set_state("connecting", "resynchronising")
                            ask_snapshot()
                            buffered.append((topic, obj))
                if dealer in events:
                    while True:
                        try:
                            frames = dealer.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        last_rx = now
                        backoff_s = BACKOFF_MIN_S
                        try:
                            reply = json.loads(frames[-1])
                        except (UnicodeDecodeError, json.JSONDecodeError):
                            self._post("error", "unreadable reply from the agent (ignored)")
                            continue
                        req = inflight.popleft()[0] if inflight else {"op": "?"}
                        if req.get("op") == "snapshot":
                            if not reply.get("ok", False):
                                self._post("error", f"snapshot refused: {reply.get('error', '')}")
                                retry_snapshot_at = now + SNAPSHOT_RETRY_S  # ask again; keep buffering
                                continue
                            link.counts["snapshots"] += 1
                            awaiting_snapshot = any(r[0].get("op") == "snapshot" for r in inflight)
                            if awaiting_snapshot:
                                continue  # a newer snapshot request is on its way; use that one
                            last_pub_seq = int(reply.get("last_pub_seq", 0))
                            self._post("snapshot", reply)
                            set_state("live")
                            pending, buffered[:] = list(buffered), []
                            for topic, obj in pending:
                                if not apply(topic, obj, replay=True):
                                    link.counts["resyncs"] += 1
                                    ask_snapshot()
                                    break
                        else:
                            self._post("reply", reply, req)
                if (retry_snapshot_at is not None and now >= retry_snapshot_at
                        and not any(r[0].get("op") == "snapshot" for r in inflight)):
                    retry_snapshot_at = None
                    ask_snapshot()
                if len(buffered) > MAX_BUFFERED:  # a snapshot that never comes: start over
                    buffered.clear()
                # silence: agent gone or restarted; take a new snapshot when it answers
                if state == "live" and now - last_rx > link.silence_s:
                    set_state("lost", f"silent {now - last_rx:.0f} s")
                    if not awaiting_snapshot:
                        ask_snapshot()
                # an unanswered request: rebuild the DEALER and resend (Lazy Pirate)
                if inflight and now - inflight[0][1] > link.request_timeout_s and now >= next_try:
                    set_state("lost", "no reply from the agent")
                    poller.unregister(dealer)
                    dealer.close(linger=0)
                    link.counts["dealer_resets"] += 1
                    dealer = self._new_dealer(ctx)
                    poller.register(dealer, zmq.POLLIN)
                    again = [r[0] for r in inflight]
                    inflight.clear()
                    for req in again:
                        send(req)
                    if not awaiting_snapshot:
                        ask_snapshot()  # whatever was published meanwhile comes with it
                    next_try = now + backoff_s
                    backoff_s = min(BACKOFF_MAX_S, backoff_s * 2)
        finally:
            sub.close(linger=0)
            dealer.close(linger=0)
            ctx.term()

    def _new_dealer(self, ctx: zmq.Context) -> zmq.Socket:
        d = ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        _secure(d, self.link.curve)
        d.connect(self.link.control_addr)
        return d


def _secure(sock: zmq.Socket, curve: CurveClientKeys | None) -> None:
    if curve is not None:
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = curve.public, curve.secret, \
            curve.server_public
