"""Macromolecule entries as other groups' bases hold them, appended to a truth set's .BASIS.

The truth spectra keep their own MM background (physics.MM_LINES, Behar-type); only the basis
handed to every fitter changes, so a fitter is judged on a basis whose MM model is not the truth's:
- "lcmodel": MM09, MM12, MM14, MM17 and the composite MM20 at the positions, widths and proton
  counts LCModel's manual lists for its simulated macromolecules (no line above 2.1 ppm but the
  small 2.25 and 3.0 ppm parts of MM20);
- "full": those plus single lines under Glu/Gln, tCr and tCho (2.25, 2.61, 2.99, 3.21, 3.75,
  3.86 ppm) and three lipid entries, as fuller MM sets (Osprey-style) have.
Each line is a Gaussian (ppm, FWHM ppm, protons); an entry's FID holds `protons` times one proton
of 1 mM in the basis's units (a fifth of Cr's first point), so amplitudes stay comparable.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from bench.truthset.basis_file import proton_unit, read_lcmodel_basis
from bench.truthset.physics import voigt_fid

_LCMODEL = {
    "MM09": ((0.91, 0.14, 3.0),), "MM12": ((1.21, 0.15, 2.0),), "MM14": ((1.43, 0.17, 2.0),),
    "MM17": ((1.67, 0.15, 2.0),),
    "MM20": ((2.08, 0.15, 1.33), (2.25, 0.2, 0.33), (1.95, 0.15, 0.33), (3.0, 0.2, 0.4)),
}
_FULL = {
    **_LCMODEL,
    "MM22": ((2.25, 0.15, 2.0),), "MM26": ((2.61, 0.2, 1.0),), "MM30": ((2.99, 0.2, 1.5),),
    "MM32": ((3.21, 0.15, 1.0),), "MM37": ((3.75, 0.2, 1.5),), "MM38": ((3.86, 0.2, 1.5),),
    "Lip09": ((0.89, 0.14, 3.0),), "Lip13": ((1.28, 0.15, 2.0), (1.28, 0.089, 2.0)),
    "Lip20": ((2.04, 0.15, 1.33), (2.25, 0.15, 0.67), (2.8, 0.2, 0.87)),
}
MM_STYLES: dict[str, dict[str, tuple[tuple[float, float, float], ...]]] = {"lcmodel": _LCMODEL, "full": _FULL}
CENTRE_PPM = 4.65  # the truth sets' receiver (basis_file.BasisSet)


def entry_fid(lines: tuple[tuple[float, float, float], ...], n_points: int, dwell_s: float, cf_mhz: float,
              unit: float) -> np.ndarray:
    """One entry's FID in the NIfTI-MRS convention (Gaussian lines)."""
    t = np.arange(n_points) * dwell_s
    return sum(protons * unit * voigt_fid(t, (ppm - CENTRE_PPM) * cf_mhz, 0.0, fwhm_ppm * cf_mhz)
               for ppm, fwhm_ppm, protons in lines)


def _number_format(text: str) -> tuple[int, int, int]:
    """(values per row, width, decimals) of the file's FMTBAS, e.g. '(6E13.5)': LCModel reads the
    values with it, so appended entries must use the file's own."""
    m = re.search(r"FMTBAS\s*=\s*'\((\d+)[EeDd](\d+)\.(\d+)\)'", text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else (6, 13, 5)


def _basis_block(name: str, fid: np.ndarray, fmt: tuple[int, int, int]) -> str:
    """A $BASIS namelist and its spectrum: the DFT of the FID in LCModel's (conjugate) convention."""
    per_row, width, decimals = fmt
    spec = np.fft.fft(np.conj(fid))
    values = np.column_stack([spec.real, spec.imag]).ravel()
    rows = ["".join(f"{v:{width}.{decimals}E}" for v in values[i:i + per_row])
            for i in range(0, values.size, per_row)]
    head = (f" $BASIS\n ID = '{name}',\n METABO = '{name}',\n CONC = 1.0,\n TRAMP = 1.0,\n VOLUME = 1.0,\n"
            " ISHIFT = 0 $END\n")
    return head + "\n".join(rows) + "\n"


def write_basis_with_mm(src: Path, dst: Path, style: str) -> Path:
    """`src` .BASIS with the `style` MM entries appended (text otherwise unchanged), written to `dst`."""
    basis = read_lcmodel_basis(src)
    text = Path(src).read_text()
    n = basis.fids.shape[1]
    unit = proton_unit(basis)
    blocks = [_basis_block(name, entry_fid(lines, n, basis.dwell_s, basis.cf_mhz, unit), _number_format(text))
              for name, lines in MM_STYLES[style].items()]
    dst.write_text(text.rstrip("\n") + "\n" + "".join(blocks))
    return dst
