"""`mrsmon refit SESSION`: refit a stored session with other settings into a new derivative set."""

from __future__ import annotations


def run(args) -> int:
    from rich.progress import Progress

    from analysis.refit import refit

    with Progress(transient=True) as bar:
        task = bar.add_task("fitting", total=None)
        out = refit(args.session_dir, block=args.block, window=args.window, step=args.step, basis=args.basis,
                    dynamic=args.dynamic, smooth_s=args.smooth_s,
                    progress=lambda done, total: bar.update(task, completed=done, total=total))
    print(f"wrote {out}")
    return 0
