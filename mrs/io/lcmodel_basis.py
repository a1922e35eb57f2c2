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
The receiver is taken at 4.65 ppm (LCModel assumes it for every basis). Each spectrum is multiplied
by TRAMP / (VOLUME * CONC), as LCModel does, so that it stands for a unit concentration.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrs.basis import WATER_PPM, Basis, IncompatibleBasisFormat
from mrs.io.namelist import blocks, numbers, parse_namelist, read_text, stem

LCMODEL_CENTRE_PPM = WATER_PPM
__all__ = ["detect", "claims_output", "read", "write", "parse_namelist", "LCMODEL_CENTRE_PPM"]


def detect(path: Path) -> bool:
    if not path.is_file():
        return False
    if stem(path).suffix.lower() == ".basis":
        return True
    try:
        head = read_text(path)[:4096].upper()
    except (OSError, EOFError):
        return False
    return "$BASIS1" in head or "$SEQPAR" in head and "$BASIS" in head


def claims_output(path: Path) -> bool:
    return path.suffix.lower() == ".basis"


def _spectrum(path: Path, values: dict, body: str, n_data: int) -> np.ndarray:
    arr = numbers(body, 2 * n_data)
    if len(arr) < 2 * n_data:
        raise IncompatibleBasisFormat(
            f"{path}: spectrum {values.get('METABO', '?')!r} has {len(arr) // 2} points, NDATAB says {n_data}")
    spec = np.array(arr[0::2]) + 1j * np.array(arr[1::2])
    bad = ~np.isfinite(spec)
    if bad.any():
        first = int(np.argmax(bad))
        raise IncompatibleBasisFormat(f"{path}: spectrum {values.get('METABO', '?')!r} holds NaN or infinity "
                                      f"({int(bad.sum())} of {n_data} points, the first at point {first})")
    return np.roll(spec, -int(values.get("ISHIFT", 0) or 0))


def _scale(values: dict) -> float:
    """LCModel multiplies each basis spectrum by TRAMP / (VOLUME * CONC) (unit concentration)."""
    tramp, volume, conc = (float(values.get(k, 1.0) or 1.0) for k in ("TRAMP", "VOLUME", "CONC"))
    if min(tramp, volume, conc) <= 0:
        raise IncompatibleBasisFormat(f"basis entry {values.get('METABO', '?')!r} has a non-positive TRAMP, "
                                      "VOLUME or CONC")
    return tramp / (volume * conc)


def _header_number(path: Path, header: dict, key: str, kind=float):
    """A numeric header value, or IncompatibleBasisFormat naming the key (an empty `KEY = ,` or
    text where a number belongs is a malformed file, not a traceback)."""
    v = header.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise IncompatibleBasisFormat(f"{path}: {key} in $SEQPAR/$BASIS1 is {'empty' if v is None else repr(v)}, "
                                      "not a number; is it a complete LCModel .BASIS file?")
    return kind(v)


def read(path: Path) -> Basis:
    """The basis, or IncompatibleBasisFormat with one line saying what is wrong with the file."""
    try:
        return _read(path)
    except IncompatibleBasisFormat:
        raise
    except (ValueError, IndexError, KeyError, TypeError, OverflowError) as exc:
        raise IncompatibleBasisFormat(f"{path} is not a readable LCModel .BASIS file "
                                      f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                                      ) from exc


def _read(path: Path) -> Basis:
    try:
        text = read_text(path)
    except (OSError, EOFError) as exc:
        raise IncompatibleBasisFormat(f"cannot read LCModel basis {path}: {exc}") from exc
    found = list(blocks(text))
    header: dict = {}
    names, spectra, metas, scaled = [], [], [], []
    for i, (kind, values, _, end) in enumerate(found):
        if kind in ("SEQPAR", "BASIS1"):
            header.update(values)
            continue
        if kind != "BASIS":
            continue
        if "NDATAB" not in header or "BADELT" not in header:
            raise IncompatibleBasisFormat(f"{path}: $BASIS1 with BADELT and NDATAB must precede the spectra")
        n_data = _header_number(path, header, "NDATAB", int)
        if n_data < 2:
            raise IncompatibleBasisFormat(f"{path}: NDATAB = {n_data}; a basis spectrum needs points")
        nxt = found[i + 1][2] if i + 1 < len(found) else len(text)
        scale = _scale(values)
        spectra.append(scale * _spectrum(path, values, text[end:nxt], n_data))
        name = str(values.get("METABO") or values.get("ID") or f"basis{len(names)}").strip()
        names.append(name)
        metas.append({k: values[k] for k in ("ID", "CONC", "TRAMP", "VOLUME", "ISHIFT") if k in values})
        if abs(scale - 1.0) > 1e-12:
            scaled.append(f"{name} x{scale:.4g}")
    if not spectra:
        raise IncompatibleBasisFormat(f"{path} holds no $BASIS spectra; is it an LCModel .BASIS file?")
    dwell = _header_number(path, header, "BADELT")
    if dwell <= 0:
        raise IncompatibleBasisFormat(f"{path} is an encrypted LCModel basis (negative BADELT); it cannot be read")
    if not isinstance(header.get("HZPPPM"), int | float) or header["HZPPPM"] <= 0:
        raise IncompatibleBasisFormat(f"{path} lacks HZPPPM (spectrometer frequency) in $SEQPAR or $BASIS1")
    # The values are the plain DFT of the FID in LCModel's (conjugate) convention; see the docstring.
    fids = np.conj(np.fft.ifft(np.array(spectra), axis=1))
    meta = {"source": f"LCModel basis {path.name}", "per_metabolite": dict(zip(names, metas, strict=True)),
            "format": "lcmodel"}
    notes = []
    if scaled:
        notes.append({"what": "scaling", "action": "converted",
                      "message": "basis spectra scaled by TRAMP/(VOLUME*CONC) as LCModel does: " + ", ".join(scaled)})
    echot = header.get("ECHOT")
    if isinstance(echot, int | float) and not isinstance(echot, bool) and echot >= 0:
        meta["te_s"] = float(echot) / 1e3
    else:  # makebasis and spant leave it empty ('ECHOT = ,'); the basis is usable, its TE unknown
        meta["te_s"] = None
        notes.append({"what": "echo_time", "action": "none",
                      "message": f"basis {path.name} does not state its echo time (ECHOT "
                                 f"{'empty' if echot is None else repr(echot)}): recorded as unknown"})
    if notes:
        meta["input_notes"] = notes
    if "SEQ" in header:
        meta["sequence"] = str(header["SEQ"])
    if isinstance(header.get("FWHMBA"), float):
        meta["linewidth_hz"] = header["FWHMBA"] * float(header["HZPPPM"])
    return Basis(tuple(names), fids, dwell, float(header["HZPPPM"]), LCMODEL_CENTRE_PPM, meta)


def _fortran(x: float) -> str:
    return f"{x:16.8E}"


def write(basis: Basis, path: Path) -> None:
    fids = basis.fids_referenced_to(LCMODEL_CENTRE_PPM)  # LCModel assumes its receiver at 4.65 ppm
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
