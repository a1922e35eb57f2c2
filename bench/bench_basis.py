"""Basis simulation timing: full default set, cold (cache off) and from the disk cache.

    /work/venv/bin/python bench/bench_basis.py        -> prints a table, writes bench/results/basis.txt
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

REPEATS = 5


def _time(fn, repeats: int = REPEATS) -> tuple[float, float]:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), min(runs)


def main() -> str:
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MRSMON_CACHE"] = cache  # never touch the user's cache
        from mrs.basis_sim import DEFAULT_METABOLITES, basis_for_acquisition, simulate_basis
        from mrs.spins import load_spin_table

        load_spin_table()  # parse the table once, outside the timings
        cases = [
            ("3T PRESS TE 30, 19 metabolites, cold (cache off)",
             lambda: simulate_basis(123.2, "press", 0.030, 1 / 4000, 2048, cache=False)),
            ("3T sLASER TE 32, 19 metabolites, cold", lambda: simulate_basis(123.2, "slaser", 0.032, 1 / 4000,
                                                                            2048, cache=False)),
            ("3T STEAM TE 20 TM 10, cold", lambda: simulate_basis(123.2, "steam", 0.020, 1 / 4000, 2048,
                                                                  tm_s=0.010, cache=False)),
            ("7T PRESS TE 30, cold", lambda: simulate_basis(297.2, "press", 0.030, 1 / 6000, 4096, cache=False)),
        ]
        simulate_basis(123.2, "press", 0.030, 1 / 4000, 2048)  # fill the cache
        cases += [
            ("3T PRESS TE 30, from disk cache (2048 pts)",
             lambda: simulate_basis(123.2, "press", 0.030, 1 / 4000, 2048)),
            ("3T PRESS TE 30, from disk cache (8192 pts)",
             lambda: simulate_basis(123.2, "press", 0.030, 1 / 8000, 8192)),
            ("basis_for_acquisition (cached + 10 MM/lipids)",
             lambda: basis_for_acquisition({"spectrometer_frequency_mhz": 123.2, "dwell_time_s": 1 / 4000,
                                            "points": 2048, "echo_time_s": 0.030, "sequence": "PRESS"})),
        ]
        rows = [(name, *_time(fn)) for name, fn in cases]
    width = max(len(r[0]) for r in rows)
    lines = [f"mrsmon basis simulation ({len(DEFAULT_METABOLITES)} metabolites), median/min of {REPEATS} runs",
             f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus (shared), "
             f"load average {os.getloadavg()[0]:.1f} at start, "
             f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}",
             "", f"{'case':<{width}}  {'median s':>9}  {'min s':>7}", "-" * (width + 20)]
    lines += [f"{n:<{width}}  {med:9.3f}  {mn:7.3f}" for n, med, mn in rows]
    text = "\n".join(lines) + "\n"
    out = Path(__file__).resolve().parent / "results" / "basis.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text, end="")
    print(f"wrote {out}")
    return text


if __name__ == "__main__":
    main()
