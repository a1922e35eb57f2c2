"""The reference sender against a scripted agent (an inproc ROUTER): what it trusts, what it resends."""

import itertools
import json
import time

import pytest
import zmq

from protocols import sender as sender_mod
from protocols.sender import Sender, SenderError
from protocols.wire import encode, encode_reply

_ids = itertools.count()


class ScriptedAgent:
    """A ROUTER on inproc that records what arrives and replies only what a test tells it to."""

    def __init__(self, ctx: zmq.Context):
        self.address = f"inproc://agent-{next(_ids)}"
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.sock.bind(self.address)
        self.peer: bytes | None = None

    def received(self, timeout_s: float = 1.0) -> list[dict]:
        out = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.sock.poll(50):
                if out:
                    break
                continue
            frames = self.sock.recv_multipart()
            self.peer = frames[0]
            out.append(json.loads(frames[1]))
        return out

    def reply(self, type_: str, seq: int, session: str = "s", **fields) -> None:
        assert self.peer is not None
        self.sock.send_multipart([self.peer, *encode_reply(type_, session, seq, **fields)])

    def close(self):
        self.sock.close(0)


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)  # closes what a failed test left open, then terminates


def _pump(s: Sender, seconds: float = 0.3) -> None:
    s.pump(seconds)


def test_an_ack_counts_only_by_its_cumulative_upto_never_by_its_seq(ctx):
    """The old agent answered a HEARTBEAT with an ACK carrying the heartbeat's seq; a sender that trusted
    that seq forgot a transient that was never stored."""
    agent = ScriptedAgent(ctx)
    with Sender(agent.address, "s", context=ctx) as s:
        s.send(0, encode("SESSION_START", "s", 0))
        s.send(1, encode("EVENT", "s", 1))
        s.send(2, encode("EVENT", "s", 2))
        assert [m["seq"] for m in agent.received()] == [0, 1, 2]
        agent.reply("ACK", 2, upto=0, credit=32)  # seq 2 echoed, but only 0 is durable
        _pump(s)
        assert sorted(s.ring) == [1, 2]
        agent.reply("ACK", 2, upto=2, credit=32)
        _pump(s)
        assert not s.ring and s.upto == 2
    agent.close()


def test_a_message_sent_again_after_it_was_durable_leaves_the_ring_on_the_next_ack(ctx):
    """A bridge repeats SESSION_END when a client closes the measurement again; the agent answers with
    the same upto. The old sender kept the repeat in its ring forever (no CLOSE for the client)."""
    agent = ScriptedAgent(ctx)
    with Sender(agent.address, "s", context=ctx) as s:
        s.send(0, encode("SESSION_START", "s", 0))
        s.send(1, encode("SESSION_END", "s", 1, t_ns=1))
        agent.received()
        agent.reply("ACK", 1, upto=1, credit=32)
        _pump(s)
        assert not s.ring and s.upto == 1
        s.send(1, encode("SESSION_END", "s", 1, t_ns=1))  # the same END again
        assert [m["seq"] for m in agent.received()] == [1]
        agent.reply("ACK", 1, upto=1, credit=32)
        _pump(s)
        assert not s.ring
    agent.close()


def test_gap_nack_resends_exactly_the_missing_messages(ctx):
    agent = ScriptedAgent(ctx)
    with Sender(agent.address, "s", context=ctx) as s:
        for seq in range(4):
            s.send(seq, encode("EVENT" if seq else "SESSION_START", "s", seq))
        agent.received()
        agent.reply("ACK", 1, upto=1, credit=32)
        agent.reply("NACK", 4, code="GAP", reason="missing", missing=[[2, 2]])
        _pump(s)
        assert [m["seq"] for m in agent.received()] == [2]
        assert sorted(s.ring) == [2, 3]
    agent.close()


def test_unknown_session_makes_the_sender_introduce_the_session_again(ctx):
    """After an agent restart, a connection must present SESSION_START before the rest."""
    agent = ScriptedAgent(ctx)
    with Sender(agent.address, "s", context=ctx) as s:
        s.send(0, encode("SESSION_START", "s", 0))
        agent.received()
        agent.reply("ACK", 0, upto=0, credit=32)
        _pump(s)
        s.send(1, encode("EVENT", "s", 1))
        s.send(2, encode("EVENT", "s", 2))
        agent.received()
        agent.reply("NACK", 1, code="UNKNOWN_SESSION", reason="not started on this connection")
        _pump(s)
        again = agent.received()
        assert [(m["type"], m["seq"]) for m in again] == [("SESSION_START", 0), ("EVENT", 1), ("EVENT", 2)]
    agent.close()


def test_store_failed_keeps_the_message_and_resends_it_later(ctx, monkeypatch):
    monkeypatch.setattr(sender_mod, "STORE_RETRY_S", 0.2)
    agent = ScriptedAgent(ctx)
    with Sender(agent.address, "s", context=ctx) as s:
        s.send(0, encode("SESSION_START", "s", 0))
        agent.received()
        agent.reply("NACK", 0, code="STORE_FAILED", reason="disk full")
        _pump(s, 0.05)
        assert 0 in s.ring and agent.received(0.1) == []   # not at once
        _pump(s, 0.4)
        assert [m["seq"] for m in agent.received()] == [0]  # but after STORE_RETRY_S
        assert 0 in s.ring and not s.refused
    agent.close()


def test_a_final_refusal_drops_the_message_and_is_reported(ctx):
    agent = ScriptedAgent(ctx)
    with Sender(agent.address, "s", context=ctx) as s:
        s.send(0, encode("SESSION_START", "s", 0))
        s.send(1, encode("EVENT", "s", 1))
        agent.received()
        agent.reply("NACK", 1, code="BAD_FIELD", reason="event kind 'x' is not one of ...")
        agent.reply("ACK", 1, upto=1, credit=32)  # the agent accounts for the refused seq
        _pump(s)
        assert not s.ring and [r["code"] for r in s.refused] == ["BAD_FIELD"]
    agent.close()


def test_session_conflict_stops_the_sender_with_the_reason(ctx):
    agent = ScriptedAgent(ctx)
    with Sender(agent.address, "s", context=ctx) as s:
        s.send(0, encode("SESSION_START", "s", 0))
        agent.received()
        agent.reply("NACK", 0, code="SESSION_CONFLICT", reason="session 's' already exists with different coils")
        with pytest.raises(SenderError, match="SESSION_CONFLICT.*different coils"):
            s.flush(2)
        with pytest.raises(SenderError):
            s.send(1, encode("EVENT", "s", 1))
    agent.close()


def test_replies_for_another_session_or_unreadable_ones_are_ignored(ctx):
    agent = ScriptedAgent(ctx)
    with Sender(agent.address, "s", context=ctx) as s:
        s.send(0, encode("SESSION_START", "s", 0))
        agent.received()
        agent.reply("ACK", 0, session="other", upto=5, credit=1)
        agent.sock.send_multipart([agent.peer, b'{"type": "ACK", "session": "s", "upto": 1e400}'])
        agent.sock.send_multipart([agent.peer, b"[" * 5000])
        _pump(s)
        assert 0 in s.ring and s.credit == sender_mod.INITIAL_CREDIT
    agent.close()


def test_heartbeats_and_liveness_are_checked_while_waiting_not_only_after(ctx):
    """A lost message must be noticed by the next heartbeat after 1 s idle, also inside a long wait
    between scans: the sender looks at its timers while it waits. Unanswered heartbeats mean a dead link."""
    agent = ScriptedAgent(ctx)
    with Sender(agent.address, "s", context=ctx, heartbeat_interval_s=0.2, reply_timeout_s=60.0) as s:
        s.max_sent = 3  # as if 0..3 had been sent before
        s.pump(1.2)
        beats = [m for m in agent.received(0.3) if m["type"] == "HEARTBEAT"]
        assert len(beats) >= 3 and beats[0]["seq"] == 3
        assert s.reconnects >= 1  # three heartbeats without a reply: reconnect
    agent.close()
