"""Reading the preprocessing cache (prepared.bin) of one session: this checkout against a baseline checkout,
in many short interleaved rounds.

    git archive d1652d8 | tar -x -C /tmp/cache_old      # a plain checkout of the baseline
    python bench/bench_cache_read.py --baseline /tmp/cache_old [--rounds 20] [--reads 30] [--name NAME]

Each checkout writes its own cache (its own format) of the same session (bench_pipeline_cpu.py's: 20 min,
2 coils, seed 3) with its own agent pipeline, once. Then each round reads it in a fresh process of each
checkout, alternating which goes first: one read (the first in the process) and `--reads` more, CPU time
(time.process_time) of each. A round's ratio compares the two processes that ran next to each other, so
a shared machine's load falls on both alike; the summary gives the median over rounds. Written to run on
older checkouts too (it finds `read_cache` and `write_session` wherever they live).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # as every mrsmon command runs
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parents[1]


def _codec():
    try:
        from protocols import prepared_cache as codec
    except ImportError:  # a checkout from before issue 13
        from agent import prepcache as codec
    return codec


def make(folder: Path) -> None:
    """Simulate the session into `folder` and run this code's agent pipeline over it (it writes the cache)."""
    sys.path.insert(0, str(HERE / "tests" / "support"))
    from study_plans import MINI

    from agent.pipeline import Pipeline
    from protocols.plan import plan_from_dict
    try:
        from analysis.simulate_study import write_session
        from protocols import prepared_cache  # noqa: F401  (analysis/ alone may be this checkout's, on the path)
    except ImportError:
        from mrsmon.commands.simulate_study import write_session
    raw = json.loads(json.dumps(MINI))
    raw["timeline"]["duration_min"] = 20.0
    write_session(folder, plan_from_dict(raw), seed=3, coils=2, subject="bench", session_code="ses-01",
                  start_time_ns=0, fit=False)
    sid = json.loads((folder / "session.json").read_text())["session"]
    pipe = Pipeline(lambda topic, obj: None)
    pipe._handle({"kind": "session", "session": sid, "seq": 0, "folder": str(folder)})
    pipe._handle({"kind": "end", "session": sid, "seq": -1, "folder": str(folder)})
    pipe.close()


def read(folder: Path, reads: int) -> dict:
    codec = _codec()
    path = folder / codec.CACHE_NAME
    times = []
    for _ in range(reads + 1):
        t0 = time.process_time()
        _, records, _ = codec.read_cache(path)
        times.append(time.process_time() - t0)
        n = len(records)
        del records
    return {"first_s": times[0], "median_s": statistics.median(times[1:]), "records": n,
            "bytes": path.stat().st_size}


def _run(root: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode:
        raise SystemExit(f"{root}: {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", type=Path, help="a checkout of the commit to compare with")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--reads", type=int, default=30)
    ap.add_argument("--name", default="cache_read")
    ap.add_argument("--make", type=Path, help=argparse.SUPPRESS)   # (a child: write the session here)
    ap.add_argument("--read", type=Path, help=argparse.SUPPRESS)   # (a child: time reading its cache)
    args = ap.parse_args()
    if args.make:
        make(args.make)
        return 0
    if args.read:
        print(json.dumps(read(args.read, args.reads)))
        return 0
    if args.baseline is None:
        ap.error("--baseline is required")
    sides = [("baseline", args.baseline.resolve()), ("this", HERE)]
    with tempfile.TemporaryDirectory() as tmp:
        for side, root in sides:
            _run(root, "--make", str(Path(tmp) / side))
        rows, log = [], []
        for r in range(args.rounds):
            got = {}
            for side, root in (sides if r % 2 == 0 else sides[::-1]):
                load0 = os.getloadavg()[0]
                got[side] = json.loads(_run(root, "--read", str(Path(tmp) / side), "--reads", str(args.reads)))
                log.append(f"round {r + 1} {side}: {json.dumps(got[side])}, load {load0:.1f} -> "
                           f"{os.getloadavg()[0]:.1f}")
            b, t = got["baseline"], got["this"]
            rows.append([r + 1, b["first_s"], t["first_s"], t["first_s"] / b["first_s"],
                         b["median_s"], t["median_s"], t["median_s"] / b["median_s"], os.getloadavg()[0]])
            print(f"round {r + 1}: first {rows[-1][3]:.2f}, median {rows[-1][6]:.2f} (load {rows[-1][7]:.1f})",
                  flush=True)
    return _write(args, rows, log, b, t)


def _write(args, rows: list[list], log: list[str], b: dict, t: dict) -> int:
    med = [statistics.median(r[i] for r in rows) for i in range(1, 7)]
    loads = [r[7] for r in rows]
    lines = [f"# {args.name}: reading prepared.bin, this checkout ({HERE}) vs {args.baseline} "
             f"({time.strftime('%Y-%m-%d %H:%M')}, {args.rounds} interleaved rounds of 1 + {args.reads} reads "
             f"in a fresh process each, load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores)",
             "", f"session: 20 min, 2 coils, {t['records']} records; cache file: baseline {b['bytes']} bytes, "
             f"this {t['bytes']} bytes", "",
             f"{'':<34} {'baseline ms':>12} {'this ms':>10} {'ratio':>7}   (medians over rounds; ratio: of each "
             "round's pair)",
             f"{'first read in the process':<34} {med[0] * 1e3:>12.2f} {med[1] * 1e3:>10.2f} {med[2]:>7.2f}",
             f"{f'median of the next {args.reads} reads':<34} {med[3] * 1e3:>12.2f} {med[4] * 1e3:>10.2f} "
             f"{med[5]:>7.2f}",
             "", "CPU time (time.process_time) of one read_cache call; ratio < 1: this checkout is faster.", "",
             f"{'round':>5} {'first: baseline':>16} {'this':>8} {'ratio':>6} {'median: baseline':>17} {'this':>8} "
             f"{'ratio':>6} {'load':>5}"]
    lines += [f"{r[0]:>5} {r[1] * 1e3:>16.2f} {r[2] * 1e3:>8.2f} {r[3]:>6.2f} {r[4] * 1e3:>17.2f} {r[5] * 1e3:>8.2f} "
              f"{r[6]:>6.2f} {r[7]:>5.1f}" for r in rows]
    lines += ["", *log]
    path = HERE / "bench" / "results" / f"{args.name}.txt"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:9]))
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
