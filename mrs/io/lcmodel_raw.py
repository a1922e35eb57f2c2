"""LCModel .RAW / .H2O time-domain data.

    [$SEQPAR ... hzpppm, dwellTime/deltat, echot, seq $END]     (written by FID-A, Osprey; optional)
    $NMID  ID, FMTDAT = '(2E15.6)', TRAMP, VOLUME, [BRUKER, SEQACQ] $END
    then (real, imag) pairs in FMTDAT, NUNFIL per voxel.

LCModel itself takes the field (HZPPPM), dwell (DELTAT) and points (NUNFIL) from its control file,
not from the .RAW. So, in this order: a $SEQPAR in the file; a control file beside it ($LCMODL with
hzpppm, deltat, nunfil, and filraw naming this file or none); else they stay unknown and the caller
supplies them (`mrsmon fit --cf-mhz/--dwell-s`, or the basis's, recorded as such).

Convention: LCModel's time domain is the complex conjugate of NIfTI-MRS's (BRUKER=T files are not:
LCModel conjugates those itself), so the data are conjugated on read and on write. LCModel scales
the data by TRAMP/VOLUME; so do we (ratios are unaffected). Several voxels (k x NUNFIL points)
become k transients.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrs.io.namelist import blocks, numbers, read_text, stem
from mrs.io.spectrum import Spectrum, SpectrumFormatError, base_acq, note, sequence_name, single_precision

SUFFIXES = (".raw", ".h2o")
CONTROL_GLOBS = ("*.control", "*.CONTROL", "control.file", "*.in", "*.IN")


def detect(path: Path) -> bool:
    if not path.is_file():
        return False
    if stem(path).suffix.lower() in SUFFIXES:
        return True
    try:
        return "$NMID" in read_text(path)[:4096].upper()
    except (OSError, EOFError):
        return False


def _control(path: Path) -> tuple[dict, str | None]:
    """$LCMODL values of a control file beside `path` that names it (or names no .RAW)."""
    for pattern in CONTROL_GLOBS:
        for ctrl in sorted(path.parent.glob(pattern)):
            try:
                values = next((v for kind, v, _, _ in blocks(read_text(ctrl)) if kind == "LCMODL"), None)
            except (OSError, EOFError, UnicodeDecodeError):
                continue
            if not values:
                continue
            named = str(values.get("FILRAW", "")).strip()
            if not named or Path(named).name.lower() == path.name.lower():
                return values, ctrl.name
    return {}, None


def _header(text: str, path: Path) -> tuple[dict, dict, int]:
    seqpar: dict = {}
    nmid: dict | None = None
    data_start = 0
    for kind, values, _, end in blocks(text):
        if kind == "SEQPAR":
            seqpar.update(values)
        elif kind == "NMID":
            nmid, data_start = values, end
            break
    if nmid is None:
        raise SpectrumFormatError(f"{path.name} has no $NMID namelist; is it an LCModel .RAW file?")
    return seqpar, nmid, data_start


def _first(d: dict, *keys: str) -> float | None:
    for k in keys:
        v = d.get(k.upper())
        if isinstance(v, int | float) and not isinstance(v, bool) and v > 0:
            return float(v)
    return None


def read(path: Path) -> Spectrum:
    try:
        text = read_text(path)
    except (OSError, EOFError) as exc:
        raise SpectrumFormatError(f"cannot read {path.name}: {exc}") from exc
    seqpar, nmid, start = _header(text, path)
    if nmid.get("SEQACQ") is True:
        raise SpectrumFormatError(f"{path.name}: SEQACQ=T (sequential real acquisition) .RAW files are not supported")
    values = numbers(text[start:])
    if len(values) < 4 or len(values) % 2:
        raise SpectrumFormatError(f"{path.name}: expected (real, imag) pairs after $NMID, found {len(values)} numbers")
    fid = np.array(values[0::2]) + 1j * np.array(values[1::2])
    notes = []
    control, ctrl_name = _control(path)
    cf = _first(seqpar, "HZPPPM") or _first(control, "HZPPPM")
    dwell = _first(seqpar, "DWELLTIME", "DELTAT") or _first(control, "DELTAT")
    where = "the file's $SEQPAR" if _first(seqpar, "HZPPPM") else (ctrl_name or None)
    if where and cf and dwell:
        notes.append(note("acquisition", "read", f"field {cf:g} MHz and dwell {dwell:g} s from {where}"))
    nunfil = int(_first(control, "NUNFIL") or _first(seqpar, "NUMBEROFPOINTS") or fid.size)
    if fid.size % nunfil:
        nunfil = fid.size
    bruker = nmid.get("BRUKER") is True
    if not bruker:
        fid = np.conj(fid)
        notes.append(note("conjugation", "converted", "LCModel .RAW stores the conjugate of the NIfTI-MRS "
                          "convention: conjugated on read"))
    tramp, volume = _first(nmid, "TRAMP") or 1.0, _first(nmid, "VOLUME") or 1.0
    if tramp != 1.0 or volume != 1.0:
        fid = fid * (tramp / volume)
        notes.append(note("scaling", "converted",
                          f"data scaled by TRAMP/VOLUME = {tramp:g}/{volume:g} as LCModel does"))
    data, scaled = single_precision(fid.reshape(-1, 1, nunfil))
    notes += scaled
    acq = base_acq(cf, dwell, data, source=path.name)
    te_ms = _first(seqpar, "ECHOT") or _first(control, "ECHOT")
    if te_ms:
        acq["echo_time_s"] = te_ms / 1e3
    seq = sequence_name(seqpar.get("SEQ"), control.get("SEQ"))
    if seq:
        acq["sequence"] = seq
    return Spectrum(data, acq, "lcmodel_raw", path.name, {"NMID": nmid, "SEQPAR": seqpar}, tuple(notes))


def write(spectrum: Spectrum, path: Path) -> None:
    """One .RAW with a $SEQPAR (field, dwell, TE) and $NMID; every transient of coil 0, in order."""
    acq = spectrum.acq
    fid = np.conj(np.asarray(spectrum.data)[:, 0, :].reshape(-1))
    lines = [" $SEQPAR", f" hzpppm= {float(acq['spectrometer_frequency_mhz']):.6f}",
             f" dwellTime= {float(acq['dwell_time_s']):.9g}", f" NumberOfPoints= {spectrum.data.shape[-1]}"]
    if acq.get("echo_time_s") is not None:
        lines.append(f" echot= {1e3 * float(acq['echo_time_s']):.3f}")
    if acq.get("sequence"):
        lines.append(f" seq= '{acq['sequence']}'")
    lines += [" $END", " $NMID", f" id='{path.stem[:60]}', fmtdat='(2E16.8)'", " volume=1.0", " tramp=1.0", " $END"]
    lines += [f"{v.real:16.8E}{v.imag:16.8E}" for v in fid]
    try:
        path.write_text("\n".join(lines) + "\n")
    except OSError as exc:
        raise SpectrumFormatError(f"cannot write {path}: {exc.strerror}") from exc
