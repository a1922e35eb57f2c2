"""Done-when, end to end: a session streamed by an independent MRD client through the bridge, and sessions
replayed from public vendor files, arrive complete, are fitted block by block and appear on the display.

Slow: the agent fits (its first block waits for a basis simulation). Every process is stopped here."""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_process import AgentProcess
from bridge_process import BridgeProcess
from mrd_client import Mrd1Client, mrd1_header, simulated_scans
from vendor_data import vendor_file

from analysis.replay import replay
from gui.link import AgentLink
from gui.model import SessionModel
from gui.window import MainWindow
from protocols.session_folder import SessionReader

pytestmark = pytest.mark.slow
FIT_WAIT_MS = 240_000


def display(qtbot, agent: AgentProcess) -> MainWindow:
    link = AgentLink(agent.publish, agent.control, silence_s=3.0, request_timeout_s=2.0)
    w = MainWindow(SessionModel(live=True), link=link, confirm_events=False)
    qtbot.addWidget(w)
    link.start()
    qtbot.waitUntil(lambda: w.model.link == "live", timeout=10_000)
    return w


def test_an_mrd_session_is_fitted_block_by_block_and_shown(qtbot, tmp_path: Path):
    plan, scans = simulated_scans(24, coils=4)  # quick plan: blocks of 8 -> 3 blocks
    a = plan.acquisition
    with AgentProcess(tmp_path / "sessions", extra=["--log-level", "WARNING"]) as agent, \
            BridgeProcess(agent.listen, tmp_path / "state", extra=["--protocol", "quick"]) as bridge:
        w = display(qtbot, agent)
        try:
            counts: list[int] = []
            w.model.subscribe("results", lambda: counts.append(len(w.model.rows)))
            client = Mrd1Client("127.0.0.1", bridge.port)
            client.begin(mrd1_header(coils=4, f0_hz=a.spectrometer_frequency_mhz * 1e6,
                                     tr_ms=a.repetition_time_s * 1e3))
            client.send(scans)
            assert client.close_and_wait()[-1] == "CLOSE"
            qtbot.waitUntil(lambda: len(w.model.rows) >= 3, timeout=FIT_WAIT_MS)
            w.redraw()
            folder = agent.sessions / w.model.session_id
            qtbot.waitUntil(lambda: len(SessionReader(folder).fits()) >= 3, timeout=10_000)  # published first
            reader = SessionReader(folder)
            assert reader.summary()["complete"] and reader.summary()["metabolite_transients"] == 24
            fits = reader.fits()
            assert [f["block"] for f in fits] == [0, 1, 2] and all(f["n_transients"] == 8 for f in fits)
            assert all(f["qc"]["fit_status"] == "ok" for f in fits)
            assert counts[0] == 1  # the display took the blocks one at a time, as they were fitted
            shown = len(w.main_curve.points.getData()[0]) + len(w.main_curve.provisional.getData()[0])
            assert shown == 3
        finally:
            w.close()


def test_vendor_files_replayed_are_fitted_and_shown(qtbot, tmp_path: Path):
    rda = vendor_file("siemens-rda/SVS_30.rda")
    sdat = vendor_file("philips-sdat/act/sub-01_PRESS_35_act.sdat")
    water = vendor_file("philips-sdat/ref/sub-01_PRESS_35_ref.sdat")
    # Each file is one averaged spectrum: one transient per block. spec2nii keeps these files' samples as
    # stored, which are mirrored (NAA at 7.3 ppm); replay finds that (conjugate auto) and conjugates them.
    with AgentProcess(tmp_path / "sessions", extra=["--log-level", "WARNING", "--block", "1"]) as agent:
        w = display(qtbot, agent)
        try:
            for source, options in ((rda, {}), (sdat, {"water": water})):
                report = replay(source, agent.listen, source_options=options)
                assert report.acknowledged and not report.refused
                qtbot.waitUntil(lambda r=report: w.model.session_id == r.session and len(w.model.rows) >= 1,
                                timeout=FIT_WAIT_MS)
                shown = w.model.rows[0]
                assert shown.block == 0 and shown.qc.fit_status == "ok", shown.qc
                assert 0.8 < shown.ratios["tNAA/tCr"] < 2.0  # a brain spectrum, not a mirrored one
                folder = agent.sessions / report.session  # and the same block is stored (published first)
                qtbot.waitUntil(lambda f=folder: len(SessionReader(f).fits()) == 1, timeout=10_000)
                assert SessionReader(folder).fits()[0]["ratios"]["tNAA/tCr"] == shown.ratios["tNAA/tCr"]
        finally:
            w.close()
