"""Replay a stored session, or a NIfTI-MRS file from another tool, through an agent as a scanner would.

    report = replay("sessions/quick-0", "tcp://127.0.0.1:5555", speed=float("inf"))

A session folder is replayed message by message in its original seq order: SESSION_START with the
stored header (a new session id, a new start time), every transient with its flags (noise, dummy and
water reference too) and its original offset from the session start, the scanner's events, and
SESSION_END. Times relative to the session start are preserved exactly, so an agent fitting the
replay computes the same numbers as the original run. A NIfTI-MRS file (transients along DIM_DYN,
with or without DIM_COIL) becomes one metabolite transient per DIM_DYN index, spaced by the
repetition time (or by mrsmon's own per-transient times when the file is an mrsmon export).
Pacing follows the original timestamps divided by `speed` (inf: as fast as the agent accepts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mrs.io.nifti_mrs import load_transients as load_nifti_mrs
from protocols.sender import Sender, StreamReport
from protocols.session_folder import SessionReader
from protocols.wire import encode, encode_transient

START_FIELDS = ("spectrometer_frequency_mhz", "nucleus", "dwell_time_s", "points", "coils", "echo_time_s",
                "repetition_time_s", "sequence", "voxel_mm", "field_strength_t", "te1_s", "mixing_time_s",
                "subject", "session_code", "kit_code", "protocol")


class ReplayError(ValueError):
    """The source cannot be replayed."""



@dataclass
class _Item:
    kind: str                    # "transient" | "event"
    offset_s: float              # from session start
    data: np.ndarray | None = None
    flags: tuple[str, ...] = ()
    scan: int = 0
    event: dict | None = None


def session_source(folder: Path) -> tuple[dict, list[_Item], float]:
    """Header fields, items in original seq order, and the end offset (s) of a stored session."""
    r = SessionReader(folder)
    header = {k: r.header[k] for k in START_FIELDS if r.header.get(k) is not None}
    keyed: list[tuple[int, _Item]] = []
    for row in r.index:
        seq = int(row["seq"])
        keyed.append((seq, _Item("transient", (int(row["t_ns"]) - r.start_ns) / 1e9, r.transient(seq),
                                 tuple(sorted(r.flags(seq))), int(row["scan"]))))
    for e in r.events():
        if e.get("seq") is None or e.get("source", "scanner") != "scanner":
            continue  # display-marked events were not sent by the scanner
        keyed.append((int(e["seq"]), _Item("event", (int(e["t_ns"]) - r.start_ns) / 1e9, event=e)))
    keyed.sort(key=lambda kv: kv[0])
    end = r.end
    if end and end.get("t_ns") is not None:
        end_s = (int(end["t_ns"]) - r.start_ns) / 1e9
    else:
        end_s = max((it.offset_s for _, it in keyed), default=0.0) + float(r.header.get("repetition_time_s") or 0)
    return header, [it for _, it in keyed], end_s


def nifti_source(path: Path, subject: str = "replay", session_code: str = "ses-01",
                 kit_code: str = "KIT-0000", protocol: str = "replay") -> tuple[dict, list[_Item], float]:
    transients, acq, ext = load_nifti_mrs(path)
    tr_s = float(acq.get("repetition_time_s") or 2.0)
    acq.setdefault("repetition_time_s", tr_s)
    acq.setdefault("echo_time_s", 0.0)
    acq.setdefault("sequence", "unknown")
    own = ext.get("mrsmon_transients") or {}
    times = own.get("t_s") if isinstance(own, dict) else None
    if not times or len(times) != len(transients):
        times = [k * tr_s for k in range(len(transients))]
    kit = ext.get("kit_code", {}).get("Value") if isinstance(ext.get("kit_code"), dict) else None
    header = {**acq, "subject": subject, "session_code": session_code, "kit_code": kit or kit_code,
              "protocol": str(ext.get("ProtocolName") or protocol)}
    items = [_Item("transient", float(t), transients[k], (), k) for k, t in enumerate(times)]
    return header, items, float(times[-1]) + tr_s if times else 0.0


def load_source(source: str | Path, **options) -> tuple[dict, list[_Item], float, str]:
    p = Path(source)
    if p.is_dir() and (p / "session.json").exists():
        header, items, end_s = session_source(p)
        return header, items, end_s, p.name
    if p.is_file() and (p.name.endswith(".nii") or p.name.endswith(".nii.gz")):
        header, items, end_s = nifti_source(p)
        return header, items, end_s, p.name.split(".nii")[0]
    from analysis.replay_sources import other_source  # MRD files and vendor raw files (spec2nii)

    other = other_source(p, **options) if p.exists() else None
    if other is not None:
        header, rows, end_s = other
        name = "".join(c if c.isalnum() or c in "._-" else "_" for c in p.name)[:50]
        return header, [_Item("transient", o, d, f, s) for f, o, d, s in rows], end_s, name
    raise ReplayError(f"{source} is neither a session folder, a NIfTI-MRS file (.nii / .nii.gz), an MRD file "
                      "(.h5 / .mrd / .bin) nor a vendor file spec2nii reads")


def _paced(items: list[_Item], speed: float, sender: Sender, wall0: float) -> Iterator[_Item]:
    for it in items:
        if np.isfinite(speed):
            wait = wall0 + max(it.offset_s, 0.0) / speed - time.monotonic()
            if wait > 0:
                sender.idle(wait)
        yield it


def replay(source: str | Path, address: str, speed: float = float("inf"), session_id: str | None = None,
           progress: Callable[[int, int], None] | None = None, flush_timeout_s: float = 600.0,
           source_options: dict[str, Any] | None = None) -> StreamReport:
    header, items, end_s, name = load_source(source, **(source_options or {}))
    sid = session_id or f"{name}-replay"
    start_ns = time.time_ns()
    report = StreamReport(sid)
    wall0 = time.monotonic()
    n_tr = sum(1 for it in items if it.kind == "transient")
    seq = 0
    with Sender(address, sid) as sender:
        sender.send(seq, encode("SESSION_START", sid, seq, **header, start_time_ns=start_ns))
        for it in _paced(items, speed, sender, wall0):
            seq += 1
            t_ns = start_ns + int(round(it.offset_s * 1e9))
            if it.kind == "transient":
                sender.send(seq, encode_transient(sid, seq, it.data, t_ns=t_ns, scan=it.scan, flags=it.flags))
                report.transients += 1
                if progress and report.transients % 64 == 0:
                    progress(report.transients, n_tr)
            else:
                e: dict[str, Any] = it.event or {}
                sender.send(seq, encode("EVENT", sid, seq, t_ns=t_ns, kind=e["kind"], value=e.get("value") or {},
                                        note=e.get("note") or ""))
                report.events += 1
        seq += 1
        sender.send(seq, encode("SESSION_END", sid, seq, t_ns=start_ns + int(round(end_s * 1e9)), reason="replayed"))
        report.last_seq = seq
        report.acknowledged = sender.flush(flush_timeout_s)
        report.refused = list(sender.refused)
        report.reconnects, report.resends = sender.reconnects, sender.resends
    if progress:
        progress(report.transients, n_tr)
    report.wall_s = time.monotonic() - wall0
    return report
