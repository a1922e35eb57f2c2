"""Basis-set readers and writers, one module per format, dispatched through one table.

    FORMATS = {name: BasisFormat(description, detect, read, write)}
    read_basis(path) / write_basis(basis, path): pick the format from the path (or `fmt=`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mrs.basis import Basis, IncompatibleBasisFormat
from mrs.io import fsl_basis, lcmodel_basis


@dataclass(frozen=True)
class BasisFormat:
    description: str
    detect: Callable[[Path], bool]  # can this existing path be read as this format?
    claims_output: Callable[[Path], bool]  # should writing to this path use this format?
    read: Callable[[Path], Basis]
    write: Callable[[Basis, Path], None]


FORMATS: dict[str, BasisFormat] = {
    "lcmodel": BasisFormat("LCModel .BASIS file (namelists + frequency-domain data)", lcmodel_basis.detect,
                           lcmodel_basis.claims_output, lcmodel_basis.read, lcmodel_basis.write),
    "fsl": BasisFormat("FSL-MRS basis folder (one JSON file per metabolite)", fsl_basis.detect,
                       fsl_basis.claims_output, fsl_basis.read, fsl_basis.write),
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
        f"{p} is not a basis set mrsmon can read (expected an LCModel .BASIS file or an FSL-MRS folder of .json files)")


def read_basis(path: str | Path, fmt: str | None = None) -> Basis:
    p = Path(path)
    return _format(fmt or detect_format(p)).read(p)


def write_basis(basis: Basis, path: str | Path, fmt: str | None = None) -> None:
    p = Path(path)
    if fmt is None:
        fmt = next((n for n, f in FORMATS.items() if f.claims_output(p)), "fsl")
    _format(fmt).write(basis, p)


__all__ = ["FORMATS", "BasisFormat", "detect_format", "read_basis", "write_basis"]
