"""Ingest: validate a scanner message, store it durably, and say what to reply. No sockets here.

`Ingest.handle_many(batch, peers)` stores a batch, commits it (one fsync per touched file) and only
then builds the replies, from what is durable at that moment: an ACK always carries the cumulative
`upto` (every seq up to it is on disk, or recorded as refused), never more. A message whose write or
fsync failed gets STORE_FAILED and leaves nothing behind. Notes (a session started, a transient or
event was stored, a session completed) are returned only for what is durable.

A session's messages are accepted only from a connection (`peer`, the ROUTER identity) that introduced
the session with its SESSION_START; a SESSION_START whose parameters differ from the stored one is
refused (SESSION_CONFLICT) and that connection's messages for the session stay out of it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.store import SessionWriter
from protocols.plan import PlanError, load_plan
from protocols.wire import DATA_TYPES, MAX_SEQ_AHEAD, RETRY_CODES, Message, WireError, decode, encode_reply

log = logging.getLogger("mrsmon.agent.ingest")

# SESSION_START fields that must match when a session id is reused (a resend is fine, a new session is not).
_IDENTITY_FIELDS = ("spectrometer_frequency_mhz", "dwell_time_s", "points", "coils", "echo_time_s",
                    "repetition_time_s", "sequence", "subject", "session_code", "kit_code", "protocol",
                    "start_time_ns")
GAP_NACK_INTERVAL_S = 0.5
MAX_OPEN_WRITERS = 8     # sessions holding file handles at once (4 each); the rest reopen on demand
MAX_WRITERS = 256        # sessions whose state is kept in memory; older ones are read back from disk
MAX_PEERS = 4096         # connections remembered with the sessions they introduced
# Final refusals that do not account for the seq (it belongs to no session this connection may write).
_NOT_RECORDED = {"SESSION_CONFLICT", "AFTER_END", "SEQ_TOO_FAR", "UNKNOWN_SESSION", "BAD_SESSION_ID"}


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


@dataclass
class _Pending:
    """One message's result before the commit decides what may be said about it."""

    first: list[list[bytes]] = field(default_factory=list)  # replies that do not depend on the commit
    writer: SessionWriter | None = None   # ACK with this writer's durable `upto` after the commit
    stored: int | None = None             # seq newly written: STORE_FAILED if the commit rolled it back
    gap_below: int | None = None          # GAP NACK for what is missing below this seq
    force_gap: bool = False
    notes: list[Note] = field(default_factory=list)


class Ingest:
    def __init__(self, sessions_dir: Path, credit: int = 64, fsync: bool = True):
        self.sessions_dir = Path(sessions_dir)
        self.sessions_dir.mkdir(parents=True, exist_ok=True)
        self._root = self.sessions_dir.resolve()
        self.credit = credit
        self.fsync = fsync
        self.writers: OrderedDict[str, SessionWriter] = OrderedDict()  # LRU, bounded by MAX_WRITERS
        self._open: OrderedDict[str, SessionWriter] = OrderedDict()    # those holding file handles
        self._peers: OrderedDict[bytes, set[str]] = OrderedDict()       # connection -> sessions it introduced
        self._conflicts: OrderedDict[tuple[bytes, str], str] = OrderedDict()
        self._end_noted: set[str] = set()
        self.refused: Counter[str] = Counter()
        self.duplicates = 0
        self.stored = 0
        self.store_error: str | None = None  # the last write failure, until a write succeeds again
        self._last_gap_nack: dict[str, float] = {}

    # ------------------------------------------------------------------ sessions
    def folder(self, session: str) -> Path:
        """The session's folder; refuses an id that would resolve outside the sessions folder."""
        path = self.sessions_dir / session
        if path.resolve().parent != self._root:
            raise WireError("BAD_SESSION_ID", f"session id {session!r} does not name a folder inside the "
                            "sessions folder", session)
        return path

    def unfinished(self) -> list[str]:
        """Session folders without end.json (after a crash or restart), oldest name first."""
        return sorted(f.name for f in self.sessions_dir.iterdir()
                      if (f / "session.json").exists() and not (f / "end.json").exists())

    def open_unfinished(self) -> list[str]:
        return self.unfinished()

    def writer(self, session: str) -> SessionWriter | None:
        """The session's writer (state read back from disk if it is not in memory), or None."""
        w = self.writers.get(session)
        if w is not None:
            self.writers.move_to_end(session)
            return w
        folder = self.folder(session)
        if not (folder / "session.json").exists():
            return None
        w = SessionWriter(folder, {}, fsync=self.fsync, on_open=self._opening)
        if w.complete:  # completed before this process: its end was noted then (recovery finishes it)
            self._end_noted.add(session)
        return self._keep(session, w)

    def _keep(self, session: str, w: SessionWriter) -> SessionWriter:
        self.writers[session] = w
        while len(self.writers) > MAX_WRITERS:
            old_sid, old = self.writers.popitem(last=False)
            old.release()
            self._open.pop(old_sid, None)
        return w

    def _opening(self, w: SessionWriter) -> None:
        """A writer is about to open its files: keep at most MAX_OPEN_WRITERS open (least recent first)."""
        sid = w.folder.name
        self._open[sid] = w
        self._open.move_to_end(sid)
        while len(self._open) > MAX_OPEN_WRITERS:
            _, victim = self._open.popitem(last=False)
            victim.release()  # commits first; a failed commit rolls back and its messages get STORE_FAILED

    def release_idle(self, idle_s: float) -> None:
        """Close the files of every session that received nothing for `idle_s` (reopened on demand)."""
        now = time.monotonic()
        for sid in [s for s, w in self._open.items() if now - getattr(w, "last_used", 0.0) > idle_s]:
            self._open.pop(sid).release()

    def close(self) -> None:
        for w in self.writers.values():
            w.release()
        self.writers.clear()
        self._open.clear()

    # ------------------------------------------------------------------ messages
    def handle(self, frames: list[bytes], peer: bytes = b"") -> Outcome:
        return self.handle_many([frames], [peer])[0]

    def handle_many(self, batch: list[list[bytes]], peers: list[bytes] | None = None) -> list[Outcome]:
        """Store a batch, fsync once per touched file (group commit), then return the replies to send."""
        peers = peers if peers is not None else [b""] * len(batch)
        pending = [self._handle_one(peer, frames) for peer, frames in zip(peers, batch)]
        for w in {id(p.writer): p.writer for p in pending if p.writer is not None}.values():
            if w.dirty:
                try:
                    w.commit()
                except OSError as exc:  # rolled back: what it held of this batch is answered STORE_FAILED
                    self.note_store_failure(exc)
        return [self._finish(p) for p in pending]

    def _handle_one(self, peer: bytes, frames: list[bytes]) -> _Pending:
        msg: Message | None = None
        err: WireError
        try:
            msg = decode(frames)
            return self._dispatch(peer, msg)
        except WireError as exc:
            err = exc
        except OSError as exc:  # disk full, permissions: refuse, keep serving; the sender resends
            self.note_store_failure(exc)
            assert msg is not None
            return _Pending(first=[self._nack(WireError("STORE_FAILED", self._store_sentence(exc), msg.session,
                                                        msg.seq))])
        except Exception as exc:  # a bug must cost one message, never the agent
            log.exception("ingest failed on a message")
            err = WireError("INTERNAL", f"the agent failed on this message ({type(exc).__name__}); it is logged",
                            msg.session if msg else "", msg.seq if msg else -1, msg.type if msg else "")
        return self._refuse(peer, err)

    def _refuse(self, peer: bytes, err: WireError) -> _Pending:
        """NACK; a final refusal of a data message of a session this connection writes is also recorded,
        so that `upto` can pass its seq (the sender drops the message: it would otherwise wait forever)."""
        if err.code in RETRY_CODES or err.code in _NOT_RECORDED or err.type not in DATA_TYPES or err.seq < 1 \
                or err.session not in self._peers.get(peer, ()):
            return _Pending(first=[self._nack(err)])
        w = self.writer(err.session)
        if w is None or w.holds(err.seq) or err.seq > w.upto() + MAX_SEQ_AHEAD or \
                (w.end_seq is not None and err.seq > w.end_seq):
            return _Pending(first=[self._nack(err)])
        try:
            w.append_refusal(err.seq, err.code, str(err), err.type)
        except OSError as exc:
            self.note_store_failure(exc)
            err = WireError("STORE_FAILED", self._store_sentence(exc), err.session, err.seq)
            return _Pending(first=[self._nack(err)])
        return _Pending(first=[self._nack(err)], writer=w, stored=err.seq)

    def _finish(self, p: _Pending) -> Outcome:
        w = p.writer
        if w is None:
            return Outcome(p.first, [])
        sid = w.folder.name
        if p.stored is not None and not w.holds(p.stored):
            return Outcome([self._nack(WireError("STORE_FAILED", self._store_sentence(self.store_error), sid,
                                                 p.stored))], [])
        replies = [*p.first, encode_reply("ACK", sid, w.upto(), upto=w.upto(), credit=self.credit)]
        if p.gap_below is not None:
            replies += self._gap_nack(w, sid, p.gap_below, p.force_gap)
        notes = list(p.notes)
        if w.complete and sid not in self._end_noted:
            self._end_noted.add(sid)
            notes.append(Note("end", sid, w.end_seq if w.end_seq is not None else -1))
            self._open.pop(sid, None)
            w.release()  # an ended session keeps no file open; a late resend reopens them
        return Outcome(replies, notes)

    def _nack(self, err: WireError) -> list[bytes]:
        if err.code != "GAP":
            self.refused[err.code] += 1
            n = self.refused[err.code]
            if n <= 10 or n % 1000 == 0:
                log.warning("refused %s session=%r seq=%s: %s [%d so far]", err.code, err.session, err.seq, err, n)
        return encode_reply("NACK", err.session, err.seq, code=err.code, reason=str(err))

    def note_store_failure(self, exc: BaseException) -> None:
        if self.store_error is None:
            log.error("cannot write to the sessions folder: %s", exc)
        self.store_error = str(exc)

    @staticmethod
    def _store_sentence(why: object) -> str:
        return f"the agent could not write to disk ({why}); nothing of this message was kept: resend it later"

    def _dispatch(self, peer: bytes, msg: Message) -> _Pending:
        if msg.type == "SESSION_START":
            return self._start(peer, msg)
        sid = msg.session
        if sid not in self._peers.get(peer, ()):
            if (peer, sid) in self._conflicts:
                raise WireError("SESSION_CONFLICT", self._conflicts[(peer, sid)], sid, msg.seq)
            raise WireError("UNKNOWN_SESSION", f"session {sid!r} was not started on this connection: send its "
                            "SESSION_START (seq 0) first, then the rest", sid, msg.seq)
        self._peers.move_to_end(peer)
        w = self.writer(sid)
        if w is not None:
            w.last_used = time.monotonic()
        if w is None:  # the folder went away under us
            raise WireError("UNKNOWN_SESSION", f"no session {sid!r} is stored here; send its SESSION_START",
                            sid, msg.seq)
        if msg.seq > w.upto() + MAX_SEQ_AHEAD:
            raise WireError("SEQ_TOO_FAR", f"seq {msg.seq} is more than {MAX_SEQ_AHEAD} beyond the last "
                            f"contiguous seq stored ({w.upto()})", sid, msg.seq)
        if msg.type == "HEARTBEAT":
            return _Pending(writer=w, gap_below=msg.seq + 1, force_gap=True)
        if msg.seq == 0:
            raise WireError("BAD_FIELD", "seq 0 is reserved for SESSION_START", sid, msg.seq)
        if w.holds(msg.seq):
            self.duplicates += 1
            return _Pending(writer=w)
        if w.end_seq is not None and msg.seq > w.end_seq:
            raise WireError("AFTER_END", f"seq {msg.seq} is after the session's end (seq {w.end_seq})", sid, msg.seq)
        p = _Pending(writer=w, gap_below=msg.seq)
        h = msg.header
        if msg.type == "TRANSIENT":
            assert msg.payload is not None
            if msg.payload.shape != (w.coils, w.points):
                raise WireError("BAD_SHAPE", f"shape {msg.payload.shape[0]}x{msg.payload.shape[1]} differs from "
                                f"the session's {w.coils} coils x {w.points} points", sid, msg.seq, msg.type)
            offset = w.append_transient(msg.seq, h["t_ns"], h["scan"], msg.flags, msg.payload, crc32=h["crc32"])
            p.stored = msg.seq
            p.notes.append(Note("transient", sid, msg.seq, {"t_ns": h["t_ns"], "flags": msg.flags, "offset": offset}))
        elif msg.type == "EVENT":
            row = w.append_event({**h, "source": "scanner"})
            p.stored = msg.seq
            p.notes.append(Note("event", sid, msg.seq, row))
        elif msg.type == "SESSION_END":
            w.end(h)  # durable at once (atomic file), so not `stored` pending a commit
            log.info("session %s: SESSION_END at seq %d", sid, msg.seq)
        self.stored += 1
        self.store_error = None
        return p

    def _start(self, peer: bytes, msg: Message) -> _Pending:
        sid = msg.session
        if msg.seq != 0:
            raise WireError("BAD_FIELD", f"SESSION_START must carry seq 0, not {msg.seq}", sid, msg.seq)
        w = self.writer(sid)
        if w is not None:
            diff = [k for k in _IDENTITY_FIELDS if w.header.get(k) != msg.header.get(k)]
            if diff:
                why = (f"session {sid!r} already exists with different {', '.join(diff)}; this connection's "
                       "messages for it are refused: choose a new session id")
                self._bind(peer, sid, False)
                self._conflicts[(peer, sid)] = why
                while len(self._conflicts) > MAX_PEERS:
                    self._conflicts.popitem(last=False)
                raise WireError("SESSION_CONFLICT", why, sid, msg.seq)
            self._bind(peer, sid, True)
            self.duplicates += 1
            return _Pending(writer=w)
        folder = self.folder(sid)
        if folder.exists() and any(not f.name.endswith(".tmp") for f in folder.iterdir()):
            raise WireError("BAD_SESSION_ID", f"{sid!r} names a folder in the sessions folder that is not a "
                            "session: choose another session id", sid, msg.seq)
        plan = None
        try:
            plan = load_plan(msg.header["protocol"]).to_public_dict()
        except PlanError:
            log.info("session %s: protocol %r is not known here; storing without a plan", sid,
                     msg.header["protocol"])
        header = {k: v for k, v in msg.header.items() if k not in ("v", "type", "seq")}
        w = self._keep(sid, SessionWriter(folder, header, plan, fsync=self.fsync, on_open=self._opening))
        self._bind(peer, sid, True)
        self.stored += 1
        self.store_error = None
        log.info("session %s started: protocol %s, kit %s, %d coils x %d points", sid,
                 header.get("protocol"), header.get("kit_code"), w.coils, w.points)
        return _Pending(writer=w, notes=[Note("session", sid, 0)])

    def _bind(self, peer: bytes, sid: str, on: bool) -> None:
        sessions = self._peers.setdefault(peer, set())
        self._peers.move_to_end(peer)
        if on:
            sessions.add(sid)
            self._conflicts.pop((peer, sid), None)
        else:
            sessions.discard(sid)
        while len(self._peers) > MAX_PEERS:  # a forgotten connection introduces its session again
            self._peers.popitem(last=False)

    def _gap_nack(self, w: SessionWriter, session: str, seq: int, force: bool = False) -> list[list[bytes]]:
        """A GAP NACK naming the missing seqs below `seq`, at most every GAP_NACK_INTERVAL_S per session."""
        if seq <= w.upto() + 1:
            return []
        now = time.monotonic()
        if not force and now - self._last_gap_nack.get(session, -1e9) < GAP_NACK_INTERVAL_S:
            return []
        missing = w.missing_below(seq)
        if not missing:
            return []
        self._last_gap_nack[session] = now
        return [encode_reply("NACK", session, seq, code="GAP", reason=f"missing {len(missing)} range(s) before "
                             f"seq {seq}: resend them", missing=missing)]

    def status(self) -> dict[str, Any]:
        return {"stored": self.stored, "duplicates_dropped": self.duplicates, "refused": dict(self.refused),
                "open_sessions": sorted(s for s, w in self.writers.items() if w.end_seq is None),
                "open_files": sum(1 for w in self.writers.values() for f in w._files if f.is_open),
                "store": "failing" if self.store_error else "ok"}
