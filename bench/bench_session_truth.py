"""A whole simulated session through the real agent, scored against the simulator's ground truth.

For each scenario: the Glu/tCr time course against the true (T2-weighted) block means (bias, RMSE),
the late-infusion rise (measured vs true, with a 95% CI from the block scatter: detected if the CI
excludes zero), motion transients rejected (and false rejections), and frequency tracking (the
per-transient alignment against the true frequency, after removing the constant offset of the running
reference).

usage: python bench/bench_session_truth.py [--protocols ketamine-placebo,drift,motion] [--seed 11]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "support"))
sys.path.insert(0, str(Path(__file__).parent))

from _table import write_table  # noqa: E402
from agent_process import AgentProcess  # noqa: E402

from protocols.plan import load_plan  # noqa: E402
from protocols.session_folder import SessionReader  # noqa: E402
from simulator.stream import stream_session  # noqa: E402


def score(folder: Path, truth: dict, plan) -> dict:
    reader = SessionReader(folder)
    fits = [f for f in reader.fits() if f["qc"]["fit_status"] == "ok"]
    tt = np.array([r["t_s"] for r in truth["transients"]])
    key = "apparent_ratios" if "apparent_ratios" in truth["transients"][0] else "ratios"
    true_ratio = np.array([r[key]["Glu/tCr"] for r in truth["transients"]])
    t = np.array([f["t_s"] for f in fits])
    meas = np.array([f["ratios"]["Glu/tCr"] for f in fits])
    true_b = np.array([true_ratio[(tt >= f["t_start_s"]) & (tt <= f["t_end_s"])].mean() for f in fits])
    rel = meas / true_b - 1
    out = {"blocks": len(fits), "bias_pct": 100 * rel.mean(), "rmse_pct": 100 * np.sqrt((rel ** 2).mean()),
           "rmse_after_bias_pct": 100 * rel.std(), "crlb_pct": float(np.median([f["crlb_pct"]["Glu"] for f in fits])),
           # the CRLB of the measure itself (Glu and tCr errors correlate): what the scatter should match
           "ratio_sd_pct": float(np.median([100 * f["ratios_sd"]["Glu/tCr"] / f["ratios"]["Glu/tCr"] for f in fits]))}
    inf = plan.phase("infusion")
    if inf is not None:
        base = t < inf.start_min * 60
        late = (t >= (inf.start_min + inf.end_min) / 2 * 60) & (t <= inf.end_min * 60)
        if base.sum() >= 2 and late.sum() >= 2:
            m_change = 100 * (meas[late].mean() / meas[base].mean() - 1)
            t_change = 100 * (true_b[late].mean() / true_b[base].mean() - 1)
            se = 100 * np.sqrt(meas[late].var(ddof=1) / late.sum() + meas[base].var(ddof=1) / base.sum()) \
                / meas[base].mean()
            dof = late.sum() + base.sum() - 2
            half = stats.t.ppf(0.975, dof) * se
            out.update(change_pct=m_change, true_change_pct=t_change, ci_low=m_change - half, ci_high=m_change + half)
    rows = {r["seq"]: r for r in reader.transient_records()}
    # truth is per metabolite transient in scan order; the session's metabolite seqs are in the same order
    seqs = list(reader.metabolite_seqs())
    motion = np.array([bool(r["motion"]) for r in truth["transients"]])[:len(seqs)]
    rejected = np.array([rows.get(int(s), {}).get("rejected") is not None for s in seqs])
    out["motion_transients"] = int(motion.sum())
    out["motion_rejected"] = int((motion & rejected).sum())
    out["false_rejections"] = int((~motion & rejected).sum())
    est = np.array([rows.get(int(s), {}).get("freq_hz") for s in seqs], dtype=float)
    true_f = np.array([r["freq_hz"] for r in truth["transients"]])[:len(seqs)]
    ok = np.isfinite(est) & ~motion & ~rejected
    sign = 1.0 if np.corrcoef(est[ok], true_f[ok])[0, 1] >= 0 else -1.0
    err = sign * est[ok] - true_f[ok]
    err -= np.median(err)
    out.update(freq_sign=sign, freq_err_rms_hz=float(np.sqrt((err ** 2).mean())),
               freq_err_p95_hz=float(np.percentile(np.abs(err), 95)), true_drift_range_hz=float(np.ptp(true_f)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocols", default="ketamine-placebo,drift,motion")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    rows, notes = [], []
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        for name in args.protocols.split(","):
            plan = load_plan(name)
            with AgentProcess(Path(tmp) / name, extra=["--no-export"]) as agent:
                t0 = time.monotonic()
                truth_path = Path(tmp) / f"{name}-truth.json"
                rep = stream_session(plan, agent.listen, seed=args.seed, speed=float("inf"), session_id=name,
                                     truth_path=truth_path)
                expected = (plan.n_transients // plan.block_transients)
                folder = Path(tmp) / name / name
                while len(SessionReader(folder).fits()) < expected and time.monotonic() - t0 < 900:
                    time.sleep(1.0)
                wall = time.monotonic() - t0
            s = score(folder, json.loads(truth_path.read_text()), plan)
            change = (f"{s['change_pct']:+.1f} [{s['ci_low']:+.1f}, {s['ci_high']:+.1f}]"
                      if "change_pct" in s else "n/a")
            rows.append([name, plan.acquisition.coils, rep.transients, s["blocks"], s["bias_pct"], s["rmse_pct"],
                         s["rmse_after_bias_pct"], s["ratio_sd_pct"], s["crlb_pct"], change,
                         f"{s['true_change_pct']:+.1f}" if "true_change_pct" in s else "n/a",
                         f"{s['motion_rejected']}/{s['motion_transients']}", s["false_rejections"],
                         s["freq_err_rms_hz"], s["true_drift_range_hz"], round(wall)])
            notes.append(f"{name}: frequency estimate sign {s['freq_sign']:+.0f} relative to the true offset; "
                         f"p95 alignment error {s['freq_err_p95_hz']:.2f} Hz")
    write_table("session_truth", "Whole simulated sessions through the agent, scored against the simulator's truth",
                ["protocol", "coils", "transients", "blocks", "Glu/tCr bias %", "RMSE %", "RMSE-bias %",
                 "Glu/tCr CRLB %", "Glu CRLB %", "late-infusion change % [95% CI]", "true change %", "motion rejected",
                 "false rej.", "freq err RMS Hz", "true drift range Hz", "wall s"], rows,
                notes="\n".join(notes) + "\nTruth = the simulator's T2-weighted (apparent) Glu/tCr averaged over each "
                                         "block's transients. Seed " + str(args.seed) + ".")


if __name__ == "__main__":
    main()
