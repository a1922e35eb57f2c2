"""`mrsmon report SESSION --out DIR`: a self-contained HTML report (DIR/index.html plus PNG figures)."""

from __future__ import annotations


def run(args) -> int:
    from analysis.report import write_report

    index = write_report(args.session_dir, args.out, derivative=args.derivative)
    print(f"wrote {index}")
    return 0
