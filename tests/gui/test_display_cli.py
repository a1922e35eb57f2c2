"""`mrsmon gui` entry points: address parsing, a live smoke run, and the import boundary."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from mrsmon.commands.gui import endpoints


def args(**kw: object) -> argparse.Namespace:
    base = {"connect": None, "publish": "tcp://127.0.0.1:5556", "control": "tcp://127.0.0.1:5557"}
    return argparse.Namespace(**{**base, **kw})


def test_connect_host_means_ports_5556_and_5557() -> None:
    assert endpoints(args(connect="tcp://10.0.0.7")) == ("tcp://10.0.0.7:5556", "tcp://10.0.0.7:5557")
    assert endpoints(args(connect="scanner-pc")) == ("tcp://scanner-pc:5556", "tcp://scanner-pc:5557")


def test_without_connect_publish_and_control_are_used() -> None:
    assert endpoints(args(publish="tcp://h:1", control="tcp://h:2")) == ("tcp://h:1", "tcp://h:2")


def test_connect_other_than_tcp_is_refused() -> None:
    with pytest.raises(ValueError, match="is not tcp://HOST"):
        endpoints(args(connect="ipc:///tmp/x"))


def test_live_display_without_agent_starts_and_quits_cleanly() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run([sys.executable, "-m", "mrsmon", "gui", "--publish", "tcp://127.0.0.1:9",
                           "--control", "tcp://127.0.0.1:9", "--quit-after", "1.0"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def test_display_never_imports_agent_analysis_or_simulator() -> None:
    code = ("import sys, gui.window, gui.link, gui.screenshot, gui.review, mrsmon.commands.gui; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('agent', 'analysis', 'simulator')); "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_model_and_review_load_without_qt() -> None:
    code = ("import sys, gui.model, gui.review, gui.series; "
            "print(','.join(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'zmq')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
