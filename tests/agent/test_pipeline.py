"""The pipeline processes stored transients in seq order, whatever order the notes arrive in, and resumes
after a restart without refitting or republishing blocks already on disk."""

import json

import numpy as np

from agent.ingest import Ingest
from agent.pipeline import Pipeline
from mrs.results import BlockResult, BlockSpectrum, TransientRow
from protocols.session_folder import SessionReader
from protocols.wire import encode, encode_transient

START = dict(spectrometer_frequency_mhz=123.25, nucleus="1H", dwell_time_s=2.5e-4, points=16, coils=2,
             echo_time_s=0.03, repetition_time_s=2.0, sequence="PRESS", subject="sim001", session_code="ses-01",
             kit_code="KIT-0001", protocol="nonexistent", start_time_ns=0)


class CountingProcessor:
    """Stands in for mrs.pipeline.BlockProcessor: a block = the mean first sample of `block` transients."""

    def __init__(self, header, block, window, alarms, reference_blocks=0, outliers=None):
        self.block, self.seqs, self.buf, self.n = block, [], [], 0

    def add(self, seq, t_s, flags, data):
        self.seqs.append(seq)
        self.buf.append(float(data[0, 0].real))
        out = [TransientRow(seq, t_s, None, None, None, self.n)]
        if len(self.buf) == self.block:
            out.append(self._block())
        return out

    def _block(self):
        r = BlockResult(block=self.n, t_s=0.0, conc={"value": float(np.mean(self.buf))},
                        spectrum=BlockSpectrum([1.0, 2.0], [0.0, 1.0]))
        self.n += 1
        self.buf = []
        return r

    def flush(self):
        return [self._block()] if self.buf else []


def stored_session(tmp_path, n, events_at=(), skip=()):
    ing = Ingest(tmp_path, fsync=False)
    ing.handle(encode("SESSION_START", "p", 0, **START))
    for seq in range(1, n + 1):
        if seq in skip:
            continue
        if seq in events_at:
            ing.handle(encode("EVENT", "p", seq, t_ns=seq, kind="note"))
        else:
            ing.handle(encode_transient("p", seq, np.full((2, 16), seq, np.complex64), t_ns=seq * 10**9, scan=seq))
    ing.close()
    return SessionReader(tmp_path / "p")


def notes_for(reader, order):
    folder = str(reader.folder)
    ev = {e["seq"] for e in reader.events()}
    out = []
    for seq in order:
        if seq in ev:
            out.append({"kind": "event", "session": "p", "seq": seq, "folder": folder})
        else:
            e = reader.entry(seq)
            out.append({"kind": "transient", "session": "p", "seq": seq, "folder": folder, "offset": int(e["offset"]),
                        "t_ns": int(e["t_ns"]), "flags": reader.flags(seq)})
    return out


def run_pipeline(reader, order, end=True):
    published = []
    pipe = Pipeline(lambda t, o: published.append((t, o)), processor_factory=CountingProcessor, block_transients=4)
    pipe._handle({"kind": "session", "session": "p", "seq": 0, "folder": str(reader.folder)})
    for note in notes_for(reader, order):
        pipe._handle(note)
    if end:
        pipe._handle({"kind": "end", "session": "p", "seq": -1, "folder": str(reader.folder)})
    pipe.close()
    return pipe, published


def test_out_of_order_notes_are_processed_in_seq_order(tmp_path):
    reader = stored_session(tmp_path, 12, events_at=(5,))
    rng = np.random.default_rng(0)
    order = list(rng.permutation(np.arange(1, 13)))
    pipe, published = run_pipeline(reader, [int(x) for x in order])
    blocks = [o for t, o in published if t == "result"]
    # transients 1-4 | 6-9 | 10-12 (partial, flushed at end): means of their seq numbers
    assert [b["conc"]["value"] for b in blocks] == [2.5, 7.5, 11.0]
    rows = [json.loads(x) for x in (tmp_path / "p" / "transients.jsonl").read_text().splitlines()]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12]
    assert [t for t, _ in published][-1] == "end"


def test_blocks_are_stored_without_spectrum_and_spectra_as_npz(tmp_path):
    reader = stored_session(tmp_path, 8)
    run_pipeline(reader, list(range(1, 9)))
    fits = reader.fits()
    assert [f["block"] for f in fits] == [0, 1] and "spectrum" not in fits[0]
    with np.load(tmp_path / "p" / "spectra" / "block-00001.npz") as z:
        assert list(z["data"]) == [0.0, 1.0]


def test_restarted_pipeline_resumes_without_repeating_blocks(tmp_path):
    reader = stored_session(tmp_path, 6)
    run_pipeline(reader, list(range(1, 7)), end=False)  # crash after block 0 and 2 transients of block 1
    assert len(reader.fits()) == 1
    ing = Ingest(tmp_path, fsync=False)  # the agent restarts and the rest of the session arrives
    ing.open_unfinished()
    ing.handle(encode("SESSION_START", "p", 0, **START))  # the sender's new connection introduces it again
    for seq in range(7, 11):
        ing.handle(encode_transient("p", seq, np.full((2, 16), seq, np.complex64), t_ns=seq * 10**9, scan=seq))
    ing.close()
    pipe, published = run_pipeline(SessionReader(tmp_path / "p"), [7, 8, 9, 10])
    blocks = [o for t, o in published if t == "result"]
    assert [b["block"] for b in blocks] == [1, 2]  # block 0 is not refitted or republished
    assert [b["conc"]["value"] for b in blocks] == [6.5, 9.5]
    rows = [json.loads(x)["seq"] for x in (tmp_path / "p" / "transients.jsonl").read_text().splitlines()]
    assert rows == list(range(1, 11))


def test_a_gap_found_on_disk_at_open_is_processed_past(tmp_path):
    reader = stored_session(tmp_path, 8, skip=(3,))
    pipe, published = run_pipeline(reader, [1, 2, 4, 5, 6, 7, 8])  # seq 3 never arrives
    blocks = [o["conc"]["value"] for t, o in published if t == "result"]
    assert blocks == [(1 + 2 + 4 + 5) / 4, (6 + 7 + 8) / 3]


def test_a_failing_processor_becomes_an_alarm_not_a_crash(tmp_path):
    reader = stored_session(tmp_path, 4)

    class Broken(CountingProcessor):
        def add(self, *a):
            raise RuntimeError("boom")

    published = []
    pipe = Pipeline(lambda t, o: published.append((t, o)), processor_factory=Broken, block_transients=4)
    for note in notes_for(reader, [1, 2]):
        pipe.handle_safely(note)
    pipe.close()
    alarms = [o for t, o in published if t == "alarm"]
    assert alarms and alarms[0]["code"] == "PIPELINE_ERROR" and "boom" in alarms[0]["message"]


def test_a_live_gap_is_waited_for_until_the_resend_arrives(tmp_path):
    ing = Ingest(tmp_path, fsync=False)
    ing.handle(encode("SESSION_START", "p", 0, **START))
    published = []
    pipe = Pipeline(lambda t, o: published.append((t, o)), processor_factory=CountingProcessor, block_transients=4)
    pipe._handle({"kind": "session", "session": "p", "seq": 0, "folder": str(tmp_path / "p")})

    def arrive(seq):
        out = ing.handle(encode_transient("p", seq, np.full((2, 16), seq, np.complex64), t_ns=seq, scan=seq))
        note = out.notes[0]
        pipe._handle({"kind": "transient", "session": "p", "seq": seq, "folder": str(tmp_path / "p"),
                      "offset": note.data["offset"], "t_ns": seq, "flags": frozenset()})

    for seq in (1, 2, 4, 5, 6):
        arrive(seq)
    assert [o for t, o in published if t == "result"] == []  # held: seq 3 is missing
    arrive(3)  # the resend
    assert [o["conc"]["value"] for t, o in published if t == "result"] == [2.5]  # 1, 2, 3, 4 in order
    ing.close()
    pipe.close()


class RevisingProcessor(CountingProcessor):
    """Like the session reference: after its second block it publishes block 0 again, revised."""

    def add(self, seq, t_s, flags, data):
        out = super().add(seq, t_s, flags, data)
        if any(isinstance(o, BlockResult) and o.block == 1 for o in out):
            out.append(BlockResult(block=0, t_s=0.0, conc={"value": -1.0}, revision=1,
                                   spectrum=BlockSpectrum([1.0], [0.0])))
        return out


def test_a_resumed_session_neither_repeats_nor_loses_a_revision(tmp_path):
    reader = stored_session(tmp_path, 5)
    pipe = Pipeline(lambda t, o: None, processor_factory=RevisingProcessor, block_transients=2)
    pipe._handle({"kind": "session", "session": "p", "seq": 0, "folder": str(reader.folder)})
    for note in notes_for(reader, [1, 2, 3, 4, 5]):  # crash after block 1 and its revision of block 0
        pipe._handle(note)
    pipe.close()
    assert [(r["block"], r.get("revision")) for r in reader.fits(revisions=True)] == [(0, None), (1, None), (0, 1)]
    ing = Ingest(tmp_path, fsync=False)  # the agent restarts and the next transient arrives
    ing.open_unfinished()
    ing.handle(encode("SESSION_START", "p", 0, **START))
    ing.handle(encode_transient("p", 6, np.full((2, 16), 6, np.complex64), t_ns=6 * 10**9, scan=6))
    ing.close()
    reader = SessionReader(tmp_path / "p")
    published = []
    pipe = Pipeline(lambda t, o: published.append((t, o)), processor_factory=RevisingProcessor, block_transients=2)
    pipe._handle({"kind": "session", "session": "p", "seq": 0, "folder": str(reader.folder)})
    for note in notes_for(reader, [6]):
        pipe._handle(note)
    pipe.close()
    assert [o["block"] for t, o in published if t == "result"] == [2]
    rows = reader.fits(revisions=True)
    assert [(r["block"], r.get("revision")) for r in rows] == [(0, None), (1, None), (0, 1), (2, None)]
    # readers see each block once, its latest revision, in block order
    assert [(r["block"], r["conc"]["value"]) for r in reader.fits()] == [(0, -1.0), (1, 3.5), (2, 5.5)]


def test_the_end_processes_what_was_stored_after_notes_were_lost(tmp_path):
    """Notes sent while no pipeline process listened are lost; the stored data are not. At the end the
    pipeline takes every stored transient it has not seen, so the last (partial) block is fitted too."""
    reader = stored_session(tmp_path, 6)
    published = []
    pipe = Pipeline(lambda t, o: published.append((t, o)), processor_factory=CountingProcessor, block_transients=4)
    pipe._handle({"kind": "session", "session": "p", "seq": 0, "folder": str(reader.folder)})  # sees 1..6
    ing = Ingest(tmp_path, fsync=False)  # 7..10 arrive; their notes never reach the pipeline
    ing.handle(encode("SESSION_START", "p", 0, **START))
    for seq in range(7, 11):
        ing.handle(encode_transient("p", seq, np.full((2, 16), seq, np.complex64), t_ns=seq * 10**9, scan=seq))
    ing.close()
    pipe._handle({"kind": "end", "session": "p", "seq": -1, "folder": str(reader.folder)})
    pipe.close()
    blocks = [o for t, o in published if t == "result"]
    assert [b["conc"]["value"] for b in blocks] == [2.5, 6.5, 9.5]
    assert [t for t, _ in published][-1] == "end"
