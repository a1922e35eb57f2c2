"""Residual water per transient: a burst of residual water (HLSVD-removed here) would corrupt the
shift, the scale and the running reference. Searched where water sits now: the drift moves it with
the metabolites (a fixed band would, after a large drift, take a metabolite line for water)."""

from __future__ import annotations

import numpy as np

from mrs.pipeline.stage import TransientStage
from mrs.preproc.water import remove_water, water_dominates


class ResidualWater(TransientStage):
    name = "water"

    def process(self, data: np.ndarray, ctx) -> tuple[np.ndarray, dict]:
        g = ctx.grid
        centre_now = g.centre_ppm - ctx.recent_shift_hz() / g.cf_mhz
        wet = water_dominates(data, g.dwell_s, g.cf_mhz, centre_now)
        if wet:
            data, _ = remove_water(data, g.dwell_s, g.cf_mhz, centre_now, n_points=256)
            wet = water_dominates(data, g.dwell_s, g.cf_mhz, centre_now)
        # still wet: the registration then ignores smooth spectral components (mrs/preproc/align.py)
        return data, {"water_dominates": bool(wet)}
