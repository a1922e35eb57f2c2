"""CPU time of the block pipeline on one stored session, as the agent runs it and as refit runs it.

    python bench/bench_pipeline_cpu.py [--minutes 20] [--coils 2] [--reads 50] [--out pipeline_cpu]

A session (the analysis tests' plan, lengthened; seed 3) is simulated into a temporary folder; then, in
this process, single-threaded: the agent's pipeline over the whole session (it opens the folder and
processes every stored transient: stages, cache records, result files), a refit from raw.log, a refit
from the preprocessing cache the pipeline wrote, and reading that cache: once right after the refits (what
a refit pays: a fresh buffer, a process full of objects) and `--reads` times more (their median: the
decoding itself; one ~20 ms read is noise on a shared machine). Written to run on older
checkouts too (it finds `refit` and `write_session` wherever they live), so bench_side_by_side.py can
run it against a baseline commit.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # as every mrsmon command runs
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import write_table  # noqa: E402
from study_plans import MINI  # noqa: E402

from agent.pipeline import Pipeline  # noqa: E402
from protocols.plan import plan_from_dict  # noqa: E402

try:
    from analysis.refit import refit
    from analysis.simulate_study import write_session
    from protocols import prepared_cache as cache_codec
except ImportError:  # a checkout from before issue 13
    from agent.refit import refit

    from agent import prepcache as cache_codec
    from mrsmon.commands.simulate_study import write_session


def _cpu(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--coils", type=int, default=2)
    ap.add_argument("--reads", type=int, default=50, help="cache reads after the first (median reported)")
    ap.add_argument("--out", default="pipeline_cpu")
    args = ap.parse_args()
    raw = json.loads(json.dumps(MINI))
    raw["timeline"]["duration_min"] = args.minutes
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "s"
        write_session(folder, plan_from_dict(raw), seed=3, coils=args.coils, subject="bench", session_code="ses-01",
                      start_time_ns=0, fit=False)
        sid = json.loads((folder / "session.json").read_text())["session"]
        pipe = Pipeline(lambda topic, obj: None)
        t_pipe = _cpu(lambda: (pipe._handle({"kind": "session", "session": sid, "seq": 0, "folder": str(folder)}),
                               pipe._handle({"kind": "end", "session": sid, "seq": -1, "folder": str(folder)})))
        pipe.close()
        t_raw = _cpu(lambda: refit(folder, use_cache=False))
        t_cache = _cpu(lambda: refit(folder))
        t_read = _cpu(lambda: cache_codec.read_cache(folder / cache_codec.CACHE_NAME))
        t_reads = statistics.median(_cpu(lambda: cache_codec.read_cache(folder / cache_codec.CACHE_NAME))
                                    for _ in range(max(args.reads, 1)))
        n_blocks = sum(1 for line in (folder / "fits.jsonl").read_text().splitlines() if line.strip())
    write_table(args.out, f"Block pipeline CPU time, one session ({args.minutes:g} min, {args.coils} coils, block 8)",
                ["agent pipeline over the session s", "refit from raw.log s", "refit from the cache s",
                 "cache read s", f"cache read, median of {args.reads} s", "results stored", "load_1min"],
                [[round(t_pipe, 3), round(t_raw, 3), round(t_cache, 3), round(t_read, 4), round(t_reads, 4),
                  n_blocks, round(os.getloadavg()[0], 1)]],
                notes="CPU seconds of this process (time.process_time), one thread.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
