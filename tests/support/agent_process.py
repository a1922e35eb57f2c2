"""Start and stop a real `mrsmon agent` process on free loopback ports (tests that kill it need a process)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import zmq


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def taken_port() -> tuple[socket.socket, int]:
    """A loopback port held open by the returned socket (close it when done): a port "another
    process took" for tests of the retry below."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


class _PortTaken(RuntimeError):
    """A process could not bind a port picked for it ("Address already in use")."""


def retry_on_taken_port(start_once, repick, attempts: int) -> None:
    """Run `start_once()`; when it raises _PortTaken and `repick` is given (the ports were picked by
    the helper, not given by the test), call `repick()` and try again, up to `attempts` times in all.
    A picked port is free when picked, not necessarily when the process binds it (seen in CI)."""
    for attempt in range(attempts):
        try:
            start_once()
            return
        except _PortTaken:
            if repick is None or attempt == attempts - 1:
                raise
            repick()


class AgentProcess:
    def __init__(self, sessions: Path, host: str = "127.0.0.1", extra: list[str] | None = None,
                 ports: tuple[int, int, int] | None = None, log_path: Path | None = None,
                 env: dict[str, str] | None = None, command: list[str] | None = None):
        self.sessions = Path(sessions)
        self.env = env or {}
        self.command = command or [sys.executable, "-m", "mrsmon"]
        self.host = host
        self._pick_ports = ports is None
        self.ports = ports or self._free_ports()
        self.extra = ["--no-fit"] if extra is None else extra
        self.log_path = log_path or self.sessions.parent / f"agent-{self.ports[0]}.log"
        self.proc: subprocess.Popen | None = None

    def _free_ports(self) -> tuple[int, int, int]:
        return free_port(self.host), free_port(), free_port()

    @property
    def listen(self) -> str:
        return f"tcp://{self.host}:{self.ports[0]}"

    @property
    def publish(self) -> str:
        return f"tcp://127.0.0.1:{self.ports[1]}"

    @property
    def control(self) -> str:
        return f"tcp://127.0.0.1:{self.ports[2]}"

    def start(self, timeout_s: float = 30.0, attempts: int = 3) -> AgentProcess:
        """Start and wait for its ping. Ports this object picked are free when picked, not when the
        agent binds them (another process may take one in between: "Address already in use", seen
        in CI): then, before the agent has ever run on them, it picks new ones and starts again, up to
        `attempts` times. A restart keeps its ports (senders and displays are connected to them)."""
        retry_on_taken_port(lambda: self._start(timeout_s), self._repick if self._pick_ports else None, attempts)
        self._pick_ports = False
        return self

    def _repick(self) -> None:
        self.ports = self._free_ports()

    def _start(self, timeout_s: float) -> AgentProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        start_of_log = self.log_path.stat().st_size if self.log_path.exists() else 0
        if getattr(self, "_log", None):
            self._log.close()
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [*self.command, "agent", "--listen", self.listen, "--publish", self.publish,
             "--control", self.control, "--sessions", str(self.sessions), *self.extra],
            stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log_path.read_text()
                error = _PortTaken if "Address already in use" in log[start_of_log:] else RuntimeError
                raise error(f"agent exited with {self.proc.returncode}: {log[-2000:]}")
            try:
                if self.request({"op": "ping"}, timeout_s=0.5).get("ok"):
                    return self
            except TimeoutError:
                pass
        raise RuntimeError(f"agent did not answer within {timeout_s} s: {self.log_path.read_text()[-2000:]}")

    def request(self, req: dict, timeout_s: float = 5.0) -> dict:
        ctx = zmq.Context.instance()
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        try:
            s.connect(self.control)
            s.send(json.dumps(req).encode())
            if not s.poll(int(timeout_s * 1000)):
                raise TimeoutError("no reply from the agent's control socket")
            return json.loads(s.recv())
        finally:
            s.close(0)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
        return self.proc.returncode if self.proc else None

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def __enter__(self) -> AgentProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
