"""Lorentzian lineshape: frequency shift and extra Lorentzian broadening only."""

from __future__ import annotations

import numpy as np

from mrs.fit.models.base import LineshapeModel, damped_phasor32


class LorentzianModel(LineshapeModel):
    name = "lorentzian"
    param_names = ("shift_hz", "lorentz_hz")

    def lineshape(self, t_s: np.ndarray, p: np.ndarray) -> np.ndarray:
        shift, lor = p
        return np.exp((2j * np.pi * shift - np.pi * lor) * t_s)

    def lineshape32(self, t32: np.ndarray, t2_32: np.ndarray, p: np.ndarray) -> np.ndarray:
        shift, lor = p
        return damped_phasor32(t32, t2_32, shift, np.pi * lor, 0.0)

    def log_derivatives(self, t_s: np.ndarray, p: np.ndarray) -> np.ndarray:
        return np.stack([2j * np.pi * t_s, -np.pi * t_s + 0j])

    def bounds(self, macromolecule: bool, max_shift_hz: float) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([-max_shift_hz, 0.0]), np.array([max_shift_hz, 40.0]))

    def initial(self, macromolecule: bool) -> np.ndarray:
        return np.array([0.0, 5.0])
