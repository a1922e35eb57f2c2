"""FSL-MRS basis folders: one JSON file per metabolite.

As FSL-MRS writes them (fsl_mrs.utils.mrs_io.fsl_io.write_fsl_basis_file):
    {"basis": {"basis_re": [...], "basis_im": [...], "basis_dwell": s, "basis_centre": MHz,
               "basis_width": FWHM Hz, "basis_name": str},
     "meta": {...}}            (simulated sets may also hold "seq", "spinSys", ...)
FSL-MRS stores the complex conjugate of its in-memory FID (it conjugates on write and on read), so
fid_niftimrs = conj(basis_re + i basis_im). The receiver is taken at 4.65 ppm. A flat file with the
basis_* keys at top level is accepted too.
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
    return name, np.conj(re_ + 1j * im_), body, meta


def read(path: Path) -> Basis:
    files = sorted(path.glob("*.json"))
    if not files:
        raise IncompatibleBasisFormat(f"{path} holds no .json basis files")
    names, fids, dwell, cf, width, file_meta = [], [], None, None, {}, {}
    for f in files:
        name, fid, body, fmeta = _read_one(f)
        file_meta = file_meta or fmeta
        d, c = float(body["basis_dwell"]), float(body["basis_centre"])
        if dwell is None:
            dwell, cf, n = d, c, fid.size
        elif not (np.isclose(d, dwell) and np.isclose(c, cf) and fid.size == n):
            raise IncompatibleBasisFormat(
                f"{f.name} does not match the other basis files in {path} (dwell, centre frequency or length)")
        names.append(name)
        fids.append(fid)
        if body.get("basis_width") is not None:
            width[name] = float(body["basis_width"])
    if cf > 1e4:  # some writers store Hz rather than MHz
        cf = cf / 1e6
    meta = {k: file_meta[k] for k in ("sequence", "te_s", "te1_s", "tm_s", "field_mhz") if k in file_meta}
    meta["source"] = f"FSL-MRS basis folder {path.name}"
    if width:
        meta["linewidth_hz"] = float(np.median(list(width.values())))
        meta["widths_hz"] = width
    return Basis(tuple(names), np.array(fids), dwell, cf, FSL_CENTRE_PPM, meta)


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name) or "basis"


def write(basis: Basis, path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise IncompatibleBasisFormat(f"{path} is a file; an FSL-MRS basis is written as a folder")
    fids = basis.fids
    if not np.isclose(basis.centre_ppm, FSL_CENTRE_PPM):
        t = np.arange(basis.n_points) * basis.dwell_s
        fids = fids * np.exp(2j * np.pi * (basis.centre_ppm - FSL_CENTRE_PPM) * basis.cf_mhz * t)[None, :]
    path.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    meta_common = {k: v for k, v in basis.meta.items() if k in ("sequence", "te_s", "te1_s", "tm_s", "field_mhz",
                                                                "source", "convention")}
    files = [_safe_filename(n) for n in basis.names]
    if len(set(files)) != len(files):
        raise IncompatibleBasisFormat("metabolite names collide as file names: " + ", ".join(basis.names))
    width = float(basis.meta.get("linewidth_hz") or 0.0)
    for name, fname, fid in zip(basis.names, files, fids, strict=True):
        stored = np.conj(fid)
        doc = {"basis": {"basis_re": stored.real.tolist(), "basis_im": stored.imag.tolist(),
                         "basis_dwell": basis.dwell_s, "basis_centre": basis.cf_mhz,
                         "basis_width": width, "basis_name": name},
               "meta": {"time": stamp, "SimVersion": "mrsmon", **meta_common}}
        try:
            (path / f"{fname}.json").write_text(json.dumps(doc))
        except OSError as exc:
            raise IncompatibleBasisFormat(f"cannot write {path / fname}.json: {exc.strerror}") from exc
