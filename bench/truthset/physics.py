"""The signal components of a truth spectrum, each from a family no fitter under test uses.

All FIDs are in the NIfTI-MRS convention (fid = sum a exp(+i 2 pi f t)), receiver at `centre_ppm`.
Amplitudes are in the basis's units (1 = one basis spectrum, i.e. 1 mM of that metabolite).
"""

from __future__ import annotations

import numpy as np

# Brain concentrations (mM) as (low, high), drawn uniformly: ranges of Govindaraju et al. 2000
# (NMR Biomed 13:129) and de Graaf's "In vivo NMR spectroscopy" tables for adult grey/white matter.
CONC_RANGES_MM: dict[str, tuple[float, float]] = {
    "NAA": (8.0, 13.0), "NAAG": (0.6, 2.0), "Cr": (3.5, 5.5), "PCr": (3.0, 5.0), "GPC": (0.6, 1.5),
    "PCh": (0.2, 0.7), "Ins": (4.0, 8.0), "sIns": (0.2, 0.5), "Glu": (7.0, 12.0), "Gln": (1.5, 4.5),
    "GABA": (0.6, 2.0), "GSH": (1.0, 3.0), "Tau": (0.8, 2.2), "Lac": (0.2, 1.2), "Asp": (1.0, 3.0),
    "Glc": (0.5, 2.0), "Ala": (0.2, 0.8), "Gly": (0.3, 1.0), "PE": (1.0, 2.0),
}
# T2 at 3T (ms), rounded from Wyss 2018 / Ganji 2012 / Mlynarik 2001; each spectrum jitters them.
T2_MS: dict[str, float] = {
    "NAA": 250, "NAAG": 250, "Cr": 150, "PCr": 150, "GPC": 210, "PCh": 210, "Ins": 200, "sIns": 200,
    "Glu": 180, "Gln": 180, "GABA": 90, "GSH": 140, "Tau": 150, "Lac": 240, "Asp": 110, "Glc": 120,
    "Ala": 150, "Gly": 150, "PE": 150,
}
ALIASES = {"mI": "Ins", "sI": "sIns", "Scyllo": "sIns", "PCho": "PCh", "Cho": "PCh", "GPCho": "GPC",
           "myo": "Ins", "Glyc": "Gly"}

# Macromolecules: Behar et al. 1994 (MRM 32:294) / Hwang et al. 1996 positions, widths (Hz at 3T)
# and relative areas. Lorentzian-dominated (T2 ~ 20-40 ms); not the consensus table fitters use.
MM_LINES: tuple[tuple[float, float, float], ...] = (
    (0.93, 3.0, 14.0), (1.24, 2.0, 16.0), (1.43, 2.0, 18.0), (1.72, 1.2, 18.0), (2.05, 2.4, 18.0),
    (2.29, 1.0, 20.0), (2.62, 0.6, 22.0), (3.00, 1.2, 20.0), (3.21, 0.8, 20.0), (3.86, 1.2, 24.0),
    (3.96, 1.0, 24.0),
)


def canonical(name: str) -> str:
    return ALIASES.get(name, name)


def draw_concentrations(rng: np.random.Generator, names: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for n in names:
        lo, hi = CONC_RANGES_MM.get(canonical(n), (0.0, 0.0))
        out[n] = float(rng.uniform(lo, hi))
    return out


def field_map_lineshape(rng: np.random.Generator, t_s: np.ndarray, fwhm_hz: float, skew: float) -> np.ndarray:
    """Signal decay of a voxel whose B0 field is a random smooth map: linear and quadratic terms
    plus a susceptibility tail (exp of the distance to one face), scaled so the central 76 % of the
    frequency distribution spans `fwhm_hz` (a Gaussian's FWHM). Asymmetric, not a Voigt."""
    u = rng.uniform(-0.5, 0.5, size=(20000, 3))
    g = rng.normal(0, 1, 3)
    q = rng.normal(0, 0.6, 6)
    f = u @ g + q[0] * u[:, 0] ** 2 + q[1] * u[:, 1] ** 2 + q[2] * u[:, 2] ** 2 \
        + q[3] * u[:, 0] * u[:, 1] + q[4] * u[:, 1] * u[:, 2] + q[5] * u[:, 0] * u[:, 2]
    face = int(rng.integers(3))
    f = f + skew * np.sign(rng.normal()) * np.exp(4.0 * (u[:, face] - 0.5)) * 3.0
    lo, hi = np.percentile(f, [11.96, 88.04])
    f = (f - np.median(f)) * (fwhm_hz / max(hi - lo, 1e-9))
    hist, edges = np.histogram(f, bins=400)
    centres = 0.5 * (edges[1:] + edges[:-1])
    w = hist / hist.sum()
    return (w[None, :] * np.exp(2j * np.pi * np.outer(t_s, centres))).sum(1)


def voigt_fid(t_s: np.ndarray, f_hz: float, lorentz_hz: float, gauss_hz: float) -> np.ndarray:
    return np.exp(2j * np.pi * f_hz * t_s - np.pi * lorentz_hz * t_s
                  - (np.pi * gauss_hz * t_s) ** 2 / (4 * np.log(2)))


def macromolecule_fid(rng: np.random.Generator, t_s: np.ndarray, cf_mhz: float, centre_ppm: float,
                      proton_unit: float, scale: float, width_scale: float = 1.0) -> tuple[np.ndarray, list[dict]]:
    """MM background: each line's position jittered 0.02 ppm, area x0.7-1.3, width x0.8-1.25 (times
    `width_scale`: the widths are 3T's in Hz); the 0.93 ppm line holds `scale` x 3 protons' worth of 1 mM."""
    fid = np.zeros(t_s.size, complex)
    lines = []
    for ppm, rel, w in MM_LINES:
        p = ppm + rng.normal(0, 0.02)
        area = scale * rel * proton_unit * rng.uniform(0.7, 1.3)
        width = w * rng.uniform(0.8, 1.25) * width_scale
        fid += area * voigt_fid(t_s, (p - centre_ppm) * cf_mhz, 0.75 * width, 0.45 * width)
        lines.append({"ppm": round(p, 4), "area": area, "fwhm_hz": round(width, 2)})
    return fid, lines


def lipid_fid(rng: np.random.Generator, t_s: np.ndarray, cf_mhz: float, centre_ppm: float,
              proton_unit: float, scale: float) -> np.ndarray:
    fid = np.zeros(t_s.size, complex)
    for ppm, rel in ((1.30, 1.0), (0.90, 0.3), (2.02, 0.15)):
        width = rng.uniform(15, 35)
        fid += scale * rel * proton_unit * voigt_fid(t_s, (ppm + rng.normal(0, 0.02) - centre_ppm) * cf_mhz,
                                                     0.5 * width, 0.6 * width)
    return fid


def water_fid(rng: np.random.Generator, t_s: np.ndarray, cf_mhz: float, centre_ppm: float,
              area_total: float) -> tuple[np.ndarray, int]:
    """Residual water: 1-4 Lorentzian lines near 4.65 ppm, random phases and widths."""
    n = int(rng.integers(1, 5))
    parts = rng.dirichlet(np.ones(n))
    fid = np.zeros(t_s.size, complex)
    for a in parts:
        f = (4.65 + rng.normal(0, 0.05) - centre_ppm) * cf_mhz
        fid += a * area_total * np.exp(1j * rng.uniform(0, 2 * np.pi)) * voigt_fid(t_s, f, rng.uniform(4, 20), 0.0)
    return fid, n


def baseline_spectrum(rng: np.random.Generator, ppm: np.ndarray, height: float) -> np.ndarray:
    """A smooth complex baseline (spectrum domain): a random Chebyshev series of degree 2-5 over
    0-5 ppm plus 1-3 broad Gaussians (FWHM 0.4-1.5 ppm), tapered to zero outside -0.5-5.5 ppm.
    Scaled so its largest modulus in 0.2-4.2 ppm is `height`."""
    x = np.clip((ppm - 2.5) / 2.5, -1.5, 1.5)
    deg = int(rng.integers(2, 6))
    poly = np.polynomial.chebyshev.chebval(x, rng.normal(0, 1, deg + 1)) \
        + 1j * np.polynomial.chebyshev.chebval(x, rng.normal(0, 0.5, deg + 1))
    bumps = np.zeros(ppm.size, complex)
    for _ in range(int(rng.integers(1, 4))):
        c, w = rng.uniform(0.3, 4.3), rng.uniform(0.4, 1.5)
        bumps += rng.normal(0, 1.5) * np.exp(1j * rng.normal(0, 0.5)) * np.exp(-4 * np.log(2) * ((ppm - c) / w) ** 2)
    taper = 1.0 / (1.0 + np.exp((ppm - 5.5) / 0.15)) / (1.0 + np.exp((-0.5 - ppm) / 0.15))
    b = (rng.uniform(0, 1) * poly + bumps) * taper
    inside = (ppm > 0.2) & (ppm < 4.2)
    top = float(np.abs(b[inside]).max()) if inside.any() else 1.0
    return b * height / max(top, 1e-12)


def fwhm_hz(fid: np.ndarray, dwell_s: float, zero_fill: int = 8) -> float:
    """FWHM of the tallest line of the real (phased at the peak) spectrum, from interpolation."""
    n = fid.size * zero_fill
    spec = np.fft.fftshift(np.fft.fft(fid, n))
    k = int(np.argmax(np.abs(spec)))
    s = (spec * np.exp(-1j * np.angle(spec[k]))).real
    half = s[k] / 2
    lo = k
    while lo > 0 and s[lo] > half:
        lo -= 1
    hi = k
    while hi < n - 1 and s[hi] > half:
        hi += 1
    return float((hi - lo) / (n * dwell_s))
