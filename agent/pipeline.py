"""The processing pipeline: follows what ingest stored, in seq order, and fits blocks.

Ingest hands over tiny notes (session, seq, offset); the pipeline reads the transient back from
raw.log (page cache), feeds `mrs.pipeline.BlockProcessor`, appends results to the session folder
(`protocols.session_folder.ResultsWriter`) and
hands them to `publish`. Memory stays flat: nothing queued holds sample data. An exception in
processing becomes a published alarm. The agent runs this in its own process
(`agent/pipeline_process.py`), so fitting never slows ingest.

Every per-transient result also goes to the session's preprocessing cache (`prepared.bin`,
protocols/prepared_cache.py), which refit reads instead of raw.log. A session reopened after a restart resumes
from that cache: its records rebuild the processor's state without redoing coil combination and
registration; the blocks are fitted again from it (about 10 ms each, so the session reference, the
revisions and every warm start come out as in an uninterrupted run) and the results already stored
are not repeated. Only transients the cache does not cover are processed from raw.log.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mrs.results import BlockResult, TransientRow
from protocols import prepared_cache as prepcache
from protocols.plan import DEFAULT_REFERENCE_BLOCKS
from protocols.session_folder import (
    RECORD_HEADER,
    ResultsWriter,
    SessionReader,
    read_jsonl,
    software_version,
)
from protocols.wire import FLAG_BITS

log = logging.getLogger("mrsmon.agent.pipeline")
MAX_PENDING = 256  # out-of-order notes held back waiting for a resend before the gap is skipped


@dataclass
class _SessionState:
    folder: Path
    header: dict[str, Any]
    processor: Any
    fd: int
    next_seq: int = 1
    pending: dict[int, dict] = field(default_factory=dict)
    skip_blocks: int = 0          # block results already on disk from before a restart
    block_outputs: int = 0        # block results the processor has produced (revisions included)
    skip_transients_upto: int = -1
    writer: ResultsWriter | None = None
    done: set[int] = field(default_factory=set)  # seqs processed, or seen and needing no processing
    cache: Any = None             # prepcache.CacheWriter (None for processors without a per-transient stage)


class Pipeline:
    def __init__(self, publish: Callable[[str, dict], None], basis_spec: str = "auto",
                 block_transients: int | None = None, processor_factory: Callable[..., Any] | None = None):
        self._publish = publish
        self.basis_spec = basis_spec
        self._factory = processor_factory or self._block_processor
        self.block_transients = block_transients
        self._sessions: dict[str, _SessionState] = {}
        self._basis = None
        self.blocks_published = 0

    def close(self) -> None:
        """Close every open session's files."""
        for st in self._sessions.values():
            self._close_state(st)
        self._sessions.clear()

    def handle_safely(self, note: dict) -> None:
        """Handle one note; a failure becomes a published alarm, never an exception."""
        try:
            self._handle(note)
        except Exception as exc:
            log.exception("pipeline failed on %s", note.get("kind"))
            self._publish("alarm", {"session": note.get("session"), "level": "red", "code": "PIPELINE_ERROR",
                                    "message": f"processing failed: {exc}"})

    def _handle(self, note: dict) -> None:
        sid = note["session"]
        st = self._sessions.get(sid)
        if st is None:
            st = self._open(sid, Path(note["folder"]))
        if note["kind"] == "end":
            self._accept_stored(st, sid, SessionReader(st.folder))  # notes dropped while no process listened
            self._advance(st, force=True)
            self._emit(st, st.processor.flush())
            self._publish("end", {"session": sid})
            self._close_state(st)
            del self._sessions[sid]
            return
        self._accept(st, note)
        self._advance(st, force=len(st.pending) > MAX_PENDING)

    @staticmethod
    def _accept(st: _SessionState, note: dict) -> None:
        seq = note["seq"]
        if seq in st.done:
            return
        if note["kind"] != "transient":
            st.done.add(seq)  # session start and events occupy a seq but need no processing
        else:
            st.pending[seq] = note

    def _advance(self, st: _SessionState, force: bool) -> None:
        """Process transients in seq order; wait for a gap to be resent unless forced (end, or too many held)."""
        while True:
            if st.next_seq in st.pending:
                self._process(st, st.pending.pop(st.next_seq))
            elif st.next_seq in st.done:
                pass
            elif st.pending and min(st.pending) < st.next_seq:  # a late resend for a gap already passed
                self._process(st, st.pending.pop(min(st.pending)))
                continue
            elif st.pending and force:
                nxt = min(st.pending)
                log.warning("session %s: processing past missing seqs %d..%d", st.header.get("session"),
                            st.next_seq, nxt - 1)
                st.next_seq = nxt
                continue
            else:
                return
            st.next_seq += 1

    # ------------------------------------------------------------------ sessions
    def _open(self, sid: str, folder: Path) -> _SessionState:
        reader = SessionReader(folder)
        header = reader.header
        plan = reader.plan or {}
        block = self.block_transients or int(plan.get("block_transients", 32))
        window = tuple(plan.get("fit_window_ppm", (0.2, 4.2)))
        processor = self._factory(header, block, window, plan.get("alarms"),
                                  int(plan.get("reference_blocks", DEFAULT_REFERENCE_BLOCKS)), plan.get("outliers"))
        st = _SessionState(folder, header, processor, os.open(folder / "raw.log", os.O_RDONLY | os.O_CREAT))
        st.done.add(0)  # SESSION_START
        done_blocks = read_jsonl(folder / "fits.jsonl")
        done_rows = read_jsonl(folder / "transients.jsonl")
        st.skip_blocks = len(done_blocks)
        st.skip_transients_upto = max((r["seq"] for r in done_rows), default=-1)
        st.writer = ResultsWriter(folder)
        self._sessions[sid] = st
        records = self._open_cache(st, reader)
        if len(reader.index):  # a reopened session: rebuild processing state from what is on disk
            covered = self._resume_from_cache(st, reader, records) if records else set()
            log.info("session %s: resuming: %d stored transients from the preprocessing cache, %d from raw.log",
                     sid, len(covered), len(reader.index) - len(covered))
            self._accept_stored(st, sid, reader)
            self._advance(st, force=True)
        return st

    def _accept_stored(self, st: _SessionState, sid: str, reader: SessionReader) -> None:
        """Queue every stored transient and event not yet processed or queued (after a reopen, and at the end:
        a note sent while no pipeline process was connected is lost, the data on disk are not)."""
        for seq in reader.index["seq"]:
            seq = int(seq)
            if seq in st.done or seq in st.pending:
                continue
            row = reader.entry(seq)
            self._accept(st, {"kind": "transient", "session": sid, "seq": seq, "offset": int(row["offset"]),
                              "t_ns": int(row["t_ns"]), "flags": reader.flags(seq)})
        for e in reader.event_records():
            if e.seq is not None and e.seq >= 0:
                self._accept(st, {"kind": "event", "session": sid, "seq": e.seq})

    def _open_cache(self, st: _SessionState, reader: SessionReader) -> list:
        """Open the session's cache for appending; returns its records when they can be resumed from."""
        key_of = getattr(st.processor, "preprocessing_key", None)
        if key_of is None:
            return []
        path = st.folder / prepcache.CACHE_NAME
        key = key_of()
        meta, records, valid_end = prepcache.read_cache(path)
        ok, why = prepcache.usable(meta, records, key, reader, complete=False)
        if ok:
            st.cache = prepcache.CacheWriter(path, meta, keep_bytes=valid_end)  # cuts a torn tail
        else:
            if path.exists():
                log.info("session %s: preprocessing cache not used (%s): rebuilding it", st.folder.name, why)
            records = []
            st.cache = prepcache.CacheWriter(
                path, prepcache.cache_meta(key, int(st.header["coils"]), f"mrsmon {software_version()}"))
        st.processor.prepared_sink = st.cache.write
        return records

    def _resume_from_cache(self, st: _SessionState, reader: SessionReader, records: list) -> set[int]:
        """Feed the cached records; returns the stored seqs they stand for (not to be processed again)."""
        proc = st.processor
        sink, proc.prepared_sink = proc.prepared_sink, None  # already in the file
        try:
            for rec in records:
                self._emit(st, proc.add_prepared(rec))
        finally:
            proc.prepared_sink = sink
        covered = {r.seq for r in records if r.kind in ("water", "transient", "error")}
        if any(r.kind == "state" for r in records):  # weights fixed: noise and dummy scans change nothing
            flags = reader.index["flags"]
            covered |= {int(s) for s in reader.index["seq"][(flags & (FLAG_BITS["noise"] | FLAG_BITS["dummy"])) != 0]}
        st.done |= covered
        return covered

    def _block_processor(self, header: dict, block: int, window: tuple, alarms: dict | None,
                         reference_blocks: int = 0, outliers: dict | None = None):
        from mrs.pipeline import BlockProcessor  # lazy: heavy imports only when fitting

        processor = BlockProcessor(header, self._load_basis(), block, window_ppm=window, alarms=alarms,
                                   reference_blocks=reference_blocks, outliers=outliers)
        processor.warm_up()  # build the basis and fitter, and run them once, at session start
        return processor

    @staticmethod
    def warm_up() -> None:
        """Import the fitting stack before any session, so the first block pays no import time."""
        import mrs.pipeline  # noqa: F401

    def _load_basis(self):
        if self.basis_spec in (None, "auto"):
            return None  # BlockProcessor simulates one from the session header
        if self._basis is None:
            from mrs.io.prepare import read_basis_checked

            self._basis = read_basis_checked(self.basis_spec)  # a mirrored basis is fixed, and logged
        return self._basis

    def _close_state(self, st: _SessionState) -> None:
        os.close(st.fd)
        if st.cache:
            st.cache.close()
        if st.writer:
            st.writer.close()

    # ------------------------------------------------------------------ work
    def _process(self, st: _SessionState, note: dict) -> None:
        st.done.add(note["seq"])
        coils, points = int(st.header["coils"]), int(st.header["points"])
        nbytes = coils * points * 8
        buf = os.pread(st.fd, nbytes, note["offset"] + RECORD_HEADER.size)
        data = np.frombuffer(buf, dtype="<c8").reshape(coils, points)
        t_s = (note["t_ns"] - int(st.header["start_time_ns"])) / 1e9
        outputs = st.processor.add(note["seq"], t_s, frozenset(note["flags"]), data)
        self._emit(st, outputs, arrived=note.get("arrived"))

    def _emit(self, st: _SessionState, outputs: list, arrived: float | None = None) -> None:
        sid = st.header.get("session", st.folder.name)
        for out in outputs:
            if isinstance(out, TransientRow):
                if out.seq > st.skip_transients_upto:
                    st.writer.transient(out.to_json())
            elif isinstance(out, BlockResult):
                st.block_outputs += 1
                # a resumed session replays its processing: results already stored are not repeated
                # (counted in output order, since a revision repeats an earlier block's index)
                if st.block_outputs <= st.skip_blocks:
                    continue
                if arrived is not None and not out.revision:  # a revision completes no block
                    out = out.replace(latency_ms=round((time.monotonic() - arrived) * 1000, 3))
                # first: the technician waits on this, not on the files
                self._publish("result", out.replace(session=sid).to_json(components=False))
                self.blocks_published += 1
                st.writer.block(out.to_json())
