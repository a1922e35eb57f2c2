"""Ingest benchmark: arrival to fsynced on disk (p50/p99), and sustained throughput over loopback.

Latency is measured inside the agent's ingest step (decode, validate, crc, append, fsync, ACK built)
on the project's disk. Throughput runs a real `mrsmon agent` process and a sender with the default
window, so it includes sockets, the ACK round trip and the credit window.

usage: python bench/bench_ingest.py [--n 600]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "support"))
sys.path.insert(0, str(Path(__file__).parent))

from _table import write_table  # noqa: E402
from agent_process import AgentProcess  # noqa: E402

from agent.ingest import Ingest  # noqa: E402
from protocols.sender import Sender  # noqa: E402
from protocols.wire import encode, encode_transient  # noqa: E402


def start_fields(coils, points):
    return dict(spectrometer_frequency_mhz=123.25, nucleus="1H", dwell_time_s=2.5e-4, points=points, coils=coils,
                echo_time_s=0.03, repetition_time_s=2.0, sequence="PRESS", subject="bench", session_code="ses-01",
                kit_code="KIT-0000", protocol="bench", start_time_ns=1)


def messages(sid, coils, points, n):
    """Encoded lazily (encoding is the scanner's cost, and 600 x 1 MB would not fit comfortably)."""
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((coils, points)) + 1j * rng.standard_normal((coils, points))).astype(np.complex64)
    return (encode_transient(sid, seq, data, t_ns=seq, scan=seq) for seq in range(1, n + 1))


def ingest_latency(coils, points, n, root):
    ing = Ingest(root / f"lat-{coils}-{points}", fsync=True)
    ing.handle(encode("SESSION_START", "lat", 0, **start_fields(coils, points)))
    msgs = messages("lat", coils, points, n)
    lat = []
    for m in msgs:
        t0 = time.perf_counter()
        ing.handle(m)
        lat.append(time.perf_counter() - t0)
    ing.close()
    return np.array(lat) * 1000


def disk_baseline(coils, points, n, root):
    """The floor: append the same number of bytes and fsync, with no protocol at all."""
    import os

    buf = np.zeros(coils * points * 8 + 64, np.uint8).tobytes()
    lat = []
    with open(root / f"base-{coils}-{points}.bin", "ab") as f:
        for _ in range(n):
            t0 = time.perf_counter()
            f.write(buf)
            f.flush()
            os.fsync(f.fileno())
            lat.append(time.perf_counter() - t0)
    return np.array(lat) * 1000


def throughput(coils, points, n, root):
    with AgentProcess(root / f"tp-{coils}-{points}", extra=["--no-fit"]) as agent:
        msgs = messages("tp", coils, points, n)
        with Sender(agent.listen, "tp") as s:
            s.send(0, encode("SESSION_START", "tp", 0, **start_fields(coils, points)))
            s.flush(30)
            t0 = time.perf_counter()
            for seq, m in enumerate(msgs, 1):
                s.send(seq, m)
            s.send(n + 1, encode("SESSION_END", "tp", n + 1, t_ns=2))
            assert s.flush(300)
            return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=600)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        root = Path(tmp)
        for coils, points in ((8, 2048), (8, 4096), (32, 2048), (32, 4096)):
            base = disk_baseline(coils, points, args.n, root)
            lat = ingest_latency(coils, points, args.n, root)
            tps = throughput(coils, points, args.n, root)
            mb = coils * points * 8 / 1e6
            rows.append([f"{coils}x{points}", round(mb, 3), float(np.median(base)), float(np.percentile(base, 99)),
                         float(np.median(lat)), float(np.percentile(lat, 99)),
                         float(np.median(lat) / np.median(base)), tps, tps * mb])
    write_table("ingest", "Ingest: arrival to fsynced (ms) and sustained throughput over loopback",
                ["coils x points", "MB/transient", "disk p50", "disk p99", "ingest p50", "ingest p99",
                 "p50 ratio", "transients/s", "MB/s"], rows,
                notes=f"n = {args.n} transients per row. disk = plain append + fsync of the same bytes (the floor, "
                      "same run, same folder); ingest = Ingest.handle (decode, validate, crc, append, fsync);\n"
                      "throughput = sender -> agent process -> fsync -> ACK, window 64. A scanner at TR 2 s sends "
                      "0.5 transients/s. Targets: p99 < 5 ms, throughput > 500/s.")


if __name__ == "__main__":
    main()
