"""Play a session plan as a scanner would: SESSION_START, paced transients and events, SESSION_END.

The forward model (`simulator.forward`) makes the data; this module only times it and sends it
through the reliable sender, so the agent sees exactly what a real scanner would send.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from pathlib import Path

from protocols.plan import SessionPlan
from protocols.sender import CurveClientKeys, Faults, Sender, StreamReport
from protocols.wire import encode, encode_transient

log = logging.getLogger("mrsmon.simulator")


def parse_speed(speed: str | float) -> float:
    """'max' -> infinity; a positive number otherwise."""
    if str(speed).lower() == "max":
        return float("inf")
    value = float(speed)
    if value <= 0:
        raise ValueError(f"speed must be positive or 'max', not {speed}")
    return value


def default_session_id(plan: SessionPlan, seed: int) -> str:
    return f"{plan.name}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def stream_session(plan: SessionPlan, address: str, seed: int = 0, speed: float = 1.0,
                   max_transients: int | None = None, session_id: str | None = None, kit: str | None = None,
                   condition: str | None = None, coils: int | None = None, keys: CurveClientKeys | None = None,
                   faults: Faults | None = None, truth_path: str | Path | None = None,
                   progress: Callable[[StreamReport, float], None] | None = None,
                   subject: str | None = None, session_code: str = "ses-01") -> StreamReport:
    from simulator.forward import SessionSimulator  # heavy (basis simulation): import when used

    sim = SessionSimulator(plan, seed=seed, condition=condition, coils=coils)
    sid = session_id or default_session_id(plan, seed)
    report = StreamReport(sid)
    start_ns = time.time_ns()
    header = {**sim.header_fields(), "subject": subject or f"sim{seed:03d}", "session_code": session_code,
              "kit_code": kit or plan.kit_code, "protocol": plan.name, "start_time_ns": start_ns}
    wall0 = time.monotonic()
    seq = 0
    with Sender(address, sid, curve=keys, faults=faults) as sender:
        sender.send(seq, encode("SESSION_START", sid, seq, **header))
        # Scans and timeline events interleaved by acquisition time.
        events = [(t_s, 1, i, ("event", (kind, value, note))) for i, (t_s, kind, value, note)
                  in enumerate(sim.events()) if t_s >= 0]
        pre_events = [(t_s, kind, value, note) for t_s, kind, value, note in sim.events() if t_s < 0]
        for t_s, kind, value, note in pre_events:  # e.g. pretreatment before the scan: send first
            seq += 1
            sender.send(seq, encode("EVENT", sid, seq, t_ns=start_ns + int(t_s * 1e9), kind=kind,
                                    value=value, note=note))
            report.events += 1
        heapq.heapify(events)
        last_progress = 0.0
        for scan in sim.scans():
            while events and events[0][0] <= scan.t_s:
                t_ev, _, _, (_, (kind, value, note)) = heapq.heappop(events)
                seq += 1
                sender.send(seq, encode("EVENT", sid, seq, t_ns=start_ns + int(t_ev * 1e9), kind=kind,
                                        value=value, note=note))
                report.events += 1
            wait = wall0 + scan.t_s / speed - time.monotonic()
            if wait > 0:
                sender.idle(wait)
            seq += 1
            flags = {"noise": ("noise",), "dummy": ("dummy",), "water_ref": ("water_ref",)}.get(scan.kind, ())
            sender.send(seq, encode_transient(sid, seq, scan.data, t_ns=start_ns + int(scan.t_s * 1e9),
                                              scan=scan.index, flags=flags))
            report.transients += 1
            if progress and time.monotonic() - last_progress > 0.5:
                last_progress = time.monotonic()
                progress(report, scan.t_s)
            if max_transients is not None and report.transients >= max_transients:
                break
        end_t_s = scan.t_s + plan.acquisition.repetition_time_s if report.transients else 0.0
        seq += 1
        sender.send(seq, encode("SESSION_END", sid, seq, t_ns=start_ns + int(end_t_s * 1e9), reason="completed"))
        report.last_seq = seq
        report.acknowledged = sender.flush()
        report.reconnects, report.resends, report.refused = sender.reconnects, sender.resends, sender.refused
    report.wall_s = time.monotonic() - wall0
    if truth_path:
        Path(truth_path).parent.mkdir(parents=True, exist_ok=True)
        sim.write_truth(truth_path, n_scans=report.transients)  # only what was actually sent
    if progress:
        progress(report, end_t_s)
    return report
