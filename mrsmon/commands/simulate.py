from __future__ import annotations

import sys


def run(args) -> int:
    from mrsmon.commands._common import setup_logging
    from protocols.plan import load_plan
    from protocols.sender import CurveClientKeys, Faults
    from simulator.stream import parse_speed, stream_session

    setup_logging("WARNING")
    plan = load_plan(args.protocol)
    keys = CurveClientKeys.from_dir(args.keys) if args.keys else None

    def progress(report, t_s):
        print(f"\r{report.session}: {report.transients} transients, {report.events} events, "
              f"session time {t_s / 60:5.1f} min", end="", file=sys.stderr, flush=True)

    report = stream_session(plan, args.connect, seed=args.seed, speed=parse_speed(args.speed),
                            max_transients=args.transients, session_id=args.session, kit=args.kit,
                            condition=args.condition, coils=args.coils, keys=keys,
                            faults=Faults.parse(args.fault, seed=args.seed), truth_path=args.truth,
                            progress=progress if args.progress else None)
    if args.progress:
        print(file=sys.stderr)
    print(f"session {report.session}: sent {report.transients} transients and {report.events} events in "
          f"{report.wall_s:.1f} s; {report.resends} resent, {report.reconnects} reconnects, "
          f"{len(report.refused)} refused; SESSION_END {'acknowledged' if report.acknowledged else 'NOT acknowledged'}")
    for r in report.refused[:10]:
        print(f"  refused seq {r.get('seq')}: {r.get('code')}: {r.get('reason')}", file=sys.stderr)
    return 0 if report.acknowledged and not report.refused else 1
