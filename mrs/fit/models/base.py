"""The interface every lineshape model implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class LineshapeModel(ABC):
    """Per-group time-domain lineshape with parameters `params` (names in `param_names`)."""

    name: str = ""
    param_names: tuple[str, ...] = ()

    @abstractmethod
    def lineshape(self, t_s: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Complex factor multiplying each basis FID of the group."""

    def lineshape32(self, t32: np.ndarray, t2_32: np.ndarray, p: np.ndarray) -> np.ndarray:
        """complex64 lineshape for the hot path (t32 = t, t2_32 = t^2 as float32)."""
        return self.lineshape(t32.astype(float), p).astype(np.complex64)

    @abstractmethod
    def log_derivatives(self, t_s: np.ndarray, p: np.ndarray) -> np.ndarray:
        """(n_params, n_points): d lineshape / d p_k divided by the lineshape."""

    @abstractmethod
    def bounds(self, macromolecule: bool, max_shift_hz: float) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the group's parameters."""

    @abstractmethod
    def initial(self, macromolecule: bool) -> np.ndarray:
        """Starting values before any data-driven guess."""

    def with_shift(self, p: np.ndarray, shift_hz: float) -> np.ndarray:
        """Parameters with the frequency shift (always the first parameter) replaced."""
        q = np.array(p, float)
        q[0] = shift_hz
        return q


def damped_phasor32(t32: np.ndarray, t2_32: np.ndarray, freq_hz: float, rate_per_s: float,
                    gauss_per_s2: float) -> np.ndarray:
    """exp(i 2 pi f t - rate t - gauss t^2) as complex64 via a real exp and cos/sin (3-4x faster
    than a complex exp)."""
    env = np.exp(np.float32(-rate_per_s) * t32 - np.float32(gauss_per_s2) * t2_32)
    ph = np.float32(2 * np.pi * freq_hz) * t32
    out = np.empty(t32.size, np.complex64)
    out.real = env * np.cos(ph)
    out.imag = env * np.sin(ph)
    return out
