"""Residual water: HLSVD (Hankel SVD, Kung's state-space method) on the start of the FID.

Components whose frequency lies in the water band are subtracted over the whole FID. A small Hankel
matrix from the first few hundred points keeps it a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrs.basis import WATER_PPM

EDGE_MARGIN_PPM = 0.15   # the fit window ends at least this far below a water line removed from it
DOMINANT_FACTOR = 2.0    # a transient's water this many times taller than its metabolites is removed
TALL_FACTOR = 1.5        # a line near 4 ppm this many times taller than the metabolites is not one of them


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


def _model(freq_hz: np.ndarray, damp: np.ndarray, amps: np.ndarray, n: int, dwell_s: float) -> np.ndarray:
    t = np.arange(n) * dwell_s
    return (amps[None, :] * np.exp(t[:, None] * (2j * np.pi * freq_hz - damp)[None, :])).sum(1)


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
    return x - _model(freq[sel], damp[sel], amps[sel], x.size, dwell_s), int(sel.sum())


def _tall(freq_hz: np.ndarray, damp: np.ndarray, amps: np.ndarray, spec: np.ndarray, dwell_s: float,
          threshold: float) -> np.ndarray:
    """Components whose spectrum peaks above `threshold` (units of an unscaled FFT of the `spec.size`
    points), both as a component and in the data where it sits: a nearly undamped component fitted
    to the first 256 points (one at 3.90 ppm, FWHM 0.1 Hz) extrapolates to a height the data lack."""
    n = spec.size
    per_point = np.maximum(damp, 1e-12) * dwell_s
    height = np.abs(amps) * -np.expm1(-per_point * n) / -np.expm1(-per_point)
    in_data = spec[np.round(freq_hz * dwell_s * n).astype(int) % n]
    return (damp > 0) & (np.minimum(height, in_data) > threshold)


@dataclass(frozen=True)
class WaterRemoved:
    fid: np.ndarray
    removed: int                 # HLSVD components subtracted
    edge_ppm: float | None       # water was removed below the usual band: the fit should stop here


def remove_block_water(fid: np.ndarray, dwell_s: float, cf_mhz: float, centre_ppm: float = WATER_PPM,
                       factor: float = 3.0, tall_factor: float = TALL_FACTOR, n_components: int = 12,
                       n_points: int = 256) -> WaterRemoved:
    """A block average's residual water, wherever it sits between 3.9 and 5.5 ppm.

    Where the water dominates (`water_dominates`: 3x anything in 1.8-4.2 ppm), every component in
    the usual band (4.3-5.1 ppm) is removed, as before. Water lines that test cannot see (at
    3.9-4.4 ppm their own flank is what fills 1.8-4.2 ppm: the ISMRM fitting challenge's dataset 24,
    a second water line) are found among the same components by their height, as a component and in
    the data at its frequency: taller than `tall_factor` times the metabolites (1.8-3.6 ppm), which no
    metabolite line near 4 ppm is (Cr's 3.92 ppm singlet is about half NAA's height). They are
    removed too, and `edge_ppm` says where such a line's core begins: two linewidths (at least
    0.15 ppm) below the lowest of them, since a removed line leaves a residue about its centre. The
    caller ends the fit window there when that is inside it.
    """
    x = np.asarray(fid, complex)
    wet = water_dominates(x, dwell_s, cf_mhz, centre_ppm, factor=factor)
    spec = np.abs(np.fft.fft(x))
    ppm_axis = centre_ppm + np.fft.fftfreq(x.size, dwell_s) / cf_mhz
    metabolites = spec[(ppm_axis > 1.8) & (ppm_axis < 3.6)].max(initial=0.0)
    bin_ppm = 1.0 / (x.size * dwell_s * cf_mhz)  # a component is judged at its nearest bin
    reach = (ppm_axis >= 3.9 - bin_ppm) & (ppm_axis <= 5.5 + bin_ppm)
    if not wet and spec[reach].max(initial=0.0) <= tall_factor * metabolites:
        return WaterRemoved(x, 0, None)  # nothing there could be tall: the HLSVD (~6 ms) is skipped
    freq, damp, amps = hlsvd(x, dwell_s, n_components, n_points)
    ppm = centre_ppm + freq / cf_mhz
    decays = damp > 0
    in_band = decays & (ppm >= 4.3) & (ppm <= 5.1)
    tall = (ppm >= 3.9) & (ppm <= 5.5) & _tall(freq, damp, amps, spec, dwell_s, tall_factor * metabolites)
    sel = (in_band & wet) | tall
    if not sel.any():
        return WaterRemoved(x, 0, None)
    edge = None
    if tall.any():
        fwhm_ppm = damp[tall] / np.pi / cf_mhz
        edge = float(np.min(ppm[tall] - np.maximum(EDGE_MARGIN_PPM, 2 * fwhm_ppm)))
    return WaterRemoved(x - _model(freq[sel], damp[sel], amps[sel], x.size, dwell_s), int(sel.sum()), edge)


def water_peak(fid: np.ndarray, dwell_s: float, cf_mhz: float, centre_ppm: float = WATER_PPM) -> tuple[float, float]:
    """Tallest point of the magnitude spectrum (unscaled FFT) in the water band (4.3-5.1 ppm), and
    in 1.8-4.2 ppm."""
    x = np.asarray(fid, complex)
    spec = np.abs(np.fft.fft(x))
    ppm = centre_ppm + np.fft.fftfreq(x.size, dwell_s) / cf_mhz
    return (float(spec[(ppm > 4.3) & (ppm < 5.1)].max(initial=0.0)),
            float(spec[(ppm > 1.8) & (ppm < 4.2)].max(initial=0.0)))


def water_dominates(fid: np.ndarray, dwell_s: float, cf_mhz: float, centre_ppm: float = WATER_PPM,
                    factor: float = DOMINANT_FACTOR) -> bool:
    """True when the residual water peak is `factor` times taller than anything in 1.8-4.2 ppm."""
    water, met = water_peak(fid, dwell_s, cf_mhz, centre_ppm)
    return bool(water > factor * met)


def tall_lines_near_receiver(fid: np.ndarray, dwell_s: float, half_width_hz: float, factor: float = TALL_FACTOR,
                             n_components: int = 12, n_points: int = 256) -> np.ndarray | None:
    """The HLSVD model (an FID) of the components within `half_width_hz` of the receiver that stand
    `factor` times taller than anything further out: the water lines, whichever way round the
    spectrum is stored. None when there are none."""
    x = np.asarray(fid, complex)
    spec = np.abs(np.fft.fft(x))
    f_hz = np.abs(np.fft.fftfreq(x.size, dwell_s))
    outside = spec[f_hz > half_width_hz].max(initial=0.0)
    if spec[f_hz <= half_width_hz + 1.0 / (x.size * dwell_s)].max(initial=0.0) <= factor * outside:
        return None  # nothing near the receiver could be tall (a block already without water): no HLSVD
    freq, damp, amps = hlsvd(x, dwell_s, n_components, n_points)
    sel = (np.abs(freq) < half_width_hz) & _tall(freq, damp, amps, spec, dwell_s, factor * outside)
    return _model(freq[sel], damp[sel], amps[sel], x.size, dwell_s) if sel.any() else None


def remove_tall_lines_near_receiver(fid: np.ndarray, dwell_s: float, half_width_hz: float,
                                    factor: float = TALL_FACTOR, n_components: int = 12,
                                    n_points: int = 256) -> np.ndarray:
    """The FID without `tall_lines_near_receiver` (the orientation check, mrs/orientation.py: a broad
    water line's flank otherwise matched a singlet)."""
    x = np.asarray(fid, complex)
    water = tall_lines_near_receiver(x, dwell_s, half_width_hz, factor, n_components, n_points)
    return x if water is None else x - water
