"""Vendor raw files (Siemens twix / RDA / DICOM, Philips SDAT+SPAR / DATA+LIST / DICOM, GE P-file) as
a replay source: `spec2nii` converts them to NIfTI-MRS (with `--anon`, so no identifying header field
survives the conversion), and the NIfTI-MRS files are read like any other.

Only the conversion is ours to choose; the readers are spec2nii's. The format is told by the file
name (and, for DICOM, by its Manufacturer tag); pairs are found beside the file given (an SDAT's SPAR,
a DATA's LIST and SPAR). A conversion that fails gives spec2nii's last message in one line.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

VENDOR_SUFFIXES = (".dat", ".rda", ".dcm", ".ima", ".sdat", ".spar", ".data", ".list", ".7")
REFERENCE_WORDS = ("ref", "wref", "water", "_w.", "_w_")


class VendorError(ValueError):
    """The file cannot be converted or replayed."""


@dataclass
class Converted:
    metabolite: list[Path]
    water: list[Path] = field(default_factory=list)
    command: list[str] = field(default_factory=list)


def is_vendor_file(path: Path) -> bool:
    return path.suffix.lower() in VENDOR_SUFFIXES or (path.is_dir() and any(path.glob("*.[dDiI][cCmM][mMaA]")))


def _sibling(path: Path, suffix: str) -> Path | None:
    """The file beside `path` with the same stem and `suffix`, in any letter case."""
    for cand in path.parent.iterdir():
        if cand.stem == path.stem and cand.suffix.lower() == suffix:
            return cand
    return None


def _dicom_subcommand(path: Path) -> str:
    import pydicom

    first = path if path.is_file() else next(iter(sorted(p for p in path.iterdir() if p.is_file())), None)
    if first is None:
        raise VendorError(f"{path} holds no DICOM file")
    try:
        manufacturer = str(pydicom.dcmread(first, stop_before_pixels=True, force=True).get("Manufacturer", ""))
    except Exception as exc:  # pydicom raises many kinds for a non-DICOM file
        raise VendorError(f"{first} is not a readable DICOM file: {exc}") from None
    low = manufacturer.lower()
    if "philips" in low:
        return "philips_dcm"
    if "uih" in low or "united imaging" in low:
        return "uih"
    return "dicom"  # Siemens (and spec2nii's generic DICOM MRS reader)


def spec2nii_arguments(path: Path) -> list[str]:
    """The spec2nii subcommand and inputs for one vendor file (or DICOM folder)."""
    suffix = path.suffix.lower()
    if suffix == ".dat":
        return ["twix", "-e", "image", str(path)]
    if suffix == ".rda":
        return ["rda", str(path)]
    if suffix == ".7":
        return ["ge", str(path)]
    if suffix in (".sdat", ".spar"):
        sdat, spar = (path, _sibling(path, ".spar")) if suffix == ".sdat" else (_sibling(path, ".sdat"), path)
        if sdat is None or spar is None:
            raise VendorError(f"{path}: a Philips SDAT needs its SPAR beside it (same name)")
        return ["philips", str(sdat), str(spar)]
    if suffix in (".data", ".list"):
        data, lst = (path, _sibling(path, ".list")) if suffix == ".data" else (_sibling(path, ".data"), path)
        spar = _sibling(path, ".spar") or next(iter(sorted(path.parent.glob("*.[sS][pP][aA][rR]"))), None)
        if data is None or lst is None or spar is None:
            raise VendorError(f"{path}: Philips DATA/LIST needs the .list, the .data and a .SPAR beside it")
        return ["philips_dl", str(data), str(lst), str(spar)]
    if path.is_dir() or suffix in (".dcm", ".ima"):
        return [_dicom_subcommand(path), str(path)]
    raise VendorError(f"{path}: not a vendor format spec2nii converts here ({', '.join(VENDOR_SUFFIXES)})")


def convert(path: str | Path, out_dir: str | Path, subcommand: list[str] | None = None) -> Converted:
    """Run spec2nii; the NIfTI-MRS outputs split into metabolite and water-reference files by name."""
    p = Path(path)
    if not p.exists():
        raise VendorError(f"{p} does not exist")
    args = subcommand or spec2nii_arguments(p)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", "from spec2nii.spec2nii import main; main()", *args, "-o", str(out), "-f",
           _safe_name(p), "--anon"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    made = sorted(out.glob("*.nii*"))
    if proc.returncode != 0 or not made:
        last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
        raise VendorError(f"spec2nii {args[0]} could not convert {p.name}: {last[:200]}")
    water = [m for m in made if any(w in m.name.lower() for w in REFERENCE_WORDS)]
    metab = [m for m in made if m not in water]
    return Converted(metab or water, water if metab else [], ["spec2nii", *args])


def _safe_name(p: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", p.stem)[:60] or "vendor"


def vendor_source(path: str | Path, water: str | Path | None = None, sequence: str | None = None):
    """(header, [(flags, offset_s, data, scan)], end_s, notes) for replaying a vendor file.

    Water references (spec2nii's reference outputs, and `water` if given) come first, then every
    metabolite transient at the repetition time. A reference whose shape differs from the metabolite
    data cannot share the session and is left out, with a note saying so."""
    from mrs.io.nifti_mrs import load_transients as load_nifti_mrs
    from protocols.mrd.header import normalise_sequence

    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mrsmon-spec2nii-") as tmp:
        conv = convert(path, Path(tmp) / "main")
        water_files = list(conv.water)
        if water is not None:
            water_files += convert(water, Path(tmp) / "water").metabolite
        metab, acq, ext = load_nifti_mrs(conv.metabolite[0])
        for extra in conv.metabolite[1:]:
            notes.append(f"{extra.name}: a further output of spec2nii, not replayed")
        refs = []
        for wf in water_files:
            w, _, _ = load_nifti_mrs(wf)
            if w.shape[1:] != metab.shape[1:]:
                notes.append(f"water reference {wf.name} is {w.shape[1]}x{w.shape[2]}, the data "
                             f"{metab.shape[1]}x{metab.shape[2]}: not replayed")
                continue
            refs.extend(w)
    tr_s = float(acq.get("repetition_time_s") or 2.0)
    seq_name = sequence or acq.get("sequence") or ext.get("ProtocolName") or Path(path).name
    seq = normalise_sequence(str(seq_name))
    if not sequence and not acq.get("sequence"):
        notes.append(f"sequence {seq} taken from {'the protocol name' if ext.get('ProtocolName') else 'the file name'}"
                     " (the file does not state it; give --sequence to set it)")
    header = {**acq, "repetition_time_s": tr_s, "echo_time_s": float(acq.get("echo_time_s") or 0.0),
              "sequence": seq, "subject": "replay", "session_code": "ses-01", "kit_code": "KIT-0000",
              "protocol": "replay"}
    items = [(("water_ref",), k * tr_s, np.asarray(x), k) for k, x in enumerate(refs)]
    base = len(refs) * tr_s
    items += [((), base + k * tr_s, np.asarray(x), len(refs) + k) for k, x in enumerate(metab)]
    notes.insert(0, f"converted with {' '.join(conv.command[:2])}: {len(refs)} water reference and "
                    f"{len(metab)} metabolite transients, {metab.shape[1]} coils x {metab.shape[2]} points")
    return header, items, base + len(metab) * tr_s, notes
