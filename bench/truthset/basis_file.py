"""A minimal LCModel .BASIS reader, written separately from mrs.io so that the truth set does not
depend on the reader under test (an error there would otherwise cancel out).

Format: Fortran namelists ($SEQPAR, $BASIS1, then per metabolite $BASIS ... $END) followed by
NDATAB complex values of the metabolite's spectrum (real, imag pairs). The values are the DFT of
the FID in LCModel's time convention, the complex conjugate of NIfTI-MRS's, rolled by ISHIFT.
LCModel itself checks this: data written by writers.py from these FIDs fit with a small shift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Numbers may be glued together in fixed-width Fortran output ("1.2E+00-3.4E-01").
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+)(?:[EeDd][-+]?\d+)?")
_NAMELIST = re.compile(r"\$(\w+)(.*?)\$END", re.S | re.I)


@dataclass(frozen=True)
class BasisSet:
    names: tuple[str, ...]
    fids: np.ndarray          # (n_metabolites, n_points), NIfTI-MRS convention, receiver at 4.65 ppm
    dwell_s: float
    cf_mhz: float
    source: str


def _field(body: str, key: str) -> str | None:
    m = re.search(rf"\b{key}\s*=\s*('([^']*)'|[^,\s$]*)", body, re.I)
    if not m:
        return None
    return m.group(2) if m.group(2) is not None else m.group(1)


def read_lcmodel_basis(path: Path) -> BasisSet:
    text = Path(path).read_text(errors="replace")
    blocks = list(_NAMELIST.finditer(text))
    head = " ".join(b.group(2) for b in blocks if b.group(1).upper() in ("SEQPAR", "BASIS1"))
    dwell = float(_field(head, "BADELT"))
    n = int(_field(head, "NDATAB"))
    cf = float(_field(head, "HZPPPM"))
    names, fids = [], []
    for i, blk in enumerate(blocks):
        if blk.group(1).upper() != "BASIS":
            continue
        end = blocks[i + 1].start() if i + 1 < len(blocks) else len(text)
        values = np.array([float(v.replace("D", "E").replace("d", "e"))
                           for v in _NUMBER.findall(text[blk.end():end])[:2 * n]])
        if values.size < 2 * n:
            raise ValueError(f"{path}: {_field(blk.group(2), 'METABO')} has fewer than {n} points")
        spec = np.roll(values[0::2] + 1j * values[1::2], -int(_field(blk.group(2), "ISHIFT") or 0))
        names.append((_field(blk.group(2), "METABO") or f"m{len(names)}").strip())
        fids.append(np.conj(np.fft.ifft(spec)))
    return BasisSet(tuple(names), np.array(fids), dwell, cf, Path(path).name)


def proton_unit(basis: BasisSet) -> float:
    """One proton of 1 mM in the basis's units: a fifth of Cr's first point (5 non-exchangeable protons)."""
    return abs(basis.fids[basis.names.index("Cr")][0]) / 5.0
