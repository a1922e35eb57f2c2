"""One MRD measurement as one mrsmon session: sequence numbers, resends, the journal and the sender.

Sequence numbers: SESSION_START is 0; each forwarded acquisition takes the next number in the order
it first arrived, keyed by its `scan_counter`. A scan counter the session already holds is a resend
(a client that reconnected and sent the measurement again): it is recognised and not forwarded twice.
The journal (`STATE/sessions/<id>.jsonl`, one line per forwarded acquisition, written before it is
sent, flushed but not fsynced: it guards against a bridge crash, not the host's) keeps the mapping
across a bridge restart. A journaled scan that arrives again is sent again under its old number unless
this process has seen it stored (a dead process may have journaled it without delivering it; the
agent drops a seq it holds). A client that resends from the start reproduces the numbering even
without the journal, because numbering is in stream order.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from protocols.mrd.header import HeaderInfo, Pseudonyms, session_start_fields
from protocols.mrd.mapping import (
    DEFAULT_WATER_FLAGS,
    Readout,
    Refused,
    check_against_session,
    kind_flags,
    samples,
    session_shape,
)
from protocols.sender import CurveClientKeys, Sender
from protocols.wire import encode, encode_transient

log = logging.getLogger("mrsmon.bridge")
DAY_NS = 86_400 * 10**9


@dataclass
class BridgeConfig:
    agent: str
    pseudonyms: Pseudonyms
    state_dir: Path
    protocol: str | None = None
    nucleus: str = "1H"
    water_flags: tuple[str, ...] = DEFAULT_WATER_FLAGS
    tick_ns: int = 2_500_000  # MRD acquisition_time_stamp unit: 2.5 ms on Siemens
    conjugate: bool = False  # the scanner's phase convention is the opposite of mrsmon's (docs/scanner.md)
    curve: CurveClientKeys | None = None
    context: zmq.Context | None = None
    track_latency: bool = False


@dataclass
class Outcome:
    forwarded: list[int] = field(default_factory=list)  # seqs sent to the agent
    resent: int = 0                                      # already forwarded earlier: not sent again
    held: int = 0                                        # noise before the first transient: waits for the shape


class MeasurementSession:
    def __init__(self, sid: str, info: HeaderInfo, cfg: BridgeConfig):
        self.sid = sid
        self.info = info
        self.cfg = cfg
        self.start: dict[str, Any] | None = None
        self.first_stamp: int | None = None
        self.seq_of_scan: dict[int, int] = {}
        self.end_seq: int | None = None
        self.next_seq = 1
        self._sent_here: set[int] = set()  # seqs this process sent (durable, or in its sender's ring)
        self.last_t_ns: int | None = None
        self._held: list[tuple[Readout, int]] = []
        self.latencies: list[tuple[int, float, float]] = []  # (seq, t_in, t_ack) monotonic, when tracked
        self._in_flight: dict[int, float] = {}
        self.journal_path = cfg.state_dir / "sessions" / f"{sid}.jsonl"
        self._load_journal()
        self.sender: Sender | None = None
        self._journal = None

    # ------------------------------------------------------------------ journal
    def _load_journal(self) -> None:
        if not self.journal_path.exists():
            return
        for line in self.journal_path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                break  # a torn last line after a crash: everything before it holds
            if "start" in rec:
                self.start, self.first_stamp = rec["start"], rec.get("first_stamp")
            elif "scan" in rec:
                self.seq_of_scan[int(rec["scan"])] = int(rec["seq"])
            elif "end" in rec:
                self.end_seq = int(rec["end"])
        self.next_seq = max([*self.seq_of_scan.values(), self.end_seq or 0, 0]) + 1
        log.info("session %s: resumed from the journal (%d acquisitions forwarded%s)", self.sid,
                 len(self.seq_of_scan), ", ended" if self.end_seq is not None else "")

    def _write(self, rec: dict) -> None:
        if self._journal is None:
            self.journal_path.parent.mkdir(parents=True, exist_ok=True)
            self._journal = open(self.journal_path, "a")
        self._journal.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self._journal.flush()

    # ------------------------------------------------------------------ sender
    def _ensure_sender(self) -> Sender:
        if self.sender is None:
            self.sender = Sender(self.cfg.agent, self.sid, curve=self.cfg.curve, context=self.cfg.context)
            if self.start is not None:  # reopened: the agent may or may not hold it; a duplicate is ACKed
                self.sender.send(0, encode("SESSION_START", self.sid, 0, **self.start))
        return self.sender

    def pump(self) -> None:
        if self.sender is None:
            return
        self.sender.pump(0.0)
        if self._in_flight:
            now = time.monotonic()
            for seq in [s for s in self._in_flight if s <= self.sender.upto]:
                self.latencies.append((seq, self._in_flight.pop(seq), now))

    def _durable_upto(self) -> int:
        return self.sender.upto if self.sender is not None else -1

    def lost_scans(self) -> list[int]:
        """Scan counters the agent still lacks that no sender holds any more (journaled by a bridge process
        that died before they were durable, and not sent again since): only a resend can bring them.

        Named only when certain: the sender holds nothing (all answered), or the agent's own GAP reply
        lists them as missing (a cumulative ACK never passes a gap, so the ring alone never empties)."""
        s = self.sender
        if s is None:
            return []

        def said_missing(seq: int) -> bool:
            return any(first <= seq <= last for first, last in s.agent_missing)

        return sorted(sc for sc, seq in self.seq_of_scan.items()
                      if seq > s.upto and seq not in s.ring and seq not in self._sent_here
                      and (not s.ring or said_missing(seq)))

    @property
    def pending(self) -> int:
        return len(self.sender.ring) if self.sender else 0

    @property
    def acknowledged(self) -> bool:
        """Everything forwarded (and the SESSION_END, once sent) is durable in the agent."""
        if self.sender is None:
            return self.start is None
        done = self.end_seq if self.end_seq is not None else self.next_seq - 1
        return not self.sender.ring and self.sender.upto >= done

    def refused_by_agent(self) -> list[dict]:
        return list(self.sender.refused) if self.sender else []

    def close(self) -> None:
        if self.sender is not None:
            self.sender.close()
            self.sender = None
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    # ------------------------------------------------------------------ data
    def on_readout(self, r: Readout, arrival_ns: int, t_in: float | None = None) -> Outcome:
        """Forward one readout (or recognise it as a resend); Refused says why it cannot be."""
        out = Outcome()
        known = self.seq_of_scan.get(r.scan_counter)
        if known is not None and (known in self._sent_here or known <= self._durable_upto()):
            out.resent = 1  # this process sent it: it is durable or in the sender's ring
            return out
        flags = kind_flags(r, self.cfg.water_flags)
        if known is not None:  # journaled by a bridge process that died: maybe never delivered; same seq again
            self._forward(r, samples(r), flags, arrival_ns, t_in, out, seq=known)
            return out
        if self.end_seq is not None:
            raise Refused("after_end", f"scan {r.scan_counter} arrived after the measurement was closed")
        data = samples(r)
        if self.first_stamp is None:
            self.first_stamp = r.time_stamp or 0
        if self.start is None:
            if flags == ("noise",):  # noise may come first and be shaped differently: wait for a transient
                if all(h.scan_counter != r.scan_counter for h, _ in self._held):
                    self._held.append((r, arrival_ns))
                out.held = 1
                return out
            self._open(r, data, arrival_ns)
            for held, held_ns in self._held:
                try:
                    self._forward(held, samples(held), ("noise",), held_ns, None, out)
                except Refused as exc:
                    log.warning("session %s: %s (%s)", self.sid, exc, exc.code)
            self._held.clear()
        self._forward(r, data, flags, arrival_ns, t_in, out)
        return out

    def _open(self, r: Readout, data: np.ndarray, arrival_ns: int) -> None:
        sw = self.info.user_doubles.get("SpectralWidth")
        coils, points, dwell_s = session_shape(r, data, 1.0 / sw if sw else None)
        fields = session_start_fields(self.info, points=points, coils=coils, dwell_s=dwell_s,
                                      pseudonyms=self.cfg.pseudonyms, protocol=self.cfg.protocol,
                                      nucleus=self.cfg.nucleus)
        self.start = {**fields, "start_time_ns": arrival_ns}
        self._write({"start": self.start, "first_stamp": self.first_stamp})
        log.info("session %s: %d coils x %d points, dwell %.4g µs, TR %.0f ms, TE %.0f ms, %s; subject %s %s",
                 self.sid, coils, points, dwell_s * 1e6, fields["repetition_time_s"] * 1e3,
                 fields["echo_time_s"] * 1e3, fields["sequence"], fields["subject"], fields["session_code"])
        self._ensure_sender()

    def _t_ns(self, r: Readout, arrival_ns: int) -> int:
        assert self.start is not None
        start_ns = int(self.start["start_time_ns"])
        if not r.time_stamp or self.first_stamp is None or not self.first_stamp:
            return max(start_ns, arrival_ns)
        d = (int(r.time_stamp) - int(self.first_stamp)) * self.cfg.tick_ns
        if d < -DAY_NS // 2:
            d += DAY_NS  # the stamp counts from midnight: the measurement crossed it
        return start_ns + max(d, 0)

    def _forward(self, r: Readout, data: np.ndarray, flags: tuple[str, ...], arrival_ns: int,
                 t_in: float | None, out: Outcome, seq: int | None = None) -> None:
        assert self.start is not None
        check_against_session(r, data, self.start["coils"], self.start["points"], self.start["dwell_time_s"])
        if seq is None:
            seq = self.next_seq
            self.next_seq += 1
            self.seq_of_scan[r.scan_counter] = seq
            self._write({"scan": r.scan_counter, "seq": seq})
        self._sent_here.add(seq)
        sender = self._ensure_sender()
        if self.cfg.track_latency and t_in is not None:
            self._in_flight[seq] = t_in
        if self.cfg.conjugate:
            data = np.conj(data)
        t_ns = self._t_ns(r, arrival_ns)
        self.last_t_ns = max(self.last_t_ns or 0, t_ns)
        sender.send(seq, encode_transient(self.sid, seq, data, t_ns=t_ns, scan=r.scan_counter, flags=flags))
        out.forwarded.append(seq)

    def end(self, reason: str = "completed") -> None:
        """SESSION_END once the client closed the measurement (again after a resend: same seq)."""
        if self.start is None:
            if self._held:
                log.warning("session %s: %d noise scans but no MRS transient in the measurement: nothing "
                            "forwarded", self.sid, len(self._held))
            return
        if self.end_seq is None:
            self.end_seq = self.next_seq
            self.next_seq += 1
            self._write({"end": self.end_seq})
        tr_ns = int(self.start["repetition_time_s"] * 1e9)
        last_t = (self.last_t_ns + tr_ns) if self.last_t_ns is not None else int(self.start["start_time_ns"])
        self._ensure_sender().send(self.end_seq, encode("SESSION_END", self.sid, self.end_seq, t_ns=last_t,
                                                        reason=reason))

    def summary(self) -> str:
        n = len(self.seq_of_scan)
        return f"session {self.sid}: {n} acquisitions forwarded" + (", ended" if self.end_seq is not None else "")


def read_salt(path: Path) -> bytes:
    """The site salt; created (32 random bytes, owner-only) the first time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
        log.info("created a new site salt at %s: keep it, pseudonyms depend on it", path)
    salt = path.read_bytes()
    if len(salt) < 16:
        raise ValueError(f"{path} holds {len(salt)} bytes; a site salt needs at least 16")
    return salt
