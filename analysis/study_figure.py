"""The study figure (`study.png`): per-condition mean time courses when unblinded, else per-session curves."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

PRIMARY = "Glu/tCr"


def plot_study(result: dict, path: Path, measure: str = PRIMARY) -> None:
    """Mean % change time course per condition (or per session, blinded) and paired infusion changes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summaries = result["summaries"]
    unblinded = result.get("condition_effect") is not None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [2.2, 1]})
    ax = axes[0]
    colours = {}
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    groups: dict[str, list[dict]] = {}
    for s in summaries:
        groups.setdefault(s.get("condition") if unblinded else "sessions", []).append(s)
    for i, (g, ss) in enumerate(sorted(groups.items())):
        colours[g] = palette[i % len(palette)]
        grid = np.arange(-15, 51, 1.0)
        curves = []
        for s in ss:
            if not s["window_s"]:
                continue
            t = np.array([np.nan if x is None else x for x in s["t_min"]]) - s["window_s"][0] / 60.0
            p = np.array([np.nan if x is None else x for x in s["measures"][measure]["pct_change"]])
            sel = np.isfinite(t) & np.isfinite(p)
            if sel.sum() < 2:
                continue
            curves.append(np.interp(grid, t[sel], p[sel], left=np.nan, right=np.nan))
            if not unblinded:
                ax.plot(t[sel], p[sel], lw=0.6, alpha=0.35, color=colours[g])
        if curves:
            c = np.array(curves)
            n = np.sum(np.isfinite(c), axis=0)
            with warnings.catch_warnings():  # grid points no session covers are NaN, on purpose
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(c, axis=0)
                sem = np.nanstd(c, axis=0, ddof=1) / np.sqrt(np.maximum(n, 1)) if len(curves) > 1 else 0 * mean
            ax.plot(grid, mean, color=colours[g], lw=2, label=f"{g} (n = {len(curves)})")
            ax.fill_between(grid, mean - sem, mean + sem, color=colours[g], alpha=0.25)
    win = next((s["window_s"] for s in summaries if s["window_s"]), None)
    if win:
        ax.axvspan(0, (win[1] - win[0]) / 60.0, color="0.85", zorder=0, label="infusion")
    ax.axhline(0, color="0.4", lw=0.8)
    ax.set_xlabel("time from infusion start (min)")
    ax.set_ylabel(f"{measure}: % change from baseline")
    ax.set_title(f"{measure} time course (mean ± SEM)" if unblinded else f"{measure}, blinded sessions")
    ax.legend(loc="upper left", fontsize=8)
    ax2 = axes[1]
    if unblinded:
        ce = result["condition_effect"]
        ref, other = ce["contrast"].split(" - ")[1], ce["contrast"].split(" - ")[0]
        by_subj: dict[str, dict[str, float]] = {}
        for s in summaries:
            v = s["measures"][measure]["mean_infusion_pct"]
            if v is not None:
                by_subj.setdefault(s["subject"], {})[s["condition"]] = v
        for d in by_subj.values():
            if ref in d and other in d:
                ax2.plot([0, 1], [d[ref], d[other]], color="0.5", lw=0.8, marker="o", ms=3)
        ax2.set_xticks([0, 1], [ref, other])
        ax2.set_xlim(-0.4, 1.4)
        ax2.set_title(f"effect {ce['estimate']:+.2f} pp [{ce['ci95_low']:+.2f}, {ce['ci95_high']:+.2f}], "
                      f"p = {ce['p']:.2g}", fontsize=9)
    else:
        vals = [s["measures"][measure]["mean_infusion_pct"] for s in summaries
                if s["measures"][measure]["mean_infusion_pct"] is not None]
        ax2.hist(vals, bins=max(5, len(vals) // 3), color=palette[0])
        ax2.set_xlabel("mean infusion % change")
        ax2.set_title("per session (blinded)", fontsize=9)
    ax2.set_ylabel("mean % change over the infusion" if unblinded else "sessions")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
