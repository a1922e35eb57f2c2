"""Speed of one block fit: 2048 points, the default simulated basis (~20 metabolites + MM),
spline baseline, CRLB, warm-started from the previous block as in the stream. Single-threaded.

    /work/venv/bin/python bench/bench_fit_speed.py [--blocks 200]

Prints a table and writes bench/results/fit_speed.txt.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from mrs.fit import FitSettings, LCFitter  # noqa: E402
from mrs.fit.toy import synth_fid  # noqa: E402

ACQ = {"spectrometer_frequency_mhz": 123.25, "dwell_time_s": 1 / 4000, "points": 2048, "echo_time_s": 0.03,
       "te1_s": 0.015, "sequence": "PRESS"}
CONC = {"NAA": 10, "NAAG": 2, "Cr": 5, "PCr": 4.5, "GPC": 1.2, "PCh": 0.5, "mI": 5, "sI": 0.4, "Glu": 10,
        "Gln": 3, "GABA": 1, "GSH": 2, "Tau": 1.5, "Lac": 0.5, "Asp": 1.5, "Glc": 1, "Ala": 0.2, "Gly": 1,
        "PE": 1.5, "MM09": 3, "MM12": 2, "MM14": 2, "MM17": 2, "MM20": 3, "MM22": 2, "MM30": 2}


def load_basis():
    try:
        from mrs.basis_sim import basis_for_acquisition

        return basis_for_acquisition(ACQ), "simulated (mrs.basis_sim)"
    except Exception as exc:  # the physics helper's module may be absent in old checkouts
        from mrs.fit.toy import toy_basis

        return toy_basis(), f"toy ({exc.__class__.__name__})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="fit_speed", help="results file name under bench/results/")
    args = ap.parse_args()
    basis, source = load_basis()
    rng = np.random.default_rng(args.seed)
    # (label, settings, mode): "held" = as the agent fits a block once the session reference is
    # fixed (session parameters held); "own" = a block on its own (the first blocks, `mrsmon fit`)
    previous = {"kernel_half_width_ppm": 0.0, "ratio_priors": False, "n_starts": 1, "grid_starts": 0}  # before issue 11
    # the agent (a session reference) fits without the free lineshape kernel (mrs/pipeline/blocks.py)
    configs = [("agent block fit (session reference held)", FitSettings(kernel_half_width_ppm=0.0), "held"),
               ("same, previous defaults (no kernel/priors)", FitSettings(**previous), "held"),
               ("block on its own (mrsmon fit; kernel, priors)", FitSettings(), "own"),
               ("same, previous defaults (no kernel/priors)", FitSettings(**previous), "own"),
               ("full grid, ftol 0.1, previous defaults", FitSettings(model_margin_ppm=None, ftol_chi2=0.1, **previous),
                "own"),
               ("cold start every block", FitSettings(), "cold"),
               ("cold start without the (shift, phase) grid", FitSettings(grid_starts=0), "cold"),
               ("cold start, previous defaults", FitSettings(**previous), "cold")]
    fitters, build = [], []
    for _, settings, _ in configs:
        t_build = time.perf_counter()
        fitters.append(LCFitter(basis, ACQ["dwell_time_s"], ACQ["points"], ACQ["spectrometer_frequency_mhz"],
                                settings=settings))
        build.append((time.perf_counter() - t_build) * 1e3)
    # Interleaved: every block is fitted by each configuration in turn, so a load change on the
    # shared machine hits all of them alike and their ratio stays meaningful.
    times = [[] for _ in configs]
    cpu = [[] for _ in configs]
    nfev = [[] for _ in configs]
    x_prev: list = [None] * len(configs)

    def block(i: int) -> np.ndarray:
        # drifting block: slow frequency drift, small linewidth and phase changes, block SNR ~100
        return synth_fid(basis, CONC, lorentz_hz=3.0 + 0.3 * np.sin(i / 15), gauss_hz=4.0,
                         shift_hz=0.02 * i, phase_rad=0.1 * np.sin(i / 20), noise_sd=12.0, rng=rng)

    # the session reference: a full fit of the first 8 blocks' average (as mrs.pipeline does)
    reference = {k: f.fit(np.mean([block(i) for i in range(8)], axis=0)).x for k, f in enumerate(fitters)}
    for i in range(args.blocks):
        fid = block(i)
        for k, ((_, _, mode), fitter) in enumerate(zip(configs, fitters, strict=True)):
            hold = fitter.session_mask() if mode == "held" else None
            x0 = None if mode == "cold" else x_prev[k]
            if mode == "held":
                x0 = reference[k] if x0 is None else np.where(hold, reference[k], x0)
            t0, c0 = time.perf_counter(), time.process_time()
            res = fitter.fit(fid, x0=x0, hold=hold)
            times[k].append((time.perf_counter() - t0) * 1e3)
            cpu[k].append((time.process_time() - c0) * 1e3)
            nfev[k].append(res.nfev)
            x_prev[k] = res.x
    rows = []
    for k, ((label, _, _), fitter) in enumerate(zip(configs, fitters, strict=True)):
        t = np.array(times[k][5:])  # first blocks warm caches
        c = np.array(cpu[k][5:])
        rows.append((label, len(fitter.names), fitter.win.size, len(fitter.param_names), build[k],
                     float(np.median(t)), float(np.percentile(t, 99)), float(np.median(c)),
                     float(np.percentile(c, 99)), float(np.median(nfev[k]))))
    lines = [f"bench_fit_speed: one block fit incl. CRLB, single thread ({platform.processor() or platform.machine()}, "
             f"numpy {np.__version__})", f"basis: {source}; {ACQ['points']} points, window 0.2-4.2 ppm; "
             f"{args.blocks} blocks, warm start unless stated, configurations interleaved block by block", "",
             f"{'configuration':44s} {'spectra':>7s} {'window':>6s} {'nonlin':>6s} {'build ms':>8s} "
             f"{'wall med':>8s} {'wall p99':>8s} {'cpu med':>7s} {'cpu p99':>7s} {'nfev':>5s}"]
    for r in rows:
        lines.append(f"{r[0]:44s} {r[1]:7d} {r[2]:6d} {r[3]:6d} {r[4]:8.1f} {r[5]:8.2f} {r[6]:8.2f} {r[7]:7.2f} "
                     f"{r[8]:7.2f} {r[9]:5.0f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines.append("")
    lines.append(f"times in ms; target: median < 10 ms. Load average during the run: {load:.1f} on "
                 f"{os.cpu_count()} cores; on a shared machine the CPU-time columns are the better guide.")
    text = "\n".join(lines)
    print(text)
    out = Path(__file__).parent / "results" / f"{args.out}.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
