"""Off loopback, CURVE is mandatory: only clients whose public key is in the allowed folder deliver data."""

import subprocess
import sys
import time

import pytest
import zmq
import zmq.auth
from agent_process import AgentProcess, free_port
from test_spine_e2e import START, assert_exactly_once, payload

from agent.security import is_loopback, keygen
from protocols.sender import CurveClientKeys, Sender
from protocols.wire import encode, encode_transient

HOST = "127.0.0.2"  # a second loopback address standing in for the scanner network interface


def _can_bind(host):
    import socket

    try:
        with socket.socket() as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _can_bind(HOST), reason=f"{HOST} is not configured on this machine")


def test_is_loopback():
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("tcp://localhost:1") and is_loopback("tcp://[::1]:1")
    assert not is_loopback("tcp://*:5555") and not is_loopback("tcp://0.0.0.0:5555")
    assert not is_loopback("tcp://192.168.1.10:5555")


def test_agent_refuses_to_start_off_loopback_without_keys(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mrsmon", "agent", "--listen", f"tcp://0.0.0.0:{free_port()}",
                          "--sessions", str(tmp_path), "--no-fit"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "CURVE keys are required" in out.stderr and "Traceback" not in out.stderr


def test_allowed_client_delivers_and_unknown_client_is_refused_and_logged(tmp_path):
    keys = tmp_path / "keys"
    keygen(keys, "scanner")
    (tmp_path / "intruder").mkdir()
    zmq.auth.create_certificates(tmp_path / "intruder", "intruder")
    with AgentProcess(tmp_path / "sessions", host=HOST, extra=["--no-fit", "--keys", str(keys)]) as agent:
        # the scanner with an allowed key streams a session
        with Sender(agent.listen, "curve", curve=CurveClientKeys.from_dir(keys)) as s:
            s.send(0, encode("SESSION_START", "curve", 0, **START))
            for seq in range(1, 21):
                s.send(seq, encode_transient("curve", seq, payload(seq), t_ns=1, scan=seq))
            s.send(21, encode("SESSION_END", "curve", 21, t_ns=2))
            assert s.flush(30)
        # an unknown key and a plain (no CURVE) client get nothing through
        pub, sec = zmq.auth.load_certificate(tmp_path / "intruder" / "intruder.key_secret")
        server_pub, _ = zmq.auth.load_certificate(keys / "server.key")
        for curve in (True, False):
            sock = zmq.Context.instance().socket(zmq.DEALER)
            sock.linger = 0
            if curve:
                sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = pub, sec, server_pub
            sock.connect(agent.listen)
            sock.send_multipart(encode("SESSION_START", "intrusion", 0, **START))
            assert sock.poll(2000) == 0, "an unauthorised client got a reply"
            sock.close(0)
        log = agent.log()
    assert_exactly_once(tmp_path / "sessions" / "curve", 20)
    assert not (tmp_path / "sessions" / "intrusion").exists()
    assert "refused a client with an unknown CURVE key" in log


def test_a_busy_port_is_one_line_and_the_agent_exits_even_with_curve_on(tmp_path):
    keys = tmp_path / "keys"
    keygen(keys)
    with AgentProcess(tmp_path / "a", host=HOST, extra=["--no-fit", "--keys", str(keys)]) as first:
        out = subprocess.run([sys.executable, "-m", "mrsmon", "agent", "--listen", first.listen, "--publish",
                              f"tcp://127.0.0.1:{free_port()}", "--control", f"tcp://127.0.0.1:{free_port()}",
                              "--sessions", str(tmp_path / "b"), "--keys", str(keys), "--no-fit"],
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Address already in use" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("link", ["--publish", "--control"])
def test_results_and_control_links_off_loopback_need_keys_too(tmp_path, link):
    out = subprocess.run([sys.executable, "-m", "mrsmon", "agent", "--listen", f"tcp://127.0.0.1:{free_port()}",
                          link, f"tcp://0.0.0.0:{free_port()}", "--sessions", str(tmp_path), "--no-fit"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "CURVE keys are required" in out.stderr and "0.0.0.0" in out.stderr and "Traceback" not in out.stderr


def test_off_loopback_control_and_results_take_only_allowed_keys_and_log_refusals(tmp_path, monkeypatch, caplog):
    """In-process, with loopback sockets standing in for exposed ones (the test binds nothing public)."""
    import logging

    from agent import links as links_mod
    from agent.links import Links

    keys = tmp_path / "keys"
    keygen(keys, "display")
    monkeypatch.setattr(links_mod, "is_loopback", lambda address: False)  # treat every address as exposed
    ctx = zmq.Context()
    caplog.set_level(logging.WARNING, "mrsmon.agent")
    ports = [free_port() for _ in range(3)]
    links = Links(ctx, *(f"tcp://127.0.0.1:{p}" for p in ports), keys=keys)
    display = CurveClientKeys.from_dir(keys, "display")
    try:
        def client(kind, curve):
            s = ctx.socket(kind)
            s.linger = 0
            if curve:
                s.curve_publickey, s.curve_secretkey, s.curve_serverkey = (display.public, display.secret,
                                                                          display.server_public)
            return s

        plain, keyed = client(zmq.DEALER, False), client(zmq.DEALER, True)
        for s in (plain, keyed):
            s.connect(f"tcp://127.0.0.1:{ports[2]}")
            s.send(b'{"op": "ping"}')
        deadline = time.monotonic() + 10
        got = None
        while got is None and time.monotonic() < deadline:
            if links.ctl.poll(100):
                got = links.ctl.recv_multipart()
            for m in links.monitor_sockets:
                if m.poll(0):
                    links.drain_monitors()
        assert got is not None and got[-1] == b'{"op": "ping"}'  # only the keyed client gets through
        links.ctl.send_multipart([got[0], b'{"ok": true}'])
        assert keyed.poll(5000) and not plain.poll(500)
        time.sleep(0.5)
        links.drain_monitors()
        plain.close(0)
        keyed.close(0)
    finally:
        links.close()
        ctx.term()
    assert "refused a client on the control link" in caplog.text
    assert links.refused
