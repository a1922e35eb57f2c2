"""mrsmon, LCModel and FSL-MRS on one independent truth set, in the same run, on the same files.

The truth set (bench/truthset/: not mrsmon's simulator, not its fitting model) is written as
LCModel .RAW + .CONTROL and NIfTI-MRS for each configuration; every tool fits every file with the
configuration's .BASIS. Reported per tool: MAPE, bias and median error of the ratios to tCr, the
Glu/tCr MAPE per NAA-SNR bin, gross failures (> 50 % off, or no result), CRLB calibration (SD
across noise draws / mean CRLB on fixed spectra) and CPU time per spectrum.

    python bench/bench_fit_external.py [--configs spant-dev,spant-heldout,sim-broad-heldout]
        [--n 40] [--crlb-spectra 3 --crlb-draws 20] [--lcmodel PATH] [--fslmrs-python PATH]
        [--out DIR] [--tools mrsmon,lcmodel,fslmrs] [--conventions]

LCModel: --lcmodel or $MRSMON_LCMODEL (an lcmodel binary built from its BSD source); FSL-MRS:
--fslmrs-python or $MRSMON_FSLMRS_PYTHON (a Python with fsl_mrs installed). A tool that is not
given is marked absent in the table. Peer results are cached in DIR per file content (they do not
change while mrsmon's fitter does); --no-cache refits them. Writes bench/results/fit_external.txt.
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
                          "undetermined": r["qc"].get("undetermined", []), "cpu_s": cpu}
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


def run_lcmodel(doc: dict, folder: Path, lcmodel: str, cache: dict) -> dict[str, dict]:
    out = {}
    for s in doc["spectra"]:
        key = f"lcmodel:{_digest(folder / s['files']['raw'])}"
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


def start_fslmrs(doc: dict, folder: Path, python: str, cache: dict,
                 crlb: bool) -> tuple[subprocess.Popen | None, Path, list]:
    """Start the FSL-MRS worker on the files not in the cache (without the CRLB noise draws unless
    `crlb`: at about 6.5 s CPU per fit they would dominate the run)."""
    todo = [s for s in doc["spectra"] if f"fslmrs:{_digest(folder / s['files']['nifti'])}" not in cache
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
            key = f"fslmrs:{_digest(folder / s['files']['nifti'])}"
            if path not in got:  # the worker died: report it, but do not cache it
                lost[key] = {"error": f"worker exited {proc.returncode}: {err[-300:]}", "cpu_s": float("nan")}
                continue
            cache[key] = {**got[path], "measured": time.strftime("%Y-%m-%d %H:%M")}
    return {s["stem"]: cache.get(key, lost.get(key)) for s in doc["spectra"]
            if (key := f"fslmrs:{_digest(folder / s['files']['nifti'])}") in cache or key in lost}


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
    if "mrsmon" in summary and "lcmodel" in summary:
        ratio = np.nanmean(np.abs(summary["mrsmon"][0]["Glu"])) / np.nanmean(np.abs(summary["lcmodel"][0]["Glu"]))
        lines.append(f"mrsmon / LCModel Glu/tCr MAPE: {ratio:.2f} (target <= 0.8)")
    return lines


def crlb_tables(doc: dict, results: dict[str, dict | None]) -> list[str]:
    groups = sorted({s["crlb_group"] for s in doc["spectra"] if s["crlb_group"] is not None})
    if not groups:
        return []
    lines = ["CRLB calibration: fixed spectra, noise draws only. SD across draws / mean reported SD (target 0.9-1.1)",
             f"{'tool':8s} {'spectrum':>8s} {'SNR':>5s} {'draws':>5s} {'quantity':>9s} {'mean':>7s} {'true':>7s} "
             f"{'SD':>7s} {'mean CRLB':>9s} {'SD/CRLB':>7s}"]
    for tool, out in results.items():
        if out is None:
            continue
        for g in groups:
            spec = [s for s in doc["spectra"] if s["crlb_group"] == g]
            rows = [out.get(s["stem"], {}) for s in spec]
            if not any(rows):
                continue
            if tool == "mrsmon":
                qty = "Glu/tCr"
                vals = np.array([ratios_from_conc(r["conc"])[qty] if "conc" in r else np.nan for r in rows], float)
                sds = np.array([r.get("ratios_sd", {}).get(qty) or np.nan for r in rows], float)
                true = spec[0]["ratios"][qty]
            else:
                qty = "Glu"
                vals = np.array([r.get("conc", {}).get("Glu", np.nan) for r in rows], float)
                sds = np.array([r.get("sd", {}).get("Glu", np.nan) for r in rows], float)
                true = float("nan")
            ok = np.isfinite(vals) & np.isfinite(sds)
            sd_emp = float(np.std(vals[ok], ddof=1)) if ok.sum() > 2 else float("nan")
            mean_crlb = float(np.mean(sds[ok])) if ok.any() else float("nan")
            lines.append(f"{tool:8s} {g:8d} {spec[0]['params']['snr']:5.0f} {int(ok.sum()):5d} {qty:>9s} "
                         f"{fmt(np.mean(vals[ok]) if ok.any() else np.nan, 7, 3)} {fmt(true, 7, 3)} "
                         f"{fmt(sd_emp, 7, 4)} "
                         f"{fmt(mean_crlb, 9, 4)} {fmt(sd_emp / mean_crlb if mean_crlb > 0 else np.nan, 7, 2)}")
        if tool == "mrsmon":
            # the conc too (same quantity the peers report)
            for g in groups:
                spec = [s for s in doc["spectra"] if s["crlb_group"] == g]
                rows = [out.get(s["stem"], {}) for s in spec]
                vals = np.array([r.get("conc", {}).get("Glu") or np.nan for r in rows], float)
                sds = np.array([r.get("sd", {}).get("Glu") or np.nan for r in rows], float)
                ok = np.isfinite(vals) & np.isfinite(sds)
                sd_emp = float(np.std(vals[ok], ddof=1)) if ok.sum() > 2 else float("nan")
                lines.append(f"{tool:8s} {g:8d} {spec[0]['params']['snr']:5.0f} {int(ok.sum()):5d} {'Glu (tCr=8)':>9s} "
                             f"{fmt(np.mean(vals[ok]), 7, 3)} {'':>7s} {fmt(sd_emp, 7, 4)} "
                             f"{fmt(np.mean(sds[ok]), 9, 4)} "
                             f"{fmt(sd_emp / np.mean(sds[ok]), 7, 2)}")
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


# ---------------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="spant-dev,spant-heldout,sim-broad-heldout")
    ap.add_argument("--n", default="40", help="spectra per configuration: one number, or one per configuration")
    ap.add_argument("--crlb-spectra", type=int, default=3)
    ap.add_argument("--crlb-draws", type=int, default=20)
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
    for name, n_spectra in zip(names, counts, strict=True):
        results_cached: dict[str, dict] = {}
        config = replace(CONFIGS[name], conventions=args.conventions)
        folder = args.out / config.name
        crlb = args.crlb_configs is None or name in args.crlb_configs.split(",")
        doc = generate_set(config, folder, n_spectra, args.crlb_spectra if crlb else 0, args.crlb_draws)
        if args.cached_peers_only or args.fslmrs_cached_only:  # cached results, for the files run on
            for tool, kind in (("lcmodel", "raw"), ("fslmrs", "nifti")):
                keys = {s["stem"]: f"{tool}:{_digest(folder / s['files'][kind])}" for s in doc["spectra"]}
                results_cached[tool] = {stem: cache[k] for stem, k in keys.items() if k in cache}
        basis_file = Path(doc["basis_file"])
        results: dict[str, dict | None] = {}
        lc_run = None if args.cached_peers_only else lcmodel
        fsl_run = None if (args.cached_peers_only or args.fslmrs_cached_only) else fslpy
        proc, result, todo = (start_fslmrs(doc, folder, fsl_run, cache, args.fslmrs_crlb) if fsl_run
                              else (None, None, []))
        if "mrsmon" in tools:  # the same .BASIS file as the peers, unmodified
            results["mrsmon"] = run_mrsmon(doc, folder, basis_file)
        results["lcmodel"] = (run_lcmodel(doc, folder, lc_run, cache) if lc_run
                              else results_cached.get("lcmodel") if args.cached_peers_only else None)
        results["fslmrs"] = (finish_fslmrs(doc, folder, proc, result, todo, cache) if fsl_run
                             else results_cached.get("fslmrs"))
        if not args.no_cache:
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
        text += accuracy_tables(doc, results) + [""] + crlb_tables(doc, results) + [""] + time_table(results) + [""]
        print("\n".join(text[-60:]), flush=True)
    load1 = os.getloadavg()[0]
    text.append(f"load average {load0:.1f} at the start, {load1:.1f} at the end ({os.cpu_count()} cores); "
                f"run took {time.time() - t_start:.0f} s")
    out = "\n".join(text) + "\n"
    print(text[-1])
    if not args.no_write:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
