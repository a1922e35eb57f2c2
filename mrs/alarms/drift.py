"""The scanner frequency drifts faster than the plan allows (shim or heating: check the system)."""

from mrs.qc import AlarmRule, beyond


def check(result, limit, history):
    drift = result.qc.drift_hz_per_min
    if drift is None or not abs(drift) > limit:
        return None
    return f"Frequency drifting {beyond(drift, limit, sign=True)} Hz/min (limit {limit:g})"


RULE = AlarmRule("drift", "qc.drift_hz_per_min", "drift_hz_per_min", "amber", check)
