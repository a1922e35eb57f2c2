"""`mrsmon simulate-study`: a simulated crossover study as stored, fitted, blinded session folders
(analysis/simulate_study.py)."""

from __future__ import annotations

import time


def run(args) -> int:
    from rich.progress import Progress

    from analysis.simulate_study import simulate_study

    t0 = time.perf_counter()
    with Progress(transient=True) as bar:
        task = bar.add_task("simulating sessions", total=2 * args.participants)
        truth = simulate_study(args.out, args.participants, args.seed, coils=args.coils, protocol=args.protocol,
                               workers=args.workers,
                               progress=lambda done, total: bar.update(task, completed=done, total=total))
    print(f"wrote {2 * args.participants} sessions, key.tsv and truth.json to {args.out} in "
          f"{time.perf_counter() - t0:.1f} s; simulated condition effect "
          f"{truth['condition_effect']:+.3f} % ({truth['estimand']})")
    return 0
