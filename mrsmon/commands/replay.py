"""`mrsmon replay SOURCE`: stream a stored session, a NIfTI-MRS or MRD file or a vendor file through an agent."""

from __future__ import annotations


def run(args) -> int:
    from rich.progress import Progress

    from analysis.replay import replay
    from mrsmon.commands._common import setup_logging
    from simulator.stream import parse_speed

    setup_logging("INFO")  # conversion notes (what a vendor file held, what was left out) are worth reading
    options = {"water": args.water, "sequence": args.sequence, "tick_ms": args.tick_ms, "conjugate": args.conjugate,
               "water_flags": tuple(f.upper() for f in args.water_flag) if args.water_flag else None}

    speed = parse_speed(args.speed)
    with Progress(transient=True) as bar:
        task = bar.add_task("replaying transients", total=None)
        report = replay(args.source, args.connect, speed=speed, session_id=args.session, source_options=options,
                        progress=lambda done, total: bar.update(task, completed=done, total=total))
    acked = "all acknowledged" if report.acknowledged else "NOT all acknowledged"
    print(f"replayed {report.transients} transients and {report.events} events as session {report.session} "
          f"to {args.connect} in {report.wall_s:.1f} s ({acked})")
    if report.refused:
        print(f"refused by the agent: {report.refused}")
    return 0 if report.acknowledged and not report.refused else 1
