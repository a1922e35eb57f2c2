"""Voigt plus one satellite Gaussian: an asymmetric lineshape for skewed B0 field distributions.

L(t) = exp(i 2 pi s t - pi l t - (pi g t)^2 / (4 ln 2)) * (1 + w exp(i 2 pi d t)) / (1 + w)

The satellite (weight w, offset d Hz) lets the common lineshape lean to one side, as in vivo lines
do when the voxel's field distribution is skewed (a plain Voigt then trades Lorentzian wings for a
negative baseline and overestimates every metabolite). L(0) = 1, so areas are unchanged.
"""

from __future__ import annotations

import numpy as np

from mrs.fit.models.base import LineshapeModel

_GAUSS_K = np.pi**2 / (4.0 * np.log(2.0))
MAX_WEIGHT = 0.8  # keeps 1 + w exp(i theta) away from zero


class SkewVoigtModel(LineshapeModel):
    name = "skewvoigt"
    param_names = ("shift_hz", "lorentz_hz", "gauss_hz", "sat_weight", "sat_offset_hz")

    def lineshape(self, t_s: np.ndarray, p: np.ndarray) -> np.ndarray:
        shift, lor, gauss, w, d = p
        base = np.exp((2j * np.pi * shift - np.pi * lor) * t_s - _GAUSS_K * gauss * gauss * t_s * t_s)
        return base * (1.0 + w * np.exp(2j * np.pi * d * t_s)) / (1.0 + w)

    def log_derivatives(self, t_s: np.ndarray, p: np.ndarray) -> np.ndarray:
        _, _, gauss, w, d = p
        e = np.exp(2j * np.pi * d * t_s)
        den = 1.0 + w * e
        return np.stack([2j * np.pi * t_s, -np.pi * t_s + 0j, -2.0 * _GAUSS_K * gauss * t_s * t_s + 0j,
                         e / den - 1.0 / (1.0 + w), 2j * np.pi * t_s * w * e / den])

    def bounds(self, macromolecule: bool, max_shift_hz: float) -> tuple[np.ndarray, np.ndarray]:
        hi_broad = 25.0 if macromolecule else 40.0
        if macromolecule:  # broad lines: no satellite (fixed at zero weight)
            return (np.array([-max_shift_hz, 0.0, 0.0, 0.0, 0.0]), np.array([max_shift_hz, hi_broad, 0.0, 0.0, 0.0]))
        return (np.array([-max_shift_hz, 0.0, 0.0, 0.0, -12.0]),
                np.array([max_shift_hz, hi_broad, hi_broad, MAX_WEIGHT, 12.0]))

    def initial(self, macromolecule: bool) -> np.ndarray:
        if macromolecule:
            return np.array([0.0, 8.0, 0.0, 0.0, 0.0])
        return np.array([0.0, 2.0, 4.0, 0.1, -3.0])
