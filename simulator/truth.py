"""Ground-truth tables of the simulator: tissue concentrations, relaxation, background components.

Values are grey-matter defaults from de Graaf (In Vivo NMR Spectroscopy, 3rd ed.) as collected in the
project's domain notes; T2s at 3T where published, otherwise marked (assumed). The macromolecule and
lipid tables are the simulator's own parametrisation, deliberately unlike the fitter's MM basis, so a
fit is never the simulator run backwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Grey-matter concentrations, mM.
CONCENTRATIONS_MM: dict[str, float] = {
    "NAA": 10.0, "NAAG": 2.0, "Cr": 5.0, "PCr": 4.5, "GPC": 1.2, "PCh": 0.5, "mI": 5.0, "sI": 0.4,
    "Glu": 10.0, "Gln": 3.0, "GABA": 1.0, "GSH": 2.0, "Tau": 1.5, "Lac": 0.5, "Asp": 1.5, "Glc": 1.0,
    "Ala": 0.2, "Gly": 1.0, "PE": 1.5,
}

# T2 at 3T, ms. NAA, tCr, tCho, Glu/Gln/mI from the domain notes; the rest (assumed) 160 ms.
T2_MS: dict[str, float] = {
    "NAA": 226.0, "NAAG": 226.0, "Cr": 137.0, "PCr": 137.0, "GPC": 207.0, "PCh": 207.0,
    "mI": 165.0, "sI": 165.0, "Glu": 165.0, "Gln": 165.0,
}
T2_DEFAULT_MS = 160.0
WATER_T2_MS = 80.0  # grey-matter water at 3T (assumed)
# Tissue water: 2 protons x about 43 M (grey matter, 78 % water) = 86,000 mM protons (assumed).
WATER_PROTONS_MM = 86_000.0


def t2_ms(name: str) -> float:
    return T2_MS.get(name, T2_DEFAULT_MS)


def sample_concentrations(rng: np.random.Generator, cv: float,
                          base: dict[str, float] | None = None) -> dict[str, float]:
    """This session's tissue concentrations: the defaults times independent log-normal factors."""
    base = CONCENTRATIONS_MM if base is None else base
    return {k: float(v * np.exp(rng.normal(0.0, cv))) for k, v in base.items()}


@dataclass(frozen=True)
class BroadComponent:
    """One broad resonance: position, FWHM of its Gaussian, amplitude in mM-protons, T2."""

    ppm: float
    fwhm_hz: float
    amplitude: float
    t2_ms: float


# Macromolecules at 3T (assumed, in the spirit of measured MM spectra: broad, short T2; at TE 30 ms
# the 0.9 ppm component is about a quarter of the NAA height). Amplitudes in mM-protons before T2
# weighting. Positions, widths and amplitudes are jittered per session by `jitter_components`.
MACROMOLECULES: tuple[BroadComponent, ...] = (
    BroadComponent(0.92, 18.0, 70.0, 35.0),
    BroadComponent(1.22, 22.0, 50.0, 35.0),
    BroadComponent(1.41, 20.0, 40.0, 30.0),
    BroadComponent(1.69, 20.0, 28.0, 30.0),
    BroadComponent(2.02, 18.0, 55.0, 30.0),
    BroadComponent(2.28, 22.0, 35.0, 30.0),
    BroadComponent(2.57, 25.0, 18.0, 30.0),
    BroadComponent(3.00, 25.0, 38.0, 30.0),
    BroadComponent(3.22, 22.0, 18.0, 30.0),
    BroadComponent(3.78, 35.0, 42.0, 25.0),
    BroadComponent(4.05, 30.0, 21.0, 25.0),
)

# Extracranial lipid (scalp fat) reaching the voxel during motion: methyl, methylene, allylic.
LIPIDS: tuple[BroadComponent, ...] = (
    BroadComponent(0.90, 28.0, 0.35, 60.0),
    BroadComponent(1.30, 32.0, 1.00, 60.0),
    BroadComponent(2.02, 30.0, 0.15, 60.0),
)


def jitter_components(rng: np.random.Generator, comps: tuple[BroadComponent, ...], ppm_sd: float,
                      width_cv: float, amp_cv: float) -> tuple[BroadComponent, ...]:
    return tuple(BroadComponent(c.ppm + rng.normal(0.0, ppm_sd),
                                c.fwhm_hz * float(np.exp(rng.normal(0.0, width_cv))),
                                c.amplitude * float(np.exp(rng.normal(0.0, amp_cv))), c.t2_ms)
                 for c in comps)


def broad_fid(comps: tuple[BroadComponent, ...], t_s: np.ndarray, cf_mhz: float, centre_ppm: float,
              echo_time_s: float) -> np.ndarray:
    """Sum of Gaussian-broadened, T2-decaying lines, T2-weighted at the echo time."""
    out = np.zeros(t_s.shape, complex)
    for c in comps:
        f_hz = (c.ppm - centre_ppm) * cf_mhz
        sigma_hz = c.fwhm_hz / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        t2_s = c.t2_ms * 1e-3
        out += (c.amplitude * np.exp(-echo_time_s / t2_s)
                * np.exp(2j * np.pi * f_hz * t_s - t_s / t2_s - 2.0 * (np.pi * sigma_hz * t_s) ** 2))
    return out
