"""A self-contained HTML report of one stored session (figures embedded, and also written beside it as PNG).

    write_report(session_dir, out_dir, derivative=None) -> Path   # OUT/index.html

Contents: the time course of the primary measure with CRLB bars, events and the infusion window;
percent change from baseline; QC traces (SNR, linewidth, per-transient frequency, rejections);
spectra of selected blocks with their fits (spectra/*.npz); acquisition parameters; rejected
transients and why (transients.jsonl); summary numbers (analysis.study); software version and the
processing settings. Identification by session id and kit code only; never a condition.
"""

from __future__ import annotations

import base64
import html
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from analysis.study import MEASURES
from mrs.results import BlockResult, EventRecord
from mrs.timecourse import infusion_window_s, summarise_curve
from protocols.session_folder import SessionReader, software_version

EVENT_COLOURS = {"infusion_start": "#2ca02c", "infusion_stop": "#d62728", "vitals": "#9467bd",
                 "pretreatment": "#8c564b", "note": "#7f7f7f"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _events_on(ax, events: list[EventRecord], t_max_min: float) -> None:
    seen = set()
    for e in events:
        if e.t_s is None:
            continue
        t = e.t_s / 60.0
        if t < 0 or t > t_max_min:
            continue
        kind = e.kind
        ax.axvline(t, color=EVENT_COLOURS.get(kind, "#bcbd22"), lw=0.9, ls="--",
                   label=kind if kind not in seen else None)
        seen.add(kind)


def _times_min(fits: list[BlockResult]) -> np.ndarray:
    return np.array([np.nan if f.t_s is None else f.t_s for f in fits], float) / 60.0


def _ratio_arrays(fits: list[BlockResult], measure: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    v = np.array([f.ratios.get(measure) for f in fits], dtype=float)
    e = np.array([f.ratios_sd.get(measure) for f in fits], dtype=float)
    return _times_min(fits), v, e, np.array([f.ok for f in fits], bool)


def summarise(fits: list[BlockResult], measure: str, window_s) -> dict:
    """mrs.timecourse's summary of one measure: the numbers the display and the study show."""
    t, v, _, ok = _ratio_arrays(fits, measure)
    t_end = np.array([np.nan if f.t_end_s is None else f.t_end_s for f in fits], float)
    return summarise_curve(t * 60.0, v, ok, window_s, t_end)


def fig_timecourse(fits: list[BlockResult], events: list[EventRecord], window_s, measure: str, path: Path) -> dict:
    plt = _plt()
    t, v, e, ok = _ratio_arrays(fits, measure)
    good = ok & np.isfinite(v)
    summary = summarise(fits, measure, window_s)
    fig, axes = plt.subplots(2, 1, figsize=(10, 6.4), sharex=True)
    ax = axes[0]
    if window_s:
        for a in axes:
            a.axvspan(window_s[0] / 60, window_s[1] / 60, color="0.92", zorder=0)
    ax.errorbar(t[good], v[good], yerr=np.nan_to_num(e[good]), fmt="o-", ms=3, lw=1, capsize=2, color="#1f77b4",
                label=f"{measure} ± CRLB")
    if (~good).any():
        bad = ~good & np.isfinite(t)
        ymin = np.nanmin(v[good]) if good.any() else 0.0
        ax.plot(t[bad], np.full(bad.sum(), ymin), "x", color="#d62728", label="not ok (not plotted as data)")
    t_max = float(np.nanmax(t)) + 1 if np.isfinite(t).any() else 1.0
    _events_on(ax, events, t_max)
    ax.set_ylabel(measure)
    ax.legend(fontsize=7, loc="upper left", ncol=3)
    ax.set_title(f"{measure} per block (shaded: infusion)")
    ax2 = axes[1]
    if summary["baseline"] is not None:
        pct = np.array([np.nan if p is None else p for p in summary["pct_change"]])
        ax2.errorbar(t[good], pct[good], yerr=100 * np.nan_to_num(e[good]) / summary["baseline"], fmt="o-", ms=3,
                     lw=1, capsize=2, color="#ff7f0e")
        ax2.axhline(0, color="0.4", lw=0.8)
    else:
        ax2.text(0.5, 0.5, "no baseline before an infusion: % change not defined", ha="center",
                 transform=ax2.transAxes)
    _events_on(ax2, events, t_max)
    ax2.set_ylabel("% change from baseline")
    ax2.set_xlabel("time from session start (min)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return summary


def fig_qc(fits: list[BlockResult], transients: list[dict], events: list[EventRecord], path: Path) -> None:
    plt = _plt()
    t = _times_min(fits)

    def qc(name: str) -> np.ndarray:
        return np.array([getattr(f.qc, name) for f in fits], dtype=float)

    fig, axes = plt.subplots(4, 1, figsize=(10, 8), sharex=True)
    axes[0].plot(t, qc("snr"), "o-", ms=3)
    axes[0].set_ylabel("SNR (NAA)")
    axes[1].plot(t, qc("naa_fwhm_hz"), "o-", ms=3, label="NAA")
    if np.isfinite(qc("water_fwhm_hz")).any():
        axes[1].plot(t, qc("water_fwhm_hz"), "s-", ms=3, label="water ref")
    axes[1].set_ylabel("FWHM (Hz)")
    axes[1].legend(fontsize=7)
    tt = np.array([r.get("t_s") for r in transients], dtype=float) / 60.0
    ff = np.array([r.get("freq_hz") for r in transients], dtype=float)
    rej = np.array([r.get("rejected") is not None for r in transients], bool)
    if tt.size:
        axes[2].plot(tt[~rej], ff[~rej], ".", ms=2, label="accepted")
        axes[2].plot(tt[rej], ff[rej], "x", ms=4, color="#d62728", label="rejected")
        axes[2].legend(fontsize=7)
    axes[2].set_ylabel("frequency correction (Hz)")
    axes[3].bar(t, [f.n_rejected for f in fits], width=0.3, color="#d62728")
    axes[3].set_ylabel("rejected / block")
    axes[3].set_xlabel("time from session start (min)")
    t_max = float(np.nanmax(t)) + 1 if np.isfinite(t).any() else 1.0
    for a in axes:
        _events_on(a, events, t_max)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def select_blocks(fits: list[BlockResult], window_s, measure: str) -> list[int]:
    """First block, last baseline block, the block nearest the infusion's end, and the last block."""
    blocks = [f.block for f in fits]
    if not blocks:
        return []
    chosen = [blocks[0]]
    if window_s:
        before = [f.block for f in fits if f.t_s is not None and f.t_s < window_s[0]]
        if before:
            chosen.append(before[-1])
        near = min(fits, key=lambda f: abs((f.t_s or 0) - window_s[1]))
        chosen.append(near.block)
    chosen.append(blocks[-1])
    return list(dict.fromkeys(chosen))


def fig_spectra(reader: SessionReader, blocks: list[int], path: Path, derivative: str | None = None) -> list[int]:
    """The blocks' stored spectra (the derivative's own; a dynamic refit stores none: then the session's)."""
    plt = _plt()
    spectra = {b: reader.block_spectrum(b, derivative) for b in blocks}
    if derivative and not any(s is not None for s in spectra.values()):
        spectra = {b: reader.block_spectrum(b) for b in blocks}
    shown = [b for b in blocks if spectra[b] is not None]
    fig, axes = plt.subplots(len(shown) or 1, 1, figsize=(10, 2.6 * max(len(shown), 1)), squeeze=False)
    for ax, b in zip(axes[:, 0], shown, strict=False):
        d = spectra[b]
        ppm = d["ppm"]
        ax.plot(ppm, d["data"], color="0.2", lw=0.8, label="data")
        ax.plot(ppm, d["fit"], color="#d62728", lw=1.0, label="fit")
        if "baseline" in d:
            ax.plot(ppm, d["baseline"], color="#2ca02c", lw=0.8, label="baseline")
        resid = d["data"] - d["fit"]
        off = float(np.min(d["data"])) - 1.5 * float(np.ptp(resid) or 1.0)
        ax.plot(ppm, resid + off, color="0.5", lw=0.6, label="residual")
        if "Glu" in d["components"]:
            ax.plot(ppm, d["components"]["Glu"] + (d["baseline"] if "baseline" in d else 0), color="#1f77b4",
                    lw=0.8, label="Glu")
        ax.set_xlim(float(ppm.max()), float(ppm.min()))
        ax.set_title(f"block {b}", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", ncol=5)
    if not shown:
        axes[0, 0].text(0.5, 0.5, "no stored spectra", ha="center", transform=axes[0, 0].transAxes)
    axes[-1, 0].set_xlabel("chemical shift (ppm)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return shown


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    return "n/a" if v is None else str(v)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>' \
           f'{html.escape(alt)} ({html.escape(path.name)})</figcaption></figure>'


CSS = """body{font-family:sans-serif;max-width:1100px;margin:1em auto;color:#222}
table{border-collapse:collapse;margin:0.5em 0}th,td{border:1px solid #ccc;padding:2px 8px;text-align:left;
font-size:13px}th{background:#f3f3f3}img{max-width:100%}figcaption{font-size:12px;color:#666}"""


def _acquisition_rows(h: dict, s: dict) -> list[tuple[str, Any]]:
    return [("spectrometer frequency (MHz)", h.get("spectrometer_frequency_mhz")), ("nucleus", h.get("nucleus")),
            ("field strength (T)", h.get("field_strength_t")), ("sequence", h.get("sequence")),
            ("TE (ms)", None if h.get("echo_time_s") is None else 1e3 * h["echo_time_s"]),
            ("TR (s)", h.get("repetition_time_s")), ("points", h.get("points")),
            ("spectral width (Hz)", 1.0 / float(h["dwell_time_s"])), ("coils", h.get("coils")),
            ("voxel (mm)", h.get("voxel_mm")), ("transients stored", s["transients"]),
            ("metabolite / water ref / noise / dummy", f"{s['metabolite_transients']} / {s['water_ref']} / "
                                                        f"{s['noise']} / {s['dummy']}"),
            ("missing seqs", s["missing"] or "none"), ("complete", s["complete"]),
            ("duration (min)", round(s["duration_s"] / 60.0, 2))]


def _settings_rows(folder: Path, plan: dict, derivative: str | None, measure: str) -> list[tuple[str, Any]]:
    rows = [("software", f"mrsmon {software_version()}"),
            ("fits", f"derivatives/{derivative}" if derivative else "as fitted by the agent"),
            ("block transients", plan.get("block_transients")), ("fit window (ppm)", plan.get("fit_window_ppm")),
            ("alarm thresholds", plan.get("alarms")), ("outlier settings", plan.get("outliers") or "defaults"),
            ("primary measure", measure), ("report written", time.strftime("%Y-%m-%d %H:%M:%S"))]
    settings = folder / "derivatives" / (derivative or "") / "settings.json"
    if derivative and settings.exists():
        rows.append(("refit settings", json.loads(settings.read_text())))
    return rows


def write_report(session_dir: str | Path, out_dir: str | Path, derivative: str | None = None,
                 measure: str | None = None) -> Path:
    folder = Path(session_dir)
    r = SessionReader(folder)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fits = r.results(derivative)
    events = r.event_records()
    transients = r.transient_records()
    plan = r.plan or {}
    measure = measure or plan.get("measure") or "Glu/tCr"
    start, stop = infusion_window_s(events, plan)
    window_s = None if start is None or stop is None else (start, stop)
    h = r.header
    fig_timecourse(fits, events, window_s, measure, out / "timecourse.png")
    fig_qc(fits, transients, events, out / "qc.png")
    shown = fig_spectra(r, select_blocks(fits, window_s, measure), out / "spectra.png", derivative)
    other = {m: summarise(fits, m, window_s) for m in MEASURES}
    reasons = Counter(t["rejected"] for t in transients if t.get("rejected"))
    rejected_rows = [t for t in transients if t.get("rejected")]
    acq = _acquisition_rows(h, r.summary())
    settings_rows = _settings_rows(folder, plan, derivative, measure)
    derivs = sorted(p.name for p in (folder / "derivatives").iterdir()) if (folder / "derivatives").exists() else []
    summ_rows = []
    for m in MEASURES:
        sm = other[m]
        summ_rows.append(f"<tr><td>{html.escape(m)}</td><td>{_fmt(sm['baseline'])}</td>"
                         f"<td>{sm['baseline_blocks']}</td><td>{_fmt(sm['mean_infusion_pct'])}</td>"
                         f"<td>{_fmt(sm['auc_pct_min'])}</td><td>{_fmt(sm['peak_pct'])}</td>"
                         f"<td>{_fmt(sm['time_to_peak_min'])}</td></tr>")
    ok_n = sum(1 for f in fits if f.ok)
    status = Counter(f.qc.fit_status for f in fits)
    rej_list = "".join(f"<tr><td>{t['seq']}</td><td>{_fmt(t.get('t_s'))}</td><td>{html.escape(str(t['rejected']))}"
                       f"</td><td>{_fmt(t.get('block'))}</td></tr>" for t in rejected_rows[:200])
    ev_rows = "".join(f"<tr><td>{_fmt(None if e.t_s is None else round(e.t_s / 60.0, 3))}</td>"
                      f"<td>{html.escape(e.kind)}</td><td>{html.escape(_fmt(e.value or ''))}</td>"
                      f"<td>{html.escape(e.note)}</td><td>{html.escape(e.source)}</td></tr>" for e in events)
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>mrsmon report {html.escape(str(h.get('session', folder.name)))}</title>
<style>{CSS}</style></head><body>
<h1>Session {html.escape(str(h.get('session', folder.name)))}</h1>
{_table([("kit code", h.get("kit_code")), ("session code", h.get("session_code")), ("protocol", h.get("protocol")),
         ("blocks fitted", len(fits)), ("blocks ok", f"{ok_n} ({dict(status)})")])}
<h2>Time course</h2>
{_img(out / "timecourse.png", f"{measure} per block with CRLB bars, events and % change from baseline")}
<h2>Summary</h2>
<table><tr><th>measure</th><th>baseline mean</th><th>baseline blocks</th><th>mean infusion % change</th>
<th>AUC (%·min)</th><th>peak %</th><th>time to peak (min after infusion start)</th></tr>{''.join(summ_rows)}</table>
<p>Infusion window: {_fmt(None if not window_s else [round(w / 60.0, 2) for w in window_s])} min from session start.</p>
<h2>Quality</h2>
{_img(out / "qc.png", "QC traces: SNR, linewidth, per-transient frequency correction, rejections")}
<h2>Spectra of selected blocks</h2>
{_img(out / "spectra.png", "spectra with fits of blocks " + ", ".join(map(str, shown)))}
<h2>Rejected transients</h2>
{_table([(k, v) for k, v in sorted(reasons.items())] or [("rejected", "none")])}
<table><tr><th>seq</th><th>t (s)</th><th>reason</th><th>block</th></tr>{rej_list}</table>
{"<p>(first 200 of " + str(len(rejected_rows)) + ")</p>" if len(rejected_rows) > 200 else ""}
<h2>Events</h2>
<table><tr><th>t (min)</th><th>kind</th><th>value</th><th>note</th><th>source</th></tr>{ev_rows}</table>
<h2>Acquisition</h2>
{_table(acq)}
<h2>Software and settings</h2>
{_table(settings_rows + [("derivative sets", derivs or "none")])}
</body></html>
"""
    index = out / "index.html"
    index.write_text(doc)
    return index
