"""Agent benchmark: block latency (last transient of a block stored -> result published) and whether
fitting disturbs ingest (sender-side ACK round trip with fitting on vs --no-fit, same run).

A real `mrsmon agent` process; the simulator streams `--protocol` at `--speed` (10 = a transient every
0.2 s, so blocks are fitted as they complete, as at the scanner, instead of piling up).

usage: python bench/bench_agent.py [--protocol quick] [--speed 10]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "support"))
sys.path.insert(0, str(Path(__file__).parent))

from _table import write_table  # noqa: E402
from agent_process import AgentProcess  # noqa: E402

import protocols.sender as sender_mod  # noqa: E402
from protocols.plan import load_plan  # noqa: E402
from simulator.stream import stream_session  # noqa: E402


def collect_results(publish: str, stop: threading.Event, out: list) -> None:
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.linger = 0
    sub.setsockopt(zmq.SUBSCRIBE, b"result")
    sub.connect(publish)
    while not stop.is_set():
        if sub.poll(100):
            _, body = sub.recv_multipart()
            out.append(json.loads(body))
    sub.close(0)


def rtt_probe():
    """Wrap Sender to time each message from first send to its ACK."""
    sent, rtts = {}, []
    orig_first, orig_reply = sender_mod.Sender._first_send, sender_mod.Sender._on_reply

    def first_send(self, seq, frames):
        sent[seq] = time.perf_counter()
        orig_first(self, seq, frames)

    def on_reply(self, frames):
        r = json.loads(frames[0])
        if r.get("type") == "ACK" and r.get("seq") in sent:
            rtts.append(time.perf_counter() - sent.pop(r["seq"]))
        orig_reply(self, frames)

    sender_mod.Sender._first_send, sender_mod.Sender._on_reply = first_send, on_reply
    return rtts, lambda: setattr(sender_mod.Sender, "_first_send", orig_first) or setattr(
        sender_mod.Sender, "_on_reply", orig_reply)


def run_case(root: Path, plan, speed: float, fit: bool) -> dict:
    extra = [] if fit else ["--no-fit"]
    with AgentProcess(root / ("fit" if fit else "nofit"), extra=extra) as agent:
        results, stop = [], threading.Event()
        t = threading.Thread(target=collect_results, args=(agent.publish, stop, results))
        t.start()
        time.sleep(0.5)
        rtts, restore = rtt_probe()
        try:
            report = stream_session(plan, agent.listen, seed=7, speed=speed)
        finally:
            restore()
        deadline = time.monotonic() + 120
        n_expected = plan.n_transients // plan.block_transients
        while fit and sum(not r.get("revision") for r in results) < n_expected and time.monotonic() < deadline:
            time.sleep(0.2)
        stop.set()
        t.join()
    results = [r for r in results if not r.get("revision")]  # revisions (session reference) complete no block
    lat = np.array([r["latency_ms"] for r in results if "latency_ms" in r])
    # block 0 also carries the session start (coil weights and the first reference from the first
    # transients): with blocks as short as that start it lands on the first block's latency
    lat_later = np.array([r["latency_ms"] for r in results if "latency_ms" in r and r["block"] > 0])
    fit_ms = np.array([r["qc"].get("fit_ms", np.nan) for r in results])
    rtt = np.array(rtts) * 1000
    slowest = sorted(((r["latency_ms"], r["block"], r["qc"].get("fit_ms"), r["qc"].get("fit_nfev"))
                      for r in results if "latency_ms" in r), reverse=True)[:3]
    return {"transients": report.transients, "blocks": len(results), "lat": lat, "lat_later": lat_later,
            "fit_ms": fit_ms, "rtt": rtt, "slowest": slowest}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", default="quick")
    ap.add_argument("--speed", type=float, default=10.0)
    ap.add_argument("--out", default="agent", help="results file name under bench/results/")
    args = ap.parse_args()
    plan = load_plan(args.protocol)
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        nofit = run_case(Path(tmp), plan, args.speed, fit=False)
        fit = run_case(Path(tmp), plan, args.speed, fit=True)

    def pct(a, q):
        return float(np.nanpercentile(a, q)) if len(a) else float("nan")

    rows = [
        ["block latency: last transient stored -> result published (ms)", pct(fit["lat"], 50), pct(fit["lat"], 99),
         len(fit["lat"])],
        ["  the same, blocks after the first", pct(fit["lat_later"], 50), pct(fit["lat_later"], 99),
         len(fit["lat_later"])],
        ["  of which the fit itself (qc.fit_ms)", pct(fit["fit_ms"], 50), pct(fit["fit_ms"], 99), len(fit["fit_ms"])],
        ["sender ACK round trip, agent fitting (ms)", pct(fit["rtt"], 50), pct(fit["rtt"], 99), len(fit["rtt"])],
        ["sender ACK round trip, agent --no-fit (ms)", pct(nofit["rtt"], 50), pct(nofit["rtt"], 99),
         len(nofit["rtt"])],
    ]
    ratio = pct(fit["rtt"], 99) / pct(nofit["rtt"], 99)
    write_table(args.out, f"Agent: block latency and ingest under fitting ({plan.name}, "
                         f"{plan.acquisition.coils} coils x {plan.acquisition.points}, block {plan.block_transients}, "
                         f"speed {args.speed:g})", ["measure", "p50", "p99", "n"], rows,
                notes=f"p99 ACK round trip with fitting / without: {ratio:.2f}x (same run). Target: block "
                      "latency p99 < 50 ms. Latency is taken inside the agent (pipeline emit time minus the "
                      "arrival of the transient that completed the block); the inproc hop to PUB is not included.\n"
                      "Slowest blocks (latency ms, block, fit ms, model evaluations): "
                      + "; ".join(f"{lat:.0f} ms block {b} fit {f} ms nfev {n}" for lat, b, f, n in fit["slowest"])
                      + f". Load average at the end: {os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    main()
