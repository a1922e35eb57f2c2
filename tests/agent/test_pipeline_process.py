"""The pipeline runs in its own process: killing it never touches ingest, and the agent restarts it,
which resumes from disk without refitting or losing blocks."""

import os
import signal
import subprocess
import sys
import time

import pytest
from agent_process import AgentProcess

from protocols.session_folder import SessionReader


def pipeline_child(agent_pid: int) -> int | None:
    # the pipeline child (python -m agent.pipeline_process)
    out = subprocess.run(["pgrep", "-P", str(agent_pid), "-f", "agent.pipeline_process"], capture_output=True,
                         text=True).stdout.split()
    return int(out[0]) if out else None


@pytest.mark.slow
def test_killed_pipeline_process_is_restarted_and_every_block_is_fitted_once(tmp_path):
    with AgentProcess(tmp_path / "s", extra=["--block", "8"]) as agent:
        sim = subprocess.Popen([sys.executable, "-m", "mrsmon", "simulate", "--connect", agent.listen, "--protocol",
                                "quick", "--speed", "30", "--session", "pp", "--transients", "100"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while not (tmp_path / "s" / "pp" / "fits.jsonl").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            child = pipeline_child(agent.proc.pid)
            assert child is not None
            os.kill(child, signal.SIGKILL)
            out, err = sim.communicate(timeout=180)
            assert sim.returncode == 0, err  # ingest never noticed
            expected = (100 - 5) // 8 + (1 if (100 - 5) % 8 >= 4 else 0)
            while len(SessionReader(tmp_path / "s" / "pp").fits()) < expected and time.monotonic() < deadline + 120:
                time.sleep(0.5)
        finally:
            if sim.poll() is None:
                sim.kill()
                sim.wait(10)
        log = agent.log()
    fits = SessionReader(tmp_path / "s" / "pp").fits()
    assert "pipeline process exited" in log
    assert [f["block"] for f in fits] == list(range(expected))
