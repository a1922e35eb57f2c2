"""NIfTI-MRS (spec2nii, FSL-MRS, mrsmon's own export): the one reader.

Read with nibabel (no convention games: the samples are stored in the standard's convention). Single
voxel only. Dimensions 5-7 by their tags (defaults DIM_COIL, DIM_DYN, DIM_INDIRECT_0 when untagged):

    DIM_COIL                                   -> the coil axis
    DIM_DYN, DIM_MEAS, DIM_PHASE_CYCLE,
    DIM_EDIT, DIM_USER_n, DIM_METCYCLE         -> transients (DIM_DYN slowest, so a block holds every
                                                  edit condition / phase cycle step), noted
    DIM_ISIS, DIM_INDIRECT_n (size > 1)        -> refused unless `select`ed: they need combining first
`select={"DIM_EDIT": 0}` keeps one index of a dimension. The dwell time is pixdim[4] in the units of
xyzt_units (the standard's rule); a SpectralWidth that disagrees is noted. The receiver is taken at
4.65 ppm for 1H (the standard stores no ppm reference; a few writers add one, read when present).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from mrs.io.spectrum import (
    WATER_PPM,
    Spectrum,
    SpectrumFormatError,
    base_acq,
    note,
    sequence_name,
    single_precision,
)

ECODE_NIFTI_MRS = 44
DEFAULT_TAGS = ("DIM_COIL", "DIM_DYN", "DIM_INDIRECT_0")
FOLDED = ("DIM_DYN", "DIM_MEAS", "DIM_PHASE_CYCLE", "DIM_EDIT", "DIM_METCYCLE", "DIM_USER_0", "DIM_USER_1",
          "DIM_USER_2")
CENTRE_KEYS = ("ChemicalShiftReference", "PPMReference", "ppm_reference", "centre_ppm")
TIME_UNITS_S = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


def detect(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and (name.endswith(".nii") or name.endswith(".nii.gz"))


def _open(path: Path) -> tuple[Any, dict]:
    import nibabel as nib

    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        img = nib.load(str(path))
        codes = img.header.extensions.get_codes()
    except Exception as exc:
        raise SpectrumFormatError(f"{path.name} is not a readable NIfTI file ({exc})") from None
    if ECODE_NIFTI_MRS not in codes:
        raise SpectrumFormatError(f"{path.name} is not NIfTI-MRS (no header extension with code 44)")
    try:
        ext = json.loads(img.header.extensions[codes.index(ECODE_NIFTI_MRS)].get_content())
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpectrumFormatError(f"{path.name}: its NIfTI-MRS header extension is not JSON ({exc})") from None
    return img, ext


def _dwell_s(img: Any, ext: dict, notes: list) -> float:
    units = img.header.get_xyzt_units()[1]
    dwell = float(img.header["pixdim"][4]) * TIME_UNITS_S.get(units, 1.0)
    if not dwell > 0:
        raise SpectrumFormatError("NIfTI-MRS pixdim[4] (dwell time) is not positive")
    sw = ext.get("SpectralWidth")
    if isinstance(sw, int | float) and sw > 0 and abs(sw * dwell - 1) > 1e-4:
        notes.append(note("dwell", "warning", f"SpectralWidth {sw:g} Hz disagrees with pixdim[4] "
                          f"{dwell:.9g} s: the dwell time is used, as the standard says"))
    return dwell


def _arrange(arr: np.ndarray, tags: list[str], select: dict, notes: list, name: str) -> np.ndarray:
    """(points, d5, d6, d7) -> (transients, coils, points)."""
    for tag, index in (select or {}).items():
        if tag not in tags:
            raise SpectrumFormatError(f"{name} has no {tag} to select from (it has {', '.join(tags) or 'none'})")
        ax = tags.index(tag) + 1
        if not 0 <= int(index) < arr.shape[ax]:
            raise SpectrumFormatError(f"{name}: {tag} has {arr.shape[ax]} entries, not index {index}")
        arr = np.take(arr, [int(index)], axis=ax)
        notes.append(note("dimensions", "selected", f"{tag} index {index} selected"))
    sizes = dict(zip(tags, arr.shape[1:], strict=True))
    blocked = [t for t, n in sizes.items() if n > 1 and t not in FOLDED and t != "DIM_COIL"]
    if blocked:
        raise SpectrumFormatError(f"{name}: cannot fit data along {', '.join(blocked)} directly; combine them first "
                                  f"or choose one with --select {blocked[0]}=0 (fitted as is: DIM_COIL, DIM_DYN, "
                                  "DIM_EDIT, DIM_MEAS, DIM_PHASE_CYCLE, DIM_USER_n)")
    coil = [i + 1 for i, t in enumerate(tags) if t == "DIM_COIL"]
    fold = sorted((i + 1 for i, t in enumerate(tags) if t != "DIM_COIL"), key=lambda ax: tags[ax - 1] != "DIM_DYN")
    others = [t for t in tags if t not in ("DIM_COIL", "DIM_DYN") and sizes[t] > 1]
    if others:
        notes.append(note("dimensions", "folded", f"{', '.join(f'{t} ({sizes[t]})' for t in others)} taken as "
                          "transients: a block averages over them (e.g. the sum of the edit conditions)"))
    arr = np.transpose(arr, fold + coil + [0])
    n_coils = arr.shape[-2] if coil else 1
    return arr.reshape(-1, n_coils, arr.shape[-1])


def read(path: Path, select: dict | None = None) -> Spectrum:
    path = Path(path)
    img, ext = _open(path)
    try:  # nibabel reads the data only here: a truncated .nii.gz fails now, not in _open
        data = np.asanyarray(img.dataobj)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise SpectrumFormatError(f"{path.name}: its data cannot be read ({exc})") from None
    if not np.iscomplexobj(data):
        raise SpectrumFormatError(f"{path.name}: NIfTI-MRS data must be complex")
    if data.ndim < 4 or any(s != 1 for s in data.shape[:3]):
        raise SpectrumFormatError(f"{path.name}: only single-voxel data are supported (shape {data.shape})")
    notes: list[dict] = []
    arr = data.reshape(data.shape[3:])
    tags = [str(ext.get(f"dim_{d}") or DEFAULT_TAGS[d - 5]) for d in range(5, 4 + arr.ndim)]
    out = _arrange(arr, tags, dict(select or {}), notes, path.name)
    acq = acquisition_from_header(ext, _dwell_s(img, ext, notes), out, path.name)
    data, scaled = single_precision(out)
    return Spectrum(np.ascontiguousarray(data), acq, "nifti_mrs", path.name, ext, tuple(notes) + scaled)


def _first(value: Any) -> Any:
    return (value[0] if value else None) if isinstance(value, list | tuple) else value


def acquisition_from_header(hdr: dict, dwell_s: float, data: np.ndarray, source: str = "the file") -> dict:
    """SESSION_START-like fields from a NIfTI-MRS header extension."""
    sf = _first(hdr.get("SpectrometerFrequency"))
    if not isinstance(sf, int | float) or not sf > 0:
        raise SpectrumFormatError("NIfTI-MRS header has no SpectrometerFrequency")
    nucleus = str(_first(hdr.get("ResonantNucleus")) or "1H")
    centre = next((float(hdr[k]) for k in CENTRE_KEYS if isinstance(hdr.get(k), int | float)), WATER_PPM)
    acq = base_acq(float(sf), dwell_s, data, nucleus, centre, source)
    for key, name in (("EchoTime", "echo_time_s"), ("RepetitionTime", "repetition_time_s"),
                      ("MixingTime", "mixing_time_s")):
        if isinstance(hdr.get(key), int | float):
            acq[name] = float(hdr[key])
    seq = sequence_name(*(hdr.get(k) for k in ("SequenceName", "PulseSequenceType", "SequenceType",
                                              "ProtocolName", "sequence")))
    if seq:
        acq["sequence"] = seq
    return acq


def load_transients(path: str | Path) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
    """Transients (n, coils, points) complex64 as stored, acquisition fields, and the header extension
    (the form export, replay and refit use)."""
    s = read(Path(path))
    return s.data, s.acq, s.header


def write(spectrum: Spectrum, path: Path) -> None:
    """(1, 1, 1, points, coils, transients) with DIM_COIL and DIM_DYN, dwell in pixdim[4] (s)."""
    import nibabel as nib

    acq = spectrum.acq
    data = np.transpose(np.asarray(spectrum.data, np.complex64), (2, 1, 0))[None, None, None]
    img = nib.Nifti2Image(data, np.eye(4))
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = float(acq["dwell_time_s"])
    ext = {"SpectrometerFrequency": [float(acq["spectrometer_frequency_mhz"])],
           "ResonantNucleus": [acq.get("nucleus", "1H")], "dim_5": "DIM_COIL", "dim_6": "DIM_DYN"}
    for key, name in (("EchoTime", "echo_time_s"), ("RepetitionTime", "repetition_time_s")):
        if acq.get(name) is not None:
            ext[key] = float(acq[name])
    if acq.get("sequence"):
        ext["SequenceName"] = str(acq["sequence"])
    img.header.extensions.append(nib.nifti1.Nifti1Extension(ECODE_NIFTI_MRS, json.dumps(ext).encode()))
    img.header["intent_name"] = b"mrs_v0_9"
    nib.save(img, str(path))
