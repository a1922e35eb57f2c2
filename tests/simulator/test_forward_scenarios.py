"""The shipped scenario plans, played by the simulator with the physics basis."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mrs.basis import ppm_axis, to_spectrum
from protocols.plan import load_plan
from simulator.forward import SessionSimulator

SCENARIOS = ("quiet", "drift", "motion", "poor-shim", "coil-failure", "ketamine-placebo", "ketamine-naltrexone")


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_plans_load_and_play(name):
    plan = load_plan(name)
    sim = SessionSimulator(plan, seed=11)
    first = next(iter(sim.scans()))
    assert first.data.shape == (plan.acquisition.coils, plan.acquisition.points)
    assert len(sim.truth()["transients"]) == plan.n_transients


def _rate(sim: SessionSimulator) -> float:
    tr = sim.truth()["transients"]
    return float(np.polyfit([x["t_s"] / 60 for x in tr], [x["freq_hz"] for x in tr], 1)[0])


def test_scenarios_differ_as_described():
    quiet = SessionSimulator(load_plan("quiet"), seed=2)
    drifting = SessionSimulator(load_plan("drift"), seed=2)
    restless = SessionSimulator(load_plan("motion"), seed=2)
    shim = SessionSimulator(load_plan("poor-shim"), seed=2)
    coils = SessionSimulator(load_plan("coil-failure"), seed=2)
    assert abs(_rate(quiet)) < 0.5 and _rate(drifting) == pytest.approx(4.0, abs=0.5)
    assert not quiet.truth()["motion_events"] and len(restless.truth()["motion_events"]) == 10
    assert quiet.linewidth_hz_at(quiet.n_scans - 1) < 6.0
    assert shim.linewidth_hz_at(shim.n_scans - 1) == pytest.approx(12.0, abs=0.5)
    assert [f["coil"] for f in coils.truth()["coil_failures"]] == [7, 20]
    assert quiet.truth()["condition"] is None


def test_ketamine_arms_differ_only_in_kit_code_and_hidden_truth():
    pla, nal = load_plan("ketamine-placebo"), load_plan("ketamine-naltrexone")
    pub_p, pub_n = pla.to_public_dict(), nal.to_public_dict()
    assert pub_p.pop("kit_code") != pub_n.pop("kit_code")
    assert pub_p == pub_n and pla.name == nal.name == "ketamine-infusion"
    sp, sn = SessionSimulator(pla, seed=4), SessionSimulator(nal, seed=4)
    assert sp.header_fields() == sn.header_fields()
    assert [(t, k) for t, k, _, _ in sp.events()] == [(t, k) for t, k, _, _ in sn.events()]
    assert "naltrexone" not in json.dumps([pub_n, sn.header_fields(), sn.events()]).lower()
    tp, tn = sp.truth(), sn.truth()
    assert (tp["condition"], tn["condition"]) == ("placebo", "naltrexone")
    assert tn["effective_response_pct"] == pytest.approx(0.5 * tp["effective_response_pct"])
    peak_p = max(x["glu_scale"] for x in tp["transients"]) - 1
    peak_n = max(x["glu_scale"] for x in tn["transients"]) - 1
    assert peak_p == pytest.approx(0.05, abs=1e-4) and peak_n == pytest.approx(0.025, abs=1e-4)


def test_physics_basis_glutamate_change_reaches_the_spectrum():
    """With the density-matrix basis, the plateau-minus-baseline voxel spectrum is the Glu
    multiplet pattern (3.75 and 2.0-2.4 ppm), scaled by the response, and nothing else."""
    plan = load_plan("ketamine-placebo")
    sim = SessionSimulator(plan, seed=5)
    tr = sim.truth()["transients"]
    base = next(x for x in tr if x["glu_scale"] == 1.0)["scan"]
    peak = max(tr, key=lambda x: x["glu_scale"])["scan"]
    t = sim.t

    def aligned(i: int) -> np.ndarray:  # undo the transient's frequency, phase, width, amplitude
        a = (2j * np.pi * sim.freq_hz[i] - np.pi * sim.extra_lw_hz[i]) * t + 1j * np.deg2rad(sim.phase_deg[i])
        return sim.voxel_signal(i) * np.exp(-a) / sim.amp[i] - sim.water[i] * sim.gain * sim._comp_water_res

    diff = to_spectrum(aligned(peak) - aligned(base))
    glu = to_spectrum(sim.gain * sim._comp_glu) * (sim.glu_scale[peak] - sim.glu_scale[base])
    assert np.abs(diff - glu).max() < 1e-6 * np.abs(glu).max()
    ppm = ppm_axis(sim.points, sim.dwell_s, sim.cf_mhz)
    mag = np.abs(glu)
    assert mag[(ppm > 2.0) & (ppm < 2.45)].max() > 5 * mag[(ppm > 2.9) & (ppm < 3.3)].max()
    assert sim.truth()["basis"]["meta"]["source"].startswith("mrsmon density-matrix")
