"""Session plans: every shipped plan loads; bad plans are refused with a sentence."""

import pytest

from protocols.plan import PlanError, available_plans, load_plan, plan_from_dict


def test_shipped_plans_include_the_two_named_by_the_issue():
    assert {"ketamine-infusion", "quick"} <= set(available_plans())


@pytest.mark.parametrize("name", available_plans())
def test_every_shipped_plan_loads_and_is_public_safe(name):
    plan = load_plan(name)
    public = plan.to_public_dict()
    assert "simulation" not in public and "condition" not in str(public).lower()
    assert plan.acquisition.points >= 16 and plan.n_transients > 0


def test_ketamine_infusion_matches_the_study_design():
    p = load_plan("ketamine-infusion")
    a = p.acquisition
    assert (a.sequence, a.echo_time_ms, a.repetition_time_s, a.points) == ("PRESS", 30.0, 2.0, 2048)
    assert 50 <= p.duration_min <= 70
    inf = p.phase("infusion")
    assert inf.end_min - inf.start_min == 40.0


def test_quick_has_the_same_acquisition_in_a_few_minutes():
    q, k = load_plan("quick").acquisition, load_plan("ketamine-infusion").acquisition
    assert (q.sequence, q.echo_time_ms, q.repetition_time_s, q.points, q.bandwidth_hz) == \
           (k.sequence, k.echo_time_ms, k.repetition_time_s, k.points, k.bandwidth_hz)
    assert load_plan("quick").duration_min <= 10


def _raw():
    return {"name": "x", "acquisition": {"spectrometer_frequency_mhz": 123.0, "nucleus": "1H", "sequence": "PRESS",
                                         "echo_time_ms": 30.0, "repetition_time_s": 2.0, "points": 2048,
                                         "bandwidth_hz": 4000.0, "coils": 8},
            "timeline": {"duration_min": 5.0}}


@pytest.mark.parametrize("mutate, words", [
    (lambda r: r["acquisition"].update(points=8), "points"),
    (lambda r: r["acquisition"].update(colis=8), "colis"),
    (lambda r: r["acquisition"].pop("coils"), "coils"),
    (lambda r: r["timeline"].update(duration_min=0), "duration"),
    (lambda r: r["timeline"].update(phases=[{"name": "b", "start_min": 3, "end_min": 1}]), "ends before"),
    (lambda r: r.update(alarms={"bogus": 1}), "bogus"),
])
def test_bad_plan_is_refused_with_a_sentence(mutate, words):
    raw = _raw()
    plan_from_dict(raw)  # the base is valid
    mutate(raw)
    with pytest.raises(PlanError, match=words):
        plan_from_dict(raw)


def test_unknown_plan_name_lists_the_available_ones():
    with pytest.raises(PlanError, match="available: .*quick"):
        load_plan("nope")
