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
