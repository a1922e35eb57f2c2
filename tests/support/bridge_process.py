"""Start and stop a real `mrsmon bridge mrd` process on a free loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent_process import _PortTaken, free_port, retry_on_taken_port


class BridgeProcess:
    def __init__(self, agent_address: str, state: Path, extra: list[str] | None = None, port: int | None = None,
                 log_path: Path | None = None):
        self.agent_address = agent_address
        self.state = Path(state)
        self.port = port or free_port()
        self._pick_port = port is None  # a port picked here may be taken before the bridge binds it
        self.extra = extra or []
        self.log_path = log_path or self.state.parent / f"bridge-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30.0, attempts: int = 3) -> BridgeProcess:
        """Start and wait until it listens. A port this object picked was free when picked, not
        necessarily when the bridge binds it ("Address already in use"): then, on a first start, it
        picks another and starts again, up to `attempts` times (as AgentProcess does)."""
        retry_on_taken_port(lambda: self._start(timeout_s), self._repick if self._pick_port else None, attempts)
        self._pick_port = False
        return self

    def _repick(self) -> None:
        self.port = free_port()

    def _start(self, timeout_s: float) -> BridgeProcess:
        self._close_log()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0  # a restart appends to the log
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mrsmon", "bridge", "mrd", "--listen", f"127.0.0.1:{self.port}", "--connect",
             self.agent_address, "--state", str(self.state), *self.extra],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._close_log()
                error = _PortTaken if b"Address already in use" in self.log_path.read_bytes()[offset:] else RuntimeError
                raise error(f"bridge exited with {self.proc.returncode}: {self.log()[-2000:]}")
            if b"listening on" in self.log_path.read_bytes()[offset:]:  # logged after bind+listen: no probe needed
                return self
            time.sleep(0.05)
        raise RuntimeError(f"bridge did not listen within {timeout_s} s: {self.log()[-2000:]}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._close_log()

    def stop(self) -> int | None:
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._close_log()
        return self.proc.returncode if self.proc else None

    def _close_log(self) -> None:
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def __enter__(self) -> BridgeProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
