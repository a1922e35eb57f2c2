"""`mrsmon fit DATA`: fit a spectrum file (one spectrum, or blocks of transients) from any tool.

The file is read by `mrs.io.read_spectrum` (NIfTI-MRS, LCModel .RAW/.H2O, jMRUI text; vendor raw files
are converted by spec2nii first, as `mrsmon replay` does), the basis by `mrs.io.read_basis` (LCModel
.BASIS; a folder of FSL-MRS .json, jMRUI .txt, LCModel .RAW or NIfTI-MRS files) or simulated from the header
(`--basis auto`).
`mrs.io.prepare` then decides what the pair needs (conjugation of data or basis, field, dwell,
points, ppm reference), prints one line per decision on stderr and records them; the record goes
into every result under qc.input. Every block goes through the same `mrs.pipeline.BlockProcessor` as
the live agent, so a refit of exported data matches the live fit.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from mrs.io.spectrum import Spectrum


def load_basis(spec: str, acq: dict):
    """None for `auto` (the BlockProcessor simulates one from `acq`), else the file or folder."""
    if spec in (None, "", "auto"):
        missing = [k for k in ("echo_time_s", "sequence") if k not in acq]
        if missing:
            raise ValueError("--basis auto needs EchoTime and a recognisable SequenceName in the NIfTI-MRS "
                             f"header (missing {', '.join(missing)}); pass --basis PATH instead")
        return None
    from mrs.io import read_basis

    return read_basis(spec, assume_acq=acq)


def parse_select(items: list[str] | None) -> dict[str, int]:
    out = {}
    for item in items or []:
        tag, _, index = item.partition("=")
        if not index.strip().lstrip("-").isdigit():
            raise ValueError(f"--select takes TAG=INDEX (e.g. DIM_EDIT=0), not {item!r}")
        tag = tag.strip().upper()
        out[tag if tag.startswith("DIM_") else f"DIM_{tag}"] = int(index)
    return out


def _read(path: str, fmt: str | None, select: dict) -> Spectrum:
    from mrs.io import read_spectrum

    return read_spectrum(path, fmt, select or None)


def _read_vendor(path: str, select: dict) -> tuple[Spectrum, Spectrum | None]:
    """A vendor raw file (Siemens RDA/DICOM/twix, Philips SDAT/SPAR/DATA/LIST, GE P-file) converted by
    spec2nii (`--anon`, as replay does) and read as NIfTI-MRS; with its water reference when the
    conversion made one. The conversion is the first decision in the record."""
    import tempfile

    from analysis.vendor import VendorError, convert
    from mrs.io.spectrum import note

    with tempfile.TemporaryDirectory(prefix="mrsmon-fit-spec2nii-") as tmp:
        try:
            conv = convert(path, tmp)
        except VendorError as exc:
            raise ValueError(str(exc)) from None
        how = note("format", "converted", f"{Path(path).name}: converted by {' '.join(conv.command[:2])} (--anon) "
                   "to NIfTI-MRS", command=conv.command[:2])
        data = _read(str(conv.metabolite[0]), None, select)
        water = _read(str(conv.water[0]), None, {}) if conv.water else None
    data = dataclasses.replace(data, source=Path(path).name, notes=(how,) + data.notes)
    return data, water


def _read_any(path: str, fmt: str | None, select: dict) -> tuple[Spectrum, Spectrum | None]:
    """A spectrum file of any format, vendor raw files through spec2nii (with the water reference the
    conversion made, if any)."""
    from analysis.vendor import is_vendor_file

    if fmt is None and is_vendor_file(Path(path)):
        return _read_vendor(path, select)
    return _read(path, fmt, select), None


def fit_file(data_path: str, basis_spec: str = "auto", block: int | None = None,
             water_path: str | None = None, spectra: bool = False, conjugate: str = "auto",
             conjugate_basis: str = "auto", acq_overrides: dict | None = None, select: dict | None = None,
             fmt: str | None = None, say=None) -> list:
    """Block results (mrs.results.BlockResult, docs/results.md) for a spectrum file, each with the input
    record in qc.input; the alarms with the default plan's thresholds. Without `spectra` the results
    carry none."""
    from mrs.io.prepare import prepare
    from mrs.pipeline import BlockProcessor
    from mrs.results import BlockResult
    from protocols.plan import Alarms

    spectrum, vendor_water = _read_any(data_path, fmt, select or {})
    # a vendor water reference (Philips ref .sdat, a Siemens water .rda) is converted as the data are
    water = _read_any(water_path, None, {})[0] if water_path else vendor_water
    basis = load_basis(basis_spec, {**spectrum.acq, **(acq_overrides or {})})
    prep = prepare(spectrum, basis, conjugate, conjugate_basis, water, acq_overrides)
    for line in prep.record.lines():
        (say or (lambda s: None))(line)
    data, acq = prep.spectrum.data, prep.spectrum.acq
    n_dyn = data.shape[0]
    block = n_dyn if block is None else int(block)
    if block < 1:
        raise ValueError("--block must be at least 1")
    if prep.water is not None and prep.water.data.shape[1:] != data.shape[1:]:
        raise ValueError(f"water reference shape (coils, points) {prep.water.data.shape[1:]} differs from the "
                         f"data's {data.shape[1:]}")
    proc = BlockProcessor(acq, prep.basis, min(block, n_dyn), alarms=vars(Alarms()))
    tr = float(acq.get("repetition_time_s") or 1.0)
    out: list = []
    seq = 0
    for w in (prep.water.data if prep.water is not None else ()):
        proc.add(seq, 0.0, frozenset({"water_ref"}), w)
        seq += 1
    for i, fid in enumerate(data):
        out += proc.add(seq, i * tr, frozenset(), fid)
        seq += 1
    out += proc.flush()
    record = prep.record.as_dict()
    return [r.replace(qc=dataclasses.replace(r.qc, input=record), spectrum=r.spectrum if spectra else None)
            for r in out if isinstance(r, BlockResult)]


def run(args) -> int:
    spectra = getattr(args, "spectra", False)
    overrides = {"spectrometer_frequency_mhz": getattr(args, "cf_mhz", None),
                 "dwell_time_s": getattr(args, "dwell_s", None)}
    results = fit_file(args.data, args.basis, args.block, args.water, spectra,
                       getattr(args, "conjugate", "auto"), getattr(args, "conjugate_basis", "auto"),
                       {k: v for k, v in overrides.items() if v is not None},
                       parse_select(getattr(args, "select", None)),
                       getattr(args, "format", None), say=lambda s: print(f"mrsmon fit: {s}", file=sys.stderr))
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

