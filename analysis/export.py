"""Export a stored session as MRS-BIDS: NIfTI-MRS (DIM_COIL, DIM_DYN), events, and fit derivatives.

    export_session(session_dir, bids_root) -> Path   # the subject/session folder written

Layout (labels from the pseudonymous codes, reduced to BIDS alphanumerics):

    ROOT/dataset_description.json
    ROOT/sub-X/ses-Y/mrs/sub-X_ses-Y_svs.nii.gz      metabolite transients, (1,1,1,points,coils,transients)
    ROOT/sub-X/ses-Y/mrs/sub-X_ses-Y_svs.json        sidecar (acquisition, kit code, never a condition)
    ROOT/sub-X/ses-Y/mrs/sub-X_ses-Y_mrsref.nii.gz   water-reference transients (when any were stored)
    ROOT/sub-X/ses-Y/mrs/sub-X_ses-Y_events.tsv      onset (s from the first metabolite transient), ...
    ROOT/derivatives/mrsmon/sub-X/ses-Y/mrs/sub-X_ses-Y_fits.tsv (+ .json describing every column)

The export is idempotent: a fingerprint of the session's files is stored beside the derivatives, and
an unchanged session is not rewritten; every file is written to a temporary name and renamed, and
the .nii.gz files are gzipped with mtime 0 so that two exports of the same data are byte-identical.
Data are stored as received (complex64, the NIfTI-MRS convention already), without conjugation.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np

from mrs.io.nifti_mrs import load_transients as load_nifti_mrs  # noqa: F401  (the one NIfTI-MRS reader)
from mrs.results import BlockResult, EventRecord
from protocols.session_folder import SessionReader, software_version

FLAG_WATER = 1
EXPORT_VERSION = 1


class ExportError(ValueError):
    """The session cannot be exported (nothing stored, unreadable, ...)."""


def bids_label(code: Any, fallback: str) -> str:
    """A BIDS label (letters and digits only) from a pseudonymous code: 'sub-sim 001' -> 'sim001'."""
    text = str(code or "")
    for prefix in ("sub-", "ses-"):
        if text.lower().startswith(prefix):
            text = text[len(prefix):]
    label = re.sub(r"[^A-Za-z0-9]", "", text)
    return label or fallback


def labels(header: dict) -> tuple[str, str]:
    return bids_label(header.get("subject"), "unknown"), bids_label(header.get("session_code"), "01")


# ---------------------------------------------------------------------------------------- writers
def _tmp(path: Path, tag: str = "tmp") -> Path:
    """A temporary name unique to this process and thread: concurrent exports never share one."""
    return path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.{tag}")


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = _tmp(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    _atomic_write_bytes(path, text.encode())


def _write_json(path: Path, obj: Any) -> None:
    _atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def _write_tsv(path: Path, columns: list[str], rows: list[list[Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else v for v in r])
    _atomic_write_text(path, buf.getvalue())


def _fingerprint(folder: Path) -> str:
    """Changes whenever anything the export reads changes (sizes and mtimes of the session's files)."""
    h = hashlib.sha256(f"export-v{EXPORT_VERSION}".encode())
    for name in ("session.json", "plan.json", "raw.log", "index.bin", "events.jsonl", "end.json",
                 "fits.jsonl", "transients.jsonl"):
        p = folder / name
        if p.exists():
            st = p.stat()
            h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _stack(reader: SessionReader, seqs: np.ndarray) -> np.ndarray:
    """(1, 1, 1, points, coils, n) complex64 in seq order: NIfTI-MRS dims 5 = DIM_COIL, 6 = DIM_DYN."""
    out = np.empty((1, 1, 1, reader.points, reader.coils, len(seqs)), np.complex64)
    for k, seq in enumerate(seqs):
        out[0, 0, 0, :, :, k] = reader.transient(int(seq)).T
    return out


def _nifti(reader: SessionReader, seqs: np.ndarray, water: bool):
    from nifti_mrs.create_nmrs import gen_nifti_mrs

    h = reader.header
    data = _stack(reader, seqs)
    img = gen_nifti_mrs(data, float(h["dwell_time_s"]), float(h["spectrometer_frequency_mhz"]),
                        nucleus=str(h.get("nucleus", "1H")), dim_tags=["DIM_COIL", "DIM_DYN", None],
                        no_conj=True)
    if h.get("echo_time_s") is not None:
        img.hdr_ext.set_standard_def("EchoTime", float(h["echo_time_s"]))
    if h.get("repetition_time_s") is not None:
        img.hdr_ext.set_standard_def("RepetitionTime", float(h["repetition_time_s"]))
    if h.get("mixing_time_s") is not None:
        img.hdr_ext.set_standard_def("MixingTime", float(h["mixing_time_s"]))
    if h.get("sequence"):
        img.hdr_ext.set_standard_def("SequenceName", str(h["sequence"]))
    if h.get("protocol"):
        img.hdr_ext.set_standard_def("ProtocolName", str(h["protocol"]))
    img.hdr_ext.set_standard_def("WaterSuppressed", not water)
    img.hdr_ext.set_standard_def("ConversionMethod", f"mrsmon {software_version()} export")
    img.hdr_ext.set_standard_def("SoftwareVersions", f"mrsmon {software_version()}")
    t_s = [round((int(reader.entry(int(s))["t_ns"]) - reader.start_ns) / 1e9, 9) for s in seqs]
    img.hdr_ext.set_user_def(
        "mrsmon_transients",
        {"seq": [int(s) for s in seqs], "t_s": t_s, "scan": [int(reader.entry(int(s))["scan"]) for s in seqs]},
        "Per DIM_DYN index: mrsmon sequence number, acquisition time (s from session start), scan counter")
    if h.get("kit_code"):
        img.hdr_ext.set_user_def("kit_code", str(h["kit_code"]), "Blinded kit code (never the condition)")
    img._save_hdr_ext()
    return img


def _save_nifti_gz(img, path: Path) -> None:
    """Validate, then write .nii.gz deterministically (gzip mtime 0) through temporary files."""
    from nifti_mrs import validator

    validator.validate_nifti_mrs(img.image)
    raw_tmp = _tmp(path, "raw.nii")
    img.image.save(str(raw_tmp))
    gz_tmp = _tmp(path)
    with open(raw_tmp, "rb") as src, open(gz_tmp, "wb") as dst_file:
        with gzip.GzipFile(filename="", mode="wb", fileobj=dst_file, compresslevel=1, mtime=0) as dst:
            shutil.copyfileobj(src, dst, 16 << 20)
    raw_tmp.unlink()
    os.replace(gz_tmp, path)


# ---------------------------------------------------------------------------------------- tables
FIT_BASE_COLUMNS: list[tuple[str, str, str | None]] = [
    ("block", "Block index (0-based)", None),
    ("onset", "Block start, seconds from the first metabolite transient (as in _events.tsv)", "s"),
    ("duration", "Block duration (first to last transient plus one TR)", "s"),
    ("t_s", "Block mid-time, seconds from session start", "s"),
    ("t_start_s", "First transient of the block, seconds from session start", "s"),
    ("t_end_s", "Last transient of the block plus one TR, seconds from session start", "s"),
    ("n_transients", "Transients averaged (after rejection)", None),
    ("n_rejected", "Transients rejected in the block", None),
    ("fit_status", "ok | implausible | failed; only ok rows are data", None),
    ("water_scaled", "True: concentrations in mM from the water reference; false: institutional units (tCr = 8)",
     None),
]
QC_COLUMNS: list[tuple[str, str, str | None]] = [
    ("snr", "NAA peak height over noise SD of the block average", None),
    ("naa_fwhm_hz", "NAA linewidth (FWHM)", "Hz"),
    ("water_fwhm_hz", "Water reference linewidth (FWHM)", "Hz"),
    ("freq_offset_hz", "Mean frequency correction applied to the block's transients", "Hz"),
    ("drift_hz_per_min", "Frequency drift over the recent transients", "Hz/min"),
    ("max_jump_hz", "Largest transient-to-transient frequency jump in the block", "Hz"),
    ("phase_deg", "Zero-order phase of the fit", "degree"),
    ("residual_rel", "Residual SD over noise SD (1 = fits to the noise)", None),
    ("fit_ms", "Fit time", "ms"),
]


def _col(name: str) -> str:
    return name.replace("/", "_").replace("+", "_")


def fits_table(fits: list[BlockResult], t0_s: float) -> tuple[list[str], list[list[Any]], dict[str, dict]]:
    """Columns, rows and a BIDS-style column dictionary (Description, Units) for per-block fits."""
    metabolites = sorted({k for f in fits for k in f.conc})
    ratio_names = sorted({k for f in fits for k in f.ratios})
    desc: dict[str, dict] = {}
    for name, text, unit in FIT_BASE_COLUMNS + QC_COLUMNS:
        desc[name] = {"Description": text, **({"Units": unit} if unit else {})}
    for r in ratio_names:
        desc[f"{_col(r)}_ratio"] = {"Description": f"Ratio {r} of the fitted amplitudes", "Units": "1"}
        desc[f"{_col(r)}_ratio_sd"] = {"Description": f"SD of {r} (CRLB, delta method, full covariance)",
                                       "Units": "1"}
    for m in metabolites:
        desc[f"{_col(m)}_conc"] = {"Description": f"{m} concentration (see water_scaled)",
                                   "Units": "mM or institutional units"}
        desc[f"{_col(m)}_sd"] = {"Description": f"{m} CRLB as absolute SD", "Units": "same as the concentration"}
        desc[f"{_col(m)}_crlb_pct"] = {"Description": f"{m} CRLB relative to the concentration", "Units": "%"}
    columns = list(desc)
    rows = []
    for f in fits:
        row: dict[str, Any] = {
            "block": f.block,
            "onset": None if f.t_start_s is None else round(f.t_start_s - t0_s, 6),
            "duration": None if f.t_start_s is None or f.t_end_s is None else round(f.t_end_s - f.t_start_s, 6),
            "t_s": f.t_s, "t_start_s": f.t_start_s, "t_end_s": f.t_end_s,
            "n_transients": f.n_transients, "n_rejected": f.n_rejected,
            "fit_status": f.qc.fit_status, "water_scaled": f.water_scaled,
        }
        for name, _, _ in QC_COLUMNS:
            row[name] = getattr(f.qc, name)
        for r in ratio_names:
            row[f"{_col(r)}_ratio"] = f.ratios.get(r)
            row[f"{_col(r)}_ratio_sd"] = f.ratios_sd.get(r)
        for m in metabolites:
            row[f"{_col(m)}_conc"] = f.conc.get(m)
            row[f"{_col(m)}_sd"] = f.sd.get(m)
            row[f"{_col(m)}_crlb_pct"] = f.crlb_pct.get(m)
        rows.append([row[c] for c in columns])
    return columns, rows, desc


def events_table(events: list[EventRecord], t0_s: float) -> list[list[Any]]:
    """events.tsv rows in time order; an event without a session time has no onset and is left out."""
    rows = []
    for e in sorted((e for e in events if e.t_s is not None), key=lambda e: e.t_s):
        rows.append([round(e.t_s - t0_s, 6), 0, e.kind,
                     json.dumps(e.value, sort_keys=True) if e.value else "n/a", e.source, e.note or "n/a"])
    return rows


EVENTS_SIDECAR = {
    "onset": {"Description": "Seconds from the acquisition of the first metabolite transient (the first "
                             "DIM_DYN index of _svs.nii.gz); negative before it (e.g. oral pretreatment)",
              "Units": "s"},
    "duration": {"Description": "Zero: events are instants", "Units": "s"},
    "trial_type": {"Description": "Event kind (infusion_start, infusion_stop, vitals, pretreatment, note, ...)"},
    "value": {"Description": "Event values as JSON (e.g. pump rate, blood pressure)"},
    "source": {"Description": "scanner: sent with the data stream; display: marked by the technician"},
    "note": {"Description": "Free-text note"},
}


# ---------------------------------------------------------------------------------------- export
def export_session(session_dir: str | Path, bids_root: str | Path) -> Path:
    """Write (or refresh) the MRS-BIDS export of one session; returns ROOT/sub-X/ses-Y."""
    folder = Path(session_dir)
    reader = SessionReader(folder)
    root = Path(bids_root)
    sub, ses = labels(reader.header)
    stem = f"sub-{sub}_ses-{ses}"
    mrs_dir = root / f"sub-{sub}" / f"ses-{ses}" / "mrs"
    deriv_dir = root / "derivatives" / "mrsmon" / f"sub-{sub}" / f"ses-{ses}" / "mrs"
    stamp_path = deriv_dir / f"{stem}_export.json"
    fingerprint = _fingerprint(folder)
    if stamp_path.exists():
        try:
            stamp = json.loads(stamp_path.read_text())
        except ValueError:
            stamp = {}
        this = reader.header.get("session", folder.name)
        if stamp.get("session") not in (None, this):
            raise ExportError(f"{stem} in {root} already holds session {stamp.get('session')}, not {this}: "
                              "subject and session codes must be unique")
        if stamp.get("fingerprint") == fingerprint and (mrs_dir / f"{stem}_svs.nii.gz").exists():
            return mrs_dir.parent
    met = reader.metabolite_seqs()
    if len(met) == 0:
        raise ExportError(f"session {folder.name} holds no metabolite transients to export")
    water = reader.index["seq"][(reader.index["flags"] & FLAG_WATER) != 0]
    mrs_dir.mkdir(parents=True, exist_ok=True)
    deriv_dir.mkdir(parents=True, exist_ok=True)
    h = reader.header

    _dataset_descriptions(root)
    _save_nifti_gz(_nifti(reader, met, water=False), mrs_dir / f"{stem}_svs.nii.gz")
    t0_s = (int(reader.entry(int(met[0]))["t_ns"]) - reader.start_ns) / 1e9
    sidecar = {
        "SpectrometerFrequency": h["spectrometer_frequency_mhz"], "ResonantNucleus": h.get("nucleus", "1H"),
        "EchoTime": h.get("echo_time_s"), "RepetitionTime": h.get("repetition_time_s"),
        "MagneticFieldStrength": h.get("field_strength_t"), "PulseSequenceType": h.get("sequence"),
        "SpectralWidth": 1.0 / float(h["dwell_time_s"]), "NumberOfSpectralPoints": int(h["points"]),
        "NumberOfTransients": int(len(met)), "ReceiveCoilActiveElements": int(h["coils"]),
        "VoxelSize_mm": h.get("voxel_mm"), "ProtocolName": h.get("protocol"),
        "KitCode": h.get("kit_code"), "AcquisitionOffset_s": round(t0_s, 9),
        "AcquisitionOffsetDescription": "first metabolite transient, seconds after session start (events onset 0)",
        "WaterReference": f"{stem}_mrsref.nii.gz" if len(water) else None,
        "SoftwareVersions": f"mrsmon {software_version()}",
    }
    _write_json(mrs_dir / f"{stem}_svs.json", {k: v for k, v in sidecar.items() if v is not None})
    if len(water):
        _save_nifti_gz(_nifti(reader, water, water=True), mrs_dir / f"{stem}_mrsref.nii.gz")
        ref_side = {k: sidecar[k] for k in ("SpectrometerFrequency", "ResonantNucleus", "EchoTime",
                                            "RepetitionTime", "KitCode", "ProtocolName") if sidecar.get(k) is not None}
        _write_json(mrs_dir / f"{stem}_mrsref.json", {**ref_side, "NumberOfTransients": int(len(water)),
                                                      "WaterSuppressed": False})
    _write_tsv(mrs_dir / f"{stem}_events.tsv", ["onset", "duration", "trial_type", "value", "source", "note"],
               events_table(reader.event_records(), t0_s))
    _write_json(mrs_dir / f"{stem}_events.json", EVENTS_SIDECAR)

    columns, rows, desc = fits_table(reader.results(), t0_s)
    _write_tsv(deriv_dir / f"{stem}_fits.tsv", columns, rows)
    plan = reader.plan or {}
    _write_json(deriv_dir / f"{stem}_fits.json", {
        **desc, "GeneratedBy": {"Name": "mrsmon", "Version": software_version()},
        "BlockTransients": plan.get("block_transients"), "FitWindow_ppm": plan.get("fit_window_ppm"),
        "KitCode": h.get("kit_code")})
    _write_json(stamp_path, {"fingerprint": fingerprint, "session": h.get("session", folder.name),
                             "transients": int(len(met)), "water_ref": int(len(water))})
    return mrs_dir.parent


def _dataset_descriptions(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    main = root / "dataset_description.json"
    if not main.exists():
        _write_json(main, {"Name": "mrsmon sessions", "BIDSVersion": "1.10.0", "DatasetType": "raw",
                           "GeneratedBy": [{"Name": "mrsmon", "Version": software_version()}]})
    deriv = root / "derivatives" / "mrsmon"
    deriv.mkdir(parents=True, exist_ok=True)
    if not (deriv / "dataset_description.json").exists():
        _write_json(deriv / "dataset_description.json", {
            "Name": "mrsmon block fits", "BIDSVersion": "1.10.0", "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "mrsmon", "Version": software_version()}]})
