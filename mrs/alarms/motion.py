"""A burst of motion: at least `motion_fraction` of a block's transients (and at least two) rejected
for motion."""

import math

from mrs.qc import AlarmRule


def check(result, limit, history):
    n_motion = int(result.rejected.get("motion", 0) or 0)
    n_total = result.n_transients + result.n_rejected
    if n_motion < max(2, math.ceil(limit * n_total)):
        return None
    return (f"Motion: {n_motion} of {max(n_total, n_motion)} transients rejected in block {result.block}: "
            "ask the participant to keep still")


RULE = AlarmRule("motion", "rejected.motion", "motion_fraction", "red", check)
