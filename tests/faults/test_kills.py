"""Over a hundred SIGKILLs of the agent and twenty of its pipeline process within one seeded session:
every transient sent is stored once, the session is complete, every block is fitted exactly once in its
latest revision, and no process is left behind."""

import re

import pytest
from fault_tools import kill_session

pytestmark = pytest.mark.slow


def test_a_session_survives_a_hundred_agent_kills_and_twenty_pipeline_kills(tmp_path):
    r = kill_session(tmp_path, agent_kills=100, pipeline_kills=20, seed=11, speed=2.0)
    assert r["agent_kills"] == 100 and r["pipeline_kills"] >= 20, r
    print(f"{r['agent_kills_while_streaming']} of the agent kills while the scanner was streaming")
    assert r["sim_rc"] == 0, r["sim_err"]
    sent = int(re.search(r"sent (\d+) transients", r["sim_out"]).group(1))
    s = r["summary"]
    assert "SESSION_END acknowledged" in r["sim_out"] and " 0 refused" in r["sim_out"]
    assert (s["transients"], s["missing"], s["duplicates"], s["refused"], s["complete"]) == (sent, [], 0, [], True)
    assert r["fits_ok"], r["fits_why"]
    assert s["blocks_fitted"] == r["expected_blocks"], (s, r["log"])
    assert r["orphans"] == [], f"processes left running: {r['orphans']}"
