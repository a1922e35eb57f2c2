"""`mrsmon export SESSION --bids ROOT`: MRS-BIDS (NIfTI-MRS, events, fit derivatives) of one session."""

from __future__ import annotations


def run(args) -> int:
    from analysis.export import export_session

    out = export_session(args.session_dir, args.bids)
    print(f"exported {args.session_dir} to {out}")
    return 0
