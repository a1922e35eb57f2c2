"""Shared fixtures: a short simulated session, written and fitted in-process like the agent would."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from study_plans import MINI  # noqa: E402  (in tests/support: importable from any test)

from protocols.plan import plan_from_dict


def mini_plan(**simulation):
    raw = {**MINI, "simulation": {**MINI["simulation"], **simulation}}
    return plan_from_dict(raw, source="tests/analysis")


@pytest.fixture(scope="session")
def stored_session(tmp_path_factory) -> Path:
    """A fitted 3-minute session folder (pristine: tests copy it before changing anything)."""
    from analysis.simulate_study import write_session

    folder = tmp_path_factory.mktemp("sessions") / "mini-s1"
    write_session(folder, mini_plan(), seed=11, coils=2, subject="sim 00-7", session_code="ses-01",
                  start_time_ns=1_700_000_000_000_000_000)
    return folder


@pytest.fixture
def session_copy(stored_session, tmp_path) -> Path:
    dst = tmp_path / stored_session.name
    shutil.copytree(stored_session, dst)
    return dst
