"""Basis sets kept as spectrum files: jMRUI text, LCModel .RAW and NIfTI-MRS, as jMRUI, VeSPA, FID-A, spant
and the ISMRM fitting challenge ship them (FSL-MRS reads the first two, spant all three).

    folder/NAA.txt, Cr.txt, ...      jMRUI text, one metabolite per file (name: SignalNames, else the file name)
    basis.txt                        one jMRUI text file holding several signals (names: SignalNames)
    folder/NAA.RAW, Cr.RAW, ...      LCModel .RAW, one metabolite per file (name: $NMID ID, else the file name)
    folder/NAA.nii.gz, ...           NIfTI-MRS, one metabolite per file (name: the file name)

Each file is read by its data reader (`jmrui_text`, `lcmodel_raw`, `nifti_mrs`; the first two conjugate
on read as those formats require; `mrs.io.prepare` still checks the orientation). Files of another kind
in the folder (VeSPA's summary) are left out and noted. A .RAW file need not state its field
and dwell (LCModel's makebasis takes them from its own control file): they come from a $SEQPAR in the
files, else from a makebasis control file in the folder (HZPPPM and DELTAT), else from `assume_acq`
(the data's, when `mrsmon fit` reads the basis), recorded as assumed; with none of these the folder is
refused with a one-line reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrs.basis import WATER_PPM, Basis, IncompatibleBasisFormat
from mrs.io import jmrui_text, lcmodel_raw, nifti_mrs
from mrs.io.fsl_basis import file_names
from mrs.io.namelist import blocks, read_text, stem
from mrs.io.spectrum import Spectrum, SpectrumFormatError, note

RAW_SUFFIXES = (".raw",)
MAKEBASIS_GLOBS = ("*.in", "*.IN", "*.control", "*.CONTROL", "makebasis*")


def _files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(f for f in path.iterdir() if f.is_file() and stem(f).suffix.lower() in suffixes)


def detect_jmrui(path: Path) -> bool:
    if path.is_file():
        return jmrui_text.detect(path)
    return path.is_dir() and any(jmrui_text.detect(f) for f in _files(path, (".txt",)))


def detect_raw(path: Path) -> bool:
    return path.is_dir() and bool(_files(path, RAW_SUFFIXES))


def detect_nifti(path: Path) -> bool:
    return path.is_dir() and any(nifti_mrs.detect(f) for f in path.iterdir())


def claims_output(path: Path) -> bool:
    return False  # these folders are written only when asked for by format name


def _numbered(name: str, n: int) -> list[str]:
    """`name` for a file of one signal, name_1 ... name_n for a file of several."""
    return [name] if n == 1 else [f"{name}_{k + 1}" for k in range(n)]


def _signal_names(spectrum: Spectrum, fallback: str) -> list[str]:
    """jMRUI's SignalNames ("NAA.txt;Cr.txt;"), when it names every signal; else the file's name."""
    n = spectrum.data.shape[0]
    names = [stem(Path(s.strip())).stem for s in str(spectrum.header.get("SignalNames", "")).split(";") if s.strip()]
    if len(names) == n and len(set(names)) == n:
        return names
    return _numbered(fallback, n)


def _file_name(spectrum: Spectrum, fallback: str) -> list[str]:
    return _numbered(fallback, spectrum.data.shape[0] * spectrum.data.shape[1])


def _raw_name(spectrum: Spectrum, fallback: str) -> list[str]:
    # stray quotes are stripped: the fitting challenge's Mac.RAW says ID=Mac''
    ident = str(spectrum.header.get("NMID", {}).get("ID", "") or "").strip().strip("'\"").strip()
    return _numbered(ident or fallback, spectrum.data.shape[0])


def _makebasis_acq(path: Path) -> tuple[float | None, float | None, str | None]:
    """HZPPPM and DELTAT from a makebasis control file in the folder (any namelist holding them)."""
    for pattern in MAKEBASIS_GLOBS:
        for ctrl in sorted(path.glob(pattern)):
            try:
                found = {k: v for _, values, _, _ in blocks(read_text(ctrl)) for k, v in values.items()}
            except (OSError, EOFError, UnicodeDecodeError):
                continue
            cf, dwell = found.get("HZPPPM"), found.get("DELTAT")
            if isinstance(cf, int | float) and isinstance(dwell, int | float) and cf > 0 and dwell > 0:
                return float(cf), float(dwell), ctrl.name
    return None, None, None


def _read_all(files: list[Path], detect, reader, namer, what: str) -> tuple[list, list[str], list[dict]]:
    """(name, fid, spectrum) per signal, the files of another kind (left out), and the readers' notes."""
    entries, skipped, notes = [], [], []
    for f in files:
        if not detect(f):
            skipped.append(f.name)
            continue
        try:
            s = reader(f)
        except SpectrumFormatError as exc:
            raise IncompatibleBasisFormat(str(exc)) from exc
        for name, fid in zip(namer(s, stem(f).stem), np.asarray(s.data).reshape(-1, s.data.shape[-1]), strict=True):
            entries.append((name, np.asarray(fid, np.complex128), s))
        notes += [n for n in s.notes if n["what"] in ("conjugation", "scaling") and n not in notes]
    if not entries:
        where = files[0].parent if files else "the folder"
        raise IncompatibleBasisFormat(f"none of the files in {where} is {what}")
    return entries, skipped, notes


def _assemble(path: Path, entries: list, skipped: list[str], fmt: str, label: str, cf: float, dwell: float,
              notes: list[dict]) -> Basis:
    names = [n for n, _, _ in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise IncompatibleBasisFormat(f"{path.name}: metabolite names repeat: {', '.join(dupes)}")
    n = max(fid.size for _, fid, _ in entries)
    short = [name for name, fid, _ in entries if fid.size != n]
    if short:
        raise IncompatibleBasisFormat(f"{path.name}: {', '.join(short)} hold fewer points than the others ({n})")
    if skipped:
        notes.append(note("format", "skipped", f"not {label} files, left out: {', '.join(skipped)}"))
    first = entries[0][2]
    meta: dict = {"source": f"{label} basis {path.name}", "format": fmt}
    if first.acq.get("echo_time_s"):
        meta["te_s"] = float(first.acq["echo_time_s"])
    if first.acq.get("sequence"):
        meta["sequence"] = first.acq["sequence"]
    if notes:
        meta["input_notes"] = notes
    return Basis(tuple(names), np.array([fid for _, fid, _ in entries]), dwell, cf, WATER_PPM, meta)


ROUNDING_REL = 1e-3  # files of one basis whose fields or dwells differ by less: a rounding, not another grid


def _one_grid(path: Path, entries: list, notes: list[dict]) -> tuple[float | None, float | None]:
    """The field and dwell the files state (None if none does). Values that differ by a rounding
    ("1.2322E8" in one file, "1.23224E8" in another) are one grid (the median is used, noted);
    files on different grids are refused."""
    stated = [(float(s.acq["spectrometer_frequency_mhz"]), float(s.acq["dwell_time_s"]))
              for _, _, s in entries if "spectrometer_frequency_mhz" in s.acq and "dwell_time_s" in s.acq]
    if not stated:
        return None, None
    cfs, dwells = np.array(stated).T
    cf, dwell = float(np.median(cfs)), float(np.median(dwells))
    if np.ptp(cfs) > ROUNDING_REL * cf or np.ptp(dwells) > ROUNDING_REL * dwell:
        raise IncompatibleBasisFormat(f"the files in {path.name} state different fields or dwell times: "
                                      + ", ".join(f"{c:g} MHz / {d:g} s" for c, d in sorted(set(stated))))
    if np.ptp(cfs) > 0 or np.ptp(dwells) > 0:
        notes.append(note("acquisition", "converted", f"the files in {path.name} state fields {cfs.min():g}-"
                          f"{cfs.max():g} MHz and dwells {dwells.min():g}-{dwells.max():g} s (rounding): "
                          f"{cf:g} MHz and {dwell:g} s used"))
    return cf, dwell


def read_jmrui(path: Path) -> Basis:
    files = [path] if path.is_file() else _files(path, (".txt",))
    entries, skipped, notes = _read_all(files, jmrui_text.detect, jmrui_text.read, _signal_names, "jMRUI text")
    cf, dwell = _one_grid(path, entries, notes)
    return _assemble(path, entries, skipped, "jmrui", "jMRUI text", cf, dwell, notes)


def read_nifti(path: Path) -> Basis:
    files = sorted(f for f in path.iterdir() if nifti_mrs.detect(f))
    entries, skipped, notes = _read_all(files, nifti_mrs.detect, nifti_mrs.read, _file_name, "NIfTI-MRS")
    cf, dwell = _one_grid(path, entries, notes)
    return _assemble(path, entries, skipped, "nifti_mrs", "NIfTI-MRS", cf, dwell, notes)


def read_raw(path: Path, assume_acq: dict | None = None) -> Basis:
    entries, skipped, notes = _read_all(_files(path, RAW_SUFFIXES), lcmodel_raw.detect, lcmodel_raw.read, _raw_name,
                                        "LCModel .RAW")
    cf, dwell = _one_grid(path, entries, notes)
    if cf is None:
        cf, dwell, ctrl = _makebasis_acq(path)
        if cf is not None:
            notes.append(note("acquisition", "read", f"field {cf:g} MHz and dwell {dwell:g} s from {ctrl}"))
    if cf is None:
        acq = assume_acq or {}
        cf, dwell = acq.get("spectrometer_frequency_mhz"), acq.get("dwell_time_s")
        if not (cf and dwell):
            raise IncompatibleBasisFormat(
                f"the .RAW files in {path.name} state no field or dwell time (no $SEQPAR, no makebasis control "
                "file with HZPPPM and DELTAT beside them) and none is known to assume: `mrsmon fit` assumes the "
                "data's (give --cf-mhz and --dwell-s when the data state none either)")
        notes.append(note("acquisition", "assumed", f"the .RAW files in {path.name} state no field or dwell time: "
                          f"the data's {float(cf):g} MHz and {float(dwell):g} s are assumed"))
    return _assemble(path, entries, skipped, "lcmodel_raw", "LCModel .RAW", float(cf), float(dwell), notes)


def _write_each(basis: Basis, path: Path, suffix: str, writer) -> None:
    if path.exists() and not path.is_dir():
        raise IncompatibleBasisFormat(f"{path} is a file; this basis format is written as a folder")
    files = file_names(basis.names)
    path.mkdir(parents=True, exist_ok=True)
    fids = basis.fids_referenced_to(WATER_PPM)  # none of these formats states its receiver
    acq = {"spectrometer_frequency_mhz": basis.cf_mhz, "dwell_time_s": basis.dwell_s, "centre_ppm": WATER_PPM,
           "points": basis.n_points, "coils": 1, "nucleus": "1H"}
    for name, fname, fid in zip(basis.names, files, fids, strict=True):
        s = Spectrum(fid[None, None, :].astype(np.complex64), acq, suffix, name, {}, ())
        try:
            writer(s, path / f"{fname}{suffix}")
        except SpectrumFormatError as exc:
            raise IncompatibleBasisFormat(str(exc)) from exc


def write_jmrui(basis: Basis, path: Path) -> None:
    """One jMRUI text file per entry (jMRUI's convention, as jMRUI and FSL-MRS read it)."""
    _write_each(basis, path, ".txt", jmrui_text.write)


def write_nifti(basis: Basis, path: Path) -> None:
    """One NIfTI-MRS file per entry (NAA.nii.gz, ...), as spant's basis folders hold them."""
    _write_each(basis, path, ".nii.gz", nifti_mrs.write)


def write_raw(basis: Basis, path: Path) -> None:
    """One LCModel .RAW per entry, each with a $SEQPAR (field, dwell) and its name as $NMID ID."""
    _write_each(basis, path, ".RAW", lcmodel_raw.write)
