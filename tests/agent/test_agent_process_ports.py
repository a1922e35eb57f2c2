"""The test helper that starts real agents: a port taken between picking and binding (seen in CI as
"Address already in use") makes it pick new ones on a first start, never on a restart."""


import pytest
from agent_process import AgentProcess, _PortTaken, free_port, taken_port


def test_a_port_taken_before_the_first_start_is_replaced(tmp_path):
    holder, port = taken_port()
    agent = AgentProcess(tmp_path / "sessions")
    agent.ports = (port, *agent.ports[1:])  # another process took it after it was picked
    try:
        agent.start()
        assert agent.ports[0] != port and agent.request({"op": "ping"})["ok"]
    finally:
        agent.stop()
        holder.close()


def test_ports_given_by_the_test_are_kept(tmp_path):
    holder, port = taken_port()
    agent = AgentProcess(tmp_path / "sessions", ports=(port, free_port(), free_port()))
    try:
        with pytest.raises(_PortTaken):
            agent.start(attempts=3)
        assert agent.ports[0] == port
    finally:
        agent.stop()
        holder.close()
