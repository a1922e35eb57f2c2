"""Review window against a synthetic stored session: each test changes one side, checks the other."""

from __future__ import annotations

import dataclasses
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gui.main_curve import PercentAxis, event_label
from gui.model import SessionModel
from gui.review import load_session
from gui.screenshot import render_session
from gui.window import MainWindow
from mrs.results import EventRecord


@pytest.fixture
def window(qtbot, session_dir: Path) -> MainWindow:
    w = MainWindow(load_session(session_dir), session_dir=session_dir, confirm_events=False)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    w.redraw()
    return w


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    return struct.unpack(">II", head[16:24])


def test_main_curve_plots_every_good_block_and_marks_the_failed_one(window: MainWindow) -> None:
    x, y = window.main_curve.points.getData()
    assert len(x) == 19  # 20 blocks, block 7 failed
    fx, _ = window.main_curve.failed.getData()
    r7 = window.model.result(7)
    assert fx.tolist() == pytest.approx([r7.t_s / 60])
    np.testing.assert_allclose(y, np.delete(window.model.col("value"), 7))


def test_baseline_band_spans_mean_plus_minus_sd(window: MainWindow) -> None:
    base = window.model.baseline()
    assert base.n == 13
    lo, hi = window.main_curve.band.getRegion()
    assert (lo, hi) == pytest.approx((base.mean - base.sd, base.mean + base.sd))
    assert window.main_curve.pct_axis.base == pytest.approx(base.mean)
    assert "n = 13 blocks" in window.main_curve.summary.text()


def test_real_events_are_drawn_with_their_values(window: MainWindow) -> None:
    labels = [item.label.toPlainText() for item in window.main_curve.event_items if hasattr(item, "label")
              and item.label is not None]
    assert "▶ infusion start" in labels
    assert "BP 131/82 HR 74" in labels


def test_changing_measure_in_combo_updates_curve(qtbot, window: MainWindow) -> None:
    window.main_curve.combo.setCurrentText("Glu")
    window.redraw()
    assert window.model.measure == "Glu"
    _, y = window.main_curve.points.getData()
    expected = np.array([r.conc["Glu"] for r in window.model.rows if r.qc.fit_status == "ok"])
    np.testing.assert_allclose(y, expected)
    assert window.quality.plots["crlb"].titleLabel.text.startswith("CRLB of Glu")


def test_clicking_a_block_freezes_the_spectrum_on_it(window: MainWindow) -> None:
    window.main_curve.block_clicked.emit(5)
    window.redraw()
    assert window.model.selected_block == 5
    assert "Block 5" in window.spectrum.title.text() and "frozen" in window.spectrum.title.text()
    ppm, data = window.spectrum.data.getData()
    with np.load(Path(window.session_dir) / "spectra" / "block-00005.npz") as z:
        np.testing.assert_allclose(data, z["data"])
    window.spectrum.follow_button.click()
    window.redraw()
    assert window.model.selected_block is None and "Block 19" in window.spectrum.title.text()


def test_components_checkbox_draws_metabolite_components(window: MainWindow) -> None:
    assert all(len(c.getData()[0] or []) == 0 for c in window.spectrum.components.values())
    window.spectrum.components_box.setChecked(True)
    window.redraw()
    x, y = window.spectrum.components["Glu"].getData()
    assert len(x) > 100 and np.nanmax(y) > 0


def test_quality_panel_draws_thresholds_from_plan_and_rejections(window: MainWindow) -> None:
    q = window.quality
    assert q.limits["naa_fwhm_hz"][0].value() == pytest.approx(10.0)
    assert sorted(line.value() for line in q.limits["drift_hz_per_min"]) == pytest.approx([-2.0, 2.0])
    bars = q.reject_bars["motion"]
    heights = np.asarray(bars.opts["height"])
    assert heights.tolist() == [10]  # one bar: only blocks with rejections draw one
    assert np.asarray(bars.opts["x"]).tolist() == pytest.approx([window.model.result(12).t_s / 60])
    assert window.model.rejected()["motion"][12] == 10 and window.model.rejected()["motion"].sum() == 10


def test_event_buttons_disabled_in_review(window: MainWindow) -> None:
    assert not any(b.isEnabled() for b in window.events.buttons.values())


def test_event_button_sends_control_event_with_its_values(qtbot) -> None:
    class RecordingLink:
        def __init__(self) -> None:
            self.sent: list[dict] = []

        def request(self, req: dict) -> None:
            self.sent.append(req)

        def stop(self) -> None:
            pass

    link = RecordingLink()
    w = MainWindow(SessionModel(live=True), confirm_events=False)
    w.link = link  # only the request side; no signals needed here
    qtbot.addWidget(w)
    w.events.ask_vitals = lambda: {"sys_mmhg": 140, "dia_mmhg": 90, "hr_bpm": 80}
    w.events.buttons["vitals"].click()
    w.events.buttons["infusion_start"].click()
    assert [r["kind"] for r in link.sent] == ["vitals", "infusion_start"]
    assert link.sent[0]["op"] == "event" and link.sent[0]["value"]["hr_bpm"] == 80
    assert isinstance(link.sent[1]["t_ns"], int)


def test_percent_axis_labels_round_percent_changes() -> None:
    axis = PercentAxis()
    axis.set_baseline(1.25)
    levels = axis.tickValues(1.20, 1.40, 400)
    values = [v for _, vals in levels for v in vals]
    labels = axis.tickStrings(values, 1.0, levels[0][0])
    assert "0%" in labels and "+10%" in labels
    assert all(abs((v / 1.25 - 1) * 100 - round((v / 1.25 - 1) * 100)) < 1e-9 for v in values[:5])


def test_event_label_shows_vitals_and_pump_rate() -> None:
    assert event_label(EventRecord("vitals", value={"sys_mmhg": 120, "dia_mmhg": 70, "hr_bpm": 66})) == \
        "BP 120/70 HR 66"
    assert event_label(EventRecord("pump_rate", value={"ml_per_h": 30})) == "pump 30 ml/h"


def test_status_strip_says_stop_when_stream_stops(qtbot) -> None:
    clock = [100.0]
    m = SessionModel(clock=lambda: clock[0], live=True)
    m.set_link("live")
    m.set_session({"session": "s", "kit_code": "KIT-1", "repetition_time_s": 2.0}, {"alarms": {"no_data_tr": 3}})
    m.set_status({"link": "idle", "transients": 10, "last_transient_age_s": 1.0})
    w = MainWindow(m)
    qtbot.addWidget(w)
    w.redraw()
    assert w.strip.light.text() == "OK"
    clock[0] += 8.0  # status keeps coming but no transient for 9 s
    m.set_status({"link": "idle", "transients": 10, "last_transient_age_s": 9.0})
    w.redraw()
    assert w.strip.light.text() == "STOP" and "No data for 9 s" in w.strip.reason.text()
    assert "KIT-1" in w.strip.fields["kit"].text()


def test_render_session_writes_png_of_requested_size(qapp, session_dir: Path, tmp_path: Path) -> None:
    out = render_session(session_dir, tmp_path / "shot.png", size=(900, 640), theme="light")
    assert png_size(out) == (900, 640)
    assert out.stat().st_size > 20_000  # a drawn window, not an empty image


@pytest.mark.parametrize("platform", [None, ""])
def test_screenshot_command_produces_png(session_dir: Path, tmp_path: Path, platform) -> None:
    """With no display, unset or empty QT_QPA_PLATFORM (`export QT_QPA_PLATFORM=`, which made Qt find
    no platform plugin and the demo skip its pictures) both render offscreen."""
    out = tmp_path / "cli.png"
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    if platform is not None:
        env["QT_QPA_PLATFORM"] = platform
    proc = subprocess.run([sys.executable, "-m", "mrsmon", "gui", "--session", str(session_dir),
                           "--screenshot", str(out), "--size", "1024x700"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert png_size(out) == (1024, 700)


def test_screenshot_of_missing_folder_is_one_line_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "mrsmon", "gui", "--session", str(tmp_path / "nope"),
                           "--screenshot", str(tmp_path / "x.png")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "is not a folder" in proc.stderr and "Traceback" not in proc.stderr


def test_export_png_saves_the_current_view(window: MainWindow, tmp_path: Path) -> None:
    out = window.export_png(tmp_path / "view.png")
    assert png_size(out) == (window.width(), window.height())


def test_provisional_blocks_are_open_circles_until_their_revision(window: MainWindow) -> None:
    curve = window.main_curve
    first = [window.model.result(b) for b in (0, 1, 2)]
    for r in first:  # as the agent publishes them before the session reference exists
        window.model.add_result(r.replace(qc=dataclasses.replace(r.qc, reference="provisional")))
    window.redraw()
    px, _ = curve.provisional.getData()
    assert px.tolist() == pytest.approx([r.t_s / 60 for r in first])
    assert len(curve.points.getData()[0]) == 16  # 19 good blocks, three of them open
    assert curve.provisional.isVisible()
    for r in first:  # the revisions replace them
        window.model.add_result(r.replace(revision=1, qc=dataclasses.replace(r.qc, reference="session")))
    window.redraw()
    assert len(curve.provisional.getData()[0]) == 0 and not curve.provisional.isVisible()
    assert len(curve.points.getData()[0]) == 19
