"""Macromolecule lines the fit adds to a basis that lacks them (consensus positions, Gaussian lines)."""

from __future__ import annotations

import numpy as np

from mrs.basis import Basis
from mrs.names import is_macromolecule

# Macromolecule resonances of brain at 3T (consensus of Cudalbu et al., NMR Biomed 2021): ppm and
# Gaussian FWHM in ppm. When no macromolecule entry of a basis peaks within 0.06 ppm of one of these, the
# fitter adds a Gaussian line there (named "MMaux<ppm*100>"): without it the broad signal ends up
# in the metabolites that overlap it (Glu/Gln at 3.75, tCho at 3.2, GSH at 2.55).
AUX_MM_LINES: tuple[tuple[float, float], ...] = (
    (0.91, 0.14), (1.21, 0.15), (1.43, 0.17), (1.67, 0.15), (2.04, 0.15), (2.26, 0.18), (2.56, 0.2),
    (3.00, 0.2), (3.21, 0.16), (3.79, 0.25), (3.98, 0.25),
)


# Above this position the consensus lines are added only when the basis models MM there itself
# (an MM entry peaking above it, as mrsmon's and Osprey-style bases have). A basis without MM,
# or with MM only below it (LCModel's MM09-MM20), gets the lines up to it (0.9-2.04 ppm), as LCModel
# completes such a basis; the broad signal above goes to the baseline. Above 2.1 ppm an MM line of
# free area and position is degenerate with Glu/Gln (2.26 and 3.79 ppm lie 0.05-0.1 ppm from Glu C4
# and C2 and are as broad as a Glu multiplet at 8-12 Hz): on the independent truth set's
# broad-line spectra (bench/truthset, sim-broad-dev) the full table gave Glu/tCr MAPE 20.4 % with
# 4 gross failures, the resolved lines 13.8 % and 2; with LCModel-style MM09-MM20 entries added to
# the basis, 21.4 % and 5 against 12.5 % and 0 (docs/fitting.md, round 5).
AUX_MM_RESOLVED_PPM = 2.1


def complete_macromolecules(basis: Basis, lines: tuple[tuple[float, float], ...] | None = None) -> Basis:
    """The basis plus a Gaussian line at each `lines` position (default: AUX_MM_LINES, only those
    up to AUX_MM_RESOLVED_PPM unless an MM entry of the basis peaks above it) that no single-line
    MM/lipid entry covers (composite entries tie their lines together and cannot stand in for
    one). A basis with a whole MM spectrum (one entry with peaks over more than 2 ppm, e.g. a
    measured, metabolite-nulled MM) is returned unchanged: free lines would compete with it."""
    t = np.arange(basis.n_points) * basis.dwell_s
    freq = np.fft.fftfreq(basis.n_points, basis.dwell_s)
    ppm = basis.centre_ppm + freq / basis.cf_mhz
    # Peaks (local maxima above 30 % of the entry's maximum) of every MM/lipid entry.
    order = np.argsort(ppm)
    peaks = []
    mm_above_resolved = False
    for name, fid in zip(basis.names, basis.fids, strict=True):
        if is_macromolecule(name):
            spec = np.abs(np.fft.fft(fid))[order]
            top = spec.max()
            is_lipid = name.strip().lower().startswith("lip")
            mm_above_resolved |= not is_lipid and ppm[order][int(np.argmax(spec))] > AUX_MM_RESOLVED_PPM
            is_peak = (spec[1:-1] > spec[:-2]) & (spec[1:-1] >= spec[2:]) & (spec[1:-1] > 0.3 * top)
            pk = ppm[order][1:-1][is_peak]
            if pk.size > 1 and np.ptp(pk) > 2.0 and not is_lipid:
                return basis  # a whole MM spectrum (measured, 0.9-4 ppm): nothing to complete
            if is_peak.sum() == 1:  # a composite entry (several lines, fixed ratios) covers nothing
                peaks.append(pk)
    have = np.concatenate(peaks) if peaks else np.zeros(0)
    if lines is None:
        lines = AUX_MM_LINES if mm_above_resolved else tuple(ln for ln in AUX_MM_LINES if ln[0] <= AUX_MM_RESOLVED_PPM)
    names, fids = list(basis.names), [basis.fids]
    for pos, width in lines:
        if have.size and np.min(np.abs(have - pos)) < 0.06:
            continue
        name = f"MMaux{int(round(pos * 100)):03d}"
        f_hz = (pos - basis.centre_ppm) * basis.cf_mhz
        w_hz = width * basis.cf_mhz
        fid = np.exp(2j * np.pi * f_hz * t - (np.pi * w_hz * t) ** 2 / (4 * np.log(2)))
        names.append(name)
        fids.append(fid[None, :])
    if len(names) == len(basis.names):
        return basis
    meta = dict(basis.meta)
    meta["aux_mm"] = names[len(basis.names):]
    return Basis(tuple(names), np.vstack(fids), basis.dwell_s, basis.cf_mhz, basis.centre_ppm, meta)
