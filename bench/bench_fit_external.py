"""mrsmon, LCModel and FSL-MRS on one independent truth set, in the same run, on the same files.

The truth set (bench/truthset/: not mrsmon's simulator, not its fitting model) is written as
LCModel .RAW + .CONTROL and NIfTI-MRS for each configuration; every tool fits every file with the
configuration's .BASIS. Reported per tool: MAPE, bias and median error of the ratios to tCr, the
Glu/tCr MAPE per NAA-SNR bin, gross failures (> 50 % off, or no result), CRLB calibration (SD
across noise draws / mean CRLB on fixed spectra, with a 95 % interval), for a conventions set what
mrsmon detected, CPU time per spectrum, and a summary line per set.

    python bench/bench_fit_external.py [--configs spant-dev,sim-broad-dev,spant-heldout,...]
        [--n 40] [--crlb-spectra 3 --crlb-draws 100 --peer-crlb-draws 20] [--lcmodel PATH]
        [--fslmrs-python PATH] [--out DIR] [--tools mrsmon,lcmodel,fslmrs] [--conventions]
        [--conventions-configs spant-heldout]

LCModel: --lcmodel or $MRSMON_LCMODEL (an lcmodel binary built from its BSD source); FSL-MRS:
--fslmrs-python or $MRSMON_FSLMRS_PYTHON (a Python with fsl_mrs installed). A tool that is not
given is marked absent in the table. Peer results are cached in DIR per file content (they do not
change while mrsmon's fitter does); --no-cache refits them. Writes bench/results/fit_external.txt.
The run kept there:

    python bench/bench_fit_external.py --n 40 --conventions-configs spant-heldout --out /tmp/fit2_ts \
        --lcmodel $MRSMON_LCMODEL --configs spant-dev,sim-narrow-heldout,spant-heldout,\
sim-broad-heldout,spant-broad-heldout,spant-final,sim-broad-dev,sim-final,spant-r4,sim-r4,spant-r12,sim-r12,\
spant-r14,sim-r14

(--cached-peers-only: LCModel's and FSL-MRS's results from earlier runs on the same files, cached by
content, each with the time it was measured in the header; drop it to refit what is missing.)
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.truthset.generate import CONFIGS, GROUPS, RATIOS, SNR_BINS, generate_set  # noqa: E402
from bench.truthset.physics import canonical  # noqa: E402

MAJOR = ("Glu", "Glx", "NAA", "tNAA", "tCho", "mI")  # ratios every tool should get within 50 %
RESULTS = Path(__file__).parent / "results" / "fit_external.txt"


def ratios_from_conc(conc: dict[str, float], sd: dict[str, float] | None = None) -> dict[str, float]:
    canon: dict[str, float] = {}
    for n, v in conc.items():
        c = canonical(n)
        canon[c] = canon.get(c, 0.0) + (v or 0.0)

    def total(q: str) -> float:
        return sum(canon.get(p, 0.0) for p in GROUPS.get(q, (q,)))

    tcr = total("tCr")
    return {f"{q}/tCr": (total(q) / tcr if tcr > 0 else float("nan")) for q in RATIOS}


# ---------------------------------------------------------------------------------- the tools
def run_mrsmon(doc: dict, folder: Path, basis_file: Path) -> dict[str, dict]:
    from mrsmon.commands.fit import fit_file

    out = {}
    for s in doc["spectra"]:
        c0 = time.process_time()
        try:
            r = fit_file(str(folder / s["files"]["nifti"]), str(basis_file))[0].to_json()
        except Exception as exc:  # the bench reports a failure; it does not stop
            out[s["stem"]] = {"error": f"{type(exc).__name__}: {exc}", "cpu_s": time.process_time() - c0}
            continue
        cpu = time.process_time() - c0
        # scored from the concentrations of the basis's own entries, as for the peers (the result's
        # ratios are null where mrsmon reports a metabolite as undetermined; counted separately)
        names = set(doc["basis_names"])
        out[s["stem"]] = {"conc": {k: v for k, v in r["conc"].items() if k in names},
                          "sd": {k: v for k, v in r["sd"].items() if k in names},
                          "ratios": r["ratios"], "ratios_sd": r["ratios_sd"], "status": r["qc"]["fit_status"],
                          "undetermined": r["qc"].get("undetermined", []), "cpu_s": cpu,
                          "input": r["qc"].get("input") or {}}
    return out


_TABLE_LINE = re.compile(r"^\s*([0-9.E+-]+)\s+(\d+)%\s+\S+\s+(\S+)\s*$")


def parse_lcmodel_table(text: str) -> tuple[dict, dict]:
    conc, sd = {}, {}
    body = text.split("$$CONC", 1)[-1].split("$$MISC", 1)[0]
    for line in body.splitlines():
        m = _TABLE_LINE.match(line)
        if m and "+" not in m.group(3):
            v = float(m.group(1))
            conc[m.group(3)] = v
            sd[m.group(3)] = v * float(m.group(2)) / 100.0
    return conc, sd


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def peer_key(tool: str, doc: dict, folder: Path, s: dict) -> str:
    """A peer's cache key: the file's content, and the basis's when it is not the generator's own."""
    key = f"{tool}:{_digest(folder / s['files']['raw' if tool == 'lcmodel' else 'nifti'])}"
    return key + (f":{_digest(Path(doc['basis_file']))}" if doc["config"].get("fit_basis_mm") else "")


def _draw(stem: str) -> int | None:
    """The noise draw of a CRLB spectrum ('<set>_crlb<k>_<draw>'), None for the main set."""
    return int(stem.rsplit("_", 1)[1]) if "_crlb" in stem else None


def peer_spectra(doc: dict, peer_draws: int) -> list[dict]:
    """The spectra a peer fits: the main set and the first `peer_draws` noise draws of each CRLB
    spectrum (mrsmon fits all of them; the peers' CRLB rows are for comparison only)."""
    return [s for s in doc["spectra"] if (d := _draw(s["stem"])) is None or d < peer_draws]


def run_lcmodel(doc: dict, folder: Path, lcmodel: str, cache: dict, peer_draws: int = 20) -> dict[str, dict]:
    out = {}
    for s in peer_spectra(doc, peer_draws):
        key = peer_key("lcmodel", doc, folder, s)
        if key in cache:
            out[s["stem"]] = cache[key]
            continue
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(folder / s["files"]["control"]) as ctl:
            proc = subprocess.run([lcmodel], stdin=ctl, cwd=folder, capture_output=True, text=True, timeout=600)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        table = folder / f"{s['stem']}.table"
        if not table.exists():
            res = {"error": f"no table (exit {proc.returncode}): {proc.stdout[-200:]}", "cpu_s": cpu}
        else:
            conc, sd = parse_lcmodel_table(table.read_text())
            res = {"conc": conc, "sd": sd, "cpu_s": cpu} if conc else {"error": "empty table", "cpu_s": cpu}
        res["measured"] = time.strftime("%Y-%m-%d %H:%M")
        cache[key] = out[s["stem"]] = res
    return out


def start_fslmrs(doc: dict, folder: Path, python: str, cache: dict, crlb: bool,
                 peer_draws: int = 20) -> tuple[subprocess.Popen | None, Path, list]:
    """Start the FSL-MRS worker on the files not in the cache (without the CRLB noise draws unless
    `crlb`: at about 6.5 s CPU per fit they would dominate the run)."""
    todo = [s for s in peer_spectra(doc, peer_draws) if peer_key("fslmrs", doc, folder, s) not in cache
            and (crlb or s["crlb_group"] is None)]
    job, result = folder / "fslmrs_job.json", folder / "fslmrs_out.json"
    if not todo:
        return None, result, todo
    job.write_text(json.dumps({"basis": doc["basis_file"], "files": [str(folder / s["files"]["nifti"]) for s in todo]}))
    worker = Path(__file__).parent / "truthset" / "fslmrs_worker.py"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([python, str(worker), str(job), str(result)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, text=True)
    return proc, result, todo


def finish_fslmrs(doc: dict, folder: Path, proc, result: Path, todo: list, cache: dict) -> dict[str, dict]:
    lost: dict[str, dict] = {}
    if proc is not None:
        _, err = proc.communicate()
        got = json.loads(result.read_text()) if result.exists() else {}
        for s in todo:
            path = str(folder / s["files"]["nifti"])
            key = peer_key("fslmrs", doc, folder, s)
            if path not in got:  # the worker died: report it, but do not cache it
                lost[key] = {"error": f"worker exited {proc.returncode}: {err[-300:]}", "cpu_s": float("nan")}
                continue
            cache[key] = {**got[path], "measured": time.strftime("%Y-%m-%d %H:%M")}
    return {s["stem"]: cache.get(key, lost.get(key)) for s in doc["spectra"]
            if (key := peer_key("fslmrs", doc, folder, s)) in cache or key in lost}


# ---------------------------------------------------------------------------------- scoring
def estimates(tool_out: dict) -> dict[str, dict[str, float]]:
    est = {}
    for stem, r in tool_out.items():
        est[stem] = {} if "error" in r else ratios_from_conc(r["conc"])
    return est


def errors_pct(doc: dict, est: dict, spectra: list) -> dict[str, np.ndarray]:
    out = {}
    for q in RATIOS:
        key = f"{q}/tCr"
        e = []
        for s in spectra:
            v = est.get(s["stem"], {}).get(key, float("nan"))
            e.append(100.0 * (v - s["ratios"][key]) / s["ratios"][key] if np.isfinite(v) else float("nan"))
        out[q] = np.array(e)
    return out


def fmt(v: float, w: int = 6, d: int = 1) -> str:
    return f"{v:{w}.{d}f}" if np.isfinite(v) else f"{'-':>{w}s}"


def accuracy_tables(doc: dict, results: dict[str, dict | None]) -> list[str]:
    """Per tool, over the spectra it was run on (a tool stopped part-way says how many): a fit
    that failed counts as a gross failure."""
    main_all = [s for s in doc["spectra"] if s["crlb_group"] is None]
    lines = [f"{'tool':8s} {'ratio':6s} {'MAPE%':>6s} {'bias%':>6s} {'medAPE':>6s} {'>50%':>4s} {'n':>3s} "
             f"{'undet.':>6s} {'MAPE det.':>9s}"]
    summary = {}
    for tool, out in results.items():
        main = [s for s in main_all if out is not None and s["stem"] in out]
        if not main:
            lines.append(f"{tool:8s} absent (not installed, not given or not run on this set: see the header)")
            continue
        err = errors_pct(doc, estimates(out), main)
        summary[tool] = (err, main)
        for q in RATIOS:
            e = err[q]
            ok = np.isfinite(e)
            gross = int(np.sum(~ok | (np.abs(np.nan_to_num(e, nan=1e9)) > 50)))
            flagged = np.array([q in out.get(s["stem"], {}).get("undetermined", []) for s in main])
            det = ok & ~flagged
            extra = (f" {int(flagged.sum()):6d} {fmt(np.mean(np.abs(e[det])) if det.any() else np.nan, 9)}"
                     if tool == "mrsmon" else "")
            lines.append(f"{tool:8s} {q:6s} {fmt(np.mean(np.abs(e[ok])) if ok.any() else np.nan)} "
                         f"{fmt(np.mean(e[ok]) if ok.any() else np.nan)} "
                         f"{fmt(np.median(np.abs(e[ok])) if ok.any() else np.nan)} {gross:4d} {ok.sum():3d}" + extra)
    lines += ["", "Glu/tCr MAPE % by NAA SNR bin (n per bin in brackets); gross = any of "
              + "/".join(MAJOR) + " over 50 % off or no result"]
    head = f"{'tool':8s} " + " ".join(f"{f'{lo}-{hi}':>9s}" for lo, hi in SNR_BINS) + f" {'all':>7s} {'gross':>5s}"
    lines.append(head)
    for tool, (err, main) in summary.items():
        snr = np.array([s["params"]["snr"] for s in main])
        cells = []
        for lo, hi in SNR_BINS:
            sel = (snr >= lo) & (snr < hi) | ((hi == SNR_BINS[-1][1]) & (snr >= lo))
            e = err["Glu"][sel]
            cells.append(f"{fmt(np.nanmean(np.abs(e)) if np.isfinite(e).any() else np.nan, 6)} ({sel.sum():2d})")
        gross = np.zeros(len(main), bool)
        for q in MAJOR:
            gross |= ~np.isfinite(err[q]) | (np.abs(np.nan_to_num(err[q], nan=1e9)) > 50)
        lines.append(f"{tool:8s} " + " ".join(f"{c:>9s}" for c in cells)
                     + f" {fmt(np.nanmean(np.abs(err['Glu'])), 7)} {int(gross.sum()):5d}")
    lines += glu_failures(summary, results)
    if "mrsmon" in summary and "lcmodel" in summary:
        ratio = np.nanmean(np.abs(summary["mrsmon"][0]["Glu"])) / np.nanmean(np.abs(summary["lcmodel"][0]["Glu"]))
        lines.append(f"mrsmon / LCModel Glu/tCr MAPE: {ratio:.2f} (target <= 0.8)")
    return lines


def glu_failures(summary: dict, results: dict[str, dict | None]) -> list[str]:
    """Each Glu/tCr estimate over 50 % off: its NAA SNR, error and, for mrsmon, the error in units
    of its own reported SD (z): what the reported uncertainty said to expect."""
    lines = []
    for tool, (err, main) in summary.items():
        for s, e in zip(main, err["Glu"], strict=True):
            if np.isfinite(e) and abs(e) <= 50:
                continue
            r = (results.get(tool) or {}).get(s["stem"], {})
            sd = (r.get("ratios_sd") or {}).get("Glu/tCr")
            z = (f", {e / (100.0 * sd / s['ratios']['Glu/tCr']):+.1f} SD" if sd and np.isfinite(e)
                 else "")
            lines.append(f"  {tool} Glu/tCr > 50 % off: {s['stem']} NAA SNR {s['params']['snr']:.0f}, "
                         f"error {fmt(e, 1)} %{z}")
    return lines


def sd_ratio_ci(sd_emp: float, n: int, mean_crlb: float) -> tuple[float, float, float]:
    """SD/CRLB and its 95 % interval: the sample SD of n Gaussian draws has (n-1) SD^2/sigma^2 ~
    chi2(n-1) (20 draws leave it uncertain by about +-32 %, 100 by +-14 %); the mean CRLB over the
    draws is taken as exact (its own spread across draws is a few per cent)."""
    from scipy.stats import chi2

    if not (n > 2 and mean_crlb > 0 and np.isfinite(sd_emp)):
        return float("nan"), float("nan"), float("nan")
    r = sd_emp / mean_crlb
    return r, r * np.sqrt((n - 1) / chi2.ppf(0.975, n - 1)), r * np.sqrt((n - 1) / chi2.ppf(0.025, n - 1))


def _crlb_rows(doc: dict, out: dict, tool: str) -> list[tuple]:
    """(spectrum, SNR, quantity, values, reported SDs, true value) per CRLB spectrum and quantity."""
    rows = []
    groups = sorted({s["crlb_group"] for s in doc["spectra"] if s["crlb_group"] is not None})
    for g in groups:
        spec = [s for s in doc["spectra"] if s["crlb_group"] == g and s["stem"] in out]
        res = [out[s["stem"]] for s in spec]
        if not spec:
            continue
        snr = spec[0]["params"]["snr"]
        if tool == "mrsmon":
            vals = np.array([ratios_from_conc(r["conc"])["Glu/tCr"] if "conc" in r else np.nan for r in res], float)
            sds = np.array([r.get("ratios_sd", {}).get("Glu/tCr") or np.nan for r in res], float)
            rows.append((g, snr, "Glu/tCr", vals, sds, spec[0]["ratios"]["Glu/tCr"]))
        vals = np.array([r.get("conc", {}).get("Glu") or np.nan for r in res], float)
        sds = np.array([r.get("sd", {}).get("Glu") or np.nan for r in res], float)
        rows.append((g, snr, "Glu", vals, sds, float("nan")))
    return rows


def crlb_tables(doc: dict, results: dict[str, dict | None]) -> list[str]:
    from scipy.stats import chi2

    if not any(s["crlb_group"] is not None for s in doc["spectra"]):
        return []
    lines = ["CRLB calibration: fixed spectra, noise draws only. SD across draws / mean reported SD "
             "(target 0.9-1.1), with its 95 % interval",
             f"{'tool':8s} {'spectrum':>8s} {'SNR':>5s} {'draws':>5s} {'quantity':>8s} {'mean':>7s} {'true':>7s} "
             f"{'SD':>7s} {'mean CRLB':>9s} {'SD/CRLB':>7s} {'95% CI':>13s}"]
    for tool, out in results.items():
        if not out:
            continue
        pooled: dict[str, list] = {}
        for g, snr, qty, vals, sds, true in _crlb_rows(doc, out, tool):
            ok = np.isfinite(vals) & np.isfinite(sds)
            n = int(ok.sum())
            sd_emp = float(np.std(vals[ok], ddof=1)) if n > 2 else float("nan")
            mean_crlb = float(np.mean(sds[ok])) if n else float("nan")
            r, lo, hi = sd_ratio_ci(sd_emp, n, mean_crlb)
            if np.isfinite(r):
                pooled.setdefault(qty, []).append((n - 1, r * r))
            lines.append(f"{tool:8s} {g:8d} {snr:5.0f} {n:5d} {qty:>8s} "
                         f"{fmt(np.mean(vals[ok]) if n else np.nan, 7, 3)} {fmt(true, 7, 3)} {fmt(sd_emp, 7, 4)} "
                         f"{fmt(mean_crlb, 9, 4)} {fmt(r, 7, 2)}   [{fmt(lo, 4, 2)}, {fmt(hi, 4, 2)}]")
        for qty, parts in pooled.items():
            dof = sum(d for d, _ in parts)
            r = float(np.sqrt(sum(d * r2 for d, r2 in parts) / dof))
            lo, hi = r * np.sqrt(dof / chi2.ppf(0.975, dof)), r * np.sqrt(dof / chi2.ppf(0.025, dof))
            blank = " " * 35
            lines.append(f"{tool:8s} {'pooled':>8s} {'':>5s} {dof + len(parts):5d} {qty:>8s} {blank} "
                         f"{r:7.2f}   [{lo:4.2f}, {hi:4.2f}]")
    lines.append("(mrsmon: Glu/tCr with its delta-method SD, and Glu scaled to tCr = 8; the peers: Glu in "
                 "their own units, fitted on the first draws only)")
    return lines


def conventions_table(doc: dict, results: dict[str, dict | None]) -> list[str]:
    """Per storage convention: Glu/tCr MAPE and gross failures per tool, and what mrsmon detected
    (data conjugated; the header's field taken as given)."""
    kinds = sorted({s["params"]["convention"] for s in doc["spectra"] if s["crlb_group"] is None})
    if kinds in ([], ["standard"]):
        return []
    lines = ["Conventions: the NIfTI-MRS file conjugated, its header field 0.05 % off (123.26 vs 123.2 MHz "
             "style), or its receiver at 4.7 ppm; LCModel gets the .RAW with the same header field",
             f"{'tool':8s} {'convention':>12s} {'n':>3s} {'Glu MAPE%':>9s} {'gross':>5s}  mrsmon detected"]
    for tool, out in results.items():
        if not out:
            continue
        for kind in kinds:
            spec = [s for s in doc["spectra"] if s["crlb_group"] is None and s["params"]["convention"] == kind
                    and s["stem"] in out]
            if not spec:
                continue
            err = errors_pct(doc, estimates(out), spec)
            gross = np.zeros(len(spec), bool)
            for q in MAJOR:
                gross |= ~np.isfinite(err[q]) | (np.abs(np.nan_to_num(err[q], nan=1e9)) > 50)
            note = ""
            if tool == "mrsmon":
                conj = sum(bool(out[s["stem"]].get("input", {}).get("data_conjugated")) for s in spec)
                note = f"data conjugated in {conj}/{len(spec)}"
            lines.append(f"{tool:8s} {kind:>12s} {len(spec):3d} {fmt(np.nanmean(np.abs(err['Glu'])), 9)} "
                         f"{int(gross.sum()):5d}  {note}")
    return lines


def time_table(results: dict[str, dict | None]) -> list[str]:
    lines = [f"{'tool':8s} {'CPU s/spectrum median':>22s} {'p90':>7s} {'fits':>5s} {'errors':>6s}"]
    for tool, out in results.items():
        if out is None:
            continue
        if not out:
            continue
        cpu = np.array([r.get("cpu_s", np.nan) for r in out.values()], float)
        errs = sum(1 for r in out.values() if "error" in r)
        lines.append(f"{tool:8s} {np.nanmedian(cpu):22.3f} {np.nanpercentile(cpu, 90):7.3f} {len(cpu):5d} {errs:6d}")
    return lines


def summary_row(name: str, doc: dict, results: dict[str, dict | None]) -> str:
    """One line per set: Glu/tCr MAPE of mrsmon and LCModel, their ratio, Glu/tCr gross failures,
    gross failures on any major ratio, Glu/tCr bias."""
    main = [s for s in doc["spectra"] if s["crlb_group"] is None]
    cells = {}
    for tool in ("mrsmon", "lcmodel"):
        out = results.get(tool) or {}
        spec = [s for s in main if s["stem"] in out]
        if not spec:
            continue
        err = errors_pct(doc, estimates(out), spec)
        glu = err["Glu"]
        gross = np.zeros(len(spec), bool)
        for q in MAJOR:
            gross |= ~np.isfinite(err[q]) | (np.abs(np.nan_to_num(err[q], nan=1e9)) > 50)
        glu_gross = int(np.sum(~np.isfinite(glu) | (np.abs(np.nan_to_num(glu, nan=1e9)) > 50)))
        cells[tool] = (np.nanmean(np.abs(glu)), glu_gross, int(gross.sum()), np.nanmean(glu), len(spec))
    m, lc = cells.get("mrsmon"), cells.get("lcmodel")
    if m is None:
        return f"{name:28s} (mrsmon not run)"
    ratio = m[0] / lc[0] if lc else float("nan")
    return (f"{name:28s} {m[4]:3d} {m[0]:7.1f} {fmt(lc[0] if lc else np.nan, 7)} {fmt(ratio, 6, 2)} "
            f"{m[1]:5d}/{lc[1] if lc else '-':<5} {m[2]:4d}/{lc[2] if lc else '-':<4} "
            f"{m[3]:+5.1f}/{fmt(lc[3] if lc else np.nan, 5)}")


# ---------------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="spant-dev,sim-broad-dev,spant-heldout,sim-broad-heldout,"
                                         "spant-broad-heldout,sim-narrow-heldout")
    ap.add_argument("--n", default="40", help="spectra per configuration: one number, or one per configuration")
    ap.add_argument("--crlb-spectra", type=int, default=3)
    ap.add_argument("--crlb-draws", type=int, default=100)
    ap.add_argument("--peer-crlb-draws", type=int, default=20,
                    help="LCModel/FSL-MRS fit only this many of each CRLB spectrum's draws")
    ap.add_argument("--conventions-configs", default="",
                    help="configurations also run as '<name>-conventions' sets: files in other tools' conventions")
    ap.add_argument("--mm-basis-configs", default="",
                    help="configurations also run as '<name>-<style>mm' sets, the fitters' basis with MM entries "
                         "in each of --mm-basis-styles (no CRLB draws)")
    ap.add_argument("--mm-basis-styles", default="lcmodel,full")
    ap.add_argument("--lcmodel", default=os.environ.get("MRSMON_LCMODEL"))
    ap.add_argument("--fslmrs-python", default=os.environ.get("MRSMON_FSLMRS_PYTHON"))
    ap.add_argument("--tools", default="mrsmon,lcmodel,fslmrs")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "mrsmon_truthset")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--fslmrs-crlb", action="store_true", help="FSL-MRS fits the CRLB noise draws too (slow)")
    ap.add_argument("--crlb-configs", default=None,
                    help="configurations that get the CRLB noise draws (default: all)")
    ap.add_argument("--cached-peers-only", action="store_true",
                    help="report LCModel/FSL-MRS from the cache only; fit nothing with them")
    ap.add_argument("--fslmrs-cached-only", action="store_true", help="the same for FSL-MRS alone")
    ap.add_argument("--conventions", action="store_true", help="some files in other tools' conventions")
    ap.add_argument("--no-write", action="store_true", help="print only (development runs)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where the report goes")
    args = ap.parse_args()
    tools = set(args.tools.split(","))
    lcmodel = args.lcmodel if "lcmodel" in tools and args.lcmodel and Path(args.lcmodel).exists() else None
    fslpy = (args.fslmrs_python if "fslmrs" in tools and args.fslmrs_python and Path(args.fslmrs_python).exists()
             else None)
    cache_path = args.out / "peer_cache.json"
    cache = {} if args.no_cache or not cache_path.exists() else json.loads(cache_path.read_text())
    load0 = os.getloadavg()[0]
    t_start = time.time()
    text = ["# bench_fit_external: mrsmon vs LCModel vs FSL-MRS on an independent truth set "
            f"({time.strftime('%Y-%m-%d %H:%M')})",
            f"# LCModel: {lcmodel or 'absent'}; FSL-MRS: {fslpy or 'absent'}; conventions: {args.conventions}",
            "# truth: bench/truthset (field-map lineshapes, per-metabolite T2, Behar-type MM, lipids, 1-4 water lines,",
            "#   polynomial + broad-Gaussian baselines, phase0 0-360 deg, delay +-0.1 ms, shift +-10 Hz,",
            "#   NAA SNR 10-160)",
            "# error % = 100 (estimate - truth) / truth of each ratio to tCr; MAPE = mean |error|", ""]
    names = args.configs.split(",")
    counts = [int(v) for v in str(args.n).split(",")]
    counts = counts * len(names) if len(counts) == 1 else counts
    jobs = [(name, replace(CONFIGS[name], conventions=args.conventions), n)
            for name, n in zip(names, counts, strict=True)]
    jobs += [(name, replace(CONFIGS[name], name=f"{name}-conventions", conventions=True), counts[0])
             for name in filter(None, args.conventions_configs.split(","))]
    jobs += [(name, replace(CONFIGS[name], name=f"{name}-{style}mm", fit_basis_mm=style), counts[0])
             for name in filter(None, args.mm_basis_configs.split(",")) for style in args.mm_basis_styles.split(",")]
    summary = []
    for name, config, n_spectra in jobs:
        if not args.no_cache and cache_path.exists():  # what a concurrent run has added meanwhile
            cache = {**json.loads(cache_path.read_text()), **cache}
        results_cached: dict[str, dict] = {}
        folder = args.out / config.name
        crlb = ((args.crlb_configs is None or name in args.crlb_configs.split(","))
                and not config.conventions and not config.fit_basis_mm)
        doc = generate_set(config, folder, n_spectra, args.crlb_spectra if crlb else 0, args.crlb_draws)
        if args.cached_peers_only or args.fslmrs_cached_only:  # cached results, for the files run on
            for tool in ("lcmodel", "fslmrs"):
                keys = {s["stem"]: peer_key(tool, doc, folder, s) for s in doc["spectra"]}
                results_cached[tool] = {stem: cache[k] for stem, k in keys.items() if k in cache}
        basis_file = Path(doc["basis_file"])
        results: dict[str, dict | None] = {}
        lc_run = None if args.cached_peers_only else lcmodel
        fsl_run = None if (args.cached_peers_only or args.fslmrs_cached_only) else fslpy
        proc, result, todo = (start_fslmrs(doc, folder, fsl_run, cache, args.fslmrs_crlb, args.peer_crlb_draws)
                              if fsl_run else (None, None, []))
        if "mrsmon" in tools:  # the same .BASIS file as the peers, unmodified
            results["mrsmon"] = run_mrsmon(doc, folder, basis_file)
        results["lcmodel"] = (run_lcmodel(doc, folder, lc_run, cache, args.peer_crlb_draws) if lc_run
                              else results_cached.get("lcmodel") if args.cached_peers_only else None)
        results["fslmrs"] = (finish_fslmrs(doc, folder, proc, result, todo, cache) if fsl_run
                             else results_cached.get("fslmrs"))
        if not args.no_cache and (lc_run or fsl_run):  # re-read: another run may have added to it
            on_disk = json.loads(cache_path.read_text()) if cache_path.exists() else {}
            cache = {**on_disk, **cache}
            cache_path.write_text(json.dumps(cache))
        n_main = sum(1 for s in doc["spectra"] if s["crlb_group"] is None)
        text += [f"## {config.name}: basis {basis_file.name} ({len(doc['basis_names'])} metabolites, "
                 f"{doc['cf_mhz']} MHz, "
                 f"{doc['points']} points, dwell {doc['dwell_s']:.2e} s); seeds {config.seed}+; {n_main} spectra",
                 f"#  field-map FWHM {config.field_fwhm_hz} Hz, MM scale {config.mm_scale}, water/NAA height "
                 f"{config.water_height}, baseline/NAA {config.baseline_height}"]
        for tool in ("lcmodel", "fslmrs"):
            stamps = sorted({r.get("measured", "?") for r in (results.get(tool) or {}).values()})
            if stamps:
                text.append(f"#  {tool}: {len(results[tool])} fits, measured {stamps[0]} to {stamps[-1]} "
                            "(peer results are cached by file content; same files, same basis)")
        text += accuracy_tables(doc, results) + [""] + crlb_tables(doc, results) + [""]
        text += conventions_table(doc, results) + [""] + time_table(results) + [""]
        summary.append(summary_row(config.name, doc, results))
        print("\n".join(text[-60:]), flush=True)
    text += ["## summary: Glu/tCr (target: mrsmon MAPE <= 0.8x LCModel's on every set, no Glu/tCr error > 50 %)",
             f"{'set':28s} {'n':>3s} {'mrsmon':>7s} {'LCModel':>7s} {'ratio':>6s} {'Glu>50% m/L':>11s} "
             f"{'gross m/L':>9s} {'bias m/L %':>11s}"] + summary + [""]
    load1 = os.getloadavg()[0]
    text.append(f"load average {load0:.1f} at the start, {load1:.1f} at the end ({os.cpu_count()} cores); "
                f"run took {time.time() - t_start:.0f} s")
    out = "\n".join(text) + "\n"
    print(text[-1])
    if not args.no_write:
        args.results.parent.mkdir(exist_ok=True)
        args.results.write_text(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
