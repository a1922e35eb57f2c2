"""The fault suite at larger counts: agent and pipeline kills within one session, socket fuzzing, a full
disk freed mid-session, packet loss at real-time speed and link flaps. Prints what survived and what
was lost, with the agent's memory and open files before and after, and keeps the table in
bench/results/faults.txt.

usage: python bench/bench_faults.py [--kills 200] [--pipeline-kills 40] [--fuzz 300000] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "support"))
sys.path.insert(0, str(Path(__file__).parent))

from _table import write_table  # noqa: E402
from agent_process import AgentProcess  # noqa: E402
from fault_tools import (  # noqa: E402
    FlappingProxy,
    SmallDisk,
    agent_command,
    inspect,
    kill_session,
    normal_session,
    open_fds,
    oversized,
    rss_mb,
    simulate,
    socket_fuzz,
)

HEADER = ["scenario", "faults", "sent", "stored", "lost", "duplicates", "complete", "fits once", "orphans",
          "RSS MB before", "RSS MB after", "files before", "files after", "wall s"]


def _sent(out: str) -> int:
    m = re.search(r"sent (\d+) transients", out)
    return int(m.group(1)) if m else -1


def _row(name: str, faults: str, sent: int, s: dict, fits: str = "-", orphans: str = "-", rss=("-", "-"),
         fds=("-", "-"), wall: float = 0.0) -> list:
    return [name, faults, sent, s["transients"], sent - s["transients"], s["duplicates"],
            "yes" if s["complete"] else "NO", fits, orphans, *rss, *fds, round(wall, 1)]


def kills(root: Path, n: int, m: int, seed: int) -> list:
    t0 = time.monotonic()
    r = kill_session(root, agent_kills=n, pipeline_kills=m, seed=seed, speed=0.9)
    s = r["summary"]
    fits = f"yes ({s['blocks_fitted']}/{r['expected_blocks']})" if r["fits_ok"] and \
        s["blocks_fitted"] == r["expected_blocks"] else f"NO: {r['fits_why']}"
    return _row("agent + pipeline SIGKILL", f"{r['agent_kills']} agent ({r['agent_kills_while_streaming']} while "
                f"streaming), {r['pipeline_kills']} pipeline", _sent(r["sim_out"]), s, fits, str(len(r["orphans"])),
                ("-", round(r["agent_rss_mb"], 1)), ("-", r["agent_fds"]), time.monotonic() - t0)


def fuzz(root: Path, n: int, seed: int) -> list:
    t0 = time.monotonic()
    with AgentProcess(root / "s") as agent:
        normal_session(agent.listen, "before", 20)
        socket_fuzz(agent, unbound=5_000, bound=1_000, control=1_000, seed=seed)  # allocator warm-up
        rss0, fds0 = rss_mb(agent.proc.pid), open_fds(agent.proc.pid)
        stats = socket_fuzz(agent, unbound=int(n * 0.7), bound=int(n * 0.15), control=int(n * 0.15), seed=seed + 1)
        answered_big = oversized(agent)
        rss1, fds1 = rss_mb(agent.proc.pid), open_fds(agent.proc.pid)
        normal_session(agent.listen, "after", 50)
        crashed = agent.proc.poll() is not None
    s = inspect(root / "s" / "after")
    bad = len(stats["bad_replies"]) + ("INTERNAL" in stats["codes"]) + crashed + answered_big
    return _row("socket fuzz, then a session", f"{stats['sent'] + 7_000} messages + 6 oversized, {bad} unanswered "
                "or crashes", 50, s, rss=(round(rss0, 1), round(rss1, 1)), fds=(fds0, fds1),
                wall=time.monotonic() - t0)


def disk_full(root: Path, seed: int) -> list:
    t0 = time.monotonic()
    disk = SmallDisk(root, size_mb=24)
    env = disk.env()
    try:
        with AgentProcess(disk.path / "s", extra=["--block", "8"], env=env, command=agent_command(env)) as agent:
            rss0, fds0 = rss_mb(agent.proc.pid), open_fds(agent.proc.pid)
            disk.fill(leave_bytes=400_000)
            sim = simulate(agent.listen, "full", "--protocol", "quick", "--speed", "10", "--transients", "120",
                           "--seed", str(seed), "--coils", "2")
            time.sleep(15)
            disk.free()
            out, _ = sim.communicate(timeout=600)
            rss1, fds1 = rss_mb(agent.proc.pid), open_fds(agent.proc.pid)
            failed = "STORE_FAILED" in agent.log()
        s = inspect(disk.path / "s" / "full")
    finally:
        disk.close()
    return _row(f"disk full 15 s ({disk.kind})", "writes refused" if failed else "NO FAILURE SEEN", _sent(out), s,
                rss=(round(rss0, 1), round(rss1, 1)), fds=(fds0, fds1), wall=time.monotonic() - t0)


def link(root: Path, seed: int, flaps: bool) -> list:
    t0 = time.monotonic()
    with AgentProcess(root / "s") as agent:
        rss0, fds0 = rss_mb(agent.proc.pid), open_fds(agent.proc.pid)
        proxy = FlappingProxy(agent.ports[0], seed=seed) if flaps else None
        try:
            args = (["--speed", "12", "--transients", "150", "--fault", "flap=0.02", "--fault", "drop=0.05"] if flaps
                    else ["--speed", "1", "--transients", "40", "--fault", "drop=0.2"])
            sim = simulate(proxy.address if proxy else agent.listen, "link", "--protocol", "quick", "--seed",
                           str(seed), *args)
            out, _ = sim.communicate(timeout=900)
        finally:
            if proxy:
                proxy.close()
        rss1, fds1 = rss_mb(agent.proc.pid), open_fds(agent.proc.pid)
    s = inspect(root / "s" / "link")
    name, faults = (("link cut mid-message", f"{proxy.cuts} cuts, 2% sender flaps, 5% drops") if flaps
                    else ("packet loss, real time", "20% dropped, heartbeats"))
    return _row(name, faults, _sent(out), s, rss=(round(rss0, 1), round(rss1, 1)), fds=(fds0, fds1),
                wall=time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--pipeline-kills", type=int, default=40)
    ap.add_argument("--fuzz", type=int, default=300_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        root = Path(tmp)
        for i, run in enumerate((lambda r: kills(r, args.kills, args.pipeline_kills, args.seed),
                                 lambda r: fuzz(r, args.fuzz, args.seed),
                                 lambda r: disk_full(r, args.seed),
                                 lambda r: link(r, args.seed, flaps=False),
                                 lambda r: link(r, args.seed, flaps=True))):
            (root / str(i)).mkdir()
            rows.append(run(root / str(i)))
    write_table("faults", "Fault suite at bench counts: nothing acknowledged lost, nothing stored twice, agent flat",
                HEADER, rows,
                notes=f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (2 shared cores). "
                      "lost = sent by the simulator - stored (inspect); fits once = every block in fits.jsonl once "
                      "per revision, as many blocks as the plan gives; orphans = child processes alive after the "
                      "agent stopped; RSS/files of the agent process (for the kill run: the last agent, at the "
                      "end). The fuzz row's faults column counts messages that went unanswered, were answered "
                      "without a known code and a reason, or crashed the agent.")


if __name__ == "__main__":
    main()
