"""Ingest: validate a scanner message, store it durably, and say what to reply. No sockets here.

`Ingest.handle(frames)` returns the reply frames (ACK / NACK / both) and the notes for the rest of
the agent (a session started, a transient or event was stored, a session completed). The service
owns the sockets and calls this from one thread.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.store import SessionWriter
from protocols.plan import PlanError, load_plan
from protocols.wire import Message, WireError, decode, encode_reply

log = logging.getLogger("mrsmon.agent.ingest")

# SESSION_START fields that must match when a session id is reused (a resend is fine, a new session is not).
_IDENTITY_FIELDS = ("spectrometer_frequency_mhz", "dwell_time_s", "points", "coils", "echo_time_s",
                    "repetition_time_s", "sequence", "subject", "session_code", "kit_code", "protocol",
                    "start_time_ns")
GAP_NACK_INTERVAL_S = 0.5


@dataclass
class Note:
    """Something the rest of the agent should know about a stored message."""

    kind: str  # "session" | "transient" | "event" | "end"
    session: str
    seq: int = -1
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    replies: list[list[bytes]]
    notes: list[Note]


class Ingest:
    def __init__(self, sessions_dir: Path, credit: int = 64, fsync: bool = True):
        self.sessions_dir = Path(sessions_dir)
        self.sessions_dir.mkdir(parents=True, exist_ok=True)
        self.credit = credit
        self.fsync = fsync
        self.writers: dict[str, SessionWriter] = {}
        self.refused: Counter[str] = Counter()
        self.duplicates = 0
        self.stored = 0
        self._last_gap_nack: dict[str, float] = {}

    # ------------------------------------------------------------------ sessions
    def open_unfinished(self) -> list[str]:
        """Reopen every session folder without end.json (after a crash or restart)."""
        reopened = []
        for folder in sorted(self.sessions_dir.iterdir()):
            if (folder / "session.json").exists() and not (folder / "end.json").exists():
                self.writers[folder.name] = SessionWriter(folder, {}, fsync=self.fsync)
                reopened.append(folder.name)
        return reopened

    def writer(self, session: str) -> SessionWriter | None:
        w = self.writers.get(session)
        if w is None and (self.sessions_dir / session / "session.json").exists():
            # An ended session: reopened only to re-ACK resends after a lost ACK.
            w = self.writers[session] = SessionWriter(self.sessions_dir / session, {}, fsync=self.fsync)
        return w

    def close(self) -> None:
        for w in self.writers.values():
            w.close()
        self.writers.clear()

    # ------------------------------------------------------------------ messages
    def handle(self, frames: list[bytes]) -> Outcome:
        return self.handle_many([frames])[0]

    def handle_many(self, batch: list[list[bytes]]) -> list[Outcome]:
        """Store a batch, fsync once per touched file (group commit), then return the replies to send."""
        outcomes = [self._handle_one(frames) for frames in batch]
        try:
            for w in self.writers.values():
                w.commit()
        except OSError as exc:  # nothing of this batch may be ACKed: turn every ACK into STORE_FAILED
            log.error("fsync failed: %s", exc)
            return [self._refuse(WireError("STORE_FAILED", f"the agent could not write to disk: {exc}"))
                    for _ in batch]
        return outcomes

    def _handle_one(self, frames: list[bytes]) -> Outcome:
        try:
            msg = decode(frames)
            return self._dispatch(msg)
        except WireError as err:
            return self._refuse(err)
        except OSError as exc:  # disk full, permissions: refuse, keep serving; the sender will resend
            log.error("store failed: %s", exc)
            return self._refuse(WireError("STORE_FAILED", f"the agent could not write to disk: {exc}"))

    def _refuse(self, err: WireError) -> Outcome:
        self.refused[err.code] += 1
        n = self.refused[err.code]
        if n <= 10 or n % 1000 == 0:
            log.warning("refused %s (%s) session=%r seq=%s: %s [%d so far]", err.code, "nack", err.session,
                        err.seq, err, n)
        return Outcome([encode_reply("NACK", err.session, err.seq, code=err.code, reason=str(err))], [])

    def _ack(self, w: SessionWriter, session: str, seq: int) -> list[bytes]:
        return encode_reply("ACK", session, seq, upto=w.upto(), credit=self.credit)

    def _dispatch(self, msg: Message) -> Outcome:
        if msg.type == "SESSION_START":
            return self._start(msg)
        w = self.writer(msg.session)
        if w is None:
            raise WireError("UNKNOWN_SESSION", f"no SESSION_START received for session {msg.session!r}; "
                            "send it (seq 0) first", msg.session, msg.seq)
        if msg.type == "HEARTBEAT":
            return self._heartbeat(w, msg)
        if msg.seq == 0:
            raise WireError("BAD_FIELD", "seq 0 is reserved for SESSION_START", msg.session, msg.seq)
        if msg.seq in w.seqs:
            self.duplicates += 1
            return Outcome([self._ack(w, msg.session, msg.seq)], [])
        if w.end_seq is not None and msg.seq > w.end_seq:
            raise WireError("AFTER_END", f"seq {msg.seq} is after the session's end (seq {w.end_seq})",
                            msg.session, msg.seq)
        notes: list[Note] = []
        h = msg.header
        if msg.type == "TRANSIENT":
            assert msg.payload is not None
            if msg.payload.shape != (w.coils, w.points):
                raise WireError("BAD_SHAPE", f"shape {msg.payload.shape[0]}x{msg.payload.shape[1]} differs from "
                                f"the session's {w.coils} coils x {w.points} points", msg.session, msg.seq)
            offset = w.append_transient(msg.seq, h["t_ns"], h["scan"], msg.flags, msg.payload, crc32=h["crc32"])
            notes.append(Note("transient", msg.session, msg.seq,
                              {"t_ns": h["t_ns"], "flags": msg.flags, "offset": offset}))
        elif msg.type == "EVENT":
            row = w.append_event({**h, "source": "scanner"})
            notes.append(Note("event", msg.session, msg.seq, row))
        elif msg.type == "SESSION_END":
            w.end(h)
            log.info("session %s: SESSION_END at seq %d", msg.session, msg.seq)
        self.stored += 1
        replies = [self._ack(w, msg.session, msg.seq)]
        replies += self._gap_nack(w, msg.session, msg.seq)
        if w.complete and not getattr(w, "_end_noted", False):
            w._end_noted = True  # type: ignore[attr-defined]
            notes.append(Note("end", msg.session, w.end_seq or -1))
        return Outcome(replies, notes)

    def _start(self, msg: Message) -> Outcome:
        if msg.seq != 0:
            raise WireError("BAD_FIELD", f"SESSION_START must carry seq 0, not {msg.seq}", msg.session, msg.seq)
        w = self.writer(msg.session)
        if w is not None:
            diff = [k for k in _IDENTITY_FIELDS if w.header.get(k) != msg.header.get(k)]
            if diff:
                raise WireError("SESSION_CONFLICT", f"session {msg.session!r} already exists with different "
                                f"{', '.join(diff)}; choose a new session id", msg.session, msg.seq)
            self.duplicates += 1
            return Outcome([self._ack(w, msg.session, 0)], [])
        plan = None
        try:
            plan = load_plan(msg.header["protocol"]).to_public_dict()
        except PlanError:
            log.info("session %s: protocol %r is not known here; storing without a plan", msg.session,
                     msg.header["protocol"])
        header = {k: v for k, v in msg.header.items() if k not in ("v", "type", "seq")}
        w = self.writers[msg.session] = SessionWriter(self.sessions_dir / msg.session, header, plan, fsync=self.fsync)
        self.stored += 1
        log.info("session %s started: protocol %s, kit %s, %d coils x %d points", msg.session,
                 header.get("protocol"), header.get("kit_code"), w.coils, w.points)
        return Outcome([self._ack(w, msg.session, 0)], [Note("session", msg.session, 0)])

    def _heartbeat(self, w: SessionWriter, msg: Message) -> Outcome:
        replies = [self._ack(w, msg.session, msg.seq)]
        replies += self._gap_nack(w, msg.session, msg.seq + 1, force=True)
        return Outcome(replies, [])

    def _gap_nack(self, w: SessionWriter, session: str, seq: int, force: bool = False) -> list[list[bytes]]:
        """A GAP NACK naming the missing seqs below `seq`, at most every GAP_NACK_INTERVAL_S per session."""
        missing = w.missing_below(seq)
        if not missing:
            return []
        now = time.monotonic()
        if not force and now - self._last_gap_nack.get(session, -1e9) < GAP_NACK_INTERVAL_S:
            return []
        self._last_gap_nack[session] = now
        return [encode_reply("NACK", session, seq, code="GAP", reason=f"missing {len(missing)} range(s) before "
                             f"seq {seq}: resend them", missing=missing[:64])]

    def status(self) -> dict[str, Any]:
        return {"stored": self.stored, "duplicates_dropped": self.duplicates, "refused": dict(self.refused),
                "open_sessions": sorted(s for s, w in self.writers.items() if w.end_seq is None)}
