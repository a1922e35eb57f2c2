"""Eddy-current correction from the water reference (Klose 1990).

The time-dependent phase of the unsuppressed water FID is removed from each metabolite FID. Its
linear part (a plain frequency offset) is taken out of the correction: frequency is handled by
alignment and the fit, so a receiver that is not centred on water does not shift the metabolites.
"""

from __future__ import annotations

import numpy as np


def eddy_phase(water_fid: np.ndarray, min_rel_amplitude: float = 0.05) -> np.ndarray:
    """Correction phase (rad) per point: the water phase minus its linear trend, held where the
    water signal has decayed into noise."""
    w = np.asarray(water_fid, complex)
    amp = np.abs(w)
    if not amp.max() > 0:
        return np.zeros(w.size)
    phase = np.unwrap(np.angle(w))
    good = amp >= min_rel_amplitude * amp.max()
    last = int(np.nonzero(good)[0].max()) if good.any() else 0
    last = max(last, 1)
    t = np.arange(w.size, dtype=float)
    # The frequency is taken from the later half of the usable signal, where eddy currents have
    # decayed; fitting the whole range would absorb part of the eddy phase into the line.
    first = last // 2
    coef = np.polyfit(t[first: last + 1], phase[first: last + 1], 1, w=amp[first: last + 1])
    resid = phase - np.polyval(coef, t)
    resid[last + 1:] = resid[last]  # beyond the decay the phase is noise: hold the last value
    return resid


def apply_eddy(fid: np.ndarray, phase: np.ndarray) -> np.ndarray:
    return np.asarray(fid) * np.exp(-1j * phase)
