"""The scanner-side sender: DEALER socket, a bounded ring of unacknowledged messages, credit-based
flow control, and a Lazy-Pirate reconnect (close with LINGER 0, reopen, resend the ring).

Single-threaded: the acquisition loop calls `send()` (blocks while the window is full) and `idle()`
between scans (answers replies, sends heartbeats, reconnects). Fault hooks (drop, duplicate,
reorder, delay) let the simulator and the tests exercise every recovery path on purpose.
"""

from __future__ import annotations

import logging
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from protocols.wire import INITIAL_CREDIT, WireError, decode_reply, encode

log = logging.getLogger("mrsmon.sender")

REPLY_TIMEOUT_S = 2.0        # no reply for this long while messages are pending: the link is dead
HEARTBEAT_INTERVAL_S = 1.0   # idle this long: send a HEARTBEAT
HEARTBEAT_LIVENESS = 3       # unanswered heartbeats before reconnecting
BACKOFF_INIT_S = 0.25
BACKOFF_MAX_S = 4.0
RESEND_HOLDOFF_S = 0.5       # do not resend the same seq for a GAP more often than this
RING_CAPACITY = 4096
RETRY_CODES = {"STORE_FAILED", "UNKNOWN_SESSION", "GAP"}


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
    seed: int = 0

    @classmethod
    def parse(cls, specs: list[str], seed: int = 0) -> Faults:
        f = cls(seed=seed)
        for spec in specs:
            name, _, value = spec.partition("=")
            if name not in ("drop", "duplicate", "reorder", "delay_ms"):
                raise ValueError(f"unknown fault {name!r}; use drop, duplicate, reorder or delay_ms")
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
                 reply_timeout_s: float = REPLY_TIMEOUT_S, context: zmq.Context | None = None):
        self.address = address
        self.session = session
        self.ring: OrderedDict[int, list[bytes]] = OrderedDict()
        self.ring_capacity = ring_capacity
        self.credit = INITIAL_CREDIT
        self.curve = curve
        self.faults = faults or Faults()
        self._rng = random.Random(self.faults.seed)
        self.reply_timeout_s = reply_timeout_s
        self.ctx = context or zmq.Context.instance()
        self.upto = -1
        self.max_sent = -1
        self.refused: list[dict] = []     # permanently refused messages (NACK with a final code)
        self.reconnects = 0
        self._attempts = 0  # consecutive reconnects without a reply: drives the backoff
        self.resends = 0
        self._held: tuple[int, list[bytes]] | None = None
        self._last_resend: dict[int, float] = {}
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
        for frames in list(self.ring.values()):
            self._raw_send(frames)
            self.resends += 1
        self._last_resend.clear()

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

    def send(self, seq: int, frames: list[bytes], timeout_s: float | None = None) -> None:
        """Queue a data-bearing message; blocks while the window is full (a slow agent slows us)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.window_full:
            if deadline is not None and time.monotonic() > deadline:
                raise SenderError(f"no credit from the agent for {timeout_s} s")
            self._pump_once(0.05)
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
        while True:
            self._pump_once(max(0.0, deadline - time.monotonic()))
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
        if self.ring and now - self._last_reply > self.reply_timeout_s:
            self._reconnect()
            return
        if now - self._last_send > HEARTBEAT_INTERVAL_S and self.max_sent >= 0:
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
        self._last_reply = time.monotonic()
        self._unanswered_heartbeats = 0
        self._attempts = 0
        if "credit" in reply and isinstance(reply["credit"], int):
            self.credit = max(0, reply["credit"])
        kind = reply["type"]
        if kind == "ACK":
            self.ring.pop(reply.get("seq"), None)
            upto = reply.get("upto", -1)
            if isinstance(upto, int) and upto > self.upto:
                self.upto = upto
                for s in [s for s in self.ring if s <= upto]:
                    del self.ring[s]
        elif kind == "NACK":
            code = reply.get("code")
            if code == "GAP":
                self._resend_missing(reply.get("missing", []))
            elif code not in RETRY_CODES:
                frames_ = self.ring.pop(reply.get("seq"), None)
                if frames_ is not None:
                    self.refused.append(reply)
                    log.error("agent refused seq %s: %s (%s)", reply.get("seq"), reply.get("reason"), code)

    def _resend_missing(self, missing: list) -> None:
        now = time.monotonic()
        for rng in missing:
            if not (isinstance(rng, list) and len(rng) == 2):
                continue
            first, last = rng
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
        """Wait until every message is acknowledged; False on timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.ring:
            if deadline is not None and time.monotonic() > deadline:
                return False
            self._pump_once(0.05)
        return True
