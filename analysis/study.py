"""The study view: per-session summaries of the fitted time courses and, unblinded, the crossover analysis.

    sessions = find_sessions(root)                         # session folders, or a BIDS root's derivatives
    summaries = summarise_all(sessions, scheduler=None)   # parallel: local processes, or a Dask cluster
    result = analyse(summaries, key=read_key(path))       # condition effect, paired test, mixed model

Per session and measure (Glu/tCr, the primary measure, and Glx/tNAA), using only blocks whose
`fit_status` is "ok": the baseline mean (blocks whose mid-time is before the infusion starts), the
percent change from baseline of every block, the AUC of the percent change over the infusion
(trapezoid, %·min, from the first to the last block inside the infusion window), the mean percent
change over the infusion (AUC divided by the window covered: the estimand below), and the peak
(largest percent change from infusion start onwards) with its time (min after infusion start).
The infusion window comes from the session's own infusion_start / infusion_stop events, else from
the plan's infusion phase.

Condition effect (with a key file kit_code -> condition [, sex]): the mean over participants of the
within-participant difference (other condition minus the reference condition, "placebo" when
present) in mean infusion percent change of the primary measure; paired t-test, 95 % CI and the
standardised effect size d_z. The linear mixed model `pct_change ~ condition * time + period + sex
+ condition:sex` with a random intercept per subject (statsmodels MixedLM, REML) runs on the
infusion blocks; its coefficients are reported as well.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MEASURES = ("Glu/tCr", "Glx/tNAA")
PRIMARY = "Glu/tCr"


class StudyError(ValueError):
    """The study folder or key file cannot be analysed."""


# ------------------------------------------------------------------------------ finding sessions
def find_sessions(root: str | Path) -> list[str]:
    """Session folders (anything holding session.json) under ROOT, or fits.tsv files of a BIDS root."""
    root = Path(root)
    if not root.is_dir():
        raise StudyError(f"{root} is not a folder")
    found = sorted(str(p.parent) for p in root.rglob("session.json") if "derivatives" not in p.parts[-3:-1])
    if not found:
        found = sorted(str(p) for p in (root / "derivatives" / "mrsmon").rglob("*_fits.tsv"))
    if not found:
        raise StudyError(f"{root} holds no mrsmon session folders and no BIDS derivatives/mrsmon/*_fits.tsv")
    return found


# ------------------------------------------------------------------------------ one session
def _infusion_window_s(events: list[dict], plan: dict | None) -> tuple[float, float] | None:
    start = next((float(e["t_s"]) for e in events if e.get("kind") == "infusion_start"), None)
    stop = next((float(e["t_s"]) for e in events if e.get("kind") == "infusion_stop"
                 and start is not None and float(e["t_s"]) >= start), None)
    phase = next((p for p in (plan or {}).get("phases", []) if p.get("name") == "infusion"), None)
    if start is None and phase is not None:
        start = 60.0 * float(phase["start_min"])
    if start is None:
        return None
    if stop is None and phase is not None:
        stop = 60.0 * float(phase["end_min"])
    if stop is None:
        ev = next((e for e in events if e.get("kind") == "infusion_start"), None)
        dur = (ev or {}).get("value", {}).get("duration_min")
        stop = start + 60.0 * float(dur) if dur is not None else None
    return (start, stop) if stop is not None else None


def summarise_curve(t_s: np.ndarray, values: np.ndarray, ok: np.ndarray,
                    window_s: tuple[float, float] | None) -> dict[str, Any]:
    """Baseline, % change per block, infusion AUC / mean change, peak and time to peak."""
    t = np.asarray(t_s, float)
    v = np.asarray(values, float)
    good = np.asarray(ok, bool) & np.isfinite(v) & np.isfinite(t)
    out: dict[str, Any] = {"baseline": None, "baseline_blocks": 0, "pct_change": [None] * len(t),
                           "auc_pct_min": None, "mean_infusion_pct": None, "peak_pct": None,
                           "time_to_peak_min": None, "infusion_blocks": 0}
    if window_s is None:
        return out
    start, stop = window_s
    base = good & (t < start)
    if base.sum() == 0:
        return out
    baseline = float(v[base].mean())
    pct = 100.0 * (v / baseline - 1.0)
    out.update(baseline=baseline, baseline_blocks=int(base.sum()),
               pct_change=[float(p) if g else None for p, g in zip(pct, good, strict=True)])
    inf = good & (t >= start) & (t <= stop)
    out["infusion_blocks"] = int(inf.sum())
    if inf.sum() >= 2:
        tm = (t[inf] - start) / 60.0
        auc = float(np.trapezoid(pct[inf], tm)) if hasattr(np, "trapezoid") else float(np.trapz(pct[inf], tm))
        out["auc_pct_min"] = auc
        out["mean_infusion_pct"] = auc / float(tm[-1] - tm[0]) if tm[-1] > tm[0] else float(pct[inf].mean())
    elif inf.sum() == 1:
        out["mean_infusion_pct"] = float(pct[inf][0])
    after = good & (t >= start)
    if after.any():
        k = int(np.argmax(np.where(after, pct, -np.inf)))
        out["peak_pct"] = float(pct[k])
        out["time_to_peak_min"] = float((t[k] - start) / 60.0)
    return out


def _load_session_folder(path: Path, derivative: str | None = None) -> dict[str, Any]:
    from protocols.session_folder import SessionReader

    r = SessionReader(path)
    if derivative and not (path / "derivatives" / derivative / "fits.jsonl").exists():
        raise StudyError(f"session {path.name} has no derivative set {derivative!r}")
    fits = r.fits(derivative)
    events = r.events()
    return {"id": r.header.get("session", path.name), "kit_code": r.header.get("kit_code"),
            "subject": r.header.get("subject"), "session_code": r.header.get("session_code"),
            "fits": [{"t_s": f.get("t_s"), "ok": (f.get("qc") or {}).get("fit_status") == "ok",
                      **{m: (f.get("ratios") or {}).get(m) for m in MEASURES}} for f in fits],
            "window_s": _infusion_window_s(events, r.plan)}


def _load_bids_fits(path: Path) -> dict[str, Any]:
    """A BIDS derivative fits.tsv: times are onsets from the first transient (as in _events.tsv)."""
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    side = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(".json").exists() else {}
    stem = path.name[:-len("_fits.tsv")]
    parts = dict(p.split("-", 1) for p in stem.split("_") if "-" in p)
    raw_dir = path.parents[5] / f"sub-{parts.get('sub')}" / f"ses-{parts.get('ses')}" / "mrs"
    events = []
    ev_path = raw_dir / f"{stem}_events.tsv"
    if ev_path.exists():
        with open(ev_path) as f:
            for e in csv.DictReader(f, delimiter="\t"):
                value = json.loads(e["value"]) if e.get("value") not in (None, "", "n/a") else {}
                events.append({"kind": e["trial_type"], "t_s": float(e["onset"]), "value": value})

    def num(x: str | None) -> float | None:
        return None if x in (None, "", "n/a") else float(x)

    fits = []
    for row in rows:
        onset, dur = num(row.get("onset")), num(row.get("duration"))
        t_mid = None if onset is None or dur is None else onset + dur / 2
        fits.append({"t_s": t_mid, "ok": row.get("fit_status") == "ok",
                     **{m: num(row.get(m.replace("/", "_") + "_ratio")) for m in MEASURES}})
    return {"id": stem, "kit_code": side.get("KitCode"), "subject": parts.get("sub"),
            "session_code": parts.get("ses"), "fits": fits, "window_s": _infusion_window_s(events, None)}


def summarise_session(path: str, derivative: str | None = None) -> dict[str, Any]:
    """One session's summary (runs in a worker process or on a Dask worker: a plain function of a path).
    `derivative`: the fits of SESSION/derivatives/<name> (e.g. a dynamic refit) instead of the agent's."""
    p = Path(path)
    data = _load_bids_fits(p) if p.is_file() else _load_session_folder(p, derivative)
    t = np.array([f["t_s"] if f["t_s"] is not None else np.nan for f in data["fits"]], float)
    ok = np.array([f["ok"] for f in data["fits"]], bool)
    out = {k: data[k] for k in ("id", "kit_code", "subject", "session_code")}
    out["source"] = str(p)
    out["window_s"] = list(data["window_s"]) if data["window_s"] else None
    out["t_min"] = [None if not np.isfinite(x) else round(float(x) / 60.0, 5) for x in t]
    out["measures"] = {}
    for m in MEASURES:
        v = np.array([f[m] if f[m] is not None else np.nan for f in data["fits"]], float)
        out["measures"][m] = summarise_curve(t, v, ok, data["window_s"])
    out["blocks"] = int(len(t))
    out["blocks_ok"] = int(ok.sum())
    return out


def summarise_all(paths: list[str], scheduler: str | None = None, workers: int | None = None,
                  progress: Callable[[int, int], None] | None = None, derivative: str | None = None) -> list[dict]:
    """Per-session summaries in parallel: local processes, or the Dask cluster at `scheduler`."""
    if derivative:
        func = functools.partial(summarise_session, derivative=derivative)
    else:
        func = summarise_session
    if scheduler:
        from dask.distributed import Client

        with Client(scheduler, timeout=30) as client:
            futures = client.map(func, paths, pure=False)
            results = client.gather(futures)
        if progress:
            progress(len(results), len(paths))
        return list(results)
    from concurrent.futures import ProcessPoolExecutor

    if workers == 1 or len(paths) == 1:
        results = []
        for p in paths:
            results.append(func(p))
            if progress:
                progress(len(results), len(paths))
        return results
    results = []
    with ProcessPoolExecutor(workers) as ex:
        for r in ex.map(func, paths):
            results.append(r)
            if progress:
                progress(len(results), len(paths))
    return results


# ------------------------------------------------------------------------------ unblinding
def read_key(path: str | Path) -> dict[str, dict[str, str]]:
    """kit_code -> {"condition": ..., "sex": ...} from a TSV with columns kit_code, condition [, sex]."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
    except OSError as exc:
        raise StudyError(f"cannot read key file {path}: {exc}") from None
    if not rows or not {"kit_code", "condition"} <= set(rows[0]):
        raise StudyError(f"key file {path} needs tab-separated columns kit_code and condition (and optionally sex)")
    return {r["kit_code"]: {"condition": r["condition"], "sex": (r.get("sex") or "").strip() or None} for r in rows}


def _period(s: dict, all_codes: list[str]) -> int:
    return all_codes.index(s["session_code"]) + 1 if s.get("session_code") in all_codes else 1


def _paired(diffs: np.ndarray) -> dict[str, float | int | None]:
    from scipy import stats

    n = int(diffs.size)
    if n < 2:
        return {"n": n, "estimate": float(diffs.mean()) if n else None, "ci95_low": None, "ci95_high": None,
                "p": None, "sd": None, "dz": None, "t": None}
    mean, sd = float(diffs.mean()), float(diffs.std(ddof=1))
    se = sd / math.sqrt(n)
    tcrit = float(stats.t.ppf(0.975, n - 1))
    t = mean / se if se > 0 else float("inf")
    p = float(2 * stats.t.sf(abs(t), n - 1)) if se > 0 else 0.0
    return {"n": n, "estimate": mean, "ci95_low": mean - tcrit * se, "ci95_high": mean + tcrit * se, "p": p,
            "sd": sd, "dz": mean / sd if sd > 0 else None, "t": t}


def mixed_model(rows: list[dict], reference: str) -> dict[str, Any]:
    """pct_change ~ condition * time + period + sex + condition:sex, random intercept per subject."""
    import pandas as pd
    import statsmodels.formula.api as smf

    df = pd.DataFrame(rows)
    if df.empty or df["subject"].nunique() < 2 or df["condition"].nunique() < 2:
        return {"error": "the mixed model needs at least two subjects and two conditions"}
    terms = [f"C(condition, Treatment('{reference}')) * time_min", "C(period)"]
    if df["sex"].notna().all() and df["sex"].nunique() > 1:
        terms += ["C(sex)", f"C(condition, Treatment('{reference}')):C(sex)"]
    formula = "pct_change ~ " + " + ".join(terms)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.mixedlm(formula, df, groups=df["subject"]).fit(reml=True)
    ci = fit.conf_int()
    coefs = {}
    for name in fit.fe_params.index:
        coefs[_pretty(name, reference)] = {"estimate": float(fit.fe_params[name]), "se": float(fit.bse_fe[name]),
                                           "ci95_low": float(ci.loc[name, 0]), "ci95_high": float(ci.loc[name, 1]),
                                           "p": float(fit.pvalues[name])}
    return {"formula": formula.replace(f", Treatment('{reference}')", "") + " + (1 | subject)",
            "reference": reference, "n_obs": int(fit.nobs), "n_subjects": int(df["subject"].nunique()),
            "converged": bool(fit.converged), "coefficients": coefs,
            "subject_sd": float(np.sqrt(max(float(fit.cov_re.iloc[0, 0]), 0.0))),
            "residual_sd": float(np.sqrt(fit.scale))}


def _pretty(name: str, reference: str) -> str:
    return (name.replace(f"C(condition, Treatment('{reference}'))[T.", "condition[")
            .replace("C(period)[T.", "period[").replace("C(sex)[T.", "sex["))


def analyse(summaries: list[dict], key: dict[str, dict] | None = None, measure: str = PRIMARY) -> dict[str, Any]:
    """The study result: per-session summaries and, with a key, the condition effect."""
    out: dict[str, Any] = {"sessions": len(summaries), "measure": measure,
                           "estimand": "mean over participants of the within-participant difference (condition "
                                       "minus reference) in mean percent change of " + measure + " from baseline "
                                       "over the infusion window",
                           "condition_effect": None, "summaries": summaries}
    if key is None:
        return out
    missing = sorted({s["kit_code"] for s in summaries} - set(key))
    if missing:
        raise StudyError(f"the key file has no entry for kit code(s) {', '.join(map(str, missing[:5]))}")
    conds = sorted({key[s["kit_code"]]["condition"] for s in summaries})
    if len(conds) != 2:
        raise StudyError(f"a crossover needs exactly two conditions in the key, found {conds}")
    reference = "placebo" if "placebo" in conds else conds[0]
    other = next(c for c in conds if c != reference)
    codes = sorted({s["session_code"] for s in summaries if s.get("session_code")})
    by_subject: dict[str, dict[str, dict]] = {}
    rows = []
    for s in summaries:
        k = key[s["kit_code"]]
        s["condition"], s["sex"], s["period"] = k["condition"], k["sex"], _period(s, codes)
        by_subject.setdefault(s["subject"], {})[k["condition"]] = s
        m = s["measures"][measure]
        start = s["window_s"][0] / 60.0 if s["window_s"] else None
        stop = s["window_s"][1] / 60.0 if s["window_s"] else None
        for t, pct in zip(s["t_min"], m["pct_change"], strict=True):
            if pct is None or t is None or start is None or not (start <= t <= stop):
                continue
            rows.append({"subject": s["subject"], "condition": k["condition"], "sex": k["sex"],
                         "period": s["period"], "time_min": t - start, "pct_change": pct})
    diffs, auc_diffs, complete = [], [], []
    for subj, d in sorted(by_subject.items()):
        if reference in d and other in d:
            a, b = d[reference]["measures"][measure], d[other]["measures"][measure]
            if a["mean_infusion_pct"] is not None and b["mean_infusion_pct"] is not None:
                diffs.append(b["mean_infusion_pct"] - a["mean_infusion_pct"])
                auc_diffs.append(b["auc_pct_min"] - a["auc_pct_min"])
                complete.append(subj)
    paired = _paired(np.array(diffs, float))
    out["condition_effect"] = {"estimate": paired["estimate"], "ci95_low": paired["ci95_low"],
                               "ci95_high": paired["ci95_high"], "p": paired["p"], "dz": paired["dz"],
                               "n_pairs": paired["n"], "contrast": f"{other} - {reference}",
                               "units": "percentage points of mean infusion % change"}
    out["paired_auc"] = {**_paired(np.array(auc_diffs, float)), "units": "%·min", "contrast": f"{other} - {reference}"}
    out["paired_mean_change"] = paired
    out["subjects_paired"] = complete
    means = {}
    for c in conds:
        vals = [s["measures"][measure]["mean_infusion_pct"] for s in summaries if s["condition"] == c
                and s["measures"][measure]["mean_infusion_pct"] is not None]
        means[c] = {"n": len(vals), "mean_infusion_pct": float(np.mean(vals)) if vals else None,
                    "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else None}
    out["by_condition"] = means
    try:
        out["mixed_model"] = mixed_model(rows, reference)
    except Exception as exc:  # a model that cannot be fitted is reported, not fatal
        out["mixed_model"] = {"error": f"mixed model failed: {exc}"}
    return out


# ------------------------------------------------------------------------------ outputs
def write_table(summaries: list[dict], path: Path) -> None:
    cols = ["id", "kit_code", "subject", "session_code", "condition", "sex", "period", "blocks", "blocks_ok"]
    mcols = ["baseline", "auc_pct_min", "mean_infusion_pct", "peak_pct", "time_to_peak_min"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(cols + [f"{m.replace('/', '_')}_{c}" for m in MEASURES for c in mcols])
        for s in summaries:
            vals = [s.get(c) for c in cols] + [s["measures"][m][c] for m in MEASURES for c in mcols]
            w.writerow(["n/a" if v is None else (round(v, 6) if isinstance(v, float) else v) for v in vals])


def plot_study(result: dict, path: Path, measure: str = PRIMARY) -> None:
    """Mean % change time course per condition (or per session, blinded) and paired infusion changes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summaries = result["summaries"]
    unblinded = result.get("condition_effect") is not None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [2.2, 1]})
    ax = axes[0]
    colours = {}
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    groups: dict[str, list[dict]] = {}
    for s in summaries:
        groups.setdefault(s.get("condition") if unblinded else "sessions", []).append(s)
    for i, (g, ss) in enumerate(sorted(groups.items())):
        colours[g] = palette[i % len(palette)]
        grid = np.arange(-15, 51, 1.0)
        curves = []
        for s in ss:
            if not s["window_s"]:
                continue
            t = np.array([np.nan if x is None else x for x in s["t_min"]]) - s["window_s"][0] / 60.0
            p = np.array([np.nan if x is None else x for x in s["measures"][measure]["pct_change"]])
            sel = np.isfinite(t) & np.isfinite(p)
            if sel.sum() < 2:
                continue
            curves.append(np.interp(grid, t[sel], p[sel], left=np.nan, right=np.nan))
            if not unblinded:
                ax.plot(t[sel], p[sel], lw=0.6, alpha=0.35, color=colours[g])
        if curves:
            c = np.array(curves)
            n = np.sum(np.isfinite(c), axis=0)
            with warnings.catch_warnings():  # grid points no session covers are NaN, on purpose
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(c, axis=0)
                sem = np.nanstd(c, axis=0, ddof=1) / np.sqrt(np.maximum(n, 1)) if len(curves) > 1 else 0 * mean
            ax.plot(grid, mean, color=colours[g], lw=2, label=f"{g} (n = {len(curves)})")
            ax.fill_between(grid, mean - sem, mean + sem, color=colours[g], alpha=0.25)
    win = next((s["window_s"] for s in summaries if s["window_s"]), None)
    if win:
        ax.axvspan(0, (win[1] - win[0]) / 60.0, color="0.85", zorder=0, label="infusion")
    ax.axhline(0, color="0.4", lw=0.8)
    ax.set_xlabel("time from infusion start (min)")
    ax.set_ylabel(f"{measure}: % change from baseline")
    ax.set_title(f"{measure} time course (mean ± SEM)" if unblinded else f"{measure}, blinded sessions")
    ax.legend(loc="upper left", fontsize=8)
    ax2 = axes[1]
    if unblinded:
        ce = result["condition_effect"]
        ref, other = ce["contrast"].split(" - ")[1], ce["contrast"].split(" - ")[0]
        by_subj: dict[str, dict[str, float]] = {}
        for s in summaries:
            v = s["measures"][measure]["mean_infusion_pct"]
            if v is not None:
                by_subj.setdefault(s["subject"], {})[s["condition"]] = v
        for d in by_subj.values():
            if ref in d and other in d:
                ax2.plot([0, 1], [d[ref], d[other]], color="0.5", lw=0.8, marker="o", ms=3)
        ax2.set_xticks([0, 1], [ref, other])
        ax2.set_xlim(-0.4, 1.4)
        ax2.set_title(f"effect {ce['estimate']:+.2f} pp [{ce['ci95_low']:+.2f}, {ce['ci95_high']:+.2f}], "
                      f"p = {ce['p']:.2g}", fontsize=9)
    else:
        vals = [s["measures"][measure]["mean_infusion_pct"] for s in summaries
                if s["measures"][measure]["mean_infusion_pct"] is not None]
        ax2.hist(vals, bins=max(5, len(vals) // 3), color=palette[0])
        ax2.set_xlabel("mean infusion % change")
        ax2.set_title("per session (blinded)", fontsize=9)
    ax2.set_ylabel("mean % change over the infusion" if unblinded else "sessions")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_study(root: str | Path, key_path: str | Path | None = None, scheduler: str | None = None,
              out_dir: str | Path | None = None, workers: int | None = None,
              progress: Callable[[int, int], None] | None = None, derivative: str | None = None) -> dict[str, Any]:
    paths = find_sessions(root)
    key = read_key(key_path) if key_path else None
    summaries = summarise_all(paths, scheduler=scheduler, workers=workers, progress=progress, derivative=derivative)
    result = analyse(summaries, key)
    result["derivative"] = derivative
    out = Path(out_dir) if out_dir else Path(root) / "study-results"
    out.mkdir(parents=True, exist_ok=True)
    write_table(result["summaries"], out / "sessions.tsv")
    plot_study(result, out / "study.png")
    result["outputs"] = {"table": str(out / "sessions.tsv"), "figure": str(out / "study.png"),
                         "json": str(out / "study.json")}
    (out / "study.json").write_text(json.dumps(result, indent=1, default=_json_default))
    return result


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
