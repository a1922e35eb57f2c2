"""jMRUI text exports (.txt).

    jMRUI Data Textfile
    Filename: ...
    PointsInDataset: 1024            DatasetsInFile: 1
    SamplingInterval: 8.33E-01       (ms)
    TransmitterFrequency: 1.2323E+08 (Hz; some writers give MHz)
    MagneticField: 3.0E+00           TypeOfNucleus: ...     (other keys, even repeated ones, are kept)
    Signal and FFT
    sig(real)  sig(imag)  [fft(real)  fft(imag)]
    Signal 1 out of N in file
    <PointsInDataset rows> ...       (then "Signal 2 out of N", ...)

Only the signal columns are read. jMRUI's time domain is the conjugate of NIfTI-MRS's (as spec2nii
and FSL-MRS read it), so the data are conjugated on read and on write; writers that do not follow
jMRUI (FID-A's io_writejmrui, for one) are caught by the orientation check. Several datasets become
transients. The receiver is taken at 4.65 ppm (jMRUI shows 4.7 by default: that difference is a
0.05 ppm shift the fit absorbs, not a different convention).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mrs.io.namelist import read_text, stem
from mrs.io.spectrum import Spectrum, SpectrumFormatError, base_acq, note, single_precision

MAGIC = "jmrui data textfile"
_HEADER = re.compile(r"^\s*([A-Za-z][\w ()]*?)\s*:\s*(.*?)\s*$")
# a data row; NaN/inf rows too, so a damaged file is refused where the sample is (mrs.io.prepare), not
# miscounted as a dataset of the wrong length
_ROW = re.compile(r"^\s*[-+]?(?:\d|\.\d|nan\b|inf)", re.IGNORECASE)


def detect(path: Path) -> bool:
    if not path.is_file() or stem(path).suffix.lower() not in (".txt", ".text", ".mrui"):
        return False
    try:
        head = read_text(path)[:2048].lower()
    except (OSError, EOFError):
        return False
    return MAGIC in head or ("pointsindataset" in head and "samplinginterval" in head)


def _float(header: dict, key: str, path: Path, required: bool = True) -> float | None:
    try:
        return float(header[key])
    except (KeyError, ValueError):
        if required:
            raise SpectrumFormatError(f"{path.name}: the jMRUI header lacks a numeric {key}") from None
        return None


def read(path: Path) -> Spectrum:
    try:
        lines = read_text(path).splitlines()
    except (OSError, EOFError) as exc:
        raise SpectrumFormatError(f"cannot read {path.name}: {exc}") from exc
    header: dict = {}
    rows: list[list[float]] = []
    for line in lines:
        if _ROW.match(line):
            try:
                rows.append([float(x) for x in line.split()[:2]])
            except ValueError:
                raise SpectrumFormatError(f"{path.name}: cannot read the data row {line.strip()[:40]!r}") from None
        elif not rows and (m := _HEADER.match(line)):
            header.setdefault(m.group(1).strip(), m.group(2))  # FID-A repeats some keys: keep the first
    n_stated = _float(header, "PointsInDataset", path)
    if not (n_stated >= 1 and n_stated == int(n_stated)):
        raise SpectrumFormatError(f"{path.name}: PointsInDataset is {header['PointsInDataset']!r}, not a "
                                  "positive whole number")
    n = int(n_stated)
    if not rows or any(len(r) < 2 for r in rows) or len(rows) % n:
        raise SpectrumFormatError(f"{path.name}: {len(rows)} data rows are not a whole number of "
                                  f"{n}-point datasets")
    arr = np.array(rows)
    fid = np.conj(arr[:, 0] + 1j * arr[:, 1]).reshape(-1, 1, n)
    dwell_s = _float(header, "SamplingInterval", path) * 1e-3
    tx = _float(header, "TransmitterFrequency", path)
    cf_mhz = tx / 1e6 if tx > 1e4 else tx
    notes = (note("conjugation", "converted", "jMRUI text stores the conjugate of the NIfTI-MRS convention: "
                  "conjugated on read"),)
    acq = base_acq(cf_mhz, dwell_s, fid, source=path.name)
    data, scaled = single_precision(fid)
    return Spectrum(data, acq, "jmrui_text", path.name, header, notes + scaled)


def write(spectrum: Spectrum, path: Path) -> None:
    """Every transient of coil 0 as one dataset, with its spectrum columns, in jMRUI's convention."""
    acq = spectrum.acq
    fids = np.conj(np.asarray(spectrum.data)[:, 0, :])
    n_sets, n = fids.shape
    cf_hz = float(acq["spectrometer_frequency_mhz"]) * 1e6
    out = ["jMRUI Data Textfile", "", f"Filename: {path.name}", "", f"PointsInDataset: {n}",
           f"DatasetsInFile: {n_sets}", f"SamplingInterval: {1e3 * float(acq['dwell_time_s']):.6E}",
           "ZeroOrderPhase: 0E+00", "BeginTime: 0E+00", f"TransmitterFrequency: {cf_hz:.6E}",
           f"MagneticField: {cf_hz / 42.577478e6:.6E}", "TypeOfNucleus: 0E+00", "NameOfPatient: ",
           "DateOfExperiment: ", "Spectrometer: mrsmon", "AdditionalInfo: ", "", "", "Signal and FFT",
           "sig(real)\tsig(imag)\tfft(real)\tfft(imag)"]
    for k, fid in enumerate(fids):
        spec = np.fft.fftshift(np.fft.fft(fid))
        out.append(f"Signal {k + 1} out of {n_sets} in file")
        out += [f"{a.real:.8E}\t{a.imag:.8E}\t{b.real:.8E}\t{b.imag:.8E}" for a, b in zip(fid, spec)]
    try:
        path.write_text("\n".join(out) + "\n")
    except OSError as exc:
        raise SpectrumFormatError(f"cannot write {path}: {exc.strerror}") from exc
