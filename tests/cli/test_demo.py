"""The README's first command: `mrsmon demo` headless writes a complete session, pictures and a summary."""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_headless_demo_stores_fits_exports_and_draws(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    out = subprocess.run([sys.executable, "-m", "mrsmon", "demo", "--out", str(tmp_path / "demo"), "--speed", "max"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no display: running headless" in out.stdout
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    stored = summary["stored"]
    assert stored["complete"] and stored["missing"] == [] and stored["duplicates"] == 0
    assert summary["blocks"] >= 20 and summary["blocks_ok"] >= 0.9 * summary["blocks"]
    assert summary["bids_export"] and list((tmp_path / "demo" / "sessions" / "bids").rglob("*_svs.nii.gz"))
    for theme in ("dark", "light"):
        png = tmp_path / "demo" / f"display-{theme}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert "condition" not in json.dumps(summary)  # blinded: the demo shows the kit code only
