"""A simulated crossover study (`mrsmon simulate-study`) as stored, fitted, blinded session folders.

    DIR/sessions/<session-id>/   one folder per session (session.json + plan.json carry the kit code only)
    DIR/key.tsv                  kit_code, condition, sex  (the unblinding key: outside the session folders)
    DIR/truth.json               the simulated condition effect in the study analysis's estimand

Each participant has two sessions (placebo and naltrexone pretreatment, order counterbalanced: odd
participants get naltrexone first). The participant's placebo response is drawn around the plan's
`response_pct` (between-subject SD `--response-sd`); naltrexone multiplies it by a sex-specific
factor (default 0.3 in males, 0.7 in females: the blunting is stronger in males). Sessions are
written in-process through `agent.store.SessionWriter` (no sockets) from `simulator.forward` scans,
then fitted by the agent's own path (`analysis.refit.fit_session_primary`). Per-session work runs in
parallel processes.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_PROTOCOL = "ketamine-placebo"   # the acquisition and timeline; the arm is set per session
DEFAULT_COILS = 2                       # 65 min x 2 coils x 2048 points: ~64 MB per session
MALE_FACTOR = 0.3
FEMALE_FACTOR = 0.7


def design(participants: int, seed: int, response_pct: float, response_sd_pct: float) -> list[dict[str, Any]]:
    """One row per session: subject, period, condition, sex, kit code, seeds and the subject's response."""
    rng = np.random.default_rng(seed)
    kits = rng.permutation(np.arange(1000, 10000))[:2 * participants]
    rows = []
    for i in range(participants):
        sex = "M" if rng.random() < 0.5 else "F"
        resp = float(max(0.0, rng.normal(response_pct, response_sd_pct)))
        order = ("placebo", "naltrexone") if i % 2 == 0 else ("naltrexone", "placebo")
        for period, cond in enumerate(order, start=1):
            rows.append({"subject": f"P{i + 1:03d}", "session_code": f"ses-{period:02d}", "period": period,
                         "condition": cond, "sex": sex, "response_pct": resp,
                         "kit_code": f"KIT-{int(kits[2 * i + period - 1]):04d}",
                         "seed": int(seed * 100003 + 2 * i + period)})
    return rows


def session_plan(base, row: dict, male_factor: float, female_factor: float):
    sim = {**base.simulation, "condition": row["condition"], "sex": row["sex"],
           "response_pct": row["response_pct"], "naltrexone_factor_male": male_factor,
           "naltrexone_factor_female": female_factor, "scenario": "ketamine"}
    return dataclasses.replace(base, kit_code=row["kit_code"], simulation=sim)


def write_session(folder: Path, plan, seed: int, coils: int, subject: str, session_code: str,
                  start_time_ns: int, fit: bool = True, basis=None) -> dict:
    """Simulate one session into `folder` as the agent would have stored it; returns the truth."""
    from agent.store import SessionWriter
    from analysis.refit import fit_session_primary
    from simulator.forward import SessionSimulator

    sim = SessionSimulator(plan, seed=seed, coils=coils)
    sid = folder.name
    header = {**sim.header_fields(), "session": sid, "subject": subject, "session_code": session_code,
              "kit_code": plan.kit_code, "protocol": plan.name, "start_time_ns": int(start_time_ns)}
    w = SessionWriter(folder, header, plan.to_public_dict(), fsync=False)
    seq = 0
    events = sorted(sim.events(), key=lambda e: e[0])
    pending = list(events)

    def event(t_s: float, kind: str, value: dict, note: str) -> None:
        nonlocal seq
        seq += 1
        w.append_event({"seq": seq, "kind": kind, "t_ns": start_time_ns + int(t_s * 1e9), "value": value,
                        "note": note, "source": "scanner"})

    while pending and pending[0][0] < 0:
        event(*pending.pop(0))
    last_t = 0.0
    for scan in sim.scans():
        while pending and pending[0][0] <= scan.t_s:
            event(*pending.pop(0))
        seq += 1
        flags = {"noise": {"noise"}, "dummy": {"dummy"}, "water_ref": {"water_ref"}}.get(scan.kind, set())
        w.append_transient(seq, start_time_ns + int(scan.t_s * 1e9), scan.index, frozenset(flags), scan.data)
        last_t = scan.t_s
    for e in pending:
        event(*e)
    seq += 1
    w.commit()
    w.end({"type": "SESSION_END", "session": sid, "seq": seq, "reason": "completed",
           "t_ns": start_time_ns + int((last_t + plan.acquisition.repetition_time_s) * 1e9)})
    w.close()
    if fit:
        fit_session_primary(folder, basis=basis)
    return sim.truth()


def true_infusion_change_pct(plan, condition: str, sex: str | None, step_s: float = 1.0) -> float:
    """Mean true % change of Glu/tCr (= of Glu: tCr is constant) over the infusion window."""
    from simulator.timecourse import glu_scale, infusion_window_min

    window = infusion_window_min(plan)
    if window is None:
        return 0.0
    t_min = np.arange(window[0] * 60.0, window[1] * 60.0, step_s) / 60.0
    return float(np.mean(100.0 * (np.asarray(glu_scale(t_min, plan, condition, sex)) - 1.0)))


def _one(job: dict) -> dict:
    from protocols.plan import load_plan

    base = load_plan(job["protocol"])
    row = job["row"]
    plan = session_plan(base, row, job["male_factor"], job["female_factor"])
    folder = Path(job["folder"])
    t0 = time.perf_counter()
    write_session(folder, plan, row["seed"], job["coils"], row["subject"], row["session_code"],
                  job["start_time_ns"], fit=job["fit"])
    return {"folder": str(folder), "seconds": time.perf_counter() - t0,
            "true_pct": true_infusion_change_pct(plan, row["condition"], row["sex"])}


def simulate_study(out: str | Path, participants: int = 26, seed: int = 0, coils: int = DEFAULT_COILS,
                   protocol: str = DEFAULT_PROTOCOL, response_pct: float | None = None,
                   response_sd_pct: float = 1.5, male_factor: float = MALE_FACTOR,
                   female_factor: float = FEMALE_FACTOR, workers: int | None = None, fit: bool = True,
                   progress=None) -> dict:
    """Write the whole study; returns the truth dict (also written to DIR/truth.json)."""
    from protocols.plan import load_plan

    out = Path(out)
    if participants < 1:
        raise ValueError(f"--participants must be at least 1, not {participants}")
    sessions_dir = out / "sessions"
    if sessions_dir.exists() and any(sessions_dir.iterdir()):
        raise FileExistsError(f"{sessions_dir} already holds sessions; choose an empty --out")
    sessions_dir.mkdir(parents=True, exist_ok=True)
    base = load_plan(protocol)
    resp = float(base.simulation.get("response_pct", 5.0) if response_pct is None else response_pct)
    rows = design(participants, seed, resp, response_sd_pct)
    t_start = 1_700_000_000_000_000_000 + seed * 86_400_000_000_000
    jobs = []
    for k, row in enumerate(rows):
        # Session ids are neutral (no condition): the kit code is all that identifies the arm.
        sid = f"{row['subject']}-{row['session_code']}"
        jobs.append({"protocol": protocol, "row": row, "folder": str(sessions_dir / sid), "coils": coils,
                     "male_factor": male_factor, "female_factor": female_factor, "fit": fit,
                     "start_time_ns": t_start + (row["period"] - 1) * 7 * 86_400_000_000_000 + k * 1_000_000})
    n_workers = workers or max(1, min(len(jobs), os.cpu_count() or 1))
    results = []
    if n_workers == 1:
        for j in jobs:
            results.append(_one(j))
            if progress:
                progress(len(results), len(jobs))
    else:
        with ProcessPoolExecutor(n_workers) as ex:
            for r in ex.map(_one, jobs):
                results.append(r)
                if progress:
                    progress(len(results), len(jobs))
    with open(out / "key.tsv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["kit_code", "condition", "sex"])
        for row in rows:
            w.writerow([row["kit_code"], row["condition"], row["sex"]])
    per = [{"subject": r["subject"], "kit_code": r["kit_code"], "period": r["period"], "sex": r["sex"],
            "condition": r["condition"], "response_pct": round(r["response_pct"], 4),
            "true_infusion_change_pct": round(res["true_pct"], 6)} for r, res in zip(rows, results, strict=True)]
    diffs = []
    for subj in sorted({r["subject"] for r in per}):
        d = {r["condition"]: r["true_infusion_change_pct"] for r in per if r["subject"] == subj}
        diffs.append(d["naltrexone"] - d["placebo"])
    pop = _population_effect(base, resp, male_factor, female_factor)
    truth = {
        "estimand": "mean over participants of (naltrexone - placebo) mean percent change of Glu/tCr from "
                    "baseline over the infusion window (the study's condition_effect)",
        "measure": "Glu/tCr",
        "condition_effect": float(np.mean(diffs)),
        "condition_effect_population": pop,
        "participants": participants, "seed": seed, "coils": coils, "protocol": protocol,
        "response_pct": resp, "response_sd_pct": response_sd_pct,
        "naltrexone_factor_male": male_factor, "naltrexone_factor_female": female_factor,
        "sessions": per,
        "simulate_seconds": round(float(sum(r["seconds"] for r in results)), 2),
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth


def _population_effect(base, resp: float, male: float, female: float) -> float:
    """Expected effect for a 50/50 sex mix (ignoring the truncation of responses at zero)."""
    plan = dataclasses.replace(base, simulation={**base.simulation, "response_pct": resp})
    pla = true_infusion_change_pct(plan, "placebo", None)
    return float(pla * (0.5 * (male + female) - 1.0))
