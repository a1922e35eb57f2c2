"""The study view: per-session summaries of the fitted time courses and, unblinded, the crossover analysis.

    sessions = find_sessions(root)                         # session folders, or a BIDS root's derivatives
    summaries = summarise_all(sessions, scheduler=None)   # parallel: local processes, or a Dask cluster
    result = analyse(summaries, key=read_key(path))       # condition effect, paired test, mixed model

Per session and measure (Glu/tCr, the primary measure, and Glx/tNAA), using only blocks whose
`fit_status` is "ok": the baseline, the percent change from baseline of every block and the infusion
window as `mrs.timecourse` defines them (the display shows the same numbers), the AUC of the percent
change over the infusion (trapezoid, %·min, from the first to the last block inside the infusion
window), the mean percent change over the infusion (AUC divided by the window covered: the estimand
below), and the peak (largest percent change from infusion start onwards) with its time (min after
infusion start).

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

from analysis.study_figure import plot_study
from mrs.results import EventRecord
from mrs.timecourse import infusion_window_s, summarise_curve

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
def _window(events: list[EventRecord], plan: dict | None) -> tuple[float, float] | None:
    start, stop = infusion_window_s(events, plan)
    return None if start is None or stop is None else (start, stop)


def _load_session_folder(path: Path, derivative: str | None = None) -> dict[str, Any]:
    from protocols.session_folder import SessionReader

    r = SessionReader(path)
    if derivative and not (path / "derivatives" / derivative / "fits.jsonl").exists():
        raise StudyError(f"session {path.name} has no derivative set {derivative!r}")
    return {"id": r.header.get("session", path.name), "kit_code": r.header.get("kit_code"),
            "subject": r.header.get("subject"), "session_code": r.header.get("session_code"),
            "fits": [{"t_s": f.t_s, "t_end_s": f.t_end_s, "ok": f.ok, **{m: f.ratios.get(m) for m in MEASURES}}
                     for f in r.results(derivative)],
            "window_s": _window(r.event_records(), r.plan)}


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
                events.append(EventRecord(kind=e["trial_type"], t_s=float(e["onset"]), value=value))

    def num(x: str | None) -> float | None:
        return None if x in (None, "", "n/a") else float(x)

    fits = []
    for row in rows:
        onset, dur = num(row.get("onset")), num(row.get("duration"))
        t_mid = None if onset is None or dur is None else onset + dur / 2
        t_end = None if onset is None or dur is None else onset + dur
        fits.append({"t_s": t_mid, "t_end_s": t_end, "ok": row.get("fit_status") == "ok",
                     **{m: num(row.get(m.replace("/", "_") + "_ratio")) for m in MEASURES}})
    return {"id": stem, "kit_code": side.get("KitCode"), "subject": parts.get("sub"),
            "session_code": parts.get("ses"), "fits": fits, "window_s": _window(events, None)}


def summarise_session(path: str, derivative: str | None = None) -> dict[str, Any]:
    """One session's summary (runs in a worker process or on a Dask worker: a plain function of a path).
    `derivative`: the fits of SESSION/derivatives/<name> (e.g. a dynamic refit) instead of the agent's."""
    p = Path(path)
    data = _load_bids_fits(p) if p.is_file() else _load_session_folder(p, derivative)
    t = np.array([f["t_s"] if f["t_s"] is not None else np.nan for f in data["fits"]], float)
    t_end = np.array([f["t_end_s"] if f.get("t_end_s") is not None else np.nan for f in data["fits"]], float)
    ok = np.array([f["ok"] for f in data["fits"]], bool)
    out = {k: data[k] for k in ("id", "kit_code", "subject", "session_code")}
    out["source"] = str(p)
    out["window_s"] = list(data["window_s"]) if data["window_s"] else None
    out["t_min"] = [None if not np.isfinite(x) else round(float(x) / 60.0, 5) for x in t]
    out["measures"] = {}
    for m in MEASURES:
        v = np.array([f[m] if f[m] is not None else np.nan for f in data["fits"]], float)
        out["measures"][m] = summarise_curve(t, v, ok, data["window_s"], t_end)
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
