"""MRD bridge benchmark: MRD message in -> agent ACK back (p50/p99), and sustained acquisitions per second,
beside the direct path (the reliable sender straight to the same agent) in the same run.

Processes: one real `mrsmon agent` (store only: this is the ingest path), one real `mrsmon bridge mrd`,
and this process as both the MRD client (built on `ismrmrd`, as a scanner's would be) and the direct
sender. Clocks: CLOCK_MONOTONIC is system-wide on Linux, so the client's send time and the bridge's
ACK time (its hidden --latency-log) are on one clock.

- latency, direct: encode the transient, send it, wait for its ACK (`Sender.flush`), one at a time;
- latency, bridge: write the ismrmrd acquisition on the socket; the bridge reads, maps, forwards it
  and sees the agent's ACK; paced (one every `--interval-ms`) so nothing queues;
- throughput: N acquisitions as fast as each path takes them, until the last is durable (direct:
  `flush`; bridge: the bridge's CLOSE reply, which it sends only when everything is durable).

usage: python bench/bench_bridge.py [--n 300] [--rounds 2] [--coils 32] [--points 2048]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "support"))
sys.path.insert(0, str(Path(__file__).parent))

from _table import write_table  # noqa: E402
from agent_process import AgentProcess  # noqa: E402
from bridge_process import BridgeProcess  # noqa: E402
from mrd_client import Mrd1Client, Scan, mrd1_header  # noqa: E402

from protocols.mrd.header import Pseudonyms, info_from_mrd1  # noqa: E402
from protocols.sender import Sender  # noqa: E402
from protocols.wire import encode, encode_transient  # noqa: E402

OPENING = 5  # acquisitions of a measurement that wait for the session to open (see the notes)


def payloads(coils: int, points: int, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = (rng.standard_normal((coils, points)) + 1j * rng.standard_normal((coils, points))).astype(np.complex64)
    return [base * np.complex64(1 + k * 1e-3) for k in range(n)]


def start_fields(coils: int, points: int) -> dict:
    return dict(spectrometer_frequency_mhz=123.25, nucleus="1H", dwell_time_s=2.5e-4, points=points, coils=coils,
                echo_time_s=0.03, repetition_time_s=2.0, sequence="PRESS", subject="bench", session_code="ses-01",
                kit_code="KIT-0000", protocol="bench", start_time_ns=time.time_ns())


def direct_latency(agent: AgentProcess, data: list[np.ndarray], sid: str, interval_s: float) -> np.ndarray:
    coils, points = data[0].shape
    lat = []
    with Sender(agent.listen, sid) as s:
        s.send(0, encode("SESSION_START", sid, 0, **start_fields(coils, points)))
        s.flush(30)
        for seq, x in enumerate(data, start=1):
            t0 = time.monotonic()
            s.send(seq, encode_transient(sid, seq, x, t_ns=time.time_ns(), scan=seq))
            s.flush(30)
            lat.append(time.monotonic() - t0)
            s.idle(max(0.0, t0 + interval_s - time.monotonic()))
        s.send(len(data) + 1, encode("SESSION_END", sid, len(data) + 1, t_ns=time.time_ns()))
        s.flush(30)
    return np.array(lat) * 1e3


def direct_throughput(agent: AgentProcess, data: list[np.ndarray], sid: str) -> float:
    coils, points = data[0].shape
    t0 = time.monotonic()
    with Sender(agent.listen, sid) as s:
        s.send(0, encode("SESSION_START", sid, 0, **start_fields(coils, points)))
        for seq, x in enumerate(data, start=1):
            s.send(seq, encode_transient(sid, seq, x, t_ns=time.time_ns(), scan=seq))
        s.send(len(data) + 1, encode("SESSION_END", sid, len(data) + 1, t_ns=time.time_ns()))
        assert s.flush(120), "not all acknowledged"
    return len(data) / (time.monotonic() - t0)


def scans_of(data: list[np.ndarray]) -> list[Scan]:
    return [Scan(k + 1, "metab", x, 40_000_000 + 800 * k) for k, x in enumerate(data)]


def bridge_latency(bridge: BridgeProcess, data: list[np.ndarray], mid: str, interval_s: float) -> list[float]:
    client = Mrd1Client("127.0.0.1", bridge.port)
    client.begin(mrd1_header(measurement_id=mid, coils=data[0].shape[0]))
    sent = []
    for scan in scans_of(data):
        t0 = time.monotonic()
        sent.append(t0)
        client.send([scan])
        time.sleep(max(0.0, t0 + interval_s - time.monotonic()))
    replies = client.close_and_wait()
    assert replies and replies[-1] == "CLOSE", replies
    return sent


def bridge_throughput(bridge: BridgeProcess, data: list[np.ndarray], mid: str) -> float:
    client = Mrd1Client("127.0.0.1", bridge.port)
    t0 = time.monotonic()
    client.begin(mrd1_header(measurement_id=mid, coils=data[0].shape[0]))
    client.send(scans_of(data))
    replies = client.close_and_wait()
    assert replies and replies[-1] == "CLOSE" and f"{len(data)} acquisitions durable" in replies[0], replies
    return len(data) / (time.monotonic() - t0)


def read_latency_log(path: Path) -> dict[str, dict[int, tuple[float, float]]]:
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for line in path.read_text().splitlines():
        sid, seq, t_in, t_ack = line.split()
        out.setdefault(sid, {})[int(seq)] = (float(t_in), float(t_ack))
    return out


def pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--coils", type=int, default=32)
    ap.add_argument("--points", type=int, default=2048)
    ap.add_argument("--interval-ms", type=float, default=50.0)
    args = ap.parse_args()
    interval = args.interval_ms / 1e3
    with tempfile.TemporaryDirectory(prefix="bench-bridge-") as tmp:
        root = Path(tmp)
        agent = AgentProcess(root / "sessions", extra=["--no-fit", "--no-export", "--log-level", "WARNING"])
        lat_log = root / "latency.txt"
        bridge = BridgeProcess(agent.listen, root / "state", extra=["--latency-log", str(lat_log)])
        direct, via, rate_direct, rate_bridge, sent_times = [], [], [], [], {}
        try:
            agent.start()
            bridge.start()
            for r in range(args.rounds):  # interleaved, so drift in the machine's load hits both paths
                data = payloads(args.coils, args.points, args.n, seed=r)
                direct.append(direct_latency(agent, data, f"lat-direct-{r}", interval))
                sent_times[f"lat-bridge-{r}"] = bridge_latency(bridge, data, f"lat-bridge-{r}", interval)
                rate_direct.append(direct_throughput(agent, data, f"tp-direct-{r}"))
                rate_bridge.append(bridge_throughput(bridge, data, f"tp-bridge-{r}"))
        finally:
            bridge.stop()
            agent.stop()
        load = os.getloadavg()
        logged = read_latency_log(lat_log)
        pseudonyms = Pseudonyms((root / "state" / "site.salt").read_bytes())
    internal, first = [], []
    for mid, sent in sent_times.items():
        acks = logged[pseudonyms.session_id(info_from_mrd1(mrd1_header(measurement_id=mid).toXML()))]
        lat = np.array([acks[k + 1][1] - t0 for k, t0 in enumerate(sent)]) * 1e3
        # The first opens the session (the bridge connects to the agent, which creates the session folder);
        # the next few, sent `interval` apart, queue behind it. At a scanner's TR they would not: shown apart.
        first.append(lat[:OPENING].max())
        via.append(lat[OPENING:])
        internal.append(np.array([acks[k + 1][1] - acks[k + 1][0] for k in range(OPENING, len(sent))]) * 1e3)
    d, b, i = np.concatenate(direct), np.concatenate(via), np.concatenate(internal)
    mb = args.coils * args.points * 8 / 1e6
    rows = [
        ["direct: sender -> agent", f"{args.coils}x{args.points}", pct(d, 50), pct(d, 99), d.max(), "",
         float(np.mean(rate_direct))],
        ["bridge: MRD client -> bridge -> agent", f"{args.coils}x{args.points}", pct(b, 50), pct(b, 99), b.max(),
         "", float(np.mean(rate_bridge))],
        ["  of which inside the bridge (read -> ACK)", "", pct(i, 50), pct(i, 99), i.max(), "", ""],
        [f"  first {OPENING} acquisitions of a measurement", "", "", "", float(np.max(first)), "", ""],
        ["bridge adds", "", pct(b, 50) - pct(d, 50), pct(b, 99) - pct(d, 99), "", "< 5 ms p99", ""],
    ]
    notes = (f"n = {args.n} acquisitions x {args.rounds} rounds per path, {mb:.2f} MB each; latency paced one per "
             f"{args.interval_ms:g} ms (no queueing), throughput as fast as each path takes them, until the last "
             "is\ndurable (direct: Sender.flush; bridge: the bridge's CLOSE reply, sent only when all are durable). "
             "One agent (--no-fit: the ingest path, fsync before ACK) serves both paths, interleaved.\n"
             "Latency = message in -> ACK back: direct from encode+send to the ACK at the sender; bridge from the "
             "client writing the ismrmrd acquisition on the socket to the agent's ACK at the bridge\n"
             "(system-wide monotonic clock). The first acquisition of a measurement also opens the session (the "
             f"bridge connects, the agent creates the session folder: ~0.1 s); the first {OPENING}, sent "
             f"{args.interval_ms:g} ms apart,\nqueue behind it (at a scanner's TR they would not): they are left "
             "out of p50/p99 and their maximum has its own row. 'inside the bridge' = whole message read -> ACK "
             "seen.\nA scanner at TR 2 s sends 0.5 acquisitions/s. Load average at the end: "
             f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores, shared with other jobs).")
    write_table("bridge", "MRD bridge: message in -> ACK back (ms) and sustained acquisitions/s, beside the "
                "direct path", ["path", "coils x points", "p50", "p99", "max", "target", "acq/s"], rows, notes)


if __name__ == "__main__":
    main()
