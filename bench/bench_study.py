"""Study analysis time for 52 sessions (26 participants x 2), local processes and a Dask cluster.

    python bench/bench_study.py STUDY_DIR        # a folder written by `mrsmon simulate-study`
    python bench/bench_study.py                  # builds one first (short plan, ~20-70 min on 2 cores)

Times `analysis.study.run_study` (find sessions, per-session summaries in parallel, the crossover
analysis with the mixed model, table and figure) with 1 and 2 local worker processes and on a Dask
LocalCluster (2 worker processes on loopback); also reports the simulated effect against the estimate.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.study import analyse, find_sessions, read_key, run_study, summarise_all  # noqa: E402
from bench._table import write_table  # noqa: E402

SHORT_PLAN = Path(__file__).resolve().parents[1] / "tests" / "analysis" / "data" / "study-short.toml"


def main() -> None:
    if len(sys.argv) > 1:
        study = Path(sys.argv[1])
    else:
        from analysis.simulate_study import simulate_study

        study = Path(tempfile.mkdtemp()) / "study"
        t0 = time.perf_counter()
        simulate_study(study, participants=26, seed=1, protocol=str(SHORT_PLAN))
        print(f"simulated 52 sessions in {time.perf_counter() - t0:.0f} s")
    sessions, key = study / "sessions", study / "key.tsv"
    truth = json.loads((study / "truth.json").read_text())
    paths = find_sessions(sessions)
    rows = []
    for workers in (1, 2):
        t0 = time.perf_counter()
        summaries = summarise_all(paths, workers=workers)
        t_sum = time.perf_counter() - t0
        t0 = time.perf_counter()
        analyse(summaries, read_key(key))
        t_an = time.perf_counter() - t0
        rows.append([f"local, {workers} process(es)", len(paths), round(t_sum, 2), round(t_an, 2),
                     round(t_sum + t_an, 2)])
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        t0 = time.perf_counter()
        summaries = summarise_all(paths, scheduler=cluster.scheduler_address)
        t_sum = time.perf_counter() - t0
    t0 = time.perf_counter()
    analyse(summaries, read_key(key))
    t_an = time.perf_counter() - t0
    rows.append(["dask LocalCluster, 2 workers", len(paths), round(t_sum, 2), round(t_an, 2), round(t_sum + t_an, 2)])
    t0 = time.perf_counter()
    full = run_study(sessions, key, out_dir=Path(tempfile.mkdtemp()))
    rows.append(["run_study (+ table, figure)", len(paths), "", "", round(time.perf_counter() - t0, 2)])
    ce = full["condition_effect"]
    write_table("study", "Study analysis of a simulated crossover (mrsmon study)",
                ["path", "sessions", "summaries_s", "analysis_s", "total_s"], rows,
                notes=f"study: {study} ({truth.get('protocol')}, {truth.get('coils')} coils); analysis = paired "
                      f"test + MixedLM.\nsimulated condition effect {truth['condition_effect']:+.3f} pp; estimate "
                      f"{ce['estimate']:+.3f} [{ce['ci95_low']:+.3f}, {ce['ci95_high']:+.3f}] pp, p = {ce['p']:.2g}, "
                      f"d_z = {ce['dz']:+.2f}, n = {ce['n_pairs']} pairs")


if __name__ == "__main__":
    main()
