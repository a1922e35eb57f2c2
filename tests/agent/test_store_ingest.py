"""Ingest + store without sockets: durable append, duplicates, gaps, crash recovery, refusals."""

import json

import numpy as np
from small_session import START, data

from agent.ingest import Ingest
from agent.store import SessionWriter
from protocols.session_folder import SessionReader
from protocols.wire import encode, encode_transient


def tr(seq, sid="s1", flags=()):
    return encode_transient(sid, seq, data(seq), t_ns=1_000_000_000 + seq * 2_000_000_000, scan=seq, flags=flags)


def replies(outcome):
    return [json.loads(r[0]) for r in outcome.replies]


def started(tmp_path):
    ing = Ingest(tmp_path, fsync=False)
    assert replies(ing.handle(encode("SESSION_START", "s1", 0, **START)))[0]["type"] == "ACK"
    return ing


def test_transients_are_stored_and_read_back_bit_exact(tmp_path):
    ing = started(tmp_path)
    for seq in range(1, 21):
        r = replies(ing.handle(tr(seq, flags=("noise",) if seq == 1 else ())))
        assert r == [{"v": 1, "type": "ACK", "session": "s1", "seq": seq, "upto": seq, "credit": 64}]
    ing.handle(encode("SESSION_END", "s1", 21, t_ns=5))
    ing.close()
    reader = SessionReader(tmp_path / "s1")
    assert list(reader.seqs) == list(range(1, 21))
    for seq in range(1, 21):
        assert np.array_equal(reader.transient(seq), data(seq))
    assert reader.flags(1) == {"noise"} and list(reader.metabolite_seqs()) == list(range(2, 21))
    s = reader.summary()
    assert (s["transients"], s["missing"], s["duplicates"], s["complete"]) == (20, [], 0, True)
    assert reader.header["kit_code"] == "KIT-0001" and reader.plan["name"] == "quick"


def test_duplicate_is_acked_again_and_stored_once(tmp_path):
    ing = started(tmp_path)
    ing.handle(tr(1))
    r = replies(ing.handle(tr(1)))
    assert r[0]["type"] == "ACK" and r[0]["seq"] == 1
    assert ing.duplicates == 1
    ing.close()
    assert SessionReader(tmp_path / "s1").summary()["duplicates"] == 0
    assert len(SessionReader(tmp_path / "s1").seqs) == 1


def test_gap_is_stored_and_named_for_resend(tmp_path):
    ing = started(tmp_path)
    ing.handle(tr(1))
    r = replies(ing.handle(tr(4)))
    assert r[0] == {**r[0], "type": "ACK", "seq": 1, "upto": 1}  # cumulative: 4 is stored, 2 and 3 are not
    assert r[1]["type"] == "NACK" and r[1]["code"] == "GAP" and r[1]["missing"] == [[2, 3]]
    ing.handle(tr(3))
    r = replies(ing.handle(tr(2)))
    assert r[0]["upto"] == 4 and len(r) == 1


def test_heartbeat_reveals_lost_tail(tmp_path):
    ing = started(tmp_path)
    ing.handle(tr(1))
    r = replies(ing.handle(encode("HEARTBEAT", "s1", 3)))
    assert r[-1]["code"] == "GAP" and r[-1]["missing"] == [[2, 3]]


def test_unknown_session_conflict_and_after_end_are_refused(tmp_path):
    ing = started(tmp_path)
    assert replies(ing.handle(tr(1, sid="nope")))[0]["code"] == "UNKNOWN_SESSION"
    other = dict(START, coils=8)
    assert replies(ing.handle(encode("SESSION_START", "s1", 0, **other)))[0]["code"] == "SESSION_CONFLICT"
    assert replies(ing.handle(encode("SESSION_START", "s1", 0, **START)))[0]["type"] == "ACK"  # resend is fine
    ing.handle(encode("SESSION_END", "s1", 2, t_ns=5))
    assert replies(ing.handle(tr(3)))[0]["code"] == "AFTER_END"
    assert replies(ing.handle(tr(0)))[0]["code"] == "BAD_FIELD"
    assert ing.refused == {"UNKNOWN_SESSION": 1, "SESSION_CONFLICT": 1, "AFTER_END": 1, "BAD_FIELD": 1}


def test_wrong_shape_for_the_session_is_refused(tmp_path):
    ing = started(tmp_path)
    bad = encode_transient("s1", 1, np.zeros((3, 32), np.complex64), t_ns=1)
    r = replies(ing.handle(bad))
    assert r[0]["code"] == "BAD_SHAPE" and "2 coils" in r[0]["reason"]


def test_torn_tail_is_cut_and_session_resumes(tmp_path):
    ing = started(tmp_path)
    for seq in range(1, 6):
        ing.handle(tr(seq))
    ing.close()
    raw = tmp_path / "s1" / "raw.log"
    with open(raw, "ab") as f:  # a crash in the middle of writing record 6 (never ACKed)
        f.write(b"MRSR" + b"\x01" * 100)
    (tmp_path / "s1" / "index.bin").unlink()
    ing2 = Ingest(tmp_path, fsync=False)
    assert ing2.open_unfinished() == ["s1"]
    assert ing2.writer("s1").upto() == 5
    assert replies(ing2.handle(tr(5)))[0]["code"] == "UNKNOWN_SESSION"  # a new connection introduces it first
    assert replies(ing2.handle(encode("SESSION_START", "s1", 0, **START)))[0]["type"] == "ACK"
    assert replies(ing2.handle(tr(5)))[0]["type"] == "ACK"      # duplicate after restart
    ing2.handle(tr(6))
    ing2.close()
    reader = SessionReader(tmp_path / "s1")
    assert list(reader.seqs) == [1, 2, 3, 4, 5, 6]
    assert all(np.array_equal(reader.transient(s), data(s)) for s in range(1, 7))


def test_events_are_stored_with_session_time(tmp_path):
    ing = started(tmp_path)
    out = ing.handle(encode("EVENT", "s1", 1, t_ns=61_000_000_000, kind="infusion_start", value={"mg": 1}))
    assert out.notes[0].kind == "event"
    ing.close()
    ev = SessionReader(tmp_path / "s1").events()
    assert ev == [{"seq": 1, "source": "scanner", "kind": "infusion_start", "t_ns": 61_000_000_000, "t_s": 60.0,
                   "value": {"mg": 1}, "note": ""}]


def test_writer_upto_and_missing(tmp_path):
    w = SessionWriter(tmp_path / "x", dict(START, session="x"), fsync=False)
    for seq in (1, 2, 5):
        w.append_transient(seq, 0, seq, frozenset(), data(seq))
    assert w.upto() == 2 and w.missing_below(7) == [[3, 4], [6, 6]]
    w.close()


def test_batch_is_committed_with_one_fsync_per_file_before_any_ack(tmp_path, monkeypatch):
    import os

    ing = started(tmp_path)
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    ing.writers["s1"].fsync = True
    outcomes = ing.handle_many([tr(seq) for seq in range(1, 11)])
    assert [replies(o)[0]["upto"] for o in outcomes] == [10] * 10  # built after the commit: all durable
    assert len(calls) == 1  # raw.log only: ten transients, one fsync


def test_fsync_failure_acks_nothing_and_says_store_failed(tmp_path, monkeypatch):
    import os

    ing = started(tmp_path)
    ing.writers["s1"].fsync = True

    def broken(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    outcomes = ing.handle_many([tr(1), tr(2)])
    assert [replies(o)[0]["code"] for o in outcomes] == ["STORE_FAILED", "STORE_FAILED"]
    assert "No space left" in replies(outcomes[0])[0]["reason"]


def test_after_a_failed_fsync_the_resend_is_stored_not_taken_for_a_duplicate(tmp_path, monkeypatch):
    import os

    ing = started(tmp_path)
    ing.handle(tr(1))
    real = os.fsync
    ing.writers["s1"].fsync = True
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "I/O error")))
    assert replies(ing.handle(tr(2)))[0]["code"] == "STORE_FAILED"
    monkeypatch.setattr(os, "fsync", real)
    r = replies(ing.handle(tr(2)))
    assert r[0]["type"] == "ACK" and r[0]["upto"] == 2 and ing.duplicates == 0
    ing.close()
    reader = SessionReader(tmp_path / "s1")
    assert list(reader.seqs) == [1, 2] and np.array_equal(reader.transient(2), data(2))
