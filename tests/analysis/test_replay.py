"""Replay through a real agent process: a replayed session refits to the same numbers; NIfTI-MRS replays too."""

from __future__ import annotations

import time

import numpy as np
import pytest
from agent_process import AgentProcess

from analysis.export import export_session
from analysis.replay import ReplayError, replay
from protocols.session_folder import SessionReader


def _wait_for(predicate, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError("the agent did not finish in time")


def test_replayed_session_is_stored_bit_exact_and_refits_to_the_same_numbers(stored_session, tmp_path):
    original = SessionReader(stored_session)
    n_blocks = len(original.fits())
    with AgentProcess(tmp_path / "sessions", extra=[]) as agent:  # fitting on, basis auto like the original
        report = replay(stored_session, agent.listen, session_id="again")
        assert report.acknowledged and not report.refused
        folder = tmp_path / "sessions" / "again"
        _wait_for(lambda: len(SessionReader(folder).fits()) >= n_blocks)
    copy = SessionReader(folder)
    assert copy.complete and copy.header["kit_code"] == original.header["kit_code"]
    assert len(copy.index) == len(original.index)
    for a, b in zip(original.index, copy.index, strict=True):
        assert copy.t_s(int(b["seq"])) == pytest.approx(original.t_s(int(a["seq"])), abs=1e-9)
        assert copy.flags(int(b["seq"])) == original.flags(int(a["seq"]))
        assert np.array_equal(copy.transient(int(b["seq"])), original.transient(int(a["seq"])))
    assert [e["kind"] for e in copy.events()] == [e["kind"] for e in original.events()]
    # The fitter works in float32 (model FFTs): another process may differ in the last digits, which
    # ill-determined components (lipids) amplify. Same numbers = equal to within 1 % of their CRLB.
    for fa, fb in zip(original.fits(), copy.fits(), strict=True):
        assert fb["block"] == fa["block"] and fb["n_transients"] == fa["n_transients"]
        assert fb["qc"]["fit_status"] == fa["qc"]["fit_status"]
        for key, sd_key in (("ratios", "ratios_sd"), ("conc", "sd")):
            for name, value in fa[key].items():
                if value is None:  # a ratio reported as undetermined (qc.undetermined) in both
                    assert fb[key][name] is None, (fa["block"], name)
                    continue
                tol = max(0.01 * (fa[sd_key].get(name) or 0.0), 1e-6 * abs(value), 1e-9)
                assert fb[key][name] == pytest.approx(value, abs=tol), (fa["block"], name)
        assert fb["ratios"]["Glu/tCr"] == pytest.approx(fa["ratios"]["Glu/tCr"], rel=1e-4)


def test_nifti_mrs_file_replays_as_metabolite_transients(stored_session, tmp_path):
    ses = export_session(stored_session, tmp_path / "bids")
    svs = next((ses / "mrs").glob("*_svs.nii.gz"))
    original = SessionReader(stored_session)
    met = original.metabolite_seqs()
    with AgentProcess(tmp_path / "sessions") as agent:  # store only
        report = replay(svs, agent.listen, session_id="from-nifti")
        assert report.acknowledged and report.transients == len(met)
    copy = SessionReader(tmp_path / "sessions" / "from-nifti")
    assert list(copy.metabolite_seqs()) == list(range(1, len(met) + 1))
    for k, seq in enumerate(met):
        assert np.array_equal(copy.transient(k + 1), original.transient(int(seq)))
        assert copy.t_s(k + 1) == pytest.approx(original.t_s(int(seq)), abs=1e-6)  # mrsmon's own times


def test_unknown_source_is_refused(tmp_path):
    (tmp_path / "x.txt").write_text("no")
    with pytest.raises(ReplayError, match="neither"):
        replay(tmp_path / "x.txt", "tcp://127.0.0.1:1")
