"""`mrsmon replay SOURCE`: stream a stored session or a NIfTI-MRS file through an agent as a scanner would."""

from __future__ import annotations


def run(args) -> int:
    from rich.progress import Progress

    from analysis.replay import replay
    from simulator.stream import parse_speed

    speed = parse_speed(args.speed)
    with Progress(transient=True) as bar:
        task = bar.add_task("replaying transients", total=None)
        report = replay(args.source, args.connect, speed=speed, session_id=args.session,
                        progress=lambda done, total: bar.update(task, completed=done, total=total))
    acked = "all acknowledged" if report.acknowledged else "NOT all acknowledged"
    print(f"replayed {report.transients} transients and {report.events} events as session {report.session} "
          f"to {args.connect} in {report.wall_s:.1f} s ({acked})")
    if report.refused:
        print(f"refused by the agent: {report.refused}")
    return 0 if report.acknowledged and not report.refused else 1
