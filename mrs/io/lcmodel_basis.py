"""LCModel .BASIS files.

Layout (Fortran namelists, each `$NAME ... $END`):
    $SEQPAR  FWHMBA, HZPPPM (MHz), ECHOT (ms), SEQ
    $BASIS1  IDBASI, FMTBAS (Fortran format of the data), BADELT (dwell, s), NDATAB (points)
    then per metabolite: [$NMUSED ...] $BASIS ID, METABO, CONC, TRAMP, VOLUME, ISHIFT $END
    followed by NDATAB complex values as (real, imag) pairs in FMTBAS.

Data convention (the one FSL-MRS's reader implements, and that LCModel's makebasis produces): the
values are a *spectrum*, the plain (unshifted) DFT of the FID in LCModel's time-domain convention,
which is the complex conjugate of NIfTI-MRS's; ISHIFT rolls the spectrum by that many points. So
    fid_niftimrs = conj(ifft(roll(D, -ISHIFT)))        and we write   D = fft(conj(fid_niftimrs)).
The receiver is taken at 4.65 ppm (LCModel's default for 1H). CONC is kept in meta, not applied.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mrs.basis import WATER_PPM, Basis, IncompatibleBasisFormat

_BLOCK = re.compile(r"[$&](\w+)(.*?)(?:[$&]END\b|^\s*/\s*$)", re.S | re.I | re.M)
_KEY = re.compile(r"([A-Za-z_]\w*(?:\(\s*\d+\s*\))?)\s*=")
_FLOAT = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[EeDd][-+]?\d+)?")
LCMODEL_CENTRE_PPM = WATER_PPM


def detect(path: Path) -> bool:
    if not path.is_file():
        return False
    if path.suffix.lower() == ".basis":
        return True
    try:
        head = path.read_text(errors="replace")[:4096].upper()
    except OSError:
        return False
    return "$BASIS1" in head or "$SEQPAR" in head


def claims_output(path: Path) -> bool:
    return path.suffix.lower() == ".basis"


def _value(text: str) -> str | float | int | bool:
    v = text.strip().rstrip(",").strip()
    if v[:1] in "'\"":
        q = v[0]
        end = v.find(q, 1)
        return v[1:end if end > 0 else None].strip()
    if v.upper() in ("T", ".TRUE.", ".TRUE", "TRUE"):
        return True
    if v.upper() in ("F", ".FALSE.", ".FALSE", "FALSE"):
        return False
    first = v.split(",")[0].split()[0] if v else ""
    try:
        return int(first)
    except ValueError:
        pass
    try:
        return float(first.replace("D", "E").replace("d", "e"))
    except ValueError:
        return v


def parse_namelist(body: str) -> dict:
    """Key = value pairs of one namelist body (keys upper-cased)."""
    # Quoted strings may contain '=': blank them out while locating keys.
    masked = re.sub(r"'[^']*'", lambda m: "'" + " " * (len(m.group()) - 2) + "'", body)
    keys = list(_KEY.finditer(masked))
    out = {}
    for k, nxt in zip(keys, keys[1:] + [None], strict=True):
        out[k.group(1).upper()] = _value(body[k.end(): nxt.start() if nxt else len(body)])
    return out


def read(path: Path) -> Basis:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise IncompatibleBasisFormat(f"cannot read LCModel basis {path}: {exc.strerror}") from exc
    blocks = list(_BLOCK.finditer(text))
    header: dict = {}
    names, spectra, metas = [], [], []
    n_data = None
    for i, blk in enumerate(blocks):
        kind = blk.group(1).upper()
        values = parse_namelist(blk.group(2))
        if kind in ("SEQPAR", "BASIS1"):
            header.update(values)
            continue
        if kind != "BASIS":
            continue
        if n_data is None:
            if "NDATAB" not in header or "BADELT" not in header:
                raise IncompatibleBasisFormat(f"{path}: $BASIS1 with BADELT and NDATAB must precede the spectra")
            n_data = int(header["NDATAB"])
        end = blocks[i + 1].start() if i + 1 < len(blocks) else len(text)
        nums = _FLOAT.findall(text[blk.end():end])
        if len(nums) < 2 * n_data:
            raise IncompatibleBasisFormat(
                f"{path}: spectrum {values.get('METABO', '?')!r} has {len(nums) // 2} points, NDATAB says {n_data}")
        arr = np.array([float(x.replace("D", "E").replace("d", "e")) for x in nums[:2 * n_data]])
        spec = arr[0::2] + 1j * arr[1::2]
        spec = np.roll(spec, -int(values.get("ISHIFT", 0) or 0))
        spectra.append(np.conj(np.fft.ifft(spec)))
        names.append(str(values.get("METABO") or values.get("ID") or f"basis{len(names)}").strip())
        metas.append({k: values[k] for k in ("ID", "CONC", "TRAMP", "VOLUME", "ISHIFT") if k in values})
    if not spectra:
        raise IncompatibleBasisFormat(f"{path} holds no $BASIS spectra; is it an LCModel .BASIS file?")
    dwell = float(header["BADELT"])
    if dwell <= 0:
        raise IncompatibleBasisFormat(f"{path} is an encrypted LCModel basis (negative BADELT); it cannot be read")
    if "HZPPPM" not in header:
        raise IncompatibleBasisFormat(f"{path} lacks HZPPPM (spectrometer frequency) in $SEQPAR or $BASIS1")
    meta = {"source": f"LCModel basis {path.name}", "per_metabolite": dict(zip(names, metas, strict=True))}
    if "ECHOT" in header:
        meta["te_s"] = float(header["ECHOT"]) / 1e3
    if "SEQ" in header:
        meta["sequence"] = str(header["SEQ"])
    if "FWHMBA" in header and isinstance(header["FWHMBA"], float):
        meta["linewidth_hz"] = header["FWHMBA"] * float(header["HZPPPM"])
    return Basis(tuple(names), np.array(spectra), dwell, float(header["HZPPPM"]), LCMODEL_CENTRE_PPM, meta)


def _fortran(x: float) -> str:
    return f"{x:16.8E}"


def write(basis: Basis, path: Path) -> None:
    fids = basis.fids
    if not np.isclose(basis.centre_ppm, LCMODEL_CENTRE_PPM):
        # Re-reference the receiver to 4.65 ppm, which LCModel assumes.
        t = np.arange(basis.n_points) * basis.dwell_s
        fids = fids * np.exp(2j * np.pi * (basis.centre_ppm - LCMODEL_CENTRE_PPM) * basis.cf_mhz * t)[None, :]
    meta = basis.meta
    te_ms = float(meta.get("te_s") or 0.0) * 1e3
    fwhmba = float(meta.get("linewidth_hz") or 0.0) / basis.cf_mhz
    seq = str(meta.get("sequence", "")).upper() or "UNKNOWN"
    lines = [" $SEQPAR", f" FWHMBA = {fwhmba:.6f},", f" HZPPPM = {basis.cf_mhz:.6E},", f" ECHOT = {te_ms:.4f},",
             f" SEQ = '{seq}'", " $END", " $BASIS1", " IDBASI = 'mrsmon',", " FMTBAS = '(6E16.8)',",
             f" BADELT = {basis.dwell_s:.9E},", f" NDATAB = {basis.n_points}", " $END"]
    for name, fid in zip(basis.names, fids, strict=True):
        lines += [" $NMUSED", f" FILERAW = 'mrsmon:{name}'", " $END", " $BASIS", f" ID = '{name}',",
                  f" METABO = '{name}',", " CONC = 1.0,", " TRAMP = 1.0,", " VOLUME = 1.0,", " ISHIFT = 0", " $END"]
        spec = np.fft.fft(np.conj(fid))
        flat = np.empty(2 * spec.size)
        flat[0::2], flat[1::2] = spec.real, spec.imag
        for s in range(0, flat.size, 6):
            lines.append("".join(_fortran(x) for x in flat[s:s + 6]))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    except OSError as exc:
        raise IncompatibleBasisFormat(f"cannot write LCModel basis {path}: {exc.strerror}") from exc
