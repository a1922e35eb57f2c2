"""The public vendor example files kept under tests/data/vendor/ (sources and licences in its README)."""

from __future__ import annotations

from pathlib import Path

VENDOR_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "vendor"


def vendor_file(rel: str) -> Path:
    """A committed example file; missing means a broken checkout, so it fails rather than skips."""
    path = VENDOR_DIR / rel
    assert path.exists(), f"public vendor example {rel} is missing from {VENDOR_DIR}"
    return path
