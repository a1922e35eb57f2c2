"""Macromolecule and lipid basis components: a parametrised Gaussian model, or a measured spectrum.

Each component is a sum of Gaussian lines (ppm, FWHM in ppm, area in proton units). Positions and
widths follow the LCModel manual's default simulated MM/lipid components (as recalled; see
docs/physics.md), except that MM20 and MM22 are single lines at the consensus positions 2.04 and
2.26 ppm (Cudalbu et al., NMR Biomed 2021) instead of LCModel's 2.08 + 1.95 and 2.25 ppm (a
0.04-0.06 ppm error there moved Glu/tCr by 8-10 %), and 3.0 ppm is its own MM30, so a fitter can
free them separately. Areas are relative and only matter as a scale (and for the area priors).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrs.basis import WATER_PPM, Basis, BasisError


@dataclass(frozen=True)
class GaussLine:
    ppm: float
    fwhm_ppm: float
    area: float


MM_COMPONENTS: dict[str, tuple[GaussLine, ...]] = {
    "MM09": (GaussLine(0.91, 0.14, 3.0),),
    "MM12": (GaussLine(1.21, 0.15, 2.0),),
    "MM14": (GaussLine(1.43, 0.17, 2.0),),
    "MM17": (GaussLine(1.67, 0.15, 2.0),),
    "MM20": (GaussLine(2.04, 0.15, 1.66),),
    "MM22": (GaussLine(2.26, 0.18, 0.33),),
    "MM30": (GaussLine(3.00, 0.20, 0.40),),
    "Lip09": (GaussLine(0.89, 0.14, 3.0),),
    "Lip13": (GaussLine(1.28, 0.15, 2.0), GaussLine(1.28, 0.089, 2.0)),
    "Lip20": (GaussLine(2.04, 0.15, 1.33), GaussLine(2.25, 0.15, 0.67), GaussLine(2.80, 0.20, 0.87)),
}
DEFAULT_MM = tuple(MM_COMPONENTS)


def gaussian_fid(lines: tuple[GaussLine, ...], cf_mhz: float, dwell_s: float, n_points: int,
                 centre_ppm: float = WATER_PPM) -> np.ndarray:
    """FID of Gaussian lines; fid[0] equals the summed area (NIfTI-MRS convention)."""
    t = np.arange(n_points) * dwell_s
    fid = np.zeros(n_points, complex)
    for ln in lines:
        f_hz = (ln.ppm - centre_ppm) * cf_mhz
        fwhm_hz = ln.fwhm_ppm * cf_mhz
        # FT of a Gaussian of FWHM w (Hz) is exp(-(pi w t)^2 / (4 ln 2)).
        fid += ln.area * np.exp(2j * np.pi * f_hz * t - (np.pi * fwhm_hz * t) ** 2 / (4 * np.log(2)))
    return fid


def mm_basis(cf_mhz: float, dwell_s: float, n_points: int,
             components: list[str] | dict[str, tuple[GaussLine, ...]] | None = None,
             centre_ppm: float = WATER_PPM) -> Basis:
    """Parametrised MM/lipid basis (default: all of MM_COMPONENTS) on the given grid."""
    if components is None:
        comps = dict(MM_COMPONENTS)
    elif isinstance(components, dict):
        comps = {k: tuple(GaussLine(*ln) if not isinstance(ln, GaussLine) else ln for ln in v)
                 for k, v in components.items()}
    else:
        unknown = [c for c in components if c not in MM_COMPONENTS]
        if unknown:
            raise BasisError(f"unknown macromolecule component(s) {', '.join(unknown)}; "
                             f"known: {', '.join(MM_COMPONENTS)}")
        comps = {c: MM_COMPONENTS[c] for c in components}
    if not comps:
        raise BasisError("no macromolecule components requested")
    fids = np.array([gaussian_fid(v, cf_mhz, dwell_s, int(n_points), centre_ppm) for v in comps.values()])
    meta = {"source": "mrsmon parametrised MM/lipid model (Gaussian lines)",
            "components": {k: [[ln.ppm, ln.fwhm_ppm, ln.area] for ln in v] for k, v in comps.items()},
            "protons": {k: float(sum(ln.area for ln in v)) for k, v in comps.items()}}
    return Basis(tuple(comps), fids, float(dwell_s), float(cf_mhz), float(centre_ppm), meta)


def load_measured_mm(path: str | Path, name: str = "MM", dwell_s: float | None = None,
                     n_points: int | None = None, select: str | None = None) -> Basis:
    """A measured macromolecule spectrum from a basis file (LCModel .BASIS or FSL-MRS folder).

    The file must hold exactly one spectrum, or `select` names the one to take. With dwell_s and
    n_points the result is resampled to that grid.
    """
    from mrs.io import read_basis

    b = read_basis(path)
    if select is not None:
        b = b.subset([select])
    elif len(b.names) != 1:
        raise BasisError(f"{path} holds {len(b.names)} spectra ({', '.join(b.names)}); "
                         "a measured MM file must hold one, or pass select=NAME")
    meta = dict(b.meta, source=f"measured macromolecules from {Path(path).name}", original_name=b.names[0])
    if dwell_s is None or n_points is None:
        return Basis((name,), b.fids, b.dwell_s, b.cf_mhz, b.centre_ppm, meta)
    fids = b.resampled(dwell_s, n_points)
    return Basis((name,), np.array(fids), float(dwell_s), b.cf_mhz, b.centre_ppm, meta)


# Soft priors on macromolecule amplitudes (LCModel-style): the area of each MM component relative
# to the 0.9 ppm component, which the data determine well (no metabolite singlet sits under it).
# Without them a broad MM line under a singlet (3.0 ppm under Cr CH3, 3.2 under tCho, 3.9 under
# Cr CH2) takes the singlet's tails and lowers it: the fit cannot tell the two apart at block SNR.
# Ratios (position ppm, area / area at 0.9 ppm, SD) are rounded from measured human MM spectra at
# 3-7T (metabolite-nulled, short TE; Cudalbu et al. NMR Biomed 2021 consensus and the studies it
# reviews), as recalled; the SDs are deliberately generous (about half the value plus 0.1) because
# MM areas vary between subjects, regions, TE and parametrisations.
MM_AREA_PRIORS: tuple[tuple[float, float, float], ...] = (
    (1.21, 0.7, 0.45), (1.43, 0.6, 0.4), (1.67, 0.4, 0.3), (2.04, 1.0, 0.6), (2.26, 0.5, 0.35),
    (2.56, 0.2, 0.2), (3.00, 0.5, 0.35), (3.21, 0.25, 0.2), (3.79, 0.8, 0.5), (3.98, 0.4, 0.3),
)
MM_ANCHOR_PPM = 0.91
# Lipid lines come together (one fatty-acid chain): CH3 (0.9) and allylic/CH2-COO (2.0-2.3)
# relative to CH2 (1.3), by protons per chain, with generous SDs.
LIPID_AREA_PRIORS: tuple[tuple[float, float, float], ...] = ((0.89, 0.2, 0.15), (2.04, 0.35, 0.25))
LIPID_ANCHOR_PPM = 1.28
PRIOR_MATCH_PPM = 0.1  # an entry takes the prior of the table position within this distance


def area_prior_rows(names: list[str] | tuple[str, ...], peak_ppm: np.ndarray,
                    is_lipid: np.ndarray) -> list[tuple[int, int, float, float]]:
    """Prior rows (entry, anchor entry, ratio, SD) for MM/lipid entries given each entry's peak
    position (NaN for metabolites). An entry without a table position within PRIOR_MATCH_PPM,
    or a group without an anchor, gets no prior."""
    rows: list[tuple[int, int, float, float]] = []
    peak_ppm = np.asarray(peak_ppm, float)
    for lipid, table, anchor_ppm in ((False, MM_AREA_PRIORS, MM_ANCHOR_PPM),
                                     (True, LIPID_AREA_PRIORS, LIPID_ANCHOR_PPM)):
        members = [i for i in range(len(names)) if np.isfinite(peak_ppm[i]) and bool(is_lipid[i]) == lipid]
        if not members:
            continue
        anchor = min(members, key=lambda i: abs(peak_ppm[i] - anchor_ppm))
        if abs(peak_ppm[anchor] - anchor_ppm) > PRIOR_MATCH_PPM:
            continue
        for i in members:
            if i == anchor:
                continue
            pos, ratio, sd = min(table, key=lambda r: abs(r[0] - peak_ppm[i]))
            if abs(pos - peak_ppm[i]) <= PRIOR_MATCH_PPM:
                rows.append((i, anchor, ratio, sd))
    return rows
