"""The command-line contract: help with examples everywhere, lazy imports, one-line errors."""

import subprocess
import sys

import pytest

from mrsmon.cli import build_parser

SUBCOMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "mrsmon", *args], capture_output=True, text=True, timeout=60, **kw)


def test_top_level_help_lists_every_subcommand_with_examples():
    out = run("--help")
    assert out.returncode == 0 and "examples:" in out.stdout
    for name in SUBCOMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_help_says_what_it_does_with_an_example(name):
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[name]
    text = sub.format_help()
    assert "example:" in text and f"mrsmon {name}" in text


def test_agent_path_never_imports_qt():
    code = ("import sys, mrsmon.cli, mrsmon.commands.agent, agent.service, agent.pipeline, agent.ingest, "
            "mrs.pipeline; bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'gui')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_bad_input_is_one_line_not_a_traceback(tmp_path):
    out = run("inspect", str(tmp_path))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "not an mrsmon session folder" in out.stderr.splitlines()[0]
    out = run("simulate", "--protocol", "no-such-protocol", "--speed", "max")
    assert out.returncode == 2 and "no session protocol named" in out.stderr and "Traceback" not in out.stderr


def test_keygen_writes_server_and_client_keys(tmp_path):
    out = run("keygen", str(tmp_path / "keys"))
    assert out.returncode == 0
    for f in ("server.key", "server.key_secret", "scanner.key", "scanner.key_secret", "clients/scanner.key"):
        assert (tmp_path / "keys" / f).exists(), f


def test_commands_run_numpy_with_one_blas_thread_unless_told_otherwise(tmp_path):
    code = ("import os, sys; from mrsmon import cli; sys.argv = ['mrsmon', 'inspect', '/nonexistent'];\n"
            "rc = cli.main(sys.argv[1:]); print(os.environ['OPENBLAS_NUM_THREADS'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in __import__("os").environ.items() if k != "OPENBLAS_NUM_THREADS"})
    assert out.stdout.strip() == "1"
    env = {**__import__("os").environ, "OPENBLAS_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.stdout.strip() == "2"
