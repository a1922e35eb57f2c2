"""Is a spectrum or basis in the NIfTI-MRS convention, or its complex conjugate (a mirrored spectrum)?

Conjugating a FID mirrors its spectrum about the receiver: a line at ppm p moves to 2c - p (c the
receiver's ppm), so NAA at 2.01 ppm lands at 7.29 with the receiver at 4.65. Both checks look at
where the brain's singlets sit and never change anything themselves: they return an `Orientation`
that the input layer acts on and records (`mrs.io.prepare`).

* Data: the magnitude spectrum (phase-free), coherently averaged over transients and summed over
  coils in power, with the tall lines within 0.6 ppm of the receiver (water) removed by HLSVD, minus
  a running median (baseline, water tails), with what is left of the water (around the receiver,
  around the largest peak within 0.6 ppm of it, and around any other there taller than twice the
  metabolites) left out, is matched against the singlet pattern NAA 2.008, Cr 3.027, Cho 3.21,
  Cr 3.92 ppm (weights 1, 0.8, 0.6, 0.4) at every offset within +-`search_ppm` of the expected
  place, as stored and mirrored. Scores are in units of the noise (robust SD) of the same spectrum.
  Decisive when the better one reaches 5 and beats the other by 30 %; otherwise undetermined (the
  caller may then fit both ways: mrs.io.prepare).
* Basis: where each entry named NAA / Cr / PCr / GPC / PCh / Cho peaks (noise-free, zero-filled):
  nearer its ppm or its mirror image; the median distance to the expected ppm is the basis's
  reference offset (a basis made with the receiver at 4.70 ppm instead of 4.65 sits 0.05 off).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import median_filter

from mrs.names import canonical
from mrs.preproc.water import remove_tall_lines_near_receiver

SINGLETS = ((2.008, 1.0), (3.027, 0.8), (3.21, 0.6), (3.92, 0.4))  # ppm, weight (NAA, Cr, Cho, Cr CH2)
BASIS_SINGLET_PPM = {"NAA": 2.008, "Cr": 3.027, "PCr": 3.029, "GPC": 3.212, "PCh": 3.208, "Cho": 3.185}
DECISIVE_SCORE = 5.0      # noise SDs
DECISIVE_RATIO = 1.3
APODISE_HZ = 3.0          # Lorentzian line broadening before matching (noise)
BASELINE_PPM = 0.5        # running-median width that removes baseline and broad water tails
WATER_HALF_PPM = 0.3      # around the receiver and the water peak: water, left out
WATER_SEARCH_PPM = 0.6    # the water peak is the largest within this of the receiver
WATER_LINES_MAX = 3       # water lines left out: the largest, and others taller than
WATER_OVER_METABOLITES = 2.0  # this times the tallest line further from the receiver


@dataclass(frozen=True)
class Orientation:
    reversed: bool | None     # True: the conjugate of the NIfTI-MRS convention; None: undetermined
    score: float              # as stored (noise SDs for data; entries agreeing for a basis)
    score_mirrored: float     # the same for the mirror image
    offset_ppm: float         # the singlets sit this far from their ppm, in the winning orientation
    method: str               # "singlets" | "basis singlets" | "basis pattern" | "fit"
    message: str


def _magnitude(data: np.ndarray, dwell_s: float, water_hz: float | None = None) -> np.ndarray:
    """Magnitude spectrum (fftshifted) of (transients, coils, points) or (points,); with `water_hz`,
    the tall lines within that distance of the receiver (water) removed first."""
    x = np.asarray(data, complex)
    if x.ndim == 1:
        x = x[None, None]
    elif x.ndim == 2:
        x = x[None]
    mean = x.mean(axis=0)  # coherent over transients, per coil
    if water_hz is not None:
        mean = np.array([remove_tall_lines_near_receiver(m, dwell_s, water_hz) for m in mean])
    t = np.arange(mean.shape[-1]) * dwell_s
    spec = np.fft.fftshift(np.fft.fft(mean * np.exp(-np.pi * APODISE_HZ * t), axis=-1), axes=-1)
    mag = np.sqrt((np.abs(spec) ** 2).sum(axis=0))
    df = 1.0 / (mean.shape[-1] * dwell_s)
    return mag, df


def _pattern_scores(mag: np.ndarray, freq_hz: np.ndarray, centre_ppm: float, cf_mhz: float,
                    search_ppm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores (noise SDs) of the singlet pattern at each offset, as stored and mirrored."""
    df = freq_hz[1] - freq_hz[0]
    width = max(3, int(round(BASELINE_PPM * cf_mhz / df)) | 1)
    flat = mag - median_filter(mag, size=width, mode="nearest")
    # Water off the receiver (0.25 ppm in the ISMRM fitting challenge's dataset 23, 4.5x the NAA
    # peak) leaves the running median's residual on its flank, where the mirrored Cr 3.92 ppm
    # singlet was found.
    # A second water line there (4.2 ppm, 7x the NAA peak) matched the Cr 3.92 singlet 0.3 ppm up
    # and moved the receiver by 0.3 ppm: every line within that reach taller than twice the
    # metabolites is left out too.
    near = np.abs(freq_hz) < WATER_SEARCH_PPM * cf_mhz
    water = np.abs(freq_hz) < WATER_HALF_PPM * cf_mhz
    metabolites = mag[~near].max(initial=0.0)
    for i in range(WATER_LINES_MAX):
        left = near & ~water
        if not left.any():
            break
        k = int(np.argmax(np.where(left, mag, -1.0)))
        if i > 0 and mag[k] <= WATER_OVER_METABOLITES * metabolites:
            break
        water |= np.abs(freq_hz - freq_hz[k]) < WATER_HALF_PPM * cf_mhz
    flat[water] = 0.0
    sel = flat != 0
    noise = 1.4826 * np.median(np.abs(flat[sel] - np.median(flat[sel]))) if sel.any() else 0.0
    noise = noise if noise > 0 else max(float(np.abs(flat).max()), 1e-300) * 1e-3
    offsets = np.arange(-search_ppm, search_ppm + 1e-12, df / cf_mhz)
    weights = np.array([w for _, w in SINGLETS])
    norm = noise * np.sqrt((weights ** 2).sum())

    def at(f_hz: np.ndarray) -> np.ndarray:
        return np.interp(f_hz, freq_hz, flat, left=0.0, right=0.0)

    pos = np.array([p for p, _ in SINGLETS])
    f_as = ((pos[None, :] + offsets[:, None]) - centre_ppm) * cf_mhz
    as_is = (at(f_as) * weights).sum(axis=1) / norm
    mirrored = (at(-f_as) * weights).sum(axis=1) / norm
    return offsets, as_is, mirrored


def data_orientation(data: np.ndarray, dwell_s: float, cf_mhz: float, centre_ppm: float,
                     search_ppm: float = 0.6) -> Orientation:
    """Orientation of measured data (see the module docstring)."""
    mag, df = _magnitude(data, dwell_s, water_hz=WATER_SEARCH_PPM * cf_mhz)
    freq = (np.arange(mag.size) - mag.size // 2) * df
    offsets, as_is, mirrored = _pattern_scores(mag, freq, centre_ppm, cf_mhz, search_ppm)
    a, m = float(as_is.max()), float(mirrored.max())
    best, other = max(a, m), min(a, m)
    decisive = best >= DECISIVE_SCORE and best >= DECISIVE_RATIO * max(other, 0.0)
    rev = (m > a) if decisive else None
    offset = float(offsets[int(np.argmax(mirrored if m > a else as_is))])
    where = f"NAA/Cr/Cho singlets match {best:.0f} noise SDs {'mirrored' if m > a else 'as stored'}"
    if rev is None:
        msg = f"orientation undetermined: singlets match {a:.1f} noise SDs as stored, {m:.1f} mirrored"
    elif rev:
        msg = f"spectrum is mirrored (the conjugate convention): {where}, {a:.1f} as stored"
    else:
        msg = f"spectrum in the NIfTI-MRS convention: {where}, {m:.1f} mirrored"
    return Orientation(rev, a, m, offset, "singlets", msg)


def _peak_ppm(fid: np.ndarray, dwell_s: float, cf_mhz: float, centre_ppm: float) -> float:
    n = 8 * fid.size
    spec = np.abs(np.fft.fftshift(np.fft.fft(fid, n)))
    k = int(np.argmax(spec))
    if 0 < k < n - 1:  # parabola through the top three points
        y0, y1, y2 = spec[k - 1], spec[k], spec[k + 1]
        den = y0 - 2 * y1 + y2
        k = k + (0.5 * (y0 - y2) / den if den != 0 else 0.0)
    return centre_ppm + (k - n // 2) / (n * dwell_s) / cf_mhz


def basis_orientation(names, fids: np.ndarray, dwell_s: float, cf_mhz: float, centre_ppm: float) -> Orientation:
    """Orientation and reference offset of a basis set (see the module docstring)."""
    found = []
    for name, fid in zip(names, fids, strict=True):
        p = BASIS_SINGLET_PPM.get(canonical(name))
        if p is not None:
            found.append((canonical(name), p, _peak_ppm(np.asarray(fid), dwell_s, cf_mhz, centre_ppm)))
    if not found:  # no known singlet entry: match the pattern on the sum of all entries
        o = data_orientation(np.sum(fids, axis=0), dwell_s, cf_mhz, centre_ppm)
        return Orientation(o.reversed, o.score, o.score_mirrored, o.offset_ppm, "basis pattern",
                           "basis (no NAA/Cr/Cho entry): " + o.message)
    mirror = [2 * centre_ppm - f for _, _, f in found]
    d_as = np.array([f - p for _, p, f in found])
    d_mi = np.array([m - p for (_, p, _), m in zip(found, mirror, strict=True)])
    agree_as = int(np.sum(np.abs(d_as - np.median(d_as)) < 0.03))
    agree_mi = int(np.sum(np.abs(d_mi - np.median(d_mi)) < 0.03))
    near_as, near_mi = float(np.median(np.abs(d_as))), float(np.median(np.abs(d_mi)))
    rev = near_mi < near_as
    offset = float(np.median(d_mi if rev else d_as))
    listing = ", ".join(f"{n} {2 * centre_ppm - f if rev else f:.3f}" for n, _, f in found)
    if rev:
        msg = f"basis is mirrored (the conjugate convention): singlets at their mirror images ({listing} once mirrored)"
    else:
        msg = f"basis in the NIfTI-MRS convention: singlets at {listing} ppm"
    return Orientation(rev, float(agree_as), float(agree_mi), offset, "basis singlets", msg)
