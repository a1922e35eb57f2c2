"""FSL-MRS basis folders: one JSON file per metabolite.

As FSL-MRS writes them (fsl_mrs.utils.mrs_io.fsl_io.write_fsl_basis_file):
    {"basis": {"basis_re": [...], "basis_im": [...], "basis_dwell": s, "basis_centre": MHz,
               "basis_width": FWHM Hz, "basis_name": str},
     "meta": {...}}            (simulated sets may also hold "seq", "spinSys", ...)
FSL-MRS holds FIDs in memory as the conjugate of the NIfTI-MRS convention and conjugates them on
write (and back on read), so the file stores the NIfTI-MRS convention: fid = basis_re + i basis_im.
(Checked on a folder FSL-MRS's `basis_tools convert` made from an LCModel basis: the stored FIDs equal
the LCModel basis read by `lcmodel_basis` exactly. Folders written by mrsmon before that check stored
the conjugate; `mrs.io.prepare` detects and undoes it.) The receiver is taken at 4.65 ppm. Also accepted: the
basis_* keys at top level (older writers), the simulator's extra keys (seq, spinSys,
outputDensityMatrix), basis_width null (FSL-MRS's LCModel conversion), basis_centre in Hz, and other
JSON files in the folder (left out, noted in meta["input_notes"]).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mrs.basis import WATER_PPM, Basis, IncompatibleBasisFormat

FSL_CENTRE_PPM = WATER_PPM
_REQUIRED = ("basis_re", "basis_im", "basis_dwell", "basis_centre")


def detect(path: Path) -> bool:
    return path.is_dir() and any(path.glob("*.json"))


def claims_output(path: Path) -> bool:
    return path.suffix.lower() != ".basis"


def _read_one(path: Path) -> tuple[str, np.ndarray, dict, dict]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise IncompatibleBasisFormat(f"{path} is not a readable JSON basis file ({exc})") from exc
    body = doc.get("basis", doc) if isinstance(doc, dict) else None
    if not isinstance(body, dict) or any(k not in body for k in _REQUIRED):
        raise IncompatibleBasisFormat(
            f"{path} is not an FSL-MRS basis file: it needs {', '.join(_REQUIRED)} (under \"basis\")")
    re_, im_ = np.asarray(body["basis_re"], float), np.asarray(body["basis_im"], float)
    if re_.ndim != 1 or re_.shape != im_.shape or re_.size < 2:
        raise IncompatibleBasisFormat(f"{path}: basis_re and basis_im must be equal-length lists of numbers")
    name = str(body.get("basis_name") or path.stem)
    meta = doc.get("meta", {}) if isinstance(doc.get("meta", {}), dict) else {}
    return name, re_ + 1j * im_, body, meta


def _basis_files(path: Path) -> tuple[list[tuple[Path, tuple]], list[str]]:
    """The readable basis files of a folder, and the names of JSON files that are not basis spectra."""
    files = sorted(path.glob("*.json"))
    if not files:
        raise IncompatibleBasisFormat(f"{path} holds no .json basis files")
    good, skipped, first_error = [], [], None
    for f in files:
        try:
            good.append((f, _read_one(f)))
        except IncompatibleBasisFormat as exc:
            skipped.append(f.name)
            first_error = first_error or exc
    if not good:
        raise first_error
    return good, skipped


def read(path: Path) -> Basis:
    good, skipped = _basis_files(path)
    names, fids, dwell, cf, width, file_meta = [], [], None, None, {}, {}
    for f, (name, fid, body, fmeta) in good:
        file_meta = file_meta or fmeta
        d, c = float(body["basis_dwell"]), float(body["basis_centre"])
        if dwell is None:
            dwell, cf, n = d, c, fid.size
        elif not (np.isclose(d, dwell, rtol=1e-6) and np.isclose(c, cf, rtol=1e-6) and fid.size == n):
            raise IncompatibleBasisFormat(
                f"{f.name} does not match the other basis files in {path} (dwell, centre frequency or length)")
        names.append(name)
        fids.append(fid)
        if isinstance(body.get("basis_width"), int | float):
            width[name] = float(body["basis_width"])
    notes = []
    if cf > 1e4:  # some writers store Hz rather than MHz
        notes.append({"what": "field", "action": "converted",
                      "message": f"basis_centre {cf:g} read as Hz: {cf / 1e6:g} MHz"})
        cf = cf / 1e6
    if skipped:
        notes.append({"what": "format", "action": "skipped",
                      "message": f"not basis spectra, left out: {', '.join(skipped)}"})
    meta = {k: file_meta[k] for k in ("sequence", "te_s", "te1_s", "tm_s", "field_mhz") if k in file_meta}
    meta["source"] = f"FSL-MRS basis folder {path.name}"
    meta["format"] = "fsl"
    if notes:
        meta["input_notes"] = notes
    if width:
        meta["linewidth_hz"] = float(np.median(list(width.values())))
        meta["widths_hz"] = width
    return Basis(tuple(names), np.array(fids), dwell, cf, FSL_CENTRE_PPM, meta)


def file_names(names) -> list[str]:
    """A safe file name per metabolite (also for the folders of mrs.io.spectra_basis); names that
    would collide once made safe are refused rather than overwrite each other."""
    files = [re.sub(r"[^A-Za-z0-9_.+-]", "_", n) or "basis" for n in names]
    if len(set(files)) != len(files):
        raise IncompatibleBasisFormat("metabolite names collide as file names: " + ", ".join(names))
    return files


def write(basis: Basis, path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise IncompatibleBasisFormat(f"{path} is a file; an FSL-MRS basis is written as a folder")
    fids = basis.fids_referenced_to(FSL_CENTRE_PPM)
    path.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    meta_common = {k: v for k, v in basis.meta.items() if k in ("sequence", "te_s", "te1_s", "tm_s", "field_mhz",
                                                                "source", "convention")}
    files = file_names(basis.names)
    width = float(basis.meta.get("linewidth_hz") or 0.0)
    for name, fname, fid in zip(basis.names, files, fids, strict=True):
        stored = fid
        doc = {"basis": {"basis_re": stored.real.tolist(), "basis_im": stored.imag.tolist(),
                         "basis_dwell": basis.dwell_s, "basis_centre": basis.cf_mhz,
                         "basis_width": width, "basis_name": name},
               "meta": {"time": stamp, "SimVersion": "mrsmon", **meta_common}}
        try:
            (path / f"{fname}.json").write_text(json.dumps(doc))
        except OSError as exc:
            raise IncompatibleBasisFormat(f"cannot write {path / fname}.json: {exc.strerror}") from exc
