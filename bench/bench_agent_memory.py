"""Agent memory over a 2-hour, 32-coil session streamed at full speed (budget: flat, under 300 MB).

Samples the agent process's resident memory (VmRSS from /proc) while a 120-minute variant of the
ketamine-infusion plan streams through it, with fitting on. Prints RSS at each quarter of the session
and the growth per 1000 transients over the second half (flat means about zero).

usage: python bench/bench_agent_memory.py [--minutes 120] [--coils 32] [--no-fit]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "support"))
sys.path.insert(0, str(Path(__file__).parent))

from _table import write_table  # noqa: E402
from agent_process import AgentProcess  # noqa: E402

from protocols.plan import load_plan  # noqa: E402
from simulator.stream import stream_session  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=120.0)
    ap.add_argument("--coils", type=int, default=32)
    ap.add_argument("--no-fit", action="store_true")
    args = ap.parse_args()
    base = load_plan("ketamine-infusion")
    plan = dataclasses.replace(base, duration_min=args.minutes,
                               acquisition=dataclasses.replace(base.acquisition, coils=args.coils))
    samples: list[tuple[float, int, float]] = []  # (wall s, transients sent, RSS MB)
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        with AgentProcess(Path(tmp) / "s", extra=["--no-fit"] if args.no_fit else []) as agent:
            pid = agent.proc.pid
            sent = [0]
            stop = threading.Event()

            def sample():
                t0 = time.monotonic()
                while not stop.is_set():
                    samples.append((time.monotonic() - t0, sent[0], rss_mb(pid)))
                    time.sleep(0.25)

            th = threading.Thread(target=sample)
            th.start()
            t0 = time.monotonic()
            report = stream_session(plan, agent.listen, seed=3, speed=float("inf"),
                                    progress=lambda r, t: sent.__setitem__(0, r.transients))
            wall = time.monotonic() - t0
            time.sleep(2.0)
            stop.set()
            th.join()
            final = rss_mb(pid)
    arr = np.array(samples)
    n = report.transients
    rows = []
    for q in (0.25, 0.5, 0.75, 1.0):
        i = int(np.searchsorted(arr[:, 1], q * n)) if q < 1 else len(arr) - 1
        i = min(i, len(arr) - 1)
        rows.append([f"{int(q * 100)}% of the session", int(arr[i, 1]), float(arr[i, 2])])
    rows.append(["after the end", n, final])
    half = arr[arr[:, 1] >= n / 2]
    slope = np.polyfit(half[:, 1], half[:, 2], 1)[0] * 1000 if len(half) > 3 else float("nan")
    write_table("agent_memory", f"Agent memory: {args.minutes:g}-min session, {args.coils} coils x "
                f"{plan.acquisition.points}, fitting {'off' if args.no_fit else 'on'}, streamed at full speed",
                ["point", "transients", "RSS MB"], rows,
                notes=f"{n} transients in {wall:.0f} s. Peak RSS {arr[:, 2].max():.0f} MB; growth over the second "
                      f"half {slope:+.2f} MB per 1000 transients. Budget: flat, under 300 MB.")


if __name__ == "__main__":
    main()
