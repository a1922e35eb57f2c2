"""End to end through real processes: sender -> agent -> disk, through crashes and link faults."""

import json
import threading
import time

import numpy as np
import pytest
import zmq
from agent_process import AgentProcess

from protocols.sender import Faults, Sender
from protocols.session_folder import SessionReader
from protocols.wire import encode, encode_transient

COILS, POINTS = 8, 2048
START = dict(spectrometer_frequency_mhz=123.25, nucleus="1H", dwell_time_s=2.5e-4, points=POINTS, coils=COILS,
             echo_time_s=0.03, repetition_time_s=2.0, sequence="PRESS", subject="sim001", session_code="ses-01",
             kit_code="KIT-0001", protocol="quick", start_time_ns=1_000_000_000)


def payload(seq: int) -> np.ndarray:
    rng = np.random.default_rng(seq)
    return (rng.standard_normal((COILS, POINTS)) + 1j * rng.standard_normal((COILS, POINTS))).astype(np.complex64)


def stream(address, sid, n, faults=None, on_seq=None, sender_box=None):
    """SESSION_START, n transients (seq 1..n), SESSION_END (seq n+1); returns once all are ACKed."""
    with Sender(address, sid, faults=faults) as s:
        if sender_box is not None:
            sender_box.append(s)
        s.send(0, encode("SESSION_START", sid, 0, **START))
        for seq in range(1, n + 1):
            s.send(seq, encode_transient(sid, seq, payload(seq), t_ns=1_000_000_000 + seq, scan=seq))
            if on_seq:
                on_seq(seq)
        s.send(n + 1, encode("SESSION_END", sid, n + 1, t_ns=2_000_000_000))
        assert s.flush(timeout_s=120), "SESSION_END was never acknowledged"
        return s.refused


def assert_exactly_once(folder, n):
    reader = SessionReader(folder)
    s = reader.summary()
    assert s["missing"] == [] and s["duplicates"] == 0 and s["complete"], s
    assert list(reader.seqs) == list(range(1, n + 1))
    for seq in range(1, n + 1):
        assert np.array_equal(reader.transient(seq), payload(seq)), f"seq {seq} differs"


def test_thousand_transients_arrive_bit_exact_in_order(tmp_path):
    with AgentProcess(tmp_path / "sessions") as agent:
        refused = stream(agent.listen, "e2e", 1000)
    assert refused == []
    assert_exactly_once(tmp_path / "sessions" / "e2e", 1000)


def test_agent_sigkill_mid_stream_loses_nothing(tmp_path):
    agent = AgentProcess(tmp_path / "sessions").start()
    killed = threading.Event()

    def kill_at(seq):
        if seq == 300 and not killed.is_set():
            killed.set()
            agent.kill()
            threading.Timer(1.0, agent.start).start()  # restart on the same ports while the sender retries

    try:
        refused = stream(agent.listen, "crash", 600, on_seq=kill_at)
    finally:
        time.sleep(0.2)
        agent.stop()
    assert killed.is_set() and refused == []
    assert "reopened unfinished session crash" in agent.log()
    assert_exactly_once(tmp_path / "sessions" / "crash", 600)


def test_link_faults_drop_duplicate_reorder_and_reconnect(tmp_path):
    box = []

    def cut_link(seq):
        if seq in (150, 320):  # drop the connection: close the socket under the sender
            box[0]._reconnect()

    with AgentProcess(tmp_path / "sessions") as agent:
        faults = Faults(drop=0.05, duplicate=0.05, reorder=0.05, seed=3)
        refused = stream(agent.listen, "faults", 400, faults=faults, on_seq=cut_link, sender_box=box)
        status = agent.request({"op": "snapshot"})["status"]
    assert refused == []
    assert box[0].resends > 0 and box[0].reconnects >= 2
    assert status["duplicates_dropped"] > 0
    assert_exactly_once(tmp_path / "sessions" / "faults", 400)


def test_slow_agent_credit_bounds_the_sender_window(tmp_path):
    with AgentProcess(tmp_path / "sessions", extra=["--no-fit", "--credit", "4"]) as agent:
        with Sender(agent.listen, "credit") as s:
            s.send(0, encode("SESSION_START", "credit", 0, **START))
            assert s.flush(10) and s.credit == 4  # the first ACK carries the agent's window
            peak = 0
            for seq in range(1, 60):
                s.send(seq, encode_transient("credit", seq, payload(seq), t_ns=1, scan=seq))
                peak = max(peak, len(s.ring))
            s.send(60, encode("SESSION_END", "credit", 60, t_ns=2))
            assert s.flush(60)
    assert 1 <= peak <= 4


def _raw_send(address, frames, timeout_s=5.0):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(address)
    try:
        sock.send_multipart(frames)
        assert sock.poll(int(timeout_s * 1000)), "no reply"
        return [json.loads(f) for f in [sock.recv_multipart()[0]]][0]
    finally:
        sock.close(0)


def test_malformed_messages_are_refused_and_agent_keeps_serving(tmp_path):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    good = encode_transient("fuzz", 1, payload(1), t_ns=1, scan=1)
    h = json.loads(good[0])
    nan = payload(1)
    nan[0, 0] = complex(float("nan"), 0)
    cases = {
        "truncated": [good[0], good[1][:1000]],
        "oversized": [good[0], good[1] + b"\0" * 64],
        "wrong_version": [json.dumps({**h, "v": 7}).encode(), good[1]],
        "wrong_shape": [json.dumps({**h, "shape": [4, 4096]}).encode(), good[1]],
        "nan": encode_transient("fuzz", 1, nan, t_ns=1),
        "not_json": [b"\x00\x01garbage", good[1]],
        "before_start": encode_transient("nostart", 1, payload(1), t_ns=1),
    }
    with AgentProcess(tmp_path / "sessions") as agent:
        for name, frames in cases.items():
            r = _raw_send(agent.listen, frames)
            assert r["type"] == "NACK" and r["code"] and r["reason"], name

        @settings(max_examples=60, deadline=None)
        @given(st.lists(st.binary(max_size=200), min_size=1, max_size=3))
        def fuzz(frames):
            assert _raw_send(agent.listen, frames)["type"] == "NACK"

        fuzz()
        # out of order and valid: still stored; then everything valid arrives intact
        refused = stream(agent.listen, "fuzz", 50, faults=Faults(reorder=0.3, seed=1))
        status = agent.request({"op": "snapshot"})["status"]
    assert refused == []
    assert sum(status["refused"].values()) >= len(cases) + 60
    assert_exactly_once(tmp_path / "sessions" / "fuzz", 50)
    assert not (tmp_path / "sessions" / "nostart").exists()


def test_inspect_reports_the_stored_session(tmp_path):
    import subprocess
    import sys

    with AgentProcess(tmp_path / "sessions") as agent:
        stream(agent.listen, "insp", 20)
    out = subprocess.run([sys.executable, "-m", "mrsmon", "inspect", str(tmp_path / "sessions" / "insp"), "--json"],
                         capture_output=True, text=True, check=True).stdout
    s = json.loads(out)
    assert (s["session"], s["transients"], s["coils"], s["points"], s["missing"], s["duplicates"],
            s["complete"], s["events"], s["blocks_fitted"]) == ("insp", 20, 8, 2048, [], 0, True, 0, 0)


@pytest.mark.slow
def test_repeated_kills_during_a_long_stream(tmp_path):
    agent = AgentProcess(tmp_path / "sessions").start()
    kills = {500, 1200, 2000}

    def kill_at(seq):
        if seq in kills:
            agent.kill()
            agent.start()

    try:
        assert stream(agent.listen, "soak", 3000, on_seq=kill_at) == []
    finally:
        agent.stop()
    assert_exactly_once(tmp_path / "sessions" / "soak", 3000)


def test_simulate_command_survives_an_agent_restart_and_exits_0_after_session_end(tmp_path):
    import subprocess
    import sys

    agent = AgentProcess(tmp_path / "sessions", extra=["--no-fit"]).start()
    sim = subprocess.Popen([sys.executable, "-m", "mrsmon", "simulate", "--connect", agent.listen, "--protocol",
                            "quick", "--speed", "120", "--session", "cli", "--seed", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # mid-stream
        agent.kill()
        time.sleep(1.0)
        agent.start()
        out, err = sim.communicate(timeout=180)
    finally:
        if sim.poll() is None:
            sim.kill()
        agent.stop()
    assert sim.returncode == 0, err
    assert "SESSION_END acknowledged" in out and "0 refused" in out
    reader = SessionReader(tmp_path / "sessions" / "cli")
    s = reader.summary()
    assert s["complete"] and s["missing"] == [] and s["duplicates"] == 0
    from protocols.plan import load_plan
    from simulator.forward import SessionSimulator

    sim_events = SessionSimulator(load_plan("quick"), seed=2).events()
    assert s["transients"] == 185 and s["events"] == len(sim_events)  # quick: 180 + 5 preparation scans
    assert reader.header["kit_code"] == "KIT-0000" and "condition" not in json.dumps(reader.header)


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_agent_shuts_down_cleanly_on_signal_with_its_pipeline_process(tmp_path, sig):
    import signal
    import subprocess

    agent = AgentProcess(tmp_path / "s", extra=[]).start()  # fitting on: a pipeline process exists
    try:
        stream(agent.listen, "sig", 10)
        children = subprocess.run(["pgrep", "-P", str(agent.proc.pid), "-f", "agent.pipeline_process"],
                                  capture_output=True, text=True).stdout.split()
        assert children, "no pipeline process: " + agent.log()[-3000:]
        agent.proc.send_signal(getattr(signal, sig))
        assert agent.proc.wait(60) == 0
    finally:
        agent.stop()
    assert "agent stopped" in agent.log()
    for pid in children:
        assert subprocess.run(["kill", "-0", pid], capture_output=True).returncode != 0, "pipeline left running"


def test_display_event_is_durable_and_idempotent_by_id(tmp_path, monkeypatch):
    with AgentProcess(tmp_path / "s") as agent:
        with Sender(agent.listen, "ev") as s:
            s.send(0, encode("SESSION_START", "ev", 0, **START))
            assert s.flush(10)
        req = {"op": "event", "kind": "vitals", "value": {"sys_mmhg": 120}, "id": "a1b2"}
        first = agent.request(req)
        again = agent.request(req)  # a resend after a lost reply
        other = agent.request({**req, "id": "c3d4"})
        bad = agent.request({**req, "id": 7})
        agent.kill()  # no clean shutdown: what was acknowledged was written before the reply
    assert first["ok"] and again["ok"] and again.get("duplicate") and again["event"] == first["event"]
    assert other["ok"] and not bad["ok"] and "id" in bad["error"]
    stored = [e for e in SessionReader(tmp_path / "s" / "ev").events() if e["source"] == "display"]
    assert [e["id"] for e in stored] == ["a1b2", "c3d4"]


def test_an_ended_session_is_exported_to_mrs_bids_automatically(tmp_path):
    with AgentProcess(tmp_path / "s", extra=["--bids", str(tmp_path / "bids")]) as agent:
        assert stream(agent.listen, "auto", 40) == []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if agent.request({"op": "snapshot", "session": "auto"})["status"].get("export") in ("done", "failed"):
                break
            time.sleep(0.5)
        status = agent.request({"op": "snapshot", "session": "auto"})["status"]
    assert status["export"] == "done", agent.log()[-2000:]
    svs = list((tmp_path / "bids").rglob("*_svs.nii.gz"))
    assert len(svs) == 1 and svs[0].stat().st_size > 0
