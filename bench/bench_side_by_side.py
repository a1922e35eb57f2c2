"""Run benchmarks of this checkout and of another (a baseline commit) side by side, interleaved, in one run.

    git archive d1652d8 | tar -x -C /tmp/main            # a plain checkout of the baseline
    python bench/bench_side_by_side.py --baseline /tmp/main [--rounds 2] [--name pipeline_vs_main]

Each round runs every benchmark once in the baseline and once here, alternating which goes first, so a
shared machine's load falls on both alike. Each checkout runs its own scripts on its own code
(PYTHONPATH = that checkout); a benchmark only this checkout has (bench_pipeline_cpu.py, written to run on
older code too) runs from here on either code. The baseline's own scripts write their usual results files
inside its tree; everything else writes `bench/results/<name>_*.txt` here (the usual files are left alone). The summary,
with every table as printed and the load average around each run, goes to bench/results/<name>.txt.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
# (label, script, arguments, regexes of the summary lines: label -> pattern with groups). A script that only
# this checkout has (written to run on older code too) is run from here for both sides.
OWN_SCRIPTS = {"bench/bench_pipeline_cpu.py"}
BENCHES = [
    ("pipeline", "bench/bench_pipeline_cpu.py", ["--minutes", "20"],
     {"agent pipeline over a 20-min session, cpu s": r"^\s*(\S+)\s+\S+\s+\S+\s+\S+\s+\S+\s+\d+\s+\S+\s*$",
      "refit from raw.log, cpu s": r"^\s*\S+\s+(\S+)\s+\S+\s+\S+\s+\S+\s+\d+\s+\S+\s*$",
      "refit from the cache, cpu s": r"^\s*\S+\s+\S+\s+(\S+)\s+\S+\s+\S+\s+\d+\s+\S+\s*$",
      "cache read after the refits, cpu s": r"^\s*\S+\s+\S+\s+\S+\s+(\S+)\s+\S+\s+\d+\s+\S+\s*$",
      "cache read, median of 50, cpu s": r"^\s*\S+\s+\S+\s+\S+\s+\S+\s+(\S+)\s+\d+\s+\S+\s*$"}),
    ("fit_speed", "bench/bench_fit_speed.py", ["--blocks", "100"],
     {"agent block fit, cpu median ms": r"agent block fit \(session reference held\)\s+(?:\S+\s+){6}(\S+)",
      "agent block fit, cpu p99 ms": r"agent block fit \(session reference held\)\s+(?:\S+\s+){7}(\S+)"}),
    ("agent", "bench/bench_agent.py", ["--protocol", "quick", "--speed", "10"],
     {"block latency p50 ms": r"block latency: last transient stored -> result published \(ms\)\s+(\S+)",
      "block latency p99 ms": r"block latency: last transient stored -> result published \(ms\)\s+\S+\s+(\S+)",
      "fit p50 ms (qc.fit_ms)": r"of which the fit itself \(qc.fit_ms\)\s+(\S+)",
      "ACK round trip p99 ms, fitting": r"sender ACK round trip, agent fitting \(ms\)\s+\S+\s+(\S+)"}),
    ("display", "bench/bench_display.py", [],
     {"112 blocks: new block, update + paint, median ms": r"blocks-112\s+112 update \+ paint \(as live\)\s+(\S+)",
      "3600 points: new block, update + paint, median ms": r"sliding-3600\s+3600 update \+ paint \(as live\)\s+(\S+)",
      "112 blocks: update items only, median ms": r"blocks-112\s+112 new block: update items\s+(\S+)"}),
    ("refit", "bench/bench_refit.py", ["--coils", "2", "--skip-precision"],
     {"agent pipeline over the session s": r"60 min, \d+ coils\s+(?:\S+\s+){3}(\S+)",
      "refit from raw.log, cpu s": r"60 min, \d+ coils\s+(?:\S+\s+){6}(\S+)",
      "refit from the cache, cpu s": r"60 min, \d+ coils\s+(?:\S+\s+){8}(\S+)",
      "reopen from the cache, cpu s": r"60 min, \d+ coils\s+(?:\S+\s+){17}(\S+)"}),
]


def run(root: Path, script: str, args: list[str], out_name: str | None) -> tuple[str, float, float]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    extra = ["--out", out_name] if out_name else []
    load0 = os.getloadavg()[0]
    path = (HERE if script in OWN_SCRIPTS else root) / script
    proc = subprocess.run([sys.executable, str(path), *args, *extra], cwd=root, env=env,
                          capture_output=True, text=True, timeout=1800)
    text = proc.stdout + (f"\n[exit {proc.returncode}] {proc.stderr[-2000:]}" if proc.returncode else "")
    return text, load0, os.getloadavg()[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True, type=Path, help="a checkout of the commit to compare with")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--name", default="side_by_side")
    ap.add_argument("--only", default=None, help="comma-separated benchmark labels (default: all)")
    args = ap.parse_args()
    benches = [b for b in BENCHES if not args.only or b[0] in args.only.split(",")]
    sides = [("baseline", args.baseline.resolve()), ("this", HERE)]
    found: dict[tuple[str, str, str], list[float]] = {}
    log = []
    for r in range(args.rounds):
        for bench, script, bargs, patterns in benches:
            order = sides if r % 2 == 0 else sides[::-1]
            for side, root in order:
                out_name = f"{args.name}_{bench}" if side == "this" or script in OWN_SCRIPTS else None
                if side == "baseline" and out_name:
                    out_name += "_baseline"
                text, l0, l1 = run(root, script, bargs, out_name)
                log.append(f"## round {r + 1}, {bench}, {side} ({root}), load {l0:.1f} -> {l1:.1f}\n{text}")
                for label, pat in patterns.items():
                    m = re.search(pat, text, re.MULTILINE)
                    if m:
                        found.setdefault((bench, label, side), []).append(float(m.group(1)))
                print(f"round {r + 1} {bench} {side}: done (load {l1:.1f})", flush=True)
    lines = [f"# {args.name}: this checkout vs {args.baseline} ({time.strftime('%Y-%m-%d %H:%M')}, "
             f"{args.rounds} interleaved rounds, load average now {os.getloadavg()[0]:.1f} on "
             f"{os.cpu_count()} cores)", "",
             f"{'benchmark':<10} {'measure':<34} {'baseline (each round)':>24} {'this (each round)':>24} "
             f"{'ratio of means':>14} {'ratio of medians':>16}"]
    for bench, _, _, patterns in benches:
        for label in patterns:
            b, t = found.get((bench, label, "baseline"), []), found.get((bench, label, "this"), [])
            ratio = f"{(sum(t) / len(t)) / (sum(b) / len(b)):.2f}" if b and t and sum(b) else "n/a"
            ratio_med = f"{statistics.median(t) / statistics.median(b):.2f}" if b and t and statistics.median(b) \
                else "n/a"
            lines.append(f"{bench:<10} {label:<34} {', '.join(f'{v:g}' for v in b):>24} "
                         f"{', '.join(f'{v:g}' for v in t):>24} {ratio:>14} {ratio_med:>16}")
    lines += ["", "ratio < 1: this checkout is faster. Every table as printed follows.", ""] + log
    path = HERE / "bench" / "results" / f"{args.name}.txt"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:2 + 2 + sum(len(p) for *_, p in benches)]))
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
