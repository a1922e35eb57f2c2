"""Where the public vendor example files are (see tests/data/vendor/README.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def vendor_dir() -> Path | None:
    for cand in (os.environ.get("MRSMON_VENDOR_DATA"), ROOT / "tests" / "data" / "vendor",
                 ROOT.parent / "shared" / "vendor-mrs"):
        if cand and (Path(cand) / "siemens-rda").is_dir():
            return Path(cand)
    return None


def vendor_file(rel: str) -> Path:
    d = vendor_dir()
    if d is None or not (d / rel).exists():
        pytest.skip(f"public vendor example {rel} is not present (tests/data/vendor/README.md says where it goes)")
    return d / rel
