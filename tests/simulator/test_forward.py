"""SessionSimulator: reproducibility, scan layout, drift, noise, SNR, response, motion, coils, blinding.

A small stand-in basis (a few singlets) keeps these fast; the physics basis is exercised in
test_forward_basis.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mrs.basis import WATER_PPM, Basis, ppm_axis, to_spectrum
from protocols.plan import plan_from_dict
from simulator import timecourse
from simulator.forward import Scan, SessionSimulator, SimulationError

CF_MHZ = 123.25
BW_HZ = 4000.0
POINTS = 1024
SINGLETS = {"NAA": ((2.008, 3.0),), "Cr": ((3.027, 3.0),), "GPC": ((3.21, 9.0),),
            "Glu": ((2.35, 2.0), (3.75, 1.0)), "mI": ((3.56, 4.0),), "Gln": ((2.45, 2.0),)}


def stand_in_basis(points: int = POINTS) -> Basis:
    t = np.arange(points) / BW_HZ
    fids = np.array([sum(n * np.exp(2j * np.pi * (p - WATER_PPM) * CF_MHZ * t) for p, n in peaks)
                     for peaks in SINGLETS.values()])
    return Basis(tuple(SINGLETS), fids, 1.0 / BW_HZ, CF_MHZ)


def make_plan(sim: dict | None = None, duration_min: float = 4.0, coils: int = 8, noise_scans: int = 1,
              infusion: tuple[float, float] | None = None, points: int = POINTS, **acq) -> object:
    events = []
    phases = []
    if infusion is not None:
        events = [{"kind": "infusion_start", "at_min": infusion[0]},
                  {"kind": "vitals", "at_min": 0.5 * (infusion[0] + infusion[1])},
                  {"kind": "infusion_stop", "at_min": infusion[1]}]
        phases = [{"name": "infusion", "start_min": infusion[0], "end_min": infusion[1]}]
    raw = {
        "name": "test-plan",
        "acquisition": {"spectrometer_frequency_mhz": CF_MHZ, "nucleus": "1H", "sequence": "PRESS",
                        "echo_time_ms": 30.0, "te1_ms": 15.0, "repetition_time_s": 2.0, "points": points,
                        "bandwidth_hz": BW_HZ, "coils": coils, "water_reference_transients": 2,
                        "noise_scans": noise_scans, "dummy_scans": 2, **acq},
        "timeline": {"duration_min": duration_min, "phases": phases, "events": events},
        "subject": {"kit_code": "KIT-7"},
        "simulation": {"snr_naa_single": 25.0, "linewidth_hz": 6.0, **(sim or {})},
    }
    return plan_from_dict(raw)


# Settings that leave only noise, lineshape and drift: for measuring SNR and frequencies cleanly.
CLEAN = {"eddy_phase_rad": 0.0, "acq_delay_ms": 0.0, "residual_water_ratio": 0.0, "mm_scale": 0.0,
         "drift_hz_per_min": 0.0, "drift_random_walk_hz": 0.0, "phase_random_walk_deg": 0.0,
         "freq_offset_hz": 0.0, "residual_water_bursts_per_h": 0, "concentration_cv": 0.0}


def simulate(plan, seed: int = 1, **kw) -> SessionSimulator:
    return SessionSimulator(plan, seed=seed, basis=kw.pop("basis", stand_in_basis(plan.acquisition.points)), **kw)


def combined(sim: SessionSimulator, scan: Scan) -> np.ndarray:
    w = sim.coil_array_at(scan.index).optimal_weights()
    return w.conj() @ scan.data.astype(complex)


def test_same_seed_gives_identical_bytes_and_truth():
    plan = make_plan({"motion_events": 2, "drift_hz_per_min": 1.0}, duration_min=1.5, coils=4)
    a = [s.data.tobytes() for s in simulate(plan, 5).scans()]
    b = [s.data.tobytes() for s in simulate(plan, 5).scans()]
    c = [s.data.tobytes() for s in simulate(plan, 6).scans()]
    assert a == b
    assert a[-1] != c[-1]
    assert json.dumps(simulate(plan, 5).truth()) == json.dumps(simulate(plan, 5).truth())


def test_scans_are_ordered_typed_and_shaped():
    plan = make_plan(coils=4)
    sim = simulate(plan)
    scans = list(sim.scans())
    kinds = [s.kind for s in scans]
    assert kinds[:5] == ["noise", "dummy", "dummy", "water_ref", "water_ref"]
    assert set(kinds[5:]) == {"metabolite"} and len(kinds) - 5 == plan.n_transients
    for i, s in enumerate(scans):
        assert s.index == i and s.t_s == pytest.approx(2.0 * i)
        assert s.data.dtype == np.complex64 and s.data.shape == (4, POINTS) and s.data.flags.c_contiguous
    # The unsuppressed water reference is thousands of times the metabolite signal.
    ppm = ppm_axis(POINTS, 1 / BW_HZ, CF_MHZ)
    water_peak = np.abs(to_spectrum(sim.voxel_signal(3))).max()
    naa_peak = np.abs(to_spectrum(sim.voxel_signal(10))[(ppm > 1.9) & (ppm < 2.1)]).max()
    assert water_peak > 1000 * naa_peak
    # Dummy scans carry more signal than steady-state ones; the noise scan carries none.
    assert np.abs(sim.voxel_signal(1)[:50]).mean() > 1.2 * np.abs(sim.voxel_signal(10)[:50]).mean()
    assert not sim.voxel_signal(0).any()


def test_noise_scans_have_the_configured_covariance():
    plan = make_plan({"noise_correlation": [0.15, 0.3]}, noise_scans=24, duration_min=0.2)
    sim = simulate(plan)
    noise = np.concatenate([s.data for s in sim.scans() if s.kind == "noise"], axis=1).astype(complex)
    est = noise @ noise.conj().T / noise.shape[1]
    true = sim.coil_arrays[0].noise_cov
    scale = np.sqrt(np.outer(np.diag(true).real, np.diag(true).real))
    assert np.abs(est - true).max() / scale.max() < 0.05
    corr = np.abs(est / np.sqrt(np.outer(np.diag(est).real, np.diag(est).real)))
    neighbours = np.diag(corr, 1)
    assert neighbours.min() > 0.15 - 0.04 and neighbours.max() < 0.3 + 0.04
    assert np.abs(np.triu(corr, 2)).max() < 0.04  # only neighbours are correlated


def test_single_transient_snr_matches_the_plan():
    for target in (12.0, 40.0):
        plan = make_plan({**CLEAN, "snr_naa_single": target}, duration_min=2.2, coils=4)
        sim = simulate(plan)
        ppm = ppm_axis(POINTS, 1 / BW_HZ, CF_MHZ)
        specs = []
        for s in sim.scans():
            if s.kind == "metabolite":
                undo = np.exp(-1j * np.deg2rad(sim.phase_deg[s.index]))
                specs.append(to_spectrum(combined(sim, s) * undo).real)
        specs = np.array(specs)
        height = specs.mean(axis=0)[(ppm > 1.95) & (ppm < 2.07)].max()
        noise_region = (ppm < -1.0) | (ppm > 8.0)
        sd = specs[:, noise_region].std()
        assert height / sd == pytest.approx(target, rel=0.08)


def _peak_ppm(sim: SessionSimulator, scan_indices: list[int], scans: dict) -> float:
    """NAA peak position (ppm) of the averaged combined spectrum, to 0.01 Hz by zero-filling."""
    fid = np.mean([combined(sim, scans[i]) * np.exp(-1j * np.deg2rad(sim.phase_deg[i])) for i in scan_indices],
                  axis=0)
    n = 64 * POINTS
    spec = np.fft.fftshift(np.fft.fft(fid, n)).real
    ppm = ppm_axis(n, 1 / BW_HZ, CF_MHZ)
    band = (ppm > 1.8) & (ppm < 2.25)
    return float(ppm[band][np.argmax(spec[band])])


def test_true_frequency_follows_the_drift_and_the_data_carry_it():
    rate = 3.0
    plan = make_plan({**CLEAN, "drift_hz_per_min": rate, "drift_random_walk_hz": 0.05,
                      "snr_naa_single": 60.0}, duration_min=4.0)
    sim = simulate(plan)
    tr = sim.truth()["transients"]
    t_min = np.array([x["t_s"] for x in tr]) / 60.0
    f = np.array([x["freq_hz"] for x in tr])
    slope = np.polyfit(t_min, f, 1)[0]
    assert slope == pytest.approx(rate, abs=0.3)
    scans = {s.index: s for s in sim.scans()}
    first = [x["scan"] for x in tr[:8]]
    last = [x["scan"] for x in tr[-8:]]
    measured_hz = (_peak_ppm(sim, last, scans) - _peak_ppm(sim, first, scans)) * CF_MHZ
    expected_hz = np.mean(f[-8:]) - np.mean(f[:8])
    assert expected_hz > 8.0
    assert measured_hz == pytest.approx(expected_hz, abs=0.4)


def test_linewidth_of_the_noise_free_naa_line_matches_the_plan():
    for lw in (5.0, 12.0):
        plan = make_plan({**CLEAN, "linewidth_hz": lw}, duration_min=0.2, points=4096)
        sim = simulate(plan)
        i = sim.kinds.index("metabolite")
        fid = sim.voxel_signal(i) * np.exp(-1j * np.deg2rad(sim.phase_deg[i]))
        n = 16 * fid.size
        fid = fid.copy()
        fid[0] *= 0.5
        spec = np.fft.fftshift(np.fft.fft(fid, n)).real
        f = np.fft.fftshift(np.fft.fftfreq(n, 1 / BW_HZ))
        band = np.abs(f - (2.008 - WATER_PPM) * CF_MHZ) < 30
        s, fb = spec[band], f[band]
        k = int(np.argmax(s))
        lo, hi = k, k
        while s[lo - 1] > s[k] / 2:
            lo -= 1
        while s[hi + 1] > s[k] / 2:
            hi += 1
        assert fb[hi] - fb[lo] == pytest.approx(lw, abs=0.25)
        assert sim.linewidth_hz_at(i) == pytest.approx(lw, abs=0.1)


def test_lineshape_is_skewed_not_voigt():
    plan = make_plan({**CLEAN, "linewidth_hz": 8.0, "lineshape_skew": 1.5}, duration_min=0.2, points=4096)
    sim = simulate(plan)
    i = sim.kinds.index("metabolite")
    fid = sim.voxel_signal(i) * np.exp(-1j * np.deg2rad(sim.phase_deg[i]))
    n = 16 * fid.size
    spec = np.fft.fftshift(np.fft.fft(fid, n)).real
    f = np.fft.fftshift(np.fft.fftfreq(n, 1 / BW_HZ)) - (2.008 - WATER_PPM) * CF_MHZ
    band = np.abs(f) < 12
    w = np.clip(spec[band], 0, None)
    mean_hz = np.sum(w * f[band]) / w.sum()
    peak_hz = f[band][np.argmax(spec[band])]
    assert abs(mean_hz - peak_hz) > 0.3  # a symmetric Voigt has its centroid on its peak


def test_glu_truth_follows_the_response_and_naltrexone_halves_it():
    sim_cfg = {"response_pct": 6.0, "response_onset_min": 2.0, "response_rise_min": 3.0,
               "response_decay_min": 4.0}
    plan = make_plan(sim_cfg, duration_min=20.0, infusion=(3.0, 12.0), coils=2, points=256)
    pla = simulate(plan, 2, condition="placebo")
    nal = simulate(plan, 2, condition="naltrexone")
    tp, tn = pla.truth(), nal.truth()
    base = tp["baseline_concentrations_mm"]["Glu"]
    t_min = np.array([x["t_s"] for x in tp["transients"]]) / 60
    glu_p = np.array([x["concentrations_mm"]["Glu"] for x in tp["transients"]]) / base - 1
    glu_n = np.array([x["concentrations_mm"]["Glu"] for x in tn["transients"]]) / base - 1
    assert np.allclose(glu_p, timecourse.glu_scale(t_min, plan, "placebo") - 1, atol=1e-4)
    assert np.abs(glu_p[t_min < 5.0]).max() < 1e-5                 # before onset
    assert glu_p[(t_min > 8.0) & (t_min < 12.0)] == pytest.approx(0.06, abs=1e-4)  # plateau
    assert np.abs(glu_p[t_min > 16.0]).max() < 1e-5                 # decayed
    assert glu_n.max() == pytest.approx(0.5 * glu_p.max(), rel=0.01)
    assert tp["condition"] == "placebo" and tn["condition"] == "naltrexone"
    # The arm only changes the Glu time course, not the noise or anything else in the header.
    assert pla.header_fields() == nal.header_fields()


def test_condition_never_leaves_the_truth():
    plan = make_plan({"condition": "naltrexone", "response_pct": 5.0}, infusion=(1.0, 3.0))
    sim = simulate(plan)
    header = sim.header_fields()
    assert set(header) == {"spectrometer_frequency_mhz", "nucleus", "dwell_time_s", "points", "coils",
                           "echo_time_s", "repetition_time_s", "sequence", "te1_s", "voxel_mm",
                           "field_strength_t"}
    text = json.dumps(header) + json.dumps(sim.events())
    for word in ("naltrexone", "placebo", "condition"):
        assert word not in text.lower()
    assert sim.truth()["condition"] == "naltrexone"


def test_motion_transients_are_flagged_and_corrupted_but_not_announced():
    plan = make_plan({"motion_events": 3, "drift_random_walk_hz": 0.0, "snr_naa_single": 40.0},
                     duration_min=6.0)
    sim = simulate(plan)
    truth = sim.truth()
    events = truth["motion_events"]
    assert len(events) == 3
    flagged = {x["transient"] for x in truth["transients"] if x["motion"]}
    expected = {e["transient"] + k for e in events for k in range(e["n_transients"])}
    assert flagged == expected
    assert not any(kind == "motion" for _, kind, _, _ in sim.events())
    # Motion transients are broadened or lose signal; the frequency jumps.
    tr = truth["transients"]
    for e in events:
        j = e["transient"]
        x = tr[j]
        assert x["linewidth_hz"] > tr[j - 1]["linewidth_hz"] + 1.0 or x["signal_fraction"] < 0.95
        assert abs(x["freq_hz"] - tr[j - 1]["freq_hz"]) > 1.0


def test_motion_lipid_bursts_reach_the_data():
    plan = make_plan({"motion_events": 6, "snr_naa_single": 40.0}, duration_min=6.0, coils=2)
    sim = simulate(plan, 3)
    lip = [x["transient"] for x in sim.truth()["transients"] if x["lipid_height_ratio"] > 5]
    assert lip, "seed 3 should give a lipid burst"
    ppm = ppm_axis(POINTS, 1 / BW_HZ, CF_MHZ)
    band = (ppm > 1.0) & (ppm < 1.6)
    first_met = sim.kinds.index("metabolite")
    power = {}
    for s in sim.scans():
        if s.kind == "metabolite":
            power[s.index - first_met] = np.abs(to_spectrum(s.data.astype(complex))[:, band]).sum()
    quiet = np.median(list(power.values()))
    assert min(power[j] for j in lip) > 2.0 * quiet


def test_coil_failure_kills_one_coil_and_makes_another_noisy():
    fails = [{"coil": 2, "at_min": 1.0, "mode": "dead"},
             {"coil": 5, "at_min": 2.0, "mode": "noisy", "noise_factor": 10.0}]
    plan = make_plan({**CLEAN, "coil_failures": fails}, duration_min=3.0)
    sim = simulate(plan)

    def powers(lo_s: float, hi_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean signal power and noise variance per coil (the clean signal repeats exactly)."""
        d = np.array([s.data for s in sim.scans() if s.kind == "metabolite" and lo_s < s.t_s < hi_s])
        return (np.abs(d) ** 2).mean(axis=(0, 2)), d.var(axis=0).mean(axis=1)

    total_before, noise_before = powers(0, 58)
    total_after, noise_after = powers(122, 1e9)
    assert total_after[2] < 1e-4 * total_before[2]
    assert noise_after[5] == pytest.approx(100.0 * noise_before[5], rel=0.2)
    others = [c for c in range(8) if c not in (2, 5)]
    assert np.allclose(noise_after[others], noise_before[others], rtol=0.2)
    epochs = [x["coil_epoch"] for x in sim.truth()["transients"]]
    assert epochs[0] == 0 and epochs[-1] == 2
    with pytest.raises(SimulationError, match="coil 9"):
        simulate(make_plan({"coil_failures": [{"coil": 9, "at_min": 1.0}]}))


def test_events_follow_the_plan_with_vitals_and_pump_rate():
    plan = make_plan({"response_pct": 5.0}, infusion=(1.0, 3.0))
    ev = simulate(plan).events()
    kinds = [k for _, k, _, _ in ev]
    assert kinds == ["infusion_start", "pump_rate", "vitals", "infusion_stop", "pump_rate"]
    assert [t for t, _, _, _ in ev] == sorted(t for t, _, _, _ in ev)
    vit = ev[2][2]
    assert 80 < vit["sys_mmhg"] < 200 and 40 < vit["dia_mmhg"] < 130 and 40 < vit["hr_bpm"] < 150
    assert ev[1][2]["ml_per_h"] > 0 and ev[4][2]["ml_per_h"] == 0


def test_bad_plans_raise_one_sentence():
    with pytest.raises(SimulationError, match="unknown \\[simulation\\] key"):
        simulate(make_plan({"snr": 3}))
    with pytest.raises(SimulationError, match="unknown condition"):
        simulate(make_plan(), condition="verum")
    with pytest.raises(SimulationError, match="narrower than the Lorentzian"):
        simulate(make_plan({"linewidth_hz": 1.0}))


def test_truth_is_json_and_written(tmp_path):
    plan = make_plan({"motion_events": 1, "coil_failures": [{"coil": 1, "at_min": 2.0}]})
    sim = simulate(plan, coils=3)
    path = tmp_path / "truth.json"
    sim.write_truth(path)
    data = json.loads(path.read_text())
    assert data["seed"] == 1 and data["plan"] == "test-plan" and len(data["transients"]) == plan.n_transients
    assert {"Glu", "NAA", "Cr"} <= set(data["transients"][0]["concentrations_mm"])
    assert sim.header_fields()["coils"] == 3
    part = sim.truth(n_scans=20)
    assert part["n_scans"] == 20 and [x["scan"] for x in part["transients"]] == list(range(5, 20))
    assert part["transients"] == data["transients"][:15]


def test_water_reference_carries_the_eddy_current_phase():
    """Klose correction needs the same eddy-current phase in the water reference and the data:
    dividing the data by the water reference's phase must give the eddy-free data."""
    def sim_with(eddy_rad: float) -> SessionSimulator:
        return simulate(make_plan({**CLEAN, "eddy_phase_rad": eddy_rad, "eddy_tau_ms": 10.0,
                                   "lineshape_skew": 0.0}, duration_min=0.2))

    with_eddy, without = sim_with(0.5), sim_with(0.0)
    t = with_eddy.t
    w = with_eddy.kinds.index("water_ref")
    m = with_eddy.kinds.index("metabolite")
    phase_w = np.unwrap(np.angle(with_eddy.voxel_signal(w))) - np.unwrap(np.angle(without.voxel_signal(w)))
    early = t < 0.06
    assert np.abs(phase_w[early] - 0.5 * np.exp(-t[early] / 0.010)).max() < 0.01
    klose = with_eddy.voxel_signal(m) * np.exp(-1j * phase_w)
    ref = without.voxel_signal(m)
    assert np.abs(klose - ref).max() < 1e-3 * np.abs(ref).max()
    assert np.abs(with_eddy.voxel_signal(m) - ref).max() > 0.1 * np.abs(ref).max()


def test_truth_phase_plus_offset_is_the_phase_measured_at_naa():
    plan = make_plan({**CLEAN, "eddy_phase_rad": None, "acq_delay_ms": None}, duration_min=0.5)
    for seed in (1, 2):
        sim = simulate(plan, seed)
        truth = sim.truth()
        ppm = ppm_axis(POINTS, 1 / BW_HZ, CF_MHZ)
        band = (ppm > 1.95) & (ppm < 2.07)
        for x in truth["transients"][:3]:
            spec = to_spectrum(sim.voxel_signal(x["scan"]))
            k = np.flatnonzero(band)[np.argmax(np.abs(spec[band]))]
            expected = x["phase_deg"] + truth["naa_phase_offset_deg"]
            diff = (np.rad2deg(np.angle(spec[k])) - expected + 180.0) % 360.0 - 180.0
            assert abs(diff) < 3.0


def test_basis_names_are_matched_by_their_canonical_form():
    std = stand_in_basis()
    names = tuple({"mI": "Ins", "GPC": "GPCho"}.get(n, n) for n in std.names) + ("MM09",)
    fids = np.vstack([std.fids, std.fids[:1] * 0.1])
    renamed = Basis(names, fids, std.dwell_s, std.cf_mhz)
    plan = make_plan(duration_min=0.3)
    a, b = simulate(plan, 4), simulate(plan, 4, basis=renamed)
    assert set(b.concentrations) == set(a.concentrations)  # MM09 is not a metabolite of the tables
    i = a.kinds.index("metabolite")
    assert np.allclose(a.voxel_signal(i), b.voxel_signal(i))
