"""The number the technician reads is the number the study reports: the display, the report and the study
take the infusion window, the baseline and the percent change from one definition (mrs/timecourse.py)."""

from __future__ import annotations

import numpy as np

from analysis.report import summarise
from analysis.study import summarise_session
from gui.review import load_session
from mrs.timecourse import infusion_window_s
from protocols.session_folder import SessionReader


def test_display_report_and_study_give_the_same_baseline_and_percent_change(stored_session):
    model = load_session(stored_session)
    reader = SessionReader(stored_session)
    study = summarise_session(str(stored_session))["measures"]["Glu/tCr"]
    window = infusion_window_s(reader.event_records(), reader.plan)
    report = summarise(reader.results(), "Glu/tCr", window)

    base = model.baseline()
    assert base.valid and base.n == study["baseline_blocks"] == report["baseline_blocks"] >= 2
    assert base.mean == study["baseline"] == report["baseline"]
    assert model.infusion_start_s() == window[0] == study_window(stored_session)[0]

    display_pct = model.percent_change()
    study_pct = np.array([np.nan if p is None else p for p in study["pct_change"]])
    assert np.isfinite(display_pct).sum() >= 5
    np.testing.assert_array_equal(display_pct, study_pct)  # identical, not merely close
    assert study["pct_change"] == report["pct_change"]


def study_window(folder):
    return summarise_session(str(folder))["window_s"]


def test_a_block_straddling_the_infusion_start_is_not_baseline(stored_session):
    reader = SessionReader(stored_session)
    start, _ = infusion_window_s(reader.event_records(), reader.plan)
    fits = reader.results()
    straddling = [f for f in fits if f.t_start_s < start < f.t_end_s and f.ok]
    assert straddling, "the session should have a block across the infusion start"
    n_ended = sum(1 for f in fits if f.ok and f.t_end_s <= start)
    assert load_session(stored_session).baseline().n == n_ended
    assert summarise_session(str(stored_session))["measures"]["Glu/tCr"]["baseline_blocks"] == n_ended
