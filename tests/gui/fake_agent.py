"""A small stand-in agent speaking SPEC.md section 6 (results PUB + control ROUTER), for link tests.

It lets a test publish exactly the messages it wants, restart "the agent" on the same ports (its
pub_seq starts again at 1, like a new process) and drop a message to make a gap. One thread owns
both sockets; the test talks to it through a queue.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

import zmq


class FakeAgent:
    def __init__(self, pub_port: int = 0, ctl_port: int = 0, session: dict | None = None,
                 plan: dict | None = None, status_every_s: float = 0.2) -> None:
        self.pub_port, self.ctl_port = pub_port, ctl_port
        self.header = session or {"session": "fake-1", "kit_code": "KIT-0001", "repetition_time_s": 2.0,
                                  "start_time_ns": time.time_ns()}
        self.plan = plan or {"measure": "Glu/tCr", "block_transients": 8, "duration_min": 6.0,
                             "phases": [{"name": "baseline", "start_min": 0, "end_min": 1.5},
                                        {"name": "infusion", "start_min": 1.5, "end_min": 5}],
                             "alarms": {"no_data_tr": 3, "drift_hz_per_min": 2.0}}
        self.results: list[dict] = []
        self.events: list[dict] = []
        self.requests: list[dict] = []
        self.status_every_s = status_every_s
        self.pub_seq = 0
        self.transients = 0
        self.skip_next_publish = False
        self._q: queue.Queue[tuple[str, dict]] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def publish_addr(self) -> str:
        return f"tcp://127.0.0.1:{self.pub_port}"

    @property
    def control_addr(self) -> str:
        return f"tcp://127.0.0.1:{self.ctl_port}"

    # ---- test API ----
    def start(self) -> FakeAgent:
        self.pub_seq = 0
        self._stop.clear()
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("fake agent did not start")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def publish_result(self, result: dict) -> None:
        self._q.put(("result", result))

    def publish(self, topic: str, obj: dict) -> None:
        self._q.put((topic, obj))

    # ---- the agent ----
    def _run(self) -> None:
        ctx = zmq.Context()
        pub = ctx.socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        ctl = ctx.socket(zmq.ROUTER)
        ctl.setsockopt(zmq.LINGER, 0)
        self.pub_port = _bind(pub, self.pub_port)
        self.ctl_port = _bind(ctl, self.ctl_port)
        self._ready.set()
        next_status = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_status:
                    self._pub(pub, "status", self._status())
                    next_status = now + self.status_every_s
                while True:
                    try:
                        topic, obj = self._q.get_nowait()
                    except queue.Empty:
                        break
                    if topic == "result":
                        self.results.append({k: v for k, v in obj.items() if k != "spectrum"})
                        self.transients += int(self.plan["block_transients"])
                    if self.skip_next_publish:  # simulate a message the display never sees
                        self.skip_next_publish = False
                        self.pub_seq += 1
                        continue
                    self._pub(pub, topic, obj)
                if ctl.poll(20):
                    frames = ctl.recv_multipart()
                    req = json.loads(frames[-1])
                    self.requests.append(req)
                    ctl.send_multipart([*frames[:-1], json.dumps(self._control(req, pub)).encode()])
        finally:
            pub.close(0)
            ctl.close(0)
            ctx.term()

    def _pub(self, pub: zmq.Socket, topic: str, obj: dict) -> None:
        self.pub_seq += 1
        pub.send_multipart([topic.encode(), json.dumps({**obj, "session": self.header["session"],
                                                        "pub_seq": self.pub_seq}).encode()])

    def _status(self) -> dict:
        return {"link": "receiving", "transients": self.transients, "last_transient_age_s": 0.1,
                "last_block": self.results[-1]["block"] if self.results else None}

    def _control(self, req: dict, pub: zmq.Socket) -> dict[str, Any]:
        op = req.get("op")
        if op == "ping":
            return {"ok": True, "version": "fake"}
        if op == "snapshot":
            return {"ok": True, "session": self.header, "plan": self.plan, "results": list(self.results),
                    "events": list(self.events), "status": self._status(), "last_pub_seq": self.pub_seq}
        if op == "event":
            stored = next((e for e in self.events if req.get("id") and e.get("id") == req["id"]), None)
            if stored is not None:  # as the real agent: an id is stored once
                return {"ok": True, "event": stored, "duplicate": True}
            t_ns = int(req.get("t_ns") or time.time_ns())
            row = {"seq": None, "source": "display", "kind": req["kind"], "t_ns": t_ns,
                   "t_s": (t_ns - self.header["start_time_ns"]) / 1e9, "value": req.get("value") or {},
                   "note": req.get("note", "")}
            if req.get("id"):
                row["id"] = req["id"]
            self.events.append(row)
            self._pub(pub, "event", row)
            return {"ok": True, "event": row}
        if op == "block":
            b = int(req["block"])
            rows = [r for r in self.results if r["block"] == b]
            if not rows:
                return {"ok": False, "error": f"block {b} has not been fitted"}
            spec = {"ppm": [4.0, 3.0, 2.0, 1.0], "data": [0.1, 1.0, 2.0, 0.1], "fit": [0.1, 0.9, 2.1, 0.1],
                    "baseline": [0.0] * 4, "components": {"NAA": [0, 0, 2.0, 0]}}
            return {"ok": True, "result": {**rows[-1], "spectrum": spec}}
        return {"ok": False, "error": f"unknown op {op!r}"}


def _bind(sock: zmq.Socket, port: int) -> int:
    if port:
        for _ in range(50):  # the previous incarnation may still hold the port for a moment
            try:
                sock.bind(f"tcp://127.0.0.1:{port}")
                return port
            except zmq.ZMQError:
                time.sleep(0.05)
        raise RuntimeError(f"port {port} stays busy")
    return sock.bind_to_random_port("tcp://127.0.0.1")
