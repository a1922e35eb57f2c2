"""The one definition of the infusion window, the baseline and the percent change from baseline, used by
the display (what the technician reads), the report and the study (what is published), so the numbers
agree wherever they are shown.

- Infusion window: the recorded `infusion_start` event (the earliest), else the plan's (its planned
  `infusion_start` event, else the start of its "infusion" phase); the stop likewise (the first
  `infusion_stop` at or after the start, else the plan's, else the start event's `duration_min`).
- Baseline: the mean (and SD) of the good blocks (fit_status ok, finite value) that *ended* at or before
  the infusion start: a block that straddles the start holds drug-period transients. Without a known
  start there is no baseline (rather than one that silently includes drug effect).
- Percent change: 100 (value - baseline) / baseline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mrs.results import EventRecord

BOUNDARY_S = 1e-9   # a block ending exactly at the infusion start is a baseline block


@dataclass(frozen=True)
class Baseline:
    mean: float
    sd: float
    n: int
    end_s: float | None  # the infusion start that ends the baseline

    @property
    def valid(self) -> bool:
        return self.n >= 1 and math.isfinite(self.mean) and self.mean != 0.0


NO_BASELINE = Baseline(math.nan, math.nan, 0, None)


def planned_window_s(plan: Mapping[str, Any] | None) -> tuple[float | None, float | None]:
    """(start, stop) of the infusion in the plan, s from session start (None where the plan says nothing)."""
    plan = plan or {}
    events = plan.get("events") or []
    phase = next((p for p in plan.get("phases") or [] if p.get("name") == "infusion"), None)
    start = next((60.0 * float(e["at_min"]) for e in events
                  if e.get("kind") == "infusion_start" and e.get("at_min") is not None), None)
    stop = next((60.0 * float(e["at_min"]) for e in events
                 if e.get("kind") == "infusion_stop" and e.get("at_min") is not None), None)
    if start is None and phase is not None:
        start = 60.0 * float(phase["start_min"])
    if stop is None and phase is not None:
        stop = 60.0 * float(phase["end_min"])
    return start, stop


def infusion_window_s(events: Iterable[EventRecord], plan: Mapping[str, Any] | None
                      ) -> tuple[float | None, float | None]:
    """(start, stop) of the infusion, s from session start: recorded events first, else the plan."""
    timed = [e for e in events if e.t_s is not None and math.isfinite(e.t_s)]
    starts = [e for e in timed if e.kind == "infusion_start"]
    planned_start, planned_stop = planned_window_s(plan)
    first = min(starts, key=lambda e: e.t_s) if starts else None
    start = first.t_s if first is not None else planned_start
    if start is None:
        return None, None
    stops = sorted(e.t_s for e in timed if e.kind == "infusion_stop" and e.t_s >= start)
    stop = stops[0] if stops else planned_stop
    if stop is None and first is not None:
        dur = first.value.get("duration_min")
        stop = start + 60.0 * float(dur) if dur is not None else None
    return start, stop


def baseline_stats(t_end_s: np.ndarray, values: np.ndarray, ok: np.ndarray,
                   infusion_start_s: float | None) -> Baseline:
    """Mean and SD of the good blocks that ended at or before the infusion start."""
    if infusion_start_s is None:
        return NO_BASELINE
    v = np.asarray(values, float)
    sel = np.asarray(ok, bool) & np.isfinite(v) & (np.asarray(t_end_s, float) <= infusion_start_s + BOUNDARY_S)
    n = int(sel.sum())
    if n == 0:
        return Baseline(math.nan, math.nan, 0, infusion_start_s)
    mean = float(v[sel].mean())
    sd = float(v[sel].std(ddof=1)) if n > 1 else 0.0
    return Baseline(mean, sd, n, infusion_start_s)


def percent_change(values: np.ndarray, baseline_mean: float) -> np.ndarray:
    """100 (v - mean) / mean; NaN everywhere when the baseline is unusable."""
    v = np.asarray(values, float)
    if not (math.isfinite(baseline_mean) and baseline_mean != 0.0):
        return np.full_like(v, np.nan)
    return 100.0 * (v - baseline_mean) / baseline_mean


def summarise_curve(t_s: np.ndarray, values: np.ndarray, ok: np.ndarray,
                    window_s: tuple[float | None, float | None] | None,
                    t_end_s: np.ndarray | None = None) -> dict[str, Any]:
    """Baseline, % change per block, and over the infusion (blocks whose mid-time `t_s` lies in the
    window): AUC of the % change (trapezoid, %·min), its mean (AUC / time covered), the peak from the
    start on and its time (min after the start). `t_end_s`: when the blocks ended (default: `t_s`)."""
    t = np.asarray(t_s, float)
    v = np.asarray(values, float)
    good = np.asarray(ok, bool) & np.isfinite(v) & np.isfinite(t)
    out: dict[str, Any] = {"baseline": None, "baseline_blocks": 0, "pct_change": [None] * len(t),
                           "auc_pct_min": None, "mean_infusion_pct": None, "peak_pct": None,
                           "time_to_peak_min": None, "infusion_blocks": 0}
    start, stop = window_s or (None, None)
    ends = t if t_end_s is None else np.where(np.isfinite(np.asarray(t_end_s, float)), t_end_s, t)
    base = baseline_stats(ends, v, good, start)
    if start is None or stop is None or not base.valid:
        return out
    pct = percent_change(v, base.mean)
    out.update(baseline=base.mean, baseline_blocks=base.n,
               pct_change=[float(p) if g else None for p, g in zip(pct, good, strict=True)])
    inf = good & (t >= start) & (t <= stop)
    out["infusion_blocks"] = int(inf.sum())
    if inf.sum() >= 2:
        tm = (t[inf] - start) / 60.0
        auc = float(np.trapezoid(pct[inf], tm)) if hasattr(np, "trapezoid") else float(np.trapz(pct[inf], tm))
        out["auc_pct_min"] = auc
        out["mean_infusion_pct"] = auc / float(tm[-1] - tm[0]) if tm[-1] > tm[0] else float(pct[inf].mean())
    elif inf.sum() == 1:
        out["mean_infusion_pct"] = float(pct[inf][0])
    after = good & (t >= start)
    if after.any():
        k = int(np.argmax(np.where(after, pct, -np.inf)))
        out["peak_pct"] = float(pct[k])
        out["time_to_peak_min"] = float((t[k] - start) / 60.0)
    return out
