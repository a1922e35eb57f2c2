"""The glutamate response time course: a pure function of time, plan, arm and sex."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.plan import load_plan, plan_from_dict
from simulator import timecourse


def plan_with(sim: dict, events: list | None = None, phases: list | None = None):
    return plan_from_dict({
        "name": "tc",
        "acquisition": {"spectrometer_frequency_mhz": 123.2, "nucleus": "1H", "sequence": "PRESS",
                        "echo_time_ms": 30.0, "repetition_time_s": 2.0, "points": 256, "bandwidth_hz": 2000.0,
                        "coils": 1},
        "timeline": {"duration_min": 90.0, "events": events if events is not None else
                     [{"kind": "infusion_start", "at_min": 15.0}, {"kind": "infusion_stop", "at_min": 55.0}],
                     "phases": phases or []},
        "simulation": sim,
    })


SIM = {"response_pct": 5.0, "response_onset_min": 10.0, "response_rise_min": 10.0, "response_decay_min": 20.0}


def test_shape_rises_plateaus_and_decays():
    plan = plan_with(SIM)
    g = lambda t: timecourse.glu_scale(t, plan, "placebo")  # noqa: E731
    assert g(0.0) == 1.0 and g(24.99) == 1.0                   # before onset (15 + 10)
    assert g(30.0) == pytest.approx(1.025)                      # half-way up the half-cosine rise
    assert g(35.0) == pytest.approx(1.05) and g(55.0) == pytest.approx(1.05)  # plateau to the stop
    assert g(65.0) == pytest.approx(1.025)                      # half-way down
    assert g(75.0) == pytest.approx(1.0) and g(89.0) == pytest.approx(1.0)
    t = np.linspace(0, 90, 901)
    v = timecourse.glu_scale(t, plan, "placebo")
    assert isinstance(v, np.ndarray) and np.all(np.diff(v[t <= 55]) >= -1e-12)
    assert np.all(np.diff(v[t >= 55]) <= 1e-12)


def test_naltrexone_halves_and_sex_factors_apply():
    plan = plan_with({**SIM, "naltrexone_factor_male": 0.3})
    assert timecourse.glu_scale(40.0, plan, "naltrexone") == pytest.approx(1.025)
    assert timecourse.glu_scale(40.0, plan, "naltrexone", sex="M") == pytest.approx(1.015)
    assert timecourse.glu_scale(40.0, plan, "naltrexone", sex="F") == pytest.approx(1.025)
    assert timecourse.glu_scale(40.0, plan, "placebo", sex="M") == pytest.approx(1.05)
    with pytest.raises(ValueError, match="unknown condition"):
        timecourse.glu_scale(40.0, plan, "ketamine")
    with pytest.raises(ValueError, match="unknown sex"):
        timecourse.glu_scale(40.0, plan, "naltrexone", sex="x")


def test_infusion_stopped_before_plateau_decays_from_where_it_was():
    plan = plan_with(SIM, events=[{"kind": "infusion_start", "at_min": 15.0},
                                  {"kind": "infusion_stop", "at_min": 30.0}])
    at_stop = timecourse.glu_scale(30.0, plan)
    assert at_stop == pytest.approx(1.025)
    assert timecourse.glu_scale(40.0, plan) == pytest.approx(1.0 + 0.025 * 0.5)


def test_window_from_phases_or_duration_and_none_without_infusion():
    assert timecourse.infusion_window_min(plan_with(SIM, events=[], phases=[
        {"name": "infusion", "start_min": 5.0, "end_min": 20.0}])) == (5.0, 20.0)
    assert timecourse.infusion_window_min(plan_with(SIM, events=[
        {"kind": "infusion_start", "at_min": 5.0, "value": {"duration_min": 12.0}}])) == (5.0, 17.0)
    no_drug = plan_with(SIM, events=[])
    assert timecourse.infusion_window_min(no_drug) is None
    assert timecourse.glu_scale(50.0, no_drug) == 1.0
    assert timecourse.infusion_window_min(load_plan("ketamine-infusion")) == (15.0, 55.0)
