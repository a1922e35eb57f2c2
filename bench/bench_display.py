"""Display benchmark: redraw time with a 2-hour session on screen, and the model's memory.

Cases (offscreen, 1600x1000 window, dark theme):
  blocks-112   2 h at TR 2 s = 3600 transients in blocks of 32 -> 112 points on the main curve
  sliding-3600 a sliding window stepping one transient -> 3600 points on every trace
Every new result carries its compact 256-point spectrum, as the agent publishes it, so the
spectrum panel redraws on each block as it does live. blocks-112 times the last 60 blocks
arriving (52 to 112 points shown), three times over in fresh windows; sliding-3600 the last 150.
The frame of a new block is timed three ways, taking turns block by block:
  "update items"              the result arrives (model.add_result), the 10 Hz tick updates items
  "update + paint (as live)"  then Qt paints what the tick marked dirty through its event loop,
                              as the live display does (the headline number)
  "update + forced repaint"   then the status strip, the panels' widgets and each plot's whole
                              viewport are repainted synchronously (what the old benchmark timed)
  "update + whole window"     then every widget of the window is repainted (an upper bound)
  "  cpu"                     process CPU time of the frame above it (the machine is shared)
  "idle tick"                 a tick with nothing new
Memory: a Qt-free SessionModel fed 2 hours of sliding-window results (each with a compact
256-point spectrum, as published) at full speed, three sessions in a row; tracemalloc current.

Usage: python bench/bench_display.py [--quick]
Writes bench/results/display.txt.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gui.model import SessionModel  # noqa: E402
from gui.screenshot import app as gui_app  # noqa: E402  (QApplication with quiet offscreen warnings)
from protocols.plan import load_plan  # noqa: E402

TR_S = 2.0
SESSION_S = 7200.0
PLAN = load_plan("ketamine-infusion").to_public_dict()
PLAN["duration_min"] = SESSION_S / 60
PLAN["phases"] = [{"name": "baseline", "start_min": 0, "end_min": 15},
                  {"name": "infusion", "start_min": 15, "end_min": 55},
                  {"name": "washout", "start_min": 55, "end_min": 120}]
HEADER = {"session": "bench", "kit_code": "KIT-0000", "repetition_time_s": TR_S, "start_time_ns": 0}


def make_result(i: int, t_mid_s: float, half_s: float, rng: np.random.Generator,
                spectrum: bool = False) -> dict:
    ratio = 1.25 * (1 + 0.05 * (t_mid_s > 1500) + 0.02 * rng.standard_normal())
    n_rejected = int(rng.random() < 0.05)  # now and then a transient rejected for motion
    r = {"block": i, "t_s": t_mid_s, "t_start_s": t_mid_s - half_s, "t_end_s": t_mid_s + half_s,
         "n_transients": 32, "n_rejected": n_rejected, "rejected": {"motion": n_rejected} if n_rejected else {},
         "conc": {"Glu": ratio * 8, "Gln": 3.0, "Glx": ratio * 8 + 3, "NAA": 10.0, "tNAA": 11.5, "tCr": 8.0},
         "sd": {"Glu": 0.4, "Gln": 0.4, "Glx": 0.5, "NAA": 0.2, "tNAA": 0.2, "tCr": 0.1},
         "crlb_pct": {"Glu": 4.0, "Gln": 13.0, "Glx": 4.0, "NAA": 2.0},
         "ratios": {"Glu/tCr": ratio, "Glx/tNAA": 1.1}, "ratios_sd": {"Glu/tCr": 0.05, "Glx/tNAA": 0.03},
         "qc": {"snr": 40 + rng.standard_normal(), "naa_fwhm_hz": 6 + 0.2 * rng.standard_normal(),
                "freq_offset_hz": t_mid_s / 300, "drift_hz_per_min": 0.4, "max_jump_hz": 0.3,
                "fit_status": "ok", "message": ""}}
    if spectrum:
        r["spectrum"] = make_spectrum(rng)
    return r


def make_spectrum(rng: np.random.Generator, n: int = 256) -> dict:
    """A compact published spectrum (the agent sends about 250 points of the fit window)."""
    ppm = np.linspace(4.2, 0.2, n)
    fit = sum(a * np.exp(-((ppm - c) / 0.03) ** 2) for a, c in ((1.0, 2.01), (0.7, 3.03), (0.6, 3.21), (0.3, 2.35)))
    data = fit + 0.02 * rng.standard_normal(n)
    return {"ppm": ppm.tolist(), "data": data.tolist(), "fit": fit.tolist(), "baseline": (0.01 * ppm).tolist()}


def series(n_points: int, step_s: float, window_s: float, seed: int = 0, spectrum: bool = False) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [make_result(i, window_s / 2 + i * step_s, window_s / 2, rng, spectrum) for i in range(n_points)]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def paint_changed(w) -> None:
    """Force a synchronous repaint of everything a new block can change: the status strip, the
    panels' own widgets (titles, summary) and each plot's whole viewport (a QGraphicsView's
    viewport is not painted by repainting its parent widget)."""
    for panel in (w.strip, w.main_curve, w.spectrum):
        panel.repaint()
    for view in (w.main_curve.plot, w.spectrum.plot, w.quality):
        view.viewport().repaint()


def paint_by_event_loop(app) -> None:
    """Let Qt paint what the tick marked dirty, as it does live: the scene's item updates and the
    widgets' update requests are posted events, all painted within the first processEvents (the
    second finds nothing left: checked by counting paint events when this benchmark was written)."""
    app.processEvents()
    app.processEvents()


FRAME_KINDS = ("event loop", "forced", "whole window")


def open_window(results: list[dict], start: int, rng: np.random.Generator):
    """A live window showing results[:start] (with the spectrum of the last), ready to draw."""
    from gui.window import MainWindow

    app = gui_app()
    model = SessionModel(live=True)
    model.set_link("live")
    model.set_session(HEADER, PLAN)
    model.set_status({"link": "receiving", "transients": 3600, "last_transient_age_s": 0.5})
    model.add_results(results[:start])
    model.put_spectrum(start - 1, make_spectrum(rng))
    model.add_event({"kind": "infusion_start", "t_s": 900.0, "source": "display", "t_ns": 900})
    w = MainWindow(model)
    w.timer.stop()  # the benchmark drives the ticks itself
    w.resize(1600, 1000)
    w.show()
    for _ in range(3):
        app.processEvents()
        w.redraw()
        w.repaint()
    app.processEvents()
    return app, model, w


def bench_redraw(name: str, results: list[dict], n_new: int, n_idle: int, repeats: int = 1) -> list[str]:
    """Time the last `n_new` results arriving, `repeats` times over (a fresh window each time)."""
    wall: dict[str, list[float]] = {k: [] for k in FRAME_KINDS}
    cpu: dict[str, list[float]] = {k: [] for k in FRAME_KINDS}
    update_ms, idle_ms = [], []
    start = len(results) - n_new
    rng = np.random.default_rng(11)
    # each new result carries its spectrum, as published live (made here, outside the timing)
    results = results[:start] + [{**r, "spectrum": make_spectrum(rng)} for r in results[start:]]
    for _ in range(repeats):
        app, model, w = open_window(results, start, rng)
        gc.collect()
        # The frame of a new block: the result reaches the model, the tick updates the items, then
        # what changed is painted. The three ways of painting take turns block by block, so each
        # sees the same session lengths and the same machine noise.
        for i, r in enumerate(results[start:]):
            kind = FRAME_KINDS[i % len(FRAME_KINDS)]
            c0, t0 = time.process_time(), time.perf_counter()
            model.add_result(r)
            w.redraw()
            t1 = time.perf_counter()
            if kind == "event loop":
                paint_by_event_loop(app)
            elif kind == "forced":
                paint_changed(w)
            else:  # every widget of the window repainted (buttons and menus too)
                w.repaint()
                for view in (w.main_curve.plot, w.spectrum.plot, w.quality):
                    view.viewport().repaint()
            t2, c2 = time.perf_counter(), time.process_time()
            update_ms.append(1e3 * (t1 - t0))
            wall[kind].append(1e3 * (t2 - t0))
            cpu[kind].append(1e3 * (c2 - c0))
            if kind != "event loop":
                app.processEvents()  # nothing may stay pending for the next frame (not timed)
        for _ in range(n_idle // repeats):
            t0 = time.perf_counter()
            w.redraw()
            idle_ms.append(1e3 * (time.perf_counter() - t0))
        n_shown = len(model.rows)
        w.close()
        app.processEvents()
        del w
    rows = []
    for case, vals in (("new block: update items", update_ms),
                       ("update + paint (as live)", wall["event loop"]), ("  cpu", cpu["event loop"]),
                       ("update + forced repaint", wall["forced"]), ("  cpu", cpu["forced"]),
                       ("update + whole window", wall["whole window"]), ("idle tick (no change)", idle_ms)):
        rows.append(f"{name:<13} {n_shown:>6} {case:<27} {statistics.median(vals):>9.2f} {pct(vals, 99):>9.2f} "
                    f"{len(vals):>5}")
    return rows


def bench_memory(sessions: int, n_points: int) -> list[str]:
    rows = []
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    results = series(n_points, TR_S, 64.0, seed=3, spectrum=True)
    held = tracemalloc.get_traced_memory()[0] - base  # the input list itself, subtracted below
    for s in range(sessions):
        model = SessionModel(live=True)
        model.set_session({**HEADER, "session": f"bench-{s}"}, PLAN)
        marks = []
        for i, r in enumerate(results):
            model.add_result(r)
            if (i + 1) % (n_points // 4) == 0:
                gc.collect()
                marks.append((tracemalloc.get_traced_memory()[0] - base - held) / 2**20)
        rows.append(f"session {s + 1}: model MB after 1/4, 1/2, 3/4, all of 2 h: "
                    + ", ".join(f"{m:.1f}" for m in marks)
                    + f"   (spectra cached: {len(model.spectra)}, rows: {len(model.rows)})")
        del model
        gc.collect()
    left_mb = (tracemalloc.get_traced_memory()[0] - base - held) / 2**20
    rows.append(f"after the last session is dropped: {left_mb:.1f} MB")
    tracemalloc.stop()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    ap.add_argument("--out", default="display", help="results file name under bench/results/")
    args = ap.parse_args()
    n_new, n_idle = (30, 21) if args.quick else (150, 201)
    blocks = series(int(SESSION_S / (32 * TR_S)), 32 * TR_S, 32 * TR_S, seed=1)
    sliding = series(int(SESSION_S / TR_S), TR_S, 32 * TR_S, seed=2)
    lines = [f"display benchmark  {time.strftime('%Y-%m-%d %H:%M')}  python {platform.python_version()}  "
             f"{platform.machine()}  QT_QPA_PLATFORM={os.environ.get('QT_QPA_PLATFORM')}  "
             f"cpus={os.cpu_count()}  load average at start={os.getloadavg()[0]:.1f}",
             "window 1600x1000, dark theme; wall times in ms unless cpu (target: redraw under 16 ms)", "",
             f"{'case':<13} {'points':>6} {'what':<27} {'median':>9} {'p99':>9} {'n':>5}"]
    # blocks: the last 60 of the 112 blocks arrive (the curve grows from 52 to 112 points), three
    # times over; sliding: the last 150 of 3600
    lines += bench_redraw("blocks-112", blocks, n_new=min(n_new, 60), n_idle=n_idle, repeats=1 if args.quick else 3)
    lines += bench_redraw("sliding-3600", sliding, n_new=n_new, n_idle=n_idle)
    lines.append(f"load average at the end of the redraw cases: {os.getloadavg()[0]:.1f}")
    lines += ["", "memory of the Qt-free display model, fed 2 h of sliding-window results at full speed:"]
    lines += bench_memory(sessions=3 if not args.quick else 1, n_points=int(SESSION_S / TR_S))
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "bench" / "results" / f"{args.out}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
