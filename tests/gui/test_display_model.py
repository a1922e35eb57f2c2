"""Display model: pure numbers and the traffic light, no Qt."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from display_synthetic import make_session

from gui.model import (
    LightInputs,
    SessionModel,
    assess_light,
    baseline_stats,
    percent_change,
    smooth_trend,
)
from gui.review import load_block_spectrum, load_session, read_jsonl
from gui.series import GrowingArray
from mrs.qc import evaluate_alarms
from mrs.results import BlockResult
from protocols.plan import Alarms

PLAN = {"measure": "Glu/tCr", "block_transients": 32,
        "acquisition": {"repetition_time_s": 2.0},
        "alarms": {"naa_fwhm_hz": 10.0, "drift_hz_per_min": 2.0, "jump_hz": 3.0,
                   "glu_crlb_pct": 15.0, "no_data_tr": 3},
        "phases": [{"name": "baseline", "start_min": 0, "end_min": 10},
                   {"name": "infusion", "start_min": 10, "end_min": 50}]}


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def result(block: int, ratio: float, *, status: str = "ok", drift: float = 0.3, fwhm: float = 6.0,
           crlb: float = 5.0, motion: int = 0, block_s: float = 64.0) -> BlockResult:
    """A block result as the agent publishes it: with the alarms its rule book raised (plan thresholds)."""
    r = BlockResult.from_json({
            "schema": 2, "block": block, "t_s": (block + 0.5) * block_s, "t_start_s": block * block_s,
            "t_end_s": (block + 1) * block_s, "n_transients": 32 - motion, "n_rejected": motion,
            "rejected": {"motion": motion} if motion else {},
            "conc": {"Glu": ratio * 8, "tCr": 8.0}, "sd": {"Glu": 0.3}, "crlb_pct": {"Glu": crlb},
            "ratios": {"Glu/tCr": ratio}, "ratios_sd": {"Glu/tCr": 0.02},
            "qc": {"snr": 40.0, "naa_fwhm_hz": fwhm, "freq_offset_hz": 0.5, "drift_hz_per_min": drift,
                   "max_jump_hz": 0.2, "fit_status": status, "message": "" if status == "ok" else "diverged"}})
    alarms = evaluate_alarms(r, {**vars(Alarms()), **PLAN["alarms"]})
    return r.replace(qc=dataclasses.replace(r.qc, alarms=alarms))


def live_model(clock: Clock) -> SessionModel:
    m = SessionModel(clock=clock, live=True)
    m.set_link("live")
    m.set_session({"session": "s1", "kit_code": "KIT-7", "repetition_time_s": 2.0}, PLAN)
    m.set_status({"link": "receiving", "transients": 40, "last_transient_age_s": 0.5})
    return m


def test_baseline_uses_only_good_blocks_that_end_before_infusion() -> None:
    t_end = np.array([60, 120, 180, 240, 300.0])
    values = np.array([1.0, 1.2, 99.0, 1.1, 2.0])
    ok = np.array([True, True, False, True, True])
    b = baseline_stats(t_end, values, ok, infusion_start_s=240.0)
    assert b.n == 3
    assert b.mean == pytest.approx(1.1)
    assert b.sd == pytest.approx(np.std([1.0, 1.2, 1.1], ddof=1))


def test_no_baseline_without_an_infusion_start() -> None:
    b = baseline_stats(np.array([60.0]), np.array([1.0]), np.array([True]), None)
    assert not b.valid
    assert np.isnan(percent_change(np.array([1.0, 2.0]), b.mean)).all()


def test_percent_change_is_relative_to_baseline_mean() -> None:
    np.testing.assert_allclose(percent_change(np.array([1.25, 1.3125, 1.1875]), 1.25), [0.0, 5.0, -5.0])


def test_smooth_trend_skips_failed_blocks_and_follows_a_step() -> None:
    t = np.arange(60) * 1.0
    v = np.where(t < 30, 1.0, 2.0)
    v[10] = np.nan
    s = smooth_trend(t, v, sigma_min=1.0)
    assert s[10] == pytest.approx(1.0)  # the hole is filled from its neighbours
    assert s[5] == pytest.approx(1.0) and s[55] == pytest.approx(2.0)
    assert 1.2 < s[30] < 1.8  # the step is smoothed, not copied


def test_smooth_trend_of_a_few_blocks_has_one_value_per_block_in_place() -> None:
    # a kernel wider than the series (the first blocks of a session) must not shift the trend
    t = np.arange(4) * 1.07
    v = np.array([1.0, 1.0, 3.0, 3.0])
    s = smooth_trend(t, v, sigma_min=1.6)
    assert s.shape == (4,)
    assert s[0] < s[1] < s[2] < s[3]
    np.testing.assert_allclose(s, 4.0 - s[::-1])  # a symmetric step gives a symmetric trend


def test_model_computes_baseline_from_infusion_event_over_planned_start() -> None:
    m = live_model(Clock())
    m.add_results([result(b, 1.0 if b < 5 else 2.0) for b in range(12)])
    assert m.baseline().n == 9  # planned start 10 min = 600 s: blocks ending at <= 576 s
    m.add_event({"kind": "infusion_start", "t_s": 320.0, "source": "display"})
    b = m.baseline()
    assert b.n == 5 and b.mean == pytest.approx(1.0)
    assert percent_change(m.plotted_values(), b.mean)[-1] == pytest.approx(100.0)


def test_model_emits_only_on_real_change() -> None:
    m = SessionModel()
    seen: list[str] = []
    m.subscribe("results", lambda: seen.append("r"))
    m.subscribe("events", lambda: seen.append("e"))
    assert m.add_result(result(0, 1.0))
    assert not m.add_result(result(0, 1.0))
    assert m.add_result(result(0, 1.1))  # a refit of the same block is a change
    ev = {"kind": "note", "t_s": 5.0, "t_ns": 5, "source": "display", "note": "cough"}
    assert m.add_event(ev) and not m.add_event(dict(ev, pub_seq=9))
    assert seen == ["r", "r", "e"]
    assert len(m.rows) == 1 and m.col("value")[0] == pytest.approx(1.1)


def test_failed_blocks_are_not_plotted_as_data() -> None:
    m = SessionModel()
    m.add_results([result(0, 1.0), result(1, 5.0, status="failed"), result(2, 1.1)])
    v = m.plotted_values()
    assert np.isnan(v[1]) and v[0] == pytest.approx(1.0)


def test_out_of_order_block_is_sorted_into_place() -> None:
    m = SessionModel()
    for b in (0, 2, 1):
        m.add_result(result(b, 1.0 + b))
    np.testing.assert_array_equal(m.col("block"), [0, 1, 2])
    np.testing.assert_allclose(m.col("value"), [1.0, 2.0, 3.0])


def test_changing_measure_recomputes_series() -> None:
    m = SessionModel()
    m.add_results([result(0, 1.0), result(1, 1.5)])
    m.set_measure("Glu")
    np.testing.assert_allclose(m.col("value"), [8.0, 12.0])
    assert m.available_measures()[:2] == ["Glu/tCr", "Glu"]


def test_header_keeps_kit_code_and_drops_anything_like_a_condition() -> None:
    m = SessionModel()
    m.set_session({"session": "s", "kit_code": "KIT-9", "condition": "naltrexone", "subject": "sub-1"},
                  {"simulation": {"condition": "placebo"}, "measure": "Glu/tCr"})
    assert m.header == {"session": "s", "kit_code": "KIT-9"}
    assert "simulation" not in m.plan
    assert "naltrexone" not in repr(vars(m)) and "placebo" not in repr(vars(m))


def test_new_session_id_clears_previous_results() -> None:
    m = SessionModel()
    m.set_session({"session": "a"}, PLAN)
    m.add_result(result(0, 1.0))
    m.set_session({"session": "b"}, PLAN)
    assert m.rows == [] and len(m.col("value")) == 0


def test_light_green_when_data_flows_and_quality_is_in_range() -> None:
    clock = Clock()
    m = live_model(clock)
    m.add_result(result(0, 1.0))
    light = m.light()
    assert light.level == "green", light.reason


def test_light_red_when_stream_stops_for_longer_than_no_data_tr() -> None:
    clock = Clock()
    m = live_model(clock)
    m.add_result(result(0, 1.0))
    m.set_status({"link": "idle", "transients": 40, "last_transient_age_s": 4.0})
    assert m.light().level == "green"  # 4 s < 3 TR = 6 s
    clock.t += 1.0  # the agent is alive (status fresh) but no transient for 7 s
    m.set_status({"link": "idle", "transients": 40, "last_transient_age_s": 7.0})
    light = m.light()
    assert light.level == "red" and "No data for 7 s" in light.reason


def test_light_red_when_agent_unreachable() -> None:
    m = live_model(Clock())
    m.set_link("lost")
    light = m.light()
    assert light.level == "red" and "Agent not answering" in light.reason


def test_light_amber_when_drift_exceeds_threshold() -> None:
    m = live_model(Clock())
    m.add_result(result(0, 1.0, drift=2.6))
    light = m.light()
    assert light.level == "amber" and "drifting +2.6 Hz/min (limit 2)" in light.reason
    m.add_result(result(1, 1.0, drift=-1.9))
    assert m.light().level == "green"


@pytest.mark.parametrize("kwargs, level, words", [
    ({"fwhm": 11.5}, "amber", "NAA width 11.5 Hz"),
    ({"crlb": 18.0}, "amber", "CRLB 18%"),
    ({"status": "failed"}, "red", "Fit failed on block 0: diverged"),
    ({"motion": 9}, "red", "Motion: 9 of 32"),
    ({"motion": 2}, "green", ""),
])
def test_light_rules_for_block_quality(kwargs: dict, level: str, words: str) -> None:
    m = live_model(Clock())
    m.add_result(result(0, 1.0, **kwargs))
    light = m.light()
    assert light.level == level, light.reason
    assert words in light.reason


def test_red_outranks_amber_and_amber_is_kept_as_other_reason() -> None:
    light = assess_light(LightInputs(live=False, last_result=result(3, 1.0, drift=5.0, status="failed")))
    assert light.level == "red" and light.reason.startswith("Fit failed")
    assert any("drifting" in o for o in light.others)


def test_light_grey_after_session_end_not_red_for_missing_data() -> None:
    clock = Clock()
    m = live_model(clock)
    m.set_status({"link": "idle", "transients": 40, "last_transient_age_s": 100.0})
    m.mark_ended()
    assert m.light().level == "grey"


def test_recent_error_alarm_turns_light_red_then_expires() -> None:
    clock = Clock()
    m = live_model(clock)
    m.add_result(result(0, 1.0))
    m.add_alarm({"level": "error", "code": "STAGE_FAILED", "message": "align stage failed"})
    assert m.light().level == "red" and "align stage failed" in m.light().reason
    clock.t += 61
    m.set_status({"link": "receiving", "transients": 41, "last_transient_age_s": 0.5})
    assert m.light().level == "green"


def test_agent_store_failed_alarm_is_red_until_the_agent_clears_it() -> None:
    clock = Clock()
    m = live_model(clock)
    m.add_result(result(0, 1.0))
    m.set_status({"link": "receiving", "transients": 41, "last_transient_age_s": 0.5})
    m.add_alarm({"level": "red", "code": "STORE_FAILED", "message": "cannot write to disk (No space left)"})
    assert m.light().level == "red" and "cannot write to disk" in m.light().reason
    clock.t += 5
    m.add_alarm({"level": "clear", "code": "STORE_FAILED", "message": "writing to disk works again"})
    assert m.light().level == "green"


def test_growing_array_doubles_and_keeps_values() -> None:
    g = GrowingArray(capacity=2)
    for i in range(9):
        g.append(i)
    assert g.capacity == 16
    np.testing.assert_array_equal(g.view(), np.arange(9))


def test_spectrum_cache_is_bounded_and_keeps_selected_block() -> None:
    m = SessionModel()
    spec = {"ppm": [1.0, 2.0], "data": [0.0, 1.0], "fit": [0.0, 1.0]}
    m.select_block(0)
    for b in range(40):
        m.put_spectrum(b, spec)
    assert len(m.spectra) == 16 and 0 in m.spectra and 39 in m.spectra


def test_review_loads_a_stored_session(tmp_path) -> None:
    folder = make_session(tmp_path, n_blocks=20, failed_blocks=(7,))
    with open(folder / "fits.jsonl", "a") as f:
        f.write('{"block": 20, "t_s": 1')  # a torn last line, as after a crash
    m = load_session(folder)
    assert len(m.rows) == 20 and m.ended
    assert m.header["kit_code"] == "KIT-0042" and "subject" not in m.header
    assert np.isnan(m.plotted_values()[7])
    assert [e.kind for e in m.events] == ["infusion_start", "vitals", "infusion_stop"]
    # infusion marked at 912 s: 14 blocks of 64 s end before it, minus failed block 7
    assert m.baseline().n == 13
    spec = load_block_spectrum(folder, 3)
    assert spec is not None and {"Glu", "NAA"} <= set(spec["components"])
    assert spec["ppm"].shape == spec["data"].shape
    assert len(read_jsonl(folder / "events.jsonl")) == 3


def test_reason_never_shows_a_value_equal_to_its_limit() -> None:
    light = assess_light(LightInputs(live=False, last_result=result(0, 1.0, drift=2.04)))
    assert light.level == "amber" and "+2.04 Hz/min (limit 2)" in light.reason
