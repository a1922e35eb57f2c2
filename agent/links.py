"""The agent's three sockets, bound with their limits, and with CURVE on every link that leaves loopback.

Limits (protocols/SPEC.md section 8): a frame larger than the link's maximum closes the connection
(ZMQ_MAXMSGSIZE) before the agent holds it; receive queues are bounded per connection; the results
link accepts only subscriptions to its own topics (XPUB with manual subscriptions), so a subscriber
cannot make the agent store arbitrary topic strings. Handshake failures (a client without the right
CURVE key, a broken handshake) are logged with their reason through socket monitors.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import zmq
from zmq.utils.monitor import recv_monitor_message

from agent.security import CurveGuard, SecurityError, is_loopback
from protocols.wire import MAX_HEADER_BYTES, MAX_MESSAGE_BYTES

log = logging.getLogger("mrsmon.agent.links")

TOPICS = ("session", "result", "status", "event", "alarm", "end")
DATA_RCVHWM = 512           # messages queued per sender connection; beyond it, TCP pushes back (nothing lost)
REPLY_SNDHWM = 1000         # replies queued per connection that does not read them; then they are dropped
PUB_SNDHWM = 1000           # published messages queued per slow display; then it misses some (and resyncs)
CONTROL_MAX_BYTES = MAX_HEADER_BYTES  # one control request
CONTROL_RCVHWM = 100
SUBSCRIPTION_MAX_BYTES = 64  # a subscription frame: \x01 + topic
_HANDSHAKE_EVENTS = {
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake failed",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "protocol error in the handshake (a client without CURVE keys, or "
                                         "not ZeroMQ)",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "authentication refused (CURVE key not allowed)",
}


class Links:
    """data (ROUTER), results (XPUB) and control (ROUTER). With keys, the data link always uses CURVE;
    the results and control links use it when they are bound off loopback (local displays need no key)."""

    def __init__(self, ctx: zmq.Context, listen: str, publish: str, control: str, keys: Path | None):
        exposed = [a for a in (listen, publish, control) if not is_loopback(a)]
        if exposed and keys is None:
            raise SecurityError(f"{', '.join(exposed)} {'is' if len(exposed) == 1 else 'are'} not loopback: CURVE "
                                "keys are required (create them with `mrsmon keygen DIR`, then pass --keys DIR)")
        self.guard = CurveGuard(ctx, keys) if keys is not None else None
        self.refused: Counter[str] = Counter()
        self._monitors: list[tuple[str, zmq.Socket]] = []
        self._sockets: list[zmq.Socket] = []
        try:
            self.data = self._socket(ctx, zmq.ROUTER, "data", listen, True, maxmsgsize=MAX_MESSAGE_BYTES,
                                     rcvhwm=DATA_RCVHWM, sndhwm=REPLY_SNDHWM)
            self.pub = self._socket(ctx, zmq.XPUB, "results", publish, not is_loopback(publish),
                                    maxmsgsize=SUBSCRIPTION_MAX_BYTES, sndhwm=PUB_SNDHWM, manual=True)
            self.ctl = self._socket(ctx, zmq.ROUTER, "control", control, not is_loopback(control),
                                    maxmsgsize=CONTROL_MAX_BYTES, rcvhwm=CONTROL_RCVHWM, sndhwm=REPLY_SNDHWM)
        except BaseException:
            self.close()
            raise

    def _socket(self, ctx: zmq.Context, kind: int, name: str, address: str, secure: bool, maxmsgsize: int,
                sndhwm: int, rcvhwm: int = 1000, manual: bool = False) -> zmq.Socket:
        sock = ctx.socket(kind)
        self._sockets.append(sock)
        sock.linger = 0
        sock.maxmsgsize = maxmsgsize
        sock.sndhwm, sock.rcvhwm = sndhwm, rcvhwm
        if manual:
            sock.setsockopt(zmq.XPUB_MANUAL, 1)
        if secure and self.guard is not None:
            self.guard.secure(sock)
        self._monitors.append((name, sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                                                             | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                                                             | zmq.EVENT_HANDSHAKE_FAILED_AUTH)))
        sock.bind(address)
        return sock

    @property
    def monitor_sockets(self) -> list[zmq.Socket]:
        return [m for _, m in self._monitors]

    def drain_monitors(self) -> None:
        """Log every refused connection with its reason (rate-limited per reason)."""
        for name, mon in self._monitors:
            while True:
                try:
                    event = recv_monitor_message(mon, zmq.NOBLOCK)
                except zmq.Again:
                    break
                why = _HANDSHAKE_EVENTS.get(event["event"], f"event {event['event']}")
                if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:  # mostly a client that went away early
                    log.debug("%s link: %s (errno %s)", name, why, event.get("value"))
                    continue
                key = f"{name}: {why}"
                self.refused[key] += 1
                n = self.refused[key]
                if n <= 10 or n % 1000 == 0:
                    log.warning("refused a client on the %s link (%s): %s, code %s [%d so far]", name,
                                event.get("endpoint", b"").decode(errors="replace"), why, event.get("value"), n)

    def accept_subscriptions(self) -> None:
        """XPUB in manual mode: take only subscriptions to (prefixes of) our topics; refuse the rest."""
        while True:
            try:
                frame = self.pub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if not frame or frame[0] not in (0, 1):
                continue
            topic = frame[1:]
            if any(t.encode().startswith(topic) for t in TOPICS):
                self.pub.setsockopt(zmq.SUBSCRIBE if frame[0] == 1 else zmq.UNSUBSCRIBE, topic)
            elif frame[0] == 1:
                self.refused["results: unknown topic"] += 1
                if self.refused["results: unknown topic"] <= 10:
                    log.warning("refused a subscription to an unknown topic %r on the results link", topic[:32])

    def close(self) -> None:
        for sock in self._sockets:
            try:
                sock.disable_monitor()
            except zmq.ZMQError:
                pass
        for _, mon in self._monitors:
            mon.close(linger=0)
        for sock in self._sockets:
            sock.close(linger=0)
        self._monitors, self._sockets = [], []
        if self.guard:
            self.guard.stop()
            self.guard = None
