"""Display tests run offscreen; a synthetic stored session is built per test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).parent))  # display_synthetic, fake_agent

from display_synthetic import make_session  # noqa: E402


@pytest.fixture
def session_dir(tmp_path: Path) -> Path:
    """A 20-block ketamine-like session with a failed block (7) and a motion block (12)."""
    return make_session(tmp_path, n_blocks=20, failed_blocks=(7,), motion_blocks=(12,))
