"""A basis set: metabolite FIDs at their native sampling, resampled to the data on request.

Conventions (NIfTI-MRS): fid(t) = sum a * exp(i 2 pi f t); spectrum = fftshift(fft(fid));
ppm = centre_ppm + freq_hz / cf_mhz; the receiver (0 Hz) sits at `centre_ppm` (4.65 for 1H at 37 C).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.interpolate import make_interp_spline

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
        bad = [n for n, row in zip(self.names, fids, strict=True) if not np.all(np.isfinite(row))]
        if bad:  # one such entry made every fit fail with "no basis spectrum has signal"
            raise BasisError(f"basis entries hold NaN or infinity: {', '.join(bad)}")
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

        The basis is used as LCModel uses it, on the ppm axis: every point of its spectrum keeps its
        ppm on the data's axis, whatever the two fields (within MAX_FIELD_MISMATCH). In time this is
        sampling the basis FID at t * cf_data / cf_basis (quintic spline; fid[0], i.e. areas, exact),
        then a frequency shift when the receivers sit at different ppm. A dwell that differs by a
        rounding error is the same grid; a data bandwidth wider than the basis's is zero outside the
        basis band; a longer acquisition zero-fills the basis, a shorter one truncates it. What was
        done is in `conversion_notes` (same arguments). Only a field more than 5 % away is refused.
        """
        return _plan(self, float(dwell_s), int(n_points), *self._target(cf_mhz, centre_ppm)).fids()

    def conversion_notes(self, dwell_s: float, n_points: int, cf_mhz: float | None = None,
                         centre_ppm: float | None = None) -> tuple[dict, ...]:
        """One dict per decision `resampled` takes for this grid: {what, action, message, ...}."""
        return _plan(self, float(dwell_s), int(n_points), *self._target(cf_mhz, centre_ppm)).notes

    def _target(self, cf_mhz: float | None, centre_ppm: float | None) -> tuple[float, float]:
        return (float(cf_mhz if cf_mhz is not None else self.cf_mhz),
                float(centre_ppm if centre_ppm is not None else self.centre_ppm))

    def conjugated(self) -> Basis:
        """The basis mirrored about its receiver (for a basis stored in the other convention)."""
        meta = {**self.meta, "conjugated": not self.meta.get("conjugated", False)}
        return Basis(self.names, np.conj(self.fids), self.dwell_s, self.cf_mhz, self.centre_ppm, meta)

    def fids_referenced_to(self, centre_ppm: float) -> np.ndarray:
        """The FIDs with the receiver moved to `centre_ppm` (for writers whose format assumes one:
        LCModel, FSL-MRS, jMRUI, .RAW and NIfTI-MRS folders all take it at 4.65 ppm)."""
        if np.isclose(self.centre_ppm, centre_ppm):
            return self.fids
        t = np.arange(self.n_points) * self.dwell_s
        return self.fids * np.exp(2j * np.pi * (self.centre_ppm - centre_ppm) * self.cf_mhz * t)[None, :]

    def with_centre(self, centre_ppm: float) -> Basis:
        """The same FIDs with the receiver taken at `centre_ppm` (a basis made with another reference)."""
        return Basis(self.names, self.fids, self.dwell_s, self.cf_mhz, float(centre_ppm), dict(self.meta))


# A basis more than this far from the data's field is refused: chemical shifts map onto the ppm axis
# at any field, but strongly coupled multiplets (Glu, Gln) change shape. LCModel warns from 5 % too.
MAX_FIELD_MISMATCH = 0.05
FIELD_NOTE_REL = 1e-6      # fields closer than this are the same (rounding of HZPPPM)
FIELD_WARN_REL = 0.005     # beyond this a field difference is a warning, not only a note
DWELL_ROUNDING_DWELLS = 0.01  # grids whose times drift apart by < 1 % of a dwell over the data are one grid
DECAYED = 1e-3             # a FID whose tail is below this fraction of its maximum has decayed
# Data longer than the basis by at most this fraction (a field or dwell rounding, e.g. HZPPPM 0.05 %
# off): the zero-filled end is too short to ripple, so it is a conversion, not a warning.
ROUNDING_SPAN = 0.01


@dataclass(frozen=True, eq=False)
class _Plan:
    basis: Basis
    dwell_s: float
    n_points: int
    dwell_eff_s: float       # basis time sampled at data point k: k * dwell_eff_s
    same_grid: bool
    shift_hz: float
    notes: tuple[dict, ...]

    def fids(self) -> np.ndarray:
        return _resample_cached(self)


def _note(what: str, action: str, message: str, **details) -> dict:
    return {"what": what, "action": action, "message": message, **details}


@lru_cache(maxsize=64)
def _plan(basis: Basis, dwell_s: float, n_points: int, cf_mhz: float, centre_ppm: float) -> _Plan:
    if n_points < 1 or not dwell_s > 0 or not cf_mhz > 0:
        raise BasisError(f"cannot resample to {n_points} points at dwell {dwell_s} s and {cf_mhz} MHz")
    notes = []
    ratio = cf_mhz / basis.cf_mhz
    rel = abs(ratio - 1.0)
    if rel > MAX_FIELD_MISMATCH:
        raise BasisError(f"basis simulated at {basis.cf_mhz:.3f} MHz cannot serve data at {cf_mhz:.3f} MHz "
                         f"({100 * rel:.1f} % apart; beyond {100 * MAX_FIELD_MISMATCH:.0f} % coupled multiplets "
                         "change shape): simulate a basis at the data's field")
    if rel > FIELD_NOTE_REL:
        notes.append(_note(
            "field", "warning" if rel > FIELD_WARN_REL else "converted",
            f"basis at {basis.cf_mhz:.6g} MHz, data at {cf_mhz:.6g} MHz ({100 * rel:.3g} % apart): basis used "
            "on the data's ppm axis (shifts kept in ppm; couplings and widths scale by as much)",
            basis_mhz=basis.cf_mhz, data_mhz=cf_mhz))
    elif rel > 0:
        notes.append(_note("field", "rounding", f"basis at {basis.cf_mhz:.9g} MHz, data at {cf_mhz:.9g} MHz: the "
                           f"same field (they differ by {rel:.1e})", basis_mhz=basis.cf_mhz, data_mhz=cf_mhz))
    dwell_eff = dwell_s * ratio
    drift_dwells = abs(dwell_eff - basis.dwell_s) * n_points / basis.dwell_s
    same = drift_dwells < DWELL_ROUNDING_DWELLS
    if same and dwell_s != basis.dwell_s:
        notes.append(_note("dwell", "rounding", f"basis dwell {basis.dwell_s:.12g} s taken as the data's "
                           f"{dwell_s:.12g} s (over {n_points} points the grids drift apart by "
                           f"{drift_dwells:.2g} dwell)", basis_s=basis.dwell_s, data_s=dwell_s))
    elif not same:
        notes.append(_note("dwell", "converted", f"basis sampled every {basis.dwell_s:.6g} s resampled to "
                           f"{dwell_eff:.6g} s (spline in time)", basis_s=basis.dwell_s, data_s=dwell_s))
        if dwell_eff < basis.dwell_s * (1 - 1e-9):
            notes.append(_note("bandwidth", "converted", f"data bandwidth {1 / dwell_s:.0f} Hz is wider than "
                               f"the basis's {basis.bandwidth_hz / ratio:.0f} Hz: the basis is zero outside its band",
                               basis_hz=basis.bandwidth_hz, data_hz=1 / dwell_s))
    notes += _points_notes(basis, dwell_eff, n_points)
    shift_hz = (basis.centre_ppm - centre_ppm) * cf_mhz
    if abs(shift_hz) > 1e-9:
        notes.append(_note("centre", "converted", f"basis receiver at {basis.centre_ppm:g} ppm, data's at "
                           f"{centre_ppm:g} ppm: basis shifted by {shift_hz:+.2f} Hz",
                           basis_ppm=basis.centre_ppm, data_ppm=centre_ppm))
    return _Plan(basis, dwell_s, n_points, dwell_eff, same, shift_hz, tuple(notes))


def _points_notes(basis: Basis, dwell_eff: float, n_points: int) -> list[dict]:
    t_data = n_points * dwell_eff
    t_basis = basis.n_points * basis.dwell_s
    if abs(t_data - t_basis) < 0.5 * basis.dwell_s:
        return []
    if t_data > t_basis:
        tail = np.abs(basis.fids[:, -max(1, basis.n_points // 32):]).max()
        level = float(tail / max(np.abs(basis.fids).max(), 1e-300))
        if level <= DECAYED:
            return [_note("points", "converted", f"basis lasts {t_basis:.4g} s, data {t_data:.4g} s: zero-filled "
                          f"(its FID has decayed to {level:.1e})", basis_s=t_basis, data_s=t_data)]
        if t_data - t_basis <= ROUNDING_SPAN * t_data:  # e.g. a field 0.05 % off: not the ripple case
            return [_note("points", "converted", f"basis lasts {t_basis:.4g} s, data {t_data:.4g} s: the last "
                          f"{1e3 * (t_data - t_basis):.2g} ms zero-filled (a rounding of field or dwell)",
                          basis_s=t_basis, data_s=t_data)]
        return [_note("points", "warning", f"basis lasts {t_basis:.4g} s, data {t_data:.4g} s: zero-filled, "
                      f"but its FID ends at {100 * level:.2g} % of its peak (truncation ripples in the model)",
                      basis_s=t_basis, data_s=t_data)]
    return [_note("points", "converted", f"data last {t_data:.4g} s: the first {t_data:.4g} s of the basis's "
                      f"{t_basis:.4g} s are used", basis_s=t_basis, data_s=t_data)]


@lru_cache(maxsize=32)
def _resample_cached(plan: _Plan) -> np.ndarray:
    basis, n_points = plan.basis, plan.n_points
    if plan.same_grid:
        out = np.zeros((basis.fids.shape[0], n_points), complex)
        m = min(n_points, basis.n_points)
        out[:, :m] = basis.fids[:, :m]
    else:
        out = _interp_resample(basis.fids, basis.dwell_s, plan.dwell_eff_s, n_points)
    if abs(plan.shift_hz) > 1e-9:
        out = out * np.exp(2j * np.pi * plan.shift_hz * np.arange(n_points) * plan.dwell_s)[None, :]
    out.setflags(write=False)
    return out


def _interp_resample(fids: np.ndarray, dwell_in: float, dwell_out: float, n_out: int) -> np.ndarray:
    """Resample each FID at t = k * dwell_out by quintic-spline interpolation in time.

    A basis FID is a sum of decaying exponentials, smooth for t >= 0, with all lines well inside
    the band. Interpolating in time keeps the first point exact; cropping the spectrum instead
    would band-limit the FID's abrupt start at t = 0 and lose up to half of fid[0]. The error is
    about (2 pi f dwell_in)^6 / 5e4 (1e-5 for a line 600 Hz off-centre sampled at 4 kHz).
    Beyond the basis's last sample the FID is taken as zero (callers check it has decayed).
    """
    t_in = np.arange(fids.shape[1]) * dwell_in
    t_out = np.arange(n_out) * dwell_out
    inside = t_out <= t_in[-1] * (1 + 1e-12)
    k = min(5, fids.shape[1] - 1)
    spline = make_interp_spline(t_in, fids.T, k=k if k % 2 == 1 else k - 1)
    out = np.zeros((fids.shape[0], n_out), complex)
    out[:, inside] = spline(t_out[inside]).T
    return out


def ppm_axis(n_points: int, dwell_s: float, cf_mhz: float, centre_ppm: float = WATER_PPM) -> np.ndarray:
    """ppm of each point of fftshift(fft(fid)), ascending frequency (descending display order)."""
    freq_hz = np.fft.fftshift(np.fft.fftfreq(n_points, dwell_s))
    return centre_ppm + freq_hz / cf_mhz


def to_spectrum(fid: np.ndarray) -> np.ndarray:
    """Spectrum of a FID (last axis), NIfTI-MRS convention."""
    return np.fft.fftshift(np.fft.fft(fid, axis=-1), axes=-1)
