"""A basis set: metabolite FIDs at their native sampling, resampled to the data on request.

Conventions (NIfTI-MRS): fid(t) = sum a * exp(i 2 pi f t); spectrum = fftshift(fft(fid));
ppm = centre_ppm + freq_hz / cf_mhz; the receiver (0 Hz) sits at `centre_ppm` (4.65 for 1H at 37 C).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

WATER_PPM = 4.65


class BasisError(ValueError):
    """Any problem with a basis set."""


class IncompatibleBasisFormat(BasisError):
    """A file or folder that is not a readable basis set."""


class BasisHasInsufficientCoverage(BasisError):
    """The basis does not span the data's time or bandwidth and cannot be resampled to it."""


@dataclass(frozen=True, eq=False)
class Basis:
    """Metabolite FIDs, one row per name, at native `dwell_s`, centred at `centre_ppm`.

    Amplitudes are normalised so a singlet of one proton has unit area (fid[0] == 1 per proton).
    """

    names: tuple[str, ...]
    fids: np.ndarray  # complex128, shape (n_metabolites, n_points)
    dwell_s: float
    cf_mhz: float
    centre_ppm: float = WATER_PPM
    meta: dict = field(default_factory=dict)  # e.g. sequence, te_s, field, source, provenance

    def __post_init__(self) -> None:
        fids = np.asarray(self.fids)
        if fids.ndim != 2 or fids.shape[0] != len(self.names):
            raise BasisError(f"basis has {len(self.names)} names but fids of shape {fids.shape}")
        if len(set(self.names)) != len(self.names):
            raise BasisError(f"duplicate metabolite names in basis: {self.names}")
        if not (self.dwell_s > 0 and self.cf_mhz > 0):
            raise BasisError("basis dwell time and centre frequency must be positive")
        object.__setattr__(self, "fids", fids.astype(np.complex128, copy=False))

    @property
    def n_points(self) -> int:
        return int(self.fids.shape[1])

    @property
    def bandwidth_hz(self) -> float:
        return 1.0 / self.dwell_s

    def index(self, name: str) -> int:
        return self.names.index(name)

    def subset(self, names: list[str] | tuple[str, ...]) -> Basis:
        missing = [n for n in names if n not in self.names]
        if missing:
            raise BasisError(f"basis has no {', '.join(missing)} (it holds {', '.join(self.names)})")
        rows = [self.index(n) for n in names]
        return Basis(tuple(names), self.fids[rows], self.dwell_s, self.cf_mhz, self.centre_ppm, dict(self.meta))

    def resampled(self, dwell_s: float, n_points: int, cf_mhz: float | None = None,
                  centre_ppm: float | None = None) -> np.ndarray:
        """FIDs on the data's time grid (n_metabolites, n_points), complex128.

        Interpolates in time (band-limited, via zero-padded FFT) and re-centres the receiver
        frequency if the data's centre ppm differs. Refuses when the data's acquisition time is
        longer than the basis covers or its bandwidth is wider than the basis's.
        """
        return _resample_cached(self, float(dwell_s), int(n_points),
                                float(cf_mhz if cf_mhz is not None else self.cf_mhz),
                                float(centre_ppm if centre_ppm is not None else self.centre_ppm))


@lru_cache(maxsize=32)
def _resample_cached(basis: Basis, dwell_s: float, n_points: int, cf_mhz: float,
                     centre_ppm: float) -> np.ndarray:
    t_out = np.arange(n_points) * dwell_s
    t_in_max = basis.n_points * basis.dwell_s
    if dwell_s < basis.dwell_s * (1 - 1e-9):
        raise BasisHasInsufficientCoverage(
            f"data bandwidth {1 / dwell_s:.0f} Hz is wider than the basis's {basis.bandwidth_hz:.0f} Hz; "
            "simulate or supply a basis with at least the data's spectral width")
    if t_out[-1] > t_in_max * 1.0001 and not np.isclose(dwell_s, basis.dwell_s):
        # Beyond the basis's acquisition time the basis FID is taken as decayed to zero only if it has.
        tail = np.abs(basis.fids[:, -max(1, basis.n_points // 32):]).max()
        if tail > 1e-3 * np.abs(basis.fids).max():
            raise BasisHasInsufficientCoverage(
                f"data last {t_out[-1]:.3f} s but the basis only {t_in_max:.3f} s and has not decayed")
    fids = basis.fids
    if np.isclose(dwell_s, basis.dwell_s) and n_points <= basis.n_points:
        out = fids[:, :n_points].copy()
    elif np.isclose(dwell_s, basis.dwell_s):
        out = np.zeros((fids.shape[0], n_points), complex)
        out[:, :basis.n_points] = fids
    else:
        # Band-limited interpolation: FFT, crop the spectrum to the new bandwidth, inverse FFT.
        n_fine = int(round(basis.n_points * basis.dwell_s / dwell_s))
        spec = np.fft.fftshift(np.fft.fft(fids, axis=1), axes=1)
        n_in = basis.n_points
        start = (n_in - n_fine) // 2
        spec_c = spec[:, start:start + n_fine]
        fine = np.fft.ifft(np.fft.ifftshift(spec_c, axes=1), axis=1) * (n_fine / n_in)
        out = np.zeros((fids.shape[0], n_points), complex)
        m = min(n_points, fine.shape[1])
        out[:, :m] = fine[:, :m]
    shift_hz = (basis.centre_ppm - centre_ppm) * cf_mhz
    if abs(shift_hz) > 1e-9:
        out = out * np.exp(2j * np.pi * shift_hz * t_out)[None, :]
    out.setflags(write=False)
    return out


def ppm_axis(n_points: int, dwell_s: float, cf_mhz: float, centre_ppm: float = WATER_PPM) -> np.ndarray:
    """ppm of each point of fftshift(fft(fid)), ascending frequency (descending display order)."""
    freq_hz = np.fft.fftshift(np.fft.fftfreq(n_points, dwell_s))
    return centre_ppm + freq_hz / cf_mhz


def to_spectrum(fid: np.ndarray) -> np.ndarray:
    """Spectrum of a FID (last axis), NIfTI-MRS convention."""
    return np.fft.fftshift(np.fft.fft(fid, axis=-1), axes=-1)
