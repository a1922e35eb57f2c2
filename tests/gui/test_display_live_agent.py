"""Live displays against the real `mrsmon agent` fed by `mrsmon simulate` (subprocesses, loopback).

Marked slow: the agent's first block fit waits for its basis simulation, which takes tens of
seconds on a shared 2-core machine. Every process started here is stopped in a `finally`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from agent_process import AgentProcess

from gui.link import AgentLink
from gui.model import SessionModel
from gui.window import MainWindow

pytestmark = pytest.mark.slow
BLOCK_WAIT_MS = 180_000


@pytest.fixture
def agent(tmp_path: Path):
    a = AgentProcess(tmp_path / "sessions", extra=["--log-level", "WARNING"])  # fitting on
    try:
        yield a.start()
    finally:
        a.stop()


def simulate(agent: AgentProcess, transients: int) -> None:
    proc = subprocess.run([sys.executable, "-m", "mrsmon", "simulate", "--connect", agent.listen, "--protocol",
                           "quick", "--speed", "max", "--transients", str(transients), "--seed", "3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def display(qtbot, agent: AgentProcess) -> MainWindow:
    link = AgentLink(agent.publish, agent.control, silence_s=3.0, request_timeout_s=2.0)
    w = MainWindow(SessionModel(live=True), link=link, confirm_events=False)
    qtbot.addWidget(w)
    link.start()
    qtbot.waitUntil(lambda: w.model.link == "live", timeout=10_000)
    return w


def test_curve_grows_and_events_reach_second_display_and_disk(qtbot, agent: AgentProcess) -> None:
    a, b = display(qtbot, agent), display(qtbot, agent)
    try:
        counts: list[int] = []
        a.model.subscribe("results", lambda: counts.append(len(a.model.rows)))
        simulate(agent, transients=21)  # 5 water/noise/dummy scans + 16 = 2 blocks of 8 (quick plan)
        qtbot.waitUntil(lambda: len(a.model.rows) >= 2, timeout=BLOCK_WAIT_MS)
        a.redraw()
        assert counts[:2] == [1, 2]  # one block at a time, as they were fitted
        # the first blocks come before the session reference: open circles, the rest filled
        shown = len(a.main_curve.points.getData()[0]) + len(a.main_curve.provisional.getData()[0])
        assert shown == sum(r.qc.fit_status == "ok" for r in a.model.rows)
        assert len(a.main_curve.provisional.getData()[0]) == sum(
            r.qc.fit_status == "ok" and r.qc.reference == "provisional" for r in a.model.rows)
        a.events.ask_vitals = lambda: {"sys_mmhg": 133, "dia_mmhg": 84, "hr_bpm": 77}
        a.events.buttons["vitals"].click()
        qtbot.waitUntil(lambda: any(e.kind == "vitals" for e in b.model.events), timeout=10_000)
        folder = agent.sessions / a.model.session_id
        stored = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
        vitals = [e for e in stored if e["kind"] == "vitals"]
        assert len(vitals) == 1 and vitals[0]["value"]["hr_bpm"] == 77 and vitals[0]["source"] == "display"
    finally:
        a.close()
        b.close()


def test_agent_restart_leaves_display_reconnected_with_full_history(qtbot, agent: AgentProcess) -> None:
    w = display(qtbot, agent)
    try:
        simulate(agent, transients=21)
        qtbot.waitUntil(lambda: len(w.model.rows) >= 2, timeout=BLOCK_WAIT_MS)
        before = [r.block for r in w.model.rows]
        first_session = w.model.session_id
        agent.stop()
        qtbot.waitUntil(lambda: w.model.link == "lost", timeout=10_000)
        agent.start()
        qtbot.waitUntil(lambda: w.model.link == "live", timeout=20_000)
        assert [r.block for r in w.model.rows] == before
        simulate(agent, transients=13)  # a new session after the restart is followed too
        qtbot.waitUntil(lambda: w.model.session_id != first_session and len(w.model.rows) >= 1,
                        timeout=BLOCK_WAIT_MS)
    finally:
        w.close()


def _simulate_in_background(agent: AgentProcess, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mrsmon", "simulate", "--connect", agent.listen, *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_light_turns_red_when_the_stream_stops(qtbot, agent: AgentProcess) -> None:
    w = display(qtbot, agent)
    sim = _simulate_in_background(agent, "--protocol", "quick", "--speed", "4", "--seed", "5")
    try:
        qtbot.waitUntil(lambda: w.model.status.get("transients", 0) >= 10, timeout=60_000)
        sim.kill()  # the scanner stops mid-session: no SESSION_END
        sim.wait(10)
        # quick: TR 2 s, alarm after 3 TR without a transient
        qtbot.waitUntil(lambda: w.model.light().level == "red" and "No data" in w.model.light().reason, timeout=30_000)
    finally:
        if sim.poll() is None:
            sim.kill()
        w.close()


def test_light_turns_amber_when_drift_exceeds_its_threshold(qtbot, agent: AgentProcess) -> None:
    w = display(qtbot, agent)
    # gradient-heated scenario: 4 Hz/min against the plan's 2 Hz/min limit; paced so the session stays open
    sim = _simulate_in_background(agent, "--protocol", "drift", "--coils", "4", "--speed", "20", "--seed", "5")
    try:
        qtbot.waitUntil(lambda: w.model.light().level == "amber" and "drifting" in w.model.light().reason,
                        timeout=BLOCK_WAIT_MS)
        assert not w.model.ended
    finally:
        sim.kill()
        sim.wait(10)
        w.close()
