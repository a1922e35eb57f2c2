"""The test helper that starts real bridges: a port taken between picking and binding makes it pick
another on a first start; a port the test gave is kept (the error is the bridge's own)."""

import socket

import pytest
from agent_process import _PortTaken, taken_port
from bridge_process import BridgeProcess


def test_a_port_taken_before_the_first_start_is_replaced(tmp_path):
    holder, port = taken_port()
    bridge = BridgeProcess("tcp://127.0.0.1:1", tmp_path / "state")  # no agent needed to listen
    bridge.port = port  # another process took it after it was picked
    try:
        bridge.start()
        assert bridge.port != port and bridge.alive
        with socket.create_connection(("127.0.0.1", bridge.port), timeout=5):
            pass
    finally:
        bridge.stop()
        holder.close()


def test_a_port_given_by_the_test_is_kept(tmp_path):
    holder, port = taken_port()
    bridge = BridgeProcess("tcp://127.0.0.1:1", tmp_path / "state", port=port)
    try:
        with pytest.raises(_PortTaken, match="Address already in use"):
            bridge.start()
        assert bridge.port == port and not bridge.alive
        assert "ResourceWarning" not in bridge.log()  # the refused listener was closed, not dropped
    finally:
        bridge.stop()
        holder.close()
