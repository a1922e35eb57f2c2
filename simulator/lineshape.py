"""Lineshape pieces of the forward model: a skewed B0 field distribution, eddy currents, delay.

The in-vivo line is the metabolite's own Lorentzian (T2) times the Fourier transform of the B0
field distribution across the voxel. Here that distribution is a mixture of a few shifted
Gaussians (a main lobe, a shoulder and a tail on one side), so lines are asymmetric: not the
Voigt (Lorentzian x one Gaussian) a fitter assumes. The distribution is scaled per session so that
the NAA singlet's absorption FWHM equals the plan's `linewidth_hz`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

_CAL_DWELL_S = 1.0 / 1000.0  # lines of interest span far less than +-500 Hz
_CAL_POINTS = 2048           # 2 s: every line here has decayed
_CAL_PAD = 16384             # 0.06 Hz grid; the half-maximum crossing is interpolated


@dataclass(frozen=True)
class FieldDistribution:
    """B0 offsets across the voxel as a Gaussian mixture (Hz); weights sum to 1."""

    offsets_hz: tuple[float, ...]
    sigmas_hz: tuple[float, ...]
    weights: tuple[float, ...]

    def scaled(self, k: float, shift_hz: float = 0.0) -> FieldDistribution:
        return FieldDistribution(tuple(k * o - shift_hz for o in self.offsets_hz),
                                 tuple(k * s for s in self.sigmas_hz), self.weights)

    def envelope(self, t_s: np.ndarray) -> np.ndarray:
        """Time-domain factor: the characteristic function of the distribution."""
        out = np.zeros(t_s.shape, complex)
        for o, s, w in zip(self.offsets_hz, self.sigmas_hz, self.weights, strict=True):
            out += w * np.exp(2j * np.pi * o * t_s - 2.0 * (np.pi * s * t_s) ** 2)
        return out


def sample_field_distribution(rng: np.random.Generator, skew: float = 1.0) -> FieldDistribution:
    """A unit-scale skewed distribution: main lobe, a shoulder and a tail on a random side.

    `skew` scales how far the shoulder and tail sit from the main lobe (0 = symmetric Gaussian).
    """
    side = float(rng.choice([-1.0, 1.0]))
    offsets = (0.0, side * skew * rng.uniform(1.0, 2.0), side * skew * rng.uniform(2.5, 4.0))
    sigmas = (1.0, rng.uniform(0.8, 1.5), rng.uniform(1.0, 2.0))
    w = np.array([1.0, rng.uniform(0.2, 0.5), rng.uniform(0.05, 0.15)])
    w /= w.sum()
    return FieldDistribution(offsets, tuple(float(s) for s in sigmas), tuple(float(x) for x in w))


def absorption_fwhm_hz(envelope: np.ndarray, dwell_s: float, pad: int = _CAL_PAD) -> tuple[float, float]:
    """(FWHM, peak position) in Hz of the absorption (real) spectrum of a decaying envelope."""
    e = np.asarray(envelope, complex).copy()
    e[..., 0] *= 0.5  # the one-sided FID's first point counts half (trapezoid), else a baseline offset
    spec = np.fft.fft(e, pad).real
    f = np.fft.fftfreq(pad, dwell_s)
    return _fwhm(np.fft.fftshift(spec), np.fft.fftshift(f))


def _fwhm(spec: np.ndarray, f: np.ndarray) -> tuple[float, float]:
    k = int(np.argmax(spec))
    half = spec[k] / 2.0
    below = np.flatnonzero(spec[:k] <= half)
    above = np.flatnonzero(spec[k:] <= half)
    left = int(below[-1]) if below.size else 0
    right = k + int(above[0]) if above.size else spec.size - 1

    def cross(i0: int, i1: int) -> float:  # linear interpolation between the straddling points
        y0, y1 = spec[i0], spec[i1]
        return f[i0] + (half - y0) * (f[i1] - f[i0]) / (y1 - y0)

    return float(cross(right - 1, right) - cross(left, left + 1)), float(f[k])


def line_envelope(t_s: np.ndarray, dist: FieldDistribution, lorentz_hz: float) -> np.ndarray:
    return dist.envelope(t_s) * np.exp(-np.pi * lorentz_hz * t_s)


def calibrate_field_distribution(dist: FieldDistribution, lorentz_hz: float,
                                 target_fwhm_hz: float) -> FieldDistribution:
    """Scale `dist` so a line with Lorentzian width `lorentz_hz` has FWHM `target_fwhm_hz`, and
    shift it so the line's maximum sits at 0 Hz (the true frequency offset is the peak's)."""
    t = np.arange(_CAL_POINTS) * _CAL_DWELL_S

    def fwhm(k: float) -> float:
        return absorption_fwhm_hz(line_envelope(t, dist.scaled(k), lorentz_hz), _CAL_DWELL_S)[0]

    if target_fwhm_hz <= fwhm(0.0) + 0.05:
        raise ValueError(f"linewidth {target_fwhm_hz:.2f} Hz is narrower than the Lorentzian part "
                         f"alone ({fwhm(0.0):.2f} Hz); raise linewidth_hz or lower lorentzian_hz")
    hi = target_fwhm_hz
    while fwhm(hi) < target_fwhm_hz:
        hi *= 2.0
    k = brentq(lambda x: fwhm(x) - target_fwhm_hz, 0.0, hi, xtol=1e-4)
    _, peak = absorption_fwhm_hz(line_envelope(t, dist.scaled(k), lorentz_hz), _CAL_DWELL_S)
    return dist.scaled(k, shift_hz=peak)


def fwhm_table(dist: FieldDistribution, lorentz_hz: float,
               extra_hz: np.ndarray) -> np.ndarray:
    """FWHM for each extra Lorentzian broadening in `extra_hz` (negative = narrowing)."""
    t = np.arange(_CAL_POINTS) * _CAL_DWELL_S
    env = dist.envelope(t)[None, :] * np.exp(-np.pi * (lorentz_hz + np.asarray(extra_hz))[:, None] * t)
    env[:, 0] *= 0.5
    spec = np.fft.fftshift(np.fft.fft(env, _CAL_PAD, axis=1).real, axes=1)
    f = np.fft.fftshift(np.fft.fftfreq(_CAL_PAD, _CAL_DWELL_S))
    return np.array([_fwhm(row, f)[0] for row in spec])


def eddy_current_factor(t_s: np.ndarray, phase_rad: float, tau_s: float) -> np.ndarray:
    """Time-dependent phase exp(i phi0 exp(-t/tau)) left by eddy currents early in the FID."""
    if phase_rad == 0.0 or tau_s <= 0.0:
        return np.ones(t_s.shape, complex)
    return np.exp(1j * phase_rad * np.exp(-t_s / tau_s))


def delay_acquisition(fids: np.ndarray, dwell_s: float, delay_s: float) -> np.ndarray:
    """FIDs sampled `delay_s` late, fid(t + delay): each line's phase turns by 2 pi f delay.

    The FIDs must have decayed by their last point. A band-limited shift of the causal FID would
    ring at the jump at t = 0; instead each FID is rotated so that fid(0) is real and extended to
    negative times as conj(fid(-t)) (the two-sided signal of its absorption spectrum), which is
    continuous at 0, shifted on that grid, and rotated back.
    """
    x = np.atleast_2d(np.asarray(fids, complex))
    if delay_s == 0.0:
        return np.asarray(fids, complex).copy()
    n = x.shape[-1]
    rot = np.exp(-1j * np.angle(x[:, :1]))
    xr = x * rot
    y = np.zeros((x.shape[0], 2 * n), complex)
    y[:, :n] = xr
    y[:, n + 1:] = np.conj(xr[:, :0:-1])
    f = np.fft.fftfreq(2 * n, dwell_s)
    out = np.fft.ifft(np.fft.fft(y, axis=-1) * np.exp(2j * np.pi * f * delay_s), axis=-1)[:, :n] / rot
    return out.reshape(np.shape(fids))
