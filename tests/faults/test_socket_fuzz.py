"""Over 100,000 hostile messages on the real sockets, in every class (random bytes, broken frames, mutated
fields, NaN and 1e400, deep nesting, huge sequence numbers, path-escaping ids, extra fields, bad payloads,
hostile control requests, oversized frames): each is answered with a code and a reason, the agent stays
up, its memory and open files stay flat, and a normal session afterwards is complete."""

import pytest
from agent_process import AgentProcess
from fault_tools import normal_session, open_fds, oversized, rss_mb, socket_fuzz

from protocols.session_folder import SessionReader

pytestmark = pytest.mark.slow


def test_a_hundred_thousand_hostile_messages_are_each_refused_and_change_nothing(tmp_path):
    with AgentProcess(tmp_path / "s") as agent:
        assert normal_session(agent.listen, "before", 20) == []
        warm = socket_fuzz(agent, unbound=5_000, bound=1_000, control=1_000, seed=1)  # allocator warm-up
        rss0, fds0 = rss_mb(agent.proc.pid), open_fds(agent.proc.pid)
        stats = socket_fuzz(agent, unbound=70_000, bound=15_000, control=20_000, seed=2)
        assert oversized(agent) == 0
        rss1, fds1 = rss_mb(agent.proc.pid), open_fds(agent.proc.pid)
        status = agent.request({"op": "snapshot", "session": "before"})["status"]
        assert normal_session(agent.listen, "after", 50) == []
        assert agent.proc.poll() is None
    print(f"fuzzed {warm['sent'] + stats['sent']} messages; agent RSS {rss0:.1f} -> {rss1:.1f} MB, "
          f"open files {fds0} -> {fds1}; codes {stats['codes']}")
    assert warm["sent"] + stats["sent"] >= 100_000
    assert stats["bad_replies"] == [] and warm["bad_replies"] == []
    assert stats.get("bound_short", 0) == 0  # every message in the fuzzed session got its reply too
    assert "INTERNAL" not in stats["codes"] and "control:INTERNAL" not in stats["codes"]
    assert "INTERNAL" not in status["refused"] and "INTERNAL" not in status["control_refused"]
    assert rss1 - rss0 < 25, f"agent memory grew {rss0:.1f} -> {rss1:.1f} MB"
    assert fds1 - fds0 <= 4, f"open files {fds0} -> {fds1}"
    for sid, n in (("before", 20), ("after", 50)):
        s = SessionReader(tmp_path / "s" / sid).summary()
        assert (s["transients"], s["missing"], s["duplicates"], s["complete"]) == (n, [], 0, True), s
