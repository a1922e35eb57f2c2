"""The simulated glutamate response to an infusion: a pure function of time, plan and arm.

Shape (times in minutes from session start):
- nothing until `infusion start + response_onset_min`;
- a half-cosine rise over `response_rise_min` to the plateau `response_pct` (times the arm factor);
- plateau until the infusion stops;
- a half-cosine decay to baseline over `response_decay_min` from whatever level was reached.

Arms: "placebo" (pretreatment placebo, full ketamine response) and "naltrexone" (the response times
`naltrexone_factor`, default 0.5, following Jelen et al. 2025; `naltrexone_factor_male` and
`naltrexone_factor_female` override it when a sex is given). The analysis side uses the same
function to draw the expected curve; the condition itself lives only in the simulator's truth.
"""

from __future__ import annotations

import numpy as np

from protocols.plan import SessionPlan

CONDITIONS = ("placebo", "naltrexone")
DEFAULT_NALTREXONE_FACTOR = 0.5


def infusion_window_min(plan: SessionPlan) -> tuple[float, float] | None:
    """(start, stop) of the infusion in minutes from session start, or None when there is none."""
    start = next((e.at_min for e in plan.events if e.kind == "infusion_start"), None)
    phase = plan.phase("infusion")
    if start is None and phase is not None:
        start = phase.start_min
    if start is None:
        return None
    stop = next((e.at_min for e in plan.events if e.kind == "infusion_stop" and e.at_min >= start), None)
    if stop is None and phase is not None:
        stop = phase.end_min
    if stop is None:
        ev = next((e for e in plan.events if e.kind == "infusion_start"), None)
        dur = ev.value.get("duration_min") if ev is not None else None
        stop = start + float(dur) if dur is not None else plan.duration_min
    return float(start), float(stop)


def _ramp(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return 0.5 * (1.0 - np.cos(np.pi * x))


def response_shape(t_min: float | np.ndarray, plan: SessionPlan) -> float | np.ndarray:
    """Normalised drug-effect curve in [0, 1] (1 = plateau), independent of the arm."""
    t = np.asarray(t_min, float)
    window = infusion_window_min(plan)
    sim = plan.simulation
    if window is None:
        out = np.zeros_like(t)
    else:
        start, stop = window
        onset = start + float(sim.get("response_onset_min", 10.0))
        rise = max(float(sim.get("response_rise_min", 10.0)), 1e-9)
        decay = max(float(sim.get("response_decay_min", 20.0)), 1e-9)
        during = _ramp((np.minimum(t, stop) - onset) / rise)
        after = 1.0 - _ramp((t - stop) / decay)
        out = np.where(t <= stop, during, during * after)
    return float(out) if out.ndim == 0 else out


def arm_factor(plan: SessionPlan, condition: str | None, sex: str | None = None) -> float:
    """Multiplier of the response for an arm (1 for placebo)."""
    cond = resolve_condition(plan, condition)
    if cond == "placebo":
        return 1.0
    sim = plan.simulation
    factor = float(sim.get("naltrexone_factor", DEFAULT_NALTREXONE_FACTOR))
    if sex is not None:
        key = {"m": "naltrexone_factor_male", "f": "naltrexone_factor_female"}.get(sex[:1].lower())
        if key is None:
            raise ValueError(f"unknown sex {sex!r}: use 'M' or 'F' (or leave it unset)")
        factor = float(sim.get(key, factor))
    return factor


def resolve_condition(plan: SessionPlan, condition: str | None) -> str:
    """The arm to simulate: the argument, else the plan's [simulation] condition, else placebo."""
    cond = condition if condition is not None else plan.simulation.get("condition", "placebo")
    cond = str(cond).lower()
    if cond not in CONDITIONS:
        raise ValueError(f"unknown condition {cond!r}: the simulator knows {', '.join(CONDITIONS)}")
    return cond


def glu_scale(t_min: float | np.ndarray, plan: SessionPlan, condition: str | None = None,
              sex: str | None = None) -> float | np.ndarray:
    """Glutamate concentration multiplier at `t_min` (1.0 = baseline; 1.05 = +5 %)."""
    pct = float(plan.simulation.get("response_pct", 0.0))
    shape = response_shape(t_min, plan)
    return 1.0 + pct / 100.0 * arm_factor(plan, condition, sex) * shape
