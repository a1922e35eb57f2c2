"""The MRD bridge: an MRD server on one side, mrsmon's reliable sender on the other.

Threads: one accepts connections; one per connection reads whole messages (blocking reads, so a slow
agent slows the client through TCP and nothing piles up: the queue between them is bounded); the
main thread owns every sender and turns messages into transients. Nothing a client sends can stop
the bridge: a message that cannot be read ends that connection with a TEXT saying why and a CLOSE; an
acquisition that cannot be mapped is refused, logged and counted; the next connection is served.

Acknowledgement upstream: MRD has no per-acquisition ACK. The bridge answers the client's CLOSE with
its own CLOSE (after a TEXT summary) only once every transient of the measurement is durable in the
agent. A client that disconnects, or that never gets that CLOSE, has had nothing acknowledged and
should send the measurement again (from the start, as a retro-reconstruction does, or from where it
stopped); the bridge recognises what it already forwarded and sends only the rest.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocols.mrd import framing, mrd2
from protocols.mrd.header import HeaderError, HeaderInfo, info_from_mrd1, info_from_mrd2, require_fields
from protocols.mrd.mapping import Refused, readout_from_mrd1, readout_from_mrd2
from protocols.mrd.session import BridgeConfig, MeasurementSession

log = logging.getLogger("mrsmon.bridge")
QUEUE_DEPTH = 64               # messages read ahead of the main thread per bridge (bounded: backpressure)
IDLE_SESSION_CLOSE_S = 600.0   # a session with no client and nothing pending lets its sender go


def _load_format_library(mrd2: bool) -> None:
    """Import the MRD library when the bridge starts, not when the first scanner connects: the import takes
    most of a second, and the first acquisitions of a measurement would wait for it."""
    if mrd2:
        import mrd  # noqa: F401
    else:
        import ismrmrd  # noqa: F401
        import ismrmrd.xsd  # noqa: F401


@dataclass
class Connection:
    cid: int
    peer: str
    sock: socket.socket | None   # None for stdin
    mrd2: bool
    session: MeasurementSession | None = None
    closing: bool = False
    counts: Counter = field(default_factory=Counter)
    warned: set = field(default_factory=set)


@dataclass
class Stats:
    connections: int = 0
    forwarded: int = 0
    resent: int = 0
    refused: Counter = field(default_factory=Counter)
    ignored: Counter = field(default_factory=Counter)


class Bridge:
    def __init__(self, cfg: BridgeConfig, mrd2: bool = False, allow: tuple[str, ...] = ()):
        self.cfg = cfg
        self.mrd2 = mrd2
        self.allow = allow
        self.q: queue.Queue = queue.Queue(QUEUE_DEPTH)
        self.conns: dict[int, Connection] = {}
        self.sessions: dict[str, MeasurementSession] = {}
        self._idle_since: dict[str, float] = {}
        self.stats = Stats()
        self._stop = threading.Event()
        self._next_cid = 0
        self._listener: socket.socket | None = None
        self.address: tuple[str, int] | None = None
        _load_format_library(mrd2)

    # ------------------------------------------------------------------ intake
    def listen(self, host: str, port: int) -> tuple[str, int]:
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            s.listen(8)
        except OSError:
            s.close()  # e.g. the port is taken: the caller reports it; no socket left open
            raise
        s.settimeout(0.2)
        self._listener = s
        self.address = s.getsockname()[:2]
        threading.Thread(target=self._accept_loop, name="mrd-accept", daemon=True).start()
        log.info("MRD%s server listening on %s:%d, forwarding to %s", " 2" if self.mrd2 else "",
                 *self.address, self.cfg.agent)
        return self.address

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                sock, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            host = peer[0]
            if self.allow and host not in self.allow:
                log.warning("refused a connection from %s: not in --allow", host)
                self.stats.refused["not_allowed"] += 1
                sock.close()
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._start_reader(sock, f"{host}:{peer[1]}", sock.makefile("rb"))

    def read_stdin(self, stream) -> None:
        """MRD 2 from a pipe (stdin): one connection with no reply channel."""
        self._start_reader(None, "stdin", stream)

    def _start_reader(self, sock: socket.socket | None, peer: str, stream) -> None:
        self._next_cid += 1
        cid = self._next_cid
        self.q.put(("open", cid, (sock, peer), 0.0))
        target = self._read_mrd2 if self.mrd2 else self._read_mrd1
        threading.Thread(target=target, args=(cid, stream), name=f"mrd-conn-{cid}", daemon=True).start()

    def _read_mrd1(self, cid: int, stream) -> None:
        read_exactly = framing.reader_of(stream)
        try:
            while True:
                msg = framing.read_message(read_exactly)
                self.q.put(("mrd1", cid, msg, time.monotonic()))
                if msg.id == framing.CLOSE:
                    return
        except EOFError:
            self.q.put(("eof", cid, None, 0.0))
        except framing.FramingError as exc:
            self.q.put(("bad", cid, exc, 0.0))
        except (OSError, ValueError):  # socket closed under the reader
            self.q.put(("eof", cid, None, 0.0))

    def _read_mrd2(self, cid: int, stream) -> None:
        mrd2.read_stream(stream, lambda kind, payload, t_in: self.q.put((kind, cid, payload, t_in)))

    # ------------------------------------------------------------------ main loop
    def serve(self, until_idle: bool = False) -> None:
        """Run until stop(); with until_idle (stdin), until every connection has finished."""
        last_housekeeping = time.monotonic()
        while not self._stop.is_set():
            busy = any(s.pending for s in self.sessions.values())
            try:
                event = self.q.get(timeout=0.001 if busy else 0.05)
            except queue.Empty:
                event = None
            if event is not None:
                self._handle(*event)
            for s in self.sessions.values():
                s.pump()
            self._finish_closing()
            if time.monotonic() - last_housekeeping > 1.0:
                last_housekeeping = time.monotonic()
                self._housekeeping()
            if until_idle and not self.conns and self.q.empty() and self._started_any:
                return

    _started_any = False

    def stop(self) -> None:
        self._stop.set()

    def _handle(self, kind: str, cid: int, payload: Any, t_in: float) -> None:
        if kind == "open":
            sock, peer = payload
            self.conns[cid] = Connection(cid, peer, sock, self.mrd2)
            self.stats.connections += 1
            self._started_any = True
            log.info("connection %d from %s", cid, peer)
            return
        conn = self.conns.get(cid)
        if conn is None:
            return  # a connection already closed
        try:
            if kind == "mrd1":
                self._on_mrd1(conn, payload, t_in)
            elif kind == "header2":
                self._on_header(conn, lambda: info_from_mrd2(payload))
            elif kind == "acq2":
                self._on_readout(conn, lambda: readout_from_mrd2(payload), t_in)
            elif kind == "other2":
                self._ignore(conn, str(payload))
            elif kind == "close2":
                self._on_close(conn)
            elif kind == "eof":
                self._on_eof(conn)
            elif kind == "bad":
                self._refuse_connection(conn, payload.code, str(payload))
        except Exception as exc:  # the connection boundary: log, count, keep serving
            log.exception("connection %d: unexpected error handling %s", cid, kind)
            self._refuse_connection(conn, "internal", f"bridge error: {type(exc).__name__}")

    def _on_mrd1(self, conn: Connection, msg: framing.MrdMessage, t_in: float) -> None:
        if msg.id in (framing.CONFIG_FILE, framing.CONFIG_TEXT):
            log.info("connection %d: config %s", conn.cid, msg.text[:80] if msg.id == framing.CONFIG_FILE
                     else f"text of {len(msg.body) - 4} bytes")
        elif msg.id == framing.HEADER:
            self._on_header(conn, lambda: info_from_mrd1(msg.body[4:]))
        elif msg.id == framing.ACQUISITION:
            self._on_readout(conn, lambda: readout_from_mrd1(msg.body), t_in)
        elif msg.id == framing.CLOSE:
            self._on_close(conn)
        elif msg.id == framing.TEXT:
            log.debug("connection %d: text from the client (%d bytes)", conn.cid, len(msg.body) - 4)
        else:
            self._ignore(conn, msg.kind)

    def _on_header(self, conn: Connection, parse) -> None:
        if conn.session is not None:
            self._refuse_connection(conn, "second_header", "a second acquisition header on one connection")
            return
        try:
            info: HeaderInfo = parse()
            require_fields(info, self.cfg.nucleus)
        except HeaderError as exc:
            self._refuse_connection(conn, "bad_header", str(exc))
            return
        sid = self.cfg.pseudonyms.session_id(info)
        session = self.sessions.get(sid)
        if session is None:
            session = self.sessions[sid] = MeasurementSession(sid, info, self.cfg)
        self._idle_since.pop(sid, None)
        conn.session = session
        log.info("connection %d: measurement -> mrsmon session %s", conn.cid, sid)

    def _on_readout(self, conn: Connection, parse, t_in: float) -> None:
        if conn.session is None:
            self._count(conn, "no_header", "an acquisition before the acquisition header")
            return
        try:
            readout = parse()
            out = conn.session.on_readout(readout, time.time_ns(), t_in)
        except Refused as exc:
            self._count(conn, exc.code, str(exc))
            return
        except HeaderError as exc:
            self._count(conn, "bad_header", str(exc))
            return
        conn.counts["forwarded"] += len(out.forwarded)
        conn.counts["resent"] += out.resent
        self.stats.forwarded += len(out.forwarded)
        self.stats.resent += out.resent

    def _on_close(self, conn: Connection) -> None:
        conn.closing = True
        if conn.session is not None:
            conn.session.end()

    def _on_eof(self, conn: Connection) -> None:
        s = conn.session
        if s is None:
            log.info("connection %d from %s closed before any acquisition header", conn.cid, conn.peer)
            self._drop(conn)
            return
        log.warning("connection %d from %s ended without CLOSE (%d forwarded on it): nothing on it was "
                    "acknowledged; %s stays open for the client to send again", conn.cid, conn.peer,
                    conn.counts["forwarded"], s.sid)
        self._drop(conn)

    def _finish_closing(self) -> None:
        for conn in [c for c in self.conns.values() if c.closing]:
            s = conn.session
            if self._refused_by_agent(conn) or self._lost_in_restart(conn) or (s is not None and not s.acknowledged):
                continue
            refused = {k: v for k, v in conn.counts.items() if k not in ("forwarded", "resent")}
            text = (f"mrsmon bridge: {conn.counts['forwarded']} acquisitions durable in session "
                    f"{s.sid if s else '-'} ({conn.counts['resent']} already held)"
                    + (f"; refused {dict(refused)}" if refused else ""))
            log.info("connection %d: %s", conn.cid, text)
            self._reply(conn, framing.encode_text(text) + framing.encode_close())
            self._drop(conn)

    def _lost_in_restart(self, conn: Connection) -> bool:
        """Scans an earlier bridge process journaled but never delivered, and the client did not send again
        (it resumed instead of resending): say which, and close WITHOUT the CLOSE that means 'all durable'."""
        s = conn.session
        lost = s.lost_scans() if s is not None and s.end_seq is not None else []
        if not lost:
            return False
        shown = ", ".join(map(str, lost[:20])) + (" ..." if len(lost) > 20 else "")
        text = (f"mrsmon bridge: {len(lost)} acquisition(s) of session {s.sid} were lost in a bridge restart before "
                f"they were durable (scan counters {shown}); send the measurement again from the start")
        self._close_incomplete(conn, text)
        return True

    def _refused_by_agent(self, conn: Connection) -> bool:
        """The agent refused part of the measurement for good: say so and close WITHOUT the CLOSE that
        would mean 'all durable' (the client must treat the measurement as not delivered)."""
        s = conn.session
        refused = s.refused_by_agent() if s else []
        if not refused or s is None or s.pending:
            return False
        first = refused[0]
        text = (f"mrsmon bridge: the agent refused {len(refused)} message(s) of session {s.sid}, e.g. seq "
                f"{first.get('seq')}: {first.get('code')}: {first.get('reason')}; the measurement is NOT complete")
        self._close_incomplete(conn, text)
        return True

    def _close_incomplete(self, conn: Connection, text: str) -> None:
        """Say why and close WITHOUT the CLOSE that means 'all durable': the client must send again."""
        log.error("connection %d: %s", conn.cid, text)
        self._reply(conn, framing.encode_text(text))
        self._drop(conn)

    def _refuse_connection(self, conn: Connection, code: str, sentence: str) -> None:
        self.stats.refused[code] += 1
        log.warning("connection %d from %s refused: %s (%s)", conn.cid, conn.peer, sentence, code)
        self._reply(conn, framing.encode_text(f"mrsmon bridge: refused: {sentence}") + framing.encode_close())
        self._drop(conn)

    def _count(self, conn: Connection, code: str, sentence: str) -> None:
        conn.counts[code] += 1
        self.stats.refused[code] += 1
        level = logging.WARNING if code not in conn.warned else logging.DEBUG
        conn.warned.add(code)
        log.log(level, "connection %d: refused: %s (%s; %d so far)", conn.cid, sentence, code, conn.counts[code])

    def _ignore(self, conn: Connection, what: str) -> None:
        self.stats.ignored[what] += 1
        if what not in conn.warned:
            conn.warned.add(what)
            log.info("connection %d: ignoring %s messages (not MRS acquisitions)", conn.cid, what)

    def _reply(self, conn: Connection, data: bytes) -> None:
        if conn.sock is None or conn.mrd2:
            return
        try:
            conn.sock.sendall(data)
        except OSError:
            pass  # the client is gone: it will see no CLOSE, which is the truth

    def _drop(self, conn: Connection) -> None:
        self.conns.pop(conn.cid, None)
        if conn.sock is not None:
            if conn.mrd2 and conn.closing:
                mrd2.write_end(conn.sock)
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.sock.close()
        if conn.session is not None:
            self._idle_since.setdefault(conn.session.sid, time.monotonic())

    def _housekeeping(self) -> None:
        now = time.monotonic()
        in_use = {c.session.sid for c in self.conns.values() if c.session is not None}
        for sid, since in list(self._idle_since.items()):
            s = self.sessions.get(sid)
            if sid in in_use or s is None:
                self._idle_since.pop(sid, None)
            elif not s.pending and now - since > IDLE_SESSION_CLOSE_S:
                s.close()
                del self.sessions[sid]
                del self._idle_since[sid]
                log.info("session %s: no client for %.0f s and nothing pending; sender closed (journal kept)",
                         sid, IDLE_SESSION_CLOSE_S)

    # ------------------------------------------------------------------ shutdown
    def shutdown(self, flush_timeout_s: float = 5.0, latency_log: Path | None = None) -> int:
        """Stop listening, give pending transients a moment to be acknowledged, close. Returns how many
        were still unacknowledged (never acknowledged upstream either: the client sends them again)."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        for conn in list(self.conns.values()):
            self._drop(conn)
        deadline = time.monotonic() + flush_timeout_s
        while any(s.pending for s in self.sessions.values()) and time.monotonic() < deadline:
            for s in self.sessions.values():
                s.pump()
            time.sleep(0.01)
        left = sum(s.pending for s in self.sessions.values())
        if latency_log is not None:
            with open(latency_log, "w") as f:
                for s in self.sessions.values():
                    for seq, t_in, t_ack in s.latencies:
                        f.write(f"{s.sid} {seq} {t_in:.6f} {t_ack:.6f}\n")
        for s in self.sessions.values():
            s.close()
        log.info("bridge stopped: %d connections, %d forwarded, %d resends recognised, refused %s, ignored %s%s",
                 self.stats.connections, self.stats.forwarded, self.stats.resent, dict(self.stats.refused),
                 dict(self.stats.ignored), f"; {left} unacknowledged" if left else "")
        return left
