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
  is at hand, how much of the data the fit explains as stored and conjugated): `conjugate` auto /
  yes / no likewise, the
  water reference following the data; singlets more than 0.1 ppm off move the data's ppm reference,
  and a header far from 4.65 ppm (a receiver said to sit at 0 ppm) is checked against 4.65;
* the basis's conversion to the data's grid (field, dwell, points, centre: Basis.conversion_notes).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from mrs.basis import Basis
from mrs.io.record import InputRecord
from mrs.io.spectrum import (
    WATER_PPM,
    Spectrum,
    SpectrumFormatError,
    note,
    positive,
    scale_exponent,
    sequence_name,
    times_power_of_two,
)
from mrs.orientation import Orientation, basis_orientation, data_orientation

MODES = ("auto", "yes", "no")
BASIS_OFFSET_PPM = 0.02     # a basis's singlets further off than this (all agreeing): re-referenced
DATA_OFFSET_PPM = 0.1       # data singlets further off: the ppm reference moves (the fit's shift is +-25 Hz)
FIT_DECISIVE = 25.0         # the fit must explain this many noise variances ...
FIT_RATIO = 2.0             # ... and twice as much one way as the other
BASIS_LEVEL = (1e-30, 1e30)  # a basis whose entries peak outside this (median) is rescaled
TE_TOLERANCE = (2e-3, 0.10)  # basis and data echo times further apart than both (s, fraction): a warning


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
    flags = {"spectrometer_frequency_mhz": "--cf-mhz", "dwell_time_s": "--dwell-s"}
    given = {k: positive(v, flags.get(k, k), "the command line") for k, v in overrides.items() if v is not None}
    acq = {**spectrum.acq, **given}
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


def _ordinary_units(basis: Basis, record: InputRecord) -> Basis:
    """A basis in extreme units (entries peaking at 1e-200, say) rescaled by a power of two (exact).
    The fit is the same in any units (the fitter scales each entry), but the concentrations'
    covariance in such units under- or overflows and the ratios lost their SDs."""
    peaks = np.abs(basis.fids).max(axis=1)
    level = float(np.median(peaks[peaks > 0])) if np.any(peaks > 0) else 1.0
    if BASIS_LEVEL[0] <= level <= BASIS_LEVEL[1]:
        return basis
    exponent = int(np.frexp(level)[1])
    fids = times_power_of_two(basis.fids, -exponent)
    record.add("basis", note("scaling", "converted", f"basis values of order {level:.0e}: rescaled by 2^{-exponent} "
                             "(concentrations are reported in the rescaled units)", exponent=-exponent))
    return dataclasses.replace(basis, fids=fids)


def prepare_basis(basis: Basis, mode: str, record: InputRecord) -> Basis:
    record.basis = {"source": basis.meta.get("source", "basis"), "format": basis.meta.get("format", "simulated")}
    for n in basis.meta.get("input_notes", ()):
        record.add("basis", n)
    basis = _ordinary_units(basis, record)
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


def _explained_both_ways(basis: Basis, spectrum: Spectrum, window_ppm: tuple[float, float]) -> tuple[float, float]:
    """How much of the data the fit explains, as stored and conjugated: (|data|^2 - chi2) over the
    window, in units of the noise variance measured outside the metabolites (mrs.qc.noise_sd). The
    chi2 alone cannot tell: mirrored, the metabolites leave the window and what remains is fitted
    to the noise level too."""
    from mrs.fit import FitSettings, LCFitter
    from mrs.preproc.coils import combine, svd_weights
    from mrs.qc import noise_sd

    acq = spectrum.acq
    dwell, cf, centre = float(acq["dwell_time_s"]), float(acq["spectrometer_frequency_mhz"]), float(acq["centre_ppm"])
    mean = np.asarray(spectrum.data, complex).mean(axis=0)
    fid = combine(mean, svd_weights(mean)) if mean.shape[0] > 1 else mean[0]
    fitter = LCFitter(basis, dwell, fid.size, cf, centre, FitSettings(window_ppm=window_ppm))
    var = 2.0 * max(noise_sd(fid, dwell, cf, centre), 1e-300) ** 2
    out = []
    for f in (fid, np.conj(fid)):
        res = fitter.fit(f)
        out.append(float((np.sum(np.abs(res.data) ** 2) - np.sum(np.abs(res.residual) ** 2)) / var))
    return out[0], out[1]


def _margin(o: Orientation) -> float:
    return abs(o.score - o.score_mirrored)


def _data_orientation(spectrum: Spectrum, basis: Basis | None,
                      window_ppm: tuple[float, float]) -> tuple[Orientation, float]:
    """The orientation, and the ppm reference it was found at: the header's, or 4.65 ppm when the
    header's is far from it (a receiver at '0 ppm', say) and the singlets are clearer there. Only
    +-0.6 ppm around a reference is searched: over a wider range the mirrored pattern can land its
    Cr-Cho pair on the real one, and the match stops telling the two orientations apart."""
    acq = spectrum.acq
    args = (spectrum.data, float(acq["dwell_time_s"]), float(acq["spectrometer_frequency_mhz"]))
    header = float(acq["centre_ppm"])
    found = [(data_orientation(*args, header), header)]
    if abs(header - WATER_PPM) > 0.6:
        found.append((data_orientation(*args, WATER_PPM), WATER_PPM))
    o, centre = max(found, key=lambda oc: _margin(oc[0]))
    if o.reversed is None and basis is not None:
        try:
            e_as, e_conj = _explained_both_ways(basis, spectrum, window_ppm)
        except Exception as exc:  # the fit itself will report what is wrong
            return Orientation(None, o.score, o.score_mirrored, 0.0, o.method,
                               f"{o.message}; fit test failed: {exc}"), header
        best, other = max(e_as, e_conj), min(e_as, e_conj)
        rev = (e_conj > e_as) if best >= FIT_DECISIVE and best >= FIT_RATIO * max(other, 0.0) else None
        verdict = {None: "no clear winner", True: "conjugated fits better", False: "as stored fits better"}[rev]
        return Orientation(rev, e_as, e_conj, 0.0, "fit",
                           f"{o.message}; the fit explains {e_as:.0f} noise variances as stored, {e_conj:.0f} "
                           f"conjugated: {verdict}"), header
    return o, centre


def _require_finite(spectrum: Spectrum | None) -> None:
    """A file with NaN or infinite samples is refused here, saying where: the orientation and water
    search run before the fit, and their SVD failed with "SVD did not converge"."""
    if spectrum is None:
        return
    bad = ~np.isfinite(spectrum.data)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise SpectrumFormatError(f"{spectrum.source}: {int(bad.sum())} of {bad.size} samples are NaN or infinite "
                                  f"(the first at (dynamic, coil, point) {first})")


def prepare(spectrum: Spectrum, basis: Basis | None, conjugate: str = "auto", conjugate_basis: str = "auto",
            water: Spectrum | None = None, acq_overrides: dict | None = None,
            window_ppm: tuple[float, float] = (0.2, 4.2)) -> Prepared:
    """Decide and record everything that happens to `spectrum`, `basis` and `water` before the fit."""
    mode = _mode(conjugate, "--conjugate")
    for what in (spectrum, water):
        _require_finite(what)
    record = InputRecord(data={"source": spectrum.source, "format": spectrum.fmt})
    for n in spectrum.notes:
        record.add("data", n)
    if basis is not None:
        basis = prepare_basis(basis, conjugate_basis, record)
    spectrum = _complete_acq(spectrum, basis, dict(acq_overrides or {}), record)
    o, centre = _data_orientation(spectrum, basis, window_ppm) if mode != "yes" else (None, None)
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
    if o is not None and o.reversed is not None:
        header = float(spectrum.acq["centre_ppm"])
        new = centre - (o.offset_ppm if abs(o.offset_ppm) > DATA_OFFSET_PPM else 0.0)
        if new != header:
            spectrum = spectrum.with_data(spectrum.data, centre_ppm=new)
            record.add("data", note("centre", "converted", f"the singlets put the receiver at {new:.2f} ppm, "
                                    f"not at the {header:g} ppm the file says", offset_ppm=header - new))
    if water is not None:
        for n in water.notes:
            record.add("water", n)
        if flip:
            water = water.with_data(np.conj(water.data))
            record.add("water", note("conjugation", "conjugated", "water reference conjugated with the data"))
        shift = scale_exponent(spectrum) - scale_exponent(water)
        if shift:  # one of them was rescaled on reading: the water scaling needs their true ratio
            water = water.with_data(times_power_of_two(water.data.astype(complex), shift))
            record.add("water", note("scaling", "converted", f"water reference scaled by 2^{shift} as the data were"))
    if basis is not None:
        acq = spectrum.acq
        for n in _protocol_notes(basis, acq):
            record.add("basis", n)
        for n in basis.conversion_notes(float(acq["dwell_time_s"]), int(acq["points"]),
                                        float(acq["spectrometer_frequency_mhz"]), float(acq["centre_ppm"])):
            record.add("basis", n)
    return Prepared(spectrum, basis, water, record)


def _protocol_notes(basis: Basis, acq: dict) -> list[dict]:
    """Warnings for a basis made for another echo time or sequence than the data's (when both state
    it). Coupled multiplets (Glu, Gln, GABA) evolve with TE and differ between PRESS, STEAM and
    sLASER, so such a basis biases exactly the metabolites the session is about; the fit still runs."""
    out = []
    te_basis, te_data = basis.meta.get("te_s"), acq.get("echo_time_s")
    if te_basis and te_data:
        gap = abs(float(te_basis) - float(te_data))
        if gap > TE_TOLERANCE[0] and gap > TE_TOLERANCE[1] * float(te_data):
            out.append(note("echo_time", "warning", f"basis made for TE {1e3 * float(te_basis):g} ms, data "
                            f"acquired at TE {1e3 * float(te_data):g} ms: coupled multiplets (Glu, Gln, GABA) differ; "
                            "use a basis for the data's echo time",
                            basis_te_s=float(te_basis), data_te_s=float(te_data)))
    seq_basis, seq_data = sequence_name(basis.meta.get("sequence")), sequence_name(acq.get("sequence"))
    if seq_basis and seq_data and seq_basis != seq_data:
        out.append(note("sequence", "warning", f"basis made for {seq_basis}, data acquired with {seq_data}: coupled "
                        "multiplets differ; use a basis for the data's sequence", basis_sequence=seq_basis,
                        data_sequence=seq_data))
    return out


def read_basis_checked(path, conjugate_basis: str = "auto") -> Basis:
    """A basis file read and checked as `prepare` checks it (orientation, ppm reference), for callers
    without a spectrum file (the agent, refit). The decisions go to the "mrs.io" log."""
    from mrs.io import read_basis

    return prepare_basis(read_basis(path), conjugate_basis, InputRecord())
