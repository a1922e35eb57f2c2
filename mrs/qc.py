"""Quality measures per block: SNR, linewidths, frequency, drift, and the fit's plausibility."""

from __future__ import annotations

import numpy as np

from mrs.basis import WATER_PPM

NOISE_REGIONS_PPM = ((-4.0, -1.0), (9.5, 12.5))


def noise_sd(fid: np.ndarray, dwell_s: float, cf_mhz: float, centre_ppm: float = WATER_PPM) -> float:
    """SD of the real spectrum in signal-free regions, from point-to-point differences (SD of the
    difference / sqrt 2): immune to smooth signal there, such as a residual-water dispersion tail."""
    x = np.asarray(fid, complex)
    n = x.size
    spec = np.fft.fftshift(np.fft.fft(x)).real
    ppm = centre_ppm + np.fft.fftshift(np.fft.fftfreq(n, dwell_s)) / cf_mhz
    parts = []
    for lo, hi in NOISE_REGIONS_PPM:
        sel = (ppm >= lo) & (ppm <= hi)
        if sel.sum() >= 16:
            parts.append(np.diff(spec[sel]))
    if not parts:  # narrow bandwidth: use the outer 10% on both sides
        k = max(8, n // 10)
        parts = [np.diff(spec[:k]), np.diff(spec[-k:])]
    d = np.concatenate(parts)
    return float(np.sqrt(np.mean((d - d.mean()) ** 2) / 2.0))


def fwhm_hz(fid: np.ndarray, dwell_s: float, cf_mhz: float, ppm_range: tuple[float, float],
            centre_ppm: float = WATER_PPM, zero_fill: int = 8) -> float:
    """FWHM (Hz) of the tallest peak of the real spectrum inside `ppm_range`, phased at its peak."""
    x = np.asarray(fid, complex)
    n = x.size * zero_fill
    spec = np.fft.fftshift(np.fft.fft(x, n))
    freq = np.fft.fftshift(np.fft.fftfreq(n, dwell_s))
    ppm = centre_ppm + freq / cf_mhz
    sel = np.nonzero((ppm >= min(ppm_range)) & (ppm <= max(ppm_range)))[0]
    if sel.size < 3:
        return float("nan")
    i_pk = sel[np.argmax(np.abs(spec[sel]))]
    y = (spec * np.exp(-1j * np.angle(spec[i_pk]))).real
    half = y[i_pk] / 2
    if not half > 0:
        return float("nan")
    lo = i_pk
    while lo > 0 and y[lo] > half:
        lo -= 1
    hi = i_pk
    while hi < n - 1 and y[hi] > half:
        hi += 1
    if lo == 0 or hi == n - 1:
        return float("nan")
    # linear interpolation of both crossings
    f_lo = freq[lo] + (half - y[lo]) / (y[lo + 1] - y[lo]) * (freq[lo + 1] - freq[lo])
    f_hi = freq[hi - 1] + (half - y[hi - 1]) / (y[hi] - y[hi - 1]) * (freq[hi] - freq[hi - 1])
    return float(f_hi - f_lo)


def drift_hz_per_min(t_s: np.ndarray, freq_hz: np.ndarray, window_s: float = 300.0) -> float:
    """Slope of the frequency over the last `window_s` (least squares), Hz/min."""
    t = np.asarray(t_s, float)
    f = np.asarray(freq_hz, float)
    ok = np.isfinite(t) & np.isfinite(f)
    t, f = t[ok], f[ok]
    if t.size < 3:
        return 0.0
    sel = t >= t.max() - window_s
    t, f = t[sel], f[sel]
    if t.size < 3 or np.ptp(t) <= 0:
        return 0.0
    return float(np.polyfit(t, f, 1)[0] * 60.0)


def max_jump_hz(freq_hz: np.ndarray) -> float:
    f = np.asarray(freq_hz, float)
    return float(np.abs(np.diff(f)).max()) if f.size > 1 else 0.0


def classify(conc: dict[str, float], crlb_pct: dict[str, float], naa_fwhm_hz: float, snr: float,
             success: bool, message: str, max_fwhm_hz: float = 25.0, max_glu_crlb_pct: float = 100.0,
             min_snr: float = 3.0) -> tuple[str, str]:
    """fit_status "ok" | "implausible" | "failed" and a one-line reason."""
    if not success:
        return "failed", message or "fit did not converge"
    if not all(np.isfinite(v) for v in conc.values()):
        return "failed", "non-finite concentrations"
    problems = []
    naa = conc.get("tNAA", conc.get("NAA"))
    if naa is None or not naa > 0:
        problems.append("NAA not found")
    if not np.isfinite(snr) or snr < min_snr:
        problems.append(f"SNR {snr:.1f} below {min_snr:g}")
    if np.isfinite(naa_fwhm_hz) and naa_fwhm_hz > max_fwhm_hz:
        problems.append(f"NAA linewidth {naa_fwhm_hz:.1f} Hz above {max_fwhm_hz:g} Hz")
    glu = crlb_pct.get("Glu")
    if glu is not None and not (np.isfinite(glu) and glu <= max_glu_crlb_pct):
        problems.append(f"CRLB of Glu above {max_glu_crlb_pct:g}%")
    if problems:
        return "implausible", "; ".join(problems)
    return "ok", ""
