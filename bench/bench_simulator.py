"""Simulator throughput: transients generated per second on one core (2048 points; 8 and 32 coils).

Times `SessionSimulator.scans()` alone (session set-up is reported apart), with BLAS held to one
thread. Target: well above real time (0.5 transient/s at TR 2 s); the budget asks > 300/s at 32 coils.
Run: /work/venv/bin/python bench/bench_simulator.py   (writes bench/results/simulator.txt)
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from protocols.plan import load_plan  # noqa: E402
from simulator.forward import SessionSimulator  # noqa: E402

OUT = Path(__file__).parent / "results" / "simulator.txt"
SCANS = 600
REPEATS = 3


def measure(plan_name: str, coils: int) -> tuple[float, float, float]:
    """(set-up s, best transients/s, median transients/s) over REPEATS runs of SCANS scans."""
    plan = load_plan(plan_name)
    SessionSimulator(plan, seed=0, coils=coils)  # warm the basis cache
    t0 = time.perf_counter()
    sim = SessionSimulator(plan, seed=0, coils=coils)
    setup = time.perf_counter() - t0
    rates = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        n = 0
        for _scan in sim.scans():
            n += 1
            if n == SCANS:
                break
        rates.append(n / (time.perf_counter() - t0))
    rates.sort()
    return setup, rates[-1], rates[len(rates) // 2]


def main() -> int:
    rows = []
    for plan_name in ("ketamine-infusion", "motion"):
        for coils in (8, 32):
            setup, best, median = measure(plan_name, coils)
            rows.append((plan_name, coils, setup, best, median))
    lines = ["simulator throughput (one core, 2048 points, complex64 out, first 600 scans incl. prep scans)",
             f"{'plan':<20}{'coils':>6}{'set-up s':>10}{'best tr/s':>11}{'median tr/s':>13}{'x real time':>13}"]
    for plan_name, coils, setup, best, median in rows:
        tr = load_plan(plan_name).acquisition.repetition_time_s
        lines.append(f"{plan_name:<20}{coils:>6}{setup:>10.2f}{best:>11.0f}{median:>13.0f}{median * tr:>13.0f}")
    load = os.getloadavg()
    lines.append(f"load average during the run: {load[0]:.1f} (1 min), {os.cpu_count()} cores; "
                 "BLAS threads 1; other jobs share the machine, so rates vary with load")
    text = "\n".join(lines)
    print(text)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
