"""Readers and writers of the files other tools write, one module per format, dispatched through two tables.

    FORMATS       basis sets: {name: BasisFormat(description, detect, claims_output, read, write)}
    DATA_FORMATS  spectra:    {name: DataFormat(description, suffixes, detect, read, write)}

    read_basis(path) / write_basis(basis, path)       pick the format from the path (or `fmt=`); bases:
                                                      LCModel .BASIS, folders of FSL-MRS .json, jMRUI
                                                      .txt, LCModel .RAW or NIfTI-MRS files
                                                      (mrs.io.spectra_basis)
    read_spectrum(path) -> Spectrum                   (transients, coils, points) in the NIfTI-MRS
                                                      convention, acquisition fields, reading notes
    write_spectrum(spectrum, path, fmt)

What is done to a file on its way to the fit (conjugation, field, dwell, points, centre, scaling) is
decided in `mrs.io.prepare` and recorded there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mrs.basis import Basis, IncompatibleBasisFormat
from mrs.io import fsl_basis, jmrui_text, lcmodel_basis, lcmodel_raw, nifti_mrs, spectra_basis
from mrs.io.spectrum import Spectrum, SpectrumFormatError


@dataclass(frozen=True)
class BasisFormat:
    description: str
    detect: Callable[[Path], bool]  # can this existing path be read as this format?
    claims_output: Callable[[Path], bool]  # should writing to this path use this format?
    read: Callable[[Path], Basis]
    write: Callable[[Basis, Path], None]


@dataclass(frozen=True)
class DataFormat:
    description: str
    suffixes: tuple[str, ...]
    detect: Callable[[Path], bool]
    read: Callable[[Path], Spectrum]
    write: Callable[[Spectrum, Path], None]


FORMATS: dict[str, BasisFormat] = {
    "lcmodel": BasisFormat("LCModel .BASIS file (namelists + frequency-domain data)", lcmodel_basis.detect,
                           lcmodel_basis.claims_output, lcmodel_basis.read, lcmodel_basis.write),
    "fsl": BasisFormat("FSL-MRS basis folder (one JSON file per metabolite)", fsl_basis.detect,
                       fsl_basis.claims_output, fsl_basis.read, fsl_basis.write),
    "jmrui": BasisFormat("jMRUI text basis (a folder of .txt files, or one file of several signals)",
                         spectra_basis.detect_jmrui, spectra_basis.claims_output, spectra_basis.read_jmrui,
                         spectra_basis.write_jmrui),
    "lcmodel_raw": BasisFormat("LCModel .RAW basis folder (one .RAW file per metabolite)", spectra_basis.detect_raw,
                               spectra_basis.claims_output, spectra_basis.read_raw, spectra_basis.write_raw),
    "nifti_mrs": BasisFormat("NIfTI-MRS basis folder (one file per metabolite, as spant keeps them)",
                             spectra_basis.detect_nifti, spectra_basis.claims_output, spectra_basis.read_nifti,
                             spectra_basis.write_nifti),
}

DATA_FORMATS: dict[str, DataFormat] = {
    "nifti_mrs": DataFormat("NIfTI-MRS (spec2nii, FSL-MRS, mrsmon)", (".nii", ".nii.gz"), nifti_mrs.detect,
                            nifti_mrs.read, nifti_mrs.write),
    "lcmodel_raw": DataFormat("LCModel .RAW/.H2O time-domain data", (".raw", ".h2o"), lcmodel_raw.detect,
                              lcmodel_raw.read, lcmodel_raw.write),
    "jmrui_text": DataFormat("jMRUI text export", (".txt",), jmrui_text.detect, jmrui_text.read, jmrui_text.write),
}


def _format(fmt: str) -> BasisFormat:
    if fmt not in FORMATS:
        raise IncompatibleBasisFormat(f"unknown basis format {fmt!r}; known: {', '.join(FORMATS)}")
    return FORMATS[fmt]


def detect_format(path: str | Path) -> str:
    p = Path(path)
    if not p.exists():
        raise IncompatibleBasisFormat(f"basis {p} does not exist")
    for name, f in FORMATS.items():
        if f.detect(p):
            return name
    raise IncompatibleBasisFormat(
        f"{p} is not a basis set mrsmon can read (expected an LCModel .BASIS file, or a folder of FSL-MRS .json, "
        "jMRUI .txt, LCModel .RAW or NIfTI-MRS files)")


def read_basis(path: str | Path, fmt: str | None = None, assume_acq: dict | None = None) -> Basis:
    """`assume_acq` (the data's acquisition fields) supplies a field and dwell a basis folder of .RAW
    files may not state; it is used only then, and recorded as assumed."""
    p = Path(path)
    fmt = fmt or detect_format(p)
    if fmt == "lcmodel_raw":
        return spectra_basis.read_raw(p, assume_acq)
    return _format(fmt).read(p)


def write_basis(basis: Basis, path: str | Path, fmt: str | None = None) -> None:
    p = Path(path)
    if fmt is None:
        fmt = next((n for n, f in FORMATS.items() if f.claims_output(p)), "fsl")
    _format(fmt).write(basis, p)


def detect_data_format(path: str | Path) -> str:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    for name, f in DATA_FORMATS.items():
        if f.detect(p):
            return name
    known = ", ".join(f"{f.description} ({'/'.join(f.suffixes)})" for f in DATA_FORMATS.values())
    raise SpectrumFormatError(f"{p.name} is not a spectrum file mrsmon can read; it reads {known}")


def read_spectrum(path: str | Path, fmt: str | None = None, select: dict | None = None) -> Spectrum:
    """A spectrum file of any known format. `select` ({tag: index}) applies to NIfTI-MRS only."""
    p = Path(path)
    fmt = fmt or detect_data_format(p)
    if fmt not in DATA_FORMATS:
        raise SpectrumFormatError(f"unknown data format {fmt!r}; known: {', '.join(DATA_FORMATS)}")
    if fmt == "nifti_mrs":
        return nifti_mrs.read(p, select)
    if select:
        raise SpectrumFormatError(f"--select applies to NIfTI-MRS dimensions; {p.name} is {fmt}")
    return DATA_FORMATS[fmt].read(p)


def write_spectrum(spectrum: Spectrum, path: str | Path, fmt: str) -> None:
    if fmt not in DATA_FORMATS:
        raise SpectrumFormatError(f"unknown data format {fmt!r}; known: {', '.join(DATA_FORMATS)}")
    DATA_FORMATS[fmt].write(spectrum, Path(path))


__all__ = ["FORMATS", "DATA_FORMATS", "BasisFormat", "DataFormat", "Spectrum", "SpectrumFormatError",
           "detect_format", "detect_data_format", "read_basis", "write_basis", "read_spectrum", "write_spectrum"]
