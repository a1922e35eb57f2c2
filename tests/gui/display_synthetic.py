"""A synthetic stored session (docs/session-format.md) with known truth, for display tests and bench.

Written the way the agent writes a folder: session.json, plan.json, fits.jsonl, events.jsonl,
spectra/block-NNNNN.npz, transients.jsonl, end.json. Values follow a ketamine-like response: the
Glu/tCr ratio is flat at `base_ratio` until the infusion, then rises by `response_pct`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mrs.basis import ppm_axis
from protocols.plan import load_plan

START_NS = 1_790_000_000_000_000_000

# (name, ppm, protons-ish amplitude) of the few peaks the fake spectra show
_PEAKS = {
    "NAA": [(2.01, 3.0), (2.49, 0.3), (2.67, 0.3)],
    "Cr": [(3.03, 1.6), (3.92, 1.2)],
    "PCr": [(3.03, 1.2), (3.94, 0.9)],
    "GPC": [(3.21, 1.3)],
    "mI": [(3.53, 0.8), (3.61, 0.8), (4.06, 0.3)],
    "Glu": [(2.04, 0.3), (2.12, 0.3), (2.34, 0.7), (2.36, 0.5), (3.74, 0.5)],
    "Gln": [(2.13, 0.2), (2.45, 0.4), (3.76, 0.3)],
}


def _lorentz(ppm: np.ndarray, centre: float, width_ppm: float) -> np.ndarray:
    return 1.0 / (1.0 + ((ppm - centre) / (width_ppm / 2)) ** 2)


def make_session(root: Path, *, plan_name: str = "ketamine-infusion", n_blocks: int | None = None,
                 base_ratio: float = 1.25, response_pct: float = 6.0, noise_pct: float = 2.0,
                 failed_blocks: tuple[int, ...] = (), motion_blocks: tuple[int, ...] = (),
                 drift_hz_per_min: float = 0.4, fwhm_hz: float = 6.0, seed: int = 0,
                 spectra: bool = True, ended: bool = True, session_id: str = "synth-0",
                 events: list[dict[str, Any]] | None = None) -> Path:
    """Write a session folder under `root` and return its path."""
    rng = np.random.default_rng(seed)
    plan = load_plan(plan_name)
    acq = plan.acquisition
    tr_s = acq.repetition_time_s
    block_s = plan.block_transients * tr_s
    total_blocks = n_blocks if n_blocks is not None else int(plan.duration_min * 60 // block_s)
    inf = plan.phase("infusion")
    inf_start_s = 60.0 * (inf.start_min if inf else plan.duration_min / 4)
    folder = root / session_id
    (folder / "spectra").mkdir(parents=True, exist_ok=True)
    header = {"v": 1, "type": "SESSION_START", "session": session_id, "seq": 0,
              "spectrometer_frequency_mhz": acq.spectrometer_frequency_mhz, "nucleus": acq.nucleus,
              "dwell_time_s": acq.dwell_time_s, "points": acq.points, "coils": acq.coils,
              "echo_time_s": acq.echo_time_ms / 1000, "repetition_time_s": tr_s,
              "sequence": acq.sequence, "subject": "sub-01", "session_code": "ses-01",
              "kit_code": "KIT-0042", "protocol": plan.name, "start_time_ns": START_NS,
              "received_ns": START_NS + 1000}
    (folder / "session.json").write_text(json.dumps(header))
    (folder / "plan.json").write_text(json.dumps(plan.to_public_dict()))

    ppm_full = ppm_axis(acq.points, acq.dwell_time_s, acq.spectrometer_frequency_mhz)
    lo, hi = plan.fit_window_ppm
    win = (ppm_full >= lo) & (ppm_full <= hi)
    ppm = ppm_full[win]
    fits, trans = [], []
    for b in range(total_blocks):
        t0, t1 = b * block_s, (b + 1) * block_s
        t_mid = 0.5 * (t0 + t1)
        since = (t_mid - inf_start_s) / 60.0
        rise = 0.0 if since < 2 else min(1.0, (since - 2) / 10.0)
        ratio = base_ratio * (1 + response_pct / 100 * rise) * (1 + noise_pct / 100 * rng.standard_normal())
        tcr = 8.0
        glu = ratio * tcr
        gln = 3.0 * (1 + 0.05 * rng.standard_normal())
        naa = 10.0 * (1 + 0.01 * rng.standard_normal())
        crlb_glu = 4.0 + 0.5 * rng.standard_normal()
        freq = drift_hz_per_min * t_mid / 60.0 + 0.2 * rng.standard_normal()
        motion = 10 if b in motion_blocks else 0
        ok = b not in failed_blocks
        res: dict[str, Any] = {
            "block": b, "t_s": t_mid, "t_start_s": t0, "t_end_s": t1,
            "n_transients": plan.block_transients - motion, "n_rejected": motion,
            "rejected": {"motion": motion} if motion else {},
            "conc": {"Glu": glu, "Gln": gln, "Glx": glu + gln, "NAA": naa, "NAAG": 1.5,
                     "tNAA": naa + 1.5, "Cr": 4.2, "PCr": 3.8, "tCr": tcr, "mI": 5.0},
            "sd": {"Glu": glu * crlb_glu / 100, "Gln": 0.4, "Glx": 0.5, "NAA": 0.2, "tNAA": 0.2,
                   "tCr": 0.1, "mI": 0.3},
            "crlb_pct": {"Glu": crlb_glu, "Gln": 13.0, "Glx": 4.0, "NAA": 2.0, "tNAA": 1.8, "tCr": 1.3},
            "ratios": {"Glu/tCr": ratio, "Glx/tNAA": (glu + gln) / (naa + 1.5),
                       "Glu/tNAA": glu / (naa + 1.5)},
            "ratios_sd": {"Glu/tCr": ratio * crlb_glu / 100, "Glx/tNAA": 0.03, "Glu/tNAA": 0.03},
            "qc": {"snr": 40 + 3 * rng.standard_normal(),
                   "naa_fwhm_hz": fwhm_hz + 0.2 * rng.standard_normal(),
                   "water_fwhm_hz": None, "freq_offset_hz": freq, "drift_hz_per_min": drift_hz_per_min,
                   "max_jump_hz": 0.4, "phase_deg": 2.0, "residual_rel": 1.05,
                   "fit_status": "ok" if ok else "failed", "message": "" if ok else "did not converge",
                   "fit_ms": 4.0},
        }
        fits.append(res)
        for i in range(plan.block_transients):
            trans.append({"seq": 1 + b * plan.block_transients + i, "t_s": t0 + i * tr_s,
                          "freq_hz": freq, "phase_deg": 0.0,
                          "rejected": "motion" if i < motion else None, "block": b})
        if spectra:
            width = fwhm_hz / acq.spectrometer_frequency_mhz
            comps = {}
            scale = {"NAA": naa / 10, "Cr": 1.0, "PCr": 1.0, "GPC": 1.0, "mI": 1.0, "Glu": glu / 10,
                     "Gln": gln / 3}
            for name, peaks in _PEAKS.items():
                comps[name] = scale[name] * sum(a * _lorentz(ppm, c, width) for c, a in peaks)
            base = 0.15 + 0.05 * (ppm - 2.0)
            fit = sum(comps.values()) + base
            data = fit + 0.04 * rng.standard_normal(ppm.shape)
            np.savez(folder / "spectra" / f"block-{b:05d}.npz", ppm=ppm, data=data, fit=fit,
                     baseline=base, **{f"comp_{k}": v for k, v in comps.items()})
    (folder / "fits.jsonl").write_text("".join(json.dumps(r) + "\n" for r in fits))
    (folder / "transients.jsonl").write_text("".join(json.dumps(r) + "\n" for r in trans))
    if events is None:
        events = [{"kind": "infusion_start", "t_s": inf_start_s + 12.0, "source": "display",
                   "value": {"dose_mg_per_kg": 0.5}, "note": ""},
                  {"kind": "vitals", "t_s": inf_start_s + 600.0, "source": "display",
                   "value": {"sys_mmhg": 131, "dia_mmhg": 82, "hr_bpm": 74}, "note": ""},
                  {"kind": "infusion_stop", "t_s": inf_start_s + 2400.0, "source": "scanner",
                   "value": {}, "note": ""}]
    rows = []
    for i, e in enumerate(events):
        row = {"seq": None if e.get("source") == "display" else 100 + i, "source": e.get("source", "display"),
               "kind": e["kind"], "t_ns": START_NS + int(e["t_s"] * 1e9), "t_s": e["t_s"],
               "value": e.get("value", {}), "note": e.get("note", "")}
        rows.append(row)
    (folder / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if ended:
        (folder / "end.json").write_text(json.dumps({"type": "SESSION_END", "reason": "completed"}))
    return folder
