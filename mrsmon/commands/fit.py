"""`mrsmon fit DATA.nii.gz`: fit a NIfTI-MRS file (one spectrum, or blocks of transients).

The file is read with the `nifti_mrs` package. Its data are stored in the NIfTI-MRS convention;
`NIFTI_MRS.__getitem__` returns the conjugate (FSL-MRS's internal convention), so we conjugate back.
Supported layouts: a single voxel with optional DIM_COIL and DIM_DYN (any order, dimensions 5-7);
other tagged dimensions are refused with a sentence. Every block goes through the same
`mrs.pipeline.BlockProcessor` as the live agent, so a refit of exported data matches the live fit.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

SEQUENCE_PATTERNS = (("slaser", "sLASER"), ("semi-laser", "sLASER"), ("semilaser", "sLASER"), ("laser", "sLASER"),
                     ("press", "PRESS"), ("steam", "STEAM"), ("fid", "FID"))


def read_nifti_mrs(path: str | Path) -> tuple[np.ndarray, dict]:
    """(dynamics, coils, points) complex64 in the NIfTI-MRS convention, and acquisition fields."""
    from nifti_mrs.nifti_mrs import NIFTI_MRS

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        img = NIFTI_MRS(str(path))
    except Exception as exc:
        raise ValueError(f"{path} is not a readable NIfTI-MRS file ({exc})") from None
    data = np.asarray(img[:]).conj()  # back to the standard's convention (see module docstring)
    if data.ndim < 4 or any(s != 1 for s in data.shape[:3]):
        raise ValueError(f"{path}: only single-voxel data are supported (shape {data.shape})")
    tags = list(img.dim_tags)[: data.ndim - 4]
    data = data.reshape(data.shape[3:])
    unknown = [t for t in tags if t not in ("DIM_COIL", "DIM_DYN")]
    if unknown:
        raise ValueError(f"{path}: cannot fit data with dimension(s) {', '.join(map(str, unknown))}; "
                         "combine or select them first (supported: DIM_COIL, DIM_DYN)")
    # move to (points, coil, dyn)
    axes = {t: i + 1 for i, t in enumerate(tags)}
    for tag in ("DIM_COIL", "DIM_DYN"):
        if tag not in axes:  # a missing dimension becomes a trailing axis of length 1
            data = data[..., None]
            axes[tag] = data.ndim - 1
    arr = np.moveaxis(data, [axes["DIM_DYN"], axes["DIM_COIL"], 0], [0, 1, 2])
    hdr = img.hdr_ext.to_dict() if hasattr(img.hdr_ext, "to_dict") else dict(json.loads(str(img.hdr_ext)))
    acq = acquisition_from_header(hdr, float(img.dwelltime), arr.shape[2], arr.shape[1])
    return np.ascontiguousarray(arr.astype(np.complex64)), acq


def acquisition_from_header(hdr: dict, dwell_s: float, points: int, coils: int) -> dict:
    """SESSION_START-like fields from a NIfTI-MRS header extension."""
    sf = hdr.get("SpectrometerFrequency")
    if isinstance(sf, list | tuple):
        sf = sf[0] if sf else None
    if sf is None:
        raise ValueError("NIfTI-MRS header has no SpectrometerFrequency")
    acq: dict = {"spectrometer_frequency_mhz": float(sf), "dwell_time_s": float(dwell_s), "points": int(points),
                 "coils": int(coils), "nucleus": (hdr.get("ResonantNucleus") or ["1H"])[0]}
    if hdr.get("EchoTime") is not None:
        acq["echo_time_s"] = float(hdr["EchoTime"])
    if hdr.get("RepetitionTime") is not None:
        acq["repetition_time_s"] = float(hdr["RepetitionTime"])
    text = " ".join(str(hdr.get(k, "")) for k in ("SequenceName", "PulseSequenceType", "SequenceType",
                                                 "ProtocolName", "sequence")).lower()
    for pattern, name in SEQUENCE_PATTERNS:
        if re.search(pattern, text):
            acq["sequence"] = name
            break
    return acq


def load_basis(spec: str, acq: dict):
    """None for `auto` (the BlockProcessor simulates one from `acq`), else the file or folder."""
    if spec in (None, "", "auto"):
        missing = [k for k in ("echo_time_s", "sequence") if k not in acq]
        if missing:
            raise ValueError("--basis auto needs EchoTime and a recognisable SequenceName in the NIfTI-MRS "
                             f"header (missing {', '.join(missing)}); pass --basis PATH instead")
        return None
    from mrs.io import read_basis

    return read_basis(spec)


def fit_file(data_path: str, basis_spec: str = "auto", block: int | None = None,
             water_path: str | None = None, spectra: bool = False) -> list:
    """Block results (mrs.results.BlockResult, docs/results.md) for a NIfTI-MRS file; the alarms with the
    default plan's thresholds. Without `spectra` the results carry none."""
    from mrs.pipeline import BlockProcessor
    from mrs.results import BlockResult
    from protocols.plan import Alarms

    data, acq = read_nifti_mrs(data_path)
    basis = load_basis(basis_spec, acq)
    n_dyn = data.shape[0]
    block = n_dyn if block is None else int(block)
    if block < 1:
        raise ValueError("--block must be at least 1")
    water = None
    if water_path:
        water, wacq = read_nifti_mrs(water_path)
        if water.shape[1:] != data.shape[1:]:
            raise ValueError(f"water reference shape (coils, points) {water.shape[1:]} differs from the "
                             f"data's {data.shape[1:]}")
    proc = BlockProcessor(acq, basis, min(block, n_dyn), alarms=vars(Alarms()))
    tr = float(acq.get("repetition_time_s") or 1.0)
    out: list = []
    seq = 0
    if water is not None:
        for w in water:
            proc.add(seq, 0.0, frozenset({"water_ref"}), w)
            seq += 1
    for i, fid in enumerate(data):
        out += proc.add(seq, i * tr, frozenset(), fid)
        seq += 1
    out += proc.flush()
    results = [o for o in out if isinstance(o, BlockResult)]
    return results if spectra else [r.replace(spectrum=None) for r in results]


def run(args) -> int:
    spectra = getattr(args, "spectra", False)
    results = fit_file(args.data, args.basis, args.block, args.water, spectra)
    if args.json:
        for r in results:
            print(json.dumps(r.to_json(spectrum=spectra), separators=(",", ":")))
    else:
        print(f"{'block':>5s} {'t_s':>8s} {'n':>4s} {'Glu/tCr':>8s} {'Glx/tNAA':>8s} {'Glu CRLB%':>9s} "
              f"{'SNR':>6s} {'NAA FWHM':>8s}  status")
        for r in results:
            q = r.qc
            cells = [r.ratios.get("Glu/tCr"), r.ratios.get("Glx/tNAA"), r.crlb_pct.get("Glu"), q.snr, q.naa_fwhm_hz]
            txt = [f"{v:8.3f}" if isinstance(v, float) else f"{'-':>8s}" for v in cells]
            print(f"{r.block:5d} {r.t_s or 0:8.1f} {r.n_transients:4d} {txt[0]} {txt[1]} {txt[2]:>9s} "
                  f"{txt[3]:>6s} {txt[4]}  {q.fit_status} {q.message}")
    ok = any(r.qc.fit_status != "failed" for r in results)
    if not ok:
        print("mrsmon fit: no block could be fitted", file=sys.stderr)
    return 0 if ok else 1
