"""A toy basis of Lorentzian multiplets at literature shifts, for tests and speed benchmarks.

It is NOT a substitute for a density-matrix basis (strong coupling is ignored); accuracy benchmarks
use the simulator's own forward model. Here a fit to toy data checks the fitter's mechanics.
"""

from __future__ import annotations

import numpy as np

from mrs.basis import WATER_PPM, Basis

# name -> list of (ppm, protons, j_hz, multiplicity); multiplicity 1 singlet, 2 doublet, 3 triplet
_SPINS: dict[str, list[tuple[float, float, float, int]]] = {
    "NAA": [(2.008, 3, 0, 1), (2.486, 1, 15.9, 2), (2.673, 1, 15.9, 2), (4.382, 1, 7.0, 3)],
    "NAAG": [(2.042, 3, 0, 1), (2.18, 2, 7.0, 3), (2.52, 1, 15.0, 2), (2.72, 1, 15.0, 2)],
    "Cr": [(3.027, 3, 0, 1), (3.913, 2, 0, 1)],
    "PCr": [(3.029, 3, 0, 1), (3.930, 2, 0, 1)],
    "GPC": [(3.212, 9, 0, 1), (3.605, 2, 5.0, 3), (4.312, 2, 5.0, 3), (3.672, 1, 6.0, 3)],
    "PCh": [(3.208, 9, 0, 1), (3.641, 2, 5.0, 3), (4.282, 2, 5.0, 3)],
    "mI": [(3.522, 2, 10.0, 2), (3.614, 2, 9.5, 3), (4.054, 1, 2.9, 3), (3.269, 1, 9.5, 3)],
    "sI": [(3.34, 6, 0, 1)],
    "Glu": [(3.746, 1, 6.0, 3), (2.042, 1, 7.0, 3), (2.12, 1, 7.0, 3), (2.338, 2, 7.5, 3)],
    "Gln": [(3.753, 1, 6.0, 3), (2.129, 2, 7.0, 3), (2.445, 2, 7.5, 3)],
    "GABA": [(3.013, 2, 7.3, 3), (1.889, 2, 7.3, 3), (2.284, 2, 7.3, 3)],
    "GSH": [(3.769, 1, 6.0, 3), (2.159, 2, 7.0, 3), (2.547, 2, 7.5, 3), (2.93, 1, 14.0, 2),
            (2.975, 1, 14.0, 2), (4.561, 1, 6.0, 3)],
    "Tau": [(3.42, 2, 6.7, 3), (3.246, 2, 6.7, 3)],
    "Lac": [(1.31, 3, 6.9, 2), (4.097, 1, 6.9, 3)],
    "Asp": [(3.891, 1, 6.0, 3), (2.801, 1, 17.0, 2), (2.653, 1, 17.0, 2)],
}
# macromolecules: (ppm, protons, fwhm_hz)
_MM: dict[str, tuple[float, float, float]] = {
    "MM09": (0.91, 3, 20.0), "MM12": (1.21, 2, 25.0), "MM14": (1.43, 2, 25.0), "MM17": (1.67, 2, 20.0),
    "MM20": (2.01, 2, 25.0), "MM23": (2.26, 1, 25.0), "MM30": (2.99, 1, 25.0),
}

TYPICAL_MM: dict[str, float] = {
    "NAA": 10, "NAAG": 2, "Cr": 5, "PCr": 4.5, "GPC": 1.2, "PCh": 0.5, "mI": 5, "sI": 0.4, "Glu": 10,
    "Gln": 3, "GABA": 1, "GSH": 2, "Tau": 1.5, "Lac": 0.5, "Asp": 1.5,
    "MM09": 4, "MM12": 4, "MM14": 4, "MM17": 4, "MM20": 6, "MM23": 3, "MM30": 3,
}


def toy_basis(cf_mhz: float = 123.25, dwell_s: float = 1 / 4000, n_points: int = 2048,
              names: list[str] | None = None, intrinsic_lw_hz: float = 1.0) -> Basis:
    """Basis of multiplets (metabolites) and broad Lorentzians (macromolecules)."""
    t = np.arange(n_points) * dwell_s
    all_names = list(_SPINS) + list(_MM)
    names = names or all_names
    rows = []
    for name in names:
        fid = np.zeros(n_points, complex)
        if name in _SPINS:
            for ppm, nh, j, mult in _SPINS[name]:
                f0 = (ppm - WATER_PPM) * cf_mhz
                lines = {1: [(0, 1)], 2: [(-0.5, 0.5), (0.5, 0.5)], 3: [(-1, 0.25), (0, 0.5), (1, 0.25)]}[mult]
                for off, w in lines:
                    fid += nh * w * np.exp(2j * np.pi * (f0 + off * j) * t)
            fid *= np.exp(-np.pi * intrinsic_lw_hz * t)
        elif name in _MM:
            ppm, nh, fwhm = _MM[name]
            fid = nh * np.exp(2j * np.pi * (ppm - WATER_PPM) * cf_mhz * t - np.pi * fwhm * t)
        else:
            raise KeyError(f"toy basis has no {name}")
        rows.append(fid)
    return Basis(tuple(names), np.array(rows), dwell_s, cf_mhz, meta={"source": "toy"})


def synth_fid(basis: Basis, conc: dict[str, float], *, lorentz_hz: float = 3.0, gauss_hz: float = 4.0,
              shift_hz: float = 0.0, phase_rad: float = 0.0, noise_sd: float = 0.0,
              rng: np.random.Generator | None = None, baseline: np.ndarray | None = None,
              mm_lorentz_hz: float | None = None) -> np.ndarray:
    """A FID from known concentrations with a Voigt lineshape, shift, phase and white noise.

    With `mm_lorentz_hz`, macromolecules get only that Lorentzian (and the shift) instead of the
    metabolites' Voigt."""
    from mrs.names import is_macromolecule

    t = np.arange(basis.n_points) * basis.dwell_s
    ls = np.exp((2j * np.pi * shift_hz - np.pi * lorentz_hz) * t
                - (np.pi * gauss_hz * t) ** 2 / (4 * np.log(2)))
    ls_mm = ls if mm_lorentz_hz is None else np.exp((2j * np.pi * shift_hz - np.pi * mm_lorentz_hz) * t)
    fid = sum(conc.get(n, 0.0) * basis.fids[i] * (ls_mm if is_macromolecule(n) else ls)
              for i, n in enumerate(basis.names))
    fid = fid * np.exp(1j * phase_rad)
    if baseline is not None:
        fid = fid + baseline
    if noise_sd > 0:
        rng = rng or np.random.default_rng(0)
        fid = fid + noise_sd * (rng.standard_normal(fid.size) + 1j * rng.standard_normal(fid.size))
    return fid


def toy_coil_transients(fid: np.ndarray, n_coils: int, noise_sd: float, rng: np.random.Generator,
                        sensitivities: np.ndarray | None = None) -> np.ndarray:
    """(coils, points) complex64: a FID seen by coils of given (or random) sensitivities + noise."""
    if sensitivities is None:
        sensitivities = (rng.uniform(0.3, 1.0, n_coils) * np.exp(1j * rng.uniform(-np.pi, np.pi, n_coils)))
    noise = noise_sd * (rng.standard_normal((n_coils, fid.size)) + 1j * rng.standard_normal((n_coils, fid.size)))
    return (sensitivities[:, None] * fid[None, :] + noise).astype(np.complex64)
