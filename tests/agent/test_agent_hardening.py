"""One message must never stop the agent, and a peer must never reach further than a refusal: the real
agent process against conflicting senders, stored NaN, hostile control requests, huge sequence numbers,
path-escaping ids, extra fields, oversized frames, greedy subscribers, abandoned sessions, and a kill."""

import json
import os
import random
import signal
import subprocess
import time

import numpy as np
import pytest
import zmq
from agent_process import AgentProcess
from fault_tools import simulate
from test_spine_e2e import START, payload, stream

from agent.store import SessionWriter
from protocols.sender import Sender
from protocols.session_folder import SessionReader
from protocols.wire import encode, encode_transient


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Peer:
    """A raw DEALER on the data link: sends frames, returns the replies that come back."""

    def __init__(self, address: str):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(address)

    def ask(self, frames: list[bytes], timeout_s: float = 10.0, drain_s: float = 0.2) -> list[dict]:
        """Send, wait for the first reply, then collect what else comes within drain_s."""
        self.sock.send_multipart(frames)
        if not self.sock.poll(int(timeout_s * 1000)):
            raise TimeoutError("no reply from the agent")
        out = []
        while self.sock.poll(int(drain_s * 1000)):
            out.append(json.loads(self.sock.recv_multipart()[0]))
        return out

    def close(self):
        self.sock.close(0)


def alive(agent: AgentProcess) -> bool:
    return agent.proc.poll() is None and agent.request({"op": "ping"}, timeout_s=10)["ok"]


def test_a_conflicting_sender_stores_nothing_in_the_existing_session(tmp_path):
    with AgentProcess(tmp_path / "s") as agent:
        with Sender(agent.listen, "dup") as first:  # the session's own scanner, mid-session
            first.send(0, encode("SESSION_START", "dup", 0, **START))
            for seq in range(1, 6):
                first.send(seq, encode_transient("dup", seq, payload(seq), t_ns=1, scan=seq))
            assert first.flush(30)
            other = Peer(agent.listen)  # a second acquisition with the same id and the same shape
            r = other.ask(encode("SESSION_START", "dup", 0, **dict(START, start_time_ns=9_000_000_000)))
            assert r[0]["code"] == "SESSION_CONFLICT"
            for seq in (6, 7, 8):
                r = other.ask(encode_transient("dup", seq, payload(100 + seq), t_ns=1, scan=seq))
                assert r[0]["type"] == "NACK" and r[0]["code"] == "SESSION_CONFLICT"
            other.close()
            for seq in range(6, 11):  # the first scanner goes on and ends its session
                first.send(seq, encode_transient("dup", seq, payload(seq), t_ns=1, scan=seq))
            first.send(11, encode("SESSION_END", "dup", 11, t_ns=2))
            assert first.flush(30) and first.refused == []
        assert alive(agent)
    reader = SessionReader(tmp_path / "s" / "dup")
    assert reader.summary()["transients"] == 10 and reader.summary()["complete"]
    assert all(np.array_equal(reader.transient(seq), payload(seq)) for seq in range(1, 11))


def test_a_sender_refused_for_a_conflict_stops_with_the_reason(tmp_path):
    with AgentProcess(tmp_path / "s") as agent:
        first = simulate(agent.listen, "same", "--protocol", "quick", "--speed", "max", "--transients", "10")
        assert first.wait(120) == 0
        second = simulate(agent.listen, "same", "--protocol", "quick", "--speed", "max", "--transients", "10",
                          "--seed", "9")
        out, err = second.communicate(timeout=120)
    assert second.returncode == 2 and "SESSION_CONFLICT" in err
    assert SessionReader(tmp_path / "s" / "same").summary()["transients"] == 10


def test_non_finite_and_deeply_nested_json_is_refused_and_stored_nan_never_breaks_a_snapshot(tmp_path):
    SessionWriter(tmp_path / "s" / "old", {**START, "session": "old"}, fsync=False).close()
    header = tmp_path / "s" / "old" / "session.json"  # as an older version stored them
    header.write_text(header.read_text().replace('"coils"', '"extra": NaN, "coils"'))
    with open(tmp_path / "s" / "old" / "events.jsonl", "a") as f:
        f.write('{"seq": 1, "source": "scanner", "kind": "vitals", "t_ns": 5, "value": {"hr_bpm": NaN}, "note": ""}\n')
    with AgentProcess(tmp_path / "s") as agent:
        snap = agent.request({"op": "snapshot", "session": "old"})
        assert snap["ok"] and snap["events"][0]["value"] == {"hr_bpm": None}
        peer = Peer(agent.listen)
        assert peer.ask(encode("SESSION_START", "nan", 0, **START))[0]["type"] == "ACK"
        for raw in (b'{"v":1,"type":"EVENT","session":"nan","seq":1,"t_ns":5,"kind":"vitals","value":{"x":1e400}}',
                    b'{"v":1,"type":"EVENT","session":"nan","seq":1,"t_ns":5,"kind":"vitals","value":{"x":NaN}}',
                    b'{"v":1,"type":"EVENT","session":"nan","seq":1,"t_ns":5,"kind":"note","x_extra":-Infinity}',
                    b'{"v":1,"type":"EVENT","session":"nan","seq":1,"t_ns":5,"kind":"note","value":{"a":'
                    + b"[" * 30_000 + b"]" * 30_000 + b"}}"):  # nested deeper than any parser's stack
            assert peer.ask([raw])[0]["code"] == "BAD_JSON"
        peer.close()
        bad = agent.request({"op": "snapshot"})  # the current session ("nan") holds nothing non-finite
        assert bad["ok"]
        assert agent.request({"op": "snapshot", "session": "old"})["ok"] and alive(agent)


HOSTILE_CONTROL = [
    b'{"op": "snapshot", "session": "nope"}',
    b'{"op": "snapshot", "session": ".."}',
    b'{"op": "snapshot", "session": "../s"}',
    b'{"op": "snapshot", "session": "old\\n"}',
    b'{"op": "snapshot", "session": 7}',
    b'{"op": "block", "session": "nope", "block": 0}',
    b'{"op": "block", "block": "x"}',
    b'{"op": "block", "block": 1.5}',
    b'{"op": "block", "block": 1e308}',
    b'{"op": "block", "block": 1e400}',
    b'{"op": "block", "block": 100000000000000000000000000000}',
    b'{"op": "block", "block": -1}',
    b'{"op": "block", "block": true}',
    b'{"op": "event", "kind": "note", "value": {"x": NaN}}',
    b'{"op": "event", "kind": "note", "value": {"x": Infinity}}',
    b'{"op": "event", "kind": "note", "t_ns": 1e400}',
    b'{"op": "event", "kind": "note", "t_ns": "soon"}',
    b'{"op": "event", "kind": "bogus"}',
    b'{"op": "event", "kind": "note", "value": ' + b'[' * 30_000 + b']' * 30_000 + b'}',
    b'[' * 30_000 + b']' * 30_000,
    b'{"op": "event", "kind": "note", "value": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}}',
    b'{"op": "event", "kind": "note", "id": 12345678901234567890123456789012345678901234567890}',
    b'{"op": "nope"}',
    b'"snapshot"',
    b'\xff\xfe',
    b'',
]


def test_hostile_control_requests_are_refused_with_a_reason_and_the_agent_stays(tmp_path):
    SessionWriter(tmp_path / "s" / "old", {**START, "session": "old"}, fsync=False).close()
    with AgentProcess(tmp_path / "s") as agent:
        stream(agent.listen, "live", 3)
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(agent.control)
        try:
            for body in HOSTILE_CONTROL:
                sock.send(body)
                assert sock.poll(10_000), f"no reply to {body[:60]!r}"
                reply = json.loads(sock.recv())
                assert reply["ok"] is False and reply["error"], body[:60]
        finally:
            sock.close(0)
        oversized = zmq.Context.instance().socket(zmq.DEALER)  # over the request limit: cut off unanswered
        oversized.linger = 0
        oversized.connect(agent.control)
        oversized.send(b'{"op": "ping", "pad": "' + b"x" * 2**20 + b'"}')
        assert oversized.poll(2000) == 0
        oversized.close(0)
        assert alive(agent)
        status = agent.request({"op": "snapshot", "session": "live"})["status"]
    assert sum(status["control_refused"].values()) == len(HOSTILE_CONTROL)
    assert not (tmp_path / "s" / "live" / "events.jsonl").exists()


@pytest.mark.parametrize("seq", [2**40, 2**63])
def test_a_huge_sequence_number_is_answered_at_once(tmp_path, seq):
    with AgentProcess(tmp_path / "s") as agent:
        stream(agent.listen, "far", 2)
        peer = Peer(agent.listen)
        assert peer.ask(encode("SESSION_START", "far", 0, **START))[0]["type"] == "ACK"
        for frames in (encode_transient("far", seq, payload(1), t_ns=1), encode("HEARTBEAT", "far", seq)):
            r = peer.ask(frames, timeout_s=10)
            assert r[0]["type"] == "NACK" and r[0]["reason"]
        peer.close()
        assert alive(agent)
    assert SessionReader(tmp_path / "s" / "far").summary()["missing"] == []


@pytest.mark.parametrize("sid", ["..", ".", "abc\n", "a/b"])
def test_a_session_id_never_escapes_the_sessions_folder(tmp_path, sid):
    with AgentProcess(tmp_path / "s") as agent:
        peer = Peer(agent.listen)
        r = peer.ask([json.dumps({"v": 1, "type": "SESSION_START", "session": sid, "seq": 0, **START}).encode()])
        assert r[0]["code"] == "BAD_SESSION_ID"
        peer.close()
        assert alive(agent)
    assert not (tmp_path / "session.json").exists()
    assert [p.name for p in (tmp_path / "s").iterdir()] == []


def test_extra_header_fields_are_not_stored_or_published(tmp_path):
    with AgentProcess(tmp_path / "s") as agent:
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.linger = 0
        sub.setsockopt(zmq.SUBSCRIBE, b"session")
        sub.connect(agent.publish)
        time.sleep(0.5)
        peer = Peer(agent.listen)
        assert peer.ask(encode("SESSION_START", "xf", 0, **START, patient_name="Jane Doe"))[0]["type"] == "ACK"
        assert sub.poll(10_000)
        published = sub.recv_multipart()[1]
        peer.close()
        sub.close(0)
    assert b"Jane" not in published
    assert "Jane" not in (tmp_path / "s" / "xf" / "session.json").read_text()


def test_oversized_frames_are_cut_off_and_memory_stays_flat(tmp_path):
    with AgentProcess(tmp_path / "s") as agent:
        stream(agent.listen, "big", 2)
        before = rss_mb(agent.proc.pid)
        blob = np.zeros(200 * 2**20, np.uint8).tobytes()
        for _ in range(3):
            sock = zmq.Context.instance().socket(zmq.DEALER)
            sock.linger = 0
            sock.connect(agent.listen)
            sock.send_multipart(encode("SESSION_START", "big", 0, **START) + [blob])
            assert sock.poll(3000) == 0  # no reply: the connection is closed before the frame is read
            sock.close(0)
        time.sleep(1.0)
        after = rss_mb(agent.proc.pid)
        assert alive(agent)
        stream(agent.listen, "after-big", 5)
    assert after - before < 100, f"agent RSS {before:.0f} -> {after:.0f} MB"
    assert SessionReader(tmp_path / "s" / "after-big").summary()["complete"]


def test_subscribers_with_random_topics_cost_the_agent_no_memory(tmp_path):
    rng = random.Random(4)
    with AgentProcess(tmp_path / "s") as agent:
        before = rss_mb(agent.proc.pid)
        ctx = zmq.Context()
        subs = []
        for _ in range(100):
            s = ctx.socket(zmq.SUB)
            s.linger = 0
            s.connect(agent.publish)
            for _ in range(100):
                s.setsockopt(zmq.SUBSCRIBE, rng.randbytes(rng.randint(1, 10_000)))
            subs.append(s)
        time.sleep(3)
        during = rss_mb(agent.proc.pid)
        for s in subs:
            s.close(0)
        ctx.term()
        time.sleep(1)
        after = rss_mb(agent.proc.pid)
        assert alive(agent)
    assert during - before < 100 and after - before < 100, f"{before:.0f} -> {during:.0f} -> {after:.0f} MB"


def test_abandoned_sessions_do_not_keep_file_handles_in_the_agent(tmp_path):
    with AgentProcess(tmp_path / "s") as agent:
        stream(agent.listen, "first", 1)
        before = open_fds(agent.proc.pid)
        peer = Peer(agent.listen)
        for i in range(60):
            sid = f"abandoned-{i}"
            peer.ask(encode("SESSION_START", sid, 0, **START), drain_s=0.01)
            peer.ask(encode_transient(sid, 1, payload(1), t_ns=1, scan=1), drain_s=0.01)
            peer.ask(encode("EVENT", sid, 2, t_ns=5, kind="note"), drain_s=0.01)
        peer.close()
        during = open_fds(agent.proc.pid)
        stream(agent.listen, "still-works", 3)
    assert during - before <= 40, f"{before} -> {during} open files"
    assert SessionReader(tmp_path / "s" / "still-works").summary()["complete"]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def _gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie whose parent died is reaped by init; one of ours we reap
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(")")[-1].split()[0] == "Z":
                return True
        time.sleep(0.1)
    return False


def test_the_pipeline_process_dies_with_a_killed_agent_and_a_restart_is_not_blocked(tmp_path):
    agent = AgentProcess(tmp_path / "s", extra=["--block", "8"]).start()
    try:
        deadline = time.monotonic() + 60
        while not _children(agent.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        children = _children(agent.proc.pid)
        assert len(children) == 1, f"expected only the pipeline process, found {children}"  # no resource tracker
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait(10)
        assert all(_gone(c, 10) for c in children), "the pipeline process outlived the agent"
        agent.start()
        stream(agent.listen, "after-kill", 20)
    finally:
        agent.stop()
    assert SessionReader(tmp_path / "s" / "after-kill").summary()["complete"]
