"""Accuracy of the fitter on spectra from the simulator's own forward model (never from ours).

Part A (fitter): for each linewidth, one simulated session gives the noise-free voxel signal of a
block (the simulator's skewed B0 lineshape, per-metabolite T2, its own macromolecules, residual
water, eddy currents, acquisition delay); eddy currents are corrected from its water reference as
the pipeline does; complex Gaussian noise is added for a target block SNR (NAA height / noise SD of
the real spectrum). Each (SNR, linewidth) cell is fitted over --reps noise draws.
Part B (pipeline): whole quick sessions (coils, drift, motion, residual water, Glu response) through
`mrs.stream.BlockProcessor`; block Glu/tCr against the truth averaged over the block's transients.

Reported: bias and SD (% of truth) of ratios to tCr, mean absolute % error, and CRLB calibration
(empirical SD / mean CRLB of Glu/tCr and of Glu, target 0.8-1.25). Truth is the tissue
concentration ratio; "T2w" also shows the bias against the T2-weighted ratio (what a fitter
without relaxation correction can at best recover at TE 30 ms).

    /work/venv/bin/python bench/bench_fit_accuracy.py [--reps 16] [--write-nifti DIR]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import tomllib  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from mrs.fit import FitSettings, LCFitter  # noqa: E402
from mrs.preproc import eddy  # noqa: E402
from mrs.stream import BlockProcessor  # noqa: E402
from protocols.plan import SESSIONS_DIR, plan_from_dict  # noqa: E402

RATIOS = ("Glu", "Gln", "Glx", "NAA", "tNAA", "tCho", "mI", "GABA", "GSH")
PARTS = {"Glx": ("Glu", "Gln"), "tNAA": ("NAA", "NAAG"), "tCho": ("GPC", "PCh"), "tCr": ("Cr", "PCr")}


def make_plan(overrides: dict, block: int | None = None):
    raw = tomllib.loads((SESSIONS_DIR / "quick.toml").read_text())
    from simulator.forward import DEFAULTS

    raw["simulation"] = {**raw.get("simulation", {}),
                         **{k: v for k, v in overrides.items() if k in DEFAULTS}}
    if block:
        raw.setdefault("processing", {})["block_transients"] = block
    return plan_from_dict(raw, source="bench")


def make_sim(overrides: dict, seed: int, basis=None):
    from simulator.forward import SessionSimulator

    return SessionSimulator(make_plan(overrides), seed=seed, basis=basis)


def true_ratios(conc: dict, t2w: bool, te_s: float) -> dict:
    from simulator.truth import t2_ms

    def amp(name: str) -> float:
        return conc.get(name, 0.0) * (np.exp(-te_s / (t2_ms(name) * 1e-3)) if t2w else 1.0)

    def total(name: str) -> float:
        return sum(amp(p) for p in PARTS.get(name, (name,)))

    return {k: total(k) / total("tCr") for k in RATIOS}


def quiet(linewidth_hz: float) -> dict:
    """A steady session: no motion, no water bursts, no response, small drift."""
    return {"linewidth_hz": linewidth_hz, "motion_events": 0, "residual_water_bursts": 0,
            "residual_water_bursts_per_h": 0.0, "response_pct": 0.0, "drift_hz_per_min": 0.1,
            "drift_random_walk_hz": 0.02, "coil_failures": []}


def part_a(args, basis, lines: list[str]) -> None:
    snrs = [float(s) for s in args.snr.split(",")]
    lws = [float(v) for v in args.linewidth.split(",")]
    rng = np.random.default_rng(args.seed)
    lines.append("A. fitter on simulator block spectra (ECC from the simulated water reference)")
    lines.append(f"   {args.reps} noise draws per cell; bias/SD in % of the tissue-truth ratio; "
                 "calib = SD / mean CRLB")
    hdr = f"{'lw Hz':>5s} {'SNR':>5s} " + " ".join(f"{k + '/tCr':>12s}" for k in RATIOS) \
        + f" {'MAPE%':>6s} {'GluT2w':>7s} {'calib':>6s} {'calibGlu':>8s} {'fit ms':>6s}"
    lines.append(hdr)
    fitter = None
    for lw in lws:
        sim = make_sim(quiet(lw), args.seed, basis)
        met = [i for i, k in enumerate(sim.kinds) if k == "metabolite"][: args.block]
        water_i = next(i for i, k in enumerate(sim.kinds) if k == "water_ref")
        clean = np.mean([sim.voxel_signal(i) for i in met], axis=0)
        clean = eddy.apply_eddy(clean, eddy.eddy_phase(sim.voxel_signal(water_i)))
        truth = sim.truth()
        conc = truth["baseline_concentrations_mm"]
        tr, tr_t2 = true_ratios(conc, False, sim.te_s), true_ratios(conc, True, sim.te_s)
        if fitter is None:
            fitter = LCFitter(basis, sim.dwell_s, sim.points, sim.cf_mhz, settings=FitSettings())
        n = sim.points
        ppm = 4.65 + np.fft.fftfreq(n, sim.dwell_s) / sim.cf_mhz
        naa_band = (ppm > 1.95) & (ppm < 2.07)
        height = float(np.abs(np.fft.fft(clean))[naa_band].max())  # NAA peak height (block SNR definition)
        for snr in snrs:
            noise_sd = height / snr / np.sqrt(n)  # per real/imag component, time domain: the real
            # spectrum's noise SD is then height / snr (the simulator's and qc's SNR definition)
            est = {k: [] for k in RATIOS}
            glu_ratio_sd, glu_conc, glu_conc_sd, ms = [], [], [], []
            x_prev = None
            for rep in range(args.reps):
                y = clean + noise_sd * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
                t0 = time.perf_counter()
                res = fitter.fit(y, x0=x_prev)
                ms.append((time.perf_counter() - t0) * 1e3)
                x_prev = res.x
                q = res.quantities()
                rat = res.ratios()
                tcr = q["tCr"][0]
                for k in RATIOS:
                    est[k].append(q[k][0] / tcr if tcr > 0 else np.nan)
                glu_ratio_sd.append(rat["Glu/tCr"][1])
                glu_conc.append(q["Glu"][0])
                glu_conc_sd.append(q["Glu"][1])
                if args.write_nifti and rep == 0:
                    write_nifti(Path(args.write_nifti), f"lw{lw:g}_snr{snr:g}", y, sim, truth, tr, snr, lw)
            bias = {k: 100 * (np.nanmean(est[k]) / tr[k] - 1) for k in RATIOS}
            sd = {k: 100 * np.nanstd(est[k], ddof=1) / tr[k] for k in RATIOS}
            mape = float(np.mean([100 * np.nanmean(np.abs(np.array(est[k]) / tr[k] - 1)) for k in RATIOS]))
            glu_t2w = 100 * (np.nanmean(est["Glu"]) / tr_t2["Glu"] - 1)
            calib = float(np.nanstd(est["Glu"], ddof=1) / np.mean(glu_ratio_sd))
            calib_c = float(np.std(glu_conc, ddof=1) / np.mean(glu_conc_sd))
            cells = " ".join(f"{bias[k]:+6.1f}±{sd[k]:4.1f}" for k in RATIOS)
            lines.append(f"{lw:5.1f} {snr:5.0f} {cells} {mape:6.1f} {glu_t2w:+7.1f} {calib:6.2f} {calib_c:8.2f} "
                         f"{np.median(ms):6.1f}")
            print(lines[-1], flush=True)


def part_b(args, basis, lines: list[str]) -> None:
    lines.append("")
    lines.append(f"B. pipeline (BlockProcessor) on whole simulated 'quick' sessions, block {args.block}")
    lines.append(f"   Glu response {args.response:g} %; 'track' = slope of measured vs true Glu/tCr, each relative "
                 "to its session mean (1 = changes recovered in full)")
    lines.append(f"{'seed':>4s} {'blocks':>6s} {'ok':>3s} {'Glu/tCr bias%':>13s} {'SD%':>5s} {'calib':>6s} "
                 f"{'track':>6s} {'rejected':>8s} {'motion tr.':>10s} {'caught':>6s}")
    for seed in range(args.seed, args.seed + args.sessions):
        plan = make_plan({"motion_events": 1, "response_pct": args.response, "response_onset_min": 0.5,
                          "response_rise_min": 0.5}, block=args.block)
        from simulator.forward import SessionSimulator

        sim = SessionSimulator(plan, seed=seed, basis=basis)
        truth = sim.truth()
        tt = truth["transients"]
        proc = BlockProcessor(sim.header_fields(), basis, args.block, alarms=vars(plan.alarms))
        trans, blocks = [], []
        for sc in sim.scans():
            flags = frozenset() if sc.kind == "metabolite" else frozenset({sc.kind})
            for o in proc.add(sc.index, sc.t_s, flags, sc.data):
                (blocks if o["kind"] == "block" else trans).append(o)
        for o in proc.flush():
            (blocks if o["kind"] == "block" else trans).append(o)
        by_scan = {t["scan"]: t for t in tt}
        errs, zs, meas, true = [], [], [], []
        for b in (o["result"] for o in blocks):
            if b["qc"]["fit_status"] != "ok":
                continue
            seqs = [t["seq"] for t in trans if t["block"] == b["block"] and not t["rejected"]]
            conc = [by_scan[s]["concentrations_mm"] for s in seqs if s in by_scan]
            if not conc:
                continue
            mean_conc = {k: float(np.mean([c[k] for c in conc])) for k in conc[0]}
            tr = true_ratios(mean_conc, False, sim.te_s)["Glu"]
            errs.append(b["ratios"]["Glu/tCr"] / tr - 1)
            meas.append(b["ratios"]["Glu/tCr"])
            true.append(tr)
            zs.append((b["ratios"]["Glu/tCr"] - tr) / b["ratios_sd"]["Glu/tCr"])
        motion = {t["scan"] for t in tt if t["motion"]}
        rejected = {t["seq"] for t in trans if t["rejected"]}
        caught = len(motion & rejected)
        e = 100 * np.array(errs)
        # calib: SD of the (bias-removed) errors over the mean reported SD
        calib = float(np.std(zs, ddof=1)) if len(zs) > 2 else float("nan")
        m, tv = np.array(meas) / np.mean(meas), np.array(true) / np.mean(true)
        track = float(np.polyfit(tv, m, 1)[0]) if len(m) > 2 and np.ptp(tv) > 0 else float("nan")
        lines.append(f"{seed:4d} {len(blocks):6d} {len(errs):3d} {e.mean():+13.1f} {e.std(ddof=1):5.1f} "
                     f"{calib:6.2f} {track:6.2f} {len(rejected):8d} {len(motion):10d} {caught:6d}")
        print(lines[-1], flush=True)


def write_nifti(folder: Path, name: str, fid: np.ndarray, sim, truth: dict, ratios: dict, snr: float,
                lw: float) -> None:
    from nifti_mrs.create_nmrs import gen_nifti_mrs

    folder.mkdir(parents=True, exist_ok=True)
    img = gen_nifti_mrs(fid.astype(np.complex64).reshape(1, 1, 1, -1), sim.dwell_s, sim.cf_mhz, no_conj=True)
    img.add_hdr_field("EchoTime", sim.te_s)
    img.add_hdr_field("RepetitionTime", sim.tr_s)
    img.add_hdr_field("SequenceName", sim.plan.acquisition.sequence)
    img.save(str(folder / f"{name}.nii.gz"))
    (folder / f"{name}_truth.json").write_text(json.dumps({
        "concentrations_mm": truth["baseline_concentrations_mm"], "ratios_to_tCr": ratios,
        "block_snr": snr, "linewidth_hz": lw, "seed": truth["seed"], "te_s": sim.te_s,
        "note": "eddy-current corrected block average from simulator.forward plus complex Gaussian noise"},
        indent=1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=16)
    ap.add_argument("--snr", default="40,80,160")
    ap.add_argument("--linewidth", default="5,7,10")
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--sessions", type=int, default=2)
    ap.add_argument("--response", type=float, default=15.0, help="simulated Glu rise, percent")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--write-nifti", default=None, metavar="DIR")
    ap.add_argument("--skip-pipeline", action="store_true")
    args = ap.parse_args()
    from mrs.basis_sim import basis_for_acquisition

    acq = make_plan({}).acquisition
    basis = basis_for_acquisition({"spectrometer_frequency_mhz": acq.spectrometer_frequency_mhz,
                                   "dwell_time_s": acq.dwell_time_s, "points": acq.points,
                                   "echo_time_s": acq.echo_time_ms * 1e-3, "te1_s": (acq.te1_ms or 0) * 1e-3
                                   or None, "sequence": acq.sequence})
    lines = [f"bench_fit_accuracy: simulator.forward spectra, fitter {FitSettings()}", ""]
    t_start = time.perf_counter()
    part_a(args, basis, lines)
    if not args.skip_pipeline:
        part_b(args, basis, lines)
    lines.append("")
    lines.append(f"total {time.perf_counter() - t_start:.0f} s")
    text = "\n".join(lines)
    out = Path(__file__).parent / "results" / "fit_accuracy.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
