"""The input layer: make a spectrum file and a basis fit for each other, decide, say and record.

    prep = prepare(read_spectrum(path), read_basis(b), conjugate="auto", conjugate_basis="auto")
    prep.spectrum, prep.basis, prep.water, prep.record      # record.as_dict() goes under qc.input

The fitter never repairs anything (it is told the convention); every decision is taken here:
* acquisition fields a format does not store (an LCModel .RAW without header: field and dwell) from
  `acq_overrides`, else from the basis, noted as assumed;
* basis orientation (mrs.orientation.basis_orientation): `conjugate_basis` auto conjugates a
  mirrored basis, yes always, no never (a mirrored one is then a warning); a basis whose singlets sit
  consistently more than 0.02 ppm off is re-referenced (receiver at 4.70 instead of 4.65, say);
* data orientation (mrs.orientation.data_orientation, then, when that is undetermined and a basis
  is at hand, the fit's chi2 as stored and conjugated): `conjugate` auto / yes / no likewise, the
  water reference following the data; singlets more than 0.1 ppm off move the data's ppm reference
  (a file with another centre convention), a larger search when the usual +-0.6 ppm finds nothing;
* the basis's conversion to the data's grid (field, dwell, points, centre: Basis.conversion_notes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrs.basis import Basis
from mrs.io.record import InputRecord
from mrs.io.spectrum import Spectrum, SpectrumFormatError, note
from mrs.orientation import Orientation, basis_orientation, data_orientation

MODES = ("auto", "yes", "no")
BASIS_OFFSET_PPM = 0.02     # a basis's singlets further off than this (all agreeing): re-referenced
DATA_OFFSET_PPM = 0.1       # data singlets further off: the ppm reference moves (the fit's shift is +-25 Hz)
CHI2_MARGIN = 0.02          # chi2 as stored vs conjugated must differ by 2 % to decide


@dataclass(frozen=True)
class Prepared:
    spectrum: Spectrum
    basis: Basis | None
    water: Spectrum | None
    record: InputRecord


def _mode(value: str, what: str) -> str:
    if value not in MODES:
        raise ValueError(f"{what} must be one of {', '.join(MODES)}, not {value!r}")
    return value


def _complete_acq(spectrum: Spectrum, basis: Basis | None, overrides: dict, record: InputRecord) -> Spectrum:
    acq = {**spectrum.acq, **{k: v for k, v in overrides.items() if v is not None}}
    for key, unit in (("spectrometer_frequency_mhz", "MHz"), ("dwell_time_s", "s")):
        if key in overrides and overrides[key] is not None:
            record.add("data", note("acquisition", "read", f"{key} = {overrides[key]:g} {unit} as given"))
        elif key not in acq:
            if basis is None:
                raise SpectrumFormatError(f"{spectrum.source} does not store its {key.split('_')[0]} "
                                          "(an LCModel .RAW without header): pass --cf-mhz and --dwell-s")
            acq[key] = basis.cf_mhz if key.startswith("spectrometer") else basis.dwell_s
            record.add("data", note("acquisition", "assumed", f"{spectrum.source} stores no {key}: the basis's "
                                    f"{acq[key]:g} {unit} is assumed"))
    return Spectrum(spectrum.data, acq, spectrum.fmt, spectrum.source, spectrum.header, spectrum.notes)


def _decide(mode: str, found: bool | None) -> bool:
    return mode == "yes" or (mode == "auto" and bool(found))


def prepare_basis(basis: Basis, mode: str, record: InputRecord) -> Basis:
    record.basis = {"source": basis.meta.get("source", "basis"), "format": basis.meta.get("format", "simulated")}
    for n in basis.meta.get("input_notes", ()):
        record.add("basis", n)
    o = basis_orientation(basis.names, basis.fids, basis.dwell_s, basis.cf_mhz, basis.centre_ppm)
    flip = _decide(_mode(mode, "--conjugate-basis"), o.reversed)
    if flip:
        basis = basis.conjugated()
        record.basis_conjugated = True
        record.add("basis", note("conjugation", "conjugated", f"{o.message}: conjugated ({mode})"))
    else:
        record.add("basis", note("conjugation", "warning" if o.reversed else "none",
                                 o.message + ("; --conjugate-basis auto would conjugate it" if o.reversed else "")))
    agree = o.score_mirrored if o.reversed else o.score
    if abs(o.offset_ppm) > BASIS_OFFSET_PPM and agree >= 2 and (flip or not o.reversed):
        new = basis.centre_ppm - o.offset_ppm
        record.add("basis", note("centre", "converted", f"basis singlets sit {o.offset_ppm:+.3f} ppm off: its "
                                 f"receiver taken at {new:.3f} ppm, not {basis.centre_ppm:g}",
                                 offset_ppm=o.offset_ppm))
        basis = basis.with_centre(new)
    return basis


def _chi2_both_ways(basis: Basis, spectrum: Spectrum, window_ppm: tuple[float, float]) -> tuple[float, float]:
    from mrs.fit import FitSettings, LCFitter
    from mrs.preproc.coils import combine, svd_weights

    acq = spectrum.acq
    mean = np.asarray(spectrum.data, complex).mean(axis=0)
    fid = combine(mean, svd_weights(mean)) if mean.shape[0] > 1 else mean[0]
    fitter = LCFitter(basis, float(acq["dwell_time_s"]), fid.size, float(acq["spectrometer_frequency_mhz"]),
                      float(acq["centre_ppm"]), FitSettings(window_ppm=window_ppm))
    return tuple(float(np.sum(np.abs(fitter.fit(f).residual) ** 2)) for f in (fid, np.conj(fid)))


def _data_orientation(spectrum: Spectrum, basis: Basis | None, window_ppm: tuple[float, float]) -> Orientation:
    acq = spectrum.acq
    args = (spectrum.data, float(acq["dwell_time_s"]), float(acq["spectrometer_frequency_mhz"]),
            float(acq["centre_ppm"]))
    o = data_orientation(*args)
    if o.reversed is None:  # another ppm reference? search the whole band
        half_ppm = 0.5 / float(acq["dwell_time_s"]) / float(acq["spectrometer_frequency_mhz"])
        wide = data_orientation(*args, search_ppm=max(0.6, half_ppm - 0.5))
        if wide.reversed is not None and abs(wide.offset_ppm) > 0.6:
            o = wide
    if o.reversed is None and basis is not None:
        try:
            c_as, c_conj = _chi2_both_ways(basis, spectrum, window_ppm)
        except Exception as exc:  # the fit itself will report what is wrong
            return Orientation(None, o.score, o.score_mirrored, 0.0, o.method, f"{o.message}; chi2 test failed: {exc}")
        rev = None if abs(c_as - c_conj) <= CHI2_MARGIN * min(c_as, c_conj) else c_conj < c_as
        verdict = {None: "no clear winner", True: "conjugated fits better", False: "as stored fits better"}[rev]
        return Orientation(rev, o.score, o.score_mirrored, 0.0, "fit chi2",
                           f"{o.message}; fit chi2 as stored {c_as:.4g}, conjugated {c_conj:.4g}: {verdict}")
    return o


def prepare(spectrum: Spectrum, basis: Basis | None, conjugate: str = "auto", conjugate_basis: str = "auto",
            water: Spectrum | None = None, acq_overrides: dict | None = None,
            window_ppm: tuple[float, float] = (0.2, 4.2)) -> Prepared:
    """Decide and record everything that happens to `spectrum`, `basis` and `water` before the fit."""
    mode = _mode(conjugate, "--conjugate")
    record = InputRecord(data={"source": spectrum.source, "format": spectrum.fmt})
    for n in spectrum.notes:
        record.add("data", n)
    if basis is not None:
        basis = prepare_basis(basis, conjugate_basis, record)
    spectrum = _complete_acq(spectrum, basis, dict(acq_overrides or {}), record)
    o = _data_orientation(spectrum, basis, window_ppm) if mode != "yes" else None
    flip = _decide(mode, o.reversed if o else True)
    if o is not None:
        record.orientation = {"method": o.method, "reversed": o.reversed, "score": o.score,
                              "score_mirrored": o.score_mirrored}
    message = o.message if o else "conjugation asked for"
    if flip:
        spectrum = spectrum.with_data(np.conj(spectrum.data))
        record.data_conjugated = True
        record.add("data", note("conjugation", "conjugated", f"{message}: conjugated ({mode})"))
    else:
        bad = bool(o and o.reversed)
        record.add("data", note("conjugation", "warning" if bad or (o and o.reversed is None) else "none",
                                message + ("; --conjugate auto would conjugate it" if bad else "")))
    if o is not None and o.reversed is not None and abs(o.offset_ppm) > DATA_OFFSET_PPM:
        centre = float(spectrum.acq["centre_ppm"]) - o.offset_ppm
        spectrum = spectrum.with_data(spectrum.data, centre_ppm=centre)
        record.add("data", note("centre", "converted", f"data singlets sit {o.offset_ppm:+.2f} ppm off: the "
                                f"receiver taken at {centre:.2f} ppm", offset_ppm=o.offset_ppm))
    if water is not None:
        for n in water.notes:
            record.add("water", n)
        if flip:
            water = water.with_data(np.conj(water.data))
            record.add("water", note("conjugation", "conjugated", "water reference conjugated with the data"))
    if basis is not None:
        acq = spectrum.acq
        for n in basis.conversion_notes(float(acq["dwell_time_s"]), int(acq["points"]),
                                        float(acq["spectrometer_frequency_mhz"]), float(acq["centre_ppm"])):
            record.add("basis", n)
    return Prepared(spectrum, basis, water, record)
