"""A spectrum file as read: transients in the NIfTI-MRS convention, acquisition fields, and notes.

Every reader returns a `Spectrum`. `data` is (transients, coils, points) complex64 in the NIfTI-MRS
convention *as the format documents it* (a format stored as the conjugate is conjugated on read and
says so in `notes`); whether the file really follows its format's convention is checked later
(`mrs.io.prepare`). `acq` holds SESSION_START-like fields: spectrometer_frequency_mhz, dwell_time_s,
points, coils, nucleus, centre_ppm and, when the file has them, echo_time_s, repetition_time_s,
sequence. A format that does not store the field or the dwell (LCModel .RAW without a header)
leaves them out; the caller supplies them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

import numpy as np

WATER_PPM = 4.65

# Sequence names as scanners and converters write them -> the basis simulator's names.
SEQUENCE_PATTERNS = (("slaser", "sLASER"), ("semi-laser", "sLASER"), ("semilaser", "sLASER"), ("laser", "sLASER"),
                     ("press", "PRESS"), ("svs_se", "PRESS"), ("steam", "STEAM"), ("svs_st", "STEAM"),
                     ("fid", "FID"))


class SpectrumFormatError(ValueError):
    """A file that is not a readable spectrum (the message is one line, for the user)."""


@dataclass(frozen=True, eq=False)
class Spectrum:
    data: np.ndarray              # (transients, coils, points) complex64, NIfTI-MRS convention
    acq: dict
    fmt: str
    source: str                   # file name (no directories: paths may hold names)
    header: dict = field(default_factory=dict)
    notes: tuple[dict, ...] = ()  # decisions taken while reading: {what, action, message, ...}

    def __post_init__(self) -> None:
        if self.data.ndim != 3 or self.data.shape[-1] < 2:
            raise SpectrumFormatError(f"{self.source}: expected (transients, coils, points), got {self.data.shape}")

    def with_data(self, data: np.ndarray, note: dict | None = None, **acq) -> Spectrum:
        notes = self.notes + ((note,) if note else ())
        return replace(self, data=np.ascontiguousarray(data, np.complex64), acq={**self.acq, **acq}, notes=notes)


def note(what: str, action: str, message: str, **details) -> dict:
    return {"what": what, "action": action, "message": message, **details}


def times_power_of_two(a: np.ndarray, exponent: int) -> np.ndarray:
    """a * 2**exponent, exactly and for any exponent (2.0**exponent alone overflows beyond 1023)."""
    a = np.asarray(a)
    if np.iscomplexobj(a):
        return np.ldexp(a.real, exponent) + 1j * np.ldexp(a.imag, exponent)
    return np.ldexp(a, exponent)


SINGLE_RANGE_EXPONENT = 100   # samples stay within 2^-100 ... 2^100 (single precision: 2^-126 ... 2^128)


def single_precision(fid: np.ndarray) -> tuple[np.ndarray, tuple[dict, ...]]:
    """`fid` as complex64 and what was done: samples beyond single precision's reach (a text format
    such as LCModel .RAW or jMRUI can hold 1e300 or 1e-200: they became infinity or zero, and the
    fit failed with "SVD did not converge") are first scaled by a power of two, exactly. The
    concentrations do not see it (tCr = 8, or the water reference, which `mrs.io.prepare` scales
    alike: the note's `exponent`)."""
    x = np.asarray(fid)
    # the largest part, not the modulus: |1e308 + 1e308j| overflows
    finite = bool(np.all(np.isfinite(x)))
    peak = float(max(np.abs(x.real).max(initial=0.0), np.abs(x.imag).max(initial=0.0))) if finite else 0.0
    exponent = int(np.frexp(peak)[1]) if peak > 0 else 0
    if abs(exponent) <= SINGLE_RANGE_EXPONENT:
        return np.asarray(x, np.complex64), ()
    done = note("scaling", "converted", f"samples up to {peak:.3g} rescaled by 2^{-exponent} to fit single "
                "precision", exponent=-exponent)
    return np.asarray(times_power_of_two(x, -exponent), np.complex64), (done,)


def scale_exponent(spectrum: Spectrum) -> int:
    """The power of two `single_precision` scaled the file's samples by (0: none)."""
    return sum(int(n.get("exponent", 0)) for n in spectrum.notes if n.get("what") == "scaling")


def sequence_name(*texts: object) -> str | None:
    """The simulator's sequence name found in any of `texts` (e.g. '*svs_se' -> 'PRESS')."""
    text = " ".join(str(t) for t in texts if t).lower()
    for pattern, name in SEQUENCE_PATTERNS:
        if re.search(pattern, text):
            return name
    return None


def positive(value: float, what: str, source: str) -> float:
    """`value` as a float, or a one-line SpectrumFormatError: a field or dwell of 0, inf or NaN in a
    header ended in "float division by zero" or "cannot convert float NaN to integer" downstream."""
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise SpectrumFormatError(f"{source}: its {what} is {value!r}, not a positive number")
    return v


def base_acq(cf_mhz: float | None, dwell_s: float | None, data: np.ndarray, nucleus: str = "1H",
             centre_ppm: float = WATER_PPM, source: str = "the file") -> dict:
    if data.shape[-1] < 1:
        raise SpectrumFormatError(f"{source} holds no data points")
    acq: dict = {"points": int(data.shape[-1]), "coils": int(data.shape[1]), "nucleus": nucleus,
                 "centre_ppm": float(centre_ppm)}
    if cf_mhz is not None:
        acq["spectrometer_frequency_mhz"] = positive(cf_mhz, "spectrometer frequency (MHz)", source)
    if dwell_s is not None:
        acq["dwell_time_s"] = positive(dwell_s, "dwell time (s)", source)
    return acq
