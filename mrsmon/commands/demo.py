"""`mrsmon demo`: the simulator feeding a real agent (and the display), for a first look.

With a display it opens the operator window and leaves it open after the session; without one
(or with --headless) it prints progress, then writes pictures and a summary into --out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _free_ports(n: int) -> list[int]:
    import socket

    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _request(control: str, req: dict, timeout_s: float = 2.0) -> dict | None:
    import zmq

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(control)
        sock.send(json.dumps(req).encode())
        return json.loads(sock.recv()) if sock.poll(int(timeout_s * 1000)) else None
    finally:
        sock.close(0)


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run(args) -> int:
    from protocols.plan import load_plan
    from simulator.stream import default_session_id, parse_speed, stream_session

    plan = load_plan(args.protocol)
    out = Path(args.out).resolve()
    sessions = out / "sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    listen_port, pub_port, ctl_port = _free_ports(3)
    listen, publish, control = (f"tcp://127.0.0.1:{p}" for p in (listen_port, pub_port, ctl_port))
    windowed = _has_display() and not args.headless
    mrsmon = [sys.executable, "-m", "mrsmon"]
    agent_log = open(out / "agent.log", "a")
    agent = subprocess.Popen([*mrsmon, "agent", "--listen", listen, "--publish", publish, "--control", control,
                              "--sessions", str(sessions)], stdout=agent_log, stderr=subprocess.STDOUT)
    gui = None
    try:
        deadline = time.monotonic() + 60
        while not (_request(control, {"op": "ping"}, 0.5) or {}).get("ok"):
            if agent.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the agent did not start; see {out / 'agent.log'}")
        print(f"agent running (sessions in {sessions}); "
              f"{'opening the display' if windowed else 'no display: running headless'}")
        if windowed:
            gui = subprocess.Popen([*mrsmon, "gui", "--publish", publish, "--control", control])
            time.sleep(2.0)
        sid = default_session_id(plan, args.seed)
        speed = parse_speed(args.speed)
        print(f"simulating protocol '{plan.name}' ({plan.duration_min:g} min of session time) at speed {args.speed}")

        def progress(report, t_s):
            snap = _request(control, {"op": "snapshot"}, 0.5) or {}
            blocks = len(snap.get("results") or [])
            print(f"  {t_s / 60:5.1f} min  {report.transients:5d} transients sent  {blocks:3d} blocks fitted",
                  flush=True)

        report = stream_session(plan, listen, seed=args.seed, speed=speed, session_id=sid,
                                truth_path=out / "truth" / f"{sid}.json", progress=progress)
        print(f"session ended: {report.transients} transients acknowledged in {report.wall_s:.1f} s; "
              "waiting for the last fits")
        expected = _expected_blocks(sessions / sid, plan)
        deadline = time.monotonic() + max(60.0, 2.0 * expected)
        while time.monotonic() < deadline:
            snap = _request(control, {"op": "snapshot", "session": sid}) or {}
            if len(snap.get("results") or []) >= expected:
                break
            time.sleep(0.5)
        while time.monotonic() < deadline:  # the agent exports the ended session to MRS-BIDS by itself
            status = (_request(control, {"op": "snapshot", "session": sid}) or {}).get("status") or {}
            if status.get("export") in ("done", "failed"):
                break
            time.sleep(0.5)
        summary = _summarise(sessions / sid, out / "truth" / f"{sid}.json")
        summary["bids_export"] = str(sessions / "bids") if status.get("export") == "done" else None
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        pictures = _pictures(sessions / sid, out)
        _print_summary(summary, pictures, out)
        if gui is not None:
            print("the display stays open; close its window to finish")
            gui.wait()
        return 0 if summary["stored"]["complete"] else 1
    finally:
        if gui is not None and gui.poll() is None:
            gui.terminate()
        agent.terminate()
        try:
            agent.wait(20)
        except subprocess.TimeoutExpired:
            agent.kill()
        agent_log.close()


def _expected_blocks(folder: Path, plan) -> int:
    from protocols.session_folder import SessionReader

    n = len(SessionReader(folder).metabolite_seqs())
    block = plan.block_transients
    return n // block + (1 if n % block >= block / 2 else 0)


def _summarise(folder: Path, truth_path: Path) -> dict:
    import numpy as np

    from protocols.session_folder import SessionReader

    reader = SessionReader(folder)
    fits = reader.fits()
    ok = [f for f in fits if f.get("qc", {}).get("fit_status") == "ok"]
    summary: dict = {"stored": reader.summary(), "blocks": len(fits), "blocks_ok": len(ok)}
    if not ok:
        return summary
    plan = reader.plan or {}
    infusion = next((p for p in plan.get("phases", []) if p["name"] == "infusion"), None)
    t_inf_s = infusion["start_min"] * 60 if infusion else 0.0
    ratio = np.array([f["ratios"].get("Glu/tCr", np.nan) for f in ok])
    t = np.array([f["t_s"] for f in ok])
    base = ratio[t < t_inf_s]
    crlb = np.array([f["crlb_pct"].get("Glu", np.nan) for f in ok])
    t_end_s = infusion["end_min"] * 60 if infusion else float(t.max()) + 1
    plateau = (t >= (t_inf_s + t_end_s) / 2) & (t <= t_end_s)  # second half of the infusion

    def change_pct(values: np.ndarray) -> float | None:
        if not len(base) or not plateau.any():
            return None
        return float(100 * (np.nanmean(values[plateau]) / np.nanmean(values[t < t_inf_s]) - 1))

    summary["glu_tcr"] = {
        "baseline_mean": float(np.nanmean(base)) if len(base) else None,
        "plateau_change_pct": change_pct(ratio),
        "median_glu_crlb_pct": float(np.nanmedian(crlb)),
        "median_fit_ms": float(np.median([f["qc"].get("fit_ms", np.nan) for f in ok])),
    }
    if truth_path.exists():  # the simulator's ground truth: the same numbers computed from it
        truth = json.loads(truth_path.read_text())
        tt = np.array([r["t_s"] for r in truth["transients"]])
        key = "apparent_ratios" if "apparent_ratios" in truth["transients"][0] else "ratios"
        tr = np.array([r[key]["Glu/tCr"] for r in truth["transients"]])
        true_blocks = np.array([tr[(tt >= f["t_start_s"]) & (tt <= f["t_end_s"])].mean() for f in ok])
        rel = ratio / true_blocks
        summary["vs_truth"] = {
            "truth": "T2-weighted (apparent) ratios" if key == "apparent_ratios" else "tissue ratios",
            "glu_tcr_bias_pct": float(100 * (np.nanmean(rel) - 1)),
            "glu_tcr_block_scatter_pct": float(100 * np.nanstd(rel / np.nanmean(rel))),
            "true_plateau_change_pct": change_pct(true_blocks),
        }
    return summary


def _pictures(folder: Path, out: Path) -> list[Path]:
    """The operator display rendered offscreen from the stored session (separate process: Qt)."""
    pictures = []
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM") or "offscreen"}  # empty: unset
    for theme in ("dark", "light"):
        png = out / f"display-{theme}.png"
        r = subprocess.run([sys.executable, "-m", "mrsmon", "gui", "--session", str(folder), "--screenshot",
                            str(png), "--size", "1600x1000", "--theme", theme], capture_output=True, text=True,
                           env=env, timeout=120)
        if r.returncode == 0 and png.exists():
            pictures.append(png)
        else:
            print(f"  (could not render the {theme} display picture: {r.stderr.strip()[-300:]})")
    return pictures


def _print_summary(summary: dict, pictures: list[Path], out: Path) -> None:
    s = summary["stored"]
    lines = [
        "", "summary",
        f"  session        {s['session']}  (kit {s['kit_code']}, protocol {s['protocol']})",
        f"  stored         {s['transients']} transients ({s['metabolite_transients']} metabolite, "
        f"{s['water_ref']} water, {s['noise']} noise, {s['dummy']} dummy), {s['events']} events",
        f"  integrity      missing {s['missing'] or 'none'}, duplicates {s['duplicates']}, "
        f"complete {s['complete']}",
        f"  blocks fitted  {summary['blocks']} ({summary['blocks_ok']} ok)",
    ]
    g = summary.get("glu_tcr")
    v = summary.get("vs_truth") or {}
    if g:
        change = g["plateau_change_pct"]
        true = v.get("true_plateau_change_pct")
        lines.append(f"  Glu/tCr        baseline {g['baseline_mean']:.3f}; late-infusion change "
                     + (f"{change:+.1f}%" if change is not None else "n/a")
                     + (f" (truth {true:+.1f}%)" if true is not None else "")
                     + f"; median Glu CRLB {g['median_glu_crlb_pct']:.1f}%, median fit {g['median_fit_ms']:.1f} ms")
    if v:
        lines.append(f"  vs truth       Glu/tCr bias {v['glu_tcr_bias_pct']:+.1f}% against the {v['truth']}, "
                     f"block scatter {v['glu_tcr_block_scatter_pct']:.1f}%")
    if summary.get("bids_export"):
        lines.append(f"  MRS-BIDS       {summary['bids_export']} (NIfTI-MRS, events, fit derivatives)")
    lines += [f"  picture        {p}" for p in pictures]
    lines.append(f"  written        {out / 'summary.json'}, {out / 'sessions'}")
    text = "\n".join(lines)
    print(text)
    (out / "summary.txt").write_text(text + "\n")
