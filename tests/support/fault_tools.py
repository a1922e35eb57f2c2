"""Tools for the fault suite (tests/faults) and bench/bench_faults.py: processes, a flapping TCP link,
a small filesystem that fills up, and the checks made on a session afterwards."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from agent_process import free_port

# ---------------------------------------------------------------- processes


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pipeline_pid(agent_pid: int) -> int | None:
    """The agent's pipeline child (python -m agent.pipeline_process; multiprocessing's spawn_main before)."""
    for pid in children(agent_pid):
        line = cmdline(pid)
        if "agent.pipeline_process" in line or "spawn_main" in line:
            return pid
    return None


def threads(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Threads"))
    except (OSError, StopIteration):
        return 0


def wait_pipeline(agent_pid: int, timeout_s: float = 60.0) -> int:
    """The pipeline child's pid once it runs its own threads (it has armed its parent-death signal by then)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid = pipeline_pid(agent_pid)
        if pid is not None and threads(pid) >= 2:
            return pid
        time.sleep(0.1)
    raise TimeoutError("the agent started no pipeline process")


def alive(pid: int) -> bool:
    """Running, and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids: list[int], timeout_s: float = 10.0) -> list[int]:
    """Pids still running after timeout_s."""
    deadline = time.monotonic() + timeout_s
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if alive(p)]
    return left


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def simulate(address: str, session: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    """`mrsmon simulate` as a scanner would run it."""
    return subprocess.Popen([sys.executable, "-m", "mrsmon", "simulate", "--connect", address, "--session", session,
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def stop(proc: subprocess.Popen | None) -> None:
    """Kill a process a test started if it still runs (a failed test must not leave a simulator behind)."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(10)


def inspect(folder: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "mrsmon", "inspect", str(folder), "--json"], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)


def fit_rows(folder: Path) -> list[tuple[int, int]]:
    """(block, revision) of every row of fits.jsonl, in the order written."""
    rows = []
    for line in (folder / "fits.jsonl").read_text().splitlines():
        r = json.loads(line)
        rows.append((int(r["block"]), int(r.get("revision") or 0)))
    return rows


def fitted_exactly_once(folder: Path) -> tuple[bool, str]:
    """Every block fitted once, each revision once, blocks 0..N-1 with nothing missing."""
    rows = fit_rows(folder)
    if len(set(rows)) != len(rows):
        dup = sorted({r for r in rows if rows.count(r) > 1})
        return False, f"rows written twice: {dup[:10]}"
    blocks = sorted({b for b, _ in rows})
    if blocks != list(range(len(blocks))):
        return False, f"blocks not contiguous: {blocks}"
    return True, f"{len(blocks)} blocks, {len(rows)} rows"


# ---------------------------------------------------------------- a link that flaps


class FlappingProxy:
    """A TCP proxy in front of the agent's data link that cuts every connection now and then (both
    directions, mid-message), as a flaky network or a switch restart would."""

    def __init__(self, target_port: int, cut_every_s: tuple[float, float] = (0.5, 2.0), seed: int = 0):
        import random

        self.port = free_port()
        self.target_port = target_port
        self.cut_every_s = cut_every_s
        self.rng = random.Random(seed)
        self.cuts = 0
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", self.port))
        self._server.listen(16)
        self._server.settimeout(0.2)
        self._threads = [threading.Thread(target=self._accept, daemon=True),
                         threading.Thread(target=self._cutter, daemon=True)]
        for t in self._threads:
            t.start()

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def _cutter(self) -> None:
        while not self._stop.wait(self.rng.uniform(*self.cut_every_s)):
            with self._lock:
                conns, self._conns = self._conns, []
            if conns:
                self.cuts += 1
            for s in conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        with self._lock:
            for s in self._conns:
                try:
                    s.close()
                except OSError:
                    pass


# ---------------------------------------------------------------- a disk that fills up


class SmallDisk:
    """A folder on a filesystem of `size_mb` that the test fills and frees. As root, a real tmpfs mount
    (`kind == "tmpfs"`); otherwise the agent gets an injected size-limited writer (`kind == "injected"`,
    see `disk_limit_env`), which fails its appends and fsyncs with ENOSPC past the limit."""

    def __init__(self, root: Path, size_mb: int, kind: str = "tmpfs"):
        self.root = Path(root)
        self.path = self.root / "disk"
        self.path.mkdir(parents=True)
        self.size_mb = size_mb
        self.kind = "injected"
        if kind == "tmpfs" and os.geteuid() == 0:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(self.path)],
                               capture_output=True)
            if r.returncode == 0:
                self.kind = "tmpfs"
        self.budget = self.root / "disk-budget"
        self.budget.write_text(str(size_mb * 2**20))

    def fill(self, leave_bytes: int) -> None:
        """Take all space but `leave_bytes`."""
        ballast = self.path / "ballast"
        if self.kind == "tmpfs":
            st = os.statvfs(self.path)
            free = st.f_bavail * st.f_frsize
            with open(ballast, "ab") as f:
                chunk = b"\0" * 2**20
                left = free - leave_bytes
                while left > 0:
                    try:
                        f.write(chunk[:left])
                        f.flush()
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
                    left -= len(chunk)
        else:
            self.budget.write_text(str(_used(self.path) + leave_bytes))

    def free(self) -> None:
        (self.path / "ballast").unlink(missing_ok=True)
        self.budget.write_text(str(10 * 2**30))

    def env(self) -> dict[str, str]:
        """Environment for the agent process: with the injected writer, its budget file."""
        if self.kind == "tmpfs":
            return {}
        return {"MRSMON_TEST_DISK_BUDGET": str(self.budget), "MRSMON_TEST_DISK_ROOT": str(self.path)}

    def close(self) -> None:
        if self.kind == "tmpfs":
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


def _used(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def agent_command(env_extra: dict[str, str]) -> list[str]:
    """How to start `mrsmon agent`: with an injected disk limit, through tests/support/limited_disk.py."""
    if "MRSMON_TEST_DISK_BUDGET" in env_extra:
        return [sys.executable, str(Path(__file__).parent / "limited_disk.py")]
    return [sys.executable, "-m", "mrsmon"]


# ---------------------------------------------------------------- many kills in one session


def expected_blocks(transients: int, block: int, prep_scans: int = 5) -> int:
    """Blocks the `quick` plan gives: preparation scans (noise, dummies, water) are not fitted; a last
    partial block is fitted if it holds at least half a block."""
    n = transients - prep_scans
    return n // block + (1 if n % block >= (block + 1) // 2 else 0)


def kill_session(root: Path, agent_kills: int, pipeline_kills: int, seed: int, speed: float,
                 transients: int = 185, block: int = 8, up_s: tuple[float, float] = (0.1, 0.8),
                 pipe_up_s: tuple[float, float] = (2.5, 4.0),
                 coils: int = 2, timeout_s: float = 1200.0) -> dict:
    """One `quick` session streamed by `mrsmon simulate` while the agent is SIGKILLed `agent_kills` times
    (restarted each time, after `up_s` seconds up) and its pipeline process `pipeline_kills` times (after
    `pipe_up_s` seconds, so mid-fit), at seeded random moments.
    Returns what the fault suite and the benchmark check: the simulator's report, the session's
    inspect summary, the fits check, and every child process seen (to look for orphans)."""
    import random

    from agent_process import AgentProcess

    rng = random.Random(seed)
    pipe_at = set(rng.sample(range(agent_kills), min(pipeline_kills, agent_kills)))
    extra_pipe = max(0, pipeline_kills - agent_kills)
    agent = AgentProcess(root / "sessions", extra=["--block", str(block)], log_path=root / "agent.log")
    agent.start()
    seen: set[int] = set()
    counts = {"agent_kills": 0, "agent_kills_while_streaming": 0, "pipeline_kills": 0}
    t0 = time.monotonic()
    sim = simulate(agent.listen, "soak", "--protocol", "quick", "--speed", str(speed), "--transients",
                   str(transients), "--seed", str(seed), "--coils", str(coils))
    try:
        for i in range(agent_kills + extra_pipe):
            if i in pipe_at or i >= agent_kills:  # a longer run: the pipeline is up and fitting when it dies
                time.sleep(rng.uniform(*pipe_up_s))
                pid = pipeline_pid(agent.proc.pid)
                if pid is not None:
                    seen.add(pid)
                    os.kill(pid, 9)
                    counts["pipeline_kills"] += 1
                time.sleep(rng.uniform(*up_s))
            else:
                time.sleep(rng.uniform(*up_s))
            if i >= agent_kills:
                continue
            seen.update(children(agent.proc.pid))
            agent.kill()
            counts["agent_kills"] += 1
            if sim.poll() is None:
                counts["agent_kills_while_streaming"] += 1
            agent.start()
        seen.update(children(agent.proc.pid))
        out, err = sim.communicate(timeout=timeout_s)
        stream_s = time.monotonic() - t0
        folder = root / "sessions" / "soak"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # the pipeline finishes the session, then marks it fitted
            marker = folder / "processed.json"
            if marker.exists() and json.loads(marker.read_text()).get("fitted"):
                break
            time.sleep(0.5)
        seen.update(children(agent.proc.pid))
        rss = rss_mb(agent.proc.pid)
        fds = open_fds(agent.proc.pid)
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait(10)
        agent.stop()
    orphans = wait_gone(sorted(seen), 15)
    summary = inspect(root / "sessions" / "soak")
    ok, why = fitted_exactly_once(root / "sessions" / "soak")
    return {"sim_rc": sim.returncode, "sim_out": out, "sim_err": err[-2000:], "summary": summary,
            "fits_ok": ok, "fits_why": why, "orphans": orphans, "children_seen": len(seen), "stream_s": stream_s,
            "agent_rss_mb": rss, "agent_fds": fds, "log": agent.log()[-3000:], **counts,
            "expected_blocks": expected_blocks(transients, block)}


# ---------------------------------------------------------------- socket fuzzing


def _dealer(address: str):
    import zmq

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.rcvhwm = sock.sndhwm = 0
    sock.connect(address)
    return sock


def _check_reply(raw: bytes, stats: dict) -> None:
    from fuzz_messages import NACK_CODES

    r = json.loads(raw)
    if r.get("type") == "NACK":
        if r.get("code") not in NACK_CODES or not r.get("reason"):
            stats["bad_replies"].append(r)
        stats["codes"][r.get("code")] = stats["codes"].get(r.get("code"), 0) + 1
    elif r.get("type") == "ACK":
        stats["acks"] += 1
    elif "ok" in r:  # control
        if r["ok"] is False and not (r.get("error") and r.get("code")):
            stats["bad_replies"].append(r)
        key = "control:" + ("ok" if r["ok"] else r.get("code", "?"))
        stats["codes"][key] = stats["codes"].get(key, 0) + 1
    else:
        stats["bad_replies"].append(r)


def _collect(sock, stats: dict, until, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not until():
        if not sock.poll(int(max(0.0, deadline - time.monotonic()) * 1000)):
            raise TimeoutError(f"the agent stopped answering ({stats['replies']} replies so far)")
        frames = sock.recv_multipart()
        stats["replies"] += 1
        stats["last"] = frames[-1]
        _check_reply(frames[-1], stats)


def socket_fuzz(agent, unbound: int, bound: int, control: int, seed: int, window: int = 200) -> dict:
    """Hostile messages over real sockets, in every class of fuzz_messages: `unbound` on the data link from
    a connection that started no session (each must get exactly one reply), `bound` for a session that
    connection started (each at least one reply), `control` requests (exactly one reply each)."""
    import random

    from fuzz_messages import CONTROL_CLASSES, DATA_CLASSES, START, control_request, data_message

    from protocols.wire import WireError, decode, encode

    rng = random.Random(seed)
    stats = {"sent": 0, "replies": 0, "acks": 0, "codes": {}, "bad_replies": [], "last": b""}
    sock = _dealer(agent.listen)
    done = 0
    while done < unbound:
        n = min(window, unbound - done)
        for i in range(n):
            frames = data_message(rng, DATA_CLASSES[(done + i) % len(DATA_CLASSES)], sid="fuzz-nobody")
            try:
                if decode(frames).type == "SESSION_START":  # would open a session: make its id hostile
                    frames[0] = frames[0].replace(b'"fuzz-nobody"', b'"../fuzz"')
            except WireError:
                pass
            sock.send_multipart(frames)
        target = stats["replies"] + n
        _collect(sock, stats, lambda t=target: stats["replies"] >= t)
        done += n
        stats["sent"] += n
    sock.close(0)

    sock = _dealer(agent.listen)  # a connection with its own session, fuzzed inside it
    sock.send_multipart(encode("SESSION_START", "fuzz-bound", 0, **START))
    _collect(sock, stats, lambda t=stats["replies"] + 1: stats["replies"] >= t)
    done = 0
    while done < bound:
        n = min(window, bound - done)
        for i in range(n):
            sock.send_multipart(data_message(rng, DATA_CLASSES[(done + i) % len(DATA_CLASSES)], sid="fuzz-bound",
                                             seq_hi=400))
        marker = f"marker-{done}"
        sock.send_multipart(encode("HEARTBEAT", marker, 1))  # answered after everything before it
        first = stats["replies"]
        _collect(sock, stats, lambda m=marker: f'"session":"{m}"'.encode() in stats["last"])
        stats["bound_short"] = stats.get("bound_short", 0) + max(0, n + 1 - (stats["replies"] - first))
        done += n
        stats["sent"] += n + 1
    sock.close(0)

    sock = _dealer(agent.control)
    done = 0
    while done < control:
        n = min(window, control - done)
        for i in range(n):
            sock.send(control_request(rng, CONTROL_CLASSES[(done + i) % len(CONTROL_CLASSES)]))
        target = stats["replies"] + n
        _collect(sock, stats, lambda t=target: stats["replies"] >= t)
        done += n
        stats["sent"] += n
    sock.close(0)
    stats.pop("last")
    return stats


def oversized(agent, frames_mb: int = 16, count: int = 3) -> int:
    """Frames over the links' limits: the connection is closed unanswered. Returns the replies seen (0)."""
    blob = b"\0" * (frames_mb * 2**20)
    replies = 0
    for address in (agent.listen, agent.control):
        for _ in range(count):
            sock = _dealer(address)
            sock.send_multipart([b'{"v":1}', blob] if address == agent.listen else [blob])
            replies += int(bool(sock.poll(1000)))
            sock.close(0)
    return replies


def normal_session(address: str, sid: str, n: int, coils: int = 2, points: int = 256) -> list[dict]:
    """A well-behaved session (SESSION_START, n transients, SESSION_END) through the reference sender;
    returns the messages it finally refused (none expected)."""
    import numpy as np

    from protocols.sender import Sender
    from protocols.wire import encode, encode_transient

    header = dict(spectrometer_frequency_mhz=123.25, nucleus="1H", dwell_time_s=2.5e-4, points=points, coils=coils,
                  echo_time_s=0.03, repetition_time_s=2.0, sequence="PRESS", subject="sim001", session_code="ses-01",
                  kit_code="KIT-0001", protocol="quick", start_time_ns=1_000_000_000)
    rng = np.random.default_rng(0)
    with Sender(address, sid) as s:
        s.send(0, encode("SESSION_START", sid, 0, **header))
        for seq in range(1, n + 1):
            data = (rng.standard_normal((coils, points)) + 1j * rng.standard_normal((coils, points))).astype("c8")
            s.send(seq, encode_transient(sid, seq, data, t_ns=1_000_000_000 + seq, scan=seq))
        s.send(n + 1, encode("SESSION_END", sid, n + 1, t_ns=2_000_000_000))
        if not s.flush(timeout_s=120):
            raise TimeoutError(f"session {sid} was not acknowledged")
        return s.refused
