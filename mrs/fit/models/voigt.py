"""Voigt lineshape: frequency shift, extra Lorentzian and Gaussian broadening (FWHM in Hz)."""

from __future__ import annotations

import numpy as np

from mrs.fit.models.base import LineshapeModel, damped_phasor32

# exp(-(pi * g * t)^2 / (4 ln 2)) is a Gaussian line of FWHM g Hz.
_GAUSS_K = np.pi**2 / (4.0 * np.log(2.0))


class VoigtModel(LineshapeModel):
    name = "voigt"
    param_names = ("shift_hz", "lorentz_hz", "gauss_hz")

    def lineshape(self, t_s: np.ndarray, p: np.ndarray) -> np.ndarray:
        shift, lor, gauss = p
        return np.exp((2j * np.pi * shift - np.pi * lor) * t_s - _GAUSS_K * gauss * gauss * t_s * t_s)

    def lineshape32(self, t32: np.ndarray, t2_32: np.ndarray, p: np.ndarray) -> np.ndarray:
        shift, lor, gauss = p
        return damped_phasor32(t32, t2_32, shift, np.pi * lor, _GAUSS_K * gauss * gauss)

    def log_derivatives(self, t_s: np.ndarray, p: np.ndarray) -> np.ndarray:
        gauss = p[2]
        return np.stack([2j * np.pi * t_s, -np.pi * t_s + 0j, -2.0 * _GAUSS_K * gauss * t_s * t_s + 0j])

    def bounds(self, macromolecule: bool, max_shift_hz: float) -> tuple[np.ndarray, np.ndarray]:
        # Macromolecule spectra come broad (Gaussian) already: only a Lorentzian (their short T2)
        # is added; a free extra Gaussian is nearly degenerate with it and slows convergence.
        if macromolecule:
            return (np.array([-max_shift_hz, 0.0, 0.0]), np.array([max_shift_hz, 25.0, 0.0]))
        return (np.array([-max_shift_hz, 0.0, 0.0]), np.array([max_shift_hz, 40.0, 40.0]))

    def initial(self, macromolecule: bool) -> np.ndarray:
        return np.array([0.0, 8.0, 0.0]) if macromolecule else np.array([0.0, 2.0, 4.0])
