"""The scanner's link under faults, with the real agent and `mrsmon simulate`: packet loss with heartbeats
at real-time speed, a connection cut again and again mid-message, and an agent frozen by SIGSTOP."""

import os
import re
import signal
import threading
import time

import pytest
from agent_process import AgentProcess
from fault_tools import FlappingProxy, inspect, simulate, stop

pytestmark = pytest.mark.slow


def _complete(folder, transients):
    s = inspect(folder)
    assert (s["transients"], s["missing"], s["duplicates"], s["complete"]) == (transients, [], 0, True), s


def test_packet_loss_at_real_time_speed_loses_nothing(tmp_path):
    """The reported case: with heartbeats answered by ACKs carrying the heartbeat's seq, this run lost
    transients and still exited 0."""
    with AgentProcess(tmp_path / "s") as agent:
        sim = simulate(agent.listen, "loss", "--protocol", "quick", "--speed", "1", "--transients", "25",
                       "--fault", "drop=0.2", "--seed", "3")
        try:
            out, err = sim.communicate(timeout=300)
        finally:
            stop(sim)
    assert sim.returncode == 0 and "SESSION_END acknowledged" in out, err
    _complete(tmp_path / "s" / "loss", 25)


def test_a_link_cut_again_and_again_mid_message_loses_nothing(tmp_path):
    with AgentProcess(tmp_path / "s") as agent:
        proxy = FlappingProxy(agent.ports[0], cut_every_s=(0.3, 1.5), seed=2)
        try:
            sim = simulate(proxy.address, "flap", "--protocol", "quick", "--speed", "12", "--transients", "120",
                           "--fault", "flap=0.02", "--fault", "drop=0.05", "--fault", "reorder=0.05", "--seed", "4")
            out, err = sim.communicate(timeout=600)
        finally:
            stop(sim)
            proxy.close()
    assert proxy.cuts >= 5, proxy.cuts
    assert sim.returncode == 0 and "SESSION_END acknowledged" in out, err
    _complete(tmp_path / "s" / "flap", 120)


def test_a_frozen_agent_holds_the_sender_and_loses_nothing(tmp_path):
    with AgentProcess(tmp_path / "s") as agent:
        sim = simulate(agent.listen, "frozen", "--protocol", "quick", "--speed", "12", "--transients", "120",
                       "--seed", "6")

        def freeze():
            for delay_s, frozen_s in ((3.0, 6.0), (3.0, 3.0)):
                time.sleep(delay_s)
                os.kill(agent.proc.pid, signal.SIGSTOP)
                time.sleep(frozen_s)  # longer than the sender's reply timeout: it reconnects meanwhile
                os.kill(agent.proc.pid, signal.SIGCONT)

        t = threading.Thread(target=freeze)
        t.start()
        try:
            out, err = sim.communicate(timeout=600)
        finally:
            t.join()
            stop(sim)
    assert sim.returncode == 0 and "SESSION_END acknowledged" in out, err
    assert int(re.search(r"(\d+) reconnects", out).group(1)) >= 1  # it noticed, and came back
    _complete(tmp_path / "s" / "frozen", 120)
