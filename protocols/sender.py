"""The scanner-side sender: DEALER socket, a bounded ring of unacknowledged messages, credit-based
flow control, and a Lazy-Pirate reconnect (close with LINGER 0, reopen, resend the ring).

Single-threaded: the acquisition loop calls `send()` (blocks while the window is full) and `idle()`
between scans (answers replies, sends heartbeats, reconnects). Fault hooks (drop, duplicate,
reorder, delay, flap) let the simulator and the tests exercise every recovery path on purpose.

What the sender trusts (SPEC section 3): a message leaves the ring only when an ACK's cumulative `upto`
covers it, or when a NACK with a final code refuses it. Nothing else, not the seq an ACK echoes, can
make it forget a message. Every new connection starts with the SESSION_START again (the agent accepts a
session's messages only on a connection that introduced it), then the ring.
"""

from __future__ import annotations

import logging
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from protocols.wire import INITIAL_CREDIT, RETRY_CODES, WireError, decode_reply, encode

log = logging.getLogger("mrsmon.sender")

REPLY_TIMEOUT_S = 2.0        # no reply for this long while messages are pending: the link is dead
HEARTBEAT_INTERVAL_S = 1.0   # idle this long: send a HEARTBEAT
HEARTBEAT_LIVENESS = 3       # unanswered heartbeats before reconnecting
BACKOFF_INIT_S = 0.25
BACKOFF_MAX_S = 4.0
RESEND_HOLDOFF_S = 0.5       # do not resend the same seq for a GAP (or the session) more often than this
LIVENESS_TICK_S = 0.1        # longest wait for replies before heartbeats and timeouts are looked at
STORE_RETRY_S = 1.0          # after STORE_FAILED, resend that message this much later
RING_CAPACITY = 4096


class SenderError(RuntimeError):
    pass


@dataclass
class StreamReport:
    """What one sending run achieved: a simulated session, a replay, a scanner's session."""

    session: str
    transients: int = 0
    events: int = 0
    last_seq: int = -1
    reconnects: int = 0
    resends: int = 0
    refused: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    acknowledged: bool = False


@dataclass
class Faults:
    """Fault injection applied to first sends only (resends are clean, so delivery converges)."""

    drop: float = 0.0        # probability a message is silently not sent
    duplicate: float = 0.0   # probability a message is sent twice
    reorder: float = 0.0     # probability a message is held back and sent after the next one
    delay_ms: float = 0.0    # sleep before each first send
    flap: float = 0.0        # probability the connection is dropped (closed and reopened) after a first send
    seed: int = 0

    NAMES = ("drop", "duplicate", "reorder", "delay_ms", "flap")

    @classmethod
    def parse(cls, specs: list[str], seed: int = 0) -> Faults:
        f = cls(seed=seed)
        for spec in specs:
            name, _, value = spec.partition("=")
            if name not in cls.NAMES:
                raise ValueError(f"unknown fault {name!r}; use {', '.join(cls.NAMES)}")
            setattr(f, name, float(value) if value else (0.05 if name != "delay_ms" else 10.0))
        return f


@dataclass(frozen=True)
class CurveClientKeys:
    public: bytes
    secret: bytes
    server_public: bytes

    @classmethod
    def from_dir(cls, keys_dir: str | Path, client: str = "scanner") -> CurveClientKeys:
        """Keys written by `mrsmon keygen DIR`: DIR/<client>.key_secret and DIR/server.key."""
        from zmq.auth import load_certificate

        d = Path(keys_dir)
        pub, sec = load_certificate(d / f"{client}.key_secret")
        server_pub, _ = load_certificate(d / "server.key")
        if sec is None:
            raise SenderError(f"{d / (client + '.key_secret')} holds no secret key")
        return cls(pub, sec, server_pub)


class Sender:
    def __init__(self, address: str, session: str, ring_capacity: int = RING_CAPACITY,
                 curve: CurveClientKeys | None = None, faults: Faults | None = None,
                 reply_timeout_s: float = REPLY_TIMEOUT_S, context: zmq.Context | None = None,
                 heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S):
        self.address = address
        self.session = session
        self.ring: OrderedDict[int, list[bytes]] = OrderedDict()
        self.ring_capacity = ring_capacity
        self.credit = INITIAL_CREDIT
        self.curve = curve
        self.faults = faults or Faults()
        self._rng = random.Random(self.faults.seed)
        self.reply_timeout_s = reply_timeout_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.ctx = context or zmq.Context.instance()
        self.upto = -1
        self.max_sent = -1
        self.refused: list[dict] = []     # permanently refused messages (NACK with a final code)
        self.agent_missing: list[tuple[int, int]] = []  # the seq ranges the agent's last GAP said it lacks
        self.reconnects = 0
        self._attempts = 0  # consecutive reconnects without a reply: drives the backoff
        self.resends = 0
        self._held: tuple[int, list[bytes]] | None = None
        self._last_resend: dict[int, float] = {}
        self._retry_at: dict[int, float] = {}     # seq -> when to resend it after STORE_FAILED
        self._start_frames: list[bytes] | None = None  # seq 0: introduces the session on every connection
        self._last_introduced = -1e9
        self.failed: dict | None = None   # a final refusal of the session itself (e.g. SESSION_CONFLICT)
        self._sock: zmq.Socket | None = None
        self._connect()

    # ------------------------------------------------------------------ socket
    def _connect(self) -> None:
        sock = self.ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.sndhwm = sock.rcvhwm = max(1000, 2 * self.ring_capacity)
        if self.curve:
            sock.curve_publickey = self.curve.public
            sock.curve_secretkey = self.curve.secret
            sock.curve_serverkey = self.curve.server_public
        sock.connect(self.address)
        self._sock = sock
        now = time.monotonic()
        self._last_reply = now
        self._waiting_since = now
        self._last_send = now
        self._unanswered_heartbeats = 0

    def _reconnect(self) -> None:
        assert self._sock is not None
        self._sock.close(linger=0)
        self.reconnects += 1
        self._attempts += 1
        backoff = min(BACKOFF_MAX_S, BACKOFF_INIT_S * 2 ** min(self._attempts - 1, 5))
        log.info("no reply from the agent: reconnecting (attempt %d, backoff %.2f s, %d unacknowledged)",
                 self.reconnects, backoff, len(self.ring))
        time.sleep(backoff)
        self._connect()
        self._introduce(force=True)
        self._last_resend.clear()

    def _introduce(self, force: bool = False) -> None:
        """SESSION_START, then every unacknowledged message in seq order (after a reconnect, or when the
        agent says it does not know the session on this connection)."""
        now = time.monotonic()
        if not force and now - self._last_introduced < RESEND_HOLDOFF_S:
            return
        self._last_introduced = now
        if self._start_frames is not None and 0 not in self.ring:
            self._raw_send(self._start_frames)
        for seq in sorted(self.ring):
            self._raw_send(self.ring[seq])
            self.resends += 1

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ sending
    @property
    def window_full(self) -> bool:
        return len(self.ring) >= min(self.credit, self.ring_capacity)

    def _check_failed(self) -> None:
        if self.failed is not None:
            raise SenderError(f"the agent refused session {self.session!r}: {self.failed.get('code')}: "
                              f"{self.failed.get('reason')}")

    def send(self, seq: int, frames: list[bytes], timeout_s: float | None = None) -> None:
        """Queue a data-bearing message; blocks while the window is full (a slow agent slows us).
        Raises SenderError once the agent has refused the session itself (SESSION_CONFLICT)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._check_failed()
        while self.window_full:
            if deadline is not None and time.monotonic() > deadline:
                raise SenderError(f"no credit from the agent for {timeout_s} s")
            self._pump_once(0.05)
            self._check_failed()
        if seq == 0:
            self._start_frames = frames
        if not self.ring:  # the reply timeout runs from here, not from a reply to older messages
            self._waiting_since = time.monotonic()
        self.ring[seq] = frames
        self.max_sent = max(self.max_sent, seq)
        self._first_send(seq, frames)
        self._pump_once(0.0)

    def _first_send(self, seq: int, frames: list[bytes]) -> None:
        f = self.faults
        if f.delay_ms:
            time.sleep(f.delay_ms / 1000)
        if f.drop and self._rng.random() < f.drop:
            return
        if self._held is not None:
            held_seq, held_frames = self._held
            self._held = None
            self._raw_send(frames)
            self._raw_send(held_frames)
            return
        if f.reorder and self._rng.random() < f.reorder:
            self._held = (seq, frames)
            return
        self._raw_send(frames)
        if f.duplicate and self._rng.random() < f.duplicate:
            self._raw_send(frames)
        if f.flap and self._rng.random() < f.flap:  # the link drops: what was queued is lost with it
            assert self._sock is not None
            self._sock.close(linger=0)
            self.reconnects += 1
            self._connect()
            self._introduce(force=True)

    def _raw_send(self, frames: list[bytes]) -> None:
        assert self._sock is not None
        try:
            self._sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=len(frames[-1]) < 65536)
        except zmq.Again:
            pass  # queue full (agent gone): the ring resends after the reconnect
        self._last_send = time.monotonic()

    # ------------------------------------------------------------------ replies
    def pump(self, timeout_s: float) -> None:
        """Handle replies for the whole of timeout_s; heartbeat and reconnect as needed."""
        deadline = time.monotonic() + timeout_s
        while True:  # in slices: heartbeats and the reply timeout are checked while waiting, not after
            self._pump_once(min(LIVENESS_TICK_S, max(0.0, deadline - time.monotonic())))
            if time.monotonic() >= deadline:
                return

    def _pump_once(self, timeout_s: float) -> None:
        """Wait up to timeout_s for replies, handle all that arrived, then return at once."""
        assert self._sock is not None
        if self._sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            while True:
                try:
                    frames = self._sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._on_reply(frames)
        self._liveness()

    def _liveness(self) -> None:
        now = time.monotonic()
        if self._held is not None and now - self._last_send > 0.05:
            _, frames = self._held
            self._held = None
            self._raw_send(frames)
        for seq in [s for s, t in self._retry_at.items() if t <= now]:
            del self._retry_at[seq]
            if seq in self.ring:
                self._raw_send(self.ring[seq])
                self.resends += 1
        if self.ring and now - max(self._last_reply, self._waiting_since) > self.reply_timeout_s:
            self._reconnect()
            return
        if now - self._last_send > self.heartbeat_interval_s and self.max_sent >= 0:
            if self._unanswered_heartbeats >= HEARTBEAT_LIVENESS:
                self._reconnect()
                return
            self._raw_send(encode("HEARTBEAT", self.session, self.max_sent))
            self._unanswered_heartbeats += 1

    def _on_reply(self, frames: list[bytes]) -> None:
        try:
            reply = decode_reply(frames)
        except (WireError, ValueError) as exc:
            log.warning("ignoring an unreadable reply from the agent: %s", exc)
            return
        if reply.get("session") not in (self.session, ""):
            log.warning("ignoring a reply for another session (%r)", reply.get("session"))
            return
        self._last_reply = time.monotonic()
        self._unanswered_heartbeats = 0
        self._attempts = 0
        credit = reply.get("credit")
        if isinstance(credit, int) and not isinstance(credit, bool):
            self.credit = max(0, credit)
        kind = reply["type"]
        if kind == "ACK":
            self._on_ack(reply.get("upto"))
        elif kind == "NACK":
            self._on_nack(reply)

    def _on_ack(self, upto: object) -> None:
        """Only the cumulative `upto` acknowledges: every seq <= upto is durable at the agent."""
        if not isinstance(upto, int) or isinstance(upto, bool):
            return
        self.upto = max(self.upto, upto)
        # even when upto did not move: a message sent again after it was durable (a bridge repeating
        # SESSION_END) is answered with the same upto and must leave the ring, or it waits forever
        for s in [s for s in self.ring if s <= self.upto]:
            del self.ring[s]
            self._retry_at.pop(s, None)
            self._last_resend.pop(s, None)

    def _on_nack(self, reply: dict) -> None:
        code, seq = reply.get("code"), reply.get("seq")
        if code == "GAP":
            self._resend_missing(reply.get("missing", []))
        elif code == "UNKNOWN_SESSION":  # this connection has not introduced the session (agent restarted)
            self._introduce()
        elif code == "STORE_FAILED":
            if seq in self.ring:
                self._retry_at.setdefault(seq, time.monotonic() + STORE_RETRY_S)
        elif code not in RETRY_CODES:
            if seq == 0 or code == "SESSION_CONFLICT":  # the session itself is refused: stop, say why
                self.failed = reply
                self.ring.clear()
                log.error("agent refused session %s: %s (%s)", self.session, reply.get("reason"), code)
                return
            if self.ring.pop(seq, None) is not None:
                self.refused.append(reply)
                log.error("agent refused seq %s: %s (%s)", seq, reply.get("reason"), code)

    def _resend_missing(self, missing: list) -> None:
        now = time.monotonic()
        self.agent_missing = [(int(r[0]), int(r[1])) for r in missing
                              if isinstance(r, list) and len(r) == 2 and all(type(x) is int for x in r)]
        for first, last in self.agent_missing:
            for seq in [s for s in self.ring if first <= s <= last]:
                if now - self._last_resend.get(seq, -1e9) >= RESEND_HOLDOFF_S:
                    self._raw_send(self.ring[seq])
                    self._last_resend[seq] = now
                    self.resends += 1

    # ------------------------------------------------------------------ waiting
    def idle(self, seconds: float) -> None:
        """Spend `seconds` answering replies (the time between scans)."""
        self.pump(max(0.0, seconds))

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every message is acknowledged (or finally refused); False on timeout.
        Raises SenderError if the agent refused the session itself."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.ring:
            self._check_failed()
            if deadline is not None and time.monotonic() > deadline:
                return False
            self._pump_once(0.05)
        self._check_failed()
        return True
