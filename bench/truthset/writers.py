"""Writers for one truth spectrum: LCModel .RAW and .CONTROL, and NIfTI-MRS."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_raw(path: Path, fid_niftimrs: np.ndarray, cf_mhz: float, te_ms: float, ident: str,
              sequence: str = "PRESS") -> None:
    """LCModel .RAW: $SEQPAR and $NMID namelists, then the FID as (real, imag) lines in LCModel's
    time convention (the complex conjugate of NIfTI-MRS's)."""
    fid = np.conj(np.asarray(fid_niftimrs))
    lines = [" $SEQPAR", f" ECHOT = {te_ms:.2f}", f" HZPPPM = {cf_mhz:.6f}", f" SEQ = '{sequence}'", " $END",
             " $NMID", f" ID = '{ident}', FMTDAT = '(2E16.7)'", " VOLUME = 1.0", " TRAMP = 1.0", " $END"]
    lines += [f"{v.real:16.7E}{v.imag:16.7E}" for v in fid]
    path.write_text("\n".join(lines) + "\n")


def write_control(path: Path, raw: Path, basis: Path, table: Path, n_points: int, dwell_s: float,
                  cf_mhz: float, title: str, nsimul: int | None = None) -> None:
    """LCModel .CONTROL with its defaults (analysis window 0.2-4.0 ppm, its own macromolecules and
    lipids, free phases), no water scaling: the concentrations are ratios' raw material only.
    `nsimul=0`: none of LCModel's own MM/lipids (for a basis that holds a measured MM spectrum)."""
    lines = [" $LCMODL", f" TITLE = '{title}'", " KEY = 210387309", " OWNER = ''", f" NUNFIL = {n_points}",
             f" DELTAT = {dwell_s:.8e}", f" HZPPPM = {cf_mhz:.6f}", f" FILBAS = '{basis}'",
             f" FILRAW = '{raw}'", f" FILTAB = '{table}'", " LTABLE = 7", " LPS = 0", " DOWS = F",
             " NEACH = 0"] + ([f" NSIMUL = {nsimul}"] if nsimul is not None else []) + [" $END"]
    path.write_text("\n".join(lines) + "\n")


def write_nifti_mrs(path: Path, fid_niftimrs: np.ndarray, dwell_s: float, cf_mhz: float, te_s: float,
                    conjugate: bool = False, sequence: str = "PRESS") -> None:
    """Single-voxel NIfTI-MRS (data stored as given: `no_conj=True`). `conjugate`: store the
    complex conjugate instead (a file in the other frequency convention, as converters write)."""
    from nifti_mrs.create_nmrs import gen_nifti_mrs

    data = np.asarray(fid_niftimrs, np.complex64)
    if conjugate:
        data = np.conj(data)
    img = gen_nifti_mrs(data.reshape(1, 1, 1, -1), float(dwell_s), float(cf_mhz), no_conj=True)
    img.add_hdr_field("EchoTime", float(te_s))
    img.add_hdr_field("RepetitionTime", 2.0)
    img.add_hdr_field("SequenceName", sequence)
    img.save(str(path))
