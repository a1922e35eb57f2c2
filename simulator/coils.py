"""A simulated receive array: complex sensitivities, correlated noise, failures.

Noise model: complex circular Gaussian, E[n n^H] = `noise_cov` per time point. Neighbouring coils
(index i and i+1) are correlated by a random 0.1 to 0.3 (with a small random phase); the matrix is
positive definite by Gershgorin (each row's off-diagonal sum stays below 0.6 of its diagonal).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True, eq=False)
class CoilArray:
    sensitivities: np.ndarray  # complex128 (coils,), signal gain of each coil for the voxel
    noise_cov: np.ndarray      # complex128 (coils, coils), per-sample noise covariance

    @property
    def n(self) -> int:
        return int(self.sensitivities.shape[0])

    def noise_factor(self) -> np.ndarray:
        """L with L L^H = noise_cov, scaled for real and imaginary normals of unit variance."""
        return np.linalg.cholesky(self.noise_cov) * np.sqrt(0.5)

    def optimal_weights(self) -> np.ndarray:
        """w = Psi^-1 s / (s^H Psi^-1 s): combined = w^H y has unit signal gain and least noise."""
        x = np.linalg.solve(self.noise_cov, self.sensitivities)
        return x / np.vdot(self.sensitivities, x)

    def combined_noise_var(self) -> float:
        """Complex noise variance per sample of the optimally combined signal."""
        x = np.linalg.solve(self.noise_cov, self.sensitivities)
        return float(1.0 / np.vdot(self.sensitivities, x).real)

    def failed(self, coil: int, mode: str, noise_factor: float = 20.0) -> CoilArray:
        """The array after `coil` fails: "dead" (no signal, 1e-3 of its noise, uncorrelated) or
        "noisy" (signal kept, noise SD times `noise_factor`, uncorrelated)."""
        if not 0 <= coil < self.n:
            raise ValueError(f"coil failure names coil {coil}, but the array has coils 0..{self.n - 1}")
        if mode not in ("dead", "noisy"):
            raise ValueError(f"coil failure mode {mode!r} unknown: use 'dead' or 'noisy'")
        sens = self.sensitivities.copy()
        cov = self.noise_cov.copy()
        var = cov[coil, coil].real
        cov[coil, :] = 0.0
        cov[:, coil] = 0.0
        if mode == "dead":
            sens[coil] = 0.0
            cov[coil, coil] = var * 1e-6
        else:
            cov[coil, coil] = var * noise_factor ** 2
        return replace(self, sensitivities=sens, noise_cov=cov)


def make_coil_array(n: int, rng: np.random.Generator, corr_range: tuple[float, float] = (0.1, 0.3),
                    magnitude_ratio: float = 10.0) -> CoilArray:
    """Random sensitivities (magnitudes spread log-uniformly over `magnitude_ratio`, random phases)
    and a noise covariance with neighbour correlations in `corr_range` and SDs 0.7 to 1.4."""
    if n < 1:
        raise ValueError("a coil array needs at least one coil")
    if not 0.0 <= corr_range[0] <= corr_range[1] < 0.5:
        raise ValueError("neighbour noise correlation must lie in [0, 0.5)")
    mag = magnitude_ratio ** rng.uniform(-1.0, 0.0, n)
    sens = mag * np.exp(2j * np.pi * rng.uniform(size=n))
    corr = np.eye(n, dtype=complex)
    for i in range(n - 1):
        r = rng.uniform(*corr_range) * np.exp(1j * rng.uniform(-0.3, 0.3))
        corr[i, i + 1] = r
        corr[i + 1, i] = np.conj(r)
    sd = rng.uniform(0.7, 1.4, n)
    cov = corr * np.outer(sd, sd)
    return CoilArray(sens, cov)
