"""`mrsmon basis`: simulate a basis set and write it as LCModel .BASIS or an FSL-MRS folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from mrs.basis_sim import simulate_basis
    from mrs.io import write_basis

    if args.bandwidth_hz <= 0 or args.points < 16:
        raise ValueError("--bandwidth-hz must be positive and --points at least 16")
    names = None
    if args.metabolites:
        names = [n.strip() for n in args.metabolites.split(",") if n.strip()]
    basis = simulate_basis(
        field_mhz=args.field_mhz, sequence=args.sequence, te_s=args.te_ms / 1e3,
        dwell_s=1.0 / args.bandwidth_hz, n_points=args.points, metabolites=names,
        te1_s=None if args.te1_ms is None else args.te1_ms / 1e3,
        tm_s=None if args.tm_ms is None else args.tm_ms / 1e3)
    out = Path(args.out)
    write_basis(basis, out)
    kind = "LCModel .BASIS" if out.suffix.lower() == ".basis" else "FSL-MRS folder"
    print(f"wrote {len(basis.names)} spectra ({', '.join(basis.names)}) to {out} as {kind}: "
          f"{args.sequence} TE {args.te_ms:g} ms, {args.field_mhz:g} MHz, {args.points} points, "
          f"{args.bandwidth_hz:g} Hz")
    return 0
