"""Residual water: HLSVD (Hankel SVD, Kung's state-space method) on the start of the FID.

Components whose frequency lies in the water band are subtracted over the whole FID. A small Hankel
matrix from the first few hundred points keeps it a few milliseconds.
"""

from __future__ import annotations

import numpy as np

from mrs.basis import WATER_PPM


def hlsvd(fid: np.ndarray, dwell_s: float, n_components: int = 12,
          n_points: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequencies (Hz), damping (1/s, > 0 decays) and complex amplitudes of a sum of damped
    exponentials fitted to the first `n_points` samples."""
    x = np.asarray(fid, complex)
    n = min(n_points, x.size)
    rows = n // 2
    hank = np.lib.stride_tricks.sliding_window_view(x[:n], n - rows + 1)[:rows]
    u = np.linalg.svd(hank, full_matrices=False)[0][:, :n_components]
    z = np.linalg.eigvals(np.linalg.lstsq(u[:-1], u[1:], rcond=None)[0])
    z = z[np.abs(z) > 1e-12]
    t_idx = np.arange(n)
    vander = z[None, :] ** t_idx[:, None]
    amps = np.linalg.lstsq(vander, x[:n], rcond=None)[0]
    log_z = np.log(z) / dwell_s
    return log_z.imag / (2 * np.pi), -log_z.real, amps


def remove_water(fid: np.ndarray, dwell_s: float, cf_mhz: float, centre_ppm: float = WATER_PPM,
                 band_ppm: tuple[float, float] = (4.3, 5.1), n_components: int = 12,
                 n_points: int = 512) -> tuple[np.ndarray, int]:
    """FID with the HLSVD components inside `band_ppm` subtracted, and how many were removed."""
    x = np.asarray(fid, complex)
    freq, damp, amps = hlsvd(x, dwell_s, n_components, n_points)
    ppm = centre_ppm + freq / cf_mhz
    sel = (ppm >= band_ppm[0]) & (ppm <= band_ppm[1]) & (damp > 0)
    if not sel.any():
        return x.copy(), 0
    t = np.arange(x.size) * dwell_s
    model = (amps[sel][None, :] * np.exp(t[:, None] * (2j * np.pi * freq[sel] - damp[sel])[None, :])).sum(1)
    return x - model, int(sel.sum())


def water_dominates(fid: np.ndarray, dwell_s: float, cf_mhz: float, centre_ppm: float = WATER_PPM,
                    factor: float = 2.0) -> bool:
    """True when the residual water peak is `factor` times taller than anything in 1.8-4.2 ppm."""
    x = np.asarray(fid, complex)
    spec = np.abs(np.fft.fft(x))
    ppm = centre_ppm + np.fft.fftfreq(x.size, dwell_s) / cf_mhz
    water = spec[(ppm > 4.3) & (ppm < 5.1)].max(initial=0.0)
    met = spec[(ppm > 1.8) & (ppm < 4.2)].max(initial=0.0)
    return bool(water > factor * met)
