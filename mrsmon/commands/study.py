"""`mrsmon study ROOT`: per-session summaries, a table and figures; with --key, the crossover analysis."""

from __future__ import annotations

import json


def _fmt(v, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:+.{digits}f}"


def run(args) -> int:
    from analysis.study import _json_default, run_study

    if args.json:
        result = run_study(args.root, args.key, args.scheduler, args.out, derivative=args.derivative)
        print(json.dumps(result, default=_json_default))
        return 0
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("summarising sessions", total=None)
        result = run_study(args.root, args.key, args.scheduler, args.out, derivative=args.derivative,
                           progress=lambda done, total: bar.update(task, completed=done, total=total))
    print(f"{result['sessions']} sessions; table {result['outputs']['table']}, figure {result['outputs']['figure']}")
    ce = result.get("condition_effect")
    if ce:
        print(f"condition effect ({ce['contrast']}, {result['measure']} mean infusion % change): "
              f"{_fmt(ce['estimate'])} [{_fmt(ce['ci95_low'])}, {_fmt(ce['ci95_high'])}] pp, p = {ce['p']:.3g}, "
              f"d_z = {_fmt(ce['dz'])}, n = {ce['n_pairs']} pairs")
        mm = result.get("mixed_model") or {}
        for name, c in (mm.get("coefficients") or {}).items():
            print(f"  LMM {name:<40} {c['estimate']:+.3f} [{c['ci95_low']:+.3f}, {c['ci95_high']:+.3f}] "
                  f"p = {c['p']:.3g}")
    return 0
