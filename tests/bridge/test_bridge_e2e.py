"""Real MRD clients (built on `ismrmrd` / `mrd`) -> `mrsmon bridge mrd` -> a real agent -> disk, through
disconnects, malformed input, a bridge crash and an agent restart. Every process is stopped here."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from agent_process import AgentProcess
from bridge_process import BridgeProcess
from mrd_client import DWELL_US, IDENTITY, TR_MS, Mrd1Client, Scan, mrd1_header, mrd2_stream, session_scans

from protocols.mrd import framing
from protocols.session_folder import SessionReader

KIND_FLAGS = {"noise": {"noise"}, "dummy": {"dummy"}, "water": {"water_ref"}, "metab": set()}


@pytest.fixture
def agent(tmp_path: Path):
    a = AgentProcess(tmp_path / "sessions")
    try:
        yield a.start()
    finally:
        a.stop()


@pytest.fixture
def bridge(tmp_path: Path, agent: AgentProcess):
    b = BridgeProcess(agent.listen, tmp_path / "state")
    try:
        yield b.start()
    finally:
        b.stop()


def connect(bridge: BridgeProcess) -> Mrd1Client:
    return Mrd1Client("127.0.0.1", bridge.port)


def only_session(agent: AgentProcess) -> SessionReader:
    folders = [p for p in agent.sessions.iterdir() if (p / "session.json").exists()]
    assert len(folders) == 1, folders
    return SessionReader(folders[0])


def assert_equals_source(reader: SessionReader, scans: list[Scan]) -> None:
    """Every MRS scan stored once, in order, sample for sample, with its kind, counter and time."""
    s = reader.summary()
    assert s["complete"] and s["missing"] == [] and s["duplicates"] == 0, s
    seqs = list(reader.seqs)
    assert len(seqs) == len(scans)
    for seq, scan in zip(seqs, scans, strict=True):
        assert np.array_equal(reader.transient(seq), scan.data[:, scan.discard_pre:]), f"scan {scan.scan_counter}"
        assert set(reader.flags(seq)) == KIND_FLAGS[scan.kind]
        assert int(reader.index[reader.index["seq"] == seq]["scan"][0]) == scan.scan_counter
        expected_s = (scan.time_stamp - scans[0].time_stamp) * 2.5e-3
        assert reader.t_s(seq) == pytest.approx(expected_s, abs=1e-6)


def wait_for(predicate, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


def test_a_session_arrives_sample_for_sample_and_close_means_durable(bridge, agent, tmp_path):
    scans = session_scans(40, discard_pre=4)
    bad_shape = Scan(1000, "metab", np.ones((3, 2052), np.complex64), scans[-1].time_stamp + 800, 4)
    navigator = Scan(1001, "navigator", np.ones((4, 2052), np.complex64), scans[-1].time_stamp + 900, 4)
    client = connect(bridge)
    client.begin(mrd1_header())
    client.send(scans[:20] + [bad_shape, navigator] + scans[20:])
    replies = client.close_and_wait()
    assert replies[-1] == "CLOSE" and "45 acquisitions durable" in replies[0], replies
    assert "'bad_shape': 1" in replies[0] and "'not_mrs': 1" in replies[0]
    reader = only_session(agent)
    assert_equals_source(reader, scans)  # the two unmappable scans were refused, not stored
    h = reader.header
    assert h["points"] == 2048 and h["coils"] == 4 and h["dwell_time_s"] == pytest.approx(DWELL_US * 1e-6)
    assert h["repetition_time_s"] == pytest.approx(TR_MS / 1000) and h["sequence"] == "PRESS"
    stored = b"".join(p.read_bytes() for p in reader.folder.rglob("*") if p.is_file())
    for value in IDENTITY.values():
        assert value.encode() not in stored and value not in bridge.log()
    assert "refused: scan 1000 has 3 channels" in bridge.log() and "(bad_shape; 1 so far)" in bridge.log()


@pytest.mark.parametrize("how", ["resend_all", "resume"])
def test_a_client_that_drops_mid_session_and_comes_back_loses_nothing(bridge, agent, how):
    scans = session_scans(30)
    first = connect(bridge)
    first.begin(mrd1_header())
    first.send(scans[:18])
    wait_for(lambda: "durable" in bridge.log() or len(list(agent.sessions.glob("*/raw.log"))) == 1)
    first.abort()  # no CLOSE: nothing was acknowledged
    wait_for(lambda: "ended without CLOSE" in bridge.log())
    again = connect(bridge)
    again.begin(mrd1_header())
    again.send(scans if how == "resend_all" else scans[18:])
    replies = again.close_and_wait()
    assert replies[-1] == "CLOSE", replies
    assert_equals_source(only_session(agent), scans)


def test_malformed_and_truncated_messages_are_refused_and_the_bridge_stays_up(bridge, agent):
    garbage = connect(bridge)
    garbage.send_raw(struct.pack("<H", 4242) + b"\x00" * 64)
    replies = garbage.replies()
    assert replies[-1] == "CLOSE" and "refused" in replies[0] and "4242" in replies[0]

    bad_header = connect(bridge)
    bad_header.send_raw(struct.pack("<H", framing.HEADER) + struct.pack("<I", 9) + b"<nothing>")
    assert "does not parse" in bad_header.replies()[0]

    no_tr = connect(bridge)
    no_tr.begin(mrd1_header(measurement_id="no-tr", tr_ms=None))
    assert "no repetition time" in no_tr.replies()[0]

    truncated = connect(bridge)
    truncated.begin(mrd1_header(measurement_id="cut"))
    raw = truncated_acquisition_bytes()
    truncated.send_raw(raw[: len(raw) // 2])
    truncated.sock.shutdown(socket.SHUT_WR)  # the stream ends inside an acquisition
    assert truncated.replies()[-1] == "CLOSE"
    truncated.abort()
    wait_for(lambda: "(truncated)" in bridge.log())
    assert bridge.alive

    scans = session_scans(10)
    good = connect(bridge)
    good.begin(mrd1_header())
    good.send(scans)
    assert good.close_and_wait()[-1] == "CLOSE"
    assert_equals_source(SessionReader(agent.sessions / session_id_in(bridge.log(), last=True)), scans)
    assert "unknown_message" in bridge.log() and "bad_header" in bridge.log()


def truncated_acquisition_bytes() -> bytes:
    from mrd_client import mrd1_acquisition

    return struct.pack("<H", framing.ACQUISITION) + mrd1_acquisition(session_scans(1)[0]).to_bytes()


def session_id_in(log: str, last: bool = False) -> str:
    ids = [line.split("mrsmon session ")[1].split()[0] for line in log.splitlines() if "-> mrsmon session" in line]
    return ids[-1] if last else ids[0]


def test_a_bridge_crash_loses_nothing_the_client_is_told_is_durable(tmp_path, agent):
    scans = session_scans(40)
    bridge = BridgeProcess(agent.listen, tmp_path / "state").start()
    try:
        client = connect(bridge)
        client.begin(mrd1_header())
        client.send(scans[:25])
        wait_for(lambda: len(list(agent.sessions.glob("*/raw.log"))) == 1)
        bridge.kill()  # SIGKILL: whatever was in flight is lost with it, and was never acknowledged
        assert client.replies() == []  # no CLOSE from the bridge: the client knows to send again
        bridge = BridgeProcess(agent.listen, tmp_path / "state", port=bridge.port).start()
        again = connect(bridge)
        again.begin(mrd1_header())
        again.send(scans)
        assert again.close_and_wait()[-1] == "CLOSE"
        assert "resumed from the journal" in bridge.log()
    finally:
        bridge.stop()
    assert_equals_source(only_session(agent), scans)


def test_scans_lost_with_a_crashed_bridge_are_named_and_a_full_resend_completes(tmp_path, agent):
    """The agent is down, so what the bridge journals is not durable; the bridge dies; the client only
    resumes. The bridge cannot deliver what died with it: it names the scans and does not CLOSE."""
    scans = session_scans(30)
    bridge = BridgeProcess(agent.listen, tmp_path / "state").start()
    try:
        client = connect(bridge)
        client.begin(mrd1_header())
        client.send(scans[:10])
        wait_for(lambda: len(list(agent.sessions.glob("*/raw.log"))) == 1)
        agent.kill()
        client.send(scans[10:20])  # journaled and held in the bridge's ring: never durable
        time.sleep(0.5)
        bridge.kill()
        client.abort()
        agent.start()
        bridge = BridgeProcess(agent.listen, tmp_path / "state", port=bridge.port).start()
        resumed = connect(bridge)
        resumed.begin(mrd1_header())
        resumed.send(scans[20:])
        replies = resumed.close_and_wait()
        assert replies and replies[-1] != "CLOSE" and "lost in a bridge restart" in replies[0], replies
        assert not only_session(agent).summary()["complete"]
        again = connect(bridge)
        again.begin(mrd1_header())
        again.send(scans)
        assert again.close_and_wait()[-1] == "CLOSE"
    finally:
        bridge.stop()
    assert_equals_source(only_session(agent), scans)


def test_an_agent_restart_mid_session_delays_the_close_but_loses_nothing(tmp_path, agent, bridge):
    scans = session_scans(40)
    client = connect(bridge)
    client.begin(mrd1_header())
    client.send(scans[:20])
    wait_for(lambda: len(list(agent.sessions.glob("*/raw.log"))) == 1)
    agent.kill()
    client.send(scans[20:])  # the bridge holds these in its resend ring while the agent is down
    time.sleep(1.0)
    agent.start()
    replies = client.close_and_wait()
    assert replies[-1] == "CLOSE" and "45 acquisitions durable" in replies[0], replies
    assert_equals_source(only_session(agent), scans)


def test_mrd2_over_a_socket_and_over_stdin(tmp_path, agent):
    scans = session_scans(12, discard_pre=2)
    with BridgeProcess(agent.listen, tmp_path / "state2", extra=["--mrd2"]) as bridge:
        with socket.create_connection(("127.0.0.1", bridge.port), timeout=60) as s:
            s.sendall(mrd2_stream(scans))
            s.shutdown(socket.SHUT_WR)
            reply = b"".join(iter(lambda: s.recv(65536), b""))
        assert reply.startswith(b"yardl")  # a complete MRD 2 reply stream: everything is durable
    socket_session = only_session(agent)
    assert_equals_source(socket_session, scans)
    assert socket_session.header["sequence"] == "sLASER"

    piped = subprocess.run([sys.executable, "-m", "mrsmon", "bridge", "mrd", "--mrd2", "--listen", "-", "--connect",
                            agent.listen, "--state", str(tmp_path / "state3"), "--subject", "P01", "--conjugate"],
                           input=mrd2_stream(scans[:5], measurement_id="mrd2-stdin"), capture_output=True, timeout=120)
    assert piped.returncode == 0, piped.stderr.decode()[-2000:]
    assert b"5 acquisitions durable" in piped.stderr
    sid = piped.stderr.decode().split("-> mrsmon session ")[1].split()[0]
    stdin_session = SessionReader(agent.sessions / sid)
    assert stdin_session.header["subject"] == "P01"
    for seq, s in zip(stdin_session.seqs, scans[:5], strict=True):  # --conjugate: the other phase convention
        assert np.array_equal(stdin_session.transient(seq), np.conj(s.data[:, s.discard_pre:]))
