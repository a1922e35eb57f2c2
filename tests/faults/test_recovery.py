"""A crash right after SESSION_END: the restarted agent finishes the session (every block fitted, the
export written), instead of leaving it ended but half fitted and never exported."""

import json
import os
import signal
import time

import pytest
from agent_process import AgentProcess
from fault_tools import fitted_exactly_once, inspect, simulate, stop, wait_gone, wait_pipeline

pytestmark = pytest.mark.slow
N_TRANSIENTS, BLOCK = 100, 8
EXPECTED_BLOCKS = (N_TRANSIENTS - 5) // BLOCK + (1 if (N_TRANSIENTS - 5) % BLOCK >= BLOCK // 2 else 0)


def test_a_crash_right_after_session_end_is_finished_after_the_restart(tmp_path):
    bids = tmp_path / "bids"
    agent = AgentProcess(tmp_path / "s", extra=["--block", str(BLOCK), "--bids", str(bids)])
    agent.start()
    stopped = sim = None
    try:
        stopped = wait_pipeline(agent.proc.pid)
        os.kill(stopped, signal.SIGSTOP)  # the pipeline falls behind: nothing is fitted yet
        sim = simulate(agent.listen, "end", "--protocol", "quick", "--speed", "max", "--transients",
                       str(N_TRANSIENTS), "--seed", "5")
        out, err = sim.communicate(timeout=300)
        assert sim.returncode == 0, err
        agent.kill()  # right after SESSION_END was acknowledged
        orphans = wait_gone([stopped])
        folder = tmp_path / "s" / "end"
        assert (folder / "end.json").exists() and not (folder / "fits.jsonl").exists()
        agent.start()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            done = json.loads((folder / "processed.json").read_text()) if (folder / "processed.json").exists() else {}
            if done.get("export") in ("done", "failed"):
                break
            time.sleep(0.5)
        log = agent.log()
    finally:
        stop(sim)
        if stopped:
            try:
                os.kill(stopped, signal.SIGKILL)
            except ProcessLookupError:
                pass
        agent.stop()
    assert done.get("fitted") and done.get("export") == "done", log[-3000:]
    s = inspect(folder)
    assert s["complete"] and s["transients"] == N_TRANSIENTS and s["blocks_fitted"] == EXPECTED_BLOCKS
    ok, why = fitted_exactly_once(folder)
    assert ok, why
    assert len(list(bids.rglob("*_svs.nii.gz"))) == 1
    assert "ended but was not finished" in log
    assert orphans == [], "the stopped pipeline process outlived the agent"
