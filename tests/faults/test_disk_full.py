"""The disk fills up mid-session and is freed later: nothing acknowledged is lost (also across a kill
while the disk is full), the display sees a red alarm on the results link, and the agent resumes by
itself once there is space. Runs on a real small filesystem (tmpfs, as root) and with an injected
size-limited writer (any user); each test says which one ran."""

import json
import threading
import time

import pytest
import zmq
from agent_process import AgentProcess
from fault_tools import SmallDisk, agent_command, inspect, simulate, stop

from protocols.session_folder import scan_raw_log

pytestmark = pytest.mark.slow
TRANSIENTS = 120


class AlarmWatch:
    def __init__(self, address: str):
        self.alarms: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(address,), daemon=True)
        self._thread.start()

    def _run(self, address: str) -> None:
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.linger = 0
        sub.setsockopt(zmq.SUBSCRIBE, b"alarm")
        sub.connect(address)
        while not self._stop.is_set():
            if sub.poll(100):
                self.alarms.append(json.loads(sub.recv_multipart()[1]))
        sub.close(0)

    def wait_for(self, level: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(a.get("code") == "STORE_FAILED" and a.get("level") == level for a in self.alarms):
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.mark.parametrize("kind", ["tmpfs", "injected"])
def test_a_full_disk_freed_during_the_session_loses_nothing_acknowledged(tmp_path, kind):
    disk = SmallDisk(tmp_path, size_mb=24, kind=kind)
    try:
        if kind == "tmpfs" and disk.kind != "tmpfs":
            pytest.skip("mounting a tmpfs needs root here; the injected variant covers this machine")
        print(f"disk full on: {disk.kind}")
        _full_disk_session(tmp_path, disk)
    finally:
        disk.close()


def _full_disk_session(tmp_path, disk: SmallDisk) -> None:
    env = disk.env()
    agent = AgentProcess(disk.path / "sessions", extra=["--block", "8"], env=env, command=agent_command(env),
                         log_path=tmp_path / "agent.log")
    watch = sim = None
    try:
        agent.start()
        watch = AlarmWatch(agent.publish)
        time.sleep(0.5)
        disk.fill(leave_bytes=400_000)  # room for about ten 2-coil transients
        sim = simulate(agent.listen, "full", "--protocol", "quick", "--speed", "10", "--transients",
                       str(TRANSIENTS), "--seed", "8", "--coils", "2")
        assert watch.wait_for("red", 90), "no red STORE_FAILED alarm on the results link: " + agent.log()[-2000:]
        time.sleep(2.0)
        agent.kill()  # a crash while the disk is full: the restart must keep every record already ACKed
        agent.start()
        watch.stop()
        watch = AlarmWatch(agent.publish)
        time.sleep(3.0)
        disk.free()
        out, err = sim.communicate(timeout=600)
        assert watch.wait_for("clear", 30), "the alarm was never cleared"
        log = agent.log()
    finally:
        stop(sim)
        if watch:
            watch.stop()
        agent.stop()
    assert sim.returncode == 0 and "SESSION_END acknowledged" in out, err
    assert "STORE_FAILED" in log
    folder = disk.path / "sessions" / "full"
    s = inspect(folder)
    assert (s["transients"], s["missing"], s["duplicates"], s["complete"]) == (TRANSIENTS, [], 0, True), s
    index, valid_end = scan_raw_log(folder / "raw.log")
    assert len(index) == TRANSIENTS and valid_end == (folder / "raw.log").stat().st_size  # no torn bytes kept
