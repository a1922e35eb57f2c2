"""Noise prewhitening and coil combination (whitened SVD, Rodgers & Robson 2010)."""

from __future__ import annotations

import numpy as np


def noise_covariance(noise: np.ndarray) -> np.ndarray:
    """Coil noise covariance (coils, coils) from noise samples (coils, points) or (n, coils, points)."""
    x = np.asarray(noise, complex)
    x = x.reshape(-1, x.shape[-2], x.shape[-1]).transpose(1, 0, 2).reshape(x.shape[-2], -1)
    x = x - x.mean(axis=1, keepdims=True)
    return (x @ x.conj().T) / max(x.shape[1] - 1, 1)


def noise_from_tail(data: np.ndarray, fraction: float = 0.25) -> np.ndarray:
    """Noise covariance estimated from the last `fraction` of each FID, where signal has decayed."""
    x = np.asarray(data, complex)
    n = x.shape[-1]
    return noise_covariance(x[..., n - max(8, int(n * fraction)):])


def whitening_matrix(cov: np.ndarray) -> np.ndarray:
    """W with W cov W^H = I (inverse Cholesky factor); regularised if cov is near singular."""
    c = np.asarray(cov, complex)
    c = 0.5 * (c + c.conj().T)
    scale = float(np.real(np.trace(c))) / c.shape[0]
    if not scale > 0:
        return np.eye(c.shape[0], dtype=complex)
    try:
        low = np.linalg.cholesky(c + 1e-9 * scale * np.eye(c.shape[0]))
    except np.linalg.LinAlgError:
        low = np.linalg.cholesky(c + 1e-3 * scale * np.eye(c.shape[0]))
    return np.linalg.inv(low)


def svd_weights(reference: np.ndarray, whitening: np.ndarray | None = None,
                n_points: int | None = None) -> np.ndarray:
    """Combination weights w (coils,) such that `w @ data` is the combined FID.

    The coil sensitivities are the first left singular vector of the (whitened) reference's first
    `n_points` samples, where the signal is strongest. The weights are phased so the combined
    reference starts real and positive, and scaled so whitened noise keeps unit variance.
    """
    ref = np.asarray(reference, complex)
    coils, n = ref.shape
    w_mat = np.eye(coils, dtype=complex) if whitening is None else np.asarray(whitening, complex)
    if coils == 1:
        return w_mat[0].copy()
    m = n_points or max(16, n // 8)
    y = w_mat @ ref[:, :m]
    u = np.linalg.svd(y, full_matrices=False)[0][:, 0]
    combined0 = np.vdot(u, y[:, 0])
    if abs(combined0) > 0:
        u = u * np.exp(1j * np.angle(combined0))
    return u.conj() @ w_mat


def combine(data: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Combined FID (points,) from (coils, points)."""
    return np.asarray(weights) @ np.asarray(data)
